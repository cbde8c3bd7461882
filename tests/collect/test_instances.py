"""Stalled streams, and the `instances check` / `discover` commands, against the simulator."""

from __future__ import annotations

import json
import socket
import time

import pytest
from aiohttp import web
from click.testing import CliRunner

from tootlake.cli import main
from tootlake.collector import read_instances_file
from tootlake.simulate import InstanceSettings
from tootlake.sources.fleet import FleetOptions, InstanceSpec

from .conftest import FAST, Running, all_connected, assert_lake_matches, wait_for

TOKEN = "t0ken"


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_a_silent_stream_is_declared_dead_and_its_posts_backfilled(fediverse, lake, transport):
    sim = fediverse(
        instances=2, seed=4, settings=InstanceSettings(token=TOKEN, heartbeat=0.5, ws_ping=0.5)
    )
    fed = sim.fed
    options = FleetOptions(**{**FAST.__dict__, "stream": transport, "heartbeat_timeout": 2.0})
    collector = Running([InstanceSpec(u, TOKEN) for u in fed.urls], lake, options=options)
    wait_for(all_connected(sim), what="two streams")
    sim.call(fed.stall, [0])  # open, but silent: no events, no heartbeats, no pings
    started = time.monotonic()
    sim.call(fed.publish, 100, rate=100, edits=0.05)
    # the watchdog drops the stalled connection; the new one backfills what it missed
    wait_for(lambda: collector.fleet.workers[0].reconnects >= 1, timeout=20, what="a reconnect")
    assert time.monotonic() - started < 15  # 2 s of silence, not a 45 s default or a hang
    assert ("heartbeat lost" if transport == "sse" else "ping timeout") in (
        collector.fleet.workers[0].last_error
    )
    collector.settle()
    collector.stop()
    assert_lake_matches(lake, sim.call(fed.truth, include_opted_out=True))


def test_instances_check_says_what_collect_would_do(fediverse):
    settings = [
        InstanceSettings(token=TOKEN),
        InstanceSettings(token=TOKEN),
        InstanceSettings(token=TOKEN, live_feeds={"local": "disabled", "remote": "disabled"}),
    ]
    sim = fediverse(instances=3, seed=1, settings=settings)
    urls = sim.fed.urls
    host0 = sim.fed.hosts[0]
    runner = CliRunner()
    args = ["instances", "check", "--instance", urls[0], "--instance", urls[1],
            "--instance", urls[2], "--instance", "http://127.0.0.1:9", "--token",
            f"{host0}={TOKEN}"]  # fmt: skip
    result = runner.invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    reports = {r["instance"]: r for r in json.loads(result.stdout)}  # stderr: the --token warning
    assert [r["action"] for r in reports.values()] == ["stream", "poll", "needs token", "down"]
    assert reports[host0]["token"] is True and reports[host0]["version"]
    assert TOKEN not in result.output
    table = runner.invoke(main, args)
    assert table.exit_code == 0 and "needs token" in table.output and "down" in table.output


def test_instances_discover_probes_the_peers(fediverse, tmp_path):
    sim = fediverse(instances=2, seed=1)
    peers = [*sim.fed.hosts, "127.0.0.1:9"]  # the last one is down
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]

    async def list_peers(request: web.Request) -> web.Response:
        return web.json_response(peers)

    async def start() -> web.AppRunner:  # a server that only lists peers, on the sim's loop
        app = web.Application()
        app.router.add_get("/api/v1/instance/peers", list_peers)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        return runner

    runner = sim.call(start)
    try:
        out = tmp_path / "instances.txt"
        result = CliRunner().invoke(main, ["instances", "discover", "--from",
                                           f"http://127.0.0.1:{port}", "--limit", "5",
                                           "-o", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        listed = [line.split()[0] for line in out.read_text().splitlines()
                  if line and not line.startswith("#")]  # fmt: skip
        assert sorted(listed) == sorted(sim.fed.hosts)
        assert "4.5.0" in out.read_text() and "registrations" in out.read_text()
        assert sorted(read_instances_file(out)) == sorted(sim.fed.hosts)  # collect reads it
    finally:
        sim.call(runner.cleanup)
        sock.close()


def test_instances_check_says_token_rejected_as_collect_does(fediverse):
    """A wrong token: `collect` says "token rejected" and reads what the instance allows
    without one; `instances check` once said "down"."""
    sim = fediverse(instances=1, seed=1, settings=[InstanceSettings(token=TOKEN)])
    host = sim.fed.hosts[0]
    result = CliRunner().invoke(
        main,
        ["instances", "check", "--instance", sim.fed.urls[0], "--token", f"{host}=wrong-token-1",
         "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert report["action"] == "poll"  # its public timeline is open
    assert report["reason"].startswith("token rejected")
    assert "wrong-token-1" not in result.output
