"""`tootlake collect`: live public posts from Mastodon instances into the lake, or Kafka."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import click

from tootlake.cli.command import run_command, stop_on_signals
from tootlake.cli.options import (
    Seconds,
    consent_options,
    include_opted_out_option,
    instances_options,
    kafka_brokers_option,
    kafka_option,
    lake_option,
    load_policy_of,
    policy_option,
    pseudonymize_option,
    pseudonymizer_of,
    quiet_option,
    retain_option,
    schema_registry_option,
    settings_and_specs,
    topic_option,
)
from tootlake.cli.output import print_collect_summary, status_line
from tootlake.errors import SourceError


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


@click.command()
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
@instances_options
@lake_option
@click.option(
    "--state",
    "state_dir",
    metavar="DIR",
    help="Cursors and instance health (default LAKE/_tootlake/state).",
)
@click.option(
    "--duration",
    type=Seconds(above_zero=True),
    metavar="SECONDS",
    help="Stop cleanly after this long.",
)
@click.option(
    "--stream",
    "stream",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "websocket", "sse"]),
    help="Streaming transport; auto = WebSocket, SSE where WebSocket is not offered.",
)
@include_opted_out_option
@consent_options
@policy_option
@retain_option
@pseudonymize_option
@click.option(
    "--flush-seconds",
    default=60.0,
    show_default=True,
    type=Seconds(),
    help="Longest time a post waits in memory before it is written to the lake.",
)
@click.option(
    "--heartbeat-timeout",
    default=45.0,
    show_default=True,
    type=Seconds(above_zero=True),
    help="A stream silent for this long is dead and reconnected.",
)
@_limit_options
@kafka_brokers_option(
    "Send posts to this Kafka cluster instead of the lake (tootlake sink writes it)."
)
@topic_option("Kafka topic.")
@schema_registry_option("With --kafka: Confluent wire format through this Schema Registry.")
@kafka_option
@quiet_option("No status line, only the final stats.")
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
    consent: str | None,
    skip_locked: bool | None,
    skip_bots: bool | None,
    policy: str | None,
    retain: float | None,
    pseudonymize: str | None,
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
    cleanly: what was received is written and the cursors saved. Instances that --policy
    denies are not read; --retain DAYS removes what is older at the end of the run. Each run
    is recorded in the lake's `audit` table. Exits with status 1 when no instance could be
    read at all (failing, needing a token, rate limited or silent the whole run).
    """
    from tootlake.collector import collect as run_collect
    from tootlake.settings import parse_size
    from tootlake.sources.fleet import FleetOptions

    settings, specs = settings_and_specs(
        instances,
        instances_file,
        tokens,
        token_file,
        lake,
        include_opted_out,
        kafka_options,
        policy=policy,
        retain=retain,
        consent=consent,
        skip_locked=skip_locked,
        skip_bots=skip_bots,
    )
    instance_policy = load_policy_of(settings)
    pseudonymizer = pseudonymizer_of(settings, pseudonymize)
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
    with stop_on_signals(stop, stopping), status_line(quiet) as show:
        result = run_collect(
            specs,
            settings.lake,
            state_dir=state_dir,
            options=options,
            duration=duration,
            consent=settings.consent_policy(),
            flush_seconds=flush_seconds,
            stop=stop,
            on_progress=show,
            kafka=kafka,
            topic=topic,
            schema_registry=schema_registry,
            kafka_config=settings.kafka,
            policy=instance_policy,
            retain_days=settings.retain,
            pseudonymizer=pseudonymizer,
        )
    print_collect_summary(result, f"Kafka {kafka} topic {topic}" if kafka else settings.lake)
    if stats_path:
        with open(stats_path, "w", encoding="utf-8") as handle:
            json.dump(result.as_dict(), handle, indent=1)
    failure = result.failure()
    if failure is not None:  # a cron job or a script must see it: exit status 1
        raise SourceError(failure)
