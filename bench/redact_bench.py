"""Masking tokens with a fleet's worth of them registered (results: bench/results/redact.*).

    python bench/redact_bench.py [--baseline REV] [--tokens 1,100,1000] [--repeat 200]

A collector streaming from a thousand servers holds a thousand tokens, and everything it
writes or logs goes through `tootlake.redact`: each reject's kept text (up to 64 KiB), each log
line, the health file every 10 s (in the loop's thread). For each number of random tokens
(URL-safe, as Mastodon's), in one process per side: `redact()` of 2 KB of text (a small
reject) and `redact_json()` of a health file of 1,000 instances. Baseline: `redact.py` of
`--baseline` (default f757ab5: one regex of every spelling), loaded from git in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

_MEASURE = """
import importlib.util, json, secrets, sys, time
spec = importlib.util.spec_from_file_location("redact_under_test", sys.argv[1])
r = importlib.util.module_from_spec(spec)
spec.loader.exec_module(r)
n, repeat = int(sys.argv[2]), int(sys.argv[3])
r.register_secret(*[secrets.token_urlsafe(32) for _ in range(n)])
text = ("lorem ipsum dolor sit amet " * 80)[:2048]
health = {
    f"host{i}.example": {
        "url": f"https://host{i}.example", "mode": "stream", "status": "streaming",
        "detail": "streaming over WebSocket since 2026-12-05T22:00:00+00:00",
        "since": "2026-12-05T22:00:00+00:00", "version": "4.3.2", "transport": "websocket",
        "events": 1234, "reached": True, "errors": 0, "reconnects": 0, "last_error": None,
        "cursor": "113456789012345678",
    }
    for i in range(1000)
}
start = time.process_time()
for _ in range(repeat):
    r.redact(text)
per_text = (time.process_time() - start) / repeat
start = time.process_time()
for _ in range(3):
    r.redact_json(health)
per_health = (time.process_time() - start) / 3
print(json.dumps({"text_us": per_text * 1e6, "health_s": per_health}))
"""


def measure(path: Path, tokens: int, repeat: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(tokens), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="f757ab5")
    parser.add_argument("--tokens", default="1,100,1000")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = ROOT / "bench" / "data" / "redact"
    work.mkdir(parents=True, exist_ok=True)
    baseline = work / f"redact-{args.baseline}.py"
    baseline.write_text(
        subprocess.run(
            ["git", "show", f"{args.baseline}:src/tootlake/redact.py"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    )
    ours = ROOT / "src" / "tootlake" / "redact.py"
    rows = []
    for tokens in (int(n) for n in args.tokens.split(",")):
        mine, base = measure(ours, tokens, args.repeat), measure(baseline, tokens, args.repeat)
        rows.append({"tokens": tokens, "ours": mine, "baseline": base})
        print(json.dumps(rows[-1]), flush=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "redact.json").write_text(
        json.dumps({"run": stamp, "baseline": args.baseline, "rows": rows}, indent=1) + "\n"
    )
    lines = [
        "# Masking tokens (`tootlake.redact`) as their number grows",
        "",
        f"Run {stamp} by `bench/redact_bench.py` (CPU time, one process per side): `redact()` "
        f"of 2 KB of text ({args.repeat} times) and `redact_json()` of a 1,000-instance health "
        f"file, with N random URL-safe tokens registered. Baseline: `redact.py` of "
        f"`{args.baseline}`, in the same run.",
        "",
        "| tokens | 2 KB text, ours / baseline (µs) | health file, ours / baseline (s) |",
        "|---|---|---|",
    ]
    for row in rows:
        ours_, base_ = row["ours"], row["baseline"]
        lines.append(
            f"| {row['tokens']:,} | {ours_['text_us']:,.0f} / {base_['text_us']:,.0f} "
            f"| {ours_['health_s']:.3f} / {base_['health_s']:.3f} |"
        )
    (args.results / "redact.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
