"""`tootlake compact`: rewrite small files into large ones, swapped in atomically."""

from __future__ import annotations

import json

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import format_option, lake_option


@click.command()
@lake_option
@click.option(
    "--target-size",
    default="128MB",
    show_default=True,
    metavar="SIZE",
    help="Size of the files to write (and below which a file counts as small): "
    "bytes, or with a unit such as 64MB or 1GiB.",
)
@click.option(
    "--date",
    "dates",
    multiple=True,
    metavar="YYYY-MM-DD",
    help="Compact only this day's partitions, every file of them (repeatable). "
    "Default: every partition with two or more small files.",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be rewritten.")
@click.option(
    "--grace",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Keep replaced files this long for readers that opened the lake before the "
    "swap; a later run deletes them (0: delete them now).",
)
@click.option(
    "--break-lock",
    is_flag=True,
    help="Take over the lock of a compaction that died on another host.",
)
@format_option(["text", "json"], default="text", help="Output format.")
@run_command
def compact(
    lake: str | None,
    target_size: str,
    dates: tuple[str, ...],
    dry_run: bool,
    grace: float,
    break_lock: bool,
    fmt: str,
) -> None:
    """Compact the lake: each date partition's small files become a few large ones.

    Keeps the latest version of each post (other copies of it are kept as sightings), drops
    deleted posts, keeps every delete, and swaps the new files in with one atomic manifest
    write, so readers see the old files or the new ones. Safe to rerun after a crash.
    """
    from tootlake.settings import load_settings
    from tootlake.sinks.compact import compact as compact_lake
    from tootlake.sinks.compact import parse_size

    settings = load_settings(lake=lake)
    stats = compact_lake(
        settings.lake,
        target_bytes=parse_size(target_size),
        dates=dates or None,
        dry_run=dry_run,
        grace=grace,
        break_lock=break_lock,
    )
    if fmt == "json":
        click.echo(json.dumps(stats.as_dict(), indent=2))
        return
    if dry_run:
        for plan in stats.plans:
            click.echo(
                f"would rewrite {plan.partition}: {len(plan.files)} files, "
                f"{plan.bytes / 1e6:,.1f} MB"
            )
        click.echo(
            f"Dry run: {stats.partitions} partitions, {stats.files_before} files, "
            f"{stats.bytes_before / 1e6:,.1f} MB would be rewritten in {settings.lake}."
        )
        return
    click.echo(
        f"Compacted {settings.lake}: {stats.partitions} partitions, {stats.files_before} files "
        f"({stats.bytes_before / 1e6:,.1f} MB) -> {stats.files_after} files "
        f"({stats.bytes_after / 1e6:,.1f} MB); posts rows {stats.posts_before:,} -> "
        f"{stats.posts_after:,}; {stats.sightings_added:,} copies kept as sightings; "
        f"{stats.deleted_files} replaced files deleted, {stats.orphans_deleted} left by a "
        f"crashed run; {stats.seconds:.1f} s."
    )
