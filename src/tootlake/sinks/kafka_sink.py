"""Sink workers: Kafka consumer-group members that write a topic into the lake exactly once.

    tootlake sink --kafka HOST:PORT --lake PATH|s3://... [--topic mastodon-posts]
                  [--group tootlake-sink] [--until-idle SECONDS] [--max-bytes N] [--max-age S]

Each worker buffers messages per partition and flushes a partition when its buffered values
reach `max_bytes` or its oldest message `max_age` seconds. A flush decodes the messages
(tootlake.avro), splits them by table (posts by created_at, deletes by deleted_at, sightings
by seen_at, rejects by rejected_at) and date, and writes one Parquet file per (table, date)
into the same layout as the embedded path:

    LAKE/posts/date=D/<topic>+<partition>+<offset:020d>.parquet

where offset is the first offset *among that file's rows* (not the flush's first offset), then,
once every file is durable, commits the partition's next offset synchronously. Messages that
are not valid envelopes go to LAKE/_tootlake/dead-letter/<topic>+<partition>+<offset>.jsonl
(named the same way) and are counted; the sink goes on.

Why this is exactly once, per partition (docs/kafka.md has the long form): files are
written only by batches that start at the committed offset C or after a flush the worker
committed. A crash leaves at most one uncommitted batch [C, Y) on storage. After a restart
(or rebalance) the next owner reads from C again, with batch boundaries that may differ. For
each (table, date) group g the crashed file is named by o, the first g-row at or after C; no
g-row exists in [C, o), so whichever replayed batch holds o has o as its first g-row and writes
a file of the same name, replacing the old one before any other file holds its rows. Committed
files are never touched again: later batches start past them, so their names are larger.
Rows therefore appear once each; Kafka -> lake is exactly once. (Rewinding a group's offsets
by hand below what it committed is a different thing: the re-read batches need not line up
with the files already written, so that can duplicate rows.)

Flushes run on a thread pool while the worker goes on reading (decoding, Parquet encoding and
file I/O release the GIL); the worker commits each one when it is done. A partition has at
most one flush in flight: its next batch waits until the previous one is committed, which is
what keeps "at most one uncommitted batch per partition" true.

Rebalances: partitions that are revoked are flushed and committed before they move; lost
partitions (the group evicted this worker) are dropped unwritten. A commit that fails (the
generation moved on) rewinds the partition to its last commit, so again the next batch starts
at the committed offset.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from tootlake.avro import EnvelopeDecoder, dead_letter_line
from tootlake.errors import MissingDependency, TransportError
from tootlake.sinks.layout import (
    DELETES,
    POSTS,
    REJECTS,
    SIGHTINGS,
    file_name,
    join,
    partition_dir,
)
from tootlake.sinks.parquet import table_to_parquet
from tootlake.sinks.storage import Storage, storage_for
from tootlake.transports.kafka_settings import LIBRDKAFKA_LOG, ConnectWatch, wait_for_cluster

__all__ = [
    "DEFAULT_GROUP",
    "KafkaSinkWorker",
    "SinkWorkerStats",
    "consumer_config",
    "dead_letter_dir",
    "first_offsets",
]

log = logging.getLogger(__name__)

DEFAULT_GROUP = "tootlake-sink"
DEAD_LETTER = ("_tootlake", "dead-letter")
# envelope kind -> (lake table, the time column whose UTC date partitions it)
KIND_TABLES = {
    "post": (POSTS, "created_at"),
    "delete": (DELETES, "deleted_at"),
    "sighting": (SIGHTINGS, "seen_at"),
    "reject": (REJECTS, "rejected_at"),
}
_EPOCH = date(1970, 1, 1)


def _confluent_kafka() -> Any:
    try:
        import confluent_kafka
    except ImportError:
        raise MissingDependency("confluent_kafka", "kafka") from None
    return confluent_kafka


def consumer_config(
    bootstrap: str, group: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka settings of a sink worker; `overrides` (a user's settings: [kafka] in the
    config file, TOOTLAKE_KAFKA_*, -X, see tootlake.transports.kafka_settings) go over them."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "tootlake-sink",
        "enable.auto.commit": False,  # offsets are committed after the files are durable
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


def dead_letter_dir(lake: str) -> str:
    return join(lake, *DEAD_LETTER)


def first_offsets(days: list[int], offsets: list[int]) -> dict[int, int]:
    """{day: first offset among the rows of that day}: the name of each day's file."""
    firsts: dict[int, int] = {}
    for day, offset in zip(days, offsets, strict=True):
        if day not in firsts or offset < firsts[day]:
            firsts[day] = offset
    return firsts


def first_offsets_of(days: Any, offsets: Any) -> dict[int, int]:
    """`first_offsets` over Arrow arrays (a group-by instead of a Python loop)."""
    import pyarrow as pa

    grouped = (
        pa.table({"day": days, "offset": offsets}).group_by("day").aggregate([("offset", "min")])
    )
    return dict(
        zip(
            grouped.column("day").to_pylist(), grouped.column("offset_min").to_pylist(), strict=True
        )
    )


@dataclass
class SinkWorkerStats:
    messages: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KIND_TABLES, 0))
    dead: int = 0
    files: int = 0
    bytes: int = 0
    flushes: int = 0
    commits: int = 0
    failed_commits: int = 0
    assigned: int = 0
    revoked: int = 0
    lost: int = 0
    started: float = field(default_factory=time.monotonic)
    first_message: float | None = None
    last_commit: float | None = None
    elapsed: float = 0.0
    paths: list[str] = field(default_factory=list)

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
            "files": self.files,
            "bytes": self.bytes,
            "flushes": self.flushes,
            "commits": self.commits,
            "failed_commits": self.failed_commits,
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
    resume: int | None = None  # offset to rewind to: the last commit, or where reading began
    stale_after: int | None = None  # after a rewind: later offsets still in flight are dropped
    last: int = -1  # the last offset read

    def clear(self) -> None:
        self.values = []
        self.offsets = []
        self.bytes = 0


@dataclass
class _Plan:
    """What one partition's flush writes: (path, table or bytes) per file, and counts."""

    files: list[tuple[str, Any]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    dead: int = 0
    dead_summary: str = ""
    sizes: list[int] = field(default_factory=list)  # bytes of each file, once written


@dataclass
class _InFlight:
    future: Future[_Plan]
    next_offset: int  # to commit once the flush is done
    reason: str


class KafkaSinkWorker:
    """One member of a consumer group that writes a topic into the lake (module docstring).

    `run()` returns when `stop` is set (SIGTERM, Ctrl-C), or after `until_idle` seconds without
    a message; either way it flushes and commits what it has first. `config` overrides
    librdkafka consumer settings; `schema_registry` (URL or client) is needed only for messages
    in the Confluent wire format. `sightings`: also write every post's own sighting (its
    instance, local id and ingest time), as the collector's embedded sink does
    (`ParquetSink(sightings=True)`), so a topic fed by collectors gives the same lake.
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
        self.connect_timeout = connect_timeout
        self.stats = SinkWorkerStats()
        self._decoder = EnvelopeDecoder(schema_registry)
        self._config = consumer_config(kafka, group, config)
        self._buffers: dict[int, _PartitionBuffer] = {}
        self._consumer: Any = None
        self._inflight: dict[int, _InFlight] = {}
        # Flushes (decode, split: CPU) and file writes (I/O) on separate pools, so a flush
        # waiting for its writes never holds a writer's place.
        self._flushers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tootlake-flush")
        self._writers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tootlake-write")
        self._last_activity = time.monotonic()
        self._ever_assigned = False
        self._reported_errors: set[Any] = set()

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> SinkWorkerStats:
        ck = _confluent_kafka()
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
            self._decoder.warm_up()  # imports and parsed schemas now, not in the first flush
            consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )  # fmt: skip
            self._loop(consumer)
            self._flush(list(self._buffers), "shutdown")
        except BaseException:
            # Leave uncommitted what was not written: closing must not flush it (the revoke
            # callback would); the next owner reads it again from the last commit.
            self._buffers.clear()
            self._abandon(list(self._inflight))
            raise
        finally:
            self._close(consumer)
            self._flushers.shutdown()
            self._writers.shutdown()
        self.stats.elapsed = time.monotonic() - self.stats.started
        return self.stats

    def _loop(self, consumer: Any) -> None:
        last_progress = 0.0
        self._last_activity = time.monotonic()
        # Before its first assignment a worker waits for the group: a crashed member's
        # partitions are handed out only when its session times out.
        session = float(self._config.get("session.timeout.ms", 45_000)) / 1000
        while not self.stop.is_set():
            messages = consumer.consume(num_messages=20_000, timeout=0.2)
            now = time.monotonic()
            if messages:
                self._add(messages, now)
                now = self._last_activity = time.monotonic()  # _add may have waited for a flush
            self._reap(wait=False)
            for partition, buffer in list(self._buffers.items()):
                old = buffer.offsets and now - buffer.since >= self.max_age
                if old and partition not in self._inflight:
                    self._submit(partition, "age")
            if self.until_idle is not None:
                limit = self.until_idle + (0 if self._ever_assigned else session)
                if now - self._last_activity >= limit:
                    log.info("no message for %.1f s: stopping", now - self._last_activity)
                    break
            if self.on_progress is not None and now - last_progress >= 0.5:
                self.stats.elapsed = now - self.stats.started
                self.on_progress(self.stats)
                last_progress = now

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
        for partition, group in itertools.groupby(messages, key=_partition_of):
            buffer = self._buffers.get(partition)
            if buffer is None:
                continue  # from a partition revoked meanwhile: its new owner reads it
            run = list(group)
            if buffer.stale_after is not None:  # rewound after a failed commit
                # Messages fetched before the rewind come first (offsets past stale_after):
                # dropped, they come again. The re-read starts at the last commit, below.
                first = next(
                    (k for k, m in enumerate(run) if m.offset() <= buffer.stale_after), None
                )
                if first is None:
                    continue
                run = run[first:]
                buffer.stale_after = None
            while run:
                run = self._add_run(partition, buffer, run, now)
                buffer = self._buffers.get(partition)
                if buffer is None:
                    break

    def _add_run(
        self, partition: int, buffer: _PartitionBuffer, run: list[Any], now: float
    ) -> list[Any]:
        """Add a run of one partition's messages, up to max_bytes; the rest of the run."""
        if not buffer.offsets:
            buffer.since = now
            if buffer.resume is None:
                buffer.resume = run[0].offset()
        size = sum(map(len, run))
        rest: list[Any] = []
        if buffer.bytes + size >= self.max_bytes:
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
        buffer.last = run[-1].offset()
        self.stats.messages += len(run)
        if buffer.bytes >= self.max_bytes:
            if partition in self._inflight:  # one flush per partition at a time
                self._reap(wait=True, partitions=[partition])
                if partition not in self._buffers or buffer.stale_after is not None:
                    return []  # rewound meanwhile: the rest comes again
            self._submit(partition, "size")
        return rest

    # -- flushing and committing -----------------------------------------------------------

    def _submit(self, partition: int, reason: str) -> None:
        """Hand the partition's buffered messages to a flush on the pool (none in flight)."""
        buffer = self._buffers[partition]
        values, offsets = buffer.values, buffer.offsets
        buffer.clear()
        future = self._flushers.submit(self._flush_partition, partition, values, offsets)
        self._inflight[partition] = _InFlight(future, offsets[-1] + 1, reason)

    def _flush_partition(self, partition: int, values: list[Any], offsets: list[int]) -> _Plan:
        """Decode, split, encode and write one partition's batch (on the pool)."""
        plan = self._plan_partition(partition, values, offsets)
        plan.sizes = list(self._writers.map(self._write_file, plan.files))
        return plan

    def _reap(self, *, wait: bool, partitions: list[int] | None = None) -> None:
        """Commit the flushes that are done (with `wait`: wait for those of `partitions`,
        every one when None). A flush that failed raises here, uncommitted."""
        ck = _confluent_kafka()
        chosen = list(self._inflight) if partitions is None else partitions
        done = []
        for partition in chosen:
            flight = self._inflight.get(partition)
            if flight is None or not (wait or flight.future.done()):
                continue
            plan = flight.future.result()  # LakeError and friends propagate: nothing committed
            del self._inflight[partition]
            for (path, _), size in zip(plan.files, plan.sizes, strict=True):
                self.stats.files += 1
                self.stats.bytes += size
                self.stats.paths.append(path)
            for kind, rows in plan.rows.items():
                self.stats.rows[kind] += rows
            if plan.dead:
                self.stats.dead += plan.dead
                log.warning("%s", plan.dead_summary)
            self.stats.flushes += 1
            done.append(
                (ck.TopicPartition(self.topic, partition, flight.next_offset), flight.reason)
            )
        if done:
            self._commit([tp for tp, _ in done], done[0][1])

    def _flush(self, partitions: list[int], reason: str) -> None:
        """Write everything buffered for `partitions` and commit it, waiting until it is done."""
        self._reap(wait=True, partitions=partitions)
        for partition in partitions:
            buffer = self._buffers.get(partition)
            if buffer is not None and buffer.offsets:
                self._submit(partition, reason)
        self._reap(wait=True, partitions=partitions)

    def _abandon(self, partitions: list[int]) -> None:
        """Wait for in-flight flushes of `partitions` to end (a write cannot be called back),
        without committing them: their batches are read again from the last commit."""
        for partition in partitions:
            flight = self._inflight.pop(partition, None)
            if flight is not None:
                try:
                    flight.future.result()
                except Exception as exc:  # the error that matters is being raised already
                    log.debug("abandoned flush of partition %d: %s", partition, exc)

    def _plan_partition(self, partition: int, values: list[Any], offset_list: list[int]) -> _Plan:
        """Decode one partition's messages into the files to write (runs on the pool)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        plan = _Plan()
        offsets = pa.array(offset_list, type=pa.int64())
        decoded = self._decoder.decode(values)
        tables = dict(decoded.tables)
        if self.sightings:
            tables["sighting"] = _with_own_sightings(tables["post"], tables["sighting"])
        prefix = f"{self.topic}+{partition}"
        for kind, (table, index) in tables.items():
            plan.rows[kind] = table.num_rows
            if not table.num_rows:
                continue
            table_name, column = KIND_TABLES[kind]
            days = table.column(column).cast(pa.date32()).cast(pa.int32())  # UTC dates
            firsts = first_offsets_of(days, offsets.take(index))
            for day, first in sorted(firsts.items()):
                part = table if len(firsts) == 1 else table.filter(pc.equal(days, day))
                path = join(
                    partition_dir(self.lake, table_name, _EPOCH + timedelta(days=day)),
                    file_name(prefix, offset=first),
                )
                plan.files.append((path, part))
        if decoded.errors:
            self._plan_dead_letters(plan, partition, values, offset_list, decoded.errors)
        return plan

    def _plan_dead_letters(
        self,
        plan: _Plan,
        partition: int,
        values: list[Any],
        offsets: list[int],
        errors: list[tuple[int, str]],
    ) -> None:
        lines = []
        for i, error in errors:
            lines.append(dead_letter_line(self.topic, partition, offsets[i], error, values[i]))
        first = lines[0]
        name = file_name(f"{self.topic}+{partition}", offset=first["offset"])
        path = join(dead_letter_dir(self.lake), name.removesuffix(".parquet") + ".jsonl")
        plan.files.append((path, "".join(json.dumps(line) + "\n" for line in lines).encode()))
        plan.dead = len(lines)
        plan.dead_summary = (
            f"{len(lines)} message(s) of {self.topic}[{partition}] are not tootlake Avro "
            f"(first: offset {first['offset']}, {first['error']}); written to {path}"
        )

    def _write_file(self, file: tuple[str, Any]) -> int:
        """Encode (a table as Parquet) and write one file atomically; its size (on the pool)."""
        path, content = file
        data = content if isinstance(content, bytes) else table_to_parquet(content)
        self.storage.write_atomic(path, data)
        return len(data)

    def _commit(self, offsets: list[Any], reason: str) -> None:
        ck = _confluent_kafka()
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except ck.KafkaException as exc:
            # The group moved on (rebalance, eviction). Whoever reads these partitions next
            # starts at their last commit and rewrites the same files; if that is us, rewind.
            self.stats.failed_commits += 1
            log.warning(
                "commit after %s flush failed (%s): partitions %s are read again from their "
                "last commit", reason, exc.args[0], [tp.partition for tp in offsets],
            )  # fmt: skip
            for tp in offsets:
                buffer = self._buffers.get(tp.partition)
                if buffer is not None and buffer.resume is not None:
                    buffer.clear()
                    buffer.stale_after = max(buffer.last, tp.offset - 1)
                    try:
                        self._consumer.seek(
                            ck.TopicPartition(self.topic, tp.partition, buffer.resume)
                        )
                    except ck.KafkaException:
                        self._buffers.pop(tp.partition, None)  # no longer ours
            return
        self.stats.commits += 1
        self.stats.last_commit = time.monotonic()
        for tp in offsets:
            buffer = self._buffers.get(tp.partition)
            if buffer is not None:
                buffer.resume = tp.offset

    # -- rebalancing -----------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self._buffers[tp.partition] = _PartitionBuffer()
        self.stats.assigned += len(partitions)
        self._ever_assigned = self._ever_assigned or bool(partitions)
        self._last_activity = time.monotonic()
        log.info("assigned %s[%s]", self.topic, _numbers(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        mine = [tp.partition for tp in partitions if tp.partition in self._buffers]
        try:
            self._flush(mine, "revoke")
        finally:
            for partition in mine:
                self._buffers.pop(partition, None)
        self.stats.revoked += len(partitions)
        self._last_activity = time.monotonic()
        log.info("revoked %s[%s]", self.topic, _numbers(partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Another worker owns them already: writing now could race it. Drop, unwritten.
        self._abandon([tp.partition for tp in partitions])
        for tp in partitions:
            self._buffers.pop(tp.partition, None)
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
        ck = _confluent_kafka()
        err = message.error()
        if err.code() == ck.KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise TransportError(f"Fatal Kafka consumer error: {err.str()}")
        if err.code() not in self._reported_errors:
            self._reported_errors.add(err.code())
            log.warning("Kafka: %s", err.str())

    def _close(self, consumer: Any) -> None:
        try:
            consumer.close()  # leaves the group: its partitions move at once
        except Exception as exc:  # closing must not hide the error that got us here
            log.warning("closing the Kafka consumer: %s", exc)
        self._consumer = None


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
