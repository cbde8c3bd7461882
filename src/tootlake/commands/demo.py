"""`tootlake demo`: the collector against a simulated fediverse on loopback, then the report."""

from __future__ import annotations

import tempfile
import threading

import click

from tootlake.cli import main, run_command


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
@click.option("--quiet", "-q", is_flag=True, help="No status line.")
@run_command
def demo(
    duration: float, count: int, rate: float, lake: str | None, seed: int, quiet: bool
) -> None:
    """Collect from a simulated fediverse (no internet needed), then print the report.

    Starts COUNT simulated Mastodon instances on 127.0.0.1 that publish, edit and delete posts;
    the collector streams from those it has a token for (WebSocket and SSE), polls an open one,
    and reports the one whose live feeds need a token. Cuts one stream midway to show the
    backfill. Then the lake is checked against the simulator's ground truth and analysed.
    """
    from tootlake.analysis.lake import open_lake
    from tootlake.analysis.report import build_report, render_report
    from tootlake.collector import collect
    from tootlake.commands.collect import _print_final, _status_line
    from tootlake.simulate import FediverseThread, InstanceSettings
    from tootlake.sources.fleet import FleetOptions, InstanceSpec

    token = "demo-token"
    settings = [InstanceSettings(token=token, heartbeat_frame=b":thump\n\n") for _ in range(count)]
    settings[-1] = InstanceSettings(
        token=token, live_feeds={"local": "authenticated", "remote": "authenticated"}
    )
    lake = lake or tempfile.mkdtemp(prefix="tootlake-demo-")
    with FediverseThread(instances=count, settings=settings, seed=seed) as sim:
        fed = sim.fed
        urls = fed.urls
        # A token for all but the last two: the second to last is polled without one, the
        # last one's live feeds need a token it is not given.
        specs = [InstanceSpec(u, token) for u in urls[:-2]]
        specs += [InstanceSpec(urls[-2]), InstanceSpec(urls[-1])]
        click.echo(
            f"Simulated fediverse: {count} instances on 127.0.0.1 publishing {rate:g} "
            f"posts/s for {duration:g}s; lake {lake}",
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
        options = FleetOptions(poll_min=1.0, backoff_base=0.5, backoff_cap=5.0)
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
        streamed = [spec.host for spec in specs[:-2]]
        truth = sim.call(fed.truth, streamed)
    _print_final(result, lake)
    con = open_lake(lake)
    have = {row[0] for row in con.execute("SELECT uri FROM posts").fetchall()}
    click.echo(
        f"Ground truth of the streamed instances: {len(truth.uris):,} posts expected, "
        f"{len(truth.uris - have):,} missing, {len(truth.deleted & have):,} deleted posts "
        f"still in the lake. (The polled instance gets 40 posts per request within Mastodon's "
        f"paging budget, and polling cannot see edits or deletes.)"
    )
    click.echo(render_report(build_report(lake), "table"))
