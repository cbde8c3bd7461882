"""The fleet loop's selector: it reads the servers' sockets in gathers, not message by message.

A stream's socket becomes readable for each message a server sends. At thousands of posts a
second, waking the loop for each one (a wait, a read, the callbacks around them) cost about
as much CPU as reading the message. So once a wait found sockets ready, the next wait starts
`gap` seconds later at the earliest, and what arrived meanwhile is read together; TCP holds
it until then. A post reaches the bridge up to `gap` later (the lake commits every few
seconds anyway), and only while the loop keeps up: once it is busy more than half the time
(a flood, a fleet at its ceiling) it stops gathering, so its pace is never capped by it.
Measured in docs/design/fused-receive.md.
"""

from __future__ import annotations

import selectors
import time
from typing import Any

BUSY = 0.5  # the share of time the loop works (not waits) beyond which it stops gathering
# The longest gap: while it sleeps the loop cannot be woken (a stop waits for the gap's end).
MAX_GAP = 1.0
WINDOW = 0.1  # seconds over which that share is measured


class GatheringSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """`selectors.DefaultSelector` whose `select` gathers (see the module); `gap` 0: plain."""

    def __init__(self, gap: float) -> None:
        if not 0 <= gap <= MAX_GAP:  # (NaN fails it too)
            raise ValueError(
                f"Invalid gather gap {gap!r}: give seconds from 0 (off) to {MAX_GAP:g}."
            )
        super().__init__()
        self.gap = gap
        self.gathering = gap > 0  # whether the loop keeps up (measured every WINDOW)
        self._resume = 0.0  # when the next wait may start: a ready wait's return + gap
        self._window = time.monotonic()
        self._waited = 0.0  # seconds spent waiting (sleeping or selecting) in this window

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        start = time.monotonic()
        wait = self._resume - start
        if self.gathering and wait > 0:
            if timeout is not None and timeout < wait:
                # callbacks (0) or a timer are due before the gap ends: they run, and the
                # sockets gather on
                if timeout > 0:
                    time.sleep(timeout)
                self._measure(start)
                return []
            time.sleep(wait)
            if timeout is not None:
                timeout -= wait
        ready = super().select(timeout)
        end = self._measure(start)
        if ready:
            self._resume = end + self.gap
        return ready  # type: ignore[no-any-return]

    def _measure(self, start: float) -> float:
        """Count a wait from `start`; at a window's end, gather on only if the loop waited
        more than (1 - BUSY) of it. Gives the time now."""
        end = time.monotonic()
        self._waited += end - start
        if end - self._window >= WINDOW:
            self.gathering = self.gap > 0 and self._waited > (1 - BUSY) * (end - self._window)
            self._window, self._waited = end, 0.0
        return end
