"""The demo as a library call: the collector against a simulated fediverse on loopback, a
stream cut on purpose, the lake checked against the simulator's ground truth, and the report.

    from tootlake.demo import run_demo
    result = run_demo("./demo-lake", duration=10)
    result.missing, result.report["languages"]

`tootlake demo` parses its options, calls `run_demo` and prints the result.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tootlake.errors import ConfigError

__all__ = [
    "DEMO_LAKE",
    "AnnouncedCut",
    "DemoResult",
    "HostileCheck",
    "prepare_demo_lake",
    "run_demo",
]

log = logging.getLogger(__name__)

DEMO_LAKE = "./demo-lake"
_DEMO_MARK = ("_tootlake", "demo")  # a file in a lake the demo made: it may empty it again
_MARKER = re.compile(r"tootlake-hostile-\d+-\d+")  # what the simulator puts in each invalid one
_TOKEN = "demo-token"


def prepare_demo_lake(lake: str, *, keep: bool = False) -> None:
    """Make `lake` the demo's: a new folder, or one the demo made before, emptied unless
    `keep`. An empty folder is taken too; any other existing path is refused: the demo must
    not touch a real lake (or mix simulated posts into one)."""
    root = Path(lake)
    mark = root.joinpath(*_DEMO_MARK)
    if mark.exists():
        if not keep:  # emptied, not removed: a link to it, and its mode, stay
            for child in root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    elif root.exists() and not (root.is_dir() and not any(root.iterdir())):
        # (an empty folder is used as it is: nothing to mix with or lose, its mode kept)
        raise ConfigError(
            f"{lake} exists and is not a demo lake: the demo writes only to a lake of "
            f"its own. Give another --lake (the default is {DEMO_LAKE})."
        )
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text("made by `tootlake demo`: replaced on each run\n")


class AnnouncedCut(logging.Filter):
    """The demo cuts an instance's stream on purpose, announcing it: the collector's next
    `failing` line for that instance is the demo at work, not a fault, so it is shown at INFO
    instead of as a WARNING that reads like a bug. Later failures stay WARNINGs."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host
        self.armed = False  # set when the cut is announced
        self.cuts = 0  # connections cut

    def filter(self, record: logging.LogRecord) -> bool:
        context = getattr(record, "context", {})
        if (
            self.armed
            and record.levelno == logging.WARNING
            and context.get("instance") == self.host
            and context.get("status") == "failing"
        ):
            self.armed = False
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


@dataclass
class HostileCheck:
    """The hostile statuses (`hostile` > 0) against the truth: invalid ones rejected, odd
    but good ones kept."""

    invalid: int  # statuses served invalid
    invalid_rejected: int  # of them, found in the rejects table
    rejects: int  # rejects in all
    kept: int  # statuses served odd but good
    kept_missing: int  # of them, missing from the lake
    coerced: list[tuple[str, int]]  # fields coerced, most often first


@dataclass
class DemoResult:
    """What a demo run did and found."""

    lake: str
    collected: Any  # tootlake.collector.CollectResult
    cut_host: str  # the instance whose stream was cut on purpose
    cuts: int  # connections cut (0: the cut found none open)
    reconnects: int  # of the cut instance
    # posts of the streamed instances, per the simulator's ground truth, but those whose
    # authors opted out where the collector sees it (`noindex` on the polled instance)
    expected: int
    missing: int  # of them, not in the lake
    deleted_kept: int  # deleted posts still in the lake
    # posts in the lake whose authors' opt-out some streamed copy shows (a tag in the bio or
    # a field, `noindex` on a streamed home instance): consent leaked, must be 0
    opted_out_kept: int
    hostile: HostileCheck | None
    report: dict[str, Any]  # section name -> table, as `build_report` gives


def run_demo(
    lake: str = DEMO_LAKE,
    *,
    duration: float = 20.0,
    instances: int = 4,
    rate: float = 100.0,
    keep: bool = False,
    seed: int = 1,
    hostile: float = 0.0,
    on_progress: Callable[[Any], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> DemoResult:
    """Collect for `duration` seconds from `instances` simulated Mastodon instances on
    127.0.0.1 publishing `rate` posts/s into `lake` (the demo's own, see `prepare_demo_lake`),
    then check the lake against the simulator's ground truth and build the report.

    The collector streams from the instances it has a token for (WebSocket and SSE), polls
    an open one, and reports the one whose live feeds need a token; the first stream is cut
    midway to show the backfill. `hostile` is the share of statuses served mutated, plus
    instances that misbehave. `on_progress` gets the collector's progress, `on_note` each
    line that says what the demo is doing (default: logged at INFO).
    """
    from tootlake.analysis.report import build_report
    from tootlake.collector import collect
    from tootlake.lake.reader import open_lake
    from tootlake.simulate import FediverseThread, InstanceSettings
    from tootlake.simulate.hostile import INSTANCE_KINDS
    from tootlake.sources.fleet import FleetOptions, InstanceSpec

    note = on_note or log.info
    # Hostile: heartbeats every 5 s, so a stream silent for 15 s (the stalling instance) is
    # seen as dead within the demo.
    heartbeat = 5.0 if hostile else 15.0
    settings = [
        InstanceSettings(token=_TOKEN, heartbeat_frame=b":thump\n\n", heartbeat=heartbeat)
        for _ in range(instances)
    ]
    settings[-1] = InstanceSettings(
        token=_TOKEN, live_feeds={"local": "authenticated", "remote": "authenticated"}
    )
    # The flood is capped: the collector shares this process (and its GIL) with the simulator.
    misbehaving = [
        InstanceSettings(
            token=_TOKEN, heartbeat=heartbeat, misbehave=kind, flood_rate=max(2 * rate, 200.0)
        )
        for kind in (INSTANCE_KINDS if hostile else ())
    ]
    prepare_demo_lake(lake, keep=keep)
    with FediverseThread(
        instances=instances,
        settings=settings,
        seed=seed,
        hostile=hostile,
        hostile_instances=misbehaving,
    ) as sim:
        fed = sim.fed
        urls = fed.urls[: fed.ordinary]
        # A token for all but the last two ordinary instances: the second to last is polled
        # without one, the last one's live feeds need a token it is not given. The hostile
        # instances are streamed with a token.
        streamed = [InstanceSpec(u, _TOKEN) for u in urls[:-2]]
        streamed += [InstanceSpec(inst.url, _TOKEN) for inst in fed.misbehaving]
        polled = InstanceSpec(urls[-2])
        specs = [*streamed, polled, InstanceSpec(urls[-1])]
        note(
            f"Simulated fediverse: {instances} instances on 127.0.0.1 publishing {rate:g} "
            f"posts/s for {duration:g}s; lake {lake}"
        )
        if hostile:
            note(
                f"Hostile: {hostile:.0%} of public statuses mutated; instances that "
                + ", ".join(f"{i.settings.misbehave} ({i.host})" for i in fed.misbehaving)
            )
        stop = threading.Event()
        cut_host = streamed[0].host
        announced = AnnouncedCut(cut_host)

        def cut() -> None:
            note(
                f"Demo: cutting the stream of {cut_host} mid-event, on purpose; the collector "
                "reconnects and backfills what it missed from its cursor."
            )
            announced.armed = True
            announced.cuts += sim.call(fed.cut, [0], mid_event=True)

        # Publish once the collector is connected, stop shortly before it does, and cut
        # the first instance's streams midway (mid-event) to show reconnect and backfill.
        # Connected means every instance streamed with a token has a live stream: a post
        # published before would only be found by the backfill of the newest page (a fixed
        # 1 s wait lost some on a loaded machine). At most a third of the run is waited for.
        quiet_tail = min(3.0, duration / 4)
        live = fed.instances[: len(urls) - 2]
        ended = threading.Event()

        def publish_once_connected() -> None:
            deadline = time.monotonic() + duration / 3
            while not all(i.connections for i in live) and time.monotonic() < deadline:
                if ended.wait(0.1):
                    return
            sim.call(fed.start_publishing, rate, edits=0.02, deletes=0.01)

        publisher = threading.Thread(target=publish_once_connected, daemon=True)
        publisher.start()
        timers = [
            threading.Timer(duration / 2, cut),
            threading.Timer(duration - quiet_tail, lambda: sim.call(fed.stop_publishing)),
        ]
        for timer in timers:
            timer.daemon = True
            timer.start()
        options = FleetOptions(
            poll_min=1.0,
            backoff_base=0.5,
            backoff_cap=5.0,
            heartbeat_timeout=3 * heartbeat if hostile else 45.0,
            request_timeout=10.0 if hostile else 30.0,
        )
        fleet_log = logging.getLogger("tootlake.sources.fleet")
        fleet_log.addFilter(announced)
        try:
            result = collect(
                specs,
                lake,
                options=options,
                duration=duration,
                stop=stop,
                flush_seconds=5.0,
                on_progress=on_progress,
            )
        finally:
            fleet_log.removeFilter(announced)
        for timer in timers:
            timer.cancel()
        ended.set()
        publisher.join()
        sim.call(fed.stop_publishing)
        truth = sim.call(fed.truth, [spec.host for spec in streamed])
        # The polled instance is collected too: an author whose `noindex` shows there (on
        # their home instance only) is skipped on every instance, as consent asks, so their
        # posts on the streamed instances are not expected (not "missing").
        declined = sim.call(fed.truth, [spec.host for spec in (*streamed, polled)]).opted_out
    expected = truth.uris - declined
    con = open_lake(lake)
    try:
        have = {row[0] for row in con.execute("SELECT uri FROM posts").fetchall()}
        checked = _check_hostile(result.stats, truth, con, have, declined) if hostile else None
    finally:
        con.close()
    return DemoResult(
        lake=lake,
        collected=result,
        cut_host=cut_host,
        cuts=announced.cuts,
        reconnects=result.health.get(cut_host, {}).get("reconnects", 0),
        expected=len(expected),
        missing=len(expected - have),
        deleted_kept=len(truth.deleted & have),
        opted_out_kept=len(truth.opted_out & have),
        hostile=checked,
        report=build_report(lake),
    )


def _check_hostile(
    stats: Any, truth: Any, con: Any, have: set[str], declined: frozenset[str]
) -> HostileCheck:
    """The hostile statuses against the truth: the invalid ones rejected, the others kept
    (but those `declined`: their authors opted out where the collector sees it)."""
    import duckdb

    try:
        raws = [row[0] or "" for row in con.execute("SELECT raw FROM rejects").fetchall()]
    except duckdb.Error:  # a lake without a rejects table: none was written
        raws = []
    markers = {m for raw in raws for m in _MARKER.findall(raw)}
    invalid = set(truth.invalid.values())
    kept = (set(truth.coerced) | set(truth.shaped)) - declined
    return HostileCheck(
        invalid=len(invalid),
        invalid_rejected=len(invalid & markers),
        rejects=stats.rejected,
        kept=len(kept),
        kept_missing=len(kept - have),
        coerced=stats.coerced.most_common(8),
    )
