"""`tootlake graph`: the lake's interaction graph as a weighted edge list (analysis.graph)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import format_option, lake_option, skip_corrupt_option


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """A date or an ISO time (UTC unless it names an offset)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date or time: use 2026-11-01 or 2026-11-01T12:00:00Z"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@click.command()
@lake_option
@click.option(
    "--edges",
    "kind",
    type=click.Choice(["mentions", "replies", "quotes", "instances"]),
    default="mentions",
    show_default=True,
    help="mentions, replies and quotes: account to account (quotes only where the lake "
    "holds the quoted post); instances: all three between the accounts' instances.",
)
@format_option(
    ["parquet", "csv", "graphml"],
    default="csv",
    show_default=True,
    help="An edge list (parquet, csv) or a directed GraphML graph.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="The file to write (default: stdout; parquet needs a file or a pipe).",
)
@click.option("--since", callback=_when, help="Only posts written at or after this (UTC).")
@click.option("--until", callback=_when, help="Only posts written before this (UTC).")
@skip_corrupt_option
@run_command
def graph(
    lake: str | None,
    kind: str,
    fmt: str,
    output: str,
    since: datetime | None,
    until: datetime | None,
    skip_corrupt: bool,
) -> None:
    """Write who interacts with whom as edges with weights (source, target, weight, first_at,
    last_at) that networkx, igraph and Gephi open: one edge per pair of accounts (or of
    instances), weighted by the posts that make it."""
    from tootlake.analysis.graph import edges, write_edges
    from tootlake.lake.reader import read_lake
    from tootlake.settings import load_settings

    settings = load_settings(lake=lake)
    if output == "-" and fmt == "parquet" and sys.stdout.isatty():
        raise click.UsageError("Parquet is binary: name a file with --output, or pipe it.")

    def read(con: Any) -> Any:
        return edges(con, kind, since=since, until=until)

    table = read_lake(settings.lake, read, skip_corrupt=skip_corrupt)
    if output == "-":
        sys.stdout.flush()
        write_edges(table, sys.stdout.buffer, fmt)
        sys.stdout.buffer.flush()
        return
    try:
        write_edges(table, output, fmt)
    except OSError as exc:
        raise click.ClickException(f"Cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"Wrote {table.num_rows:,} {kind} edges to {output}", err=True)
