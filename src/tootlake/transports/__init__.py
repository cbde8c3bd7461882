"""Transports carry batches of records from the sources to a sink; the write path's protocols
and its one loop live here.

Two sides, so that each transport implements only what it does:

    Sender     send / flush / close       where a source's batches go: `memory` (the embedded
                                          default, a bounded in-process queue) and
                                          `tootlake.kafka.producer` (a Kafka topic)
    Receiver   receive / commit           where a sink's batches come from: `memory` (which
                                          keeps a batch's acks, and gives the sink its records)
                                          and, inside `tootlake.kafka.sink`, a consumer group
    Sink       add / due / flush          where batches become durable: the lake's writer
                                          (`tootlake.lake.writer.LakeWriter`) and the Kafka sink
                                          worker's partitions

The commit order, written once (`drain`, `flush_then_commit`): the sink makes a batch durable,
then the receiver commits it (acks it upstream, advances offsets or cursors). A crash between
the two replays the batch, which the lake absorbs: its views resolve duplicate versions by
`uri`, and the Kafka sink worker's Delta marks drop rows a table holds already. The producer
has its own form of the same order: a batch's acks fire once Kafka has every message of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from tootlake.record import Delete, Post, Reject, Sighting
from tootlake.text import shorten

__all__ = [
    "Batch",
    "KeepWriting",
    "Receiver",
    "Record",
    "Sender",
    "Sink",
    "Transport",
    "drain",
    "flush_then_commit",
]

log = logging.getLogger(__name__)

_REASON_CHARS = 1_000  # of an outage's error, in its log line

Record = Post | Delete | Sighting | Reject

B = TypeVar("B")
B_co = TypeVar("B_co", covariant=True)
B_contra = TypeVar("B_contra", contravariant=True)


@dataclass(slots=True)
class Batch:
    records: Sequence[Record]
    acks: list[Callable[[], None]] = field(default_factory=list)


class Sender(Protocol):
    """The sending side of a transport."""

    def send(self, batch: Batch) -> None:
        """Take a batch; may block while the transport is full (backpressure on the source)."""

    def flush(self, timeout: float | None = None) -> int:
        """Wait until what was sent has left (or `timeout`); how much has not."""

    def close(self) -> None:
        """No more batches."""


class Receiver(Protocol[B_co]):
    """The receiving side: batches come out, and are committed once a sink made them durable."""

    def receive(self, timeout: float) -> B_co | None:
        """The next batch, or None when none came within `timeout` (or none will)."""

    def commit(self) -> None:
        """What the sink made durable so far is committed upstream (acks, offsets)."""


class Transport(Sender, Receiver[Sequence[Record]], Protocol):
    """Both sides in one process: a source's thread sends batches, the sink's thread receives
    their records; `commit` fires the acks of what was received."""


class Sink(Protocol[B_contra]):
    """Where received batches become durable."""

    def add(self, batch: B_contra) -> None:
        """Buffer a batch (a sink may start writing it at once, e.g. when a buffer is full)."""

    def due(self) -> bool:
        """True when `flush` has work now: a buffer big or old enough, or writes finished."""

    def flush(self, *, wait: bool = True) -> object:
        """Make durable what is due, and with `wait` everything added so far. When it returns,
        the receiver may commit what is durable: the in-process transport commits everything
        it gave out, so it goes with a sink that writes everything at every flush
        (`LakeWriter`); the Kafka sink worker's flushes run on a pool, and its receiver
        commits only the offsets of flushes that finished. A failure raises, and nothing of
        what failed is committed."""


def flush_then_commit(
    sink: Sink[B],
    receiver: Receiver[B],
    *,
    wait: bool = True,
    then: Callable[[], None] | None = None,
    keep: KeepWriting | None = None,
) -> None:
    """The commit order: the sink makes its batches durable, then the receiver commits them
    upstream, then `then` (e.g. the collector saving the cursors the acks advanced). With
    `keep`, a flush failing with one of its errors commits nothing and is noted there."""
    if keep is None:
        sink.flush(wait=wait)
    else:
        try:
            sink.flush(wait=wait)
        except keep.errors as exc:
            keep.failed(exc)
            return
        keep.wrote()
    receiver.commit()
    if then is not None:
        then()


@dataclass
class KeepWriting:
    """How `drain` rides out a sink that cannot write for a while (a full disk, an object store
    refusing or out of reach): what failed stays in the sink, uncommitted, and the flush is
    tried again after `first` seconds, then twice as long each time, up to `most`. Meanwhile
    `drain` receives only while the sink holds less than `hold` bytes (`held()`), so the
    source waits instead of memory growing; once `stopping()`, it receives again, so that the
    source can end (what it still sends is bounded by its queue). An outage's first failure is
    logged with its error, its end with how long it lasted; `failures` counts every failed
    try. Other errors still raise."""

    errors: tuple[type[BaseException], ...]
    held: Callable[[], int]
    hold: int
    stopping: Callable[[], bool] = lambda: False
    first: float = 1.0
    most: float = 60.0
    failures: int = 0
    since: float | None = None  # when the outage began (monotonic); None: writing
    _next: float = 0.0
    _wait: float = 0.0
    _tries: int = 0  # failed tries of this outage
    _counted: float = 0.0  # when the last failure counted as a try came

    def ready(self) -> bool:
        """True when a flush may be tried now."""
        return self.since is None or time.monotonic() >= self._next

    def paused(self) -> bool:
        """True while receiving more would grow what the failing sink holds past `hold`."""
        return self.since is not None and self.held() >= self.hold and not self.stopping()

    def failed(self, exc: BaseException, started: float | None = None) -> None:
        """A try failed. Failures before the next try is due are of the same try (a Kafka
        sink's partitions, flushed at once, fail together): counted once, waited for once.
        So is one of a flush `started` (monotonic) before the last failure counted: flushes
        handed to a pool together, some of which waited for a thread and failed late."""
        now = time.monotonic()
        if self.since is not None and (
            now < self._next or (started is not None and started < self._counted)
        ):
            return
        self._counted = now
        self.failures += 1
        if self.since is None:
            self.since, self._wait, self._tries = now, self.first, 0
            log.error(
                "Cannot write the batches held (%d bytes); keeping them and trying again, "
                "every %d s at most: %s",
                self.held(),
                self.most,
                shorten(str(exc), _REASON_CHARS),  # (a store's error may quote a whole body)
            )
        else:
            self._wait = min(self._wait * 2, self.most)
        self._tries += 1
        self._next = now + self._wait

    def wrote(self) -> None:
        if self.since is not None:
            log.warning(
                "Writing again after %.0f s and %d failed %s; nothing was lost",
                time.monotonic() - self.since,
                self._tries,
                "try" if self._tries == 1 else "tries",
            )
            self.since = None


def drain(
    receiver: Receiver[B],
    sink: Sink[B],
    *,
    finished: Callable[[B | None], bool],
    on_commit: Callable[[], None] | None = None,
    on_tick: Callable[[], None] | None = None,
    timeout: float = 0.5,
    keep: KeepWriting | None = None,
) -> None:
    """The write path's loop, shared by the embedded pipeline and the Kafka sink worker: receive
    a batch (waiting up to `timeout`), add it to the sink, and whenever the sink is due, flush
    then commit (`flush_then_commit`, without waiting for writes still under way); `on_tick`
    after each round. When `finished(the batch received)` says so, everything left is flushed
    and committed, waiting for it. An exception leaves what was not flushed uncommitted.
    `keep`: ride out a sink that cannot write for a while (`KeepWriting`); the last flush is
    tried once, and raises if it fails."""
    while True:
        if keep is not None and keep.paused():
            batch = None
            time.sleep(timeout)
        else:
            batch = receiver.receive(timeout)
        if batch is not None:
            sink.add(batch)
        if sink.due() and (keep is None or keep.ready()):
            flush_then_commit(sink, receiver, wait=False, then=on_commit, keep=keep)
        if on_tick is not None:
            on_tick()
        if finished(batch):
            break
    flush_then_commit(sink, receiver, then=on_commit)
    if keep is not None:
        keep.wrote()
