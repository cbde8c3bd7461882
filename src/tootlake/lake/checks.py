"""The lake's `checks` table: one row per post `tootlake revalidate` asked an instance about,
append-only, so a run that stops (a budget, Ctrl-C, a kill) is continued by the next one,
which skips what was checked recently.

A post is named as the lake's `posts` names where it was seen: (`observed_on`, `id`), the
instance and the id it gave; no uri, text or account. `outcome` is what the answer meant:
`present`, `deleted` (404/410), `account_gone`, a consent gate's name (`not_public`,
`noindex`, `opt_out_tag`...) or `error` (asked again by the next run: an error never counts
as a check). Appended with `tootlake.lake.tables.append`, partitioned by the `date` of
`checked_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from tootlake.lake import tables
from tootlake.lake.layout import CHECKS

__all__ = ["CHECKS_SCHEMA", "ERROR", "Check", "append_checks"]

ERROR = "error"  # an answer that said nothing (5xx, timeout, refused): asked again next run

CHECKS_SCHEMA = pa.schema(
    [
        pa.field("observed_on", pa.string()),  # the instance asked
        pa.field("id", pa.string()),  # the status id that instance gave the post
        pa.field("checked_at", pa.timestamp("us", tz="UTC")),
        pa.field("outcome", pa.string()),  # present, deleted, account_gone, a gate, error
        pa.field("http_status", pa.int64()),  # of the status lookup; null: no answer
    ]
)


@dataclass(frozen=True, slots=True)
class Check:
    observed_on: str
    id: str
    checked_at: datetime
    outcome: str
    http_status: int | None = None


def checks_table(checks: Sequence[Check]) -> pa.Table:
    """The rows of `checks`, with their `date` partition column."""
    data = pa.Table.from_pylist(
        [
            {
                "observed_on": c.observed_on,
                "id": c.id,
                "checked_at": c.checked_at,
                "outcome": c.outcome,
                "http_status": c.http_status,
            }
            for c in checks
        ],
        schema=CHECKS_SCHEMA,
    )
    day = pc.cast(data.column("checked_at"), pa.date32())
    return data.append_column(tables.DATE_FIELD, day)


def append_checks(lake: str, checks: Sequence[Check]) -> None:
    """Append `checks` to the lake's `checks` table in one Delta commit (LakeError when it
    cannot)."""
    if checks:
        tables.append(
            lake,
            CHECKS,
            checks_table(checks),
            metadata=tables.commit_metadata(operation="revalidate"),
        )
