"""`tootlake collect` and `tootlake instances discover|check`."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from tootlake.cli import lake_option, main, run_command, stop_on_signals
from tootlake.settings import load_settings
from tootlake.transports.kafka_settings import DEFAULT_TOPIC, kafka_option, parse_options

TIMELINE = click.Choice(["public", "local", "remote"])


def _limit_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Size limits per connection (docs/collect.md, "Limits"): beyond one, the connection is
    dropped and the instance backs off."""
    for flag, default, what in reversed(
        [
            ("--max-body", "10MiB", "a REST answer or instance document"),
            ("--max-sse-line", "1MiB", "one SSE line"),
            ("--max-sse-event", "1MiB", "the data lines of one SSE event"),
            ("--max-ws-message", "1MiB", "one WebSocket message"),
        ]
    ):
        func = click.option(
            flag,
            default=default,
            show_default=True,
            metavar="SIZE",
            help=f"Size limit of {what}: beyond it the connection is dropped.",
        )(func)
    return func


def _instances_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--token",
        "tokens",
        multiple=True,
        metavar="INSTANCE=TOKEN",
        help="A user token for an instance (repeatable). Other local users can read a command "
        "line (ps): prefer --token-file or TOOTLAKE_TOKEN_<HOST>. Never logged or stored.",
    )(func)
    func = click.option(
        "--token-file",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="User tokens, one INSTANCE=TOKEN a line (# comments); keep it chmod 600. Also "
        "TOOTLAKE_TOKEN_<HOST> and the config file's [tokens] table.",
    )(func)
    func = click.option(
        "--timeline",
        default="public",
        show_default=True,
        type=TIMELINE,
        help="Which public timeline: all, the instance's own posts, or the federated rest.",
    )(func)
    return func


def _settings_and_specs(
    instances: tuple[str, ...],
    instances_file: str | None,
    tokens: tuple[str, ...],
    token_file: str | None,
    lake: str | None = None,
    include_opted_out: bool | None = None,
    kafka_options: tuple[str, ...] = (),
) -> tuple[Any, list[Any]]:
    from tootlake.collector import (
        parse_token_flags,
        read_instances,
        read_instances_file,
        read_token_file,
    )

    given = read_token_file(token_file) if token_file else {}
    given.update(parse_token_flags(tokens))  # --token, the more specific, wins
    settings = load_settings(
        lake=lake,
        include_opted_out=include_opted_out,
        tokens=given,
        kafka=parse_options(kafka_options),
    )
    names = list(instances)
    if instances_file:
        names += read_instances_file(instances_file)
    return settings, read_instances(names, settings)


@main.command()
@click.option(
    "--instance",
    "instances",
    multiple=True,
    metavar="URL",
    help="An instance: host (https) or http(s) URL (repeatable).",
)
@click.option(
    "--instances-file",
    type=click.Path(dir_okay=False),
    help="A file of instances, one a line (# comments), e.g. from `instances discover`.",
)
@_instances_options
@lake_option
@click.option(
    "--state",
    "state_dir",
    metavar="DIR",
    help="Cursors and instance health (default LAKE/_tootlake/state).",
)
@click.option("--duration", type=float, metavar="SECONDS", help="Stop cleanly after this long.")
@click.option(
    "--stream",
    "stream",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "websocket", "sse"]),
    help="Streaming transport; auto = WebSocket, SSE where WebSocket is not offered.",
)
@click.option(
    "--include-opted-out",
    is_flag=True,
    default=None,
    help="Keep posts of accounts that opted out of indexing (noindex, #nobot...).",
)
@click.option(
    "--flush-seconds",
    default=60.0,
    show_default=True,
    type=float,
    help="Longest time a post waits in memory before it is written to the lake.",
)
@click.option(
    "--heartbeat-timeout",
    default=45.0,
    show_default=True,
    type=float,
    help="A stream silent for this long is dead and reconnected.",
)
@_limit_options
@click.option(
    "--kafka",
    metavar="HOST:PORT",
    envvar="TOOTLAKE_KAFKA",
    help="Send posts to this Kafka cluster instead of the lake (tootlake sink writes it).",
)
@click.option("--topic", default=DEFAULT_TOPIC, show_default=True, help="Kafka topic.")
@click.option(
    "--schema-registry",
    metavar="URL",
    help="With --kafka: Confluent wire format through this Schema Registry.",
)
@kafka_option
@click.option("--quiet", "-q", is_flag=True, help="No status line, only the final stats.")
@click.option(
    "--stats",
    "stats_path",
    type=click.Path(dir_okay=False),
    help="Also write the final stats (counts, lag over time) to FILE as JSON.",
)
@run_command
def collect(
    instances: tuple[str, ...],
    instances_file: str | None,
    tokens: tuple[str, ...],
    token_file: str | None,
    timeline: str,
    lake: str | None,
    state_dir: str | None,
    duration: float | None,
    stream: str,
    include_opted_out: bool | None,
    flush_seconds: float,
    heartbeat_timeout: float,
    max_body: str,
    max_sse_line: str,
    max_sse_event: str,
    max_ws_message: str,
    kafka: str | None,
    topic: str,
    schema_registry: str | None,
    kafka_options: tuple[str, ...],
    quiet: bool,
    stats_path: str | None,
) -> None:
    """Collect live public posts from Mastodon instances into the lake.

    With a token for an instance, its streaming API is read (backfilled from the last cursor
    after every reconnect); without one its public timeline is polled when the instance
    allows it; otherwise the instance is reported as needing a token. Ctrl-C or SIGTERM stops
    cleanly: what was received is written and the cursors saved.
    """
    from tootlake.collector import collect as run_collect
    from tootlake.sinks.compact import parse_size
    from tootlake.sources.fleet import FleetOptions

    settings, specs = _settings_and_specs(
        instances, instances_file, tokens, token_file, lake, include_opted_out, kafka_options
    )
    stop = threading.Event()
    options = FleetOptions(
        timeline=timeline,
        stream=stream,
        heartbeat_timeout=heartbeat_timeout,
        max_body=parse_size(max_body),
        max_sse_line=parse_size(max_sse_line),
        max_sse_event=parse_size(max_sse_event),
        max_ws_message=parse_size(max_ws_message),
    )
    stopping = "Stopping: writing what was received (Ctrl-C again to quit now)..."
    with stop_on_signals(stop, stopping), _status_line(quiet) as show:
        result = run_collect(
            specs,
            settings.lake,
            state_dir=state_dir,
            options=options,
            duration=duration,
            include_opted_out=settings.include_opted_out,
            flush_seconds=flush_seconds,
            stop=stop,
            on_progress=show,
            kafka=kafka,
            topic=topic,
            schema_registry=schema_registry,
            kafka_config=settings.kafka,
        )
    _print_final(result, f"Kafka {kafka} topic {topic}" if kafka else settings.lake)
    if stats_path:
        with open(stats_path, "w", encoding="utf-8") as handle:
            json.dump(result.as_dict(), handle, indent=1)


@contextmanager
def _status_line(quiet: bool) -> Iterator[Callable[[Any], None] | None]:
    """A rich status line on stderr when it is a terminal (and not --quiet)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    last: dict[str, float] = {}

    def render(progress: Any) -> Text:
        stats = progress.stats
        now = time.monotonic()
        done = stats.posts + stats.edits
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
        text.append(f" · {stats.deletes:,} deletes · {stats.files} files", style="dim")
        if stats.rejected:
            text.append(f" · {stats.rejected:,} rejected", style="yellow")
        return text

    console = Console(stderr=True)
    with Live(Text("starting..."), console=console, refresh_per_second=4, transient=True) as live:
        yield lambda progress: live.update(render(progress))


def _safe(text: Any) -> str:
    """Remote text (errors, bodies, versions) for a terminal: no token, no control chars."""
    from tootlake.redact import redact
    from tootlake.text import for_terminal

    return for_terminal(redact(str(text)))


def _one_line(text: Any) -> str:
    return " ".join(_safe(text).split())


def _print_final(result: Any, lake: str) -> None:
    stats = result.stats
    counts = result.counts()
    modes = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(stats.skipped.items())) or "none"
    click.echo(
        f"Collected {stats.posts:,} posts, {stats.edits:,} edits, {stats.deletes:,} deletes "
        f"into {lake} in {stats.elapsed:,.1f}s ({stats.posts_per_second:,.1f} posts/s); "
        f"{stats.sightings:,} sightings of posts already written, {stats.duplicates:,} "
        f"duplicates dropped; skipped {skipped}; {stats.rejected:,} rejected (in the rejects "
        f"table); {sum(stats.coerced.values()):,} odd fields stored as null or default; "
        f"{stats.files} files. Instances: {modes}. State: {result.state_dir}"
    )
    if len(result.health) <= 30:
        for host, entry in sorted(result.health.items()):
            detail = _one_line(entry["detail"] or entry["last_error"])
            click.echo(
                f"  {host}: {entry['status']}"
                + (f" via {entry['transport']}" if entry.get("transport") else "")
                + f", {entry['events']:,} events, {entry['errors']} errors"
                + (f" - {detail}" if detail and entry["status"] != "streaming" else "")
            )
    for example in stats.bad_examples[:5]:
        click.echo(f"  bad: {_one_line(example)}", err=True)


# ----------------------------------------------------------------------------------------


@main.group()
def instances() -> None:
    """Find instances and see how `collect` would read them."""


@instances.command()
@click.option(
    "--from",
    "start",
    required=True,
    metavar="HOST",
    help="An instance whose peers (/api/v1/instance/peers) to probe.",
)
@click.option("--limit", default=100, show_default=True, help="How many answering instances.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the instances file here (default: stdout).",
)
@click.option("--timeline", default="public", show_default=True, type=TIMELINE)
@run_command
def discover(start: str, limit: int, output: str | None, timeline: str) -> None:
    """Probe the peers of an instance and write an instances file for `collect`."""
    from tootlake.collector import discover_instances

    reports = discover_instances(start, limit, timeline)
    lines = [f"# instances found from {start}: {len(reports)}"]
    for r in sorted(reports, key=lambda r: r.instance):
        reg = {True: "open", False: "closed", None: "?"}[r.registrations]
        lines.append(  # the version is remote text: one line, or it could add instances
            f"{_one_line(r.instance):40}  # {_one_line(r.version) or '?'}; live feeds "
            f"{_one_line(r.live_feeds) or '?'}; registrations {reg}; without a token: {r.action}"
        )
    text = "\n".join(lines) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"Wrote {len(reports)} instances to {output}", err=True)
    else:
        click.echo(text, nl=False)


@instances.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--instance",
    "instance_names",
    multiple=True,
    metavar="URL",
    help="An instance to check (repeatable), besides FILE.",
)
@_instances_options
@click.option(
    "--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "json"])
)
@run_command
def check(
    file: str | None,
    instance_names: tuple[str, ...],
    tokens: tuple[str, ...],
    token_file: str | None,
    timeline: str,
    fmt: str,
) -> None:
    """Say, for each instance, what `collect` would do: stream / poll / needs token / down."""
    from tootlake.collector import check_instances
    from tootlake.redact import redact_json
    from tootlake.text import json_for_terminal

    _, specs = _settings_and_specs(instance_names, file, tokens, token_file)
    if not specs:
        raise click.UsageError("Give an instances FILE or --instance.")
    reports = check_instances(specs, timeline)
    if fmt == "json":
        rows = redact_json([r.as_dict() for r in reports])
        click.echo(json_for_terminal(json.dumps(rows, indent=1, ensure_ascii=False)))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("instance", "collect would", "version", "live feeds", "token", "why")
    styles = {"stream": "green", "poll": "green", "needs token": "yellow", "down": "red"}
    for r in reports:
        # Version, feeds and reasons are remote text: plain Text (no rich markup), made safe.
        table.add_row(
            Text(_safe(r.instance)),
            Text(r.action, style=styles.get(r.action, "")),
            Text(_safe(r.version)),
            Text(_safe(r.live_feeds)),
            "yes" if r.token else "no",
            Text(_safe(r.reason)),
        )
    Console(width=160 if not sys.stdout.isatty() else None).print(table)
