"""DuckDB over the lake: the views every analysis reads.

    posts_all   every version of every post, as written (one row per sighting and edit)
    deletes     every delete event
    sightings   one row per (instance, local id) a post was seen as, first time seen
    posts       one row per uri: the latest version, deleted posts removed

Resolving versions when reading keeps the lake append-only: replaying input twice, or a sink
retrying a batch, adds rows that `posts` folds away.
"""

from __future__ import annotations

from typing import Any

import duckdb

from tootlake.record import arrow_schema, delete_arrow_schema, sighting_arrow_schema
from tootlake.sinks.layout import DELETES, POSTS, SIGHTINGS, is_remote
from tootlake.sinks.snapshot import create_view, read_snapshot
from tootlake.sinks.storage import storage_for

__all__ = ["open_lake", "POSTS_VIEW", "SIGHTINGS_VIEW"]

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
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake's views `posts`, `posts_all`, `deletes` and
    `sightings` (`sightings_all` holds its rows as written).

    The views read the files that made up the lake when it was opened (a snapshot: see
    `tootlake.sinks.snapshot`), so a compaction running meanwhile is seen whole or not at all.
    Call `open_lake(lake, connection=con)` again to see files written since.
    """
    con = connection or duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # times are UTC in the lake; show them as such
    # Every query binds the views again, reading each file's footer: keep them (files are
    # never rewritten in place; a file rewritten by a replay has a new mtime, which DuckDB checks).
    con.execute("SET parquet_metadata_cache = true")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    storage = storage_for(lake)
    if is_remote(lake):
        _configure_remote(con, lake)
    snapshot = read_snapshot(storage, lake)
    _create_view(con, "posts_all", snapshot.paths(POSTS), storage, arrow_schema())
    _create_view(con, "deletes", snapshot.paths(DELETES), storage, delete_arrow_schema())
    _create_view(con, "sightings_all", snapshot.paths(SIGHTINGS), storage, sighting_arrow_schema())
    con.execute(SIGHTINGS_VIEW)
    versions = _VERSIONS_ALL
    if snapshot.manifest.unique_posts:
        compacted, fresh = snapshot.compacted_paths(POSTS)
        if compacted:
            versions = _VERSIONS_FRESH if fresh else _VERSIONS_NONE
            _create_view(con, "_posts_compacted", compacted, storage, arrow_schema())
            _create_view(con, "_posts_fresh", fresh, storage, arrow_schema())
    _create_posts_view(con, versions)
    return con


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
