"""Sink workers: Kafka consumer-group members that write a topic into the lake's Delta tables
exactly once.

    tootlake sink --kafka HOST:PORT --lake PATH|s3://... [--topic mastodon-posts]
                  [--group tootlake-sink] [--until-idle SECONDS] [--max-bytes N] [--max-age S]

Each worker buffers messages per partition and flushes a partition when its buffered values
reach `max_bytes` or its oldest message `max_age` seconds. A flush decodes the messages
(tootlake.kafka.decode), splits them by table (posts to posts_all, deletes, sightings,
rejects; each row keeps its message's offset) and appends each table's rows in one Delta
commit (`tootlake.lake.tables.append`; delta-rs partitions them by date and names the files).
Messages that are not valid envelopes go to
LAKE/_tootlake/dead-letter/<topic>+<partition>+<first dead offset:020d>.jsonl and are counted;
the sink goes on.

Exactly once, per partition, as kafka-delta-ingest does it (docs/kafka.md has the long form):
each commit carries a Delta app transaction, app id `tootlake-sink/<topic>/<partition>` and
version the batch's last offset, in the same atomic commit as the rows. A table's mark M thus
means "this table holds the partition's rows of offsets <= M, once". A batch commits deletes,
sightings and rejects (those it has rows for), then always posts_all, possibly with no rows:
posts_all's mark means "every batch up to M is fully in". Whoever gets the partition (start,
restart, rebalance) seeks to posts_all's mark + 1. Before each commit the table's mark is read
afresh and rows at or below it are dropped, so a batch re-read after a crash between its
commits writes each row once; a batch that ends at or below the mark commits nothing. Group
offsets are committed after the Delta commits for monitoring (lag); they only say where to
start a partition that has no mark yet.

Flushes run on a thread pool while the worker goes on reading (decoding and delta-rs do most
of their work outside the GIL); a partition has at most one flush in flight, so its commits
stay in offset order. Several workers append to the same tables at once: delta-rs retries
appends that race; a race it cannot resolve (two first commits creating a table, two writers
with the same app id) fails the commit, which is retried here with fresh marks.

Rebalances: partitions that are revoked are flushed and committed before they move; lost
partitions (the group evicted this worker) are dropped, and an in-flight flush of theirs makes
no further commit. On the way out a worker leaves the group (unsubscribe, then polls until its
partitions are revoked) before it closes the consumer: a rebalance inside close() can block.

A lake out of reach (a flush failing with LakeError or OSError): the batch is held, every
partition paused (the worker still polls, so it stays in the group), and the flush tried again
at `KeepWriting`'s pace; a held batch goes before anything buffered after it (docs/kafka.md).

Pseudonymised topics: a producer that pseudonymises sets each message's `tootlake-key-id`
header. Every message's header must match the lake (`tootlake.lake.pseudonyms`): the key id
of a pseudonymised lake, none for a raw one; a new lake takes the first message's mode. A
message that does not match stops the worker before it is written (ConfigError). A value not
framed as Avro is a dead letter whatever its header says; in a pseudonymised lake, dead letters
keep no value (it may hold names in the clear).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tootlake.errors import (
    ConfigError,
    LakeError,
    RegistryUnavailable,
    TootlakeError,
    TransportError,
)
from tootlake.kafka.decode import EnvelopeDecoder, dead_letter_line
from tootlake.kafka.schema import CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC
from tootlake.kafka.settings import (
    DEFAULT_TOPIC,
    KEY_ID_HEADER,
    LIBRDKAFKA_LOG,
    ConnectWatch,
    confluent_kafka,
    wait_for_cluster,
)
from tootlake.lake import tables
from tootlake.lake.layout import DELETES, META, POSTS_ALL, REJECTS, SIGHTINGS, join
from tootlake.lake.storage import Storage, storage_for
from tootlake.text import shorten
from tootlake.transports import KeepWriting, drain

__all__ = [
    "COMMIT_ORDER",
    "DEFAULT_GROUP",
    "KIND_TABLES",
    "LEAVE_WATCHDOG",
    "KafkaSinkWorker",
    "SinkWorkerStats",
    "app_id",
    "consumer_config",
    "dead_letter_dir",
    "rows_after",
]

log = logging.getLogger(__name__)

DEFAULT_GROUP = "tootlake-sink"
DEAD_LETTER = (META, "dead-letter")
# envelope kind -> (lake table, the time column whose UTC date partitions it)
KIND_TABLES = {
    "post": (POSTS_ALL, "created_at"),
    "delete": (DELETES, "deleted_at"),
    "sighting": (SIGHTINGS, "seen_at"),
    "reject": (REJECTS, "rejected_at"),
}
# The order of a batch's commits: posts_all last (always), so its mark means "batch done".
COMMIT_ORDER = ("delete", "sighting", "reject", "post")
# Attempts of one table's commit when a race makes delta-rs give up (see _commit_table).
_COMMIT_ATTEMPTS = 8
_CONSUME_TIMEOUT = 0.2  # seconds a poll of the consumer waits for messages
_TOPIC_WAIT = 3.0  # seconds for the topic to show in the cluster's metadata at start
# At most this many messages a poll. The loop commits group offsets between polls, so a poll
# is kept small: 20,000 at once with 64 KB flushes to a slow S3 kept a worker in one poll for
# two minutes with no offset committed (the rows were in the lake; monitoring saw no progress).
_CONSUME_MESSAGES = 2_000
_OFFSETS_RETRY = 1.0  # seconds between attempts at group offsets that failed
# Leaving the group before close: how long to wait for the revoke; how long close may take
# before the worker goes on without it (everything it received is in the lake by then).
_LEAVE_TIMEOUT = 30.0
_CLOSE_TIMEOUT = 30.0
# How long leaving and closing may take in all before a process is deemed stuck (a watchdog
# the command line arms at `on_leaving`).
LEAVE_WATCHDOG = _LEAVE_TIMEOUT + _CLOSE_TIMEOUT + 30.0


def consumer_config(
    bootstrap: str, group: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka settings of a sink worker; `overrides` (a user's settings: [kafka] in the
    config file, TOOTLAKE_KAFKA_*, -X, see tootlake.kafka.settings) go over them."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "tootlake-sink",
        "enable.auto.commit": False,  # offsets are committed after the Delta commits
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Incremental rebalancing: a joining worker takes partitions without the others
        # stopping; only the partitions that move are revoked (and flushed).
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10_000,  # a crashed worker's partitions move after 10 s
        "max.poll.interval.ms": 300_000,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "isolation.level": "read_committed",
        "logger": LIBRDKAFKA_LOG,
    }
    config.update(overrides or {})
    return config


def app_id(topic: str, partition: int) -> str:
    """The Delta app id under which a partition's offsets are committed with its rows."""
    return f"tootlake-sink/{topic}/{partition}"


def dead_letter_dir(lake: str) -> str:
    return join(lake, *DEAD_LETTER)


def rows_after(table: Any, offsets: Any, mark: int | None) -> tuple[Any, Any]:
    """The rows of `table` (and their `offsets`) past a table's mark: those not in it yet."""
    import pyarrow.compute as pc

    if mark is None or not len(offsets) or pc.min(offsets).as_py() > mark:
        return table, offsets
    keep = pc.greater(offsets, mark)
    return table.filter(keep), offsets.filter(keep)


@dataclass
class SinkWorkerStats:
    messages: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KIND_TABLES, 0))
    dead: int = 0
    commits: int = 0  # Delta commits
    flushes: int = 0
    skipped: int = 0  # rows read again that their table already held (after a crash)
    offset_commits: int = 0  # group offsets (monitoring)
    failed_offset_commits: int = 0
    assigned: int = 0
    revoked: int = 0
    lost: int = 0
    started: float = field(default_factory=time.monotonic)
    first_message: float | None = None
    last_commit: float | None = None
    write_failures: int = 0  # failed tries while the lake was out of reach (`KeepWriting`)
    elapsed: float = 0.0
    dead_letter_files: list[str] = field(default_factory=list)

    @property
    def posts(self) -> int:
        return self.rows["post"]

    @property
    def deletes(self) -> int:
        return self.rows["delete"]

    @property
    def sightings(self) -> int:
        return self.rows["sighting"]

    @property
    def rejects(self) -> int:
        return self.rows["reject"]

    @property
    def busy_seconds(self) -> float:
        """From the first message received to the last commit: the time spent working."""
        if self.first_message is None or self.last_commit is None:
            return 0.0
        return max(self.last_commit - self.first_message, 1e-9)

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.busy_seconds if self.busy_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "posts": self.posts,
            "deletes": self.deletes,
            "sightings": self.sightings,
            "rejects": self.rejects,
            "dead_letters": self.dead,
            "commits": self.commits,
            "flushes": self.flushes,
            "skipped_rows": self.skipped,
            "offset_commits": self.offset_commits,
            "failed_offset_commits": self.failed_offset_commits,
            "write_failures": self.write_failures,
            "assigned": self.assigned,
            "revoked": self.revoked,
            "lost": self.lost,
            "seconds": round(self.elapsed, 3),
            "busy_seconds": round(self.busy_seconds, 3),
            "messages_per_second": round(self.messages_per_second, 1),
        }


@dataclass
class _PartitionBuffer:
    # Values and offsets, not the Message objects: those are tracked by Python's cycle
    # collector, which would walk hundreds of thousands of them at every full collection.
    values: list[bytes | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    bytes: int = 0
    since: float = 0.0  # monotonic time the oldest buffered message arrived
    mark: int | None = None  # posts_all's mark as this worker last knew it
    unread: bool = False  # assigned while the marks could not be read: `mark` is not known

    def clear(self) -> None:
        self.values = []
        self.offsets = []
        self.bytes = 0


@dataclass
class _Flushed:
    """What one partition's flush did: rows decoded and committed per kind, and more."""

    rows: dict[str, int] = field(default_factory=dict)  # decoded, per kind
    skipped: int = 0  # rows their table held already
    commits: int = 0
    mark: int | None = None  # posts_all's mark after the flush
    foreign: int | None = None  # posts_all's mark when another writer had moved it
    dead: int = 0
    dead_path: str | None = None
    dead_summary: str = ""


@dataclass
class _InFlight:
    future: Future[_Flushed]
    values: list[bytes | None]
    offsets: list[int]
    size: int  # bytes of the values
    reason: str
    cancel: threading.Event = field(default_factory=threading.Event)
    retry: bool = False  # the partition's held batch, tried again
    submitted: float = field(default_factory=time.monotonic)

    @property
    def last(self) -> int:
        return self.offsets[-1]


@dataclass
class _Held:
    """A partition's batch whose flush failed with the lake out of reach. It is flushed again
    before anything buffered after it (a later batch's mark would cover it), when the worker's
    `KeepWriting` says so, and stays here until that flush is in."""

    values: list[bytes | None]
    offsets: list[int]
    size: int
    error: str  # (the text: the exception's traceback would keep the decoded batch)
    kind: type[TootlakeError] = LakeError  # what a last try that fails raises (OSError: this)


class _Cancelled(Exception):
    """A lost partition's flush stops before its next commit."""


class _Marks:
    """The tables' app-transaction marks, read afresh: each Delta table is loaded once, then
    brought up to date (`update_incremental`, which reads only the new commits)."""

    def __init__(self, lake: str) -> None:
        self.lake = lake
        self._tables: dict[str, Any] = {}
        self._locks = {table: threading.Lock() for table, _ in KIND_TABLES.values()}

    def read(self, table: str, apps: list[str]) -> dict[str, int | None]:
        with self._locks[table]:
            delta = self._tables.get(table)
            if delta is not None:
                try:
                    delta.update_incremental()
                except Exception as exc:  # e.g. the commits after its version were cleaned up
                    log.info("reloading the Delta table %s (%s)", table, exc)
                    delta = None
            if delta is None:
                delta = tables.load(self.lake, table)  # a LakeError when it cannot
                if delta is None:  # no table yet: no marks
                    return dict.fromkeys(apps)
                self._tables[table] = delta
            return {app: delta.transaction_version(app) for app in apps}


class KafkaSinkWorker:
    """One member of a consumer group that writes a topic into the lake (module docstring).

    `run()` returns when `stop` is set (SIGTERM, Ctrl-C), or after `until_idle` seconds without
    a message; either way it flushes and commits what it has first. `config` overrides
    librdkafka consumer settings; `schema_registry` (URL or client) is needed only for messages
    in the Confluent wire format. `sightings`: also write every post's own sighting (its
    instance, local id and ingest time), as the collector's embedded sink does
    (`LakeWriter(sightings=True)`), so a topic fed by collectors gives the same lake.
    `on_leaving` is called once everything received is committed, before the worker leaves
    the group and closes the consumer (the command line arms a watchdog there).
    """

    def __init__(
        self,
        lake: str,
        *,
        kafka: str,
        topic: str,
        group: str = DEFAULT_GROUP,
        max_bytes: int = 32 * 1024 * 1024,
        max_age: float = 300.0,
        until_idle: float | None = None,
        schema_registry: Any = None,
        config: Mapping[str, Any] | None = None,
        storage: Storage | None = None,
        stop: threading.Event | None = None,
        on_progress: Callable[[SinkWorkerStats], None] | None = None,
        connect_timeout: float = 10.0,
        sightings: bool = False,
        on_leaving: Callable[[], None] | None = None,
    ) -> None:
        self.lake = lake
        self.sightings = sightings
        self.kafka = kafka
        self.topic = topic
        self.group = group
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.until_idle = until_idle
        self.storage = storage or storage_for(lake)
        self.stop = stop or threading.Event()
        self.on_progress = on_progress
        self.on_leaving = on_leaving
        self.connect_timeout = connect_timeout
        self.stats = SinkWorkerStats()
        self._decoder = EnvelopeDecoder(schema_registry)
        self._config = consumer_config(kafka, group, config)
        self._marks = _Marks(lake)
        self._buffers: dict[int, _PartitionBuffer] = {}
        self._consumer: Any = None
        self._inflight: dict[int, _InFlight] = {}
        # A lake out of reach (S3 refusing, a full disk): the batches whose flush failed wait
        # here, the consumer's partitions are paused (so memory does not grow: the topic
        # keeps the rest), and the flushes are tried again at `_keep`'s pace.
        self._held: dict[int, _Held] = {}
        # (a registry out of reach holds the batch as a lake out of reach does: its messages
        # are not at fault, and the worker goes on once it answers)
        self._keep = KeepWriting(
            (LakeError, OSError, RegistryUnavailable), self._held_bytes, 0, self.stop.is_set
        )
        self._paused: set[int] = set()  # partitions this worker paused (`_pause_or_resume`)
        # group offsets to commit (monitoring only), when that was last tried, and why: set
        # by a finished flush (`_reap`), cleared by the attempt (`_commit_offsets`)
        self._pending_offsets: dict[int, int] = {}
        self._offsets_tried = 0.0
        self._offsets_reason = ""
        self._flushers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tootlake-flush")
        self._last_activity = time.monotonic()
        self._ever_assigned = False
        self._leaving = False  # set once everything is committed and the worker leaves
        self._reported_errors: set[Any] = set()
        # the lake's pseudonymisation key id (None: raw); unknown until run() reads the lake
        self._key_id: str | None = None
        self._mode_known = False

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> SinkWorkerStats:
        ck = confluent_kafka()
        watch = ConnectWatch()
        connected = False

        def on_error(err: Any) -> None:
            if connected:
                self._on_error(err)
            else:  # wait_for_cluster says what went wrong, once
                watch.saw(err)

        self._config["error_cb"] = on_error
        try:
            consumer = ck.Consumer(self._config)
        except ck.KafkaException as exc:
            raise TransportError(f"Invalid Kafka consumer settings: {exc}") from exc
        self._consumer = consumer
        try:
            wait_for_cluster(
                consumer, self.kafka, self.connect_timeout, watch, serve=lambda: consumer.poll(0)
            )
            connected = True
            self._check_topic(consumer)
            self._read_lake_mode()
            self._decoder.warm_up()  # imports and parsed schemas now, not in the first flush
            consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )  # fmt: skip
            self._loop(consumer)
            self._offsets_to_marks()
            self._leaving = True
            if self.on_leaving is not None:
                self.on_leaving()
            self._leave(consumer)
        except BaseException:
            # Leave uncommitted what was not committed: closing must not flush it (the revoke
            # callback would); the next owner reads it again from the marks.
            self._buffers.clear()
            self._held.clear()
            self._abandon(list(self._inflight))
            raise
        finally:
            self._close(consumer)
            self._flushers.shutdown()
        self.stats.elapsed = time.monotonic() - self.stats.started
        return self.stats

    def _check_topic(self, consumer: Any) -> None:
        """A topic the cluster does not have (a misspelt --topic): a worker that drains a
        backlog (`until_idle`) stops with an error naming it, instead of finding nothing and
        exiting as if done; a long-running one says so, and waits for producers to make it.
        (All topics are listed: asking for this one would create it where the broker
        auto-creates topics.)"""
        ck = confluent_kafka()
        deadline = time.monotonic() + _TOPIC_WAIT  # (a topic made a moment ago may lag)
        while True:
            try:
                if self.topic in consumer.list_topics(timeout=_TOPIC_WAIT).topics:
                    return
            except ck.KafkaException:
                return  # (the cluster answered a moment ago: the consumer reports the rest)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        missing = f"Kafka at {self.kafka} has no topic {self.topic!r}"
        if self.until_idle is not None:
            raise ConfigError(
                f"{missing}: check --topic (producers write to {DEFAULT_TOPIC!r} unless given "
                "another)"
            )
        log.warning("%s yet: waiting for producers to make it (check --topic)", missing)

    def _loop(self, consumer: Any) -> None:
        """`tootlake.transports.drain` over the consumer (`_Group`: messages in, group offsets
        committed) and the partitions' buffers (`_Partitions`: flushed to the lake), until
        `stop` or `until_idle`; then everything buffered is flushed and committed."""
        last_progress = 0.0
        self._last_activity = time.monotonic()
        # Before its first assignment a worker waits for the group: a crashed member's
        # partitions are handed out only when its session times out.
        session = float(self._config.get("session.timeout.ms", 45_000)) / 1000

        def finished(_: object) -> bool:
            if self.stop.is_set():
                return True
            if self.until_idle is None:
                return False
            idle = time.monotonic() - self._last_activity
            if idle >= self.until_idle + (0 if self._ever_assigned else session):
                log.info("no message for %.1f s: stopping", idle)
                return True
            return False

        def progress() -> None:
            nonlocal last_progress
            now = time.monotonic()
            if self.on_progress is not None and now - last_progress >= 0.5:
                self.stats.elapsed = now - self.stats.started
                self.on_progress(self.stats)
                last_progress = now

        drain(
            _Group(self, consumer),
            _Partitions(self),
            finished=finished,
            on_tick=progress,
            timeout=_CONSUME_TIMEOUT,
        )

    def _add(self, messages: list[Any], now: float) -> None:
        """Buffer messages; a partition whose buffer reaches max_bytes is flushed at once, so
        a flush holds at most max_bytes of messages, however many came in. Works on runs of
        messages from one partition (what a fetch returns), not message by message."""
        if self.stats.first_message is None:
            self.stats.first_message = now
        if any(m.error() is not None for m in messages):
            for m in messages:
                if m.error() is not None:
                    self._message_error(m)
            messages = [m for m in messages if m.error() is None]
        self._check_mode(messages)
        for partition, group in itertools.groupby(messages, key=_partition_of):
            run = list(group)
            while run:
                buffer = self._buffers.get(partition)
                if buffer is None:
                    break  # from a partition revoked meanwhile: its new owner reads it
                run = self._add_run(partition, buffer, run, now)

    def _add_run(
        self, partition: int, buffer: _PartitionBuffer, run: list[Any], now: float
    ) -> list[Any]:
        """Add a run of one partition's messages, up to max_bytes; the rest of the run. While
        the partition's last batch is held (the lake out of reach), the whole run: nothing is
        flushed until that batch is in, and the consumer is paused meanwhile, so the buffer
        grows by what the poll that noticed brought, at most."""
        if not buffer.offsets:
            buffer.since = now
        size = sum(map(len, run))
        rest: list[Any] = []
        held = partition in self._held
        if buffer.bytes + size >= self.max_bytes and not held:
            room = self.max_bytes - buffer.bytes
            cut = len(run)
            for k, message in enumerate(run):  # the message that fills the buffer
                room -= len(message)
                if room <= 0:
                    cut = k + 1
                    break
            run, rest = run[:cut], run[cut:]
            size = sum(map(len, run))
        buffer.values.extend([m.value() for m in run])
        buffer.offsets.extend([m.offset() for m in run])
        buffer.bytes += size
        self.stats.messages += len(run)
        if held:
            return rest
        if buffer.bytes >= self.max_bytes:
            if partition in self._inflight:  # one flush per partition at a time
                self._reap(wait=True, partitions=[partition])
                if partition not in self._buffers:
                    return []  # revoked or lost meanwhile: its new owner reads the rest
                if partition in self._held:
                    return rest
            self._submit(partition, "size")
        return rest

    def _read_lake_mode(self) -> None:
        from tootlake.lake.pseudonyms import holds_data, lake_key_id

        self._key_id = lake_key_id(self.lake)
        self._mode_known = self._key_id is not None or holds_data(self.lake) is not None

    def _check_mode(self, messages: list[Any]) -> None:
        """Refuse (before buffering) a message pseudonymised otherwise than the lake."""
        for message in messages:
            value = message.value()
            if not value or not value.startswith((SINGLE_OBJECT_MAGIC, CONFLUENT_MAGIC)):
                # not an envelope, whatever its header says: a dead letter, which neither
                # stops the worker (each restart would read it again) nor decides a new lake
                continue
            got = _key_id_of(message)
            if self._mode_known and got == self._key_id:
                continue
            if got is not None and not _KEY_ID.fullmatch(got):
                # no producer of ours wrote it: neither a mode to claim nor text to print whole
                raise ConfigError(
                    f"Kafka topic {message.topic()} partition {message.partition()} offset "
                    f"{message.offset()} holds a record whose {KEY_ID_HEADER} header is not a "
                    f"key id ({shorten(repr(got), 40)}): the sink stops rather than guess "
                    f"whether it is pseudonymised. Sink that topic into another lake."
                )
            if not self._mode_known:  # a new lake: the first message decides (and marks it)
                from tootlake.lake.pseudonyms import claim

                claim(self.lake, got)
                self._key_id, self._mode_known = got, True
                continue
            what = f"pseudonymised with key id {got}" if got else "raw (not pseudonymised)"
            lake = f"pseudonymised with key id {self._key_id}" if self._key_id else "raw"
            raise ConfigError(
                f"Kafka topic {message.topic()} partition {message.partition()} offset "
                f"{message.offset()} holds a record {what}, but the lake {self.lake} is "
                f"{lake}: the sink stops rather than mix them. Sink that topic into another "
                "lake."
            )

    # -- flushing and committing -----------------------------------------------------------

    def _submit(self, partition: int, reason: str) -> None:
        """Hand the partition's held batch, else its buffered messages, to a flush on the pool
        (none in flight)."""
        buffer = self._buffers[partition]
        held = self._held.get(partition)
        if held is not None:
            values, offsets, size = held.values, held.offsets, held.size
        else:
            values, offsets, size = buffer.values, buffer.offsets, buffer.bytes
            buffer.clear()
        cancel = threading.Event()
        future = self._flushers.submit(
            self._flush_partition, partition, values, offsets, buffer.mark, cancel
        )
        self._inflight[partition] = _InFlight(
            future, values, offsets, size, reason, cancel, retry=held is not None
        )

    def _held_bytes(self) -> int:
        """What the worker holds that is not in the lake: held batches and buffers."""
        return sum(h.size for h in self._held.values()) + sum(
            b.bytes for b in self._buffers.values()
        )

    def _retry_held(self) -> None:
        """Flush the held batches again, when `_keep` says it is time (none in flight)."""
        if self._held and self._keep.ready():
            for partition in list(self._held):
                if partition not in self._inflight:
                    self._submit(partition, "a failed flush")

    def _pause_or_resume(self, partitions: list[Any] | None = None, *, again: bool = False) -> None:
        """Pause the assigned partitions (or `partitions`) while a batch is held: the consumer
        is still polled, so the worker stays in the group, and memory does not grow (the topic
        keeps the rest). Resume them once none is. librdkafka drops what it fetched of a paused
        partition and fetches again from the next offset not yet delivered. A partition stays
        paused through a rebalance: one revoked while paused is resumed when it comes back.
        But it is not when it was unassigned before a poll served the pause: `again` pauses
        `partitions` whatever `_paused` says (a new assignment, during an outage)."""
        consumer = self._consumer
        if consumer is None or (partitions is None and not self._held and not self._paused):
            return
        if partitions is None:
            partitions = consumer.assignment()
        if self._held:
            new = [tp for tp in partitions if again or tp.partition not in self._paused]
            if new:
                consumer.pause(new)
                self._paused.update(tp.partition for tp in new)
        else:
            back = [tp for tp in partitions if tp.partition in self._paused]
            if back:
                consumer.resume(back)
                self._paused.difference_update(tp.partition for tp in back)

    def _reap(self, *, wait: bool, partitions: list[int] | None = None) -> None:
        """Take the flushes that are done (with `wait`: wait for those of `partitions`, every
        one when None); their group offsets become pending, for the next commit (never before
        their rows are in the lake). A flush that failed raises here."""
        chosen = list(self._inflight) if partitions is None else partitions
        for partition in chosen:
            flight = self._inflight.get(partition)
            if flight is None or not (wait or flight.future.done()):
                continue
            try:
                flushed = flight.future.result()  # other errors propagate
            except self._keep.errors as exc:
                del self._inflight[partition]
                if partition in self._buffers:
                    self._held[partition] = _Held(
                        flight.values, flight.offsets, flight.size, str(exc),
                        type(exc) if isinstance(exc, TootlakeError) else LakeError,
                    )  # fmt: skip
                else:  # revoked or lost meanwhile: its next owner reads it from the marks
                    self._held.pop(partition, None)
                # (flushes submitted together fail as one try, even those that waited
                # for a flush thread and failed after the next try was due)
                self._keep.failed(exc, started=flight.submitted)
                self.stats.write_failures = self._keep.failures
                continue
            del self._inflight[partition]
            if flight.retry:
                self._held.pop(partition, None)
            if not self._held:
                self._keep.wrote()
            for kind, rows in flushed.rows.items():
                self.stats.rows[kind] += rows
            self.stats.skipped += flushed.skipped
            self.stats.commits += flushed.commits
            self.stats.flushes += 1
            self.stats.last_commit = time.monotonic()
            if flushed.dead:
                self.stats.dead += flushed.dead
                if flushed.dead_path:
                    self.stats.dead_letter_files.append(flushed.dead_path)
                log.warning("%s", flushed.dead_summary)
            buffer = self._buffers.get(partition)
            if flushed.foreign is not None and buffer is not None and buffer.unread:
                # started at the group's offsets, the lake out of reach: not another writer
                log.info(
                    "%s[%d]: the lake's mark, unread at assignment, was %s; the rows it "
                    "covers were skipped", self.topic, partition, flushed.foreign,
                )  # fmt: skip
            elif flushed.foreign is not None:
                log.warning(
                    "%s[%d]: another writer had committed offsets up to %s to the lake "
                    "(this worker knew %s); rows it already wrote were skipped",
                    self.topic, partition, flushed.foreign, _known(partition, self._buffers),
                )  # fmt: skip
            if buffer is not None and flushed.mark is not None:
                buffer.mark, buffer.unread = flushed.mark, False
            self._pending_offsets[partition] = flight.last + 1
            self._offsets_reason = flight.reason

    def _flush(self, partitions: list[int], reason: str) -> None:
        """Commit everything held and buffered for `partitions`, waiting until it is done. A
        held batch is tried once more, then what was buffered after it; a partition whose
        flush fails with the lake out of reach keeps its batch held and its buffer (the
        caller decides: `_unwritten`)."""
        self._reap(wait=True, partitions=partitions)
        for second in (False, True):  # a held batch first, then what was buffered after it
            for partition in partitions:
                buffer = self._buffers.get(partition)
                if second and partition in self._held:
                    continue  # (failed just now)
                if partition in self._held or (buffer is not None and buffer.offsets):
                    self._submit(partition, reason)
            self._reap(wait=True, partitions=partitions)

    def _unwritten(self, partitions: list[int]) -> list[int]:
        """Those of `partitions` with messages received but not in the lake."""
        return [
            p for p in partitions
            if p in self._held or (p in self._buffers and self._buffers[p].offsets)
        ]  # fmt: skip

    def _abandon(self, partitions: list[int]) -> None:
        """Stop the in-flight flushes of `partitions` before their next commit and wait for
        them (a commit under way cannot be called back); their batches are not taken."""
        for partition in partitions:
            flight = self._inflight.pop(partition, None)
            if flight is not None:
                flight.cancel.set()
                try:
                    flight.future.result()
                except _Cancelled:
                    pass
                except Exception as exc:  # the error that matters is being raised already
                    log.debug("abandoned flush of partition %d: %s", partition, exc)

    def _flush_partition(
        self,
        partition: int,
        values: list[Any],
        offset_list: list[int],
        known: int | None,
        cancel: threading.Event,
    ) -> _Flushed:
        """Decode one partition's batch and commit it, table by table (runs on the pool).
        `known` is posts_all's mark as the worker knows it (to notice another writer)."""
        import pyarrow as pa

        out = _Flushed()
        offsets = pa.array(offset_list, type=pa.int64())
        decoded = self._decoder.decode(values)
        split = dict(decoded.tables)
        if self.sightings:
            split["sighting"] = _with_own_sightings(split["post"], split["sighting"])
        first, last = offset_list[0], offset_list[-1]
        app = app_id(self.topic, partition)
        if decoded.errors:
            # Those at or below posts_all's mark are in a dead-letter file already (a flush
            # writes it before its commits), maybe under another name: a batch that starts
            # before the mark (the group's offsets, or another writer) is cut differently.
            mark = self._marks.read(POSTS_ALL, [app])[app]
            dead = [(i, why) for i, why in decoded.errors if mark is None or offset_list[i] > mark]
            if dead:
                self._write_dead_letters(out, partition, values, offset_list, dead)
        metadata = tables.commit_metadata(
            writer="tootlake-sink", topic=self.topic, partition=partition,
            offsets=f"{first}-{last}",
        )  # fmt: skip
        for kind in COMMIT_ORDER:
            rows, index = split[kind]
            out.rows[kind] = rows.num_rows
            if kind != "post" and not rows.num_rows:
                continue
            table = KIND_TABLES[kind][0]
            before, after = self._commit_table(
                table, app, rows, offsets.take(index), last, metadata, cancel, out
            )
            if kind == "post":
                out.mark = after
                if before != known:
                    out.foreign = before
        return out

    def _commit_table(
        self,
        table: str,
        app: str,
        rows: Any,
        row_offsets: Any,
        last: int,
        metadata: Mapping[str, str],
        cancel: threading.Event,
        out: _Flushed,
    ) -> tuple[int | None, int | None]:
        """Append the rows past the table's mark with the mark `last`, in one commit; the
        table's mark before and after. Nothing is committed when the mark covers the batch
        already, or (except for posts_all, whose mark ends every batch) when no row is left."""
        for attempt in itertools.count(1):
            if cancel.is_set():
                raise _Cancelled
            mark = self._marks.read(table, [app])[app]
            if mark is not None and mark >= last:
                out.skipped += rows.num_rows
                return mark, mark
            new, _ = rows_after(rows, row_offsets, mark)
            if not new.num_rows and table != POSTS_ALL:
                out.skipped += rows.num_rows
                return mark, mark
            self._before_commit(table, app, last)
            try:
                tables.append(
                    self.lake, table, tables.with_date(table, new),
                    transactions=[(app, last)], metadata=metadata,
                )  # fmt: skip
            except LakeError as exc:
                if attempt >= _COMMIT_ATTEMPTS or not _is_conflict(exc):
                    raise
                log.info("%s; trying again (%d)", exc, attempt)
                time.sleep(random.uniform(0.05, 0.2) * attempt)
                continue
            out.skipped += rows.num_rows - new.num_rows
            out.commits += 1
            return mark, last
        raise AssertionError("unreachable")  # pragma: no cover

    def _before_commit(self, table: str, app: str, last: int) -> None:
        """Called right before each Delta commit (tests crash here)."""

    def _write_dead_letters(
        self,
        out: _Flushed,
        partition: int,
        values: list[Any],
        offsets: list[int],
        errors: list[tuple[int, str]],
    ) -> None:
        """One file per flush, named by its first dead offset: a batch re-read after a crash
        writes the same name (its first dead message is the same), replacing the old file."""
        # A pseudonymised lake holds no names in the clear, and a message that is not a valid
        # envelope may hold some (a foreign producer's JSON): there, a dead letter keeps the
        # message's offset and size; its value stays on the topic.
        withhold = self._key_id is not None
        lines = []
        for i, error in errors:
            value = values[i]
            line = dead_letter_line(
                self.topic, partition, offsets[i], error, None if withhold else value
            )
            if withhold and value is not None:
                line.update(value_size=len(value), withheld="the lake is pseudonymised")
            lines.append(line)
        first = lines[0]
        path = join(
            dead_letter_dir(self.lake), f"{self.topic}+{partition}+{first['offset']:020d}.jsonl"
        )
        self.storage.write_atomic(path, "".join(json.dumps(line) + "\n" for line in lines).encode())
        out.dead = len(lines)
        out.dead_path = path
        out.dead_summary = (
            f"{len(lines)} message(s) of {self.topic}[{partition}] are not tootlake Avro "
            f"(first: offset {first['offset']}, {first['error']}); written to {path}"
        )

    def _commit_offsets(self, reason: str, partitions: list[int] | None = None) -> None:
        """Commit the pending group offsets (of `partitions`, else all): for monitoring
        (consumer lag) only, the marks are the truth. One that fails stays pending: the loop
        tries again, and so does a revoke."""
        ck = confluent_kafka()
        if partitions is None:
            self._offsets_reason = ""
        chosen = [
            p for p in (self._pending_offsets if partitions is None else partitions)
            if p in self._pending_offsets and p in self._buffers
        ]  # fmt: skip
        if not chosen:
            return
        offsets = [ck.TopicPartition(self.topic, p, self._pending_offsets[p]) for p in chosen]
        self._offsets_tried = time.monotonic()
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except ck.KafkaException as exc:
            # A rebalance under way, an eviction: the rows are in the lake all the same.
            self.stats.failed_offset_commits += 1
            log.info(
                "committing group offsets after %s failed (%s); trying again later",
                reason, exc.args[0],
            )  # fmt: skip
            return
        for p, tp in zip(chosen, offsets, strict=True):
            if self._pending_offsets.get(p) == tp.offset:
                del self._pending_offsets[p]
        self.stats.offset_commits += 1

    # -- rebalancing -----------------------------------------------------------------------

    def _offsets_to_marks(self) -> None:
        """On the way out: bring the group's offsets of the partitions this worker holds up to
        the lake's marks, for the lag the group shows. A rebalance can leave them behind (the
        previous owner's last commit landed after this worker read the mark at assignment);
        the marks, not these offsets, say where the next owner starts."""
        partitions = list(self._buffers)
        if not partitions:
            return
        apps = [app_id(self.topic, p) for p in partitions]
        try:
            marks = self._marks.read(POSTS_ALL, apps)
        except self._keep.errors as exc:  # (nothing is unwritten here: no reason to fail)
            log.warning(
                "cannot read the lake's marks to bring the group's offsets up to them (%s); "
                "they are only for the lag the group shows", shorten(str(exc), 300),
            )  # fmt: skip
            marks = {}
        for partition in partitions:
            mark = marks.get(app_id(self.topic, partition))
            if mark is not None:
                self._pending_offsets[partition] = max(
                    mark + 1, self._pending_offsets.get(partition, 0)
                )
        if self._pending_offsets:
            self._commit_offsets("shutdown")

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """Start each partition at posts_all's mark + 1 (the offsets the lake has), or where
        the group's offsets say when it has none. While leaving, only take them (the protocol
        asks it) to give them back: no lake read, no buffer."""
        if self._leaving:
            self._take(consumer, partitions)
            log.info("assigned %s[%s] while leaving", self.topic, _numbers(partitions))
            return
        apps = [app_id(self.topic, tp.partition) for tp in partitions]
        try:
            marks: dict[str, int | None] | None = (
                self._marks.read(POSTS_ALL, apps) if apps else {}
            )
        except self._keep.errors as exc:
            # The lake is out of reach (raising here would end the worker): start at the
            # group's offsets, which never pass the marks (they are committed after them); a
            # flush reads the marks again before it commits, and skips the rows they cover.
            log.warning(
                "cannot read the lake's marks for %s[%s] (%s): starting at the group's "
                "offsets", self.topic, _numbers(partitions), shorten(str(exc), 300),
            )  # fmt: skip
            marks = None
        resumed = []
        for tp in partitions:
            mark = None if marks is None else marks.get(app_id(self.topic, tp.partition))
            self._buffers[tp.partition] = _PartitionBuffer(mark=mark, unread=marks is None)
            if mark is not None:
                tp.offset = mark + 1
                resumed.append(f"{tp.partition}@{mark + 1}")
                # the group's offsets may be behind the lake (a crash before they were
                # committed): bring them up, for the lag the group shows
                self._pending_offsets[tp.partition] = mark + 1
        self._take(consumer, partitions)
        self._pause_or_resume(partitions, again=True)
        self.stats.assigned += len(partitions)
        self._ever_assigned = self._ever_assigned or bool(partitions)
        self._last_activity = time.monotonic()
        log.info("assigned %s[%s]", self.topic, _numbers(partitions))
        if resumed:
            log.info("resuming from the lake's marks: %s", ", ".join(resumed))

    def _take(self, consumer: Any, partitions: list[Any]) -> None:
        if self._cooperative():
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def _cooperative(self) -> bool:
        return "cooperative" in str(self._config.get("partition.assignment.strategy", ""))

    def _unassign(self, consumer: Any, partitions: list[Any]) -> None:
        """Give the partitions up here, as `_on_assign` takes them: left to confluent_kafka,
        it asks librdkafka for the rebalance protocol first, which can block for ever when
        the revoke comes from `close()` (librdkafka issue 4041: a sink worker hung there)."""
        if self._cooperative():
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        mine = [tp.partition for tp in partitions if tp.partition in self._buffers]
        try:
            self._flush(mine, "revoke")
            if unwritten := self._unwritten(mine):
                error = next((h.error for p, h in self._held.items() if p in mine), "")
                log.warning(
                    "%s[%s] move to another worker with their last messages unwritten (the "
                    "lake is out of reach: %s); their next owner reads them again from the "
                    "lake's marks", self.topic, ",".join(map(str, unwritten)),
                    shorten(error, 300),
                )  # fmt: skip
            self._commit_offsets("revoke", mine)  # before they move
        finally:
            for partition in mine:
                self._buffers.pop(partition, None)
                self._pending_offsets.pop(partition, None)
                self._held.pop(partition, None)
            self._unassign(consumer, partitions)
        self.stats.revoked += len(partitions)
        self._last_activity = time.monotonic()
        log.info("revoked %s[%s]", self.topic, _numbers(partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Another worker owns them already: committing now would race it. Drop, uncommitted.
        self._abandon([tp.partition for tp in partitions])
        for tp in partitions:
            self._buffers.pop(tp.partition, None)
            self._pending_offsets.pop(tp.partition, None)
            self._held.pop(tp.partition, None)
        self._unassign(consumer, partitions)
        self.stats.lost += len(partitions)
        log.warning(
            "lost %s[%s] to the group: their buffers are dropped", self.topic, _numbers(partitions)
        )

    # -- errors and shutdown ---------------------------------------------------------------

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            log.error("fatal Kafka consumer error: %s", err.str())
            self.stop.set()
        elif err.code() not in self._reported_errors:
            self._reported_errors.add(err.code())
            log.warning("Kafka: %s", err.str())

    def _message_error(self, message: Any) -> None:
        ck = confluent_kafka()
        err = message.error()
        if err.code() == ck.KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise TransportError(f"Fatal Kafka consumer error: {err.str()}")
        if err.code() not in self._reported_errors:
            self._reported_errors.add(err.code())
            log.warning("Kafka: %s", err.str())

    def _leave(self, consumer: Any) -> None:
        """Leave the group before closing: unsubscribe, then poll until nothing is assigned
        and the member id is gone (librdkafka defers an unsubscribe until a rebalance under
        way ends, and clears the id when it sends LeaveGroup), so an assignment still on its
        way and its revoke run in this thread's polls. A rebalance callback run inside
        close() can block for ever (librdkafka issues 4041, 4527 and 4884; a worker of the
        four-workers test hung in CI with an assignment arriving as it left); after this,
        close() has no rebalance left to run. Messages fetched meanwhile are dropped: they
        are past the marks, where the partitions' next owner starts.

        A static member (group.instance.id) does not leave: unsubscribing would send the
        LeaveGroup that static membership exists to avoid (a restarted worker takes its
        partitions back without a rebalance); its close() does not leave the group either."""
        if self._config.get("group.instance.id"):
            return
        consumer.unsubscribe()
        deadline = time.monotonic() + _LEAVE_TIMEOUT
        while consumer.assignment() or consumer.memberid():
            if time.monotonic() >= deadline:
                log.warning(
                    "%s: this worker had not left the group after %.0f s; closing all the "
                    "same", self.topic, _LEAVE_TIMEOUT,
                )  # fmt: skip
                return
            consumer.consume(num_messages=_CONSUME_MESSAGES, timeout=0.1)

    def _close(self, consumer: Any) -> None:
        """Close the consumer (leaves the group: its partitions move at once), on a thread of
        its own: should librdkafka wait in it for ever all the same, the worker logs that and
        goes on after `_CLOSE_TIMEOUT` (the group drops it after its session timeout). This
        cannot help when close() blocks inside a rebalance callback's assign call, which
        holds the GIL: `_leave` keeps callbacks out of close(), and the command line's
        watchdog (`on_leaving`) ends such a process."""
        failed: list[BaseException] = []

        def close() -> None:
            try:
                consumer.close()
            except BaseException as exc:  # reported below, by the worker's thread
                failed.append(exc)

        closer = threading.Thread(target=close, name="tootlake-kafka-close", daemon=True)
        closer.start()
        closer.join(_CLOSE_TIMEOUT)
        if closer.is_alive():
            log.warning(
                "closing the Kafka consumer of %s did not end within %.0f s; going on without "
                "it: what this worker received is in the lake, and the group drops the worker "
                "after its session timeout", self.topic, _CLOSE_TIMEOUT,
            )  # fmt: skip
        elif failed:  # closing must not hide the error that got us here
            log.warning("closing the Kafka consumer: %s", failed[0])
        self._consumer = None


class _Group:
    """The worker's receiving side (`tootlake.transports.Receiver`): messages from the
    consumer; `commit` commits the group offsets of the flushes that finished (monitoring)."""

    def __init__(self, worker: KafkaSinkWorker, consumer: Any) -> None:
        self.worker = worker
        self.consumer = consumer

    def receive(self, timeout: float) -> list[Any] | None:
        self.worker._pause_or_resume()
        messages = self.consumer.consume(num_messages=_CONSUME_MESSAGES, timeout=timeout)
        return messages or None

    def commit(self) -> None:
        worker = self.worker
        if worker._offsets_reason:
            worker._commit_offsets(worker._offsets_reason)
        elif worker._pending_offsets and (
            time.monotonic() - worker._offsets_tried >= _OFFSETS_RETRY
        ):
            worker._commit_offsets("a failed commit")


class _Partitions:
    """The worker's sink (`tootlake.transports.Sink`): the partitions' buffers. A buffer that
    reaches max_bytes or max_age is flushed on the pool while the worker reads on; `flush`
    takes the flushes that finished (their offsets become pending for `_Group.commit`) and
    starts those of old buffers, or with `wait` flushes every buffer and waits."""

    def __init__(self, worker: KafkaSinkWorker) -> None:
        self.worker = worker

    def add(self, messages: list[Any]) -> None:
        worker = self.worker
        worker._add(messages, time.monotonic())
        worker._last_activity = time.monotonic()  # _add may have waited for a flush

    def due(self) -> bool:
        worker = self.worker
        if worker._offsets_reason or any(f.future.done() for f in worker._inflight.values()):
            return True
        if worker._held and worker._keep.ready():
            return True
        if next(self._full(), None) is not None:  # (partition 0 is falsy: not any())
            return True
        now = time.monotonic()
        if worker._pending_offsets and now - worker._offsets_tried >= _OFFSETS_RETRY:
            return True
        return next(self._old(now), None) is not None

    def flush(self, *, wait: bool = True) -> None:
        worker = self.worker
        if wait:
            worker._flush(list(worker._buffers), "shutdown")
            if worker._held:  # the last try failed too: the worker ends with its error
                held = next(iter(worker._held.values()))
                raise held.kind(
                    f"Cannot write the last batches of {worker.topic} to {worker.lake} "
                    f"({worker._held_bytes():,} bytes, left in the topic: the next worker "
                    f"reads them again from the lake's marks): {shorten(held.error, 1_000)}"
                )  # (cut: a store's error may quote a whole body)
            return
        worker._reap(wait=False)
        if worker._held:  # the lake is out of reach: only the held batches, at its pace
            worker._retry_held()
            return
        now = time.monotonic()
        for partition in list(self._old(now)):
            worker._submit(partition, "age")
        for partition in list(self._full()):
            worker._submit(partition, "size")

    def _old(self, now: float) -> Iterator[int]:
        """Partitions whose oldest buffered message is max_age old, with no flush in flight."""
        worker = self.worker
        if worker._held:
            return
        for partition, buffer in worker._buffers.items():
            if (
                buffer.offsets
                and now - buffer.since >= worker.max_age
                and partition not in worker._inflight
            ):
                yield partition

    def _full(self) -> Iterator[int]:
        """Partitions whose buffer reached max_bytes while the lake was out of reach (a full
        buffer is flushed as it fills, otherwise), with no flush in flight."""
        worker = self.worker
        if worker._held:
            return
        for partition, buffer in worker._buffers.items():
            if buffer.bytes >= worker.max_bytes and partition not in worker._inflight:
                yield partition


def _is_conflict(exc: LakeError) -> bool:
    """A commit delta-rs gave up on because of a concurrent one (nothing of it is visible)."""
    try:
        from deltalake.exceptions import CommitFailedError
    except ImportError:  # pragma: no cover - a core dependency
        return False
    return isinstance(exc.__cause__, CommitFailedError)


def _known(partition: int, buffers: Mapping[int, _PartitionBuffer]) -> str:
    buffer = buffers.get(partition)
    return "no mark" if buffer is None or buffer.mark is None else str(buffer.mark)


_KEY_ID = re.compile(r"[0-9a-f]{16}")  # tootlake.pseudonym.key_id's form


def _key_id_of(message: Any) -> str | None:
    """The pseudonymisation key id a message's header names; None: a raw record."""
    headers = message.headers()
    if not headers:
        return None
    for name, value in headers:
        if name == KEY_ID_HEADER:
            return value.decode("ascii", "replace") if value else None
    return None


def _partition_of(message: Any) -> int:
    return int(message.partition())


def _numbers(partitions: list[Any]) -> str:
    return ",".join(str(tp.partition) for tp in sorted(partitions, key=lambda tp: tp.partition))


def _with_own_sightings(posts: tuple[Any, Any], sightings: tuple[Any, Any]) -> tuple[Any, Any]:
    """The sightings, plus one per post that names its instance (uri, observed_on, id, and
    ingested_at as seen_at), in message order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from tootlake.record import sighting_arrow_schema

    table, index = posts
    if not table.num_rows:
        return sightings
    seen = pc.is_valid(table.column("observed_on").combine_chunks())
    own = pa.Table.from_arrays(
        [table.column("uri"), table.column("observed_on"), table.column("id"),
         table.column("ingested_at")],
        schema=sighting_arrow_schema(),
    ).filter(seen)  # fmt: skip
    own_index = pc.filter(index, seen)
    if not sightings[0].num_rows:
        return own, own_index
    merged = pa.concat_tables([sightings[0], own])
    merged_index = pa.concat_arrays([sightings[1], own_index])
    order = pc.sort_indices(merged_index)
    return merged.take(order), merged_index.take(order)
