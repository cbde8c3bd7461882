"""The Kafka producer, a sending transport: records -> Avro envelopes (tootlake.kafka.encode)
-> a Kafka topic.

The producer is configured for throughput without giving up order or safety:

    enable.idempotence=true, acks=all  retries neither duplicate nor reorder messages; a message
                                       counts as delivered once every in-sync replica has it
    compression.type=zstd, linger.ms=50, batch.size=1 MiB
                                       few large compressed requests, never a flush per message
    partitioner=murmur2_random         the Java client's partitioner: a key lands on the partition
                                       Kafka Connect, Kafka Streams or a Java producer would pick
    message.timeout.ms=0               never give up on a message while the broker is away...
    queue.buffering.max.messages=100000, queue.buffering.max.kbytes=131072
                                       ...but buffer at most this much; when it is full, `send`
                                       blocks, and so does the source feeding it (backpressure)

The key is the post's uri (see `tootlake.kafka.encode.key_of`), so every version of a post and its
delete land on one partition, in order; rejects (statuses that failed validation) have no key
and spread over the partitions. A thread serves delivery reports; a batch's acks (which
advance the sources' cursors) fire only once every message of it, and of every batch sent
before it, is delivered. What is buffered but undelivered when the process stops is not
acknowledged, so the sources send it again: the producer side is at-least-once, and the sink's
offset-named files make the Kafka -> lake side exactly once (docs/kafka.md).

Settings a user gives ([kafka] in the config file, TOOTLAKE_KAFKA_*, -X: see
tootlake.kafka.settings) go over these defaults.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from tootlake.errors import TransportError
from tootlake.kafka.encode import batch_encoder, confluent_encoder, key_of
from tootlake.kafka.schema import Record
from tootlake.kafka.settings import (
    DEFAULT_TOPIC,
    KEY_ID_HEADER,
    LIBRDKAFKA_LOG,
    ConnectWatch,
    confluent_kafka,
    wait_for_cluster,
)
from tootlake.record import RAW_LIMIT, Reject
from tootlake.redact import redact
from tootlake.transports import Batch

__all__ = ["DEFAULT_TOPIC", "LIBRDKAFKA_LOG", "KafkaTransport", "producer_config"]

log = logging.getLogger(__name__)


def producer_config(bootstrap: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """librdkafka settings of tootlake's producer (see the module docstring for the why)."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": "tootlake-producer",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "zstd",
        "linger.ms": 50,
        "batch.size": 1024 * 1024,
        "partitioner": "murmur2_random",
        "message.timeout.ms": 0,
        "queue.buffering.max.messages": 100_000,
        "queue.buffering.max.kbytes": 128 * 1024,
        "statistics.interval.ms": 1000,
        "logger": LIBRDKAFKA_LOG,
    }
    config.update(overrides or {})
    return config


@dataclass(slots=True)
class _BatchAcks:
    remaining: int
    acks: list[Callable[[], None]]
    failed: bool = False


class KafkaTransport:
    """Sends batches of records to a Kafka topic as Avro envelopes; see the module docstring.
    A sending transport only (`tootlake.transports.Sender`): sink workers read the topic.

    `schema_registry`: None for Avro single-object encoding (no registry needed), or a registry
    URL (`mock://name` for confluent-kafka's in-process mock) or a SchemaRegistryClient, for the
    Confluent wire format. `stop`: when set, a `send` blocked on a full buffer gives up (its
    records are left unacknowledged). `producer`: a ready confluent_kafka.Producer (tests).
    `key_id`: the records are pseudonymised under the key of this id; every message carries
    it in the `tootlake-key-id` header, so a sink refuses to mix them with raw ones.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str = DEFAULT_TOPIC,
        *,
        schema_registry: Any = None,
        config: Mapping[str, Any] | None = None,
        connect_timeout: float = 10.0,
        stop: threading.Event | None = None,
        producer: Any = None,
        key_id: str | None = None,
    ) -> None:
        ck = confluent_kafka()
        self.headers = None if key_id is None else [(KEY_ID_HEADER, key_id.encode())]
        self.bootstrap = bootstrap
        self.topic = topic
        self.format = "single-object" if schema_registry is None else "confluent"
        if schema_registry is None:  # a batch at a time, column by column (tootlake.kafka.encode)
            self.encode_batch = batch_encoder()
        else:  # confluent-kafka's AvroSerializer, a message at a time
            encode = confluent_encoder(schema_registry, topic)
            self.encode_batch = lambda records: [encode(r) for r in records]
        self.stop = stop or threading.Event()
        settings = producer_config(bootstrap, config)
        self.max_buffered = int(settings["queue.buffering.max.messages"])
        settings["error_cb"] = self._on_error
        settings["stats_cb"] = self._on_stats
        try:
            self._producer = producer or ck.Producer(settings)
        except ck.KafkaException as exc:
            raise TransportError(f"Invalid Kafka producer settings: {exc}") from exc
        self._pending: deque[_BatchAcks] = deque()
        self._lock = threading.Lock()
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.too_large = 0  # records sent as rejects: their messages were over the limit
        self.blocked = False  # send() is waiting for room in the buffer
        self.broker_down = False
        self._first_failure: str | None = None
        self._fatal: str | None = None
        self._connect = ConnectWatch()
        self._connected = not connect_timeout  # until then, wait_for_broker reports failures
        self._closed = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_loop, name="tootlake-kafka-poll", daemon=True
        )
        self._poller.start()
        if connect_timeout:
            try:
                self.wait_for_broker(connect_timeout)
            except TransportError:
                self._closed.set()
                self._poller.join()
                raise

    # -- state -----------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Messages produced but not yet delivered (queued, or in flight). Counted here:
        len(producer) also counts librdkafka's own requests (InitProducerId...)."""
        return self.sent - self.delivered - self.failed

    def describe(self) -> str:
        """One line for a progress display, e.g. "kafka: buffering 1,234, broker unreachable"."""
        if self.broker_down:
            state = f"kafka: buffering {self.buffered:,}, broker unreachable"
            return state + (" (buffer full: sources wait)" if self.blocked else "")
        if self.blocked:
            return f"kafka: buffer full ({self.buffered:,}), sources wait"
        return f"kafka: {self.delivered:,} delivered, {self.buffered:,} in flight"

    def wait_for_broker(self, timeout: float) -> None:
        """Raise TransportError unless the cluster answers a metadata request within timeout;
        at once when it refuses the credentials (or the TLS handshake fails)."""
        wait_for_cluster(self._producer, self.bootstrap, timeout, self._connect)
        self._connected = True

    # -- sending ---------------------------------------------------------------------------

    def send(self, batch: Batch) -> None:
        """Produce every record of the batch; blocks while the buffer is full (backpressure).
        The batch's acks fire from the delivery thread once all of it is delivered."""
        self.raise_if_failed()
        tracker = _BatchAcks(len(batch.records), list(batch.acks))
        with self._lock:
            self._pending.append(tracker)
        if not batch.records:
            return

        def delivered(err: Any, msg: Any) -> None:
            self._delivered(tracker, err)

        ck = confluent_kafka()
        produce = self._producer.produce
        if self.headers is not None:
            produce = functools.partial(produce, headers=self.headers)
        topic = self.topic
        values = self.encode_batch(batch.records)
        for record, value in zip(batch.records, values, strict=True):
            key = key_of(record)
            while True:
                self.sent += 1  # before produce: its delivery report may come at once
                try:
                    produce(topic, value, key, on_delivery=delivered)
                    break
                except ck.KafkaException as exc:
                    self.sent -= 1  # not queued: no report will come (close() would wait)
                    if exc.args[0].code() != ck.KafkaError.MSG_SIZE_TOO_LARGE or isinstance(
                        record, Reject
                    ):
                        raise TransportError(
                            f"Kafka refused a message for {topic!r}: {exc.args[0].str()}"
                        ) from exc
                    # A post over message.max.bytes would stop every run that sends it again:
                    # it goes as a reject, which says why and keeps its start
                    record = self._too_large(record, len(value), exc.args[0].str())
                    value, key = self.encode_batch([record])[0], None
                except BufferError:
                    # Full: wait for deliveries to make room. The source waits with us.
                    self.sent -= 1
                    self.blocked = True
                    if self.stop.is_set():
                        return
                    self.raise_if_failed()
                    time.sleep(0.02)
        self.blocked = False

    def _too_large(self, record: Record, size: int, error: str) -> Reject:
        """The reject that goes in place of a record whose message Kafka refuses as too large:
        the record as JSON, cut to RAW_LIMIT, as its raw payload."""
        self.too_large += 1
        reason = (
            f"too large for Kafka: its message is {size:,} bytes, over the producer's "
            f"message.max.bytes ({error})"
        )
        # (not its uri: in a pseudonymised run that may name its author)
        kind = type(record).__name__
        log.warning("a %s for %s is %s: sent as a reject", kind, self.topic, reason)
        return Reject(
            rejected_at=datetime.now(UTC),
            source="kafka",
            observed_on=record.observed_on,
            where=f"kafka:{self.topic}",
            reason=reason,
            field=None,
            raw=redact(msgspec.json.encode(record).decode()[:RAW_LIMIT]),
        )

    def _delivered(self, tracker: _BatchAcks, err: Any) -> None:
        # Runs on the delivery thread (or in close(), once that thread has stopped).
        if err is None:
            self.delivered += 1
            self.broker_down = False
        else:
            self.failed += 1
            tracker.failed = True
            if self._first_failure is None:
                self._first_failure = str(err)
                log.error("Kafka refused a message for %s: %s", self.topic, err)
        tracker.remaining -= 1

    def _ack_ready(self) -> None:
        """Fire the acks of every fully delivered batch at the head of the queue, in order."""
        while True:
            with self._lock:
                if not self._pending or self._pending[0].remaining > 0:
                    return
                if self._pending[0].failed:
                    return  # never acknowledge past a lost message: the source sends it again
                tracker = self._pending.popleft()
            for ack in tracker.acks:
                ack()

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)
            self._ack_ready()

    def _on_error(self, err: Any) -> None:
        ck = confluent_kafka()
        if err.fatal():
            self._fatal = f"fatal Kafka producer error: {err.str()}"
            log.error("%s", self._fatal)
            return
        if not self._connected:  # wait_for_broker says what went wrong, once
            self._connect.saw(err)
            return
        if err.code() in (ck.KafkaError._ALL_BROKERS_DOWN, ck.KafkaError._TRANSPORT):
            if not self.broker_down:
                log.warning(
                    "Kafka at %s is unreachable (%s): buffering up to %s messages, then the "
                    "sources wait", self.bootstrap, err.str(), f"{self.max_buffered:,}",
                )  # fmt: skip
            self.broker_down = True
        else:
            log.info("Kafka: %s", err.str())

    def _on_stats(self, stats_json: str) -> None:
        try:
            brokers = json.loads(stats_json).get("brokers", {}).values()
        except ValueError:
            return
        states = [b.get("state") for b in brokers if b.get("nodeid", -1) >= 0]
        if not states:
            return
        up = any(state == "UP" for state in states)
        if up and self.broker_down:
            log.warning("Kafka at %s is reachable again", self.bootstrap)
        self.broker_down = not up

    def raise_if_failed(self) -> None:
        if self._fatal:
            raise TransportError(self._fatal)
        if self._first_failure:
            raise TransportError(
                f"Kafka did not take {self.failed} message(s) for topic {self.topic!r}: "
                f"{self._first_failure}"
            )

    # -- the rest of the sending side ------------------------------------------------------

    def flush(self, timeout: float | None = None) -> int:
        """Wait until everything sent is delivered (or timeout, or stop); messages left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.buffered and not self.stop.is_set():
            if self._fatal or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(0.02)
        while self._pending and self._pending[0].remaining == 0 and not self._pending[0].failed:
            time.sleep(0.01)  # the delivery thread fires the last acks
        return self.buffered

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is buffered (waiting up to timeout; forever when None, unless `stop` is
        set), stop the delivery thread, and raise TransportError if a message was refused."""
        left = self.flush(timeout)
        self._closed.set()
        self._poller.join()
        self._producer.poll(0)
        self._ack_ready()
        if left:
            log.warning(
                "%s message(s) were not delivered to Kafka; their events were not acknowledged "
                "and will be sent again by the next run", f"{left:,}",
            )  # fmt: skip
        self.raise_if_failed()
