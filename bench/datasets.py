"""The benchmarks' inputs: real recorded statuses, and generated ones cached in bench/data/.

    real_statuses()               every status in shared/real-data, once per version
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

DATA_VERSION = 2
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
    from tootlake.workload import write_sse

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

      lake/     through tootlake's real path: `from_status()` builds each post, `ParquetSink`
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

    from tootlake.record import Delete, from_status, skip_reason
    from tootlake.sinks.parquet import ParquetSink
    from tootlake.workload import generate_events

    write_language_csv(data.language_csv)
    data.topics.mkdir(parents=True)
    sink = ParquetSink(str(data.lake))
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
    for path in data.lake.rglob("*.parquet"):  # lake-edited/: the same files, and more
        target = data.edited_lake / path.relative_to(data.lake)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target)
    edited_sink = ParquetSink(str(data.edited_lake))
    edited_sink.add(extra)
    edited_sink.flush()
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
        "lake_files": sink.stats.files,
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
