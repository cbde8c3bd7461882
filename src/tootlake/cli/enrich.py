"""`tootlake enrich`: detect the language of posts' text into the lake's `languages` table."""

from __future__ import annotations

import json

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import Count, format_option, lake_option, quiet_option
from tootlake.cli.output import step_line


@click.command()
@lake_option
@click.option(
    "--min-letters",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Detect only texts with at least this many letters once links, @mentions, #hashtags "
    "and :emoji: are taken out (shorter ones get a row with no language).",
)
@click.option(
    "--limit",
    type=Count(1),
    default=None,
    metavar="N",
    help="Detect at most N posts in this run (the next run goes on).",
)
@click.option(
    "--low-accuracy",
    is_flag=True,
    help="lingua's low accuracy mode: less memory and faster, worse on short posts.",
)
@quiet_option("No progress line, only the result.")
@format_option(["text", "json"], default="text", help="Output format.")
@run_command
def enrich(
    lake: str | None,
    min_letters: int,
    limit: int | None,
    low_accuracy: bool,
    quiet: bool,
    fmt: str,
) -> None:
    """Detect the language of the text of every post not detected yet, with lingua (the
    `lang` extra: pip install -e ".[lang]"), and append it to the lake's `languages` table (uri,
    language_detected, language_confidence, detected_at), a commit per 20,000 posts (fewer
    when their texts hold more than 16 MiB). The report compares it with the posts' language
    tags. Safe to interrupt and rerun: it goes on
    where it stopped. Run one at a time per lake."""
    from tootlake.lake.enrich import EnrichStats
    from tootlake.lake.enrich import enrich as enrich_lake
    from tootlake.settings import load_settings

    settings = load_settings(lake=lake)
    with step_line(quiet, "Detecting languages") as show:

        def progress(stats: EnrichStats) -> None:
            if show is not None:
                show(f"{stats.examined:,} posts")

        stats = enrich_lake(
            settings.lake,
            min_letters=min_letters,
            limit=limit,
            low_accuracy=low_accuracy,
            on_batch=progress,
        )
    if fmt == "json":
        click.echo(json.dumps(stats.as_dict(), indent=2))
        return
    per_post = stats.detect_seconds / stats.examined * 1000 if stats.examined else 0.0
    click.echo(
        f"Detected languages in {settings.lake}: {stats.examined:,} posts looked at: "
        f"{stats.detected:,} with a language, {stats.too_short:,} without one (under "
        f"{min_letters} letters once links, mentions, hashtags and emoji codes are out, or "
        f"no language fits); {stats.skipped_short:,} posts under {min_letters} characters "
        f"not looked at; "
        f"{stats.seconds:.1f} s ({per_post:.2f} ms a post in {stats.detector})."
    )
