"""Sink workers against a real broker, on a local and an S3 lake: the same lake as the embedded
path (posts, deletes, sightings and rejects), exactly once through crashes (SIGKILL, a crash
between a batch's Delta commits, a crash between the Delta commits and the group offsets),
SIGTERM, a rebalance from one worker to two, four workers committing to one S3 lake at once,
a commit whose S3 reply is lost, and dead letters."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import REAL
from tests.registry_sim import registry_sim
from tests.s3_faults import faulty_s3
from tests.smalllake import write_inputs
from tootlake.analysis import open_lake
from tootlake.analysis.report import build_report, report_as_dict
from tootlake.kafka.encode import single_object_encoder
from tootlake.kafka.producer import KafkaTransport
from tootlake.kafka.sink import KafkaSinkWorker, SinkWorkerStats
from tootlake.lake import tables
from tootlake.lake.layout import REJECTS
from tootlake.lake.storage import storage_for
from tootlake.lake.writer import LakeWriter
from tootlake.pipeline import Recorder, RunStats, produce, replay, replay_to_kafka, run
from tootlake.record import Delete, Sighting, reject_arrow_schema
from tootlake.transports import Batch

from .conftest import (
    PARTITIONS,
    REAL_FILES,
    SinkProcess,
    assert_each_post_once,
    assert_each_record_once,
    assert_lake_at_end,
    committed_offsets,
    end_offsets,
    lake_marks,
    mixed_records,
    real_rejects,
    sink_command,
    table_versions,
    unique_events,
    unique_posts,
    version_counts,
)

pytestmark = pytest.mark.kafka
HERE = Path(__file__).resolve().parent


def sink_once(kafka: str, topic: str, group: str, lake: str, **options: Any) -> SinkWorkerStats:
    """Run a sink worker in this process until the topic is drained."""
    options.setdefault("until_idle", 1.5)
    options.setdefault("config", {"session.timeout.ms": 6000})
    return KafkaSinkWorker(lake, kafka=kafka, topic=topic, group=group, **options).run()


def produce_unique(kafka: str, topic: str, n: int, tag: str = "") -> None:
    stats = produce(
        unique_events(n, tag=tag), kafka=kafka, topic=topic, recorder=Recorder(RunStats())
    )
    assert stats.written == n  # (posts, and versions of edited ones)


def report_of(lake: str) -> dict:
    return report_as_dict(build_report(lake))


def send(kafka: str, topic: str, records: list[Any]) -> None:
    transport = KafkaTransport(kafka, topic)
    for k in range(0, len(records), 500):
        transport.send(Batch(records[k : k + 500]))
    transport.close(timeout=60)


def test_consent_gates_apply_before_kafka_as_in_the_embedded_pipeline(
    kafka, topic, group, tmp_path
):
    """`replay --kafka --consent opt-in --skip-bots`: the gates run where records are made, so
    the topic holds only what the embedded replay stores, and the same posts reach the lake."""
    from tootlake.record import Consent

    policy = Consent("opt-in", skip_bots=True)
    files = [REAL / name for name in REAL_FILES]
    embedded = str(tmp_path / "embedded")
    here = replay(files, embedded, consent=policy)
    sent = replay_to_kafka(files, kafka=kafka, topic=topic, consent=policy)
    assert dict(sent.skipped) == dict(here.skipped) and sent.skipped["not_indexable"] > 0
    through = str(tmp_path / "through")
    stats = sink_once(kafka, topic, group, through)
    assert stats.posts == here.written
    query = "SELECT uri, consent FROM posts ORDER BY uri"
    rows = open_lake(through).execute(query).fetchall()
    assert rows == open_lake(embedded).execute(query).fetchall()
    assert rows and {consent for _, consent in rows} == {"opt-in"}


def test_replaying_through_kafka_gives_the_embedded_lake(kafka, topic, group, lake_url, tmp_path):
    files = [REAL / name for name in REAL_FILES]
    embedded = str(tmp_path / "embedded")
    replay(files, embedded)
    replay_to_kafka(files, kafka=kafka, topic=topic)
    stats = sink_once(kafka, topic, group, lake_url)
    # malformed.json holds one status that cannot become a post: a reject, on Kafka too
    assert (stats.messages, stats.posts, stats.rejects, stats.dead) == (480, 479, 1, 0)
    assert report_of(lake_url) == report_of(embedded)
    # the very same rows, each written once: posts_all, not only the deduplicating view
    assert version_counts(lake_url) == version_counts(embedded)
    query = "SELECT * EXCLUDE (rejected_at) FROM rejects ORDER BY ALL"
    assert open_lake(lake_url).execute(query).fetchall() == (
        open_lake(embedded).execute(query).fetchall()
    )
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)
    # the offsets are in the lake: each partition's last offset is posts_all's mark
    assert_lake_at_end(lake_url, kafka, topic)
    assert stats.commits >= 4 and stats.skipped == 0


def test_deletes_and_sightings_reach_their_tables_as_in_the_embedded_lake(
    kafka, topic, group, tmp_path
):
    # deletes: the small lake's recording, with an SSE capture deleting one post
    inputs = write_inputs(tmp_path / "inputs")
    embedded, through_kafka = str(tmp_path / "embedded"), str(tmp_path / "kafka")
    replay(inputs, embedded, sink=LakeWriter(embedded, sightings=True))
    replay_to_kafka(inputs, kafka=kafka, topic=topic)
    # sightings: the collector's dedupe, the same posts seen again on another instance
    seen_twice = list(unique_events(30, tag="s"))
    for event in list(seen_twice):
        again = msgspec.structs.replace(event.status, id=f"9{event.status.id}")
        seen_twice.append(type(event)(event.kind, "elsewhere.example", status=again, where="again"))
    run(
        seen_twice,
        LakeWriter(embedded, sightings=True),
        recorder=Recorder(RunStats(), dedupe=True),
    )
    stats = produce(
        seen_twice, kafka=kafka, topic=topic, recorder=Recorder(RunStats(), dedupe=True)
    )
    assert stats.sightings == 30
    sink_once(kafka, topic, group, through_kafka, sightings=True)
    for query in (
        "SELECT * EXCLUDE (deleted_at) FROM deletes ORDER BY ALL",
        "SELECT * EXCLUDE (seen_at) FROM sightings_all ORDER BY ALL",
        "SELECT uri, text FROM posts ORDER BY ALL",
    ):
        expected = open_lake(embedded).execute(query).fetchall()
        assert open_lake(through_kafka).execute(query).fetchall() == expected, query
    # reach_delay measures from each sighting's seen_at: when the two paths ran, not the data
    ours, theirs = report_of(through_kafka), report_of(embedded)
    assert len(ours.pop("reach_delay")) == len(theirs.pop("reach_delay"))
    assert ours == theirs


@pytest.mark.slow
def test_sink_killed_with_sigkill_mid_stream_then_restarted_writes_each_post_once(
    kafka, topic, group, lake_url
):
    n = 20_000
    produce_unique(kafka, topic, n)
    # static membership: the restarted worker takes its partitions back at once
    command = sink_command(kafka, topic, group, lake_url, "--max-bytes", "64KB",
                           "-X", f"group.instance.id=worker-{uuid.uuid4().hex[:6]}")  # fmt: skip
    # (its log is read as it comes: a pipe nobody read filled up and stopped the worker)
    first = SinkProcess([*command, "--until-idle", "30"])
    try:
        deadline = time.monotonic() + 120
        while _committed(kafka, group, topic) < 2000:
            assert first.process.poll() is None, "".join(first.log)
            assert time.monotonic() < deadline, "the sink wrote nothing"
            time.sleep(0.05)
        first.process.send_signal(signal.SIGKILL)
        first.finish(30)
    finally:
        first.kill()
    at_kill = _committed(kafka, group, topic)
    assert at_kill < n, "the sink had finished before it was killed: nothing was tested"
    second = SinkProcess([*command, "--until-idle", "2"])
    try:
        assert second.finish(600) == 0, "".join(second.log)
    finally:
        second.kill()
    assert_each_post_once(lake_url, n)
    assert_lake_at_end(lake_url, kafka, topic)
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)


def _committed(kafka: str, group: str, topic: str) -> int:
    """Group offsets committed, summed over the partitions (one with none counts 0, not the
    -1001 Kafka gives it)."""
    return sum(max(0, offset) for offset in committed_offsets(kafka, group, topic).values())


def crash(kafka: str, topic: str, group: str, lake: str, member: str, where: str) -> Any:
    """Run tests/kafka/crashing_sink.py (200 KB batches) until it dies at `where` in its third
    such flush; what it printed."""
    crashed = subprocess.run(
        [sys.executable, str(HERE / "crashing_sink.py"), kafka, topic, group, lake,
         str(200 * 1024), "3", where, "session.timeout.ms=6000", member],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert crashed.returncode == 137, crashed.stdout + crashed.stderr
    return json.loads(crashed.stdout)


def _next(mark: int | None) -> int:
    """The offset after a mark (0 for no mark)."""
    return 0 if mark is None else mark + 1


def restart(kafka: str, topic: str, group: str, lake: str, member: str) -> dict[str, Any]:
    """A normal `tootlake sink` after the crash, with other batch sizes; its JSON summary."""
    restarted = subprocess.run(
        [*sink_command(kafka, topic, group, lake, "--max-bytes", "300KB", "-X", member,
                       "--format", "json"), "--until-idle", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr
    return dict(json.loads(restarted.stdout))


def test_a_commit_whose_s3_reply_is_lost_writes_each_post_once(
    kafka, topic, group, s3_lake, monkeypatch
):
    """The S3 server did the PUT of a posts_all log entry; its reply never reached the sink.
    delta-rs' retry finds the entry, which holds the sink's own marks: the commit is in."""
    n = 600
    produce_unique(kafka, topic, n)
    entry = r"PUT \S*/posts_all/_delta_log/0{19}1\.json HTTP/1\.1"
    with faulty_s3(monkeypatch, lose=entry) as proxy:
        stats = sink_once(kafka, topic, group, s3_lake, max_bytes=64 * 1024)
        assert stats.commits >= 3
        assert_each_post_once(s3_lake, n)
        assert_lake_at_end(s3_lake, kafka, topic)
    assert proxy.lost, "the proxy lost no reply: the test tested nothing"


@pytest.mark.slow
def test_a_crash_between_a_batchs_delta_commits_writes_no_row_twice_and_skips_none(
    kafka, topic, group, lake_url
):
    records = mixed_records(2000, "c")
    send(kafka, topic, records)
    member = f"group.instance.id=crasher-{uuid.uuid4().hex[:6]}"
    crashed = crash(kafka, topic, group, lake_url, member, "before-posts_all")
    assert crashed, "no batch had rows for deletes, sightings or rejects"
    # The crashed batch is partly in the lake: some tables have it, posts_all does not.
    partition, last = crashed["partition"], crashed["last"]
    marks = lake_marks(lake_url, topic)
    assert marks["posts_all"][partition] is None or marks["posts_all"][partition] < last
    assert crashed["tables"] and all(marks[t][partition] == last for t in crashed["tables"])
    stats = restart(kafka, topic, group, lake_url, member)
    assert stats["skipped_rows"] > 0  # the rows of the crashed batch its tables held already
    assert_each_record_once(lake_url, records)
    assert_lake_at_end(lake_url, kafka, topic)
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)


@pytest.mark.slow
def test_a_crash_between_the_delta_commit_and_the_group_offsets_resumes_from_the_lake(
    kafka, topic, group, lake_url
):
    records = mixed_records(2000, "o")
    send(kafka, topic, records)
    member = f"group.instance.id=crasher-{uuid.uuid4().hex[:6]}"
    crashed = crash(kafka, topic, group, lake_url, member, "before-offsets")
    assert crashed, "the crashing worker finished first"
    # The lake is ahead of the group: resuming from the group's offsets would write it twice.
    marks = lake_marks(lake_url, topic)["posts_all"]
    group_offsets = committed_offsets(kafka, group, topic)
    for partition, offset in crashed["offsets"].items():
        assert marks[int(partition)] == offset - 1
        assert group_offsets[int(partition)] < offset
    stats = restart(kafka, topic, group, lake_url, member)
    # It read exactly what posts_all did not have: each partition from its mark on. (Rows may
    # still be skipped: the other flush thread may have been between commits at the crash.)
    ends = end_offsets(kafka, topic)
    unread = sum(end - _next(marks[p]) for p, end in ends.items())
    assert stats["messages"] == unread
    assert_each_record_once(lake_url, records)
    assert_lake_at_end(lake_url, kafka, topic)
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)


def test_sigterm_flushes_commits_and_exits(kafka, topic, group, tmp_path):
    n = 3000
    produce_unique(kafka, topic, n)
    lake = str(tmp_path / "lake")
    # nothing is due by size or age: only the shutdown flush writes
    sink = SinkProcess(
        sink_command(kafka, topic, group, lake, "--max-bytes", "1GB", "--max-age", "3600")
    )
    try:
        deadline = time.monotonic() + 120
        while not any(f"assigned {topic}[0,1,2,3]" in line for line in sink.log):
            assert sink.process.poll() is None and time.monotonic() < deadline, sink.log
            time.sleep(0.1)
        time.sleep(3)  # the 3,000 messages are fetched in well under a second
        assert sink.process.poll() is None
        assert committed_offsets(kafka, group, topic) == dict.fromkeys(range(4), -1001)  # none
        sink.process.send_signal(signal.SIGTERM)
        assert sink.finish(60) == 0, "".join(sink.log)
    finally:
        sink.kill()
    assert f"Sank {n:,} messages" in "".join(sink.out)
    assert_each_post_once(lake, n)
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)


@pytest.mark.slow
def test_a_rebalance_from_one_worker_to_two_writes_each_post_once(kafka, topic, group, lake_url):
    n = 8000
    produce_unique(kafka, topic, n // 2, tag="x")
    later = threading.Thread(target=lambda: [
        produce_unique(kafka, topic, n // 8, tag=f"y{k}") or time.sleep(1) for k in range(4)
    ])  # fmt: skip
    command = [
        *sink_command(kafka, topic, group, lake_url, "--max-bytes", "32KB"),
        "--until-idle",
        "5",
    ]
    workers = [SinkProcess(command)]
    try:
        deadline = time.monotonic() + 60
        while _committed(kafka, group, topic) < 500:
            assert workers[0].process.poll() is None and time.monotonic() < deadline, (
                "the first worker wrote nothing"
            )
            time.sleep(0.05)
        later.start()
        workers.append(SinkProcess(command))
        deadline = time.monotonic() + 600
        codes = [w.finish(max(1.0, deadline - time.monotonic())) for w in workers]
        later.join()
    finally:
        for w in workers:
            w.kill()
    first_log, second_log = ("".join(w.log) for w in workers)
    assert codes == [0, 0], first_log + second_log
    assert f"INFO assigned {topic}[0,1,2,3]" in first_log
    assert f"INFO revoked {topic}[" in first_log  # partitions moved to the second worker...
    moved = [line for line in second_log.splitlines() if f"INFO assigned {topic}[" in line]
    assert moved and moved[0] != f"INFO assigned {topic}[0,1,2,3]", second_log  # ...only some
    assert_each_post_once(lake_url, n)
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)


def test_garbage_goes_to_the_dead_letter_file_and_the_sink_goes_on(
    kafka, topic, group, lake_url, caplog
):
    from confluent_kafka import Producer

    encode = single_object_encoder()
    posts = unique_posts(200, tag="d")
    garbage = [b"\x00\x01garbage", b'{"json": true}', b"\xc3\x01" + b"\x00" * 8 + b"body", b""]
    producer = Producer({"bootstrap.servers": kafka})
    for k, post in enumerate(posts):
        if k % 50 == 7:
            producer.produce(topic, garbage[k // 50], key=b"same-key", partition=1)
        producer.produce(topic, encode(post), key=post.uri.encode())
    producer.flush(30)
    stats = sink_once(kafka, topic, group, lake_url)
    assert (stats.posts, stats.dead) == (200, 4)
    assert_each_post_once(lake_url, 200)
    storage = storage_for(lake_url)
    letters = [json.loads(line) for p in stats.dead_letter_files
               for line in storage.read(p).decode().splitlines()]  # fmt: skip
    assert sorted(base64.b64decode(d["value"]) for d in letters) == sorted(garbage)
    assert {(d["topic"], d["partition"]) for d in letters} == {(topic, 1)}
    assert all(d["error"] and isinstance(d["offset"], int) for d in letters)
    (path,) = stats.dead_letter_files
    assert f"/_tootlake/dead-letter/{topic}+1+" in path and path.endswith(".jsonl")
    warnings = [r for r in caplog.records if "not tootlake Avro" in r.getMessage()]
    assert len(warnings) == 1  # logged once per flush, not once per message
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)


def test_confluent_framed_messages_are_sunk_with_the_registry(kafka, topic, group, tmp_path):
    files = [REAL / "mastodonsocial.json", REAL / "timelines.jsonl"]
    embedded = str(tmp_path / "embedded")
    replay(files, embedded)
    lake = str(tmp_path / "lake")
    with registry_sim() as sim:  # (over a socket; producer and sink each with a client)
        replay_to_kafka(files, kafka=kafka, topic=topic, schema_registry=sim.url)
        stats = sink_once(kafka, topic, group, lake, schema_registry=sim.url)
    assert stats.dead == 0
    assert report_of(lake) == report_of(embedded)
    # without the registry the sink cannot know the schema: dead letters, not guesses
    blind = sink_once(kafka, topic, f"{group}-blind", str(tmp_path / "blind"))
    assert blind.dead == blind.messages == stats.messages


def test_rejects_sent_through_kafka_land_in_the_rejects_table_once(kafka, topic, group, lake_url):
    posts = unique_posts(60, tag="j")
    rejects = real_rejects(40)
    deleted = Delete("mastodon.social", "1", posts[0].uri, posts[0].ingested_at)
    seen = Sighting(posts[1].uri, "elsewhere.example", "42", posts[1].ingested_at)
    records = [*posts[:30], *rejects[:25], deleted, seen, *posts[30:], *rejects[25:]]
    acked: list[str] = []
    transport = KafkaTransport(kafka, topic)
    transport.send(Batch(records[:50], [lambda: acked.append("first")]))
    transport.send(Batch(records[50:], [lambda: acked.append("second")]))
    transport.close(timeout=60)
    assert acked == ["first", "second"]
    assert sum(end_offsets(kafka, topic).values()) == len(records)

    stats = sink_once(kafka, topic, group, lake_url)
    assert (stats.posts, stats.deletes, stats.sightings, stats.rejects, stats.dead) == (
        60, 1, 1, 40, 0,
    )  # fmt: skip
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)
    # the Delta table: the reject schema plus `date`, partitioned by the UTC day of rejected_at
    delta = tables.load(lake_url, REJECTS)
    assert delta.metadata().partition_columns == ["date"]
    data = delta.to_pyarrow_table()
    assert data.schema.remove(data.schema.get_field_index("date")).equals(reject_arrow_schema())
    assert set(data.column("date").to_pylist()) == {dt.date(2024, 5, 1), dt.date(2024, 5, 2)}
    rows = data.drop_columns(["date"]).to_pylist()
    assert sorted(rows, key=_reject_order) == sorted(
        (msgspec.structs.asdict(r) for r in rejects), key=_reject_order
    )
    # and through the lake's view, as analysts read them
    assert open_lake(lake_url).execute("SELECT count(*) FROM rejects").fetchone() == (40,)

    # Read by another group: the app ids name the topic and partition, not the group, so the
    # new group starts where the lake ends and writes nothing again.
    before = table_versions(lake_url)
    again = sink_once(kafka, topic, f"{group}-again", lake_url)
    assert (again.messages, again.commits) == (0, 0) and table_versions(lake_url) == before
    assert open_lake(lake_url).execute("SELECT count(*) FROM rejects").fetchone() == (40,)
    assert_each_post_once(lake_url, 60)


def _reject_order(row: dict[str, Any]) -> tuple[str, str]:
    return (row["where"], row["rejected_at"].isoformat())


@pytest.mark.slow
def test_four_workers_commit_to_one_s3_lake_at_once_each_record_once(kafka, topic, group, s3_lake):
    records = mixed_records(2400, "w")
    half = len(records) // 2
    send(kafka, topic, records[:half])
    command = [
        *sink_command(kafka, topic, group, s3_lake, "--max-bytes", "100KB", "--format", "json"),
        "--until-idle",
        "8",
    ]
    workers: list[SinkProcess] = []
    try:
        workers += [SinkProcess(command) for _ in range(PARTITIONS)]
        # Once each worker owns a partition, the rest, so that all four have rows to commit.
        deadline = time.monotonic() + 120
        while not all(any(f"assigned {topic}[" in ln and "[]" not in ln for ln in w.log)
                      for w in workers):  # fmt: skip
            assert time.monotonic() < deadline, "the group did not give each worker a partition"
            time.sleep(0.2)
        rest = records[half:]
        for k in range(4):
            send(kafka, topic, rest[k * len(rest) // 4 : (k + 1) * len(rest) // 4])
            time.sleep(0.5)
        deadline = time.monotonic() + 600
        codes = [w.finish(max(1.0, deadline - time.monotonic())) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert codes == [0] * PARTITIONS, "".join(ln for w in workers for ln in w.log)
    outputs = ["".join(w.out) for w in workers]
    stats = [json.loads(out) for out in outputs]
    assert all(s["commits"] > 0 for s in stats), stats  # all four wrote to the lake
    # ...at the same time: posts_all's commits of the four partitions interleave
    history = sorted(tables.load(s3_lake, "posts_all").history(), key=lambda c: c["version"])
    partitions = [c["tootlake.partition"] for c in history]
    switches = sum(a != b for a, b in itertools.pairwise(partitions))
    assert set(partitions) == {"0", "1", "2", "3"} and switches > 3, partitions
    assert_each_record_once(s3_lake, records)
    assert_lake_at_end(s3_lake, kafka, topic)
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)


class _Consumer:
    """What the rebalance callbacks ask of a consumer, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []

    def incremental_unassign(self, partitions: list[Any]) -> None:
        self.calls.append(("incremental_unassign", [tp.partition for tp in partitions]))

    def unassign(self) -> None:
        self.calls.append(("unassign", []))

    def commit(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_the_rebalance_callbacks_give_partitions_up_themselves(tmp_path, strategy):
    """Left to confluent_kafka, a revoke first asks librdkafka for the rebalance protocol,
    which can block for ever when the revoke comes from close() (librdkafka issue 4041): a
    sink worker of test_four_workers_commit_to_one_s3_lake_at_once_each_record_once hung
    there. The callbacks now unassign as `_on_assign` assigns."""
    from confluent_kafka import TopicPartition

    from tootlake.kafka.sink import KafkaSinkWorker

    worker = KafkaSinkWorker(
        str(tmp_path / "lake"),
        kafka="127.0.0.1:1",
        topic="t",
        config={"partition.assignment.strategy": strategy},
    )
    consumer = _Consumer()
    worker._on_revoke(consumer, [TopicPartition("t", 0), TopicPartition("t", 2)])
    worker._on_lost(consumer, [TopicPartition("t", 1)])
    if strategy == "range":
        assert consumer.calls == [("unassign", []), ("unassign", [])]
    else:
        assert consumer.calls == [("incremental_unassign", [0, 2]), ("incremental_unassign", [1])]


class _LeavingConsumer(_Consumer):
    """A consumer the worker leaves while a rebalance is under way, as librdkafka behaves: the
    polls after `unsubscribe` first find nothing assigned but the member still in the group
    (the unsubscribe waits for the rebalance), then run partition 3's assignment callback,
    fetch a message, run the revoke callback, and the member leaves (its id is cleared).
    Records what is assigned, and the member id, when `close` comes."""

    def __init__(self, worker: Any, steps: list[str]) -> None:
        super().__init__()
        self.worker = worker
        self.steps = iter(steps)
        self.assigned: set[int] = set()
        self.member: str | None = "rdkafka-member-1"
        self.at_close: tuple[set[int], str | None] | None = None
        self.release = threading.Event()  # what `close` waits for, when it hangs

    def unsubscribe(self) -> None:
        self.calls.append(("unsubscribe", []))

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        from confluent_kafka import TopicPartition

        step = next(self.steps, "")
        self.calls.append(("consume " + step, sorted(self.assigned)))
        if step == "assign":
            self.worker._on_assign(self, [TopicPartition(self.worker.topic, 3)])
        elif step == "revoke":
            self.worker._on_revoke(self, [TopicPartition(self.worker.topic, 3)])
        elif step == "left":
            self.member = None
        return [object()] if step == "message" else []  # not a Message: adding it would fail

    def memberid(self) -> str | None:
        return self.member

    def incremental_assign(self, partitions: list[Any]) -> None:
        self.calls.append(("incremental_assign", [tp.partition for tp in partitions]))
        self.assigned |= {tp.partition for tp in partitions}

    def incremental_unassign(self, partitions: list[Any]) -> None:
        super().incremental_unassign(partitions)
        self.assigned -= {tp.partition for tp in partitions}

    def assignment(self) -> list[Any]:
        return sorted(self.assigned)

    def close(self) -> None:
        self.at_close = (set(self.assigned), self.member)
        self.calls.append(("close", sorted(self.assigned)))
        if "hang" in self.worker.topic:
            self.release.wait()


def _leaving_worker(tmp_path: Path, topic: str = "t", **config: Any) -> KafkaSinkWorker:
    worker = KafkaSinkWorker(
        str(tmp_path / "lake"),
        kafka="127.0.0.1:1",
        topic=topic,
        config={"partition.assignment.strategy": "cooperative-sticky", **config},
    )
    worker._leaving = True  # as run() sets it, once everything is committed
    return worker


def test_a_worker_leaves_the_group_before_it_closes_the_consumer(tmp_path):
    """A rebalance callback run inside close() can block for ever (librdkafka 4041, 4527,
    4884): a worker of test_four_workers_commit_to_one_s3_lake_at_once_each_record_once hung
    in CI, its last line the assignment of a partition another worker had just left. The
    worker now unsubscribes and polls until nothing is assigned and its member id is gone,
    so a rebalance under way ends in its own polls (the assignment only taken to be given
    back: no lake read, no buffer) and close() finds nothing to do."""
    worker = _leaving_worker(tmp_path)
    steps = ["", "", "assign", "message", "revoke", "left"]
    consumer = _LeavingConsumer(worker, steps)
    worker._leave(consumer)
    worker._close(consumer)
    assert consumer.calls == [
        ("unsubscribe", []),
        ("consume ", []),  # nothing assigned, but still a member: the rebalance goes on
        ("consume ", []),
        ("consume assign", []),
        ("incremental_assign", [3]),
        ("consume message", [3]),
        ("consume revoke", [3]),
        ("incremental_unassign", [3]),
        ("consume left", []),
        ("close", []),
    ]
    assert consumer.at_close == (set(), None)
    assert worker.stats.messages == 0 and worker.stats.assigned == 0  # the message dropped
    assert worker._buffers == {} and worker._consumer is None


def test_a_static_member_does_not_leave_the_group_on_its_way_out(tmp_path):
    """Static membership exists so that a restarted worker takes its partitions back with no
    rebalance: unsubscribing would send the LeaveGroup its close() leaves out."""
    worker = _leaving_worker(tmp_path, **{"group.instance.id": "worker-1"})
    consumer = _LeavingConsumer(worker, [])
    worker._leave(consumer)
    assert consumer.calls == []


def test_a_worker_that_cannot_leave_or_close_says_so_and_goes_on(tmp_path, monkeypatch, caplog):
    import tootlake.kafka.sink as sink

    monkeypatch.setattr(sink, "_LEAVE_TIMEOUT", 0.5)
    monkeypatch.setattr(sink, "_CLOSE_TIMEOUT", 0.5)
    worker = _leaving_worker(tmp_path, "t-hang")
    consumer = _LeavingConsumer(worker, ["assign"])  # and no revoke, ever
    # a close() called on the worker's own thread would hang this test: fail it instead
    threading.Timer(20, consumer.release.set).start()
    started = time.monotonic()
    worker._leave(consumer)
    worker._close(consumer)
    took = time.monotonic() - started
    consumer.release.set()
    assert took < 5 and consumer.at_close == ({3}, "rdkafka-member-1")
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == [
        "t-hang: this worker had not left the group after 0 s; closing all the same",
        "closing the Kafka consumer of t-hang did not end within 0 s; going on without it: "
        "what this worker received is in the lake, and the group drops the worker after its "
        "session timeout",
    ]


class _Recording(KafkaSinkWorker):
    """A worker that records, when it closes the consumer, what the group still gives it."""

    def _close(self, consumer: Any) -> None:
        self.at_close = (consumer.assignment(), consumer.memberid())
        super()._close(consumer)


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_a_sink_worker_has_left_the_group_when_it_closes_the_consumer(
    kafka, topic, group, tmp_path, strategy
):
    produce_unique(kafka, topic, 200)
    lake = str(tmp_path / "lake")
    leaving: list[int] = []
    worker = _Recording(
        lake, kafka=kafka, topic=topic, group=group, until_idle=1.5,
        config={"session.timeout.ms": 6000, "partition.assignment.strategy": strategy},
        on_leaving=lambda: leaving.append(worker.stats.commits),
    )  # fmt: skip
    stats = worker.run()
    assert worker.at_close == ([], None)
    assert leaving == [stats.commits] and stats.commits > 0  # called once all was committed
    assert_each_post_once(lake, 200)
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)


def test_sigusr1_prints_a_running_sinks_stacks_and_it_goes_on(kafka, topic, group, tmp_path):
    produce_unique(kafka, topic, 100)
    sink = SinkProcess(sink_command(kafka, topic, group, str(tmp_path / "lake")))
    try:
        deadline = time.monotonic() + 60
        while not any(f"assigned {topic}[" in line for line in sink.log):
            assert sink.process.poll() is None and time.monotonic() < deadline, sink.log
            time.sleep(0.1)
        sink.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not any("most recent call first" in line for line in sink.log):
            assert time.monotonic() < deadline, sink.log
            time.sleep(0.1)
        time.sleep(0.5)
        assert sink.process.poll() is None  # still running
        sink.process.send_signal(signal.SIGTERM)
        assert sink.finish(60) == 0, "".join(sink.log)
    finally:
        sink.kill()
    log = "".join(sink.log)
    assert "tootlake/kafka/sink.py" in log and "Current thread" in log  # the main thread's stack
    assert "Sank 100 messages" in "".join(sink.out)


def test_a_sink_stuck_on_its_way_out_prints_its_stacks_and_exits_1(tmp_path):
    """The watchdog the command line arms once everything is committed: a process blocked in
    C with the GIL held (where no Python code runs, as in a rebalance callback that hangs in
    librdkafka) still ends, with its stacks on stderr."""
    code = (
        "import time\n"
        "from tootlake.cli.command import arm_watchdog\n"
        "arm_watchdog(1.0)\n"
        "sum(range(10**12))\n"  # one C call that keeps the GIL for minutes
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and time.monotonic() - started < 20
    assert "Timeout (0:00:01)!" in done.stderr and "most recent call first" in done.stderr
