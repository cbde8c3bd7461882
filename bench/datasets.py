"""The benchmarks' inputs: real recorded statuses, and generated ones cached in bench/data/.

    real_statuses()               every status in shared/real-data, once per version
    modern_statuses(seed)         the same statuses as a Mastodon 4.5-4.8 server sends them,
                                  with a few words of text each
    talk_statuses(n, seed)        n statuses of the talk's shape (talkshape.py)
    ingest_capture(n, seed)       an SSE capture of n posts (plus edits, deletes, heartbeats)
    analysis_dataset(n, seed)     n posts twice: a tootlake lake, and the talk's Kafka
                                  Connect files (1,000 small Parquet files)

Generated data is keyed by size, seed and DATA_VERSION (bump it when the generator or the
layout changes) and built once: a `complete.json` marker says a build finished. Several
benchmarks share these inputs and may start at once: a build holds an exclusive lock
(`bench/data/.NAME.lock`), writes into a temporary folder and renames it into place when
done, so a second caller waits for the first build instead of writing beside it.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from harness import DATA, ROOT, log

DATA_VERSION = 3  # 3: the lake is Delta tables
REAL_DATA_CANDIDATES = (ROOT.parent / "shared" / "real-data", ROOT / "tests" / "fixtures" / "real")
# The talk's listeners ran on these instances (its blog: mastodon.social, universeodon.com,
# hachyderm.io), mastodon.social the most frequent `base_url`.
TALK_OBSERVERS = {"mastodon.social": 0.55, "universeodon.com": 0.25, "hachyderm.io": 0.20}
TALK_FILES = 1000  # "Objects (999+)" in the talk's S3 bucket
TOPIC = "mastodon-topic"


# ----------------------------------------------------------------------------------------
# real statuses


def real_data_dir() -> Path:
    for folder in REAL_DATA_CANDIDATES:
        if (folder / "mastodonsocial.json").exists():
            return folder
    raise SystemExit(
        "No real recordings found (looked in "
        + ", ".join(str(p) for p in REAL_DATA_CANDIDATES)
        + "): the record benchmark runs over them."
    )


def real_statuses() -> list[tuple[str, dict[str, Any]]]:
    """(observed_on, status) for every distinct status version in the real recordings.

    The .json files hold one status a line (a truncated line is skipped); the .yml files are
    vcr cassettes whose response bodies are JSON arrays of statuses, one status, or a context
    (ancestors, descendants). A boost is a wrapper around the boosted status: its inner
    status is taken (the wrapper has no text of its own), so a status is counted once however
    often it was recorded, per (uri, edited_at).
    """
    import yaml

    folder = real_data_dir()
    found: list[tuple[str, dict[str, Any]]] = []
    seen: set[tuple[str, str | None]] = set()

    def add(host: str, obj: Any) -> None:
        if not isinstance(obj, dict) or "uri" not in obj or "account" not in obj:
            return
        if isinstance(obj.get("reblog"), dict):
            obj = obj["reblog"]
        key = (obj["uri"], obj.get("edited_at"))
        if key not in seen:
            seen.add(key)
            found.append((host, obj))

    streams = (("mastodonsocial.json", "mastodon.social"), ("malformed.json", "fosstodon.org"))
    for path, host in streams:
        for line in (folder / path).read_bytes().splitlines():
            try:
                add(host, orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # the recording's truncated line
    for path in sorted(folder.glob("*.yml")):
        cassette = yaml.safe_load(path.read_text())
        for interaction in cassette.get("http_interactions", []):
            host = interaction["request"]["uri"].split("/")[2]
            try:
                body = orjson.loads(interaction["response"]["body"]["string"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            items = body if isinstance(body, list) else [body]
            for item in items:
                if isinstance(item, dict) and "descendants" in item:
                    for status in item.get("ancestors", []) + item.get("descendants", []):
                        add(host, status)
                else:
                    add(host, item)
    return found


# ----------------------------------------------------------------------------------------
# the record benchmark's other shapes

# Quote states without a quoted status (4.4; the last three since 4.5): the Quote is
# {state, quoted_status: null}.
_QUOTE_STATES_EMPTY = (
    "pending", "rejected", "revoked", "deleted", "unauthorized", "blocked_account",
    "blocked_domain", "muted_account",
)  # fmt: skip
# QuoteApproval (4.5) and, on accounts, FeatureApproval (4.6): {automatic, manual, current_user}
_QUOTE_APPROVALS = (
    ({"automatic": ["public"], "manual": [], "current_user": "automatic"}, 0.70),
    ({"automatic": ["followers"], "manual": [], "current_user": "denied"}, 0.10),
    ({"automatic": [], "manual": ["public"], "current_user": "manual"}, 0.08),
    ({"automatic": [], "manual": [], "current_user": "denied"}, 0.07),
    ({"automatic": ["unsupported_policy"], "manual": [], "current_user": "unknown"}, 0.05),
)
_FEATURE_APPROVALS = (
    ({"automatic": ["public"], "manual": [], "current_user": "automatic"}, 0.6),
    ({"automatic": [], "manual": ["public"], "current_user": "manual"}, 0.3),
    ({"automatic": [], "manual": [], "current_user": "denied"}, 0.1),
)
_ROLE = {"id": "3", "name": "Owner", "color": "#ff3838"}
_WORDS = (
    "good", "morning", "coffee", "again", "today", "new", "release", "thanks", "everyone",
    "just", "finished", "reading", "this", "is", "fine", "look", "at", "my", "cat", "garden",
    "train", "late", "weekend", "tea", "rain", "I&#39;m", "so", "tired", "happy", "Friday",
    "bugs", "&amp;", "fixes", "\u201cnope\u201d", "Guten", "Morgen", "Bonjour", "\u00e0", "tous",
    "buenos", "d\u00edas", "\u00e7a", "va", "\u304a\u306f\u3088\u3046", "\u30b3\u30fc\u30d2\u30fc",
    "\U0001f389", "\u2615", "\U0001f327\ufe0f", "\U0001f408",
)  # fmt: skip
_TAGS = (
    "caturday", "photography", "FediTips", "rstats", "python", "coffee", "introduction",
    "gardening", "music", "Mastodon", "b\u00fccher", "\u732b",
)  # fmt: skip
_LINKS = (
    ("https://www.", "bbc.com/news/articles/cq6m10g7e35o"),
    ("https://", "github.com/mastodon/mastodon/releases"),
    ("https://", "en.wikipedia.org/wiki/Fediverse"),
    ("https://", "blog.joinmastodon.org/2025/09/mastodon-4.5/"),
)


def _weighted(rng: random.Random, table: tuple[tuple[Any, float], ...]) -> Any:
    value = rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]
    return json.loads(json.dumps(value))  # a fresh copy per status, as a decoder makes


def _host(url: str | None) -> str:
    return url.split("/")[2].lower() if url and "://" in url else ""


def _link(prefix: str, rest: str) -> str:
    """A link as Mastodon's sanitiser shortens it (scheme hidden, past 30 characters elided)."""
    shown, hidden = rest[:30], rest[30:]
    middle = "ellipsis" if hidden else ""
    return (
        f'<a href="{prefix}{rest}" target="_blank" rel="nofollow noopener" translate="no">'
        f'<span class="invisible">{prefix}</span><span class="{middle}">{shown}</span>'
        f'<span class="invisible">{hidden}</span></a>'
    )


def short_content(rng: random.Random, origin: str, local: bool) -> str:
    """A few words of Mastodon HTML: plain, or with a hashtag, a mention, a custom emoji, a
    line break, a second paragraph or a shortened link (in the sanitiser's markup)."""
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 8)))
    rel = 'rel="tag"' if local else 'rel="nofollow noopener" target="_blank"'
    kind = rng.random()
    if kind < 0.35:
        return f"<p>{words}</p>"
    if kind < 0.55:
        tag = rng.choice(_TAGS)
        return (
            f'<p>{words} <a href="https://{origin}/tags/{tag}" class="mention hashtag" {rel}>'
            f"#<span>{tag}</span></a></p>"
        )
    if kind < 0.70:
        user = rng.choice(("alice", "bob", "Gargron", "josi", "FediTips"))
        return (
            f'<p><span class="h-card" translate="no"><a href="https://{origin}/@{user}" '
            f'class="u-url mention">@<span>{user}</span></a></span> {words}</p>'
        )
    if kind < 0.78:
        return f"<p>{words} :blobcat: \U0001f389</p>"
    if kind < 0.86:
        more = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4)))
        return f"<p>{words}<br />{more}</p>"
    if kind < 0.92:
        more = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4)))
        return f"<p>{words}</p><p>{more}</p>"
    return f"<p>{words} {_link(*rng.choice(_LINKS))}</p>"


def _modernised(status: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of a recorded status with the keys a Mastodon 4.5-4.8 server adds, and short
    content. Every other key keeps its recorded value."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(status))
    account = out["account"]
    local = "@" not in (account.get("acct") or "")
    out["content"] = short_content(rng, _host(out.get("uri")), local)
    out["quote"] = None  # 4.4
    out["quotes_count"] = rng.choice((0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 7))  # 4.5
    out["quote_approval"] = _weighted(rng, _QUOTE_APPROVALS)  # 4.5
    out["tagged_collections"] = []  # 4.6
    home = _host(account.get("url"))
    account.setdefault("uri", f"https://{home}/users/{account.get('username')}")  # 4.2
    account.setdefault("indexable", rng.random() < 0.4)  # 4.2
    account.setdefault("hide_collections", rng.random() < 0.1)  # 4.2
    account.setdefault("group", False)
    account["avatar_description"] = ""  # 4.6
    account["header_description"] = ""
    account["show_media"] = True
    account["show_media_replies"] = True
    account["show_featured"] = True
    account["feature_approval"] = _weighted(rng, _FEATURE_APPROVALS)
    if local:  # local accounts only
        account.setdefault("noindex", False)
        account.setdefault("roles", [dict(_ROLE)] if rng.random() < 0.02 else [])
    if rng.random() < 0.005:
        account["memorial"] = True  # sent only when true
    return out


def modern_statuses(seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """(observed_on, status) for every real status, as a Mastodon 4.5-4.8 server sends it
    today: the recorded keys and values, plus `quote` (4.4), `quotes_count` and
    `quote_approval` (4.5), `tagged_collections` (4.6) and the account's `uri`, `indexable`,
    `hide_collections`, `avatar_description`, `header_description`, `show_media*`,
    `feature_approval`, and for local accounts `noindex` and `roles` (where the recording
    lacks them), `memorial` on a few; `content` replaced by a few words of HTML each.

    About 8% are quote posts (`quote: {state: accepted, quoted_status: <another of these
    statuses, in full>}`, its own quote null or shallow, and the `quote-inline` RE: fallback
    paragraph servers put in `content`), 2% quotes in another state (`quoted_status: null`).
    Deterministic by `seed`.
    """
    rng = random.Random(f"tootlake-bench/modern/{seed}")
    real = real_statuses()
    out: list[tuple[str, dict[str, Any]]] = []
    for i, (host, status) in enumerate(real):
        modern = _modernised(status, rng)
        kind = rng.random()
        if kind < 0.08:
            j = rng.randrange(len(real) - 1)
            j += j >= i
            quoted = _modernised(real[j][1], rng)
            if rng.random() < 0.2:  # a quote of a quote: servers send it shallow
                other = real[rng.randrange(len(real))][1]
                quoted["quote"] = {"state": "accepted", "quoted_status_id": str(other["id"])}
            modern["quote"] = {"state": "accepted", "quoted_status": quoted}
            target = quoted.get("url") or quoted["uri"]
            scheme, _, rest = target.partition("://")
            fallback = f'<p class="quote-inline">RE: {_link(scheme + "://", rest)}</p>'
            modern["content"] = fallback + modern["content"]
        elif kind < 0.10:
            modern["quote"] = {"state": rng.choice(_QUOTE_STATES_EMPTY), "quoted_status": None}
        out.append((host, modern))
    return out


def talk_statuses(n: int, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """n statuses of the talk's shape (`talkshape`, as the analysis data set is made:
    its observers, its ten days, 151 characters on average), without the 68,991-character
    post (one in 1.6 million: it would be a twentieth of a few thousand posts' parsing)."""
    from talkshape import generate_statuses

    return list(generate_statuses(n, seed=seed, observed_on=TALK_OBSERVERS))


# ----------------------------------------------------------------------------------------
# generated data


def _done(folder: Path) -> dict[str, Any] | None:
    marker = folder / "complete.json"
    return json.loads(marker.read_text()) if marker.exists() else None


@contextmanager
def _building(folder: Path) -> Iterator[Path | None]:
    """Yield a fresh temporary folder to build `folder` in, or None when it is built.

    Under an exclusive lock: a concurrent caller blocks until the build is renamed into place.
    """
    DATA.mkdir(parents=True, exist_ok=True)
    with open(DATA / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _done(folder) is not None:
            yield None
            return
        tmp = folder.with_name(f".{folder.name}.building")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        if _done(tmp) is None:
            raise RuntimeError(f"the build of {folder} wrote no complete.json")
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished build of an older version
        os.rename(tmp, folder)


def ingest_capture(n: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """An SSE capture of mastodon.social's public stream: n posts over one day, 1.5% edited,
    1% deleted, a heartbeat every 15 s of stream time."""
    from talkshape import write_sse

    folder = DATA / f"ingest-v{DATA_VERSION}-{n}-seed{seed}"
    with _building(folder) as tmp:
        if tmp is not None:
            log(f"  generating an SSE capture of {n:,} posts ...")
            started = time.perf_counter()
            counts = write_sse(
                tmp / "public.sse", n, seed=seed, days=1, observed_on="mastodon.social"
            )
            meta = {**counts, "seconds": round(time.perf_counter() - started, 2)}
            (tmp / "complete.json").write_text(json.dumps(meta, indent=2))
    meta = _done(folder)
    assert meta is not None
    return folder / "public.sse", meta


@dataclass
class AnalysisData:
    folder: Path
    lake: Path  # tootlake's lake
    edited_lake: Path  # the same, plus the stream's edits and deletes
    topics: Path  # the talk's Kafka Connect files: topics/mastodon-topic/partition=0/*.parquet
    language_csv: Path  # the talk's duckdb/language.csv
    meta: dict[str, Any]


def analysis_dataset(n: int, seed: int) -> AnalysisData:
    """n seed-shaped posts (the talk's shape: ten days, its user, instance and language
    counts, the 68,991-character post), written twice from the same posts:

      lake/     through tootlake's real path: `from_status()` builds each post, `LakeWriter`
                batches and writes them (posts the Recorder would skip, opted-out accounts,
                are left out of both copies);
      lake-edited/  the same files (hard links) plus the stream's edits (1.5% of posts, a
                new version each) and deletes (1%), as the Recorder makes them: the lake's
                `posts` view has versions to resolve here;
      topics/   as the talk's Kafka Connect S3 sink wrote them: 1,000 Parquet files named
                `mastodon-topic+0+<start offset, 10 digits>.parquet`, snappy, with the talk's
                Avro value fields (m_id, created_at as epoch seconds, app, url, base_url,
                language with 'unknown' for none, favourites, username, bot as 'True'/'False',
                tags as a count, characters, words, mastodon_text).

    The talk's created_at was the time its listener received the post; here it is the post's
    own time, so that both procedures count the same days.
    """
    folder = DATA / f"analysis-v{DATA_VERSION}-{n}-seed{seed}"
    with _building(folder) as tmp:
        if tmp is not None:
            log(f"  generating {n:,} posts into a lake and the talk's Kafka Connect files ...")
            started = time.perf_counter()
            gc.freeze()  # a build holds millions of objects: don't let the collector walk them
            gc.disable()
            try:
                meta = _build_analysis(_layout(tmp), n, seed)
            finally:
                gc.enable()
                gc.unfreeze()
            meta["build_seconds"] = round(time.perf_counter() - started, 1)
            (tmp / "complete.json").write_text(json.dumps(meta, indent=2))
            log(f"  built in {meta['build_seconds']} s")
    data = _layout(folder)
    data.meta = _done(folder) or {}
    return data


def _layout(folder: Path) -> AnalysisData:
    return AnalysisData(
        folder,
        folder / "lake",
        folder / "lake-edited",
        folder / "talk" / "topics" / TOPIC / "partition=0",
        folder / "talk" / "language.csv",
        {},
    )


def _build_analysis(data: AnalysisData, n: int, seed: int) -> dict[str, Any]:
    from collections import OrderedDict

    import pyarrow as pa
    import pyarrow.parquet as pq

    from talkshape import generate_events
    from tootlake.lake.maintenance import merge_posts
    from tootlake.lake.writer import LakeWriter
    from tootlake.record import Delete, from_status, skip_reason

    write_language_csv(data.language_csv)
    data.topics.mkdir(parents=True)
    sink = LakeWriter(str(data.lake))
    talk_schema = pa.schema(
        [
            ("m_id", pa.int64()),
            ("created_at", pa.int32()),
            ("created_at_str", pa.string()),
            ("app", pa.string()),
            ("url", pa.string()),
            ("base_url", pa.string()),
            ("language", pa.string()),
            ("favourites", pa.int32()),
            ("username", pa.string()),
            ("bot", pa.string()),
            ("tags", pa.int32()),
            ("characters", pa.int32()),
            ("words", pa.int32()),
            ("mastodon_text", pa.string()),
        ]
    )
    columns: dict[str, list[Any]] = {f.name: [] for f in talk_schema}
    talk_batches: list[Any] = []  # Arrow batches, cut into TALK_FILES files at the end
    kept = skipped = 0
    batch: list[Any] = []

    def keep_talk_rows() -> None:
        talk_batches.append(pa.RecordBatch.from_pydict(columns, schema=talk_schema))
        for values in columns.values():
            values.clear()

    extra: list[Any] = []  # edits and deletes, for lake-edited/
    recent: OrderedDict[tuple[str, str], str] = OrderedDict()  # as the Recorder remembers
    for event in generate_events(
        n, seed=seed, observed_on=TALK_OBSERVERS, longest=True, edits=0.015, deletes=0.01
    ):
        host = event.observed_on
        received = datetime.fromtimestamp(event.at_ms / 1000, UTC)
        if event.kind == "delete":
            assert isinstance(event.payload, str)
            uri = recent.pop((host, event.payload), None)
            extra.append(Delete(host, event.payload, uri, received))
            continue
        status = event.payload
        assert isinstance(status, dict)
        if skip_reason(status) is not None:
            skipped += event.kind == "update"
            continue
        post = from_status(status, host, ingested_at=received)
        if event.kind != "update":
            extra.append(post)
            continue
        recent[(host, post.id)] = post.uri
        if len(recent) > 200_000:
            recent.popitem(last=False)
        kept += 1
        batch.append(post)
        if len(batch) >= 20_000:
            sink.add(batch)
            batch = []
            if sink.due():
                sink.flush()
        columns["m_id"].append(int(post.id))
        columns["created_at"].append(int(post.created_at.timestamp()))
        columns["created_at_str"].append(post.created_at.strftime("%Y %m %d %H:%M:%S"))
        columns["app"].append(post.app or "")
        columns["url"].append(post.url)
        columns["base_url"].append(f"https://{post.observed_on}")
        columns["language"].append(post.language or "unknown")
        columns["favourites"].append(post.favourites_count)
        columns["username"].append(post.username)
        columns["bot"].append("True" if post.bot else "False")
        columns["tags"].append(len(post.tags))
        columns["characters"].append(post.characters)
        columns["words"].append(post.words)
        columns["mastodon_text"].append(post.text)
        if len(columns["m_id"]) >= 20_000:
            keep_talk_rows()
    sink.add(batch)
    sink.flush()
    keep_talk_rows()
    # lake-edited/: the same data files (hard links) and a copy of the Delta logs (which
    # name the files by relative path), then more commits
    for path in data.lake.rglob("*"):
        if path.is_dir():
            continue
        target = data.edited_lake / path.relative_to(data.lake)
        target.parent.mkdir(parents=True, exist_ok=True)
        if "_delta_log" in path.parts:
            shutil.copy2(path, target)
        else:
            os.link(path, target)
    edited_sink = LakeWriter(str(data.edited_lake))
    edited_sink.add(extra)
    edited_sink.flush()
    # as `replay` leaves a lake: `posts` merged (the edited lake's after its edits)
    merge_posts(str(data.lake))
    merge_posts(str(data.edited_lake))
    # Kafka Connect's flush.size: files of (nearly) the same number of records, in order.
    talk = pa.Table.from_batches(talk_batches, schema=talk_schema)
    talk_batches.clear()
    files = min(TALK_FILES, talk.num_rows)
    for i in range(files):
        offset = i * talk.num_rows // files
        piece = talk.slice(offset, (i + 1) * talk.num_rows // files - offset)
        name = f"{TOPIC}+0+{offset:010d}.parquet"
        pq.write_table(piece, data.topics / name, compression="snappy")
    lake_bytes = sum(p.stat().st_size for p in data.lake.rglob("*.parquet"))
    talk_bytes = sum(p.stat().st_size for p in data.topics.glob("*.parquet"))
    return {
        "generated": n,
        "posts": kept,
        "skipped_opted_out": skipped,
        "seed": seed,
        "observers": TALK_OBSERVERS,
        "lake_commits": sink.stats.commits,
        "edited_lake_extra": {
            "edits": edited_sink.stats.posts,
            "deletes": edited_sink.stats.deletes,
        },
        "lake_mb": round(lake_bytes / 2**20, 1),
        "talk_files": files,
        "talk_mb": round(talk_bytes / 2**20, 1),
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_language_csv(path: Path) -> None:
    """The talk's duckdb/language.csv: ISO 639-1 code and English name, with a header."""
    import csv

    import pycountry

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lang_iso", "language_name"])
        for language in pycountry.languages:
            code = getattr(language, "alpha_2", None)
            if code:
                writer.writerow([code, language.name])
