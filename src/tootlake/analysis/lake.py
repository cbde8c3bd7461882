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

from tootlake.errors import LakeError
from tootlake.record import arrow_schema, delete_arrow_schema, sighting_arrow_schema
from tootlake.sinks.layout import DELETES, POSTS, SIGHTINGS, is_remote, join
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

# The latest version of a post wins (edits carry edited_at); among equal versions the one seen
# on the author's own server, which alone carries the app and true counts, then the newest.
POSTS_VIEW = """
CREATE OR REPLACE VIEW posts AS
WITH deleted AS (
    SELECT uri FROM deletes WHERE uri IS NOT NULL
    UNION
    SELECT a.uri FROM posts_all a JOIN deletes d ON a.observed_on = d.observed_on AND a.id = d.id
    UNION
    SELECT s.uri FROM sightings s JOIN deletes d ON s.observed_on = d.observed_on AND s.id = d.id
)
SELECT * EXCLUDE (version_rank) FROM (
    SELECT *, row_number() OVER (
        PARTITION BY uri
        ORDER BY coalesce(edited_at, created_at) DESC, local DESC, ingested_at DESC
    ) AS version_rank
    FROM posts_all
    WHERE uri NOT IN (SELECT uri FROM deleted)
)
WHERE version_rank = 1
"""


def open_lake(
    lake: str,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake's views `posts`, `posts_all`, `deletes` and
    `sightings` (`sightings_all` holds its rows as written)."""
    con = connection or duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # times are UTC in the lake; show them as such
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    storage = storage_for(lake)
    if is_remote(lake):
        _configure_remote(con, lake)
    _create_view(con, "posts_all", lake, POSTS, storage, arrow_schema())
    _create_view(con, "deletes", lake, DELETES, storage, delete_arrow_schema())
    _create_view(con, "sightings_all", lake, SIGHTINGS, storage, sighting_arrow_schema())
    con.execute(SIGHTINGS_VIEW)
    con.execute(POSTS_VIEW)
    return con


def _create_view(
    con: duckdb.DuckDBPyConnection, name: str, lake: str, table: str, storage: Any, schema: Any
) -> None:
    columns = ", ".join(f'"{f.name}"' for f in schema)
    try:
        has_files = bool(storage.list(join(lake, table)))
    except Exception as exc:  # storage errors name the lake; a bad lake is not a bug
        raise LakeError(f"Cannot list the lake at {lake}: {exc}") from exc
    if has_files:
        pattern = join(lake, table, "*", "*.parquet").replace("'", "''")
        # union_by_name: files written before a column was added read it as NULL.
        source = f"read_parquet('{pattern}', union_by_name = true, hive_partitioning = false)"
        try:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM {source}")
            return
        except duckdb.BinderException:
            pass  # an old file lacks a newer column: fall through to per-column defaults
        described = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        cols = ", ".join(
            f'"{f.name}"' if f.name in described else f'NULL AS "{f.name}"' for f in schema
        )
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {cols} FROM {source}")
        return
    # An empty lake still answers every query, with no rows.
    con.register(f"_empty_{name}", schema.empty_table())
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM _empty_{name}")


def _configure_remote(con: duckdb.DuckDBPyConnection, lake: str) -> None:
    from tootlake.sinks.s3 import configure_duckdb

    configure_duckdb(con, lake)
