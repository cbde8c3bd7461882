"""A lake that cannot be written for a while does not end a collection: the collector keeps
the batches, uncommitted (the cursors wait), tries again, and the lake ends with what the
simulator published. The lake is on the test S3 server (moto), behind a proxy that answers
every request 403 for a few seconds, as S3 does to keys that expired (tests/s3_faults.py)."""

from __future__ import annotations

import logging
import time

import pytest

from tests import lakes
from tests.s3_faults import faulty_s3
from tootlake.errors import LakeError
from tootlake.lake.writer import LakeWriter
from tootlake.simulate import InstanceSettings
from tootlake.sources.fleet import InstanceSpec

from .conftest import Running, all_connected, assert_lake_matches, wait_for

TOKEN = "s3cr3t-TOKEN-value"
s3_lake = lakes.s3_lake  # the fixture, for this module


def test_a_lake_refusing_writes_for_a_while_loses_nothing(
    fediverse, s3_lake, tmp_path, monkeypatch, caplog
):
    sim = fediverse(instances=2, seed=21, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    with faulty_s3(monkeypatch) as proxy:
        caplog.set_level(logging.WARNING, logger="tootlake.transports")
        collector = Running(
            [InstanceSpec(url, TOKEN) for url in fed.urls], s3_lake, state_dir=str(tmp_path)
        )
        wait_for(all_connected(sim), what="two streams")
        sim.call(fed.start_publishing, 100, edits=0.03, deletes=0.02)
        time.sleep(2.5)  # (a commit a second: some land before the outage)
        proxy.refuse()
        time.sleep(5)
        proxy.forward()
        time.sleep(2.5)
        sim.call(fed.stop_publishing)
        collector.settle()
        result = collector.stop()
    truth = sim.call(fed.truth, include_opted_out=True)
    assert result.stats.write_failures >= 2
    assert len(truth.uris) > 500 and truth.deleted
    assert_lake_matches(s3_lake, truth)
    said = [r.getMessage() for r in caplog.records if r.name == "tootlake.transports"]
    assert len(said) == 2, said  # the outage's first failure, and its end
    assert "AccessDenied" in said[0] or "403" in said[0], said[0]
    assert said[1].startswith("Writing again after"), said[1]


def test_a_stop_while_the_lake_refuses_ends_the_run_with_the_error(
    fediverse, s3_lake, tmp_path, monkeypatch, caplog
):
    """The writer holds all it may (a small cap here) and the source waits; a stop still ends
    the collection: the last commit is tried once, and its error ends the run (the cursors did
    not move: the next run backfills)."""
    sim = fediverse(instances=2, seed=22, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    with faulty_s3(monkeypatch) as proxy:
        caplog.set_level(logging.WARNING, logger="tootlake.transports")
        sink = LakeWriter(s3_lake, max_bytes=20_000, max_age=1.0, sightings=True)
        collector = Running(
            [InstanceSpec(url, TOKEN) for url in fed.urls],
            s3_lake,
            state_dir=str(tmp_path),
            sink=sink,
        )
        wait_for(all_connected(sim), what="two streams")
        proxy.refuse()
        sim.call(fed.start_publishing, 100)
        wait_for(lambda: sink.held_bytes >= 20_000, what="the writer's cap")
        # Backpressure: the queue behind the writer, then the bridge, fill up, and the fleet
        # hands out nothing more while the simulator goes on publishing.
        collector.settle(quiet=1.5)
        with pytest.raises(LakeError, match="AccessDenied|403"):
            collector.stop(timeout=30)
        sim.call(fed.stop_publishing)
    assert sink.held_bytes < 2_000_000  # the cap held, give or take what was queued
    said = [r.getMessage() for r in caplog.records if r.name == "tootlake.transports"]
    assert len(said) == 1 and said[0].startswith("Cannot write the batches held"), said
