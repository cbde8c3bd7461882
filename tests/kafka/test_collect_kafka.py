"""`collect --kafka`: the collector produces to the real broker, a sink worker writes the lake,
and the lake holds exactly what the simulated fediverse published."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.collect.conftest import (
    FAST,
    Running,
    all_connected,
    assert_lake_matches,
    fediverse,  # noqa: F401  (fixture)
    wait_for,
)
from tests.kafka.conftest import sink_command
from tootlake.simulate import InstanceSettings
from tootlake.sources.fleet import InstanceSpec

TOKEN = "kafka-collect-token"
pytestmark = pytest.mark.kafka


def test_collect_to_kafka_then_sink_gives_exactly_the_published_posts(
    fediverse,  # noqa: F811
    kafka,
    topic,
    group,
    tmp_path,
):
    sim = fediverse(instances=2, seed=11, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    specs = [InstanceSpec(url, TOKEN) for url in fed.urls]
    collector = Running(specs, str(tmp_path / "unused"), options=FAST, kafka=kafka, topic=topic)
    wait_for(all_connected(sim), what="two streams")
    sim.call(fed.start_publishing, 100, edits=0.03, deletes=0.02)
    time.sleep(3)
    cut = sim.call(fed.instances[0].cut, mid_event=True)  # a reconnect and its backfill
    time.sleep(2)
    sim.call(fed.stop_publishing)
    collector.settle()
    result = collector.stop()
    assert cut >= 1 and result.stats.posts > 100
    truth = sim.call(fed.truth, include_opted_out=True)

    lake = str(tmp_path / "lake")
    subprocess.run(
        sink_command(kafka, topic, group, lake, "--until-idle", "5", "--sightings"),
        check=True,
        capture_output=True,
        timeout=180,
    )
    assert_lake_matches(lake, truth)
    # with --kafka the collector writes no posts itself, only its cursors (beside the lake)
    assert not (tmp_path / "unused" / "posts").exists()
    assert (tmp_path / "unused" / "_tootlake" / "state").exists()
