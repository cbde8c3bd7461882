"""A sink worker and a lake that cannot be written for a while (S3 answering 403 to everything,
through the proxy of tests/s3_faults.py), against the real broker and the test S3 server: the
worker keeps the batch that failed, pauses its partitions (it takes nothing more meanwhile,
also while it tries again, and stays in the group), tries again at a growing interval (once
per try, however many partitions failed), takes partitions assigned meanwhile, and once the
lake answers writes everything once; a stop or `until_idle` during the outage ends it with
the error, and the next worker starts from the lake's marks."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.s3_faults import faulty_s3
from tootlake.errors import LakeError
from tootlake.kafka.sink import KafkaSinkWorker, SinkWorkerStats, dead_letter_dir
from tootlake.lake.storage import storage_for
from tootlake.pipeline import Recorder, RunStats, produce

from .conftest import assert_each_post_once, assert_lake_at_end, unique_events

pytestmark = pytest.mark.kafka


def produce_unique(kafka: str, topic: str, n: int, tag: str) -> None:
    stats = produce(
        unique_events(n, tag=tag), kafka=kafka, topic=topic, recorder=Recorder(RunStats())
    )
    assert stats.written == n


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Worker:
    """A sink worker running on a thread of the test."""

    def __init__(self, lake: str, kafka: str, topic: str, group: str, **options: Any) -> None:
        options.setdefault("config", {"session.timeout.ms": 6000})
        self.worker = KafkaSinkWorker(lake, kafka=kafka, topic=topic, group=group, **options)
        self.error: BaseException | None = None
        self.stats: SinkWorkerStats | None = None
        self.thread = threading.Thread(target=self._run, name="test-sink", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.stats = self.worker.run()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the sink worker did not end within {timeout} s"


def next_worker_writes(
    lake: str, kafka: str, topic: str, group: str, rest: int, total: int, **options: Any
) -> None:
    """A new worker of the group, run until idle, writes the `rest` posts left (from the
    lake's marks), and the lake then holds each of `total` posts once and the topic's end."""
    again = Worker(lake, kafka, topic, group, until_idle=1.5, **options)
    again.join(120)
    assert again.error is None, repr(again.error)
    assert again.stats is not None and again.stats.posts == rest
    assert_each_post_once(lake, total)
    assert_lake_at_end(lake, kafka, topic)


def start_sink(
    lake: str, kafka: str, topic: str, group: str, n: int, **options: Any
) -> tuple[Worker, SinkWorkerStats]:
    """`n` posts produced, a worker started on them (flushing at max_age 0.3 s) and the posts
    in the lake: the worker, and its live stats."""
    produce_unique(kafka, topic, n, "a")
    sink = Worker(lake, kafka, topic, group, max_age=0.3, **options)
    stats = sink.worker.stats
    wait_for(lambda: stats.posts >= n, f"the first {n} posts in the lake")
    return sink, stats


def refuse_writes(
    proxy: Any, kafka: str, topic: str, stats: SinkWorkerStats, n: int, failures: int
) -> None:
    """The lake refuses every write from now on; `n` more posts produced, and (when
    `failures`) that many failed flushes waited for."""
    proxy.refuse()
    produce_unique(kafka, topic, n, "b")
    if failures:
        what = "a failed flush" if failures == 1 else f"{failures} failed flushes"
        wait_for(lambda: stats.write_failures >= failures, what)


def test_a_lake_refusing_writes_for_a_while_loses_nothing_and_doubles_nothing(
    kafka, topic, group, s3_lake, monkeypatch, caplog
):
    with faulty_s3(monkeypatch) as proxy:
        caplog.set_level(logging.WARNING, logger="tootlake.transports")
        sink, stats = start_sink(s3_lake, kafka, topic, group, 300)
        # (a failure, then the next try a second later: by then the partitions are paused)
        refuse_writes(proxy, kafka, topic, stats, 200, failures=2)
        received = stats.messages
        produce_unique(kafka, topic, 500, "c")
        time.sleep(2)  # (a consumer not paused takes them within a few ms)
        assert stats.messages == received, "the worker took messages while it could not write"
        wait_for(lambda: stats.write_failures >= 3, "a third failed flush")
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(2)
        waiting = (time.process_time() - cpu) / (time.monotonic() - wall)
        assert waiting < 0.2, f"the worker used {waiting:.0%} of a core waiting for the lake"
        assert sink.thread.is_alive() and sink.error is None
        proxy.forward()
        wait_for(lambda: stats.posts >= 1000, "all 1000 posts in the lake", 120)
        sink.worker.stop.set()
        sink.join(120)
        assert sink.error is None, repr(sink.error)
        assert sink.stats is not None and sink.stats.write_failures >= 3
        assert sink.stats.messages == 1000
        assert_each_post_once(s3_lake, 1000)
        assert_lake_at_end(s3_lake, kafka, topic)
    said = [r.getMessage() for r in caplog.records if r.name == "tootlake.transports"]
    assert len(said) == 2, said  # the outage's first failure, and its end
    assert "AccessDenied" in said[0] or "403" in said[0], said[0]
    assert said[1].startswith("Writing again after"), said[1]


def test_a_stop_while_the_lake_refuses_ends_the_worker_and_the_next_one_writes_the_rest(
    kafka, topic, group, s3_lake, monkeypatch
):
    with faulty_s3(monkeypatch) as proxy:
        sink, stats = start_sink(s3_lake, kafka, topic, group, 300)
        refuse_writes(proxy, kafka, topic, stats, 200, failures=1)
        sink.worker.stop.set()
        sink.join(60)
        assert isinstance(sink.error, LakeError), repr(sink.error)
        assert "Cannot write the last batches" in str(sink.error)
        assert "AccessDenied" in str(sink.error) or "403" in str(sink.error)
    # the lake answers again: a new worker of the group starts at the marks
    next_worker_writes(s3_lake, kafka, topic, group, 200, 500)


def test_the_partitions_stay_paused_while_a_held_batch_is_tried_again(
    kafka, topic, group, s3_lake, monkeypatch
):
    """A held batch tried again is in flight; the partitions stay paused meanwhile (they were
    resumed for each try, each letting in a poll's worth: 3,000 messages in 24 tries)."""
    with faulty_s3(monkeypatch) as proxy:
        sink, stats = start_sink(s3_lake, kafka, topic, group, 100)
        worker = sink.worker
        worker._keep.first = worker._keep.most = 0.3  # (many tries in a short test)
        refuse_writes(proxy, kafka, topic, stats, 50, failures=2)
        received = stats.messages
        produce_unique(kafka, topic, 3000, "c")
        before = stats.write_failures
        wait_for(lambda: stats.write_failures >= before + 20, "20 more failed tries")
        taken = stats.messages - received
        proxy.forward()
        wait_for(lambda: stats.posts >= 3150, "all 3150 posts in the lake", 120)
        worker.stop.set()
        sink.join(60)
        assert sink.error is None, repr(sink.error)
        assert_each_post_once(s3_lake, 3150)
    assert taken == 0, f"{taken} messages taken during the outage"


def hold_all_busy(worker: KafkaSinkWorker, proxy: Any, kafka: str, topic: str) -> int:
    """Make the lake refuse, and the flushes of every partition that received messages fail
    together: they are submitted at once only when all are due at once (a first failure
    pauses the rest unflushed). How many partitions that is (the producer decides)."""
    proxy.refuse()
    worker.max_age = 3600.0
    received = worker.stats.messages
    produce_unique(kafka, topic, 200, "b")
    wait_for(lambda: worker.stats.messages >= received + 200, "the 200 messages received")
    busy = sum(1 for b in dict(worker._buffers).values() if b.offsets)
    time.sleep(1)  # (every buffer older than the max_age set next: all due at the same check)
    worker.max_age = 0.3
    wait_for(lambda: len(worker._held) == busy, f"the {busy} busy partitions held", 30)
    return busy


def test_one_failed_try_of_several_partitions_counts_once_and_waits_1_s(
    kafka, topic, group, s3_lake, monkeypatch
):
    with faulty_s3(monkeypatch) as proxy:
        sink, stats = start_sink(s3_lake, kafka, topic, group, 100)
        worker = sink.worker
        busy = hold_all_busy(worker, proxy, kafka, topic)
        wait, failures = worker._keep._wait, stats.write_failures
        proxy.forward()
        worker.stop.set()
        sink.join(120)
    assert (wait, failures) == (1.0, 1), f"{busy} partitions failed together"


def test_partitions_assigned_during_an_outage_are_taken_and_written_once_it_ends(
    kafka, topic, group, s3_lake, monkeypatch
):
    """Partitions come back to a worker during an outage (here from a consumer that joins the
    group, then leaves): the lake's marks cannot be read; the worker starts at the group's
    offsets and carries on (it ended, reading the marks in the assignment callback)."""
    from confluent_kafka import Consumer

    with faulty_s3(monkeypatch) as proxy:
        sink, stats = start_sink(s3_lake, kafka, topic, group, 100)
        refuse_writes(proxy, kafka, topic, stats, 50, failures=1)
        other = Consumer(
            {
                "bootstrap.servers": kafka,
                "group.id": group,
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": 6000,
                "enable.auto.commit": False,  # (as a sink worker: it commits after the lake)
            }
        )
        other.subscribe([topic])
        deadline = time.monotonic() + 60
        while not other.assignment() and time.monotonic() < deadline:
            other.poll(0.2)
        assert other.assignment(), "the other member got nothing"
        wait_for(lambda: stats.revoked >= 1, "a revoke in the worker")
        other.close()  # its partitions go back to the worker
        wait_for(lambda: stats.assigned >= 6, "the partitions back in the worker")
        produce_unique(kafka, topic, 50, "c")
        time.sleep(2)
        assert sink.thread.is_alive() and sink.error is None, repr(sink.error)
        proxy.forward()
        wait_for(lambda: stats.posts >= 200, "all 200 posts in the lake", 120)
        sink.worker.stop.set()
        sink.join(120)
        assert sink.error is None, repr(sink.error)
        assert_each_post_once(s3_lake, 200)
        assert_lake_at_end(s3_lake, kafka, topic)


def test_until_idle_ends_a_worker_whose_lake_stays_out_of_reach(
    kafka, topic, group, s3_lake, monkeypatch
):
    """A batch run (`until_idle`) counts an outage as idle: it ends with the error."""
    with faulty_s3(monkeypatch) as proxy:
        sink, stats = start_sink(s3_lake, kafka, topic, group, 100, until_idle=3.0)
        refuse_writes(proxy, kafka, topic, stats, 50, failures=0)
        sink.join(60)
        assert isinstance(sink.error, LakeError), repr(sink.error)
        assert stats.write_failures >= 1


def _garbage(kafka: str, topic: str, partition: int, n: int, tag: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka})
    for i in range(n):
        producer.produce(topic, value=f"not avro {tag} {i}".encode(), partition=partition)
    assert producer.flush(30) == 0


def test_a_buffer_of_partition_0_alone_is_flushed_at_max_age(kafka, topic, group, tmp_path):
    """`_Partitions.due` says `any(self._old(now))` (and `any(self._full())`): a generator of
    partition numbers, and partition 0 is falsy. When partition 0 is the only one due (a
    one-partition topic, or traffic on partition 0 alone), max_age never flushes it."""
    sink = Worker(str(tmp_path / "lake"), kafka, topic, group, max_age=0.3)
    try:
        _garbage(kafka, topic, 0, 5, "zero")
        wait_for(lambda: sink.worker.stats.messages >= 5, "the messages received", 60)
        time.sleep(5)
        flushed = sink.worker.stats.dead
    finally:
        sink.worker.stop.set()
        sink.join(60)
    assert sink.error is None, repr(sink.error)
    assert sink.stats is not None and sink.stats.dead == 5  # (flushed at the stop)
    assert flushed == 5, "partition 0's buffer was not flushed at max_age (5 s after 0.3 s)"


def _dead_letter_offsets(lake: str) -> list[int]:
    storage = storage_for(lake)
    return [
        json.loads(line)["offset"]
        for path in storage.list(dead_letter_dir(lake), suffix=".jsonl")
        for line in storage.read(path).decode().splitlines()
    ]


def test_dead_letters_read_again_from_the_groups_offsets_are_not_written_again(
    kafka, topic, group, s3_lake, monkeypatch, caplog
):
    """A worker wrote its batches to the lake but not the group's offsets (killed between;
    here it never commits them), then a worker is assigned the partitions during an outage: it
    cannot read the marks, so it starts at the group's offsets (the topic's start) and reads
    again what the lake holds, in other batches. The dead letters at or below posts_all's mark
    are in files already: none is written or counted again (they were, under another file's
    name: some in two files), and no "another writer" is reported (none was)."""
    with faulty_s3(monkeypatch) as proxy:
        with monkeypatch.context() as patched:
            patched.setattr(KafkaSinkWorker, "_commit_offsets", lambda self, *a, **k: None)
            first = Worker(s3_lake, kafka, topic, group, max_age=0.3)
            for n, tag in enumerate("ab", 1):  # two flushes of partition 0, two files
                produce_unique(kafka, topic, 50, tag)
                _garbage(kafka, topic, 0, 3, tag)
                wait_for(lambda n=n: first.worker.stats.dead >= 3 * n, f"{3 * n} dead letters")
                wait_for(lambda n=n: first.worker.stats.posts >= 50 * n, f"{50 * n} posts")
            first.worker.stop.set()
            first.join(60)
        assert first.error is None, repr(first.error)
        assert sorted(_dead_letter_offsets(s3_lake)) == sorted(set(_dead_letter_offsets(s3_lake)))
        assert len(_dead_letter_offsets(s3_lake)) == 6
        read_lake_mode = KafkaSinkWorker._read_lake_mode

        def then_refuse(worker: KafkaSinkWorker) -> None:
            read_lake_mode(worker)  # (a worker starting during an outage stops here)
            proxy.refuse()  # the outage begins before it joins the group

        monkeypatch.setattr(KafkaSinkWorker, "_read_lake_mode", then_refuse)
        caplog.set_level(logging.INFO, logger="tootlake.kafka.sink")
        second = Worker(s3_lake, kafka, topic, group, max_age=3600.0)
        stats = second.worker.stats
        wait_for(lambda: stats.messages >= 106, "every message read again", 60)
        second.worker.max_age = 0.3  # (one batch per partition: not cut as the first worker's)
        wait_for(lambda: stats.write_failures >= 1, "a failed flush")
        proxy.forward()
        wait_for(lambda: not second.worker._held, "the held batches in the lake", 60)
        second.worker.stop.set()
        second.join(60)
    assert second.error is None, repr(second.error)
    again = second.stats
    assert again is not None and (again.dead, again.commits, again.skipped) == (0, 0, 100)
    offsets = _dead_letter_offsets(s3_lake)
    assert len(offsets) == len(set(offsets)) == 6, offsets
    said = [r.getMessage() for r in caplog.records if r.name == "tootlake.kafka.sink"]
    assert any("cannot read the lake's marks" in line for line in said), said
    assert not [line for line in said if "another writer" in line]
    assert_each_post_once(s3_lake, 100)


def test_a_stop_with_nothing_unwritten_during_an_outage_ends_without_an_error(
    kafka, topic, group, s3_lake, monkeypatch, caplog
):
    """On the way out the worker reads the marks to bring the group's offsets up to them (for
    the lag it shows): with the lake out of reach it says so and ends normally (it ended
    with the LakeError and no summary, though nothing was left unwritten)."""
    with faulty_s3(monkeypatch) as proxy:
        sink, stats = start_sink(s3_lake, kafka, topic, group, 50)
        proxy.refuse()
        caplog.set_level(logging.WARNING, logger="tootlake.kafka.sink")
        sink.worker.stop.set()
        sink.join(60)
    assert sink.error is None, repr(sink.error)
    assert sink.stats is not None and sink.stats.posts == 50 and stats.write_failures == 0
    said = [r.getMessage() for r in caplog.records if r.name == "tootlake.kafka.sink"]
    assert any("cannot read the lake's marks to bring the group's offsets" in s for s in said)
