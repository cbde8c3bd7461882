"""`tootlake migrate`: a lake of the layout before Delta tables becomes Delta tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import (
    MemoryLimit,
    format_option,
    lake_argument_or_option,
    one_lake,
    quiet_option,
)
from tootlake.cli.output import clean, stderr_is_terminal
from tootlake.text import counted


@click.command()
@lake_argument_or_option
@click.option(
    "--keep-old",
    is_flag=True,
    help="Keep the old files under LAKE/_tootlake/old-layout/ instead of deleting them once "
    "the new tables are checked (delete that folder yourself later).",
)
@click.option(
    "--memory-limit",
    default=None,
    type=MemoryLimit(),
    metavar="SIZE",
    help="DuckDB's memory limit while merging posts (e.g. 1GB); it spills to disk beyond it.",
)
@quiet_option("No progress line.")
@format_option(["text", "json"], default="text", help="Output format.")
@run_command
def migrate(
    lake_path: str | None,
    lake: str | None,
    keep_old: bool,
    memory_limit: str | None,
    quiet: bool,
    fmt: str,
) -> None:
    """Convert a lake of the layout before Delta tables (plain Parquet files under
    posts/date=..., and a compaction manifest) into Delta Lake tables, in place: posts_all,
    posts, deletes, sightings, rejects. Stop every writer of the lake first.

    Safe: a crash or Ctrl-C leaves every row of the old lake in it; run the command again to
    finish. A lake in the Delta layout already is left as it is.
    """
    from tootlake.lake.migrate import migrate as migrate_lake
    from tootlake.settings import load_settings

    settings = load_settings(lake=one_lake(lake_path, lake))
    with _progress(quiet, settings.lake) as show:
        stats = migrate_lake(
            settings.lake, keep_old=keep_old, memory_limit=memory_limit, on_progress=show
        )
    if fmt == "json":
        click.echo(json.dumps(stats.as_dict(), indent=2))
        return
    where = clean(settings.lake)
    if not stats.migrated:
        click.echo(f"Nothing to migrate: the lake {where} is not in the old layout.")
        return
    files = sum(stats.files.values())
    rows = ", ".join(f"{table} {count:,}" for table, count in stats.rows.items())
    resumed = " (carrying on from an interrupted run)" if stats.resumed else ""
    click.echo(
        f"Migrated {where} to Delta tables{resumed}: "
        f"{counted(files, 'old file')} converted ({rows} rows); "
        f"{counted(stats.files_left_out, 'file')} that compaction had replaced left out; "
        f"{stats.seconds:.1f} s."
    )
    if stats.old_files:
        click.echo(f"The old files are kept in {clean(stats.old_files)}.")
    for table, columns in stats.columns_filled.items():
        click.echo(
            f"Note: old {table} files lacked {', '.join(columns)}: NULL, or the default.",
            err=True,
        )
    for table, columns in stats.columns_dropped.items():
        click.echo(
            f"Note: old {table} files had {', '.join(columns)}, no longer columns: left out "
            "(--keep-old keeps the old files).",
            err=True,
        )
    if stats.replaced_but_changed:
        click.echo(
            f"Note: {counted(stats.replaced_but_changed, 'file')} that the old compaction "
            "marked as replaced had been rewritten since (mtime or ETag changed): converted "
            "too, as the old reader read them.",
            err=True,
        )


@contextmanager
def _progress(quiet: bool, lake: str) -> Iterator[Callable[[Any], None] | None]:
    """A progress line on stderr when it is a terminal (and not --quiet); it goes at the end."""
    if quiet or not stderr_is_terminal():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    steps = {
        "convert": "converting {table}",
        "swap": "moving {table} into place",
        "merge": "merging posts",
        "cleanup": "cleaning up",
    }
    console = Console(stderr=True, force_terminal=True)
    with Progress(
        SpinnerColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"Migrating {clean(lake)}", total=None)

        def show(state: Any) -> None:
            what = steps.get(state.step, state.step).format(table=state.table or "files")
            count = f" ({state.done:,}/{state.total:,} files)" if state.total else ""
            progress.update(task, description=f"Migrating {clean(lake)}: {what}{count}")

        yield show
