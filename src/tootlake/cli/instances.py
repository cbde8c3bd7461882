"""`tootlake instances discover|check`: find instances and see how `collect` would read them."""

from __future__ import annotations

import json
import sys

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import TIMELINE, format_option, instances_options, settings_and_specs
from tootlake.cli.output import clean, one_line


@click.group()
def instances() -> None:
    """Find instances and see how `collect` would read them."""


@instances.command()
@click.option(
    "--from",
    "start",
    required=True,
    metavar="HOST",
    help="An instance whose peers (/api/v1/instance/peers) to probe.",
)
@click.option("--limit", default=100, show_default=True, help="How many answering instances.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the instances file here (default: stdout).",
)
@click.option("--timeline", default="public", show_default=True, type=TIMELINE)
@run_command
def discover(start: str, limit: int, output: str | None, timeline: str) -> None:
    """Probe the peers of an instance and write an instances file for `collect`."""
    from tootlake.collector import discover_instances

    reports = discover_instances(start, limit, timeline)
    lines = [f"# instances found from {start}: {len(reports)}"]
    for r in sorted(reports, key=lambda r: r.instance):
        reg = {True: "open", False: "closed", None: "?"}[r.registrations]
        lines.append(  # the version is remote text: one line, or it could add instances
            f"{one_line(r.instance):40}  # {one_line(r.version) or '?'}; live feeds "
            f"{one_line(r.live_feeds) or '?'}; registrations {reg}; without a token: {r.action}"
        )
    text = "\n".join(lines) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"Wrote {len(reports)} instances to {output}", err=True)
    else:
        click.echo(text, nl=False)


@instances.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--instance",
    "instance_names",
    multiple=True,
    metavar="URL",
    help="An instance to check (repeatable), besides FILE.",
)
@instances_options
@format_option(["table", "json"], default="table", show_default=True)
@run_command
def check(
    file: str | None,
    instance_names: tuple[str, ...],
    tokens: tuple[str, ...],
    token_file: str | None,
    timeline: str,
    fmt: str,
) -> None:
    """Say, for each instance, what `collect` would do: stream / poll / needs token / down."""
    from tootlake.collector import check_instances
    from tootlake.redact import redact_json
    from tootlake.text import json_for_terminal

    _, specs = settings_and_specs(instance_names, file, tokens, token_file)
    if not specs:
        raise click.UsageError("Give an instances FILE or --instance.")
    reports = check_instances(specs, timeline)
    if fmt == "json":
        rows = redact_json([r.as_dict() for r in reports])
        click.echo(json_for_terminal(json.dumps(rows, indent=1, ensure_ascii=False)))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("instance", "collect would", "version", "live feeds", "token", "why")
    styles = {"stream": "green", "poll": "green", "needs token": "yellow", "down": "red"}
    for r in reports:
        # Version, feeds and reasons are remote text: plain Text (no rich markup), made safe.
        table.add_row(
            Text(clean(r.instance)),
            Text(r.action, style=styles.get(r.action, "")),
            Text(clean(r.version)),
            Text(clean(r.live_feeds)),
            "yes" if r.token else "no",
            Text(clean(r.reason)),
        )
    Console(width=160 if not sys.stdout.isatty() else None).print(table)
