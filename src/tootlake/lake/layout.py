"""Where things live in the lake. The contract with analysts (docs/lake.md):

    LAKE/posts_all/   Delta table: one row per version of a post (every copy, every edit),
                      append-only, partitioned by `date` (of created_at)
    LAKE/posts/       Delta table: one row per uri, its latest version, deleted posts absent;
                      maintained by MERGE from the other tables (`tootlake.lake.maintenance`)
    LAKE/deletes/     Delta table: one row per delete event, by `date` of deleted_at
    LAKE/sightings/   Delta table: one row per (instance, local id) a post was seen as, by seen_at
    LAKE/rejects/     Delta table: one row per status that could not become a post, by rejected_at
    LAKE/languages/   Delta table: one row per post whose language `tootlake enrich` detected,
                      by detected_at (`tootlake.lake.enrich`)
    LAKE/audit/       Delta table: one row per run of collect, replay or compact, by started_at
                      (`tootlake.lake.audit`)
    LAKE/checks/      Delta table: one row per post `tootlake revalidate` asked its instance
                      about, by checked_at (`tootlake.lake.checks`)
    LAKE/_tootlake/   tootlake's own state (run statistics, dead letters), never read as data

Every table is a Delta Lake table (a `_delta_log` folder next to Parquet files), so Spark,
Trino, polars, DuckDB and delta-rs read the same rows tootlake does.
"""

from __future__ import annotations

import os

__all__ = [
    "POSTS",
    "POSTS_ALL",
    "DELETES",
    "SIGHTINGS",
    "REJECTS",
    "LANGUAGES",
    "AUDIT",
    "CHECKS",
    "META",
    "TABLES",
    "is_remote",
    "join",
]

POSTS_ALL = "posts_all"
POSTS = "posts"
DELETES = "deletes"
SIGHTINGS = "sightings"
REJECTS = "rejects"
LANGUAGES = "languages"  # written by `tootlake enrich`, not by the collector
AUDIT = "audit"  # one row per run of collect, replay, compact, enrich, migrate (lake.audit)
CHECKS = "checks"  # one row per post revalidate asked about (`tootlake.lake.checks`)
META = "_tootlake"
# The tables writers append to (posts is made from them).
TABLES = (POSTS_ALL, DELETES, SIGHTINGS, REJECTS)


def is_remote(lake: str) -> bool:
    return "://" in lake and not lake.startswith("file://")


def join(lake: str, *parts: str) -> str:
    if is_remote(lake):
        return "/".join([lake.rstrip("/"), *parts])
    return os.path.join(lake.removeprefix("file://"), *parts)
