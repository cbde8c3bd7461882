"""`tootlake compact`: Delta maintenance of the lake (merge, remove deleted posts, OPTIMIZE,
checkpoint, VACUUM)."""

from __future__ import annotations

import json

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import (
    MemoryLimit,
    format_option,
    lake_option,
    quiet_option,
    retain_option,
)
from tootlake.cli.output import step_line


@click.command()
@lake_option
@click.option(
    "--retain-files",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="Keep files that compaction replaced this long (7d, 12h, 0 for none) for readers "
    "and time travel; older ones are deleted (VACUUM).",
)
@click.option(
    "--target-size",
    default="128MB",
    show_default=True,
    metavar="SIZE",
    help="Size of the files to write: bytes, or with a unit such as 64MB or 1GiB.",
)
@click.option(
    "--memory-limit",
    default=None,
    type=MemoryLimit(),
    metavar="SIZE",
    help="DuckDB's memory limit while merging (e.g. 1GB); it spills to disk beyond it.",
)
@retain_option
@quiet_option("No progress line, only the result.")
@format_option(["text", "json"], default="text", help="Output format.")
@run_command
def compact(
    lake: str | None,
    retain_files: str,
    target_size: str,
    memory_limit: str | None,
    retain: float | None,
    quiet: bool,
    fmt: str,
) -> None:
    """Compact the lake: merge `posts`, remove deleted posts from every table, bin-pack small
    files into large ones (OPTIMIZE), checkpoint the Delta logs and delete replaced files
    older than --retain-files (VACUUM). Readers see each table's old version or its new one,
    never a mix; safe to rerun after a crash. With --retain DAYS (or `retain` in the config
    file), posts older than DAYS (by created_at) with their detected languages, sightings and
    rejects (by their own time) are removed from every table first."""
    from tootlake.lake.maintenance import compact as compact_lake
    from tootlake.settings import load_settings, parse_size

    settings = load_settings(lake=lake, retain=retain)
    with step_line(quiet, "Compacting") as show:
        stats = compact_lake(
            settings.lake,
            retain_files=retain_files,
            target_bytes=parse_size(target_size),
            memory_limit=memory_limit,
            retain_days=settings.retain,
            on_step=show,
        )
    if fmt == "json":
        click.echo(json.dumps(stats.as_dict(), indent=2))
        return
    before = sum(stats.files_before.values())
    after = sum(stats.files_after.values())
    click.echo(
        f"Compacted {settings.lake}: {before:,} files -> {after:,}; "
        f"posts merged ({stats.merge.upserted:,} upserted, {stats.merge.deleted:,} deleted); "
        f"{stats.posts_removed:,} rows of deleted posts removed; "
        f"{stats.files_vacuumed:,} replaced files deleted; {stats.seconds:.1f} s."
    )
    if stats.retention is not None:
        removed = ", ".join(f"{n:,} {t}" for t, n in stats.retention.removed.items())
        click.echo(f"Retention: removed rows older than {stats.retention.cutoff}: {removed}.")
