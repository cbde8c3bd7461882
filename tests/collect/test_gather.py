"""The fleet loop's gathering selector (`tootlake.sources.gather`) on real sockets: once a
wait found a socket ready, the next read comes `gap` later, with what arrived meanwhile; due
callbacks and timers are not held; a loop busy more than half the time stops gathering, and
starts again once it keeps up. Gaps are long (0.3 s) so that the bounds hold on a loaded
machine: only lower bounds are asserted where it waits, and far larger upper ones where not."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from tootlake.sources.gather import MAX_GAP, WINDOW, GatheringSelector

GAP = 0.3


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def _listening(ours: socket.socket, gap: float = GAP) -> GatheringSelector:
    selector = GatheringSelector(gap)
    selector.register(ours, 1)
    return selector


def test_a_read_waits_the_gap_and_gets_what_came_meanwhile(pair):
    ours, theirs = pair
    selector = _listening(ours)
    theirs.send(b"first")
    assert [key.fileobj for key, _ in selector.select(None)] == [ours]
    read = time.monotonic()
    assert ours.recv(100) == b"first"
    theirs.send(b"second")
    theirs.send(b"third")
    # within the gap: a poll for due callbacks finds nothing, a due timer is not held
    assert selector.select(0) == []
    started = time.monotonic()
    assert selector.select(0.05) == []
    assert time.monotonic() - started < GAP
    assert [key.fileobj for key, _ in selector.select(None)] == [ours]
    assert time.monotonic() - read >= GAP * 0.99  # (monotonic clocks: no slack needed)
    assert ours.recv(100) == b"secondthird"  # one read for both
    selector.close()


def test_a_busy_loop_stops_gathering_and_starts_again_once_it_keeps_up(pair):
    ours, theirs = pair
    selector = _listening(ours)
    theirs.send(b"x")
    assert selector.select(None)
    # busy: the loop works (here: spins) between polls for longer than a window
    until = time.monotonic() + 2 * WINDOW
    while time.monotonic() < until:
        selector.select(0)
        spin = time.monotonic() + 0.01
        while time.monotonic() < spin:
            pass
    selector.select(0)  # (the window's share is taken at a wait's end)
    assert not selector.gathering
    started = time.monotonic()
    assert selector.select(None)  # the byte is still unread: no gap now
    assert time.monotonic() - started < GAP
    ours.recv(100)
    # keeping up again: waits that find nothing for longer than a window
    until = time.monotonic() + 2 * WINDOW
    while time.monotonic() < until:
        selector.select(WINDOW / 4)
    assert selector.gathering
    selector.close()


def test_no_gap_never_gathers(pair):
    ours, theirs = pair
    selector = _listening(ours, 0)
    for _ in range(3):
        theirs.send(b"x")
        started = time.monotonic()
        assert selector.select(None)
        assert time.monotonic() - started < GAP
        ours.recv(100)
    assert not selector.gathering
    selector.close()


@pytest.mark.parametrize("gap", [-0.01, float("nan"), float("inf"), MAX_GAP + 1, 1e300])
def test_a_gap_it_cannot_keep_is_refused_and_named(gap):
    """Negative, not a number, or so long a stop would wait for it (the loop cannot be woken
    while it sleeps)."""
    with pytest.raises(ValueError, match=r"Invalid gather gap .*from 0 \(off\) to 1"):
        GatheringSelector(gap)


def test_an_event_loop_on_it_reads_a_burst_in_one_go(pair):
    """What asyncio does with it: messages sent one by one during the gap are read by one
    callback, and call_soon callbacks meanwhile run at once."""
    ours, theirs = pair
    reads: list[bytes] = []
    soon: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(ours, lambda: reads.append(ours.recv(1000)))
        theirs.send(b"a")
        while not reads:
            await asyncio.sleep(0.001)
        first = time.monotonic()
        for part in (b"b", b"c", b"d"):
            theirs.send(part)
            loop.call_soon(lambda: soon.append(time.monotonic() - first))
            await asyncio.sleep(0.01)
        while len(reads) < 2:
            await asyncio.sleep(0.001)
        loop.remove_reader(ours)
        assert time.monotonic() - first >= GAP * 0.99

    gathering = GatheringSelector(GAP)
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(gathering)) as runner:
        runner.run(main())
    assert reads == [b"a", b"bcd"]
    assert len(soon) == 3 and max(soon) < GAP
