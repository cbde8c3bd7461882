"""What commands print, shared: safe text, rendered output, the live status line and the
final summary of a collection (`collect` and `demo`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

__all__ = [
    "clean",
    "echo_output",
    "one_line",
    "print_collect_summary",
    "status_line",
    "step_line",
    "stderr_is_terminal",
    "stdout_is_terminal",
]


def clean(text: Any) -> str:
    """Text for stderr/stdout (remote text, errors): no token (`tootlake.redact`), no control
    characters."""
    from tootlake.redact import redact
    from tootlake.text import for_terminal

    return for_terminal(redact(str(text)))


def one_line(text: Any) -> str:
    """`clean` text on one line: remote text cannot add lines of its own."""
    return " ".join(clean(text).split())


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def echo_output(text: str) -> None:
    """Rendered output as is: made safe for a terminal already, and lossless (CSV) to a file,
    where click would otherwise strip what looks like colour codes."""
    click.echo(text, nl=not text.endswith("\n"), color=True)


@contextmanager
def step_line(quiet: bool, title: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner with the elapsed time and the step running ("compacting lake: OPTIMIZE
    posts_all") on stderr when it is a terminal (and not --quiet); it goes when the work
    ends. Yields the callback that names the current step, or None."""
    if quiet or not stderr_is_terminal():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, force_terminal=True)  # stderr is a terminal: said above
    with Progress(
        SpinnerColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(title, total=None)

        def show(step: str) -> None:
            progress.update(task, description=f"{title}: {clean(step)}", refresh=True)

        yield show


@contextmanager
def status_line(quiet: bool) -> Iterator[Callable[[Any], None] | None]:
    """A rich status line of a collection on stderr when it is a terminal (and not --quiet):
    yields the `on_progress` callback for `tootlake.collector.collect`, or None."""
    if quiet or not stderr_is_terminal():
        yield None
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from tootlake.text import counted

    last: dict[str, float] = {}

    def render(progress: Any) -> Text:
        stats = progress.stats
        now = time.monotonic()
        done = stats.written
        rate = 0.0
        if last:
            rate = (done - last["done"]) / max(1e-6, now - last["at"])
            rate = 0.7 * last["rate"] + 0.3 * rate
        last.update(done=done, at=now, rate=rate)
        counts = progress.counts
        lag = progress.lag
        text = Text()
        text.append(f"{done:,} posts", style="bold")
        text.append(f" {rate:,.1f}/s", style="cyan")
        text.append(f" · lag {lag:,.1f}s" if lag is not None else " · lag -")
        text.append(f" · {counts.get('streaming', 0)} streaming", style="green")
        text.append(f" · {counts.get('polling', 0)} polling", style="green")
        text.append(
            f" · {counts.get('failing', 0)} failing",
            style="red" if counts.get("failing") else "dim",
        )
        text.append(
            f" · {counts.get('needs token', 0)} need a token",
            style="yellow" if counts.get("needs token") else "dim",
        )
        if counts.get("starting"):
            text.append(f" · {counts['starting']} starting", style="dim")
        text.append(f" · {stats.deletes:,} deletes · {stats.commits} commits", style="dim")
        if stats.write_failures:
            failed = counted(stats.write_failures, "failed try", "failed tries")
            text.append(f" · {failed} to write", style="red")
        if stats.rejected:
            text.append(f" · {stats.rejected:,} rejected", style="yellow")
        return text

    console = Console(stderr=True)
    with Live(Text("starting..."), console=console, refresh_per_second=4, transient=True) as live:
        yield lambda progress: live.update(render(progress))


def withdrawn_summary(stats: Any) -> str:
    """The part of a run's summary about posts withdrawn ("; 3 posts withdrawn ...", or ""):
    written, then removed when a later copy showed their author opted out (the run counted
    them among its posts)."""
    from tootlake.text import counted

    if not stats.withdrawn:
        return ""
    gates = ", ".join(f"{n} {why}" for why, n in sorted(stats.withdrawn.items()))
    total = counted(sum(stats.withdrawn.values()), "post")
    return f"; {total} withdrawn when a later copy failed a consent gate ({gates})"


def print_collect_summary(result: Any, lake: str) -> None:
    """The final summary of a collection (`tootlake.collector.CollectResult`): counts, then
    each instance (up to 30), then the first few bad inputs on stderr."""
    from tootlake.text import counted

    stats = result.stats
    counts = result.counts()
    modes = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(stats.skipped.items())) or "none"
    withdrawn = withdrawn_summary(stats)
    click.echo(
        f"Collected {counted(stats.posts, 'post')}, {counted(stats.edits, 'edit')}, "
        f"{counted(stats.deletes, 'delete')} "
        f"into {lake} in {stats.elapsed:,.1f}s ({stats.posts_per_second:,.1f} posts/s); "
        f"{counted(stats.sightings, 'sighting')} of posts already written, "
        f"{counted(stats.duplicates, 'duplicate')} dropped; skipped {skipped}{withdrawn}; "
        f"{stats.rejected:,} rejected (in the rejects table); "
        f"{sum(stats.coerced.values()):,} odd fields stored as null or default; "
        f"{counted(stats.commits, 'commit')}"
        + (
            f" ({counted(stats.write_failures, 'try', 'tries')} to write failed: see the log)"
            if stats.write_failures
            else ""
        )
        + f". Instances: {modes}. "
        f"State: {result.state_dir}"
    )
    if len(result.health) <= 30:
        for host, entry in sorted(result.health.items()):
            detail = one_line(entry["detail"] or entry["last_error"])
            click.echo(
                f"  {host}: {entry['status']}"
                + (f" via {entry['transport']}" if entry.get("transport") else "")
                + f", {counted(entry['events'], 'event')}, {counted(entry['errors'], 'error')}"
                + (f" - {detail}" if detail and entry["status"] != "streaming" else "")
            )
    refused = getattr(result, "refused", None) or {}
    if refused:
        click.echo(f"Refused by the policy: {counted(len(refused), 'instance')} (not read)")
        for host, why in sorted(refused.items())[:30]:
            click.echo(f"  {one_line(host)}: {one_line(why)}")
    retention = getattr(result, "retention", None)
    if retention is not None:
        removed = ", ".join(f"{n:,} {table}" for table, n in retention.items())
        click.echo(f"Retention: removed {removed}")
    for example in stats.bad_examples[:5]:
        click.echo(f"  bad: {one_line(example)}", err=True)
