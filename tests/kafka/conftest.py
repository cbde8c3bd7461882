"""A real Kafka broker for the suites in tests/kafka/, over real sockets on loopback.

The broker is `$TEST_KAFKA_BOOTSTRAP` when set (scripts/test.sh starts one with
scripts/kafka.sh); otherwise the session starts its own with scripts/kafka.sh on free ports and
stops and purges it at the end. A broker that cannot be started fails the tests: they are
never skipped. Each test gets its own topic (4 partitions) and consumer group.

The broker also has a SASL/PLAIN listener (`kafka_sasl`): `$TEST_KAFKA_SASL_BOOTSTRAP` (else
the PLAINTEXT port + 2, kafka.sh's default), user and password as kafka.sh sets them.

Sink suites run on a local and an S3 lake (`lake_url` from tests/lakes.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import all_real_statuses
from tests.lakes import lake_url, s3_lake  # noqa: F401  (fixtures: local and S3 lakes)
from tests.ports import free_port, free_port_pair
from tootlake.sources import UPDATE, Event

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
PARTITIONS = 4
_BOOTSTRAP = pytest.StashKey[str]()
_SASL_BOOTSTRAP = pytest.StashKey[str]()
_ENV = pytest.StashKey[dict]()


def _kafka_sh(command: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(KAFKA_SH), command, *args], env=env, capture_output=True, text=True, timeout=180
    )


def broker_env(config: pytest.Config) -> dict[str, str]:
    """The environment that makes scripts/kafka.sh act on the test broker."""
    return config.stash[_ENV]


@pytest.fixture(scope="session")
def kafka(request: pytest.FixtureRequest) -> str:
    """Bootstrap servers of the test broker."""
    config = request.config
    if _BOOTSTRAP in config.stash:
        return config.stash[_BOOTSTRAP]
    bootstrap = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if bootstrap:
        host, port = bootstrap.rsplit(":", 1)
        config.stash[_ENV] = {**os.environ, "KAFKA_PORT": port}
        config.stash[_SASL_BOOTSTRAP] = os.environ.get(
            "TEST_KAFKA_SASL_BOOTSTRAP", f"{host}:{int(port) + 2}"
        )
    else:
        port = str(free_port_pair())
        sasl_port = free_port()
        while sasl_port == int(port) + 1:  # the controller's
            sasl_port = free_port()
        env = {
            **os.environ,
            "KAFKA_PORT": port,
            "KAFKA_SASL_PORT": str(sasl_port),
            "KAFKA_NUM_PARTITIONS": str(PARTITIONS),
        }
        result = _kafka_sh("up", env)
        if result.returncode != 0:
            pytest.fail(
                f"Cannot start the test Kafka broker with {KAFKA_SH} up (KAFKA_PORT={port}):\n"
                f"{result.stdout}{result.stderr}",
                pytrace=False,
            )
        # stop it and delete its data when the session ends
        config.add_cleanup(
            lambda: _kafka_sh("down", {**env, "KAFKA_STOP_TIMEOUT": "10"}, "--purge")
        )
        bootstrap = f"127.0.0.1:{port}"
        config.stash[_ENV] = env
        config.stash[_SASL_BOOTSTRAP] = f"127.0.0.1:{sasl_port}"
    _wait_until_ready(bootstrap, 60)
    config.stash[_BOOTSTRAP] = bootstrap
    return bootstrap


def _wait_until_ready(bootstrap: str, timeout: float) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=5)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"The test Kafka broker at {bootstrap} does not answer: {exc}", pytrace=False
                )
            time.sleep(0.5)


@dataclass(frozen=True)
class SaslListener:
    """The test broker's SASL/PLAIN listener (scripts/kafka.sh, KAFKA_SASL_PORT)."""

    bootstrap: str
    username: str
    password: str

    def client_settings(self, password: str | None = None) -> dict[str, str]:
        """librdkafka settings that log in there (with another password, if given)."""
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": self.username,
            "sasl.password": self.password if password is None else password,
        }


@pytest.fixture(scope="session")
def kafka_sasl(kafka: str, request: pytest.FixtureRequest) -> SaslListener:
    """The SASL/PLAIN listener of the test broker, checked to answer with its credentials."""
    from confluent_kafka.admin import AdminClient

    env = broker_env(request.config)
    listener = SaslListener(
        request.config.stash[_SASL_BOOTSTRAP],
        env.get("KAFKA_SASL_USER", "tootlake"),
        env.get("KAFKA_SASL_PASSWORD", "tootlake-secret"),
    )
    admin = AdminClient({"bootstrap.servers": listener.bootstrap, **listener.client_settings()})
    try:
        admin.list_topics(timeout=15)
    except Exception as exc:
        pytest.fail(
            f"The test broker has no SASL/PLAIN listener at {listener.bootstrap} taking user "
            f"{listener.username} ({exc}): start it with this scripts/kafka.sh (KAFKA_SASL_PORT, "
            "TEST_KAFKA_SASL_BOOTSTRAP).",
            pytrace=False,
        )
    return listener


def restart_broker(config: pytest.Config) -> None:
    """`scripts/kafka.sh restart` for the test broker: data kept, clients see it go away."""
    result = _kafka_sh("restart", broker_env(config))
    if result.returncode != 0:
        pytest.fail(f"kafka.sh restart failed:\n{result.stdout}{result.stderr}", pytrace=False)


@pytest.fixture
def topic(kafka: str, request: pytest.FixtureRequest) -> str:
    """A fresh topic with 4 partitions, named after the test."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    admin = AdminClient({"bootstrap.servers": kafka})
    future = admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name]
    future.result(timeout=30)
    deadline = time.monotonic() + 30
    while len(admin.list_topics(name, timeout=10).topics[name].partitions) < PARTITIONS:
        if time.monotonic() > deadline:
            pytest.fail(f"topic {name} has no partitions after 30 s")
        time.sleep(0.1)
    return name


@pytest.fixture
def group() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


# ----------------------------------------------------------------------------------------
# events and checks


REAL_FILES = ["mastodonsocial.json", "malformed.json", "timelines.jsonl"]
BASE = datetime(2024, 5, 1, 22, 0, tzinfo=UTC)


def unique_events(n: int, *, tag: str = "") -> Iterator[Event]:
    """n UPDATE events of real statuses, each made a distinct post (uri and id rewritten).
    Statuses that are not collected (boosts, non-public, opt-outs) are left out, so every
    event becomes exactly one post. Their created_at cycle through three days, so every flush
    of a sink spans dates (one file per date, each named by its own first offset) without
    making thousands of tiny files."""
    from tootlake.record import from_status, skip_reason

    usable = []
    for _where, observed_on, status in all_real_statuses():
        if skip_reason(status) is not None:
            continue
        try:
            from_status(status, observed_on)
        except Exception:
            continue
        usable.append((observed_on, status))
    for k in range(n):
        observed_on, status = usable[k % len(usable)]
        created = BASE + timedelta(days=k % 3, seconds=k)
        copy = dict(
            status,
            uri=f"{status['uri']}#{tag}{k}",
            id=f"{status['id']}-{k}",  # digits appended would make a snowflake from the future
            created_at=created.isoformat().replace("+00:00", "Z"),
        )
        yield Event(UPDATE, observed_on, status=_valid(copy), where=f"unique:{k}")


def _valid(status: dict[str, Any]) -> Any:
    from tootlake.record import ValidStatus, validate_status

    checked = validate_status(status)
    assert isinstance(checked, ValidStatus), checked
    return checked


def unique_posts(n: int, *, tag: str = "") -> list[Any]:
    """The posts of `unique_events(n, tag=tag)`."""
    from tootlake.record import to_post

    return [to_post(e.status, e.observed_on) for e in unique_events(n, tag=tag)]


def real_rejects(n: int) -> list[Any]:
    """n Reject records as the sources make them, from real statuses broken the ways issue 9
    found (a status that is not JSON, a bad created_at, an account that is a string, a uri that
    is a number), with rejected_at over two days so a sink flush spans dates."""
    import json

    from tootlake.record import Rejection, decode_status
    from tootlake.sources import reject_event

    breaks = [
        None,
        {"created_at": "0001-01-01T00:00:00+01:00"},
        {"account": "bob"},
        {"uri": 5},
    ]
    statuses = list(all_real_statuses())
    out = []
    for k in range(n):
        where, observed_on, status = statuses[k % len(statuses)]
        broken = breaks[k % len(breaks)]
        raw = b"\xff{not json" if broken is None else json.dumps({**status, **broken}).encode()
        rejection = decode_status(raw)
        assert isinstance(rejection, Rejection), rejection
        event = reject_event(
            rejection, raw, source="replay", observed_on=observed_on, where=f"{where}#{k}"
        )
        assert event.reject is not None
        rejected_at = BASE + timedelta(days=k % 2, seconds=k)
        out.append(msgspec.structs.replace(event.reject, rejected_at=rejected_at))
    return out


def mixed_records(n: int, tag: str) -> list[Any]:
    """n posts with sightings (every 3rd post), deletes (every 7th) and rejects (one per 20
    posts) among them: the producer keys a post's sighting and delete like the post, so they
    share its partition and most batches have rows for every table."""
    from tootlake.record import Delete, Sighting

    rejects = iter(real_rejects(n // 20 + 1))
    records: list[Any] = []
    for k, post in enumerate(unique_posts(n, tag=tag)):
        records.append(post)
        if k % 3 == 0:
            records.append(Sighting(post.uri, "elsewhere.example", f"9{k}", post.ingested_at))
        if k % 7 == 0:
            observed_on = post.observed_on or "mastodon.social"
            records.append(Delete(observed_on, post.id, post.uri, post.ingested_at))
        if k % 20 == 0:
            records.append(next(rejects))
    return records


def version_counts(lake: str) -> list[tuple[Any, ...]]:
    """(uri, observed_on, id, edited_at, rows) of every post version in posts_all: what "every
    post exactly once" is checked on (posts_all, not the deduplicating posts view)."""
    from tootlake.analysis import open_lake

    return (
        open_lake(lake)
        .execute(
            "SELECT uri, observed_on, id, edited_at, count(*) AS n FROM posts_all "
            "GROUP BY ALL ORDER BY ALL"
        )
        .fetchall()
    )


def assert_each_post_once(lake: str, expected: int) -> None:
    counts = version_counts(lake)
    twice = [row for row in counts if row[-1] != 1]
    assert not twice, f"{len(twice)} post versions written more than once, e.g. {twice[:3]}"
    assert len(counts) == expected, f"{len(counts)} post versions in the lake, expected {expected}"


def assert_each_record_once(lake: str, records: list[Any]) -> None:
    """posts_all, deletes, sightings and rejects hold each record sent exactly once."""
    from tootlake.analysis import open_lake
    from tootlake.record import Delete, Post, Reject, Sighting

    assert_each_post_once(lake, sum(isinstance(r, Post) for r in records))
    lake_db = open_lake(lake)
    for query, kind, key in (
        ("SELECT uri, observed_on, id FROM deletes", Delete, ("uri", "observed_on", "id")),
        ("SELECT uri, observed_on, id FROM sightings_all", Sighting, ("uri", "observed_on", "id")),
        ('SELECT "where", reason FROM rejects', Reject, ("where", "reason")),
    ):
        expected = sorted(tuple(getattr(r, k) for k in key) for r in records if type(r) is kind)
        assert sorted(lake_db.execute(query).fetchall()) == expected, query


def end_offsets(kafka: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "offsets-probe"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


def committed_offsets(kafka: str, group: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group})
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10
        )
        return {tp.partition: tp.offset for tp in parts}
    finally:
        consumer.close()


def sink_command(kafka: str, topic: str, group: str, lake: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tootlake", "--log-level", "info", "sink",
        "--kafka", kafka, "--topic", topic, "--group", group, "--lake", lake,
        "-X", "session.timeout.ms=6000", *extra,
    ]  # fmt: skip


class SinkProcess:
    """A `tootlake sink` process whose stdout and stderr are read as they come (no pipe fills
    up, and its log can be watched while it runs: `log`). `finish` waits for it; one that
    does not end in time prints every thread's stack (SIGUSR1) and is killed, and the test
    fails with its log and those stacks, which say where it hung."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: list[str] = []
        self.log: list[str] = []
        self._readers = [
            threading.Thread(target=lines.extend, args=(pipe,), daemon=True)
            for lines, pipe in ((self.out, self.process.stdout), (self.log, self.process.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def finish(self, timeout: float) -> int:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(2)
            self.kill()
            pytest.fail(
                f"tootlake sink did not end within {timeout:.0f} s; its log, then its threads' "
                "stacks:\n" + "".join(self.log)
            )
        self._join()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._join()

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def lake_marks(lake: str, topic: str) -> dict[str, dict[int, int | None]]:
    """{table: {partition: the sink's Delta mark (app transaction) for it}}."""
    from tootlake.kafka.sink import app_id
    from tootlake.lake import tables
    from tootlake.lake.layout import TABLES

    out: dict[str, dict[int, int | None]] = {}
    for table in TABLES:
        delta = tables.load(lake, table)
        out[table] = {
            p: None if delta is None else delta.transaction_version(app_id(topic, p))
            for p in range(PARTITIONS)
        }
    return out


def table_versions(lake: str) -> dict[str, int | None]:
    """{table: its Delta version, None when it does not exist}."""
    from tootlake.lake import tables
    from tootlake.lake.layout import TABLES

    versions = {}
    for table in TABLES:
        delta = tables.load(lake, table)
        versions[table] = None if delta is None else delta.version()
    return versions


def assert_lake_at_end(lake: str, kafka: str, topic: str) -> None:
    """Every partition's posts_all mark is its last offset: the lake holds the whole topic."""
    ends = end_offsets(kafka, topic)
    marks = lake_marks(lake, topic)["posts_all"]
    assert marks == {p: (end - 1 if end else None) for p, end in ends.items()}, (marks, ends)
