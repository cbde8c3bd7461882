"""`tootlake simulate`: a simulated fediverse on loopback, for demos, tests and benchmarks."""

from __future__ import annotations

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import MAX_RATE, Number, Seconds


@click.command()
@click.option(
    "--instances", "-n", default=3, show_default=True, type=click.IntRange(1, 5000),
    help="Simulated Mastodon instances, each on its own 127.0.0.1 port.",
)  # fmt: skip
@click.option(
    "--rate", default=20.0, show_default=True, type=Number(min=0, max=MAX_RATE, show_max=False),
    help="Posts published per second, across all instances (0: serve only).",
)  # fmt: skip
@click.option(
    "--duration", type=Seconds(), default=None,
    help="Seconds to run (default: until Ctrl-C).",
)  # fmt: skip
@click.option(
    "--token-required/--open", default=True, show_default=True,
    help="Give each instance a token (streaming and REST need it) or none (any token streams, "
    "as Mastodon >= 4.2 always wants one; REST is open).",
)  # fmt: skip
@click.option(
    "--seed", default=0, show_default=True, help="Seed of the workload: same seed, same posts."
)
@click.option(
    "--port-base", type=click.IntRange(1, 65535), default=None,
    help="Instance i listens on PORT_BASE+i (default: any free port).",
)  # fmt: skip
@click.option(
    "--federation", default=2, show_default=True, type=click.IntRange(min=0),
    help="Other simulated instances each post reaches.",
)  # fmt: skip
@click.option(
    "--edits", default=0.02, show_default=True, type=Number(0, 1),
    help="Chance per post of also editing a recent one.",
)  # fmt: skip
@click.option(
    "--deletes", default=0.01, show_default=True, type=Number(0, 1),
    help="Chance per post of also deleting a recent one.",
)  # fmt: skip
@click.option(
    "--hostile", default=0.0, show_default=True, type=Number(0, 1), metavar="RATE",
    help="Share of public statuses served mutated (invalid, fields of the wrong type, shapes "
    "of other servers), and add instances that flood, stall, send huge bodies or a bad "
    "instance document. The truth file says which posts are good and which to reject.",
)  # fmt: skip
@click.option(
    "--flood-rate", type=click.FloatRange(min=0, min_open=True), default=None,
    metavar="POSTS_PER_S",
    help="With --hostile: cap the flooding instance (default: as fast as its clients read).",
)  # fmt: skip
@click.option(
    "--write-instances", type=click.Path(dir_okay=False), default=None,
    help="Write the instance URLs to FILE, one a line (for collect --instances-file).",
)  # fmt: skip
@click.option(
    "--tokens-file", type=click.Path(dir_okay=False), default=None,
    help="Write host=token lines to FILE.",
)  # fmt: skip
@click.option(
    "--truth-file", type=click.Path(dir_okay=False), default=None,
    help="At the end, write the ground truth (what the lake should hold) to FILE as JSON.",
)  # fmt: skip
@run_command
def simulate(
    instances: int,
    rate: float,
    duration: float | None,
    token_required: bool,
    seed: int,
    port_base: int | None,
    federation: int,
    edits: float,
    deletes: float,
    hostile: float,
    flood_rate: float | None,
    write_instances: str | None,
    tokens_file: str | None,
    truth_file: str | None,
) -> None:
    """Run simulated Mastodon instances on 127.0.0.1 that publish generated posts.

    Prints the instance URLs, one a line. Each speaks the real protocol: SSE and WebSocket
    streaming, the REST public timeline with paging and rate limits. With --hostile, a
    fediverse as hostile as the real one (docs/simulate.md).
    """
    from tootlake.simulate.service import run_simulation

    run_simulation(
        instances=instances,
        rate=rate,
        duration=duration,
        token_required=token_required,
        seed=seed,
        port_base=port_base,
        federation=federation,
        edits=edits,
        deletes=deletes,
        hostile=hostile,
        flood_rate=flood_rate,
        write_instances=write_instances,
        tokens_file=tokens_file,
        truth_file=truth_file,
        echo=lambda line: click.echo(line),
        status=lambda line: click.echo(line, err=True),
    )
