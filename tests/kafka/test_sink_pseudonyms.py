"""Pseudonymised topics against a real broker: a pseudonymising producer marks every message
with its key id (`tootlake-key-id`), and a sink worker writes them only into a lake of that
key (a new lake takes it), never into a raw lake or one of another key; raw messages never go
into a pseudonymised lake. Refusals happen before anything is written."""

from __future__ import annotations

import re
from typing import Any

import pytest
from confluent_kafka import Consumer

from tests.conftest import REAL
from tootlake.errors import ConfigError
from tootlake.kafka.settings import KEY_ID_HEADER
from tootlake.kafka.sink import KafkaSinkWorker
from tootlake.lake import tables
from tootlake.lake.layout import POSTS_ALL
from tootlake.lake.pseudonyms import lake_key_id
from tootlake.lake.reader import open_lake
from tootlake.pipeline import Recorder, RunStats, produce, replay, replay_to_kafka
from tootlake.record.pseudonymize import Pseudonymizer

from .conftest import unique_events

pytestmark = pytest.mark.kafka
P = Pseudonymizer(bytes(range(32)))
SOURCE = REAL / "mastodonsocial.json"


def sink(kafka: str, topic: str, group: str, lake: str) -> Any:
    return KafkaSinkWorker(
        lake, kafka=kafka, topic=topic, group=group, until_idle=1.5,
        config={"session.timeout.ms": 6000},
    ).run()  # fmt: skip


def test_a_pseudonymised_topic_makes_a_pseudonymised_lake_and_refuses_raw_lakes(
    kafka, topic, group, tmp_path
):
    stats = replay_to_kafka(
        [SOURCE], kafka=kafka, topic=topic, observed_on="mastodon.social", pseudonymizer=P
    )
    assert stats.posts > 0
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": group + "-peek", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    message = None
    while message is None or message.error() is not None:
        message = consumer.poll(10)
    consumer.close()
    assert (KEY_ID_HEADER, P.key_id.encode()) in message.headers()

    fresh = str(tmp_path / "fresh")
    sink(kafka, topic, group, fresh)
    assert lake_key_id(fresh) == P.key_id
    accts = [row[0] for row in open_lake(fresh).execute("SELECT acct FROM posts").fetchall()]
    assert accts and all(re.fullmatch(r"[0-9a-f]{20}@[\w.:-]+", acct) for acct in accts)

    raw = str(tmp_path / "raw")
    replay([SOURCE], raw, observed_on="mastodon.social")
    before = tables.load(raw, POSTS_ALL).version()
    with pytest.raises(ConfigError, match=r"pseudonymised with key id .* is raw"):
        sink(kafka, topic, group + "-raw", raw)
    assert tables.load(raw, POSTS_ALL).version() == before


def test_raw_messages_never_go_into_a_pseudonymised_lake(kafka, topic, group, tmp_path):
    lake = str(tmp_path / "pseudo")
    replay([SOURCE], lake, observed_on="mastodon.social", pseudonymizer=P)
    before = tables.load(lake, POSTS_ALL).version()
    produce(unique_events(20), kafka=kafka, topic=topic, recorder=Recorder(RunStats()))
    with pytest.raises(ConfigError, match=r"holds a record raw .* pseudonymised with key id"):
        sink(kafka, topic, group, lake)
    assert tables.load(lake, POSTS_ALL).version() == before
