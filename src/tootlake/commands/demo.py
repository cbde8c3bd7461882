"""`tootlake demo`: the collector against a simulated fediverse on loopback, then the report."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import click

from tootlake.cli import main, run_command
from tootlake.errors import ConfigError

DEMO_LAKE = "./demo-lake"
_DEMO_MARK = ("_tootlake", "demo")  # a file in a lake the demo made: it may empty it again


def prepare_demo_lake(lake: str, *, keep: bool = False) -> None:
    """Make `lake` the demo's: a new folder, or one the demo made before, emptied unless
    `keep`. Any other existing path is refused: the demo must not touch a real lake (or mix
    simulated posts into one)."""
    root = Path(lake)
    mark = root.joinpath(*_DEMO_MARK)
    if root.exists():
        if not mark.exists():
            raise ConfigError(
                f"{lake} exists and is not a demo lake: the demo writes only to a lake of "
                f"its own. Give another --lake (the default is {DEMO_LAKE})."
            )
        if not keep:
            shutil.rmtree(root)
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text("made by `tootlake demo`: replaced on each run\n")


_MARKER = re.compile(r"tootlake-hostile-\d+-\d+")  # what the simulator puts in each invalid one


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


@main.command()
@click.option(
    "--duration",
    default=20.0,
    show_default=True,
    type=float,
    metavar="SECONDS",
    help="How long to collect.",
)
@click.option(
    "--instances",
    "count",
    default=4,
    show_default=True,
    type=click.IntRange(3, 200),
    help="Simulated instances (one without a token polls, one needs a token).",
)
@click.option(
    "--rate",
    default=100.0,
    show_default=True,
    type=float,
    help="Posts per second the simulated fediverse publishes.",
)
@click.option(
    "--lake",
    default=DEMO_LAKE,
    show_default=True,
    metavar="PATH",
    help="The demo's own lake: emptied first on each run (unless --keep), never mixed with "
    "a real one (a lake the demo did not make is refused).",
)
@click.option("--keep", is_flag=True, help="Add to the demo lake instead of starting afresh.")
@click.option("--seed", default=1, show_default=True, help="Seed of the simulated workload.")
@click.option(
    "--hostile",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    metavar="RATE",
    help="Share of public statuses served mutated (to reject, or with fields to coerce), plus "
    "instances that flood, stall, send huge bodies or a bad instance document.",
)
@click.option("--quiet", "-q", is_flag=True, help="No status line.")
@run_command
def demo(
    duration: float,
    count: int,
    rate: float,
    lake: str,
    keep: bool,
    seed: int,
    hostile: float,
    quiet: bool,
) -> None:
    """Collect from a simulated fediverse (no internet needed), then print the report.

    Starts COUNT simulated Mastodon instances on 127.0.0.1 that publish, edit and delete posts;
    the collector streams from those it has a token for (WebSocket and SSE), polls an open one,
    and reports the one whose live feeds need a token. Cuts one stream midway to show the
    backfill. Then the lake is checked against the simulator's ground truth and analysed.
    With --hostile, the rejected and coerced statuses are checked against the truth too.
    """
    from tootlake.analysis.lake import open_lake
    from tootlake.analysis.report import build_report, render_report
    from tootlake.collector import collect
    from tootlake.commands.collect import _print_final, _status_line
    from tootlake.simulate import FediverseThread, InstanceSettings
    from tootlake.simulate.hostile import INSTANCE_KINDS
    from tootlake.sources.fleet import FleetOptions, InstanceSpec

    token = "demo-token"
    # Hostile: heartbeats every 5 s, so a stream silent for 15 s (the stalling instance) is
    # seen as dead within the demo.
    heartbeat = 5.0 if hostile else 15.0
    settings = [
        InstanceSettings(token=token, heartbeat_frame=b":thump\n\n", heartbeat=heartbeat)
        for _ in range(count)
    ]
    settings[-1] = InstanceSettings(
        token=token, live_feeds={"local": "authenticated", "remote": "authenticated"}
    )
    # The flood is capped: the collector shares this process (and its GIL) with the simulator.
    misbehaving = [
        InstanceSettings(
            token=token, heartbeat=heartbeat, misbehave=kind, flood_rate=max(2 * rate, 200.0)
        )
        for kind in (INSTANCE_KINDS if hostile else ())
    ]
    prepare_demo_lake(lake, keep=keep)
    with FediverseThread(
        instances=count,
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
        streamed = [InstanceSpec(u, token) for u in urls[:-2]]
        streamed += [InstanceSpec(inst.url, token) for inst in fed.misbehaving]
        specs = [*streamed, InstanceSpec(urls[-2]), InstanceSpec(urls[-1])]
        click.echo(
            f"Simulated fediverse: {count} instances on 127.0.0.1 publishing {rate:g} "
            f"posts/s for {duration:g}s; lake {lake}",
            err=True,
        )
        if hostile:
            click.echo(
                f"Hostile: {hostile:.0%} of public statuses mutated; instances that "
                + ", ".join(f"{i.settings.misbehave} ({i.host})" for i in fed.misbehaving),
                err=True,
            )
        stop = threading.Event()
        cut_host = streamed[0].host
        announced = AnnouncedCut(cut_host)

        def cut() -> None:
            click.echo(
                f"Demo: cutting the stream of {cut_host} mid-event, on purpose; the collector "
                "reconnects and backfills what it missed from its cursor.",
                err=True,
            )
            announced.armed = True
            announced.cuts += sim.call(fed.cut, [0], mid_event=True)

        # Publish once the collector is connected, stop shortly before it does, and cut
        # the first instance's streams midway (mid-event) to show reconnect and backfill.
        quiet_tail = min(3.0, duration / 4)
        timers = [
            threading.Timer(
                1.0, lambda: sim.call(fed.start_publishing, rate, edits=0.02, deletes=0.01)
            ),
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
            with _status_line(quiet) as show:
                result = collect(
                    specs,
                    lake,
                    options=options,
                    duration=duration,
                    stop=stop,
                    flush_seconds=5.0,
                    on_progress=show,
                )
        finally:
            fleet_log.removeFilter(announced)
        for timer in timers:
            timer.cancel()
        sim.call(fed.stop_publishing)
        truth = sim.call(fed.truth, [spec.host for spec in streamed])
    _print_final(result, lake)
    if announced.cuts:
        reconnects = result.health.get(cut_host, {}).get("reconnects", 0)
        click.echo(
            f"The stream of {cut_host} was cut on purpose and "
            + (f"reconnected ({reconnects} reconnects)" if reconnects else "had not reconnected")
            + "; the ground truth below counts any post it missed."
        )
    con = open_lake(lake)
    have = {row[0] for row in con.execute("SELECT uri FROM posts").fetchall()}
    click.echo(
        f"Ground truth of the streamed instances: {len(truth.uris):,} posts expected, "
        f"{len(truth.uris - have):,} missing, {len(truth.deleted & have):,} deleted posts "
        f"still in the lake. (The polled instance gets 40 posts per request within Mastodon's "
        f"paging budget, and polling cannot see edits or deletes.)"
    )
    if hostile:
        _print_hostile(result.stats, truth, con, have)
    click.echo(render_report(build_report(lake), "table"))


def _print_hostile(stats: Any, truth: Any, con: Any, have: set[str]) -> None:
    """The hostile statuses against the truth: the invalid ones rejected, the others kept."""
    import duckdb

    try:
        raws = [row[0] or "" for row in con.execute("SELECT raw FROM rejects").fetchall()]
    except duckdb.Error:  # a lake without a rejects table: none was written
        raws = []
    markers = {m for raw in raws for m in _MARKER.findall(raw)}
    invalid = set(truth.invalid.values())
    kept = set(truth.coerced) | set(truth.shaped)
    coerced = ", ".join(f"{field} {n:,}" for field, n in stats.coerced.most_common(8)) or "none"
    click.echo(
        f"Hostile statuses: {len(invalid):,} served invalid, {len(invalid & markers):,} of them "
        f"in the rejects table ({stats.rejected:,} rejects in all); "
        f"{len(kept):,} odd but good, {len(kept - have):,} of them missing from the lake. "
        f"Fields coerced: {coerced}."
    )
