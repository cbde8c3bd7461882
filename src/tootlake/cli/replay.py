"""`tootlake replay`: recorded statuses into the lake, or into Kafka."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import (
    consent_options,
    include_opted_out_option,
    kafka_brokers_option,
    kafka_option,
    lake_option,
    pseudonymize_option,
    quiet_option,
    schema_registry_option,
    topic_option,
)
from tootlake.cli.output import clean, stderr_is_terminal, withdrawn_summary
from tootlake.kafka.settings import parse_options
from tootlake.settings import load_settings

BAD_FILES_SHOWN = 10  # files named in a replay's summary of bad lines; the rest are counted


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@lake_option
@click.option(
    "--observed-on",
    metavar="HOST",
    help="Instance the recording was made on (default: inferred from each status).",
)
@include_opted_out_option
@consent_options
@pseudonymize_option
@quiet_option("No progress, only the final line.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Processes replaying pieces of the input side by side (default: one per core, for "
    "inputs of 16 MiB or more per core; 1: one process). Not with --kafka.",
)
@kafka_brokers_option(
    "Send to this Kafka cluster instead of the lake (`tootlake sink` writes the topic "
    "into the lake). Env TOOTLAKE_KAFKA."
)
@topic_option("Kafka topic (with --kafka).")
@schema_registry_option(
    "With --kafka: Confluent wire format with this schema registry, instead of Avro "
    "single-object encoding."
)
@kafka_option
@run_command
def replay(
    files: tuple[str, ...],
    lake: str | None,
    observed_on: str | None,
    include_opted_out: bool | None,
    consent: str | None,
    skip_locked: bool | None,
    skip_bots: bool | None,
    pseudonymize: str | None,
    quiet: bool,
    workers: int | None,
    kafka: str | None,
    topic: str,
    schema_registry: str | None,
    kafka_options: tuple[str, ...],
) -> None:
    """Replay recorded statuses (JSON lines or SSE captures) into the lake, or into Kafka.

    Shows a progress line on a terminal, then a summary, and the bad lines per file: how
    many, and the first few (each one is kept in the rejects table).
    """
    from tootlake.pipeline import replay as replay_files
    from tootlake.pipeline import replay_to_kafka
    from tootlake.text import counted

    settings = load_settings(
        lake=lake,
        include_opted_out=include_opted_out,
        consent=consent,
        skip_locked=skip_locked,
        skip_bots=skip_bots,
        kafka=parse_options(kafka_options),
        pseudonymize=pseudonymize,
    )
    pseudonymizer = settings.pseudonymizer()
    with _replay_progress(quiet, files) as show:
        if kafka:
            stats = replay_to_kafka(
                files,
                kafka=kafka,
                topic=topic,
                schema_registry=schema_registry,
                observed_on=observed_on,
                consent=settings.consent_policy(),
                config=settings.kafka,
                on_progress=show,
                pseudonymizer=pseudonymizer,
            )
            target = f"Kafka topic {topic} at {kafka}"
        else:
            stats = replay_files(
                files,
                settings.lake,
                observed_on=observed_on,
                consent=settings.consent_policy(),
                on_progress=show,
                workers=workers or None,  # (None: one per core)
                pseudonymizer=pseudonymizer,
            )
            target = settings.lake
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(stats.skipped.items())) or "none"
    coerced = sum(stats.coerced.values())
    repeats = (
        f"{counted(stats.repeats, 'version')} written again (the merge keeps one); "
        if stats.repeats
        else ""
    )
    fields = ", ".join(f"{name} {n:,}" for name, n in stats.coerced.most_common(5))
    click.echo(
        f"Replayed {counted(stats.events, 'event')} into {target}: "
        f"{counted(stats.posts, 'post')}, {counted(stats.edits, 'edit')}, "
        f"{counted(stats.deletes, 'delete')}; {repeats}skipped {skipped}"
        f"{withdrawn_summary(stats)}; {stats.rejected:,} rejected (in the rejects table); "
        f"{coerced:,} odd fields stored as null or default{f' ({fields})' if fields else ''}; "
        f"{counted(stats.commits, 'commit')}; {stats.posts_per_second:,.0f} posts/s."
    )
    if stats.bad and not quiet:
        for line in _bad_lines_summary(stats):
            click.echo(line, err=True)


def _bad_lines_summary(stats: Any) -> list[str]:
    """The bad lines of a replay, per file: how many, and each file's first few."""
    per_file = stats.bad_lines
    lines = ["Bad lines, by file (each one is in the rejects table):"]
    for name, count in list(per_file.items())[:BAD_FILES_SHOWN]:
        lines.append(f"  {clean(name)}: {count:,} bad line{'s' if count != 1 else ''}")
        lines += [f"    {clean(text)}" for text in stats.bad_line_examples.get(name, ())]
    if len(per_file) > BAD_FILES_SHOWN:
        rest = list(per_file.values())[BAD_FILES_SHOWN:]
        lines.append(f"  ... and {len(rest):,} more files with {sum(rest):,} bad lines.")
    others = stats.bad - sum(per_file.values())  # not a line of a file (none today)
    if others > 0:
        lines.append(f"  {others:,} other bad input{'s' if others != 1 else ''}.")
    return lines


@contextmanager
def _replay_progress(quiet: bool, files: Sequence[str]) -> Iterator[Callable[[Any], None] | None]:
    """A progress line on stderr when it is a terminal (and not --quiet): posts, posts/s,
    bad lines and time, for the input's size; it goes once the replay ends."""
    if quiet or not stderr_is_terminal():
        yield None
        return
    from rich.console import Console
    from rich.filesize import decimal
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    size = sum(os.path.getsize(name) for name in files if os.path.isfile(name))
    what = f"{len(files):,} file{'s' if len(files) != 1 else ''} ({decimal(size)})"
    console = Console(stderr=True, force_terminal=True)  # stderr is a terminal: said above
    with Progress(
        SpinnerColumn(),
        TimeElapsedColumn(),  # before the text, which a narrow terminal cuts
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"Replaying {what}", total=None)

        def show(stats: Any) -> None:
            progress.update(
                task,
                description=f"Replaying {what}: {stats.written:,} posts, "
                f"{stats.posts_per_second:,.0f} posts/s, {stats.rejected:,} bad lines",
            )

        yield show
