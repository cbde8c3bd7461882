"""Where things live in the lake. The contract with analysts (docs/lake.md):

    LAKE/posts/date=YYYY-MM-DD/<name>.parquet     one row per version of a post, by created_at
    LAKE/deletes/date=YYYY-MM-DD/<name>.parquet   one row per delete event, by deleted_at
    LAKE/sightings/date=YYYY-MM-DD/<name>.parquet one row per (instance, local id) a post was
                                                  seen as, by seen_at (written by `collect`)
    LAKE/rejects/date=YYYY-MM-DD/<name>.parquet   one row per status that could not become a
                                                  post (invalid), by rejected_at
    LAKE/_tootlake/...                            tootlake's own state, never read as data

The lake is append-only; `tootlake.analysis.lake` resolves versions and deletes when reading.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, date, datetime

__all__ = [
    "POSTS",
    "DELETES",
    "SIGHTINGS",
    "REJECTS",
    "partition_dir",
    "file_name",
    "is_remote",
    "join",
]

POSTS = "posts"
DELETES = "deletes"
SIGHTINGS = "sightings"
REJECTS = "rejects"


def is_remote(lake: str) -> bool:
    return "://" in lake and not lake.startswith("file://")


def join(lake: str, *parts: str) -> str:
    if is_remote(lake):
        return "/".join([lake.rstrip("/"), *parts])
    return os.path.join(lake.removeprefix("file://"), *parts)


def partition_dir(lake: str, table: str, day: date) -> str:
    return join(lake, table, f"date={day.isoformat()}")


def file_name(prefix: str = "part", *, offset: int | None = None) -> str:
    """A data file's name. With an offset (Kafka), a replay of the same offsets overwrites the
    same file instead of adding a duplicate; without one, time and randomness keep names unique
    and sortable by write time."""
    if offset is not None:
        return f"{prefix}+{offset:020d}.parquet"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{prefix}-{stamp}-{secrets.token_hex(4)}.parquet"
