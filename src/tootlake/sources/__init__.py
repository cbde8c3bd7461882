"""Sources: where statuses come from. Each yields `Event`s; the pipeline turns them into posts.

A source knows the protocol it reads (a file, a stream, a timeline) and nothing of the lake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Event", "Source", "UPDATE", "EDIT", "DELETE"]

UPDATE = "update"
EDIT = "status.update"
DELETE = "delete"


@dataclass(slots=True)
class Event:
    """One thing an instance told us: a new status, an edit, or the delete of a local id."""

    kind: str  # UPDATE, EDIT or DELETE
    observed_on: str | None
    status: dict[str, Any] | None = None  # UPDATE and EDIT
    id: str | None = None  # DELETE: the status id on observed_on
    where: str = ""  # file:line or instance, for error messages
    ack: Callable[[], None] | None = None  # called once the event is durable in the lake


class Source(Protocol):
    """Anything that yields events; bad input is reported through `on_bad`, never raised."""

    def events(self) -> Iterator[Event]: ...
