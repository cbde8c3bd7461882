"""Keeping the lake's tables in shape: the `posts` merge and `tootlake compact`.

`merge_posts()` brings the Delta table `posts` (one row per uri, its latest version, deleted
posts absent) up to date with the source tables by one Delta MERGE: the rows of `posts_all`
it does not cover yet are resolved with the merged rows of the same uris in DuckDB (the
version order of `tootlake.lake.reader.VERSION_ORDER`), winners are upserted, and merged
posts that a delete now removes are deleted. The commit records the versions of `posts_all`,
`deletes` and `sightings` it covers as app transactions, which readers use to find the tail
still to resolve (docs/lake.md).

`compact()` is Delta maintenance: merge, write the uri into delete events that named only a
local id (so a copy of a deleted post that turns up later is still removed), remove deleted
posts physically from `posts_all`, `sightings` and `languages`, with `retain_days` remove
what is older (`retain()`: posts by created_at, sightings and rejects by their own time, the
detected languages of the posts removed), OPTIMIZE (bin-packing) every table, checkpoint the
logs, and VACUUM files no version younger than `retain_files` needs. Each compaction appends
a row to the `audit` table.

One merging writer at a time: delta-rs does not retry a MERGE that lost a race, so it is run
again on the fresh table (`MERGE_ATTEMPTS`); appends by sink workers meanwhile are fine.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from tootlake.errors import ConfigError, LakeError
from tootlake.lake import tables
from tootlake.lake.audit import AuditEntry, record_run
from tootlake.lake.checks import CHECKS_SCHEMA
from tootlake.lake.enrich import LANGUAGES_SCHEMA
from tootlake.lake.layout import (
    CHECKS,
    DELETES,
    LANGUAGES,
    POSTS,
    POSTS_ALL,
    REJECTS,
    SIGHTINGS,
)
from tootlake.lake.reader import (
    COVERS,
    DELETED_URIS,
    VERSION_ORDER,
    LakeFiles,
    check_lake,
    create_view,
    read_files,
    set_memory_limit,
)
from tootlake.lake.storage import storage_for

__all__ = [
    "DEFAULT_RETAIN_FILES",
    "CompactStats",
    "MergeStats",
    "RetentionStats",
    "compact",
    "merge_posts",
    "parse_duration",
    "retain",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_RETAIN_FILES = timedelta(days=7)
MERGE_ATTEMPTS = 5
# Winners committed per commit (Arrow bytes): what a merge holds in memory beside DuckDB.
MERGE_CHUNK_BYTES = 32 * 1024 * 1024
MERGE_BATCH_ROWS = 32 * 1024
# Compressed bytes of the tail ranked by one query (the 1.6M-post tail, 176 MB, ranks in
# DuckDB's default merge memory, spilling).
MERGE_SLICE_BYTES = 256 * 1024 * 1024
DEFAULT_MERGE_MEMORY = "256MB"
# A merge that made this many commits optimizes and checkpoints `posts` (`_tidy_posts`).
CHECKPOINT_AFTER_COMMITS = 5
# Bins OPTIMIZE rewrites at once: delta-rs' default is a task per core; two measured as fast
# as more here, and each holds a bin's row groups in memory.
OPTIMIZE_TASKS = 2
# Files no commit lists (a write that failed or was killed before its commit) are removed by
# VACUUM once this old, whatever --retain-files says: a younger one may be a running sink's,
# written and about to be committed.
ORPHAN_HOURS = 24


@dataclass
class MergeStats:
    """What one `merge_posts()` did."""

    tail_rows: int = 0  # rows of posts_all read that `posts` did not cover
    upserted: int = 0  # uris inserted or updated
    deleted: int = 0  # merged posts removed by a delete
    commits: int = 0
    covers: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CompactStats:
    """What one `compact()` did."""

    merge: MergeStats = field(default_factory=MergeStats)
    deletes_resolved: int = 0  # delete events given the uri they remove
    posts_removed: int = 0  # rows of posts_all removed because their post was deleted
    sightings_removed: int = 0
    languages_removed: int = 0  # rows `tootlake enrich` wrote for posts since deleted
    checks_removed: int = 0  # rows `tootlake revalidate` wrote for posts no longer in the lake
    files_before: dict[str, int] = field(default_factory=dict)
    files_after: dict[str, int] = field(default_factory=dict)
    files_vacuumed: int = 0
    retention: RetentionStats | None = None  # with `retain_days`: what it removed
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RetentionStats:
    """What one `retain()` removed: rows per table older than `cutoff` (UTC)."""

    cutoff: str = ""
    removed: dict[str, int] = field(default_factory=dict)  # table -> rows removed

    @property
    def total(self) -> int:
        return sum(self.removed.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


MAX_DURATION = timedelta(days=36_525)  # a century


def parse_duration(text: str | float | timedelta) -> timedelta:
    """`7d`, `12h`, `30m`, `90s` or a number of seconds, as a timedelta."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    raw = text.strip().lower()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    unit = raw[-1:] if raw[-1:] in units else "s"
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):  # (also "inf" and "nan", which float() reads)
        raise ConfigError(
            f"Invalid duration {text!r}: use a number with d, h, m or s, such as 7d or 12h"
        )
    if seconds < 0:
        raise ConfigError(f"Invalid duration {text!r}: it cannot be negative")
    if seconds > MAX_DURATION.total_seconds():  # (a timedelta or a date of more overflows)
        raise ConfigError(f"Invalid duration {text!r}: at most {MAX_DURATION.days:,}d")
    return timedelta(seconds=seconds)


# ----------------------------------------------------------------------------------------
# corrupt files


def _naming_corrupt_files(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A decorator: `run(lake, ...)`, with a failure that comes from a corrupt Parquet file
    of the lake (DuckDB reading the tail, delta-rs rewriting a file) turned into one
    LakeError ("Cannot {what} LAKE: corrupt Parquet file ..."); other failures pass through
    as they are."""
    return functools.partial(_with_corrupt_files_named, what)


def _with_corrupt_files_named(what: str, run: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(run)
    def wrapper(lake: str, *args: Any, **kwargs: Any) -> T:
        try:
            return run(lake, *args, **kwargs)
        except Exception as exc:
            found = _corrupt_files(lake, exc)
            if not found:
                raise
            paths = list(found)
            more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
            raise LakeError(
                f"Cannot {what} {lake}: corrupt Parquet file {paths[0]} ({found[paths[0]]})"
                f"{more}: move it out of the lake (`tootlake sql --skip-corrupt` reads the "
                "rest meanwhile)"
            ) from exc

    return wrapper


# Errors that a damaged file gives: DuckDB's, delta-rs' (its Parquet reader, or its object
# store asked for a footer beyond the end of a truncated file).
_DAMAGE_WORDS = ("parquet error", "magic bytes", "range was invalid", "corrupt", "decompress")


def _corrupt_files(lake: str, exc: BaseException) -> dict[str, str]:
    """The live files of the lake that `exc` shows to be damaged, each with what is wrong:
    those the error names are read whole, and only when none is, every footer (once, on a
    failure that reads like damage)."""
    import duckdb

    from tootlake.lake.reader import _damage

    text = str(exc).lower()
    if not (
        isinstance(exc, duckdb.InvalidInputException | duckdb.IOException)
        or any(word in text for word in _DAMAGE_WORDS)
    ):
        return {}
    try:
        paths = read_files(lake).all_paths()
        storage = storage_for(lake)
    except Exception:  # the lake cannot be listed: that is the error to show
        return {}
    message = str(exc)
    named = [p for p in paths if p.lstrip("/") in message or p.removeprefix("s3://") in message]
    found = {p: why for p in named if (why := _damage(storage, p, whole=True))}
    if not found:
        found = {p: why for p in paths if (why := _damage(storage, p, whole=False))}
    return found


# ----------------------------------------------------------------------------------------
# the posts merge


@_naming_corrupt_files("merge the posts table of")
def merge_posts(lake: str, *, memory_limit: str | None = None) -> MergeStats:
    """Bring `posts` up to date with the source tables (see the module docstring). Safe to
    run at any time and to rerun; with nothing new it commits nothing."""
    started = time.monotonic()
    for attempt in range(MERGE_ATTEMPTS):
        try:
            stats = _merge_once(lake, memory_limit=memory_limit)
            if stats.commits >= CHECKPOINT_AFTER_COMMITS:
                _tidy_posts(lake)
            stats.seconds = time.monotonic() - started
            return stats
        except _Conflict as exc:
            if attempt == MERGE_ATTEMPTS - 1:
                raise LakeError(
                    f"Cannot merge posts in {lake}: another writer changed the table "
                    f"{MERGE_ATTEMPTS} times in a row ({exc}); run one merge at a time"
                ) from exc
            log.info("posts merge lost a race with another writer; merging again")
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _tidy_posts(lake: str) -> None:
    """After a big merge (a migration, a replayed archive): OPTIMIZE `posts` (its chunks
    left a file per chunk and day: 258 on the 1.6M-post lake, each footer read when a reader
    opens it) and checkpoint its log, so that readers replay one Parquet file instead of
    many commits. A failure only costs readers that time: logged, not raised."""
    try:
        _retrying(
            lake,
            POSTS,
            "optimize",
            lambda dt: dt.optimize.compact(
                target_size=tables.TARGET_FILE_BYTES,
                writer_properties=tables.writer_properties(),
                commit_properties=_commit(tables.commit_metadata(operation="merge optimize")),
                max_concurrent_tasks=OPTIMIZE_TASKS,
            ),
        )
        _retrying(lake, POSTS, "checkpoint", lambda dt: dt.create_checkpoint())
    except LakeError as exc:  # the merge itself is committed
        log.warning("%s (readers of %s open it more slowly until `tootlake compact`)", exc, lake)


class _Conflict(Exception):
    pass


def _is_conflict(exc: BaseException) -> bool:
    from deltalake.exceptions import CommitFailedError

    return isinstance(exc, CommitFailedError)


def _merge_once(lake: str, *, memory_limit: str | None) -> MergeStats:
    check_lake(lake)
    files = read_files(lake)
    covers = {table: files.tables[table].version for table in COVERS}
    target = {table: -1 if version is None else version for table, version in covers.items()}
    stats = MergeStats(covers=target)
    if target == files.covers:
        return stats  # nothing new since the last merge
    con = _connect(lake, files, memory_limit)
    try:
        (tail,) = con.execute("SELECT count(*) FROM _posts_fresh").fetchall()[0]
        stats.tail_rows = int(tail)
        con.execute(f"CREATE TEMP TABLE _deleted AS {DELETED_URIS}")
        marks = [(COVERS[table], version) for table, version in target.items()]
        metadata = tables.commit_metadata(
            operation="merge posts", covers=",".join(f"{t}@{v}" for t, v in target.items())
        )
        metadata["userMetadata"] = f"tootlake posts merge covering {metadata['tootlake.covers']}"
        posts = _Snapshot(lake, files.tables[POSTS].version)
        if posts.dt is None:
            _create_posts(posts, con, files, stats, marks, metadata)
        else:
            _merge_into_posts(posts, con, files, stats, marks, metadata)
    finally:
        con.close()
    return stats


def _connect(lake: str, files: LakeFiles, memory_limit: str | None) -> Any:
    from tootlake.lake.reader import SIGHTINGS_VIEW, _configure_remote, connect

    con = connect()
    con.execute("SET TimeZone = 'UTC'")
    # A merge runs inside collectors and sinks: bounded memory, spilling beyond it (the window
    # over the tail holds whole rows), in order only where a query says so.
    set_memory_limit(con, memory_limit or DEFAULT_MERGE_MEMORY)
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET temp_directory = ?", [tempfile.gettempdir() + "/tootlake-duckdb"])
    if tables.storage_options(lake) is not None:
        _configure_remote(con, lake)
    storage = storage_for(lake)
    views = {POSTS_ALL: "posts_all", DELETES: "deletes", SIGHTINGS: "sightings_all"}
    for table, view in views.items():
        create_view(con, view, files.tables[table], storage, tables.table_schema(table))
    languages = LANGUAGES_SCHEMA.append(tables.DATE_FIELD)
    create_view(con, LANGUAGES, files.tables[LANGUAGES], storage, languages)
    con.execute(SIGHTINGS_VIEW)
    schema = tables.table_schema(POSTS_ALL)
    create_view(con, "_posts_merged", files.tables[POSTS], storage, schema)
    create_view(con, "_posts_fresh", files.fresh, storage, schema)
    return con


# Winners among the tail's rows and the merged rows of the same uris; on a tie the merged row
# wins (so an unchanged post is not rewritten), and only winners from the tail are upserted.
# `known`: `posts` already holds the uri (an edit, a copy from another instance), so the
# winner is an update; the others are new posts, plain appends. Only the uris with something
# to rank (`_contested`: more than one row in the tail, or a merged row) go through the window
# over whole rows; every other tail row wins as it is. Most uris are seen once: a first merge
# of 100,000 posts took 0.22 s with all of them in the window, 0.13 s so. (A tail whose uris
# are all contested pays about a quarter more for the split.)
_WINNERS = f"""
WITH _hits AS MATERIALIZED (  -- (read once: `posts` may be far larger than the tail)
    SELECT * FROM _posts_merged WHERE uri IN (SELECT uri FROM _posts_fresh WHERE {{slice}})
),
_contested AS (
    SELECT uri FROM _posts_fresh WHERE {{slice}} AND uri IS NOT NULL
    GROUP BY uri HAVING count(*) > 1
    UNION
    SELECT uri FROM _hits
)
SELECT *, false AS known FROM _posts_fresh
WHERE {{slice}} AND uri IS NOT NULL  -- (another tool's row without uri is no post)
    AND uri NOT IN (SELECT uri FROM _contested)
    AND uri NOT IN (SELECT uri FROM _deleted)
UNION ALL
SELECT * EXCLUDE (version_rank, merged) FROM (
    SELECT *,
        row_number() OVER (PARTITION BY uri ORDER BY {VERSION_ORDER}, merged DESC)
            AS version_rank,
        bool_or(merged) OVER (PARTITION BY uri) AS known
    FROM (
        SELECT *, false AS merged FROM _posts_fresh
        WHERE {{slice}} AND uri IN (SELECT uri FROM _contested)
        UNION ALL
        SELECT *, true AS merged FROM _hits
    )
    WHERE uri NOT IN (SELECT uri FROM _deleted)
)
WHERE version_rank = 1 AND NOT merged
"""


def _slices(files: LakeFiles) -> int:
    return max(1, -(-files.fresh.bytes // MERGE_SLICE_BYTES))


@dataclass
class _Chunk:
    rows: pa.Table
    known: bool  # every uri is in `posts` already (a MERGE), or none is (an append)


def _winner_chunks(con: Any, schema: pa.Schema, slices: int) -> Iterator[_Chunk]:
    """The winners, streamed from DuckDB in chunks of about MERGE_CHUNK_BYTES, each all new
    uris or all known ones. The ranking spills beyond DuckDB's memory limit; a tail too big
    for that is ranked in `slices` (by uri hash), each filtering the whole tail: few, as
    every slice reads it all again (8 MB slices made a 16M-post merge quadratic, 1,447 s).
    Rows `_conform` leaves out are said once, with their number, when the winners are all
    streamed (a hostile tail said it once per batch: a line per 32,768 rows)."""
    pending: dict[bool, list[pa.RecordBatch]] = {False: [], True: []}
    size = {False: 0, True: 0}
    dropped = 0
    batches = (
        batch
        for k in range(slices)
        for batch in con.sql(
            _WINNERS.format(slice=f"hash(uri) % {slices} = {k}" if slices > 1 else "true")
        ).to_arrow_reader(MERGE_BATCH_ROWS)
    )
    for batch in batches:
        known = batch.column("known")
        rows = batch.drop_columns(["known"])
        some_known = pc.any(known).as_py()
        if not some_known or pc.all(known).as_py():  # (no filtering: a first merge's batches)
            parts: Any = ((bool(some_known), rows),)
        else:
            parts = ((False, rows.filter(pc.invert(known))), (True, rows.filter(known)))
        for flag, part in parts:
            if not part.num_rows:
                continue
            conformed, lacking = _conform(part, schema)
            dropped += lacking
            if not conformed.num_rows:
                continue
            pending[flag].append(conformed)
            size[flag] += part.nbytes
            if size[flag] >= MERGE_CHUNK_BYTES:
                yield _Chunk(pa.Table.from_batches(pending[flag], schema=schema), flag)
                pending[flag], size[flag] = [], 0
    for flag in (False, True):
        if pending[flag]:
            yield _Chunk(pa.Table.from_batches(pending[flag], schema=schema), flag)
    if dropped:
        log.warning(
            "posts merge: %d rows of posts_all lack a uri, id, created_at, ingested_at or "
            "date (written by another tool?): not merged into posts",
            dropped,
        )


# What names a post and dates it: a row of another tool's `posts_all` without one is no post.
_ESSENTIAL = ("uri", "id", "created_at", "ingested_at", "date")


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> tuple[pa.RecordBatch, int]:
    """DuckDB's batch in the table's exact schema (list item names, nullability), and the
    number of its rows left out.

    tootlake writes no NULL where `posts` wants a value, but another tool's `posts_all` may
    hold them, and one such row made every merge fail. A row without an `_ESSENTIAL` value
    is left out (counted here, said once per merge by `_winner_chunks`); another missing
    value gets its column's empty value (0, "", false, [])."""
    arrays = [batch.column(f.name).cast(f.type) for f in schema]
    keep = None
    for i, f in enumerate(schema):
        if f.nullable or not arrays[i].null_count:
            continue
        if f.name in _ESSENTIAL:
            valid = pc.is_valid(arrays[i])
            keep = valid if keep is None else pc.and_(keep, valid)
        else:
            arrays[i] = pc.if_else(pc.is_valid(arrays[i]), arrays[i], _filler(f.type, len(batch)))
    conformed = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if keep is None:
        return conformed, 0
    conformed = conformed.filter(keep)
    return conformed, len(batch) - conformed.num_rows


class _Snapshot:
    """`posts` as this merge read it, then as its own commits left it. Every commit is made
    on it and carries the MERGING mark, so that another merge's commit meanwhile fails this
    one (_Conflict: merged again) instead of landing beside it: two merges' appends of the
    same new uris both committed, and `posts` held them twice. None: no table yet."""

    def __init__(self, lake: str, version: int | None) -> None:
        self.lake = lake
        self.dt: Any = None if version is None else tables.load(lake, POSTS, version)

    def marks(self, marks: list[tuple[str, int]]) -> list[tuple[str, int]]:
        return [*marks, (MERGING, time.time_ns() // 1000)]


MERGING = "tootlake.posts.merge"  # the app id of every merge commit (`_Snapshot`)


def _create_posts(
    posts: _Snapshot,
    con: Any,
    files: LakeFiles,
    stats: MergeStats,
    marks: list[tuple[str, int]],
    metadata: dict[str, str],
) -> None:
    """The first merge: `posts` does not exist; the winners of the whole tail become it, a
    chunk per commit (a lake being migrated may hold millions of posts). Chunks hold
    disjoint uris, so each is a plain append; the last one records what is covered."""
    schema = tables.table_schema(POSTS)
    held: pa.Table | None = None
    for chunk in _winner_chunks(con, schema, _slices(files)):
        if held is not None:
            _append_posts(posts, held, [], metadata)
            stats.commits += 1
        held = chunk.rows
        stats.upserted += chunk.rows.num_rows
    _append_posts(posts, schema.empty_table() if held is None else held, marks, metadata)
    stats.commits += 1


def _append_posts(
    posts: _Snapshot, rows: pa.Table, marks: list[tuple[str, int]], metadata: dict[str, str]
) -> None:
    import deltalake

    lake = posts.lake
    try:
        deltalake.write_deltalake(
            tables.table_uri(lake, POSTS) if posts.dt is None else posts.dt,
            rows,
            mode="error" if posts.dt is None else "append",  # (creating: none made meanwhile)
            partition_by=["date"],
            schema_mode="merge",
            storage_options=tables.storage_options(lake),
            target_file_size=tables.TARGET_FILE_BYTES,
            writer_properties=tables.writer_properties(),
            commit_properties=deltalake.CommitProperties(
                app_transactions=[
                    deltalake.Transaction(app_id=a, version=v) for a, v in posts.marks(marks)
                ],
                custom_metadata=metadata,
            ),
        )
    except Exception as exc:
        if _is_conflict(exc) or (posts.dt is None and tables.load(lake, POSTS) is not None):
            raise _Conflict(str(exc)) from exc
        raise LakeError(
            f"Cannot write the posts table of {lake}: {tables.error_text(exc)}"
        ) from exc
    if posts.dt is None:
        posts.dt = tables.load(lake, POSTS, 0)  # the table this merge made


def _merge_into_posts(
    posts: _Snapshot,
    con: Any,
    files: LakeFiles,
    stats: MergeStats,
    marks: list[tuple[str, int]],
    metadata: dict[str, str],
) -> None:
    """Append the tail's new posts, upsert the winners of uris `posts` holds already (MERGE)
    and delete newly deleted posts, a chunk per commit; only the last commit records what is
    covered (a reader meanwhile sees a longer tail, which it resolves the same)."""
    schema = tables.table_schema(POSTS)
    gone = con.sql(
        "SELECT DISTINCT uri FROM _posts_merged WHERE uri IN (SELECT uri FROM _deleted)"
    ).to_arrow_table()
    held: _Chunk | None = None
    for chunk in _winner_chunks(con, schema, _slices(files)):
        if held is not None:
            _commit_chunk(posts, held, schema, [], metadata)
            stats.commits += 1
        held = chunk
        stats.upserted += chunk.rows.num_rows
    if gone.num_rows:
        # The deletes ride in the last MERGE, with the held chunk when it is one.
        source = _deleted_rows(gone, schema)
        if held is not None and held.known:
            source = pa.concat_tables([_with_flag(held.rows, False), source])
        elif held is not None:
            _commit_chunk(posts, held, schema, [], metadata)
            stats.commits += 1
        _merge(posts, source, schema, marks, metadata)
    else:
        _commit_chunk(posts, held or _Chunk(schema.empty_table(), False), schema, marks, metadata)
    stats.commits += 1
    stats.deleted = gone.num_rows


def _commit_chunk(
    posts: _Snapshot,
    chunk: _Chunk,
    schema: pa.Schema,
    marks: list[tuple[str, int]],
    metadata: dict[str, str],
) -> None:
    if chunk.known:
        _merge(posts, _with_flag(chunk.rows, False), schema, marks, metadata)
    else:
        _append_posts(posts, chunk.rows, marks, metadata)


_FLAG = "tootlake_deleted"


def _with_flag(data: pa.Table, deleted: bool) -> pa.Table:
    return data.append_column(_FLAG, pa.array([deleted] * data.num_rows, pa.bool_()))


def _deleted_rows(uris: pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows that only carry a uri to delete (every other column null or a filler)."""
    n = uris.num_rows
    columns = []
    for f in schema:
        if f.name == "uri":
            columns.append(uris.column("uri").cast(f.type))
        elif f.nullable:
            columns.append(pa.nulls(n, f.type))
        else:
            columns.append(_filler(f.type, n))
    return _with_flag(pa.Table.from_arrays(columns, schema=schema), True)


def _filler(arrow_type: pa.DataType, n: int) -> pa.Array:
    import datetime as dt

    if pa.types.is_list(arrow_type):
        return pa.array([[]] * n, arrow_type)
    if pa.types.is_string(arrow_type):
        return pa.array([""] * n, arrow_type)
    if pa.types.is_boolean(arrow_type):
        return pa.array([False] * n, arrow_type)
    if pa.types.is_integer(arrow_type):
        return pa.array([0] * n, arrow_type)
    if pa.types.is_timestamp(arrow_type):
        return pa.array([dt.datetime(1970, 1, 1, tzinfo=dt.UTC)] * n, arrow_type)
    if pa.types.is_date(arrow_type):
        return pa.array([dt.date(1970, 1, 1)] * n, arrow_type)
    raise TypeError(f"no filler for {arrow_type}")


def _merge(
    posts: _Snapshot,
    source: pa.Table,
    schema: pa.Schema,
    marks: list[tuple[str, int]],
    metadata: dict[str, str],
) -> None:
    import deltalake

    lake, dt = posts.lake, posts.dt
    columns = {f"`{f.name}`": f"s.`{f.name}`" for f in schema}
    try:
        (
            dt.merge(
                source,
                predicate="t.uri = s.uri",
                source_alias="s",
                target_alias="t",
                writer_properties=tables.writer_properties(),
                commit_properties=deltalake.CommitProperties(
                    app_transactions=[
                        deltalake.Transaction(app_id=a, version=v) for a, v in posts.marks(marks)
                    ],
                    custom_metadata=metadata,
                ),
            )
            .when_matched_delete(predicate=f"s.{_FLAG}")
            .when_matched_update(updates=columns, predicate=f"NOT s.{_FLAG}")
            .when_not_matched_insert(updates=columns, predicate=f"NOT s.{_FLAG}")
            .execute()
        )
    except Exception as exc:
        if _is_conflict(exc):
            raise _Conflict(str(exc)) from exc
        raise LakeError(
            f"Cannot merge into the posts table of {lake}: {tables.error_text(exc)}"
        ) from exc


# ----------------------------------------------------------------------------------------
# compaction


@_naming_corrupt_files("compact")
def compact(
    lake: str,
    *,
    retain_files: timedelta | str | float = DEFAULT_RETAIN_FILES,
    target_bytes: int = tables.TARGET_FILE_BYTES,
    memory_limit: str | None = None,
    retain_days: float | None = None,
    on_step: Callable[[str], None] | None = None,
) -> CompactStats:
    """Delta maintenance of every table (see the module docstring); safe to rerun, and a
    crash at any step leaves every table at a committed version. `on_step` is told each
    step as it starts ("OPTIMIZE posts_all"), for a progress line. `retain_days`: also
    remove posts, sightings and rejects older than that many days, and the languages of the
    posts removed (`retain`); VACUUM then
    deletes their files once older than `retain_files`."""
    started = time.monotonic()

    def step(name: str) -> None:
        log.debug("compact %s: %s", lake, name)
        if on_step is not None:
            on_step(name)

    started_at = datetime.now(UTC)
    retain = parse_duration(retain_files)
    check_lake(lake)
    stats = CompactStats()
    run = secrets.token_hex(4)
    metadata = tables.commit_metadata(operation="compact", run=run)
    stats.files_before = _file_counts(lake)
    step("merging posts")
    stats.merge = merge_posts(lake, memory_limit=memory_limit)
    merged_at = {t: v for t, v in stats.merge.covers.items()}
    step("removing deleted posts")
    _resolve_and_remove_deleted(lake, stats, metadata, memory_limit)
    stats.checks_removed = _remove_orphan_checks(lake, metadata)
    if retain_days is not None:
        step(f"removing what is older than {retain_days:g} days")
        stats.retention = _retain(lake, retain_days, metadata)
    for table in MAINTAINED:
        step(f"OPTIMIZE {table}")
        _retrying(
            lake,
            table,
            "optimize",
            lambda dt: dt.optimize.compact(
                target_size=target_bytes,
                writer_properties=tables.writer_properties(),
                commit_properties=_commit(metadata),
                max_concurrent_tasks=OPTIMIZE_TASKS,
            ),
        )
    # delta-rs takes whole hours: round up, so that a file is never deleted before its time
    # (30m rounded down was 0: every replaced file deleted at once, open readers broken)
    retention_hours = math.ceil(retain.total_seconds() / 3600)
    for table in MAINTAINED:
        step(f"checkpoint and VACUUM {table}")
        if _retrying(lake, table, "checkpoint", lambda dt: dt.create_checkpoint()) is _MISSING:
            continue
        for hours, full in ((retention_hours, False), (max(retention_hours, ORPHAN_HOURS), True)):
            removed = _retrying(
                lake,
                table,
                "vacuum",
                functools.partial(
                    _vacuum,
                    retention_hours=hours,
                    full=full,
                    commit_properties=_commit(metadata),
                ),
            )
            stats.files_vacuumed += len(removed)
        _retrying(lake, table, "clean up the log of", lambda dt: dt.cleanup_metadata())
    # After VACUUM: its commits (VACUUM START/END) are this run's too, so that a compacted lake
    # ends with `posts` covering every source table's latest version (open_lake's fast path).
    _advance_covers(lake, merged_at, run)
    stats.files_after = _file_counts(lake)
    stats.seconds = time.monotonic() - started
    record_run(
        lake,
        AuditEntry(
            "compact",
            started_at,
            deleted_rows_removed=stats.posts_removed,
            retain_days=retain_days,
            retention_removed=stats.retention.total if stats.retention else 0,
            stats=stats.as_dict(),
        ),
    )
    return stats


def _vacuum(dt: Any, **options: Any) -> list[str]:
    """VACUUM: the files replaced (`full=False`) or every file the log does not list (`full`:
    also what a failed or killed write left), older than the retention."""
    return list(dt.vacuum(dry_run=False, enforce_retention_duration=False, **options))


# Every table compaction optimizes, checkpoints and vacuums (`posts` last: merged first).
MAINTAINED = (POSTS_ALL, DELETES, SIGHTINGS, REJECTS, LANGUAGES, CHECKS, POSTS)
_MISSING = object()  # what `_retrying` returns for a table that does not exist


def _retrying(lake: str, table: str, what: str, step: Callable[[Any], Any]) -> Any:
    """`step(dt)` on the latest version of `table` (`_MISSING` when there is no such table).
    A sink appending meanwhile makes a MERGE (and an OPTIMIZE that a merge of `posts` raced)
    fail to commit, which delta-rs does not retry: run it again on the fresh table, a few
    times. Every other failure is a LakeError naming the step and the table, in one line."""
    from deltalake.exceptions import CommitFailedError, DeltaError

    uri = tables.table_uri(lake, table)
    for attempt in range(MERGE_ATTEMPTS):
        dt = tables.load(lake, table)
        if dt is None:
            return _MISSING
        try:
            return step(dt)
        except CommitFailedError as exc:
            if attempt == MERGE_ATTEMPTS - 1:
                raise LakeError(
                    f"Cannot {what} {uri}: other writers committed to it {MERGE_ATTEMPTS} "
                    f"times while it ran ({tables.error_text(exc)}); run tootlake compact again"
                ) from exc
            log.info("%s %s lost a race with another writer; again", what, uri)
            time.sleep(0.1 * (attempt + 1))
        except (OSError, DeltaError) as exc:
            raise LakeError(f"Cannot {what} {uri}: {tables.error_text(exc)}") from exc
    raise AssertionError("unreachable")


def _commit(metadata: dict[str, str]) -> Any:
    import deltalake

    return deltalake.CommitProperties(custom_metadata=metadata)


def _file_counts(lake: str) -> dict[str, int]:
    counts = {}
    for table in MAINTAINED:
        dt = tables.load(lake, table)
        if dt is not None:
            counts[table] = len(dt.file_uris())
    return counts


def _resolve_and_remove_deleted(
    lake: str, stats: CompactStats, metadata: dict[str, str], memory_limit: str | None
) -> None:
    """Give delete events that named only (instance, local id) the uri they remove, then
    remove every row of a deleted post from posts_all, sightings and languages."""
    import deltalake

    files = read_files(lake)
    if not files.tables[DELETES].paths:
        return
    con = _connect(lake, files, memory_limit)
    try:
        resolved = con.sql(
            """
            SELECT observed_on, id, min(uri) AS uri FROM (
                SELECT d.observed_on, d.id, a.uri FROM deletes d
                JOIN posts_all a ON a.observed_on = d.observed_on AND a.id = d.id
                WHERE d.uri IS NULL
                UNION ALL
                SELECT d.observed_on, d.id, s.uri FROM deletes d
                JOIN sightings s ON s.observed_on = d.observed_on AND s.id = d.id
                WHERE d.uri IS NULL
            ) GROUP BY observed_on, id
            """
        ).to_arrow_table()
        con.execute(f"CREATE TEMP TABLE _deleted AS {DELETED_URIS}")
        if resolved.num_rows:
            result = _retrying(
                lake,
                DELETES,
                "write the uri of deleted posts into",
                lambda dt: (
                    dt.merge(
                        resolved,
                        predicate="t.observed_on = s.observed_on AND t.id = s.id AND t.uri IS NULL",
                        source_alias="s",
                        target_alias="t",
                        writer_properties=tables.writer_properties(),
                        commit_properties=deltalake.CommitProperties(custom_metadata=metadata),
                    )
                    .when_matched_update(updates={"uri": "s.uri"})
                    .execute()
                ),
            )
            stats.deletes_resolved = int(result.get("num_target_rows_updated", 0))
        removals = (
            (POSTS_ALL, "posts_all", "posts_removed"),
            (SIGHTINGS, "sightings_all", "sightings_removed"),
            (LANGUAGES, LANGUAGES, "languages_removed"),
        )
        for table, view, attr in removals:

            def remove(predicate: str, table: str = table) -> int:
                return _delete_rows(lake, table, predicate, metadata, "remove deleted posts from")

            # Where the deleted posts' rows are, (date, uri), a date partition after another
            # (`_streamed`: never all at once), each partition rewritten on its own, in
            # parallel: each DELETE rewrites its partition on one core and reads no file of
            # another, so they do not conflict (a race is retried all the same).
            rows = _streamed(
                con,
                f"SELECT DISTINCT date, uri FROM {view} WHERE uri IN (SELECT uri FROM _deleted) "
                "ORDER BY date",
            )
            setattr(stats, attr, _run_deletes(_uri_deletes(rows), remove))
    finally:
        con.close()


def _delete_rows(lake: str, table: str, predicate: str, metadata: dict[str, str], what: str) -> int:
    """A Delta DELETE of `predicate`'s rows from `table` (retried when a writer raced it);
    the rows it removed (0 when there is no such table)."""
    import deltalake

    delete = functools.partial(
        _delete,
        predicate,
        writer_properties=tables.writer_properties(),
        commit_properties=deltalake.CommitProperties(custom_metadata=metadata),
    )
    result = _retrying(lake, table, what, delete)
    return 0 if result is _MISSING else int(result.get("num_deleted_rows", 0))


def _delete(predicate: str, dt: Any, **options: Any) -> Any:
    return dt.delete(predicate, **options)


DELETE_TASKS = 2  # partitions rewritten at once by the removal of deleted posts
# uris per DELETE: a partition with more deleted posts is rewritten once per this many.
DELETE_URIS_AT_MOST = 50_000


def _uri_deletes(rows: Iterable[tuple[Any, str | None]]) -> Iterator[str]:
    """DELETE predicates for (date, uri) pairs that come a date at a time (sorted by date),
    as they come: one per date partition and DELETE_URIS_AT_MOST uris, so each rewrites one
    partition's files (a MERGE of the deleted uris against the whole table held every
    partition's writer open at once: 1.4 GB on the 1.6M-post lake; a partition at a time:
    0.56 GB, and 8 s against 16 s). What it holds is one predicate's uris; a date that came
    in two runs gets more predicates, the same rows. The uris go in as SQL literals
    (`_literal`); a row without uri (`languages` rows of another tool's, of no post:
    orphans) by `uri IS NULL`."""
    for day, same_day in itertools.groupby(rows, key=lambda row: row[0]):
        yield from _listed(_partition(day), "uri", (uri for _, uri in same_day))


def _listed(where: str, column: str, values: Iterable[str | None]) -> Iterator[str]:
    """`where AND column IN (...)` for `values`, DELETE_URIS_AT_MOST at a time as they come,
    and `where AND column IS NULL` once if one is None (a row of another tool's, or a check
    without id: nullable columns)."""
    listed: list[str] = []
    null = False
    for value in values:
        if value is None:
            if not null:
                yield f"{where} AND {column} IS NULL"
            null = True
            continue
        listed.append(value)
        if len(listed) == DELETE_URIS_AT_MOST:
            yield f"{where} AND {column} IN ({', '.join(map(_literal, listed))})"
            listed = []
    if listed:
        yield f"{where} AND {column} IN ({', '.join(map(_literal, listed))})"


def _partition(day: Any) -> str:
    return "date IS NULL" if day is None else f"date = '{day.isoformat()}'"


def _advance_covers(lake: str, merged_at: dict[str, int], run: str) -> None:
    """After compaction rewrote files of the source tables, the tail a reader computes
    (files now less files at the covered version) would hold every rewritten file again.
    When every commit since the merge is this run's own (it removed only posts the merge had
    already deleted, and rewrote the rest unchanged), `posts` covers the new versions too:
    record them in an empty commit. A writer's commit meanwhile leaves the covers as they
    are; the next merge resolves the longer tail, correct either way."""
    posts = tables.load(lake, POSTS)
    if posts is None:
        return
    advanced = {}
    for table, covered in merged_at.items():
        dt = tables.load(lake, table)
        if dt is None:  # not there when merged, nor now: nothing to advance (no empty commit)
            advanced[table] = covered
            continue
        now = dt.version()
        if now == covered:
            advanced[table] = now
            continue
        for entry in dt.history(now - covered):
            if int(entry.get("version", -1)) <= covered:
                continue
            if entry.get("tootlake.run") != run:
                log.info(
                    "%s changed during compaction (version %s); the next merge reads it",
                    table,
                    entry.get("version"),
                )
                return
        advanced[table] = now
    if advanced == merged_at:
        return
    marks = [(COVERS[table], version) for table, version in advanced.items()]
    try:
        tables.append(
            lake,
            POSTS,
            tables.table_schema(POSTS).empty_table(),
            transactions=marks,
            metadata=tables.commit_metadata(operation="compact covers", run=run),
        )
    except LakeError as exc:
        if not _is_conflict(exc.__cause__ or exc):
            raise
        log.info("posts' covers not advanced (the next merge reads the tail): %s", exc)


# ----------------------------------------------------------------------------------------
# retention


# The tables retention removes rows from, each by its own time (`tables.TIME_COLUMN`): posts
# by created_at, sightings by seen_at, rejects by rejected_at; then `languages` by uri (the
# posts gone). `deletes` stays: a delete must still remove a copy of its post that turns up
# later.
RETAINED = (POSTS_ALL, POSTS, SIGHTINGS, REJECTS)


def retention_cutoff(days: float, now: datetime | None = None) -> datetime:
    if days < 0 or not math.isfinite(days):
        raise ConfigError(f"Invalid retention {days!r} days: a number of days, 0 or more")
    try:
        return (now or datetime.now(UTC)) - timedelta(days=days)
    except OverflowError:  # before year 1 (the CLI caps --retain; `retain()` is callable too)
        raise ConfigError(f"Invalid retention {days!r} days: that is before year 1") from None


def retain(lake: str, days: float, *, now: datetime | None = None) -> RetentionStats:
    """Remove physically what is older than `days` days: posts (`posts_all` and `posts`) by
    `created_at`, sightings by `seen_at`, rejects by `rejected_at`, and the `languages` rows
    of the posts removed (whichever `posts_all` no longer holds). Whole date partitions
    older than the cutoff's day go by a partition predicate (their files are dropped, not
    read); the cutoff's own day is rewritten without its older rows. The removed files stay
    for readers until `tootlake compact` vacuums them (`--retain-files`). Safe to rerun."""
    check_lake(lake)
    run = secrets.token_hex(4)
    metadata = tables.commit_metadata(operation="retain", run=run)
    covered = read_files(lake).covers
    stats = _retain(lake, days, metadata, now=now)
    if stats.total:
        _advance_covers(lake, covered, run)
    return stats


def _retain(
    lake: str, days: float, metadata: dict[str, str], *, now: datetime | None = None
) -> RetentionStats:

    cutoff = retention_cutoff(days, now)
    stats = RetentionStats(cutoff=cutoff.isoformat())
    day = cutoff.date().isoformat()
    moment = cutoff.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for table in RETAINED:
        column = tables.TIME_COLUMN[table]
        removed = 0
        for predicate in (
            f"date < '{day}'",  # whole partitions: their files are removed, not rewritten
            f"date = '{day}' AND {column} < '{moment}'",
        ):
            removed += _delete_rows(lake, table, predicate, metadata, "remove expired rows from")
        stats.removed[table] = removed
    stats.removed[LANGUAGES] = _remove_orphan_languages(lake, metadata)
    stats.removed[CHECKS] = _remove_orphan_checks(lake, metadata)
    return stats


# Orphans (rows of `checks` and `languages` whose post is gone) read from DuckDB at a time: a
# retention run that expires millions of posts leaves millions of them, never held at once.
ORPHAN_ROWS_AT_A_TIME = 10_000
# DELETE predicates built and not done yet, at most (each names up to DELETE_URIS_AT_MOST ids):
# the pool's DELETE_TASKS running, as many waiting.
DELETES_PENDING_AT_MOST = 2 * DELETE_TASKS


def _streamed(con: Any, sql: str) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql`, fetched ORPHAN_ROWS_AT_A_TIME at a time.

    The DELETEs of the rows commit while the rest is still to fetch, which is safe: the
    query (a DISTINCT, ORDER BY partition) is run to its end by DuckDB before its first row
    comes: every Parquet file it reads (the snapshot `read_files` listed) read, the sorted
    rows held by DuckDB (within its memory limit, spilling to its temp directory beyond),
    bounded as a temporary file on disk they could be copied to first would be. (Checked:
    overwriting its files after the first fetch changes nothing; a plain scan fails.) Were a
    file still to read, it would be there: a DELETE commits new files and only marks the old
    ones removed, which VACUUM deletes later (compaction vacuums after this step, and only
    files older than --retain-files)."""
    result = con.execute(sql)
    while rows := result.fetchmany(ORPHAN_ROWS_AT_A_TIME):
        yield from rows


def _run_deletes(predicates: Iterable[str], remove: Callable[[str], int]) -> int:
    """`remove(predicate)` for each predicate as it is built, DELETE_TASKS at once (a
    partition each, as for deleted posts), with at most DELETES_PENDING_AT_MOST built and
    not done: a predicate more is taken (and its orphans fetched) once one is done. The rows
    removed, summed. A failure stops it: what was not started is not run."""
    removed = 0
    pending: set[Future[int]] = set()
    building = iter(predicates)
    with ThreadPoolExecutor(DELETE_TASKS) as pool:
        try:
            while True:
                while len(pending) >= DELETES_PENDING_AT_MOST:  # (before the next is built)
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    removed += sum(future.result() for future in done)
                predicate = next(building, None)
                if predicate is None:
                    break
                pending.add(pool.submit(remove, predicate))
            for future in pending:
                removed += future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return removed


def _remove_orphan_checks(lake: str, metadata: dict[str, str]) -> int:
    """Remove the rows of `checks` (revalidate's, one per post it asked about: an instance
    and the id it gave) whose post has no row left in `posts_all`: deleted, withdrawn or
    expired, its id must not outlive it in the lake. The orphans are streamed, a partition
    (date and instance) after another (`_streamed`), and deleted as they come."""
    files = read_files(lake)
    if not files.tables[CHECKS].paths:
        return 0
    con = _connect(lake, files, None)
    try:
        checks = CHECKS_SCHEMA.append(tables.DATE_FIELD)
        create_view(con, CHECKS, files.tables[CHECKS], storage_for(lake), checks)
        rows = _streamed(
            con,
            f"SELECT DISTINCT date, observed_on, id FROM {CHECKS} c WHERE NOT EXISTS "
            "(SELECT 1 FROM posts_all a "
            "WHERE a.observed_on IS NOT DISTINCT FROM c.observed_on AND a.id = c.id) "
            "ORDER BY date, observed_on",
        )

        def remove(predicate: str) -> int:
            what = "remove checks of gone posts from"
            return _delete_rows(lake, CHECKS, predicate, metadata, what)

        return _run_deletes(_check_deletes(rows), remove)
    finally:
        con.close()


def _check_deletes(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """DELETE predicates for (date, observed_on, id) rows of `checks` that come a partition
    (date and instance) at a time: one per partition and DELETE_URIS_AT_MOST ids, as they
    come. A partition that came in two runs gets more predicates, the same rows."""
    for (day, host), same in itertools.groupby(rows, key=lambda row: (row[0], row[1])):
        instance = "observed_on IS NULL" if host is None else f"observed_on = {_literal(host)}"
        where = f"{_partition(day)} AND {instance}"
        yield from _listed(where, "id", (status_id for _, _, status_id in same))


def _literal(text: str) -> str:
    """A SQL string literal for delta-rs' parser (no backslash escapes: a quote is doubled)."""
    return "'" + text.replace("'", "''") + "'"


def _remove_orphan_languages(lake: str, metadata: dict[str, str]) -> int:
    """Remove the rows of `languages` whose post has no row left in `posts_all` (expired,
    by this run or an earlier one that stopped before this step): `tootlake enrich` wrote
    them for posts that were in the lake, and a post's detected language is of its text.
    Streamed a date partition after another and deleted as they come, as for `checks`."""
    files = read_files(lake)
    if not files.tables[LANGUAGES].paths:
        return 0
    con = _connect(lake, files, None)
    try:
        rows = _streamed(
            con,
            f"SELECT DISTINCT date, uri FROM {LANGUAGES} ANTI JOIN posts_all USING (uri) "
            "ORDER BY date",
        )

        def remove(predicate: str) -> int:
            return _delete_rows(lake, LANGUAGES, predicate, metadata, "remove expired rows from")

        return _run_deletes(_uri_deletes(rows), remove)
    finally:
        con.close()
