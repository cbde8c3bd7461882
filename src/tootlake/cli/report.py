"""`tootlake report`: every analysis of the lake, as text, JSON, CSV, Markdown or HTML."""

from __future__ import annotations

from typing import Any

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import (
    Count,
    MemoryLimit,
    format_option,
    lake_option,
    skip_corrupt_option,
    tz_option,
)
from tootlake.cli.output import echo_output, stdout_is_terminal
from tootlake.settings import load_settings


@click.command()
@lake_option
@format_option(
    ["table", "json", "csv", "markdown"],
    default="table",
    help="Output format. Text is made safe to print (no control characters); csv to a file "
    "or pipe stays lossless.",
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report."
)
@click.option("--term", "terms", multiple=True, help="A word to follow per day (repeatable).")
@click.option(
    "--top",
    default=20,
    show_default=True,
    type=Count(0),
    help="Rows of the top-N sections.",
)
@tz_option
@skip_corrupt_option
@click.option(
    "--memory-limit",
    type=MemoryLimit(),
    metavar="SIZE",
    help="DuckDB's memory limit (e.g. 1GB); beyond it, queries spill to --temp-directory. "
    "Default: 80% of the machine's memory.",
)
@click.option(
    "--temp-directory",
    type=click.Path(file_okay=False),
    help="Where DuckDB spills (default: .tmp in the working folder, when it needs one).",
)
@run_command
def report(
    lake: str | None,
    fmt: str,
    html_path: str | None,
    terms: tuple[str, ...],
    top: int,
    tz: str,
    skip_corrupt: bool,
    memory_limit: str | None,
    temp_directory: str | None,
) -> None:
    """Print every analysis of the lake."""
    from tootlake.analysis.queries import DEFAULT_TERMS
    from tootlake.analysis.report import build_report, render_report
    from tootlake.lake.reader import check_lake, read_lake

    settings = load_settings(lake=lake)
    if not check_lake(settings.lake):
        click.echo(f"Note: the lake {settings.lake} holds no data yet.", err=True)

    def build(con: Any) -> Any:
        tables = build_report(con=con, terms=terms or DEFAULT_TERMS, top=top, tz=tz)
        if html_path:
            from tootlake.analysis.html import write_html_report

            try:
                write_html_report(settings.lake, html_path, report=tables, con=con, tz=tz)
            except OSError as exc:
                message = f"Cannot write {html_path}: {exc.strerror or exc}"
                raise click.ClickException(message) from exc
        return tables

    tables = read_lake(
        settings.lake,
        build,
        skip_corrupt=skip_corrupt,
        memory_limit=memory_limit,
        temp_directory=temp_directory,
    )
    if html_path:
        click.echo(f"Wrote {html_path}", err=True)
    echo_output(render_report(tables, fmt, terminal=stdout_is_terminal()))
