"""Helpers of the collector's tests: a simulated fediverse on loopback (real sockets), the
collector running in a thread, and the comparison of a lake with the simulator's truth."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tootlake.collector import CollectResult, collect
from tootlake.lake.reader import open_lake
from tootlake.simulate import FediverseThread
from tootlake.sources.fleet import FleetOptions, FleetSource, InstanceSpec

# Fast reactions for tests: the production defaults wait tens of seconds.
FAST = FleetOptions(
    heartbeat_timeout=3.0,
    connect_timeout=3.0,
    request_timeout=5.0,
    backoff_base=0.1,
    backoff_cap=1.0,
    poll_min=0.2,
    poll_max=1.0,
    recheck=3600,
    healthy_after=1.0,
)


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Running:
    """`collect()` in a thread; `stop()` ends it cleanly and returns its result."""

    def __init__(self, specs: list[InstanceSpec], lake: str, **kwargs: Any) -> None:
        self.stop_event = threading.Event()
        self.result: CollectResult | None = None
        self.error: BaseException | None = None
        self.fleet: FleetSource | None = None
        kwargs.setdefault("options", FAST)
        kwargs.setdefault("flush_seconds", 1.0)
        kwargs.setdefault("include_opted_out", True)

        def target() -> None:
            try:
                self.result = collect(
                    specs, lake, stop=self.stop_event, on_progress=self._progress, **kwargs
                )
            except BaseException as exc:  # re-raised by stop()
                self.error = exc

        self.thread = threading.Thread(target=target, name="test-collector", daemon=True)
        self.thread.start()

    def _progress(self, progress: Any) -> None:
        self.fleet = progress.fleet

    def handed_out(self) -> int:
        return self.fleet.handed_out if self.fleet else 0

    def settle(self, quiet: float = 2.0, timeout: float = 30.0) -> None:
        """Wait until no event came for `quiet` seconds (2: a reconnect's backoff is capped
        at 1 s in the tests' options, and a loaded machine adds to it)."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.handed_out()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)
        raise AssertionError("the collector never went quiet")

    def stop(self, timeout: float = 30.0) -> CollectResult:
        self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the collector did not stop"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def lake_versions(lake: str) -> dict[str, str | None]:
    """uri -> edited_at to the second of every post the lake's `posts` view shows."""
    con = open_lake(lake)
    rows = con.execute("SELECT uri, strftime(edited_at, '%Y-%m-%dT%H:%M:%S') FROM posts").fetchall()
    return dict(rows)


def assert_lake_matches(lake: str, truth: Any, *, rewrites_allowed: bool = False) -> None:
    """The lake holds exactly the truth's posts, each once, in its latest version, and no
    deleted post. Each version is written once, unless `rewrites_allowed` (a collector killed
    between a flush and its commit writes that batch again after the restart)."""
    have = lake_versions(lake)
    missing = truth.uris - have.keys()
    extra = have.keys() - truth.uris
    assert not missing, f"{len(missing)} posts lost, e.g. {sorted(missing)[:3]}"
    assert not extra, (
        f"{len(extra)} posts not expected ({len(extra & truth.deleted)} of them deleted), "
        f"e.g. {sorted(extra)[:3]}"
    )
    stale = {u for u, v in have.items() if (truth.latest[u] or "")[:19] != (v or "")}
    assert not stale, f"{len(stale)} posts not in their latest version, e.g. {sorted(stale)[:3]}"
    con = open_lake(lake)
    twice = con.execute(
        "SELECT count(*) FROM (SELECT uri, edited_at FROM posts_all GROUP BY ALL "
        "HAVING count(*) > 1)"
    ).fetchone()[0]
    assert rewrites_allowed or twice == 0, f"{twice} post versions were written more than once"


@pytest.fixture
def fediverse() -> Iterator[Callable[..., FediverseThread]]:
    """Start simulated fediverses (closed at the end): `sim = fediverse(instances=3, ...)`."""
    started: list[FediverseThread] = []

    def start(*args: Any, **kwargs: Any) -> FediverseThread:
        sim = FediverseThread(*args, **kwargs)
        sim.__enter__()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.__exit__(None, None, None)


def all_connected(sim: FediverseThread, n: int = 1) -> Callable[[], bool]:
    return lambda: all(inst.connections >= n for inst in sim.fed.instances)
