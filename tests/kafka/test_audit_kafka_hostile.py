"""Hostile input against a real broker and a lake on disk: foreign and garbage bytes on the
topic, Avro bodies that lie about their lengths, wrong schema ids, huge messages, hostile
strings, duplicates, a worker killed between the lake commit and the group offsets, settings
errors, and foreign messages on a pseudonymised topic. The sink keeps going, writes every
valid record once, and keeps each bad message as a dead letter."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import REAL
from tests.registry_sim import registry_sim
from tootlake.analysis import open_lake
from tootlake.errors import ConfigError, TransportError
from tootlake.kafka.encode import single_object_encoder
from tootlake.kafka.schema import zigzag_varint
from tootlake.kafka.settings import KEY_ID_HEADER
from tootlake.kafka.sink import KafkaSinkWorker, SinkWorkerStats
from tootlake.lake.pseudonyms import lake_key_id
from tootlake.lake.storage import storage_for
from tootlake.pipeline import Recorder, RunStats, produce, replay, replay_to_kafka
from tootlake.record.pseudonymize import Pseudonymizer
from tootlake.sources import UPDATE, Event

from .conftest import (
    _valid,
    assert_each_post_once,
    assert_lake_at_end,
    committed_offsets,
    end_offsets,
    sink_command,
    unique_events,
    unique_posts,
)

pytestmark = pytest.mark.kafka
HERE = Path(__file__).resolve().parent
P = Pseudonymizer(bytes(range(32)))


def sink_once(kafka: str, topic: str, group: str, lake: str, **options: Any) -> SinkWorkerStats:
    options.setdefault("until_idle", 1.5)
    options.setdefault("config", {"session.timeout.ms": 6000})
    return KafkaSinkWorker(lake, kafka=kafka, topic=topic, group=group, **options).run()


def raw_producer(kafka: str) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": kafka, "message.max.bytes": 2_000_000})


def dead_letters(lake: str, stats: SinkWorkerStats) -> list[dict[str, Any]]:
    storage = storage_for(lake)
    return [json.loads(line) for path in stats.dead_letter_files
            for line in storage.read(path).decode().splitlines()]  # fmt: skip


def with_tags_block(post: Any, block: bytes) -> bytes:
    """The post's single-object encoding with its tags array (one tag, `qqqq`) replaced by
    `block`: an own-schema body that lies about a length or a count."""
    value = single_object_encoder()(msgspec.structs.replace(post, tags=["qqqq"]))
    honest = b"\x02\x08qqqq\x00"
    assert value.count(honest) == 1
    return value.replace(honest, block)


def test_foreign_garbage_huge_and_lying_messages_are_dead_letters_and_the_sink_goes_on(
    kafka, topic, group, tmp_path
):
    """Every kind of bad value at once, on every partition, between good posts: each is a dead
    letter with its offset and reason; every post is in posts_all once; the group ends at the
    topic's end."""
    encode = single_object_encoder()
    posts = unique_posts(120, tag="g")
    lying = unique_posts(6, tag="l")
    bad = [
        os.urandom(300),  # foreign bytes
        b"",  # empty
        b'{"uri": "https://x/1", "content": "json, not Avro"}',
        b"\xc3\x01" + b"\xee" * 8 + encode(posts[0])[10:],  # a fingerprint no one shipped
        b"\x00\x00\x00\x30\x39" + encode(posts[0])[10:],  # Confluent framing, no registry
        encode(posts[0])[:40],  # cut short
        encode(posts[0]) + b"\x00trailing",
        b"\xc3\x01" + encode(posts[0])[2:10],  # a header and nothing else
        os.urandom(900_000),  # huge garbage (the broker's limit is about 1 MB)
        # own-schema bodies whose counts and lengths lie (the bulk path, then fastavro)
        with_tags_block(lying[0], zigzag_varint(2**40) + b"\x08qqqq\x00"),
        with_tags_block(lying[1], zigzag_varint(-(2**40)) + zigzag_varint(6) + b"\x08qqqq\x00"),
        with_tags_block(lying[2], b"\x02" + zigzag_varint(2**40) + b"qqqq\x00"),
        with_tags_block(lying[3], b"\x02" + zigzag_varint(-5) + b"qqqq\x00"),
        with_tags_block(lying[4], zigzag_varint(10**7) + b"\x00" * 10),
        # invalid UTF-8 (a lone surrogate, CESU-8 style) in an own-schema string
        with_tags_block(lying[5], b"\x02\x08\xed\xa0\x80q\x00"),
    ]
    producer = raw_producer(kafka)
    for k, post in enumerate(posts):
        if k % 8 == 3 and k // 8 < len(bad):
            producer.produce(topic, bad[k // 8], key=f"bad-{k}".encode())
        producer.produce(topic, encode(post), key=post.uri.encode())
    producer.produce(topic, None, key=b"a-tombstone")  # a tombstone: no value at all
    producer.flush(30)
    lake = str(tmp_path / "lake")
    stats = sink_once(kafka, topic, group, lake, max_bytes=256 * 1024)
    assert (stats.posts, stats.dead) == (120, len(bad) + 1)
    assert_each_post_once(lake, 120)
    letters = dead_letters(lake, stats)
    assert len(letters) == len(bad) + 1 and all(d["error"] for d in letters)
    kept = sorted(base64.b64decode(d["value"]) for d in letters if d["value"] is not None)
    assert kept == sorted(bad)
    assert any("tombstone" in d["error"] for d in letters if d["value"] is None)
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)
    assert_lake_at_end(lake, kafka, topic)


def test_hostile_strings_and_a_large_text_reach_the_lake_as_they_were(
    kafka, topic, group, tmp_path
):
    """Control characters, NUL, bidi overrides, non-BMP characters and a 600 KB text: the
    lake holds them byte for byte, through the producer's batch encoder and the sink's bulk
    decoder."""
    from tootlake.kafka.producer import KafkaTransport
    from tootlake.transports import Batch

    posts = unique_posts(10, tag="s")
    hostile = [
        msgspec.structs.replace(posts[0], text="\x00\x01\x1b[31m\r\n\u202e\ufeff😀" * 3),
        msgspec.structs.replace(posts[1], display_name="\u0000" * 40, username="a\u2028b"),
        msgspec.structs.replace(posts[2], text="é" * 300_000, tags=["\x00", "", "😀" * 50]),
        msgspec.structs.replace(posts[3], spoiler_text="'; DROP TABLE posts; --", app="\x7f"),
    ]
    records = hostile + posts[4:]
    transport = KafkaTransport(kafka, topic)
    transport.send(Batch(records))
    transport.close(timeout=60)
    lake = str(tmp_path / "lake")
    stats = sink_once(kafka, topic, group, lake)
    assert (stats.posts, stats.dead) == (len(records), 0)
    columns = ("text", "display_name", "username", "tags", "spoiler_text", "app")
    query = f"SELECT uri, {', '.join(columns)} FROM posts_all"
    rows = {row[0]: row[1:] for row in open_lake(lake).execute(query).fetchall()}
    for post in hostile:
        assert rows[post.uri] == tuple(getattr(post, c) for c in columns)


def test_duplicates_on_the_topic_are_rows_of_posts_all_and_fold_in_posts(
    kafka, topic, group, tmp_path
):
    """The same message produced twice (a source re-sent it) is two messages: posts_all has
    both, as docs/kafka.md says, and the posts view folds them; a second group adds nothing."""
    encode = single_object_encoder()
    posts = unique_posts(20, tag="dup")
    producer = raw_producer(kafka)
    for post in posts + posts[:5]:
        producer.produce(topic, encode(post), key=post.uri.encode())
    producer.flush(30)
    lake = str(tmp_path / "lake")
    stats = sink_once(kafka, topic, group, lake)
    assert (stats.posts, stats.dead) == (25, 0)
    db = open_lake(lake)
    assert db.execute("SELECT count(*) FROM posts_all").fetchone() == (25,)
    assert db.execute("SELECT count(*), count(DISTINCT uri) FROM posts").fetchone() == (20, 20)
    again = sink_once(kafka, topic, group + "-again", lake)
    assert (again.posts, again.commits) == (0, 0)
    assert open_lake(lake).execute("SELECT count(*) FROM posts_all").fetchone() == (25,)


def test_a_worker_killed_after_the_lake_commit_with_dead_letters_writes_each_once(
    kafka, topic, group, tmp_path
):
    """Killed (os._exit) between a flush's posts_all commit and the group offsets, with garbage
    in the batch: the restart neither writes the posts again nor adds dead letters."""
    encode = single_object_encoder()
    posts = unique_posts(300, tag="k")
    producer = raw_producer(kafka)
    for k, post in enumerate(posts):
        if k % 50 == 10:
            producer.produce(topic, b"garbage %d" % k, key=post.uri.encode())
        producer.produce(topic, encode(post), key=post.uri.encode())
    producer.flush(30)
    lake = str(tmp_path / "lake")
    crashed = subprocess.run(
        [sys.executable, str(HERE / "crashing_sink.py"), kafka, topic, group, lake, "20000", "1",
         "before-offsets", "session.timeout.ms=6000", f"group.instance.id={group}-m"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == 137, crashed.stderr[-3000:]
    stats = sink_once(
        kafka, topic, group, lake, config={"session.timeout.ms": 6000,
                                           "group.instance.id": f"{group}-m"}
    )  # fmt: skip
    assert_each_post_once(lake, 300)
    files = sorted((Path(lake) / "_tootlake" / "dead-letter").glob("*.jsonl"))
    offsets = [json.loads(line)["offset"] for f in files for line in f.read_text().splitlines()]
    assert len(offsets) == len(set(offsets)) == 6
    assert stats.skipped == 0
    assert_lake_at_end(lake, kafka, topic)
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)


# -- settings errors -----------------------------------------------------------------------


def test_sink_settings_errors_name_what_is_wrong(kafka, topic, group, tmp_path):
    lake = str(tmp_path / "lake")
    with pytest.raises(TransportError, match=r"Invalid Kafka consumer settings: .*no\.such"):
        sink_once(kafka, topic, group, lake, config={"no.such.setting": "1"})
    with pytest.raises(TransportError, match=r"Cannot reach Kafka at 127\.0\.0\.1:9 within"):
        sink_once("127.0.0.1:9", topic, group, lake, connect_timeout=1.5)
    assert not Path(lake).exists()


# -- pseudonymised topics ------------------------------------------------------------------


def test_garbage_without_a_header_does_not_stop_a_sink_into_a_pseudonymised_lake(
    kafka, topic, group, tmp_path
):
    """A foreign message (not Avro, no key-id header) on a pseudonymised topic is bad input,
    not a lake of another mode: it must not stop the worker (for good: every restart reads it
    again). It is a dead letter, and its value, which may hold names in the clear, is not
    copied into the pseudonymised lake."""
    source = REAL / "mastodonsocial.json"
    lake = str(tmp_path / "pseudo")
    replay([source], lake, observed_on="mastodon.social", pseudonymizer=P)
    sent = replay_to_kafka(
        [source], kafka=kafka, topic=topic, observed_on="mastodon.social", pseudonymizer=P
    )
    producer = raw_producer(kafka)
    clear = b'{"acct": "alice@example.social", "display_name": "Alice Example"}'
    producer.produce(topic, clear, key=b"foreign", partition=2)
    producer.flush(30)
    stats = sink_once(kafka, topic, group, lake)
    assert (stats.posts, stats.dead) == (sent.written, 1)
    (letter,) = dead_letters(lake, stats)
    assert letter["value"] is None and letter["partition"] == 2
    dead_dir = Path(lake) / "_tootlake" / "dead-letter"
    assert b"alice" not in b"".join(p.read_bytes() for p in dead_dir.iterdir())
    assert_lake_at_end(lake, kafka, topic)


def test_garbage_with_a_forged_key_id_neither_stops_the_sink_nor_decides_the_lakes_mode(
    kafka, topic, group, tmp_path
):
    producer = raw_producer(kafka)
    for partition in range(4):
        producer.produce(
            topic, b"not avro", partition=partition, headers=[(KEY_ID_HEADER, b"forged\n\x1b")]
        )
    producer.flush(30)
    n = produce(unique_events(40, tag="f"), kafka=kafka, topic=topic, recorder=Recorder(RunStats()))
    lake = str(tmp_path / "lake")
    stats = sink_once(kafka, topic, group, lake)
    assert (stats.posts, stats.dead) == (n.written, 4)
    assert lake_key_id(lake) is None  # raw, as its records are
    assert_lake_at_end(lake, kafka, topic)


def test_a_record_with_a_forged_key_id_stops_the_sink_in_one_clean_line_and_claims_nothing(
    kafka, topic, group, tmp_path
):
    """An envelope whose key-id header is no key id (no producer of ours wrote it): the sink
    cannot tell the record's mode, so it stops before writing, as for a mismatched mode; its
    message quotes the header cut and escaped, and the new lake is claimed by no mode."""
    (post,) = unique_posts(1, tag="k")
    producer = raw_producer(kafka)
    forged = b"forged\n\x1b[2J" + b"x" * 500
    producer.produce(topic, single_object_encoder()(post), headers=[(KEY_ID_HEADER, forged)])
    producer.flush(30)
    lake = str(tmp_path / "lake")
    with pytest.raises(ConfigError, match="header is not a key id") as raised:
        sink_once(kafka, topic, group, lake)
    message = str(raised.value)
    assert "\x1b" not in message and "\n" not in message and len(message) < 400
    assert lake_key_id(lake) is None


def test_a_topic_the_cluster_lacks_is_a_one_line_error_for_a_draining_sink(kafka, group, tmp_path):
    """A misspelt --topic: `sink --until-idle` found nothing and exited 0 as if it had drained
    the topic. It now stops with an error naming the topic, and asking did not create it
    (the test broker auto-creates topics)."""
    from confluent_kafka.admin import AdminClient

    missing = f"no-such-topic-{os.getpid()}-{group}"
    lake = str(tmp_path / "lake")
    done = subprocess.run(
        sink_command(kafka, missing, group, lake, "--until-idle", "1"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert f"Kafka at {kafka} has no topic {missing!r}: check --topic" in error
    assert "Traceback" not in done.stderr
    topics = AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=10).topics
    assert missing not in topics


# -- the producer --------------------------------------------------------------------------


def _huge_event(tag: str) -> Event:
    (event,) = unique_events(1, tag=tag)
    status = msgspec.json.decode(msgspec.json.encode(event.status.data))
    status["id"] = event.status.id
    status["created_at"] = event.status.created_at.isoformat()
    status["content"] = "<p>" + "word " * 400_000 + "</p>"  # a 2 MB post (Akkoma allows it)
    return Event(UPDATE, event.observed_on, status=_valid(status), where=f"huge:{tag}")


def test_a_post_too_large_for_kafka_is_a_reject_not_a_hang(kafka, topic, group, tmp_path):
    """A post over the producer's message.max.bytes (1 MB): librdkafka refuses it in produce().
    The producer must neither hang in close() nor stop: the post becomes a reject that says
    why, the others go on, and every event is acknowledged."""
    events = list(unique_events(6, tag="z"))
    events.insert(3, huge := _huge_event("z"))
    acked: list[str] = []
    events = [msgspec.structs.replace(e, ack=lambda w=e.where: acked.append(w)) for e in events]
    done: list[Any] = []

    def run() -> None:
        try:
            done.append(
                produce(iter(events), kafka=kafka, topic=topic, recorder=Recorder(RunStats()))
            )
        except BaseException as exc:
            done.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(90)
    assert done, "produce() hung with a post too large for Kafka"
    assert isinstance(done[0], RunStats), done[0]
    assert sorted(acked) == sorted(e.where for e in events)
    lake = str(tmp_path / "lake")
    stats = sink_once(kafka, topic, group, lake)
    assert (stats.posts, stats.rejects, stats.dead) == (6, 1, 0)
    ((reason, raw),) = open_lake(lake).execute("SELECT reason, raw FROM rejects").fetchall()
    assert "too large for Kafka" in reason and huge.status.uri in raw
    assert_lake_at_end(lake, kafka, topic)


def test_schema_ids_of_foreign_schemas_in_a_shared_registry_are_dead_letters(
    kafka, topic, group, tmp_path
):
    """A shared registry holds other teams' schemas: a message whose schema id names a JSON
    Schema, a Protobuf schema, or an Avro schema that is no envelope is a dead letter with a
    short reason (fastavro's resolution error spells out both schemas, 40 KB a message), and
    the worker goes on."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    with registry_sim() as sim:  # (over a socket: tests/registry_sim.py)
        registry = SchemaRegistryClient({"url": sim.url})
        sent = replay_to_kafka(
            [REAL / "mastodonsocial.json"], kafka=kafka, topic=topic, schema_registry=sim.url
        )
        foreign = [
            registry.register_schema("other-value", Schema('{"type": "object"}', "JSON")),
            registry.register_schema("pb-value", Schema('syntax = "proto3";', "PROTOBUF")),
            registry.register_schema("text-value", Schema('"string"', "AVRO")),
        ]
        producer = raw_producer(kafka)
        for k in range(300):
            schema_id = foreign[k % len(foreign)]
            producer.produce(topic, b"\x00" + schema_id.to_bytes(4, "big") + b"\x06abc")
        producer.flush(30)
        lake = str(tmp_path / "lake")
        stats = sink_once(kafka, topic, group, lake, schema_registry=sim.url)
    assert (stats.posts, stats.dead) == (sent.written, 300)
    letters = dead_letters(lake, stats)
    assert len(letters) == 300 and all(len(d["error"]) <= 500 for d in letters)
    assert {d["error"].split(":")[0] for d in letters} == {
        f"schema id {foreign[0]} in the schema registry is unusable",
        f"schema id {foreign[1]} in the schema registry is unusable",
        "invalid Avro body",
    }
    assert_lake_at_end(lake, kafka, topic)
