"""Sources: where statuses come from. Each yields `Event`s; the pipeline turns them into posts.

A source knows the protocol it reads (a file, a stream, a timeline) and nothing of the lake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from tootlake.record import RAW_LIMIT, Reject, Rejection
from tootlake.record.status import Status
from tootlake.redact import redact

__all__ = ["DELETE", "EDIT", "REJECT", "UPDATE", "Event", "Source", "reject_event"]

UPDATE = "update"
EDIT = "status.update"
DELETE = "delete"
REJECT = "reject"  # what came could not become a post: kept in the rejects table


class Event(msgspec.Struct):
    """One thing an instance told us: a new status, an edit, or the delete of a local id.
    (A Struct: made per event, it costs a fifth of a dataclass to build.)"""

    kind: str  # UPDATE, EDIT, DELETE or REJECT
    observed_on: str | None
    status: Status | None = None  # UPDATE and EDIT: validated at the edge
    id: str | None = None  # DELETE: the status id on observed_on
    where: str = ""  # file:line or instance, for error messages
    ack: Callable[[], None] | None = None  # called once the event is durable in the lake
    reject: Reject | None = None  # REJECT

    @property
    def size(self) -> int:
        """Bytes it holds, about: what buffers count besides events."""
        if self.status is not None:
            return self.status.size
        if self.reject is not None:
            return 512 + len(self.reject.raw)
        return 256


def reject_event(
    rejection: Rejection,
    raw: bytes | str,
    *,
    source: str,
    observed_on: str | None,
    where: str,
    ack: Callable[[], None] | None = None,
) -> Event:
    """The event of a payload that could not become a post, with its first 64 KiB kept."""
    text = (
        raw[:RAW_LIMIT] if isinstance(raw, str) else raw[: RAW_LIMIT * 4].decode("utf-8", "replace")
    )
    reject = Reject(
        rejected_at=datetime.now(UTC),
        source=source,
        observed_on=observed_on,
        where=where,
        # a server may echo what it was sent: no token reaches the lake through a reject
        reason=redact(rejection.reason[:1000]),
        field=rejection.field,
        raw=redact(text[:RAW_LIMIT]),
    )
    return Event(REJECT, observed_on, where=where, ack=ack, reject=reject)


class Source(Protocol):
    """Anything that yields events; bad input is reported through `on_bad`, never raised."""

    def events(self) -> Iterator[Event]: ...
