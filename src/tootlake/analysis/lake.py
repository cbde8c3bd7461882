"""DuckDB over the lake: the views every analysis reads.

    posts_all   every version of every post, as written (one row per sighting and edit)
    deletes     every delete event
    sightings   one row per (instance, local id) a post was seen as, first time seen
    rejects     every status (or line, or event) that could not become a post, and why
    posts       one row per uri: the latest version, deleted posts removed

Resolving versions when reading keeps the lake append-only: replaying input twice, or a sink
retrying a batch, adds rows that `posts` folds away.

Faults: a lake path that does not exist, or is a file, is a LakeError naming it (reading never
creates a lake). A corrupt or truncated Parquet file is a LakeError naming the file, or, with
`skip_corrupt=True`, left out with a WARNING naming it. Files are checked only when reading
fails (DuckDB reads every footer when the views are made, so a healthy lake pays nothing):
the files the error names are read whole with pyarrow, the footers of the others once.
`read_lake()` does the same for a damaged page that only a later query reads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import duckdb

from tootlake.errors import LakeError, TootlakeError
from tootlake.record import (
    arrow_schema,
    delete_arrow_schema,
    reject_arrow_schema,
    sighting_arrow_schema,
)
from tootlake.sinks.layout import DELETES, POSTS, REJECTS, SIGHTINGS, is_remote
from tootlake.sinks.snapshot import Snapshot, create_view, read_snapshot
from tootlake.sinks.storage import Storage, storage_for

__all__ = ["open_lake", "read_lake", "check_lake", "POSTS_VIEW", "SIGHTINGS_VIEW"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# The tables open_lake() reads, and the view each one's files become.
_TABLES = (POSTS, DELETES, SIGHTINGS, REJECTS)
_VIEWS = {
    POSTS: ("posts_all", arrow_schema),
    DELETES: ("deletes", delete_arrow_schema),
    SIGHTINGS: ("sightings_all", sighting_arrow_schema),
    REJECTS: ("rejects", reject_arrow_schema),
}

# The collector writes a post once and each (instance, id) it was seen as; a replay after a
# crash may write a sighting twice: keep the first.
SIGHTINGS_VIEW = """
CREATE OR REPLACE VIEW sightings AS
SELECT uri, observed_on, id, min(seen_at) AS seen_at
FROM sightings_all
GROUP BY uri, observed_on, id
"""

# The latest version of a post wins (edits carry edited_at; any edit beats the original, and
# edits compare to the second, since remote copies carry edit times without milliseconds);
# among equal versions the one seen on the author's own server, which alone carries the app
# and true counts, then the newest.
_VERSION_ORDER = (
    "date_trunc('second', edited_at) DESC NULLS LAST, local DESC, "
    "edited_at DESC NULLS LAST, ingested_at DESC"
)
_DELETED_URIS = """
    SELECT uri FROM deletes WHERE uri IS NOT NULL
    UNION
    SELECT a.uri FROM posts_all a JOIN deletes d ON a.observed_on = d.observed_on AND a.id = d.id
    UNION
    SELECT s.uri FROM sightings s JOIN deletes d ON s.observed_on = d.observed_on AND s.id = d.id"""
POSTS_VIEW = f"""
CREATE OR REPLACE VIEW posts AS
WITH deleted AS ({_DELETED_URIS}
)
SELECT * EXCLUDE (version_rank) FROM (
    SELECT *, row_number() OVER (
        PARTITION BY uri
        ORDER BY {_VERSION_ORDER}
    ) AS version_rank
    FROM posts_all
    WHERE uri NOT IN (SELECT uri FROM deleted)
)
WHERE version_rank = 1
"""

# The same `posts`, resolved once when the lake is opened (its files are a snapshot then, so
# the answer cannot change): the uris that need resolving (more than one version, or deleted)
# are few, and so are their latest versions, kept in memory. Every other row is read as it
# is: no window over the whole lake in every query (9x faster, and a third of the memory, for
# the report of the talk's 1.6M posts).
# Uris with more than one row: every uri, grouped. Readers of a lake whose compacted files are
# known to hold each uri once (`Manifest.unique_posts`) look only where uncompacted files are
# involved: `_VERSIONS_FRESH`.
_VERSIONS_ALL = "SELECT uri FROM posts_all GROUP BY uri HAVING count(*) > 1"
_VERSIONS_FRESH = """
    SELECT uri FROM _posts_fresh GROUP BY uri HAVING count(*) > 1
    UNION
    SELECT f.uri FROM (SELECT DISTINCT uri FROM _posts_fresh) f
    SEMI JOIN _posts_compacted c ON f.uri = c.uri"""
_VERSIONS_NONE = "SELECT CAST(NULL AS VARCHAR) AS uri WHERE false"
_RESOLVE = f"""
CREATE OR REPLACE TEMP TABLE _posts_resolve AS
WITH deleted AS ({_DELETED_URIS}
),
versions AS ({{versions}})
SELECT uri, bool_or(gone) AS deleted
FROM (SELECT uri, true AS gone FROM deleted UNION ALL SELECT uri, false AS gone FROM versions)
GROUP BY uri
"""
# With no delete in the lake, only the versions: joining every post to an empty table of
# deletes still reads the posts (half the time of opening a lake of 1.6M posts).
_RESOLVE_VERSIONS = """
CREATE OR REPLACE TEMP TABLE _posts_resolve AS
SELECT uri, false AS deleted FROM ({versions})
"""
_LATEST = f"""
CREATE OR REPLACE TEMP TABLE _posts_latest AS
SELECT * EXCLUDE (version_rank) FROM (
    SELECT *, row_number() OVER (PARTITION BY uri ORDER BY {_VERSION_ORDER}) AS version_rank
    FROM posts_all
    WHERE uri IN (SELECT uri FROM _posts_resolve WHERE NOT deleted)
)
WHERE version_rank = 1
"""
_RESOLVED_VIEW = """
CREATE OR REPLACE VIEW posts AS
SELECT a.* FROM posts_all a ANTI JOIN _posts_resolve r ON a.uri = r.uri
UNION ALL
SELECT * FROM _posts_latest
"""
_PLAIN_VIEW = "CREATE OR REPLACE VIEW posts AS SELECT * FROM posts_all"
# Beyond this many uris to resolve (a lake replayed twice, say), the latest versions would
# take too much memory: `posts` stays the window view, resolved in every query.
RESOLVE_IN_MEMORY_AT_MOST = 200_000


def open_lake(
    lake: str,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    skip_corrupt: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake's views `posts`, `posts_all`, `deletes`,
    `sightings` and `rejects` (`sightings_all` holds the sightings as written).

    The views read the files that made up the lake when it was opened (a snapshot: see
    `tootlake.sinks.snapshot`), so a compaction running meanwhile is seen whole or not at all.
    Call `open_lake(lake, connection=con)` again to see files written since.

    A missing lake, or a corrupt Parquet file, is a LakeError naming it; `skip_corrupt=True`
    leaves corrupt files out instead, with a WARNING naming each.
    """
    return _open(
        lake,
        connection=connection,
        memory_limit=memory_limit,
        threads=threads,
        corrupt=_CorruptFiles(skip=skip_corrupt),
    )


def read_lake(
    lake: str,
    read: Callable[[duckdb.DuckDBPyConnection], T],
    *,
    skip_corrupt: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> T:
    """`read(open_lake(lake))`, then close the connection. A file that turns out corrupt while
    `read` runs (a damaged page the views did not touch when opening) is a LakeError naming it
    too, or, with `skip_corrupt=True`, left out: the lake is opened again without it and `read`
    runs again. Other errors (a typo in SQL) pass through unchanged."""
    corrupt = _CorruptFiles(skip=skip_corrupt)
    while True:
        con = _open(lake, memory_limit=memory_limit, threads=threads, corrupt=corrupt)
        try:
            return read(con)
        except TootlakeError:
            raise
        except Exception as exc:
            if not corrupt.handle(exc):
                raise
        finally:
            con.close()


def check_lake(lake: str) -> bool:
    """Check that `lake` can be read: a local lake that does not exist, or is not a folder, is a
    LakeError naming the path. True when it holds data files, False for a folder with none
    yet (a collection that has written nothing). An S3 lake is not checked here (a missing
    bucket fails when it is listed) and counts as holding data."""
    if is_remote(lake):
        return True
    root = lake.removeprefix("file://")
    if not os.path.exists(root):
        raise LakeError(
            f"No lake at {root}: the folder does not exist. Give the lake's folder with --lake "
            "(or TOOTLAKE_LAKE), or collect into it first."
        )
    if not os.path.isdir(root):
        raise LakeError(
            f"The lake {root} is a file, not a folder: give the lake's folder with --lake"
        )
    for table in _TABLES:
        for _dirpath, _dirs, files in os.walk(os.path.join(root, table)):
            if any(name.endswith(".parquet") and not name.startswith(".") for name in files):
                return True
    return False


def _open(
    lake: str,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    corrupt: _CorruptFiles,
) -> duckdb.DuckDBPyConnection:
    check_lake(lake)
    storage = storage_for(lake)
    con = connection or duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # times are UTC in the lake; show them as such
    # Every query binds the views again, reading each file's footer: keep them (files are
    # never rewritten in place; a file rewritten by a replay has a new mtime, which DuckDB checks).
    con.execute("SET parquet_metadata_cache = true")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if is_remote(lake):
        _configure_remote(con, lake)
    snapshot = read_snapshot(storage, lake, _TABLES)
    corrupt.storage = storage
    corrupt.files = [path for table in _TABLES for path in snapshot.paths(table)]
    while True:
        try:
            _create_views(con, snapshot, storage, corrupt.skipped)
            return con
        except TootlakeError:
            raise
        except Exception as exc:
            if not corrupt.handle(exc):
                raise


def _create_views(
    con: duckdb.DuckDBPyConnection, snapshot: Snapshot, storage: Storage, skip: Collection[str]
) -> None:
    def paths(files: list[str]) -> list[str]:
        return [path for path in files if path not in skip]

    for table, (view, schema) in _VIEWS.items():
        _create_view(con, view, paths(snapshot.paths(table)), storage, schema())
    con.execute(SIGHTINGS_VIEW)
    versions = _VERSIONS_ALL
    if snapshot.manifest.unique_posts:
        compacted, fresh = (paths(files) for files in snapshot.compacted_paths(POSTS))
        if compacted:
            versions = _VERSIONS_FRESH if fresh else _VERSIONS_NONE
            _create_view(con, "_posts_compacted", compacted, storage, arrow_schema())
            _create_view(con, "_posts_fresh", fresh, storage, arrow_schema())
    _create_posts_view(con, versions)


def _create_posts_view(con: duckdb.DuckDBPyConnection, versions: str = _VERSIONS_ALL) -> None:
    """`posts`: POSTS_VIEW's answer, by the cheapest plan for this snapshot of the lake;
    `versions` finds the uris with more than one row."""
    (deletes,) = con.execute("SELECT count(*) FROM deletes").fetchall()[0]
    con.execute((_RESOLVE if deletes else _RESOLVE_VERSIONS).format(versions=versions))
    row = con.execute("SELECT count(*) FROM _posts_resolve").fetchall()[0]
    if 0 < row[0] <= RESOLVE_IN_MEMORY_AT_MOST:
        con.execute(_LATEST)
        con.execute(_RESOLVED_VIEW)
        return
    con.execute(_PLAIN_VIEW if row[0] == 0 else POSTS_VIEW)  # 0: one version each, none deleted
    con.execute("DROP TABLE IF EXISTS _posts_latest")  # from an earlier open_lake() of con


def _create_view(
    con: duckdb.DuckDBPyConnection, name: str, files: list[str], storage: Any, schema: Any
) -> None:
    # Local files: DuckDB's Parquet reader over the explicit list; S3: a pyarrow dataset.
    create_view(con, name, files, storage, schema)


def _configure_remote(con: duckdb.DuckDBPyConnection, lake: str) -> None:
    from tootlake.sinks.s3 import configure_duckdb

    configure_duckdb(con, lake)


# ----------------------------------------------------------------------------------------
# corrupt files


class _CorruptFiles:
    """The corrupt files found while opening or reading one lake, and whether to skip them.
    `_open()` sets `storage` and `files` (every file of the snapshot)."""

    def __init__(self, *, skip: bool) -> None:
        self.skip = skip
        self.skipped: dict[str, str] = {}  # path -> what is wrong with it
        self.storage: Storage | None = None
        self.files: list[str] = []
        self._footers_checked = False

    def handle(self, exc: BaseException) -> bool:
        """`exc` was raised reading the lake: find its corrupt files. False when none is (the
        caller re-raises `exc`); a LakeError naming them when not skipping; else True, with
        them added to `skipped` (the caller tries again without them)."""
        storage = self.storage
        if storage is None or not _may_be_damage(exc):
            return False
        message = str(exc).split("\nLINE ", 1)[0]  # not the SQL that DuckDB quotes
        candidates = [path for path in self.files if path not in self.skipped]
        found: dict[str, str] = {}
        for path in candidates:
            if path in message or path.removeprefix("s3://") in message:
                reason = _damage(storage, path, whole=True)
                if reason is not None:
                    found[path] = reason
        if not self._footers_checked and (self.skip or not found):
            # Once: every footer, so that several corrupt files cost one retry, not one each.
            self._footers_checked = True
            rest = [path for path in candidates if path not in found]
            with ThreadPoolExecutor(max(1, min(_FOOTER_READERS, len(rest)))) as pool:
                reasons = pool.map(lambda path: _damage(storage, path, whole=False), rest)
                found.update((path, why) for path, why in zip(rest, reasons, strict=True) if why)
        if not found:
            return False
        if not self.skip:
            paths = list(found)
            more = ""
            if len(paths) > 1:
                shown = ", ".join(paths[1:4]) + (", ..." if len(paths) > 4 else "")
                more = f" (and {len(paths) - 1} more: {shown})"
            raise LakeError(
                f"Corrupt Parquet file {paths[0]} ({found[paths[0]]}){more}: move it out of "
                "the lake, or read the rest with --skip-corrupt"
            ) from exc
        for path, reason in found.items():
            log.warning("Skipped corrupt Parquet file %s: %s", path, reason)
        self.skipped.update(found)
        return True


_FOOTER_READERS = 8  # footers read at once when looking for corrupt files (S3: requests)


def _may_be_damage(exc: BaseException) -> bool:
    """An error a damaged file gives: DuckDB's "No magic bytes found", "too small to be a
    Parquet file", "ZSTD Decompression failure" (also pyarrow's, through a registered
    dataset), or an I/O error. A parser, binder or catalog error (a typo in SQL) is not."""
    import pyarrow as pa

    damage = (duckdb.InvalidInputException, duckdb.IOException, OSError, pa.ArrowException)
    return isinstance(exc, damage)


def _damage(storage: Storage, path: str, *, whole: bool) -> str | None:
    """What is wrong with the Parquet file at `path` (its footer; with `whole`, every row
    group too); None when pyarrow reads it, or when it is gone (compacted away since it was
    listed is not damage)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_filesystem = getattr(storage, "arrow_filesystem", None)
    filesystem = arrow_filesystem() if arrow_filesystem is not None else None
    source = path.removeprefix("s3://") if filesystem is not None else path
    try:
        handle = filesystem.open_input_file(source) if filesystem else pa.OSFile(source)
        with handle, pq.ParquetFile(handle) as parquet:
            if whole:
                for group in range(parquet.num_row_groups):
                    parquet.read_row_group(group)
    except (pa.ArrowException, OSError) as exc:
        if _gone(filesystem, source):
            return None
        # one line, and pyarrow's first sentence says it ("Parquet magic bytes not found in
        # footer. Either the file is corrupted or this is not a parquet file.")
        text = " ".join(str(exc).split()).split(". ", 1)[0].rstrip(".")
        return text or type(exc).__name__
    return None


def _gone(filesystem: Any, source: str) -> bool:
    try:
        if filesystem is None:
            return not os.path.exists(source)
        from pyarrow import fs

        return bool(filesystem.get_file_info(source).type == fs.FileType.NotFound)
    except OSError:
        return False
