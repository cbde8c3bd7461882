"""DuckDB over the lake: the views every analysis reads.

    posts_all   every version of every post, as written (one row per sighting and edit)
    deletes     every delete event
    sightings   one row per (instance, local id) a post was seen as, first time seen
    rejects     every status (or line, or event) that could not become a post, and why
    posts       one row per uri: the latest version, deleted posts removed
    languages   the language `tootlake enrich` detected in each post's text (empty until run)
    checks      one row per post `tootlake revalidate` asked its instance about (empty until run)

Each view reads exactly the files of its Delta table's current version, listed from the
Delta log (never by globbing: files that compaction replaced stay on storage for a while).
`posts` is the merged Delta table `posts` plus the tail of `posts_all` it does not cover yet
(the versions of the source tables it covers ride in its commits as app transactions), the
two resolved together, so the view is exact at all times, merged or not.

Faults: a lake path that does not exist, or is a file, is a LakeError naming it (reading never
creates a lake); so is a lake of the layout before Delta (run `tootlake migrate`). A corrupt or
truncated Parquet file is a LakeError naming the file, or, with `skip_corrupt=True`, left out
with a WARNING naming it. Files are checked only when reading fails (DuckDB reads every footer
when the views are made, so a healthy lake pays nothing): the files the error names are read
whole with pyarrow, the footers of the others once. `read_lake()` does the same for a damaged
page that only a later query reads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import duckdb

from tootlake.errors import ConfigError, LakeError, TootlakeError
from tootlake.lake import tables
from tootlake.lake.audit import AUDIT_SCHEMA
from tootlake.lake.checks import CHECKS_SCHEMA
from tootlake.lake.enrich import LANGUAGES_SCHEMA
from tootlake.lake.layout import (
    AUDIT,
    CHECKS,
    DELETES,
    LANGUAGES,
    POSTS,
    POSTS_ALL,
    REJECTS,
    SIGHTINGS,
    is_remote,
    join,
)
from tootlake.lake.storage import Storage, storage_for
from tootlake.text import shorten

__all__ = [
    "open_lake",
    "read_lake",
    "check_lake",
    "old_layout",
    "LakeFiles",
    "read_files",
    "create_view",
    "POSTS_VIEW",
    "SIGHTINGS_VIEW",
    "VERSION_ORDER",
    "COVERS",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# The views of the tables open_lake() reads.
_VIEWS = {
    POSTS_ALL: "posts_all",
    DELETES: "deletes",
    SIGHTINGS: "sightings_all",
    REJECTS: "rejects",
}
# The app ids under which a commit of `posts` records the version of each source table it
# covers (Delta app transactions: `DeltaTable.transaction_version(app_id)`).
COVERS = {table: f"tootlake.posts.covers.{table}" for table in (POSTS_ALL, DELETES, SIGHTINGS)}

# The collector writes a post once and each (instance, id) it was seen as; a replay after a
# crash may write a sighting twice: keep the first.
SIGHTINGS_VIEW = """
CREATE OR REPLACE VIEW sightings AS
SELECT uri, observed_on, id, min(seen_at) AS seen_at, min(date) AS date
FROM sightings_all
GROUP BY uri, observed_on, id
"""

# The latest version of a post wins (edits carry edited_at; any edit beats the original, and
# edits compare to the second, since remote copies carry edit times without milliseconds);
# among equal versions the one seen on the author's own server, which alone carries the app
# and true counts, then the newest.
VERSION_ORDER = (
    "date_trunc('second', edited_at) DESC NULLS LAST, local DESC, "
    "edited_at DESC NULLS LAST, ingested_at DESC"
)
# The uris a delete removes: named by uri, or by the (instance, local id) a post was seen as.
# Never NULL (a row without uri, another tool's, matched by its id): one NULL here makes
# `uri NOT IN (...)` never true, and the merge dropped every post of the tail.
DELETED_URIS = """
    SELECT uri FROM deletes WHERE uri IS NOT NULL
    UNION
    SELECT a.uri FROM posts_all a JOIN deletes d ON a.observed_on = d.observed_on AND a.id = d.id
    WHERE a.uri IS NOT NULL
    UNION
    SELECT s.uri FROM sightings s JOIN deletes d ON s.observed_on = d.observed_on AND s.id = d.id
    WHERE s.uri IS NOT NULL"""
# `_posts_base`: the merged table and the tail of posts_all it does not cover yet.
POSTS_VIEW = f"""
CREATE OR REPLACE VIEW posts AS
WITH deleted AS ({DELETED_URIS}
)
SELECT * EXCLUDE (version_rank) FROM (
    SELECT *, row_number() OVER (
        PARTITION BY uri
        ORDER BY {VERSION_ORDER}
    ) AS version_rank
    FROM _posts_base
    WHERE uri NOT IN (SELECT uri FROM deleted)
)
WHERE version_rank = 1
"""

# The same `posts`, resolved once when the lake is opened (its files are a snapshot then, so
# the answer cannot change): the uris that need resolving (more than one row in the tail, a
# tail row for a merged uri, or deleted) are few, and so are their latest versions, kept in
# memory. Every other row is read as it is: no window over the whole lake in every query (9x
# faster, and a third of the memory, for the report of the talk's 1.6M posts).
_VERSIONS_FRESH = """
    SELECT uri FROM _posts_fresh GROUP BY uri HAVING count(*) > 1
    UNION
    SELECT f.uri FROM (SELECT DISTINCT uri FROM _posts_fresh) f
    SEMI JOIN _posts_merged c ON f.uri = c.uri"""
_VERSIONS_TAIL_ONLY = "SELECT uri FROM _posts_fresh GROUP BY uri HAVING count(*) > 1"
_VERSIONS_NONE = "SELECT CAST(NULL AS VARCHAR) AS uri WHERE false"
_RESOLVE = f"""
CREATE OR REPLACE TEMP TABLE _posts_resolve AS
WITH deleted AS ({DELETED_URIS}
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
    SELECT *, row_number() OVER (PARTITION BY uri ORDER BY {VERSION_ORDER}) AS version_rank
    FROM _posts_base
    WHERE uri IN (SELECT uri FROM _posts_resolve WHERE NOT deleted)
)
WHERE version_rank = 1
"""
_RESOLVED_VIEW = """
CREATE OR REPLACE VIEW posts AS
SELECT a.* FROM _posts_base a ANTI JOIN _posts_resolve r ON a.uri = r.uri
UNION ALL
SELECT * FROM _posts_latest
"""
_PLAIN_VIEW = "CREATE OR REPLACE VIEW posts AS SELECT * FROM _posts_base"
# What names a post and dates it: a row of posts_all without one of these (another tool's:
# tootlake writes none) is no post, for the views as for the merge, which never takes it.
ESSENTIAL = ("uri", "id", "created_at", "ingested_at", "date")
HAS_ESSENTIAL = " AND ".join(f"{name} IS NOT NULL" for name in ESSENTIAL)
_BASE_VIEW = f"""
CREATE OR REPLACE VIEW _posts_base AS
SELECT * FROM _posts_merged UNION ALL SELECT * FROM _posts_fresh WHERE {HAS_ESSENTIAL}
"""
# Beyond this many uris to resolve (a lake replayed twice, say), the latest versions would
# take too much memory: `posts` stays the window view, resolved in every query.
RESOLVE_IN_MEMORY_AT_MOST = 200_000


@dataclass
class TableFiles:
    """The live files of one Delta table at one version, with each file's `date`."""

    table: str
    version: int | None = None  # None: the table does not exist yet
    paths: list[str] = field(default_factory=list)  # absolute paths, or s3:// URLs
    dates: list[date | None] = field(default_factory=list)
    bytes: int = 0  # the files' total size

    def without(self, other: TableFiles) -> TableFiles:
        """These files less those of `other` (an older version of the same table); `bytes`
        is then prorated by file count (an estimate, for sizing work)."""
        old = set(other.paths)
        kept = [(p, d) for p, d in zip(self.paths, self.dates, strict=True) if p not in old]
        size = self.bytes * len(kept) // max(1, len(self.paths))
        return TableFiles(
            self.table, self.version, [p for p, _ in kept], [d for _, d in kept], size
        )


@dataclass
class LakeFiles:
    """What the lake is at one moment: each table's files, and the tail of `posts_all` that
    the merged `posts` does not cover (`fresh`)."""

    lake: str
    tables: dict[str, TableFiles]
    fresh: TableFiles
    covers: dict[str, int]  # source table -> the version `posts` covers (-1: none)

    def all_paths(self) -> list[str]:
        return [path for files in self.tables.values() for path in files.paths]


def table_files(lake: str, table: str, version: int | None = None) -> TableFiles:
    """The live files of `table` (at `version`, else the latest) from its Delta log."""
    dt = tables.load(lake, table, version)
    if dt is None:
        return TableFiles(table)
    actions = dt.get_add_actions(flatten=True)
    root = tables.table_uri(lake, table).rstrip("/")
    paths = [f"{root}/{path}" for path in actions.column("path").to_pylist()]
    if "partition.date" in actions.column_names:
        dates = [_as_date(value) for value in actions.column("partition.date").to_pylist()]
    else:
        dates = [None] * len(paths)
    size = sum(actions.column("size_bytes").to_pylist()) if actions.num_rows else 0
    return TableFiles(table, dt.version(), paths, dates, int(size))


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def read_files(lake: str) -> LakeFiles:
    """The lake's files now. `posts` is read first: whatever it covers, the source tables read
    after it are at least as new, so the tail is never negative."""
    posts = tables.load(lake, POSTS)
    covers = {table: -1 for table in COVERS}
    merged = TableFiles(POSTS)
    if posts is not None:
        covers = {table: _covered(posts, app_id) for table, app_id in COVERS.items()}
        merged = table_files(lake, POSTS, posts.version())
    now = {table: table_files(lake, table) for table in _VIEWS}
    now[POSTS] = merged
    now[LANGUAGES] = table_files(lake, LANGUAGES)  # `tootlake enrich`'s, when run
    now[AUDIT] = table_files(lake, AUDIT)  # one row per run (`tootlake.lake.audit`)
    now[CHECKS] = table_files(lake, CHECKS)  # `tootlake revalidate`'s (`tootlake.lake.checks`)
    fresh = now[POSTS_ALL]
    if covers[POSTS_ALL] == fresh.version:
        fresh = TableFiles(POSTS_ALL, fresh.version)  # all covered: no older log to replay
    elif covers[POSTS_ALL] >= 0:
        fresh = fresh.without(table_files(lake, POSTS_ALL, covers[POSTS_ALL]))
    return LakeFiles(lake, now, fresh, covers)


def _covered(dt: Any, app_id: str) -> int:
    version = dt.transaction_version(app_id)
    return -1 if version is None else int(version)


def open_lake(
    lake: str,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    skip_corrupt: bool = False,
    temp_directory: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake's views `posts`, `posts_all`, `deletes`,
    `sightings` and `rejects` (`sightings_all` holds the sightings as written).

    The views read the tables' files at the versions current when the lake was opened, so a
    write or a compaction running meanwhile is seen whole or not at all. Call
    `open_lake(lake, connection=con)` again to see what was written since.

    `memory_limit` (e.g. "1GB") and `temp_directory` let DuckDB spill big queries to disk.
    A missing lake, or a corrupt Parquet file, is a LakeError naming it; `skip_corrupt=True`
    leaves corrupt files out instead, with a WARNING naming each.
    """
    return _open(
        lake,
        connection=connection,
        memory_limit=memory_limit,
        threads=threads,
        temp_directory=temp_directory,
        corrupt=_CorruptFiles(skip=skip_corrupt),
    )


def read_lake(
    lake: str,
    read: Callable[[duckdb.DuckDBPyConnection], T],
    *,
    skip_corrupt: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | None = None,
) -> T:
    """`read(open_lake(lake))`, then close the connection. A file that turns out corrupt while
    `read` runs (a damaged page the views did not touch when opening) is a LakeError naming it
    too, or, with `skip_corrupt=True`, left out: the lake is opened again without it and `read`
    runs again. Other errors (a typo in SQL) pass through unchanged."""
    corrupt = _CorruptFiles(skip=skip_corrupt)
    try:
        while True:
            con = _open(
                lake,
                memory_limit=memory_limit,
                threads=threads,
                temp_directory=temp_directory,
                corrupt=corrupt,
            )
            try:
                return read(con)
            except TootlakeError:
                raise
            except Exception as exc:
                if isinstance(exc, duckdb.OutOfMemoryException) or not corrupt.handle(exc):
                    raise
            finally:
                con.close()
    except duckdb.OutOfMemoryException as exc:
        limit = f"the limit {memory_limit}" if memory_limit else "its memory"
        raise LakeError(
            f"DuckDB ran out of {limit} reading {lake}: give it more (--memory-limit) "
            "or a folder to spill to (--temp-directory)"
        ) from exc


def old_layout(lake: str) -> bool:
    """True when `lake` is in the layout before Delta tables: the old compaction manifest, or
    Parquet files under `<table>/date=...` of a table folder with no Delta log."""
    old_tables = (POSTS, DELETES, SIGHTINGS, REJECTS)
    if is_remote(lake):
        from tootlake.lake.s3 import S3Storage

        storage = S3Storage(lake)
        if storage.exists(join(lake, "_tootlake", "manifest.json")):
            return True
        return any(
            storage.has_prefix(join(lake, table, "date="))
            and not storage.has_prefix(join(lake, table, "_delta_log/"))
            for table in old_tables
        )
    root = lake.removeprefix("file://")
    if os.path.exists(os.path.join(root, "_tootlake", "manifest.json")):
        return True
    for table in old_tables:
        folder = os.path.join(root, table)
        if not os.path.isdir(folder) or os.path.isdir(os.path.join(folder, "_delta_log")):
            continue
        if any(name.startswith("date=") for name in os.listdir(folder)):
            return True
    return False


def check_old_layout(lake: str) -> None:
    """A LakeError that says to run `tootlake migrate` when `lake` has the old layout."""
    if old_layout(lake):
        raise LakeError(
            f"The lake {lake} has the layout before Delta tables (plain Parquet files). "
            f"Convert it to Delta Lake tables first: tootlake migrate {lake}"
        )


# DuckDB installs and loads extensions a query asks for, downloading them from its servers
# (`read_csv('http://...')` fetched httpfs): tootlake needs none (S3 goes through fsspec), and
# a tool that sends nothing but to the servers it is pointed at must not fetch code.
DUCKDB_CONFIG: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that fetches no extension from the network."""
    return duckdb.connect(config=DUCKDB_CONFIG)


def check_lake(lake: str) -> bool:
    """Check that `lake` can be read: a local lake that does not exist, or is not a folder, is a
    LakeError naming the path; so is a lake of the old layout. True when it holds tables, False
    for a folder with none yet (a collection that has written nothing). An S3 lake is not
    checked for existence here (a missing bucket fails when it is read)."""
    if is_remote(lake):
        storage_for(lake)  # an unsupported URL says so first
        check_old_layout(lake)
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
    check_old_layout(lake)
    return any(os.path.isdir(os.path.join(root, table, "_delta_log")) for table in (*_VIEWS, POSTS))


def _open(
    lake: str,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | None = None,
    corrupt: _CorruptFiles,
) -> duckdb.DuckDBPyConnection:
    check_lake(lake)
    storage = storage_for(lake)
    files = read_files(lake)
    con = connection or connect()
    con.execute("SET TimeZone = 'UTC'")  # times are UTC in the lake; show them as such
    # Every query binds the views again, reading each file's footer: keep them (Delta never
    # rewrites a file in place).
    con.execute("SET parquet_metadata_cache = true")
    if memory_limit:
        set_memory_limit(con, memory_limit)
    if temp_directory:
        con.execute("SET temp_directory = ?", [temp_directory])
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if is_remote(lake):
        _configure_remote(con, lake)
    corrupt.storage = storage
    corrupt.files = files.all_paths()
    while True:
        try:
            _create_views(con, files, storage, corrupt.skipped)
            return con
        except TootlakeError:
            raise
        except Exception as exc:
            if not corrupt.handle(exc):
                raise


def _create_views(
    con: duckdb.DuckDBPyConnection, files: LakeFiles, storage: Storage, skip: Collection[str]
) -> None:
    def kept(table_files: TableFiles) -> TableFiles:
        if not skip:
            return table_files
        pairs = [
            (p, d) for p, d in zip(table_files.paths, table_files.dates, strict=True)
            if p not in skip
        ]  # fmt: skip
        return TableFiles(
            table_files.table, table_files.version, [p for p, _ in pairs], [d for _, d in pairs]
        )

    for table, view in _VIEWS.items():
        create_view(con, view, kept(files.tables[table]), storage, tables.table_schema(table))
    con.execute(SIGHTINGS_VIEW)
    languages_schema = LANGUAGES_SCHEMA.append(tables.DATE_FIELD)  # empty until enriched
    create_view(con, LANGUAGES, kept(files.tables[LANGUAGES]), storage, languages_schema)
    audit_schema = AUDIT_SCHEMA.append(tables.DATE_FIELD)  # empty until a run records itself
    create_view(con, AUDIT, kept(files.tables[AUDIT]), storage, audit_schema)
    checks_schema = CHECKS_SCHEMA.append(tables.DATE_FIELD)  # empty until revalidate runs
    create_view(con, CHECKS, kept(files.tables[CHECKS]), storage, checks_schema)
    posts_schema = tables.table_schema(POSTS_ALL)
    merged = kept(files.tables[POSTS])
    if _merged_is_current(files) and not skip:
        # Nothing written since the merge: the merged table is the answer. (Resolving the
        # deletes again, joining posts_all to them, was most of opening a merged lake; and
        # `posts` is bound once: binding a view reads every file's footer, union_by_name.)
        create_view(con, "posts", merged, storage, posts_schema)
        con.execute(_NOTHING_TO_RESOLVE)
        con.execute("DROP TABLE IF EXISTS _posts_latest")
        for stale in ("_posts_base", "_posts_merged", "_posts_fresh"):  # an earlier open's
            con.execute(f"DROP VIEW IF EXISTS {stale}")
        return
    create_view(con, "_posts_merged", merged, storage, posts_schema)
    create_view(con, "_posts_fresh", kept(files.fresh), storage, posts_schema)
    con.execute(_BASE_VIEW)
    if not merged.paths:
        versions = _VERSIONS_TAIL_ONLY
    else:
        versions = _VERSIONS_FRESH if files.fresh.paths else _VERSIONS_NONE
    _create_posts_view(con, versions)


_NOTHING_TO_RESOLVE = """
CREATE OR REPLACE TEMP TABLE _posts_resolve AS
SELECT CAST(NULL AS VARCHAR) AS uri, false AS deleted WHERE false
"""


def _merged_is_current(files: LakeFiles) -> bool:
    """True when `posts` covers every source table at its current version (no tail, no new
    delete or sighting), so that it alone is exact."""
    if files.tables[POSTS].version is None or files.fresh.paths:
        return False
    return all(
        files.covers[table]
        == (-1 if files.tables[table].version is None else files.tables[table].version)
        for table in (POSTS_ALL, DELETES, SIGHTINGS)
    )


def _create_posts_view(con: duckdb.DuckDBPyConnection, versions: str) -> None:
    """`posts`: POSTS_VIEW's answer, by the cheapest plan for this state of the lake;
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


def create_view(con: Any, name: str, files: TableFiles, storage: Storage, schema: Any) -> None:
    """`CREATE OR REPLACE VIEW name` with the columns of `schema` (ending in `date`) over
    exactly these Parquet files: DuckDB's reader for local files (`date` from the hive-style
    folder name), a registered pyarrow dataset for a storage that has `arrow_dataset` (S3;
    `date` from the log). Columns an old file lacks read as NULL; no files give no rows."""
    columns = ", ".join(f'"{f.name}"' for f in schema)
    if not files.paths:
        # Typed NULLs in SQL, not a registered empty Arrow table: registering one makes
        # DuckDB import pandas, a third of a second of every report over a small lake.
        typed = ", ".join(f'CAST(NULL AS {_sql_type(f.type)}) AS "{f.name}"' for f in schema)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {typed} WHERE false")
        return
    arrow_dataset = getattr(storage, "arrow_dataset", None)
    if arrow_dataset is not None:
        con.register(f"_arrow_{name}", arrow_dataset(files.paths, schema, dates=files.dates))
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM _arrow_{name}")
        return
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in files.paths)
    # union_by_name: files written before a column was added read it as NULL.
    source = (
        f"read_parquet([{listed}], union_by_name = true, hive_partitioning = true, "
        "hive_types = {'date': DATE})"
    )
    try:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM {source}")
        return
    except duckdb.BinderException:
        pass  # old files lack a newer column: fall through to per-column defaults
    described = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    cols = ", ".join(
        f'"{f.name}"' if f.name in described else f'NULL::{_sql_type(f.type)} AS "{f.name}"'
        for f in schema
    )
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {cols} FROM {source}")


def set_memory_limit(con: Any, limit: str) -> None:
    """DuckDB's memory limit, or a ConfigError that says what a limit looks like, in one
    short line: the limit and DuckDB's reason are cut (a 100,000-character limit, pasted by
    mistake, was quoted whole, and DuckDB's "Unknown unit" quotes it again)."""
    try:
        con.execute("SET memory_limit = ?", [limit])
    except duckdb.Error as exc:
        # DuckDB's reason, without "Parser Error: " and the units it lists (said here)
        reason = " ".join(str(exc).split()).removeprefix("Parser Error: ")
        reason = reason.split(" (expected:")[0]
        raise ConfigError(
            f"Invalid memory limit {shorten(limit, 40)!r}: use a size such as 700MB or 2GB "
            f"({shorten(reason, 60)})"
        ) from None


def _sql_type(arrow_type: Any) -> str:
    """DuckDB's name for the Arrow types the lake's schemas use."""
    import pyarrow as pa

    if pa.types.is_list(arrow_type):
        return _sql_type(arrow_type.value_type) + "[]"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    simple = {
        pa.string(): "VARCHAR",
        pa.large_string(): "VARCHAR",
        pa.bool_(): "BOOLEAN",
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.float64(): "DOUBLE",
        pa.date32(): "DATE",
    }
    if arrow_type not in simple:
        raise TypeError(f"no DuckDB type for Arrow {arrow_type}")
    return simple[arrow_type]


def _configure_remote(con: duckdb.DuckDBPyConnection, lake: str) -> None:
    from tootlake.lake.s3 import configure_duckdb

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
                if _missing(storage, path):
                    raise LakeError(
                        f"The Delta log lists {path}, but the file is gone: removed by hand, "
                        "or by a VACUUM with a retention (--retain-files) shorter than this "
                        "read. Run the command again; if the file is still listed, the table "
                        "lost data, and only a backup of the file can bring its rows back"
                    ) from exc
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


def _missing(storage: Storage, path: str) -> bool:
    arrow_filesystem = getattr(storage, "arrow_filesystem", None)
    filesystem = arrow_filesystem() if arrow_filesystem is not None else None
    return _gone(filesystem, path.removeprefix("s3://") if filesystem is not None else path)


def _gone(filesystem: Any, source: str) -> bool:
    try:
        if filesystem is None:
            return not os.path.exists(source)
        from pyarrow import fs

        return bool(filesystem.get_file_info(source).type == fs.FileType.NotFound)
    except OSError:
        return False
