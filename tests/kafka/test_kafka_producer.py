"""Producing to a real broker: acks after delivery, backpressure, a broker restart, the CLI,
and the Confluent wire format read by confluent-kafka's own deserializer."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import REAL
from tests.ports import free_port
from tests.registry_sim import registry_sim
from tootlake.errors import TransportError
from tootlake.kafka.producer import KafkaTransport
from tootlake.pipeline import Recorder, RunStats, produce, replay_to_kafka
from tootlake.transports import Batch

from .conftest import (
    PARTITIONS,
    REAL_FILES,
    assert_each_post_once,
    end_offsets,
    restart_broker,
    unique_events,
    unique_posts,
)
from .test_kafka_sink import sink_once

pytestmark = pytest.mark.kafka


def _dead_port() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens


def _posts(n: int) -> list:
    return unique_posts(n, tag="p")


def test_an_unreachable_broker_at_start_is_a_clear_error():
    with pytest.raises(TransportError, match=r"Cannot reach Kafka at 127\.0\.0\.1:\d+ within 1 s"):
        KafkaTransport(_dead_port(), connect_timeout=1)


def test_acks_wait_for_delivery_and_a_full_buffer_blocks_the_source():
    transport = KafkaTransport(
        _dead_port(), connect_timeout=0, config={"queue.buffering.max.messages": 20}
    )
    acked: list[int] = []
    transport.send(Batch(_posts(10), [lambda: acked.append(1)]))
    deadline = time.monotonic() + 10
    while "broker unreachable" not in transport.describe():
        assert time.monotonic() < deadline, transport.describe()
        time.sleep(0.1)
    assert transport.describe() == "kafka: buffering 10, broker unreachable"
    assert acked == []  # nothing delivered, nothing acknowledged

    blocked = threading.Thread(target=transport.send, args=(Batch(_posts(30), []),))
    blocked.start()
    time.sleep(1)
    assert blocked.is_alive(), "send() should wait for room in the buffer"
    assert transport.describe().endswith("(buffer full: sources wait)")
    transport.stop.set()  # Ctrl-C: the blocked send gives up
    blocked.join(5)
    assert not blocked.is_alive()
    transport.close(timeout=0)
    assert acked == []


def test_acks_fire_once_each_in_order_after_delivery(kafka, topic):
    acked: list[int] = []
    events = []
    for k, event in enumerate(unique_events(3000, tag="a")):
        event.ack = lambda k=k: acked.append(k)
        events.append(event)
    stats = produce(events, kafka=kafka, topic=topic, recorder=Recorder(RunStats()), batch_size=100)
    assert stats.written == 3000  # (posts, and versions of edited ones)
    assert acked == list(range(3000))
    assert sum(end_offsets(kafka, topic).values()) == 3000
    assert stats.transport == "kafka: 3,000 delivered, 0 in flight"


@pytest.mark.slow
def test_a_broker_restart_while_producing_loses_and_duplicates_nothing(
    kafka, topic, group, request, tmp_path
):
    n = 20_000
    acked: list[int] = []
    states: list[str] = []

    def events():  # about 12 s of producing, so the restart falls in the middle
        for k, event in enumerate(unique_events(n, tag="r")):
            event.ack = lambda k=k: acked.append(k)
            if k % 100 == 0:
                time.sleep(0.06)
            yield event

    result: list = []
    producer = threading.Thread(
        target=lambda: result.append(
            produce(
                events(), kafka=kafka, topic=topic, recorder=Recorder(RunStats()), batch_size=200,
                # a small buffer, so that the restart also makes the source wait
                config={"queue.buffering.max.messages": 2000},
                on_progress=lambda stats: states.append(stats.transport),
            )
        )
    )  # fmt: skip
    producer.start()
    deadline = time.monotonic() + 60
    while len(acked) < 2000:
        assert time.monotonic() < deadline and producer.is_alive(), "nothing delivered"
        time.sleep(0.05)
    restart_broker(request.config)
    producer.join(180)
    assert not producer.is_alive() and result, "produce() did not finish"
    assert any("broker unreachable" in s for s in states), states
    assert acked == list(range(n))  # every event acknowledged once, in order
    assert sum(end_offsets(kafka, topic).values()) == n  # the idempotent producer: no duplicate
    lake = str(tmp_path / "lake")
    sink_once(kafka, topic, group, lake)
    assert_each_post_once(lake, n)


def test_replay_command_sends_to_kafka(kafka, topic):
    files = [str(REAL / name) for name in REAL_FILES]
    result = subprocess.run(
        [sys.executable, "-m", "tootlake", "replay", *files, "--kafka", kafka, "--topic", topic],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        f"Replayed 531 events into Kafka topic {topic} at {kafka}: 473 posts, 0 edits, 0 "
        "deletes; 6 versions written again" in result.stdout
    )
    assert "; 1 rejected" in result.stdout  # malformed.json:50, sent as a reject
    offsets = end_offsets(kafka, topic)
    assert sum(offsets.values()) == 480 and len([p for p in offsets.values() if p]) == PARTITIONS


def test_schema_registry_messages_are_read_by_confluents_own_deserializer(kafka, topic, group):
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    # A registry over a socket (tests/registry_sim.py): the reader has a client of its own,
    # as in another process, and fetches the schema by the id each message carries.
    with registry_sim() as sim:
        replay_to_kafka(
            [REAL / "mastodonsocial.json"], kafka=kafka, topic=topic, schema_registry=sim.url
        )
        registry = SchemaRegistryClient({"url": sim.url})
        deserialize = AvroDeserializer(registry)
        consumer = Consumer(
            {"bootstrap.servers": kafka, "group.id": group, "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([topic])
        values = []
        deadline = time.monotonic() + 60
        try:
            while len(values) < 48 and time.monotonic() < deadline:
                for message in consumer.consume(100, timeout=1):
                    assert message.error() is None
                    context = SerializationContext(topic, MessageField.VALUE)
                    values.append(
                        (message.key(), message.value()[:1], deserialize(message.value(), context))
                    )
        finally:
            consumer.close()
        subjects = registry.get_subjects()
    assert len(values) == 48
    assert subjects == [f"{topic}-value"]
    for key, magic, envelope in values:
        assert magic == b"\x00"  # Confluent framing: magic 0, then the 4-byte schema id
        assert envelope["kind"] == "post" and envelope["delete"] is None
        assert envelope["post"]["uri"].encode() == key
