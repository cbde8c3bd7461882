"""`tootlake revalidate`: find the deletes a collection missed by asking the instances again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from tootlake.cli.command import run_command, stop_on_signals
from tootlake.cli.options import (
    consent_options,
    format_option,
    include_opted_out_option,
    lake_argument_or_option,
    one_lake,
    quiet_option,
    settings_and_specs,
)
from tootlake.cli.output import clean, one_line, stderr_is_terminal


@click.command()
@lake_argument_or_option
@click.option(
    "--instance",
    "instances",
    multiple=True,
    metavar="URL",
    help="How to reach an instance of the lake, as for collect: host (https) or http(s) URL "
    "(repeatable). Others are asked at https://HOST.",
)
@click.option(
    "--instances-file",
    type=click.Path(dir_okay=False),
    help="A file of instances, one a line (# comments), as for collect.",
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    metavar="INSTANCE=TOKEN",
    help="A user token for an instance (repeatable); prefer --token-file or "
    "TOOTLAKE_TOKEN_<HOST>. Never logged or stored.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="User tokens, one INSTANCE=TOKEN a line (chmod 600); also TOOTLAKE_TOKEN_<HOST> and "
    "the config file's [tokens], as for collect.",
)
@click.option(
    "--max-requests",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Send at most N lookups in this run (all instances together); the rest waits for "
    "the next run.",
)
@click.option(
    "--older-than",
    default="6d",
    show_default=True,
    metavar="DURATION",
    help="Only posts not checked for this long (7d, 12h, 0 for every post). Run daily with "
    "the default and every post is checked again within 7 days.",
)
@include_opted_out_option
@consent_options
@quiet_option("No progress line, only the summary.")
@format_option(["text", "json"], default="text", help="Output format of the summary.")
@run_command
def revalidate(
    lake_path: str | None,
    lake: str | None,
    instances: tuple[str, ...],
    instances_file: str | None,
    tokens: tuple[str, ...],
    token_file: str | None,
    max_requests: int | None,
    older_than: str,
    include_opted_out: bool | None,
    consent: str | None,
    skip_locked: bool | None,
    skip_bots: bool | None,
    quiet: bool,
    fmt: str,
) -> None:
    """Ask each instance again for the posts seen on it (GET /api/v1/statuses/:id) and
    remove what is gone: deleted posts (404/410), every post of an account that is gone or
    suspended, posts that are no longer public, and the posts of authors who now opt out
    (noindex, #nobot...). Errors (5xx, timeouts) remove nothing: those posts are asked
    again next run. Within each instance's rate limits; resumable (the `checks` table
    records what was asked); Ctrl-C stops cleanly. A pseudonymised lake cannot be
    revalidated. The consent gates are the strictest the lake was collected under (its
    audit table), unless --consent, --skip-locked, --skip-bots or --include-opted-out say
    otherwise."""
    from tootlake.revalidate import revalidate as run_revalidate

    settings, specs = settings_and_specs(
        instances,
        instances_file,
        tokens,
        token_file,
        one_lake(lake_path, lake),
        include_opted_out,
        consent=consent,
        skip_locked=skip_locked,
        skip_bots=skip_bots,
    )
    # a policy given here, or in the config file or the environment; else the lake's own
    asked = (
        settings.include_opted_out
        or settings.consent is not None
        or settings.skip_locked
        or settings.skip_bots
    )
    stop = threading.Event()
    stopping = "Stopping: writing what was found (Ctrl-C again to quit now)..."
    with stop_on_signals(stop, stopping), _progress_line(quiet) as show:
        result = run_revalidate(
            settings.lake,
            instances=specs,
            settings=settings,
            max_requests=max_requests,
            older_than=older_than,
            consent=settings.consent_policy() if asked else None,
            stop=stop,
            on_progress=show,
        )
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=1))
        return
    s = result.stats
    removed = s.removed
    click.echo(
        f"Revalidated {settings.lake}: checked {s.checked:,} posts ({s.requests:,} requests), "
        f"removed {s.deletes:,}: {removed.get('deleted', 0):,} deleted, "
        f"{removed.get('gone_from_observer', 0):,} gone from the instance that showed them, "
        f"{removed.get('not_public', 0):,} no longer public, "
        f"{removed.get('account_gone', 0):,} from {s.gone_accounts:,} gone accounts, "
        f"{s.deletes - sum(removed.get(k, 0) for k in _NAMED):,} from "
        f"{s.opted_out_accounts:,} authors who opted out; {s.errors:,} errors (asked again "
        f"next run); {s.remaining:,} remaining"
        + (f", {s.unconfirmed:,} gone answers not trusted yet" if s.unconfirmed else "")
        + "."
    )
    for host, entry in sorted(result.instances.items()):
        if entry["status"] not in ("done", "waiting") and len(result.instances) <= 30:
            detail = f" - {one_line(entry['detail'])}" if entry.get("detail") else ""
            click.echo(f"  {clean(host)}: {entry['status']}{detail}", err=True)


_NAMED = ("deleted", "gone_from_observer", "account_gone", "not_public")


@contextmanager
def _progress_line(quiet: bool) -> Iterator[Callable[[Any], None] | None]:
    """A status line on stderr when it is a terminal (and not --quiet)."""
    if quiet or not stderr_is_terminal():
        yield None
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def render(result: Any) -> Text:
        s = result.stats
        waiting = sum(1 for e in result.instances.values() if e["status"] == "waiting")
        checking = sum(1 for e in result.instances.values() if e["status"] == "checking")
        text = Text()
        text.append(f"{s.checked:,}/{s.due:,} checked", style="bold")
        text.append(f" · {s.deletes:,} removed", style="cyan")
        text.append(f" · {s.errors:,} errors", style="red" if s.errors else "dim")
        text.append(f" · {s.requests:,} requests · {checking} instances asking", style="dim")
        if waiting:
            text.append(f" · {waiting} waiting", style="dim")
        text.append(f" · {time.monotonic() - s.started:,.0f}s", style="dim")
        return text

    console = Console(stderr=True)
    with Live(Text("starting..."), console=console, refresh_per_second=4, transient=True) as live:
        yield lambda result: live.update(render(result))
