"""`tootlake dashboard`: the report as a live page that refreshes while `collect` writes."""

from __future__ import annotations

import ipaddress

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import lake_option, tz_option
from tootlake.settings import load_settings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@lake_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. The dashboard has no login: keep it on loopback.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free one, shown when the dashboard starts).",
)
@click.option(
    "--refresh",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="The page reloads every SECONDS; results are shared for up to 5 s "
    "(longer when computing them is slow).",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this host name (repeatable), e.g. the machine's name when "
    "--host is 0.0.0.0. Others get 400 (DNS rebinding).",
)
@tz_option
@run_command
def dashboard(
    lake: str | None,
    host: str,
    port: int,
    refresh: int,
    allow_hosts: tuple[str, ...],
    tz: str,
) -> None:
    """Serve a live page of the report's figures and charts (read-only)."""
    from tootlake.analysis.dashboard import serve
    from tootlake.lake.reader import check_lake

    settings = load_settings(lake=lake)
    check_lake(settings.lake)  # before announcing anything: a missing lake is an error
    if not _is_loopback(host):
        click.echo(
            f"Warning: serving on {host}, beyond this machine; the dashboard has no "
            "login and shows everything in the lake.",
            err=True,
        )
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host

    def listening(bound: int) -> None:  # the real port: --port 0 lets the system choose
        click.echo(
            f"Dashboard of {settings.lake} on http://{shown}:{bound}/ "
            f"(refreshes every {refresh} s; Ctrl-C to stop)",
            err=True,
        )

    serve(
        settings.lake,
        host=host,
        port=port,
        refresh=refresh,
        allow_hosts=allow_hosts,
        on_listening=listening,
        tz=tz,
    )
