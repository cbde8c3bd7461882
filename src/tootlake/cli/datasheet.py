"""`tootlake datasheet`: a datasheet of the lake ("Datasheets for Datasets"), in Markdown or
HTML (`tootlake.analysis.datasheet`)."""

from __future__ import annotations

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import lake_option


@click.command()
@lake_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the datasheet here (default: stdout).",
)
@click.option("--html", "as_html", is_flag=True, help="An HTML page instead of Markdown.")
@run_command
def datasheet(lake: str | None, output: str | None, as_html: bool) -> None:
    """Write a datasheet of the lake, in the spirit of "Datasheets for Datasets": time span,
    instances (software versions, collection method), consent mode and what each gate
    skipped, pseudonymisation, deletes honoured, retention, known gaps (reconnects,
    rejected statuses) and the column dictionary. Made from the lake's own tables, its
    `audit` table above all."""
    from tootlake.analysis.datasheet import write_datasheet
    from tootlake.settings import load_settings

    settings = load_settings(lake=lake)
    text = write_datasheet(settings.lake, output, as_html=as_html)
    if output:
        click.echo(f"Wrote the datasheet of {settings.lake} to {output}", err=True)
    else:
        click.echo(text, nl=False)
