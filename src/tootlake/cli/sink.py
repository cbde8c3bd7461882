"""`tootlake sink`: a sink worker, reading a Kafka topic into the lake exactly once."""

from __future__ import annotations

import gc
import json
import threading

import click

from tootlake.cli.command import arm_watchdog, disarm_watchdog, run_command, stop_on_signals
from tootlake.cli.options import (
    Seconds,
    format_option,
    kafka_brokers_option,
    kafka_option,
    lake_option,
    quiet_option,
    schema_registry_option,
    topic_option,
)
from tootlake.cli.output import step_line
from tootlake.kafka.settings import parse_options
from tootlake.text import counted


@click.command()
@kafka_brokers_option(
    "Kafka bootstrap servers, comma-separated (env TOOTLAKE_KAFKA).", required=True
)
@topic_option("Topic to read (env TOOTLAKE_TOPIC).")
@click.option(
    "--group",
    default="tootlake-sink",
    show_default=True,
    envvar="TOOTLAKE_GROUP",
    help="Consumer group: workers of one group share the topic's partitions.",
)
@lake_option
@click.option(
    "--until-idle",
    type=Seconds(),
    metavar="SECONDS",
    help="Exit after this long without a message (batch runs, tests). "
    "Default: run until SIGTERM or Ctrl-C.",
)
@click.option(
    "--max-bytes",
    default="32MB",
    show_default=True,
    metavar="SIZE",
    help="Flush a partition when its buffered messages reach this size.",
)
@click.option(
    "--max-age",
    default=300.0,
    show_default=True,
    type=Seconds(),
    metavar="SECONDS",
    help="Flush a partition when its oldest message is this old.",
)
@schema_registry_option("Schema registry for messages in the Confluent wire format.")
@click.option(
    "--sightings",
    is_flag=True,
    help="Also write each post's own sighting (instance, local id), as `collect` does.",
)
@kafka_option
@quiet_option("No progress line, only the final summary.")
@format_option(["text", "json"], default="text", help="Format of the final summary.")
@run_command
def sink(
    kafka: str,
    topic: str,
    group: str,
    lake: str | None,
    until_idle: float | None,
    max_bytes: str,
    max_age: float,
    schema_registry: str | None,
    sightings: bool,
    kafka_options: tuple[str, ...],
    quiet: bool,
    fmt: str,
) -> None:
    """Write a Kafka topic into the lake, as one member of a consumer group.

    Batches each partition by size and age and appends each batch to the lake's Delta tables,
    with the partition's offsets committed in the same Delta commits (app transactions), so a
    crash or a rebalance resumes where the lake ends instead of duplicating rows. Messages that
    are not tootlake Avro go to LAKE/_tootlake/dead-letter/. SIGTERM or Ctrl-C: flush, commit,
    exit.
    """
    from tootlake.kafka.sink import LEAVE_WATCHDOG, KafkaSinkWorker
    from tootlake.settings import load_settings, parse_size

    settings = load_settings(lake=lake, kafka=parse_options(kafka_options))
    stop = threading.Event()
    worker = KafkaSinkWorker(
        settings.lake,
        kafka=kafka,
        topic=topic,
        group=group,
        max_bytes=parse_size(max_bytes),
        max_age=max_age,
        until_idle=until_idle,
        schema_registry=schema_registry,
        config=settings.kafka,
        stop=stop,
        sightings=sightings,
    )
    # The process is the worker's. Move what start-up made (modules, schemas) out of the cycle
    # collector's sight, and collect the youngest generation every 100,000 allocations rather
    # than every 700: each fetch brings up to 20,000 Message objects that refcounting frees
    # a moment later, and frequent collections kept walking (and promoting) them.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    with (
        step_line(quiet, f"Sinking {topic}") as show,
        stop_on_signals(stop, "Stopping: writing and committing what was received..."),
    ):
        if show is not None:
            worker.on_progress = lambda now: show(
                f"{now.messages:,} messages, {now.posts:,} posts, {now.commits:,} Delta "
                f"commits, {now.messages_per_second:,.0f} messages/s"
                + (
                    f", {counted(now.write_failures, 'failed try', 'failed tries')} to write"
                    if now.write_failures
                    else ""
                )
            )
        # Once everything is committed the worker leaves the group. Should librdkafka block
        # there (docs/kafka.md, "Leaving the group"), stacks on stderr and exit status 1.
        worker.on_leaving = lambda: arm_watchdog(LEAVE_WATCHDOG)
        try:
            stats = worker.run()
        finally:
            disarm_watchdog()
    if fmt == "json":
        click.echo(json.dumps(stats.as_dict(), indent=2))
        return
    click.echo(
        f"Sank {stats.messages:,} messages of {topic} into {settings.lake}: {stats.posts:,} posts, "
        f"{stats.deletes:,} deletes, {stats.rejects:,} rejects, {stats.dead:,} dead letters; "
        f"{stats.flushes} flushes, {stats.commits} Delta commits; "
        f"{stats.messages_per_second:,.0f} messages/s."
        + (
            f" {counted(stats.write_failures, 'try', 'tries')} to write failed (see the log)."
            if stats.write_failures
            else ""
        )
    )
