"""`tootlake demo`: `tootlake.demo.run_demo`, its options and what it prints."""

from __future__ import annotations

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import MAX_RATE, Number, Seconds, lake_option, quiet_option
from tootlake.cli.output import print_collect_summary, status_line
from tootlake.demo import DEMO_LAKE, DemoResult
from tootlake.text import counted


@click.command()
@click.option(
    "--duration",
    default=20.0,
    show_default=True,
    type=Seconds(above_zero=True),
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
    type=Number(min=0, max=MAX_RATE, show_max=False),
    help="Posts per second the simulated fediverse publishes.",
)
@lake_option(
    default=DEMO_LAKE,
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
    type=Number(0, 1),
    metavar="RATE",
    help="Share of public statuses served mutated (to reject, or with fields to coerce), plus "
    "instances that flood, stall, send huge bodies or a bad instance document.",
)
@quiet_option("No status line.")
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

    Starts --instances simulated Mastodon instances on 127.0.0.1 that publish, edit and
    delete posts; the collector streams from those it has a token for (WebSocket and SSE),
    polls an open one, and reports the one whose live feeds need a token. Cuts one stream
    midway to show the backfill. Then the lake is checked against the simulator's ground
    truth and analysed. With --hostile, the rejected and coerced statuses are checked against
    the truth too.
    """
    from tootlake.analysis.report import render_report
    from tootlake.demo import run_demo

    with status_line(quiet) as show:
        result = run_demo(
            lake,
            duration=duration,
            instances=count,
            rate=rate,
            keep=keep,
            seed=seed,
            hostile=hostile,
            on_progress=show,
            on_note=lambda line: click.echo(line, err=True),
        )
    _print_result(result)
    click.echo(render_report(result.report, "table"))


def _print_result(result: DemoResult) -> None:
    print_collect_summary(result.collected, result.lake)
    if result.cuts:
        click.echo(
            f"The stream of {result.cut_host} was cut on purpose and "
            + (
                f"reconnected ({counted(result.reconnects, 'reconnect')})"
                if result.reconnects
                else "had not reconnected"
            )
            + "; the ground truth below counts any post it missed."
        )
    click.echo(
        f"Ground truth of the streamed instances: {result.expected:,} posts expected, "
        f"{result.missing:,} missing, {result.deleted_kept:,} deleted posts "
        f"still in the lake, {result.opted_out_kept:,} posts of authors who opted out in the "
        f"lake (their opt-out shows on a streamed copy). (The polled instance gets 40 posts "
        f"per request within Mastodon's paging budget, and polling cannot see edits or "
        f"deletes.)"
        + (
            " A delete sent while a stream was down is not sent again: `tootlake revalidate` "
            "finds such deletes (docs/collect.md)."
            if result.deleted_kept
            else ""
        )
    )
    check = result.hostile
    if check is not None:
        coerced = ", ".join(f"{field} {n:,}" for field, n in check.coerced) or "none"
        click.echo(
            f"Hostile statuses: {check.invalid:,} served invalid, {check.invalid_rejected:,} "
            f"of them in the rejects table ({check.rejects:,} rejects in all); "
            f"{check.kept:,} odd but good, {check.kept_missing:,} of them missing from the "
            f"lake. Fields coerced: {coerced}."
        )
