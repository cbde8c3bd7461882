"""Benchmark of language identification (`tootlake enrich`, lingua): what it costs per post,
what loading it costs, and how often it is right on the labelled real posts.

    python bench/languages_bench.py                 # both accuracy modes, results in bench/results
    python bench/languages_bench.py --posts 20000   # more posts for the cost per post

Each mode runs in a fresh process (lingua keeps its models for the life of the process), which
measures: loading (the first detection, which reads the models it needs), peak RSS, then the
cost per post of `tootlake.lake.enrich.detect_languages()` over the real posts' texts repeated to
`--posts` (wall and CPU time: lingua detects on every core), and the accuracy on the real posts
whose language tests/fixtures/languages.csv gives (labelled by reading each text), overall and
by length. The tags the clients sent are scored on the same posts.

Results: bench/results/languages.json and languages.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FIXTURES = ROOT / "tests" / "fixtures"
REAL = FIXTURES / "real"
REAL_FILES = ("mastodonsocial.json", "malformed.json", "timelines.jsonl")
COLLECT_US = 125  # the collector's CPU per event (bench/results/collect.md, 1,000 posts/s)


def real_posts() -> list[Any]:
    """The post of each real status (its latest version), as `tootlake replay` keeps it."""
    from tootlake.record import from_status, skip_reason

    hosts = {"mastodonsocial.json": "mastodon.social", "malformed.json": "fosstodon.org"}
    best: dict[str, tuple[tuple[Any, ...], Any]] = {}
    order = 0
    for name in REAL_FILES:
        for line in (REAL / name).read_text(encoding="utf-8").rstrip("\n").split("\n"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if name == "timelines.jsonl":
                observed_on, status = value["observed_on"], value["status"]
            else:
                observed_on, status = hosts[name], value
            if skip_reason(status) is not None:
                continue
            order += 1
            post = from_status(status, observed_on)
            edited = post.edited_at.replace(microsecond=0) if post.edited_at else None
            key = (edited is not None, edited or 0, post.local, post.edited_at or 0, order)
            if post.uri not in best or key > best[post.uri][0]:
                best[post.uri] = (key, post)
    return [post for _, post in best.values()]


def labels() -> dict[str, str]:
    lines = (FIXTURES / "languages.csv").read_text(encoding="utf-8").splitlines()
    return {r["uri"]: r["language"] for r in csv.DictReader(x for x in lines if x[:1] != "#")}


def child(mode: str, posts_wanted: int) -> dict[str, Any]:
    from tootlake.lake.enrich import MIN_LETTERS, detect_languages, detector, letters, plain_words

    low = mode == "low"
    posts = real_posts()
    truth = labels()
    texts = [p.text for p in posts if (p.characters or 0) >= MIN_LETTERS]

    t = time.perf_counter()
    detect = detector(low_accuracy=low)
    detect_languages(texts[:1], detect=detect)  # loads the models it needs
    first = detect_languages(texts, detect=detect)  # and the rest
    load_seconds = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    sample = (texts * (posts_wanted // max(1, len(texts)) + 1))[:posts_wanted]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    t = time.perf_counter()
    detect_languages(sample, detect=detect)
    wall = time.perf_counter() - t
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0

    uris = [p.uri for p in posts if (p.characters or 0) >= MIN_LETTERS]
    found = dict(zip(uris, first, strict=True))
    by_uri = {p.uri: p for p in posts}
    judged = {uri: lang for uri, lang in truth.items() if lang != "und"}
    right = {uri for uri, lang in judged.items() if found.get(uri, (None,))[0] == lang}
    tags = {
        uri
        for uri, lang in judged.items()
        if (by_uri[uri].language or "").split("-")[0].lower() == lang
    }
    by_length: dict[str, list[int]] = {}
    for uri in judged:
        n = letters(plain_words(by_uri[uri].text))
        bucket = "20-49" if n < 50 else "50-99" if n < 100 else "100+"
        by_length.setdefault(bucket, [0, 0])
        by_length[bucket][0] += uri in right
        by_length[bucket][1] += 1
    wrong = [
        {"uri": uri, "true": judged[uri], "detected": found.get(uri, (None,))[0]}
        for uri in sorted(set(judged) - right)
    ]
    return {
        "mode": "low accuracy" if low else "high accuracy (default)",
        "load_seconds": round(load_seconds, 2),
        "peak_rss_mb": round(rss_mb),
        "posts_timed": len(sample),
        "ms_per_post_wall": round(wall / len(sample) * 1000, 3),
        "ms_per_post_cpu": round(cpu / len(sample) * 1000, 3),
        "labelled": len(judged),
        "right": len(right),
        "accuracy": round(len(right) / len(judged), 4),
        "tags_right": len(tags),
        "tag_accuracy": round(len(tags) / len(judged), 4),
        "by_letters": {k: {"right": v[0], "of": v[1]} for k, v in sorted(by_length.items())},
        "wrong": wrong,
        "real_posts": len(posts),
        "too_short": len(posts) - len(texts),
        "detected_none": sum(1 for f in first if f[0] is None),
        "languages_found": Counter(f[0] for f in first if f[0]).most_common(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=10_000, help="posts timed per mode")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--markdown-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.posts)))
        return
    if args.markdown_only:  # rewrite the .md from the last .json
        result = json.loads((Path(args.results) / "languages.json").read_text(encoding="utf-8"))
        (Path(args.results) / "languages.md").write_text(markdown(result), encoding="utf-8")
        return
    runs = {}
    for mode in ("high", "low"):
        done = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--posts", str(args.posts)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{mode}: {runs[mode]['ms_per_post_wall']} ms a post", file=sys.stderr)
    from importlib.metadata import version

    result = {
        "benchmark": "language identification of posts' text (tootlake enrich, lingua)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            "python": platform.python_version(),
            "lingua-language-detector": version("lingua-language-detector"),
        },
        "runs": runs,
    }
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "languages.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "languages.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def markdown(r: dict[str, Any]) -> str:
    high, low = r["runs"]["high"], r["runs"]["low"]
    lines = [
        "# Language identification: cost and accuracy",
        "",
        f"{r['date']} · {r['machine']['cores']} cores (shared; load average at the end "
        f"{', '.join(map(str, r['machine']['load_average_at_end']))}) · Python "
        f"{r['versions']['python']}, lingua {r['versions']['lingua-language-detector']}",
        "",
        f"The {high['real_posts']} posts of the recorded real statuses (tests/fixtures/real): "
        f"{high['real_posts'] - high['too_short']} have at least 20 characters and are "
        f"detected; {high['labelled']} of them have a known language "
        "(tests/fixtures/languages.csv, labelled by reading each text). Cost per post over "
        f"{high['posts_timed']:,} texts (the real ones repeated), models loaded; each mode in a "
        "fresh process.",
        "",
        "| mode | load (s) | peak RSS (MB) | ms a post (wall) | ms a post (CPU) | accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in (high, low):
        lines.append(
            f"| {run['mode']} | {run['load_seconds']} | {run['peak_rss_mb']:,} | "
            f"{run['ms_per_post_wall']} | {run['ms_per_post_cpu']} | "
            f"{run['right']}/{run['labelled']} = {run['accuracy']:.1%} |"
        )
    lines += [
        "",
        f"The clients' tags on the same posts: {high['tags_right']}/{high['labelled']} = "
        f"{high['tag_accuracy']:.1%} right.",
        "",
        "Accuracy by letters left once links, mentions, hashtags and emoji codes are out "
        "(high accuracy mode): "
        + ", ".join(f"{k}: {v['right']}/{v['of']}" for k, v in high["by_letters"].items())
        + ".",
        "",
        "Wrong (high accuracy): "
        + (
            "; ".join(f"{w['uri']} is {w['true']}, detected {w['detected']}" for w in high["wrong"])
            or "none"
        )
        + ".",
        "",
        "Where it runs: on demand (`tootlake enrich`), not when posts are recorded nor in the "
        f"report. Loading takes {high['load_seconds']} s and {high['peak_rss_mb']:,} MB that "
        "every collector and sink worker would carry; a post costs "
        f"{high['ms_per_post_cpu']} ms of CPU, {high['ms_per_post_cpu'] * 1000 / COLLECT_US:.0f} "
        f"times what the collector spends on a whole event ({COLLECT_US} µs, "
        "bench/results/collect.md), so a collector would fall behind a busy stream; and "
        f"the talk's 1.6M posts would add about {1.6e6 * high['ms_per_post_cpu'] / 60e3:.0f} "
        "CPU minutes to every report. `enrich` detects each post once and appends it to the "
        "`languages` table; a compaction could run it too, but `compact` is about files.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--child" not in sys.argv:
        sys.path.insert(0, str(ROOT / "src"))
    main()
