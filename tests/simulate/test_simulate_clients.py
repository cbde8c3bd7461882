"""Real clients against the simulated fediverse: Mastodon.py (the talk's client) and our CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tootlake.simulate import FediverseThread, InstanceSettings
from tootlake.simulate.service import instance_token

from .conftest import plain_draft


def _mastodon_py(minimum: str = "1.8") -> Any:
    """Mastodon.py, or a skip: its 1.8 (the talk's, pinned by the bench extra) and 2.x both work."""
    mastodon = pytest.importorskip("mastodon")
    if _version(metadata.version("Mastodon.py")) < _version(minimum):
        pytest.skip(f"needs Mastodon.py >= {minimum}")
    return mastodon


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("heartbeat", [b":thump\n", b":thump\n\n"])
def test_mastodon_py_streams_updates_edits_and_deletes(heartbeat: bytes):
    mastodon = _mastodon_py()
    if heartbeat == b":thump\n\n" and _version(metadata.version("Mastodon.py")) < (2, 2):
        # Its 2.2.0 changelog: "Fix invalid event error in heartbeats".
        pytest.skip("Mastodon.py < 2.2 fails on the newer heartbeat")

    class Listener(mastodon.StreamListener):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            self.updates: list[Any] = []
            self.edits: list[Any] = []
            self.deletes: list[Any] = []
            self.heartbeats = 0

        def on_update(self, status: Any) -> None:
            self.updates.append(status)

        def on_status_update(self, status: Any) -> None:
            self.edits.append(status)

        def on_delete(self, status_id: Any) -> None:
            self.deletes.append(status_id)

        def handle_heartbeat(self) -> None:
            self.heartbeats += 1

    settings = InstanceSettings(
        token="mastodon-py-token", heartbeat=0.2, heartbeat_frame=heartbeat, version="4.3.0"
    )
    with FediverseThread(2, settings=settings, seed=11) as sim:
        fed, inst = sim.fed, sim.fed.instances[0]
        client = mastodon.Mastodon(api_base_url=inst.url, access_token="mastodon-py-token")
        assert client.retrieve_mastodon_version() == "4.3.0"
        listener = Listener()
        handle = client.stream_public(listener, run_async=True)
        try:
            _wait(lambda: sim.call(lambda: inst.connections) == 1)
            local = sim.call(fed.post, plain_draft(fed, 0), targets=[1])
            remote = sim.call(fed.post, plain_draft(fed, 1), targets=[0])
            sim.call(fed.edit, local)
            sim.call(fed.delete, remote)
            _wait(lambda: len(listener.updates) == 2 and bool(listener.edits and listener.deletes))
            _wait(lambda: listener.heartbeats > 0)
        finally:
            handle.close()
    assert [str(s.id) for s in listener.updates] == [str(local.copies[0]), str(remote.copies[0])]
    assert [s.uri for s in listener.updates] == [local.uri, remote.uri]
    assert listener.updates[0].account.acct == listener.updates[0].account.username  # local
    assert listener.updates[1].account.acct.endswith("@" + fed.hosts[1])
    assert listener.edits[0].edited_at is not None
    assert [str(i) for i in listener.deletes] == [str(remote.copies[0])]


@pytest.mark.slow
def test_mastodon_py_finds_a_separate_streaming_host():
    mastodon = _mastodon_py()
    received: list[Any] = []

    class Listener(mastodon.StreamListener):  # type: ignore[name-defined,misc]
        def on_update(self, status: Any) -> None:
            received.append(status)

    # A short heartbeat: urllib3 hands over the last byte of a chunk only once it has read the
    # next chunk's size line, so an event waits for the next write (as with a real server).
    settings = InstanceSettings(token="t", separate_streaming=True, heartbeat=0.2)
    with FediverseThread(1, settings=settings, seed=12) as sim:
        fed, inst = sim.fed, sim.fed.instances[0]
        client = mastodon.Mastodon(api_base_url=inst.url, access_token="t")
        handle = client.stream_public(Listener(), run_async=True)
        try:
            _wait(lambda: sim.call(lambda: inst.connections) == 1)
            post = sim.call(fed.post, plain_draft(fed, 0), targets=[])
            _wait(lambda: len(received) == 1)
        finally:
            handle.close()
    assert received[0].uri == post.uri


@pytest.mark.slow
def test_the_simulate_command_serves_and_writes_its_files(tmp_path: Path):
    from tootlake.cli import main

    files = {name: tmp_path / name for name in ("instances.txt", "tokens.txt", "truth.json")}
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--instances",
            "2",
            "--rate",
            "100",
            "--duration",
            "0.5",
            "--seed",
            "3",
            "--write-instances",
            str(files["instances.txt"]),
            "--tokens-file",
            str(files["tokens.txt"]),
            "--truth-file",
            str(files["truth.json"]),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    urls = files["instances.txt"].read_text().split()
    assert len(urls) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls)
    assert all(u in result.output for u in urls)
    tokens = dict(line.split("=", 1) for line in files["tokens.txt"].read_text().split())
    assert tokens == {u.removeprefix("http://"): instance_token(3, i) for i, u in enumerate(urls)}
    truth = json.loads(files["truth.json"].read_text())
    assert truth["instances"] == urls and 20 <= truth["published"] <= 100
    assert set(truth) >= {"latest", "deleted", "opted_out", "hidden"}
