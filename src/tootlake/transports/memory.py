"""The embedded transport: a bounded in-process queue between the source and the sink."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence

from tootlake.transports import Batch, Record

__all__ = ["MemoryTransport"]

_CLOSED = object()


class MemoryTransport:
    """A bounded queue of batches (both sides of `tootlake.transports.Transport`). `send`
    blocks when full: backpressure on the source. `receive` gives a batch's records and keeps
    its acks, which `commit` fires once the sink has made them durable."""

    # Two or three batches keep the sink busy; more only hold memory (a batch of 2,000 posts
    # is about 2 MB): under a flood, 64 made the queue alone 140 MB.
    def __init__(self, max_batches: int = 4) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_batches)
        self._pending: list[Callable[[], None]] = []
        self.closed = False

    # -- the sending side ------------------------------------------------------------------

    def send(self, batch: Batch) -> None:
        self._queue.put(batch)

    def flush(self, timeout: float | None = None) -> int:
        """Wait until the receiving side has taken every batch (or `timeout`); batches left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.qsize() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.01)
        return self._queue.qsize()

    def close(self) -> None:
        """No more batches; `receive` returns None once the queue is drained."""
        self._queue.put(_CLOSED)

    # -- the receiving side ----------------------------------------------------------------

    def receive(self, timeout: float) -> Sequence[Record] | None:
        if self.closed:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self.closed = True
            return None
        assert isinstance(item, Batch)
        self._pending.extend(item.acks)
        return item.records

    def commit(self) -> None:
        """Everything received so far is durable: acknowledge it upstream, in order."""
        pending, self._pending = self._pending, []
        for ack in pending:
            ack()
