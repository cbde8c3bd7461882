"""The lake's `audit` table: one row per run of a command that wrote to the lake (collect,
replay, compact, enrich, migrate), append-only, so that whoever reads the lake can tell how it
was made: when, by which tootlake, under which instance policy (its SHA-256) and consent mode,
whether it was pseudonymised, from which instances, what the opt-out gates skipped, which
deletes were applied, what retention removed, and which posts got a detected language.
`tootlake datasheet` reads it.

Appended with `tootlake.lake.tables.append` (a Delta commit, partitioned by the `date` of
`started_at`). A failure to write it is logged and does not fail the run: the run's data is
committed already. Nothing secret goes in (no token, no key: a key's id at most).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tootlake._version import __version__
from tootlake.lake import tables
from tootlake.lake.layout import AUDIT

__all__ = ["AUDIT_SCHEMA", "AuditEntry", "record_run"]

log = logging.getLogger(__name__)


_TIME = pa.timestamp("us", tz="UTC")
AUDIT_SCHEMA = pa.schema(
    [
        pa.field("started_at", _TIME),
        pa.field("ended_at", _TIME),
        pa.field("command", pa.string()),  # collect, replay, compact, enrich, migrate
        pa.field("tootlake_version", pa.string()),
        pa.field("policy_sha256", pa.string()),  # of the --policy file; null: none
        # opt-out | opt-in | none, with +skip-locked, +skip-bots (tootlake.record.Consent)
        pa.field("consent", pa.string()),
        pa.field("pseudonymised", pa.bool_()),
        pa.field("key_id", pa.string()),  # the pseudonymisation key's id; null: none
        pa.field("instances", pa.list_(pa.string())),  # read in this run
        pa.field("refused", pa.list_(pa.string())),  # denied by the policy, not read
        # per instance: mode, status, version, rules_sha256 (when known), denial reason
        pa.field("instances_json", pa.string()),
        pa.field("posts", pa.int64()),
        pa.field("edits", pa.int64()),
        pa.field("deletes_received", pa.int64()),  # delete events written
        pa.field("deleted_rows_removed", pa.int64()),  # rows compaction removed for deletes
        pa.field("rejected", pa.int64()),
        pa.field("skipped_json", pa.string()),  # posts skipped by reason (the gates), JSON
        pa.field("retain_days", pa.float64()),  # null: no retention in this run
        pa.field("retention_removed", pa.int64()),
        pa.field("stats_json", pa.string()),  # the run's whole statistics, JSON
        # deletes `tootlake revalidate` found and wrote (null in rows written before it)
        pa.field("deletes_revalidated", pa.int64()),
    ]
)


@dataclass
class AuditEntry:
    command: str
    started_at: datetime
    ended_at: datetime | None = None
    policy_sha256: str | None = None
    consent: str | None = None  # the policy of a run that made records (collect, replay...)
    pseudonymised: bool = False
    key_id: str | None = None
    instances: Sequence[str] = ()
    refused: Sequence[str] = ()
    instance_details: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    posts: int = 0
    edits: int = 0
    deletes_received: int = 0
    deleted_rows_removed: int = 0
    rejected: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    retain_days: float | None = None
    retention_removed: int = 0
    stats: Mapping[str, Any] = field(default_factory=dict)
    deletes_revalidated: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.astimezone(UTC),
            "ended_at": (self.ended_at or datetime.now(UTC)).astimezone(UTC),
            "command": self.command,
            "tootlake_version": __version__,
            "policy_sha256": self.policy_sha256,
            "consent": self.consent,
            "pseudonymised": self.pseudonymised,
            "key_id": self.key_id,
            "instances": list(self.instances),
            "refused": list(self.refused),
            "instances_json": _json(self.instance_details),
            "posts": self.posts,
            "edits": self.edits,
            "deletes_received": self.deletes_received,
            "deleted_rows_removed": self.deleted_rows_removed,
            "rejected": self.rejected,
            "skipped_json": _json(self.skipped),
            "retain_days": self.retain_days,
            "retention_removed": self.retention_removed,
            "stats_json": _json(self.stats),
            "deletes_revalidated": self.deletes_revalidated,
        }


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def audit_table(entries: Sequence[AuditEntry]) -> pa.Table:
    data = pa.Table.from_pylist([e.row() for e in entries], schema=AUDIT_SCHEMA)
    day = pc.cast(data.column("started_at"), pa.date32())
    return data.append_column(tables.DATE_FIELD, day)


def record_run(lake: str, entry: AuditEntry) -> bool:
    """Append `entry` to the lake's `audit` table. A failure is one WARNING (the run's own
    data is committed already) and returns False."""
    from tootlake.redact import redact_json

    entry.stats = redact_json(dict(entry.stats))
    # (each instance's health holds servers' error text, which may echo a token)
    entry.instance_details = redact_json(dict(entry.instance_details))
    entry.refused = redact_json(list(entry.refused))
    try:
        if entry.key_id is None:  # compact, enrich...: the lake says whether it is
            from tootlake.lake.pseudonyms import lake_key_id

            entry.key_id = lake_key_id(lake)
            entry.pseudonymised = entry.key_id is not None
        tables.append(
            lake,
            AUDIT,
            audit_table([entry]),
            metadata=tables.commit_metadata(operation="audit", command=entry.command),
        )
    except Exception as exc:  # noqa: BLE001 - any storage failure: the run itself succeeded
        log.warning("Cannot write the audit row of this %s to %s: %s", entry.command, lake, exc)
        return False
    return True
