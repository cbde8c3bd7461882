"""Compaction: rewrite each date partition's small files into a few large ones, and swap them
in atomically.

What a compacted partition holds:

  posts      one row per uri: its latest version, in the `posts` view's order (VERSION_ORDER);
             posts that a delete removes are dropped. Every other copy of a post (the same uri
             seen on another instance, under that instance's id) is not lost: it becomes a row
             of `sightings`, so a delete that arrives later naming only that instance's id
             still finds the post (the `posts` view resolves deletes through sightings too).
  deletes    every delete event, unchanged: they are kept, not applied-and-forgotten, so a
             copy of a deleted post that arrives after compaction (a late timeline page, a
             replay, another instance) is still removed by the view.
  sightings  one row per (uri, instance, id), the first time seen.

So the views, and every report over them, give the same answers before and after; only
`posts_all` shrinks (older versions and duplicate copies are gone).

The swap (see `tootlake.sinks.snapshot`): new files are written under `compact@<run>-NNNN`
names, which no reader looks at until the manifest `_tootlake/manifest.json` lists them; one
atomic write of the manifest then makes them the partition and marks the files they replace as
superseded. A reader lists first and reads the manifest second, so it sees the old files or the
new ones, never both or neither. Replaced files stay on storage for `grace` seconds (readers
that opened the lake before the swap may still read them); a later run deletes them.

Crash safety: killed before the manifest write, the run leaves only unlisted `compact@` files
(invisible; the next run deletes them); killed after it, only superseded files that are already
hidden (the next run deletes them when their grace is over). One compaction runs at a time per
lake: `_tootlake/compact.lock` is created exclusively (S3: `If-None-Match`), and a lock left by
a dead process on this host, or older than `LOCK_TIMEOUT`, is taken over.

Kafka sinks name files by offset so that a replay overwrites instead of duplicating. A file
that compaction replaced and deleted is simply written again by a replay: its rows then exist
twice (in the compacted file and the replayed one), which `posts` folds away like any
duplicate; the next compaction merges them. A superseded entry matches a file by path and
version, so a file rewritten under the same name is never hidden or deleted as the old one.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tootlake.errors import ConfigError, LakeError
from tootlake.record import arrow_schema, delete_arrow_schema, sighting_arrow_schema
from tootlake.sinks.layout import DELETES, POSTS, SIGHTINGS, is_remote, join
from tootlake.sinks.snapshot import (
    COMPACTED_PREFIX,
    TOMBSTONE_SECONDS,
    Manifest,
    Snapshot,
    Superseded,
    absolute,
    create_view,
    is_compacted,
    read_snapshot,
    relative,
)
from tootlake.sinks.storage import FileInfo, Storage, create_new, file_infos, storage_for

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_TARGET_BYTES",
    "VERSION_ORDER",
    "CompactStats",
    "PartitionPlan",
    "compact",
    "parse_size",
]

log = logging.getLogger(__name__)

DEFAULT_TARGET_BYTES = 128 * 1024 * 1024
DEFAULT_GRACE = 3600.0
LOCK = ("_tootlake", "compact.lock")
LOCK_TIMEOUT = 6 * 3600.0
ROWS_PER_GROUP = 128 * 1024  # as the sink writes them

# The `posts` view's order of versions (tootlake.analysis.lake.POSTS_VIEW); a test checks that
# the two agree.
VERSION_ORDER = (
    "date_trunc('second', edited_at) DESC NULLS LAST, local DESC, "
    "edited_at DESC NULLS LAST, ingested_at DESC"
)

_SCHEMAS = {POSTS: arrow_schema, DELETES: delete_arrow_schema, SIGHTINGS: sighting_arrow_schema}


@dataclass
class PartitionPlan:
    """One partition to rewrite: its files (all of them with --date; else the small ones)."""

    table: str
    partition: str  # relative to the lake: posts/date=YYYY-MM-DD
    files: list[FileInfo]

    @property
    def bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "files": len(self.files), "bytes": self.bytes}


@dataclass
class CompactStats:
    dry_run: bool = False
    partitions: int = 0
    files_before: int = 0  # files rewritten
    files_after: int = 0  # files written
    bytes_before: int = 0
    bytes_after: int = 0
    posts_before: int = 0  # rows of posts read ...
    posts_after: int = 0  # ... and written
    sightings_added: int = 0  # copies of posts kept as sightings
    deleted_files: int = 0  # superseded files deleted from storage (this run or earlier ones)
    orphans_deleted: int = 0  # files of a compaction that crashed before its swap
    seconds: float = 0.0
    plans: list[PartitionPlan] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["plans"] = [plan.as_dict() for plan in self.plans]
        out["seconds"] = round(self.seconds, 3)
        return out


def parse_size(text: str | int) -> int:
    """Bytes of `128MB`, `1.5GiB`, `512k`, `1000` (MB = MiB here: file sizes, not disks)."""
    if isinstance(text, int):
        return text
    units = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("bikmgt")
    unit = raw[len(number) :].replace("ib", "").replace("b", "")
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ConfigError(
            f"Invalid size {text!r}: use a number of bytes or units, such as 128MB or 1GiB"
        ) from None
    if value < 1024:
        raise ConfigError(f"Invalid size {text!r}: at least 1KB")
    return int(value)


def _partition_day(partition: str) -> str | None:
    folder = partition.rsplit("/", 1)[-1]
    return folder.removeprefix("date=") if folder.startswith("date=") else None


def _plan(snapshot: Snapshot, target_bytes: int, days: set[str] | None) -> list[PartitionPlan]:
    plans = []
    for table in (POSTS, DELETES, SIGHTINGS):
        for partition, files in snapshot.partitions(table).items():
            if days is not None:
                if _partition_day(partition) not in days:
                    continue
                # A named day is rewritten whole, unless it is one compacted file already.
                if len(files) >= 2 or (files and not is_compacted(files[0].path)):
                    plans.append(PartitionPlan(table, partition, files))
                continue
            small = [f for f in files if f.size is None or f.size < target_bytes]
            if len(small) >= 2:
                plans.append(PartitionPlan(table, partition, small))
    return plans


# ------------------------------------------------------------------------------ the lock


class _Lock:
    """`_tootlake/compact.lock`: one compaction per lake at a time."""

    def __init__(self, storage: Storage, lake: str, run: str) -> None:
        self.storage = storage
        self.path = join(lake, *LOCK)
        self.run = run
        self.held = False

    def acquire(self, break_lock: bool = False) -> None:
        owner = {
            "run": self.run,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(),
        }
        data = json.dumps(owner).encode()
        if create_new(self.storage, self.path, data):
            self.held = True
            return
        holder = self._holder()
        why = self._stale(holder) if not break_lock else "--break-lock"
        if why is None:
            raise LakeError(
                f"Another compaction holds {self.path} (run {holder.get('run')}, host "
                f"{holder.get('host')}, pid {holder.get('pid')}, since "
                f"{holder.get('started_at')}). Wait for it; if it died, rerun with --break-lock."
            )
        log.warning("taking over the compaction lock %s (%s): %s", self.path, why, holder)
        self.storage.delete(self.path)
        if not create_new(self.storage, self.path, data):
            raise LakeError(f"Another compaction took {self.path} just now; try again later")
        self.held = True

    def _holder(self) -> dict[str, Any]:
        try:
            holder = json.loads(self.storage.read(self.path))
            return holder if isinstance(holder, dict) else {}
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}

    @staticmethod
    def _stale(holder: dict[str, Any]) -> str | None:
        if not holder:
            return "unreadable or gone"
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            try:
                os.kill(holder["pid"], 0)
            except ProcessLookupError:
                return f"process {holder['pid']} on this host is gone"
            except PermissionError:
                pass  # alive, someone else's
        try:
            started = datetime.fromisoformat(str(holder.get("started_at")))
        except ValueError:
            return "no start time"
        age = (datetime.now(UTC) - started).total_seconds()
        if age > LOCK_TIMEOUT:
            return f"{age:.0f} s old"
        return None

    def release(self) -> None:
        if self.held and self._holder().get("run") == self.run:
            self.storage.delete(self.path)
        self.held = False


# ------------------------------------------------------------------------------ cleanup


def _remove_orphans(storage: Storage, lake: str, snapshot: Snapshot) -> int:
    """Delete `compact@` files that no manifest ever listed (a run that died before its swap).
    Only under the lock: otherwise they could be a running compaction's new files."""
    manifest = snapshot.manifest
    removed = 0
    for infos in snapshot.listed.values():
        for info in infos:
            rel = relative(lake, info.path)
            if is_compacted(rel) and manifest.hides(rel, info) and rel not in manifest.superseded:
                storage.delete(info.path)
                removed += 1
    return removed


def _expire(storage: Storage, lake: str, manifest: Manifest, grace: float) -> int:
    """Delete superseded files whose grace is over; forget them TOMBSTONE_SECONDS later.

    Each partition is listed right before its files are deleted, and a file is deleted only
    if it is still the version that was replaced (checked by the DELETE itself on S3): one
    rewritten under the same name since (a Kafka replay) is a new file."""
    now = datetime.now(UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    deleted = 0
    changed = False
    due: dict[str, list[str]] = {}
    for rel, entry in list(manifest.superseded.items()):
        if entry.deleted_at is None:
            if (now - _parse_time(entry.at)).total_seconds() >= grace:
                due.setdefault(rel.rsplit("/", 1)[0], []).append(rel)
        elif (now - _parse_time(entry.deleted_at)).total_seconds() >= max(grace, TOMBSTONE_SECONDS):
            del manifest.superseded[rel]
            changed = True
    for partition, rels in sorted(due.items()):
        listed = {
            relative(lake, info.path): info
            for info in file_infos(storage, absolute(lake, partition))
        }
        for rel in rels:
            entry = manifest.superseded[rel]
            info = listed.get(rel)
            if info is not None and (is_compacted(rel) or entry.matches(info)):
                deleted += _delete_superseded(storage, info.path, info.version)
            entry.deleted_at = stamp
            changed = True
    if changed:
        manifest.save(storage, lake)
    return deleted


def _delete_superseded(storage: Storage, path: str, version: str | None) -> bool:
    """Delete a replaced file, only if it is still the version listed (`delete_if`)."""
    delete_if = getattr(storage, "delete_if", None)
    if delete_if is not None and version is not None:
        return bool(delete_if(path, version))
    storage.delete(path)
    return True


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ------------------------------------------------------------------------------ rewriting


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    columns = [batch.column(i).cast(f.type) for i, f in enumerate(schema)]
    return pa.Table.from_arrays(columns, schema=schema)


def _write_query(
    con: Any,
    sql: str,
    schema: pa.Schema,
    storage: Storage,
    lake: str,
    partition: str,
    run: str,
    target_bytes: int,
) -> tuple[list[str], int, int]:
    """Stream the rows of `sql` into Parquet files of about `target_bytes` each; return
    (names written, rows, bytes)."""
    names: list[str] = []
    rows = written = 0
    buffer: io.BytesIO | None = None
    writer: pq.ParquetWriter | None = None

    def finish() -> None:
        nonlocal buffer, writer, written
        assert writer is not None and buffer is not None
        writer.close()
        name = f"{COMPACTED_PREFIX}{run}-{len(names):04d}.parquet"
        data = buffer.getvalue()
        storage.write_atomic(absolute(lake, f"{partition}/{name}"), data)
        names.append(name)
        written += len(data)
        buffer = writer = None

    reader = con.sql(sql).to_arrow_reader(ROWS_PER_GROUP)
    for batch in reader:
        if batch.num_rows == 0:
            continue
        if writer is None:
            buffer = io.BytesIO()
            writer = pq.ParquetWriter(buffer, schema, compression="zstd", write_statistics=True)
        assert buffer is not None
        writer.write_table(_conform(batch, schema), row_group_size=ROWS_PER_GROUP)
        rows += batch.num_rows
        if buffer.tell() >= target_bytes:
            finish()
    if writer is not None:
        finish()
    return names, rows, written


def _rewrite(
    storage: Storage,
    lake: str,
    snapshot: Snapshot,
    plans: list[PartitionPlan],
    target_bytes: int,
    run: str,
    stats: CompactStats,
    memory_limit: str | None,
) -> tuple[list[PartitionPlan], dict[str, list[str]]]:
    """Write the compacted files of every plan (and the sightings that posts' dropped copies
    become); return the plans, sightings ones added, and partition -> new file names."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = false")
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")
        return _rewrite_on(con, storage, lake, snapshot, plans, target_bytes, run, stats)
    except (duckdb.IOException, duckdb.InvalidInputException) as exc:
        # A corrupt or truncated file (DuckDB names it): nothing is swapped in, and the files
        # this run wrote are orphans the next run removes.
        reason = str(exc).split("\n", 1)[0]
        raise LakeError(
            f"Compaction cannot read the lake ({reason}); nothing was changed. Move a corrupt "
            "file out of the lake first (`tootlake report --skip-corrupt` lists them)."
        ) from None
    finally:
        con.close()


def _rewrite_on(
    con: Any,
    storage: Storage,
    lake: str,
    snapshot: Snapshot,
    plans: list[PartitionPlan],
    target_bytes: int,
    run: str,
    stats: CompactStats,
) -> tuple[list[PartitionPlan], dict[str, list[str]]]:
    create_view(con, "all_deletes", snapshot.paths(DELETES), storage, delete_arrow_schema())
    create_view(con, "all_sightings", snapshot.paths(SIGHTINGS), storage, sighting_arrow_schema())
    # Uris the `posts` view removes. Matches by (instance, id) in posts are added partition by
    # partition below; dropping only what is surely deleted is all that correctness needs.
    con.execute(
        """
        CREATE TEMP TABLE deleted_uris AS
        SELECT uri FROM all_deletes WHERE uri IS NOT NULL
        UNION
        SELECT s.uri FROM all_sightings s
        JOIN all_deletes d ON s.observed_on = d.observed_on AND s.id = d.id
        """
    )
    con.execute(
        "CREATE TEMP TABLE delete_ids AS SELECT DISTINCT observed_on, id FROM all_deletes "
        "WHERE observed_on IS NOT NULL"
    )
    con.execute(
        "CREATE TEMP TABLE new_sightings "
        "(uri VARCHAR, observed_on VARCHAR, id VARCHAR, seen_at TIMESTAMPTZ)"
    )
    written: dict[str, list[str]] = {}
    ranked = f"""
        SELECT *, row_number() OVER (PARTITION BY uri ORDER BY {VERSION_ORDER}) AS version_rank
        FROM part WHERE uri NOT IN (SELECT uri FROM deleted_uris)
    """
    for plan in [p for p in plans if p.table == POSTS]:
        create_view(con, "part", [f.path for f in plan.files], storage, arrow_schema())
        con.execute(
            "INSERT INTO deleted_uris SELECT DISTINCT p.uri FROM part p "
            "JOIN delete_ids d ON p.observed_on = d.observed_on AND p.id = d.id"
        )
        ((before,),) = con.sql("SELECT count(*) FROM part").fetchall()
        # Every copy (instance, id) that is not the kept row stays known, as a sighting.
        con.execute(
            f"""
            INSERT INTO new_sightings
            WITH kept AS (
                SELECT uri, observed_on, id FROM ({ranked}) WHERE version_rank = 1
            )
            SELECT p.uri, p.observed_on, p.id, min(p.ingested_at)
            FROM part p
            WHERE p.observed_on IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM kept k
                WHERE k.uri = p.uri AND k.observed_on = p.observed_on AND k.id = p.id
            )
            GROUP BY p.uri, p.observed_on, p.id
            """
        )
        sql = f"""
            SELECT * EXCLUDE (version_rank) FROM ({ranked}) WHERE version_rank = 1
            ORDER BY created_at, uri
        """
        names, rows, size = _write_query(
            con, sql, arrow_schema(), storage, lake, plan.partition, run, target_bytes
        )
        written[plan.partition] = names
        stats.posts_before += int(before)
        stats.posts_after += rows
        stats.bytes_after += size

    # Sightings partitions: their small files plus the new sightings of that day.
    ((added,),) = con.sql("SELECT count(*) FROM new_sightings").fetchall()
    stats.sightings_added = int(added)
    by_partition = {p.partition: p for p in plans if p.table == SIGHTINGS}
    days = [
        str(r[0])
        for r in con.execute(
            "SELECT DISTINCT CAST(timezone('UTC', seen_at) AS DATE) FROM new_sightings ORDER BY 1"
        ).fetchall()
    ]
    for day in days:
        partition = f"{SIGHTINGS}/date={day}"
        if partition not in by_partition:
            plan = PartitionPlan(SIGHTINGS, partition, [])
            plans.append(plan)
            by_partition[partition] = plan
    for plan in [p for p in plans if p.table == DELETES]:
        create_view(con, "part", [f.path for f in plan.files], storage, delete_arrow_schema())
        names, _, size = _write_query(
            con,
            "SELECT * FROM part ORDER BY deleted_at, observed_on, id",
            delete_arrow_schema(),
            storage, lake, plan.partition, run, target_bytes,
        )  # fmt: skip
        written[plan.partition] = names
        stats.bytes_after += size
    for plan in by_partition.values():
        plan_day = _partition_day(plan.partition)
        of_day = "false"
        if plan_day:
            of_day = f"CAST(timezone('UTC', seen_at) AS DATE) = DATE '{plan_day}'"
        create_view(con, "part", [f.path for f in plan.files], storage, sighting_arrow_schema())
        sql = f"""
            SELECT uri, observed_on, id, min(seen_at) AS seen_at FROM (
                SELECT uri, observed_on, id, seen_at FROM part
                UNION ALL
                SELECT uri, observed_on, id, seen_at FROM new_sightings WHERE {of_day}
            )
            GROUP BY uri, observed_on, id
            ORDER BY seen_at, uri
        """
        names, _, size = _write_query(
            con, sql, sighting_arrow_schema(), storage, lake, plan.partition, run, target_bytes
        )
        written[plan.partition] = names
        stats.bytes_after += size
    return plans, written


def _unique_posts(
    storage: Storage,
    lake: str,
    manifest: Manifest,
    plans: Sequence[PartitionPlan],
    written: dict[str, list[str]],
) -> bool:
    """Whether the live compacted posts files after this swap hold every uri at most once
    (`Manifest.unique_posts`). A new file holds its partition's posts once each, so a uri can
    repeat only across partitions (copies of a post given different creation days, by a
    server that lies). When the lake was unique before, only the new files are checked
    against the rest: the cost follows what was rewritten, not the size of the lake."""
    import duckdb

    new = [
        absolute(lake, f"{partition}/{name}")
        for partition, names in written.items()
        if partition.split("/", 1)[0] == POSTS
        for name in names
    ]
    if not new:
        return manifest.unique_posts
    replaced = {relative(lake, f.path) for plan in plans for f in plan.files}
    kept = [absolute(lake, rel) for rel in manifest.live(POSTS) if rel not in replaced]
    con = duckdb.connect()
    try:
        create_view(con, "new_posts", new, storage, arrow_schema())
        create_view(con, "kept_posts", kept, storage, arrow_schema())
        if manifest.unique_posts or not kept:
            sql = """
                SELECT (SELECT count(*) FROM (
                            SELECT uri FROM new_posts GROUP BY uri HAVING count(*) > 1))
                     + (SELECT count(*) FROM (SELECT DISTINCT uri FROM new_posts) n
                        SEMI JOIN kept_posts k ON n.uri = k.uri)
            """
        else:  # not known before: check everything once
            sql = """
                SELECT count(*) FROM (
                    SELECT uri FROM (
                        SELECT uri FROM new_posts UNION ALL SELECT uri FROM kept_posts)
                    GROUP BY uri HAVING count(*) > 1)
            """
        ((repeated,),) = con.sql(sql).fetchall()
    finally:
        con.close()
    if repeated:
        log.info("%s: %d posts are in more than one compacted file", lake, repeated)
    return not repeated


def _commit(
    storage: Storage,
    lake: str,
    manifest: Manifest,
    plans: Sequence[PartitionPlan],
    written: dict[str, list[str]],
    unique_posts: bool,
) -> None:
    """The swap: one atomic write of the manifest."""
    current = Manifest.load(storage, lake)
    if current.generation != manifest.generation:
        raise LakeError(
            f"The lake's manifest changed during compaction (generation {manifest.generation} "
            f"-> {current.generation}: another compaction?); nothing was swapped. Rerun."
        )
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for plan in plans:
        replaced = set()
        for info in plan.files:
            rel = relative(lake, info.path)
            manifest.superseded[rel] = Superseded(info.size, info.version, at)
            if is_compacted(rel):
                replaced.add(rel.rsplit("/", 1)[-1])
        live = set(manifest.compacted.get(plan.partition, ())) - replaced
        manifest.compacted[plan.partition] = sorted(live | set(written.get(plan.partition, ())))
    manifest.unique_posts = unique_posts
    manifest.save(storage, lake)


# ------------------------------------------------------------------------------ compact()


def _days(dates: Iterable[str | date] | None) -> set[str] | None:
    if dates is None:
        return None
    days = set()
    for value in dates:
        text = value.isoformat() if isinstance(value, date) else str(value)
        try:
            days.add(date.fromisoformat(text).isoformat())
        except ValueError:
            raise ConfigError(f"Invalid date {text!r}: use YYYY-MM-DD") from None
    return days or None


def compact(
    lake: str,
    *,
    target_bytes: int = DEFAULT_TARGET_BYTES,
    dates: Iterable[str | date] | None = None,
    dry_run: bool = False,
    grace: float = DEFAULT_GRACE,
    break_lock: bool = False,
    storage: Storage | None = None,
    memory_limit: str | None = None,
) -> CompactStats:
    """Compact the lake's date partitions (all with two or more files smaller than
    `target_bytes`, or every file of the given `dates`) and swap the new files in atomically.

    Files replaced stay on storage for `grace` seconds after the swap, for readers that opened
    the lake before it; this run, or a later one, deletes them (`grace=0`: this run).
    """
    started = time.monotonic()
    if target_bytes < 1024:
        raise ConfigError(f"Invalid target size {target_bytes}: at least 1024 bytes")
    days = _days(dates)
    if not is_remote(lake) and not os.path.isdir(lake.removeprefix("file://")):
        raise LakeError(f"No lake at {lake}: the folder does not exist")
    storage = storage or storage_for(lake)
    stats = CompactStats(dry_run=dry_run)
    if dry_run:
        snapshot = read_snapshot(storage, lake)
        stats.plans = _plan(snapshot, target_bytes, days)
        _count(stats)
        stats.seconds = time.monotonic() - started
        return stats
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    lock = _Lock(storage, lake, run)
    lock.acquire(break_lock)
    try:
        snapshot = read_snapshot(storage, lake)
        stats.orphans_deleted = _remove_orphans(storage, lake, snapshot)
        stats.deleted_files = _expire(storage, lake, snapshot.manifest, grace)
        snapshot = read_snapshot(storage, lake)  # the manifest may have changed
        plans = _plan(snapshot, target_bytes, days)
        if plans:
            plans, written = _rewrite(
                storage, lake, snapshot, plans, target_bytes, run, stats, memory_limit
            )
            stats.plans = plans
            _count(stats)
            stats.files_after = sum(map(len, written.values()))
            unique = _unique_posts(storage, lake, snapshot.manifest, plans, written)
            _commit(storage, lake, snapshot.manifest, plans, written, unique)
            log.info("compacted %s: %s", lake, stats.as_dict())
            if grace <= 0:
                stats.deleted_files += _expire(storage, lake, Manifest.load(storage, lake), grace)
    finally:
        lock.release()
    stats.seconds = time.monotonic() - started
    return stats


def _count(stats: CompactStats) -> None:
    stats.partitions = len(stats.plans)
    stats.files_before = sum(len(p.files) for p in stats.plans)
    stats.bytes_before = sum(p.bytes for p in stats.plans)
