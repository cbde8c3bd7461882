"""Whether a lake is pseudonymised, and with which key: `LAKE/_tootlake/pseudonymised.json`.

A pseudonymised lake holds a small marker (`{"pseudonymised": true, "key_id": ...}`, written
atomically through `tootlake.lake.storage`, so an S3 lake has it too) from its first
pseudonymised write on. Every writer checks it before writing anything (`claim`): a raw write
to a pseudonymised lake, a pseudonymised write to a lake that holds raw data, or a write
under another key fails with a message that says which. The key itself is never stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tootlake.errors import ConfigError, LakeError
from tootlake.lake import tables
from tootlake.lake.layout import (
    DELETES,
    LANGUAGES,
    META,
    POSTS,
    POSTS_ALL,
    REJECTS,
    SIGHTINGS,
    join,
)
from tootlake.lake.storage import storage_for

__all__ = ["MARKER", "claim", "holds_data", "lake_key_id"]

MARKER = (META, "pseudonymised.json")
# Tables whose rows come from statuses: a lake with any of them holds data of its mode.
_DATA_TABLES = (POSTS_ALL, POSTS, DELETES, SIGHTINGS, REJECTS, LANGUAGES)
_MARKER_LIMIT = 64 * 1024  # bytes: a marker is a few dozen


def lake_key_id(lake: str) -> str | None:
    """The key id of a pseudonymised lake; None for a raw one (no marker)."""
    marker = _read(lake)
    return None if marker is None else marker["key_id"]


def _read(lake: str) -> dict[str, Any] | None:
    path = join(lake, *MARKER)
    try:
        data = storage_for(lake).read(path)
    except FileNotFoundError:
        return None
    try:
        if len(data) > _MARKER_LIMIT:
            raise ValueError("too large")
        marker = json.loads(data)
        if not isinstance(marker, dict) or not isinstance(marker.get("key_id"), str):
            raise ValueError("no key_id")
    except (ValueError, RecursionError) as exc:  # (a marker of 60,000 `[`: too deep)
        raise LakeError(
            f"The pseudonymisation marker {path} is damaged ({exc}): it must hold the key id "
            "of the lake's key; restore it, or write to another lake."
        ) from exc
    return marker


def holds_data(lake: str) -> str | None:
    """The first table of the lake that holds rows from statuses, or None."""
    for table in _DATA_TABLES:
        if tables.is_table(lake, table):
            return table
    return None


def claim(lake: str, key_id: str | None) -> None:
    """Check that a write of this mode may go to `lake` (`key_id`: the pseudonymisation key's
    id; None: a raw write) and, for the first pseudonymised write, mark the lake. Raises a
    ConfigError that says what is wrong, before anything is written, when it may not."""
    marker = _read(lake)
    if marker is not None:
        have = marker["key_id"]
        if key_id is None:
            raise ConfigError(
                f"The lake {lake} is pseudonymised (key id {have}): a raw write would mix raw "
                "identifiers into it. Give --pseudonymize KEYFILE with that key, or another "
                "lake."
            )
        if key_id != have:
            raise ConfigError(
                f"The lake {lake} is pseudonymised with another key (key id {have}, this key "
                f"is {key_id}): its pseudonyms would not match. Give the key with id {have}, "
                "or another lake."
            )
        return
    if key_id is None:
        return
    table = holds_data(lake)
    if table is not None:
        raise ConfigError(
            f"The lake {lake} holds raw (not pseudonymised) data (its {table} table): a "
            "pseudonymised write would mix pseudonyms with raw identifiers. Write to a new "
            "lake, or collect without --pseudonymize."
        )
    record = {
        "pseudonymised": True,
        "key_id": key_id,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "doc": "docs/pseudonymisation.md",
    }
    storage_for(lake).write_atomic(
        join(lake, *MARKER), json.dumps(record, indent=1, sort_keys=True).encode()
    )
