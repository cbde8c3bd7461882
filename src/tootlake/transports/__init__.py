"""Transports carry batches of records from the sources to the sink.

`memory` is the embedded default (a bounded in-process queue); `kafka` is the scale-out one.
Commit order, written once here: the sink makes a batch durable, then the transport commits
it (acks it upstream, advances offsets or cursors). A crash between the two replays the batch,
which the lake absorbs because its views resolve duplicate versions by `uri`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tootlake.record import Delete, Post, Reject, Sighting

__all__ = ["Batch", "Transport"]

Record = Post | Delete | Sighting | Reject


@dataclass(slots=True)
class Batch:
    records: Sequence[Record]
    acks: list[Callable[[], None]] = field(default_factory=list)


class Transport(Protocol):
    def send(self, batch: Batch) -> None: ...

    def receive(self, timeout: float) -> Batch | None: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...
