"""A sink worker whose schema registry fails or stalls for a while (tests/registry_sim.py, over
a real socket), against the real broker: the messages are not at fault, so the batch is held
and its partitions paused as in a lake outage (tests/kafka/test_sink_outage.py), and once the
registry answers everything is written once. A stalled registry does not hold the worker for
good (the client's default has no timeout); a stop during the outage ends it with the error."""

from __future__ import annotations

import logging
import re
import time

import pytest

from tests.registry_sim import RegistrySim, registry_sim
from tootlake.errors import RegistryUnavailable
from tootlake.pipeline import Recorder, RunStats, produce

from .conftest import (
    SinkProcess,
    assert_each_post_once,
    assert_lake_at_end,
    sink_command,
    unique_events,
)
from .test_sink_outage import Worker, next_worker_writes, produce_unique, wait_for

pytestmark = pytest.mark.kafka


def produce_framed(kafka: str, topic: str, registry: str, n: int, tag: str) -> None:
    """n posts in the Confluent wire format, their schema registered in `registry`."""
    stats = produce(
        unique_events(n, tag=tag), kafka=kafka, topic=topic, schema_registry=registry,
        recorder=Recorder(RunStats()),
    )  # fmt: skip
    assert stats.written == n


def stalled(kafka: str, topic: str, group: str, lake: str, registry: RegistrySim, n: int) -> Worker:
    """`n` framed posts produced, the registry stalled, and a worker started on them whose
    first flush has failed."""
    produce_framed(kafka, topic, registry.url, n, "a")
    registry.stall()
    sink = Worker(lake, kafka, topic, group, max_age=0.3, schema_registry=registry.url)
    wait_for(lambda: sink.worker.stats.write_failures >= 1, "a failed flush", 90)
    return sink


def test_a_registry_failing_for_a_while_holds_the_batches_and_loses_nothing(
    kafka, topic, group, tmp_path, caplog
):
    lake = str(tmp_path / "lake")
    with registry_sim() as registry:
        produce_framed(kafka, topic, registry.url, 200, "a")
        registry.fail()  # before the worker has fetched the schema
        caplog.set_level(logging.WARNING, logger="tootlake.transports")
        sink = Worker(lake, kafka, topic, group, max_age=0.3, schema_registry=registry.url)
        stats = sink.worker.stats
        wait_for(lambda: stats.write_failures >= 2, "two failed flushes")
        received = stats.messages
        produce_unique(kafka, topic, 100, "b")  # (single-object framing: no registry needed)
        time.sleep(2)  # (a consumer not paused takes them within a few ms)
        assert stats.messages == received, "the worker took messages while it could not decode"
        assert sink.thread.is_alive() and sink.error is None, repr(sink.error)
        assert stats.posts == 0 and stats.dead == 0  # held, not written, not dead letters
        registry.serve()
        wait_for(lambda: stats.posts >= 300, "all 300 posts in the lake", 120)
        sink.worker.stop.set()
        sink.join(60)
    assert sink.error is None, repr(sink.error)
    assert sink.stats is not None and (sink.stats.messages, sink.stats.dead) == (300, 0)
    assert_each_post_once(lake, 300)
    assert_lake_at_end(lake, kafka, topic)
    said = [r.getMessage() for r in caplog.records if r.name == "tootlake.transports"]
    assert len(said) == 2, said  # the outage's first failure, and its end
    assert "schema registry" in said[0].lower() and "503" in said[0], said[0]
    assert said[1].startswith("Writing again after"), said[1]


def test_a_stalled_registry_times_out_and_a_stop_ends_the_worker_with_the_error(
    kafka, topic, group, tmp_path, monkeypatch
):
    """A registry that takes the request and never answers: each try ends at the client's
    timeout (1 s here, 5 s by default), the worker holds the batch, and a stop ends it with
    the error; the next worker writes everything."""
    monkeypatch.setattr("tootlake.kafka.schema.REGISTRY_TIMEOUT", 1.0)
    lake = str(tmp_path / "lake")
    with registry_sim() as registry:
        sink = stalled(kafka, topic, group, lake, registry, 100)
        assert registry.requests >= 2  # (the client's own retries)
        sink.worker.stop.set()
        sink.join(90)
        assert isinstance(sink.error, RegistryUnavailable), repr(sink.error)
        assert "Cannot write the last batches" in str(sink.error)
        assert "Cannot reach the schema registry: timed out" in str(sink.error)
        registry.serve()
        next_worker_writes(lake, kafka, topic, group, 100, 100, schema_registry=registry.url)


def test_a_stop_during_a_registry_stall_ends_the_worker_within_seconds(
    kafka, topic, group, tmp_path
):
    """At the default timeouts, with every partition's flush waiting on a stalled registry
    (two flush threads): each try gives up after two requests of 5 s, the flushes after the
    first failure fail at once, and so do the stop's last tries. It took minutes (four tries
    of each request, no timeout, every partition asking in turn)."""
    lake = str(tmp_path / "lake")
    with registry_sim() as registry:
        sink = stalled(kafka, topic, group, lake, registry, 200)
        start = time.monotonic()
        sink.worker.stop.set()
        sink.join(120)
        took = time.monotonic() - start
    assert isinstance(sink.error, RegistryUnavailable), repr(sink.error)
    assert took < 25, f"the stop took {took:.0f} s"


def test_the_sink_command_rides_out_a_registry_outage_and_says_so(kafka, topic, group, tmp_path):
    """`tootlake sink` itself, in its own process: its registry fails at first (503), then
    serves; every post is written once, the log has the outage's start and end, and the
    summary counts the tries that failed (its only other test runs the command with a
    stand-in worker: tests/test_sink_summary_text.py)."""
    lake = str(tmp_path / "lake")
    with registry_sim() as registry:
        produce_framed(kafka, topic, registry.url, 100, "a")
        registry.fail()
        sink = SinkProcess(
            sink_command(kafka, topic, group, lake, "--schema-registry", registry.url,
                         "--max-age", "0.3", "--until-idle", "15")
        )  # fmt: skip
        wait_for(lambda: any("Cannot write the batches held" in x for x in sink.log), "the outage")
        registry.serve()
        assert sink.finish(120) == 0, "".join(sink.log)
    summary = "".join(sink.out)
    assert "Sank 100 messages" in summary and "100 posts" in summary, summary
    assert re.search(r"\. \d+ (try|tries) to write failed \(see the log\)\.", summary), summary
    assert any("Writing again after" in line for line in sink.log), "".join(sink.log)
    assert_each_post_once(lake, 100)
