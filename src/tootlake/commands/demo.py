"""`tootlake demo`: the collector against a simulated fediverse on loopback, then the report."""

from __future__ import annotations

import re
import tempfile
import threading
from typing import Any

import click

from tootlake.cli import main, run_command

_MARKER = re.compile(r"tootlake-hostile-\d+-\d+")  # what the simulator puts in each invalid one


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
    default=None,
    metavar="PATH",
    help="The lake to fill (default: a new temporary folder).",
)
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
    lake: str | None,
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
    lake = lake or tempfile.mkdtemp(prefix="tootlake-demo-")
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
        # Publish once the collector is connected, stop shortly before it does, and cut
        # the first instance's streams midway (mid-event) to show reconnect and backfill.
        quiet_tail = min(3.0, duration / 4)
        timers = [
            threading.Timer(
                1.0, lambda: sim.call(fed.start_publishing, rate, edits=0.02, deletes=0.01)
            ),
            threading.Timer(duration / 2, lambda: sim.call(fed.cut, [0], mid_event=True)),
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
        for timer in timers:
            timer.cancel()
        sim.call(fed.stop_publishing)
        truth = sim.call(fed.truth, [spec.host for spec in streamed])
    _print_final(result, lake)
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
