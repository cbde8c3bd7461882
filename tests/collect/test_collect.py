"""The collector against the simulated fediverse, over real sockets on loopback: the lake holds
exactly what the simulator published (none lost, none twice, edits and deletes applied)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tootlake.lake.reader import open_lake
from tootlake.simulate import InstanceSettings
from tootlake.sources.fleet import FleetOptions, InstanceSpec

from .conftest import FAST, Running, all_connected, assert_lake_matches, wait_for

TOKEN = "s3cr3t-TOKEN-value"


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_twenty_cut_connections_lose_nothing(fediverse, lake, transport):
    heartbeat = b":thump\n" if transport == "sse" else b":thump\n\n"
    sim = fediverse(
        instances=3, seed=7, settings=InstanceSettings(token=TOKEN, heartbeat_frame=heartbeat)
    )
    fed = sim.fed
    specs = [InstanceSpec(url, TOKEN) for url in fed.urls]
    options = FleetOptions(**{**FAST.__dict__, "stream": transport})
    collector = Running(specs, lake, options=options)
    wait_for(all_connected(sim), what="three streams")
    sim.call(fed.start_publishing, 150, edits=0.03, deletes=0.02)
    cuts = 0
    for n in range(20):
        time.sleep(0.25)
        inst = fed.instances[n % 3]
        cuts += sim.call(inst.cut, mid_event=n % 2 == 0)
        # The next cut once this instance is back: a post's other copies carry its deletes.
        wait_for(lambda inst=inst: inst.connections >= 1, what="a reconnect")
    sim.call(fed.stop_publishing)
    collector.settle()
    result = collector.stop()
    truth = sim.call(fed.truth, include_opted_out=True)
    assert cuts >= 20
    assert sum(entry["reconnects"] for entry in result.health.values()) >= 20
    assert len(truth.uris) > 300 and truth.deleted
    assert_lake_matches(lake, truth)


@pytest.mark.slow
def test_restart_without_state_loss_after_sigkill(fediverse, tmp_path):
    """A real `python -m tootlake collect` killed with SIGKILL, restarted: nothing lost."""
    sim = fediverse(instances=3, seed=11, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    lake, state = tmp_path / "lake", tmp_path / "state"
    args = [
        sys.executable,
        "-m",
        "tootlake",
        "--log-level",
        "info",
        "--log-format",
        "json",
        "collect",
        "--lake",
        str(lake),
        "--state",
        str(state),
        "--flush-seconds",
        "0.5",
        "--heartbeat-timeout",
        "3",
        "--include-opted-out",
        "--quiet",
    ]
    for url in fed.urls:
        args += ["--instance", url, "--token", f"{url.removeprefix('http://')}={TOKEN}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOTLAKE_")}
    env["TOOTLAKE_CONFIG"] = os.devnull
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(n: int) -> subprocess.Popen[bytes]:
        with open(logs / f"run{n}.log", "wb") as out:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    first = start(1)
    wait_for(all_connected(sim), what="three streams")
    sim.call(fed.start_publishing, 100, edits=0.03, deletes=0.02)
    wait_for(lambda: (state / "cursors.json").exists(), what="saved cursors")
    time.sleep(1.0)
    # Edits and deletes pause from shortly before the kill until the restart: one received
    # but not yet flushed dies with the process, and the REST timeline, which the restart
    # backfills from, has new posts only. Posts keep coming throughout.
    sim.call(fed.stop_publishing)
    sim.call(fed.start_publishing, 100, edits=0, deletes=0)
    time.sleep(1.5)
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    time.sleep(2.0)
    sim.call(fed.stop_publishing)
    second = start(2)
    wait_for(all_connected(sim), what="three streams again")
    sim.call(fed.start_publishing, 100, edits=0.03, deletes=0.02)
    time.sleep(2.0)
    sim.call(fed.stop_publishing)
    time.sleep(4.0)  # the backfill and the last events: a loaded machine needs more than 2 s
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0, (logs / "run2.log").read_text()
    truth = sim.call(fed.truth, include_opted_out=True)
    assert_lake_matches(str(lake), truth, rewrites_allowed=True)
    output = (logs / "run2.log").read_text()
    assert "Collected " in output  # final stats on a clean stop
    cursors = json.loads((state / "cursors.json").read_text())["instances"]
    assert set(cursors) == set(fed.hosts)


def test_failing_instances_do_not_disturb_the_others(fediverse, lake):
    """401, 422, 429, 500 and garbage answers: the healthy and recovering instances' posts all
    arrive; the ones that need a token are reported as such."""
    ok = InstanceSettings(token=TOKEN)
    settings = [
        ok,
        InstanceSettings(
            token=TOKEN, live_feeds={"local": "authenticated", "remote": "authenticated"}
        ),
        InstanceSettings(token=TOKEN),  # 422 on its timeline, polled without a token
        InstanceSettings(token=TOKEN, rate_limit=(300, 2.0)),  # 429s, short windows
        InstanceSettings(token=TOKEN),  # 500s
        InstanceSettings(token=TOKEN),  # garbage
    ]
    sim = fediverse(instances=6, seed=3, settings=settings)
    fed = sim.fed
    urls = fed.urls
    sim.call(fed.instances[2].fail, 422, None, path="/api/v1/timelines")
    sim.call(fed.instances[3].fail, 429, 3)
    sim.call(fed.instances[4].fail, 500, 6)
    sim.call(fed.instances[5].fail, "garbage", 4)
    specs = [
        InstanceSpec(urls[0], TOKEN),
        InstanceSpec(urls[1], "wrong-token"),
        InstanceSpec(urls[2]),
        InstanceSpec(urls[3], TOKEN),
        InstanceSpec(urls[4], TOKEN),
        InstanceSpec(urls[5], TOKEN),
    ]
    collector = Running(specs, lake)
    healthy = [0, 3, 4, 5]
    wait_for(
        lambda: all(fed.instances[i].connections for i in healthy),
        timeout=20,
        what="the healthy and recovering instances to stream",
    )
    sim.call(fed.publish, 300, rate=150, edits=0.03, deletes=0.02)
    # faults in the middle of the run too
    sim.call(fed.instances[4].fail, 503, 3)
    sim.call(fed.instances[4].cut)
    sim.call(fed.instances[5].fail, "garbage", 2)
    sim.call(fed.instances[5].cut)
    sim.call(fed.publish, 300, rate=150, edits=0.03, deletes=0.02)
    wait_for(
        lambda: all(fed.instances[i].connections for i in healthy),
        timeout=20,
        what="the recovering instances to stream again",
    )
    collector.settle()
    result = collector.stop()
    status = {host: entry["status"] for host, entry in result.health.items()}
    hosts = fed.hosts
    assert status[hosts[1]] == "needs token"
    assert status[hosts[2]] == "needs token"
    assert all(status[hosts[i]] == "streaming" for i in healthy), status
    assert (
        "token rejected" in result.health[hosts[1]]["detail"]
        or "Invalid access token" in (result.health[hosts[1]]["detail"])
    )
    assert "Replace it in --token-file" in result.health[hosts[1]]["detail"]  # (one was given)
    assert "Give one in --token-file" in result.health[hosts[2]]["detail"]
    assert result.health[hosts[4]]["errors"] >= 1 and result.health[hosts[5]]["errors"] >= 1
    truth = sim.call(fed.truth, [hosts[i] for i in healthy], include_opted_out=True)
    # posts only on the two instances that need a token are not expected, nor collected
    assert_lake_matches(lake, truth)


def test_polling_without_a_token_follows_the_timeline(fediverse, lake):
    sim = fediverse(instances=2, seed=5, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    collector = Running([InstanceSpec(url) for url in fed.urls], lake)
    wait_for(
        lambda: collector.fleet and collector.fleet.counts().get("polling") == 2,
        what="two polling instances",
    )
    sim.call(fed.publish, 200, rate=200)  # no edits or deletes: polling cannot see them
    collector.settle()
    result = collector.stop()
    assert {e["mode"] for e in result.health.values()} == {"poll"}
    assert_lake_matches(lake, sim.call(fed.truth, include_opted_out=True))


def test_cli_with_token_never_writes_the_secret(fediverse, tmp_path):
    """`collect --instance http://127.0.0.1:PORT --token 127.0.0.1:PORT=SECRET` streams, and
    the secret is in no log line, state file or lake file."""
    sim = fediverse(instances=1, seed=2, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    host = fed.hosts[0]
    lake = tmp_path / "lake"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOTLAKE_")}
    env["TOOTLAKE_CONFIG"] = os.devnull
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tootlake",
            "--log-level",
            "debug",
            "collect",
            "--instance",
            f"http://{host}",
            "--token",
            f"{host}={TOKEN}",
            "--lake",
            str(lake),
            "--flush-seconds",
            "0.5",
            "--duration",
            "10",
            "--include-opted-out",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    wait_for(all_connected(sim), what="the stream")
    sim.call(fed.publish, 100, rate=100, edits=0.05, deletes=0.02)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"streaming" in err and b"Collected " in out
    assert TOKEN.encode() not in out + err
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(
        p.name == "cursors.json" for p in files
    )
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), f"the token leaked into {path}"
    assert_lake_matches(str(lake), sim.call(fed.truth, include_opted_out=True))


def test_sightings_record_every_instance_a_post_was_seen_on(fediverse, lake):
    sim = fediverse(instances=3, seed=9, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    collector = Running([InstanceSpec(u, TOKEN) for u in fed.urls], lake)
    wait_for(all_connected(sim), what="three streams")
    posts = sim.call(fed.publish, 60, rate=100)
    collector.settle()
    collector.stop()
    con = open_lake(lake)
    expected = {
        (host, local_id, p.uri)
        for p in posts
        if p.streamable
        for host, local_id in sim.call(fed.copies, p).items()
    }
    rows = set(con.execute("SELECT observed_on, id, uri FROM sightings").fetchall())
    assert rows == expected
    # written once, seen up to three times
    assert con.execute("SELECT count(*) FROM posts_all").fetchone()[0] == len(
        {p.uri for p in posts if p.streamable}
    )
    # a delete received only where the post was sighted (not where it was written) applies
    post = next(p for p in posts if p.streamable and len(p.copies) == 3)
    written_on = con.execute(
        "SELECT observed_on FROM posts_all WHERE uri = ?", [post.uri]
    ).fetchone()[0]
    other = next(h for h in fed.hosts if h != written_on)
    con.execute(
        "CREATE TABLE extra_delete AS SELECT ? AS observed_on, ? AS id",
        [other, sim.call(fed.copies, post)[other]],
    )
    from datetime import UTC, datetime

    from tootlake.lake.writer import LakeWriter
    from tootlake.record import Delete

    sink = LakeWriter(lake)
    sink.add([Delete(other, sim.call(fed.copies, post)[other], None, datetime.now(UTC))])
    sink.flush()
    assert post.uri not in {
        r[0] for r in open_lake(lake).execute("SELECT uri FROM posts").fetchall()
    }


def test_a_burst_through_a_full_bridge_loses_nothing(fediverse, lake):
    """A burst far bigger than the bridge: the readers wait while it is full (backpressure);
    nothing is lost, doubled or reordered (edits after their posts)."""
    sim = fediverse(instances=2, seed=13, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    options = FleetOptions(**{**FAST.__dict__, "stream": "websocket", "bridge_capacity": 20})
    collector = Running([InstanceSpec(u, TOKEN) for u in fed.urls], lake, options=options)
    wait_for(all_connected(sim), what="two streams")
    sim.call(fed.publish, 3000, edits=0.05, deletes=0.03)  # as fast as it goes
    collector.settle()
    result = collector.stop()
    truth = sim.call(fed.truth, include_opted_out=True)
    assert {e["transport"] for e in result.health.values()} == {"websocket"}
    assert sum(e["reconnects"] for e in result.health.values()) == 0
    assert len(truth.uris) > 1500 and truth.deleted
    assert_lake_matches(lake, truth)


def test_a_collect_leaves_its_counts_in_the_lake_without_the_token(fediverse, lake):
    from tootlake.analysis.html import render_html_report

    sim = fediverse(instances=1, seed=3, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    collector = Running([InstanceSpec(url, TOKEN) for url in fed.urls], lake,
                        include_opted_out=False)  # fmt: skip
    wait_for(all_connected(sim), what="the stream")
    sim.call(fed.publish, 150, rate=300)
    collector.settle()
    result = collector.stop()
    gates = result.stats.skipped
    opted_out = gates["noindex"] + gates["opt_out_tag"]
    assert gates["noindex"] > 0 and gates["opt_out_tag"] > 0
    (run_file,) = (Path(lake) / "_tootlake" / "runs").glob("*.json")
    text = run_file.read_text(encoding="utf-8")
    assert TOKEN not in text and "http" not in text  # no token, no URL that could carry one
    record = json.loads(text)
    assert record["kind"] == "collect" and record["stats"]["skipped"] == dict(gates)
    assert {entry["mode"] for entry in record["instances"].values()} == {"stream"}
    html = render_html_report(lake)
    assert f"<dt>Skipped as opted out</dt><dd>{opted_out}</dd>" in html


def test_collect_exits_1_when_no_instance_could_be_read(fediverse, tmp_path, monkeypatch):
    """A run that read nothing, because every instance failed, needs a token, never
    answered or only said 429, says so and exits 1 (a cron job must see it); a run that
    read a quiet instance exits 0."""
    import socket

    from click.testing import CliRunner

    from tootlake.cli import main

    monkeypatch.setenv("TOOTLAKE_CONFIG", os.devnull)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there: connection refused
    hung = socket.socket()  # connects, and never answers: the probe waits past the run
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    silent = f"http://127.0.0.1:{hung.getsockname()[1]}"
    feeds = {"local": "authenticated", "remote": "authenticated"}
    sim = fediverse(
        instances=2,
        seed=5,
        settings=[
            InstanceSettings(token=TOKEN, live_feeds=feeds),
            InstanceSettings(rate_limit=(1, 300.0)),  # the probe, then 429s: never a page
        ],
    )
    fed = sim.fed
    base = ["collect", "--duration", "3", "-q", "--instance", fed.urls[0]]
    try:
        failed = CliRunner().invoke(
            main,
            [*base, "--instance", dead, "--instance", silent, "--instance", fed.urls[1],
             "--lake", str(tmp_path / "a")],
        )  # fmt: skip
    finally:
        hung.close()
    assert failed.exit_code == 1, failed.output
    said = failed.output.split("Nothing was collected: ")[1]
    assert said.startswith(
        "no instance could be read (1 failing, 1 needs token, 1 polling, 1 starting). "
    ), said
    assert "(3 more: every instance's state is in " in said and "health.json)" in said
    assert "retry in" not in said  # the run is over: no retry is coming
    assert "Collected 0 posts" in failed.output  # the summary still comes first

    # the same first instance with a token: it streams (and nothing is published)
    host = fed.hosts[0]
    quiet = CliRunner().invoke(
        main, [*base, "--token", f"{host}={TOKEN}", "--lake", str(tmp_path / "b")]
    )
    assert quiet.exit_code == 0, quiet.output
    assert f"{host}: streaming" in quiet.output


def _health(status, *, reached=False, detail="", last_error="", events=0):
    return {"status": status, "reached": reached, "detail": detail,
            "last_error": last_error, "events": events}  # fmt: skip


@pytest.mark.parametrize(
    ("health", "said"),
    [
        ({"a.example": _health("failing", reached=True, last_error="HTTP 503")}, None),
        ({"a.example": _health("polling", reached=True)}, None),
        (
            {"a.example": _health("failing", detail="a.example /api: HTTP 503; retry in 8s",
                                  last_error="a.example /api: HTTP 503")},
            "(1 failing). a.example /api: HTTP 503",
        ),
        ({"a.example": _health("starting")}, "(1 starting). a.example: no answer by the end"),
        (  # a server's text: one line, bounded
            {"a.example": _health("needs token", detail="x\n\x1b[2Jforged line " * 100)},
            "(1 needs token). a.example: x \x1b[2Jforged line x",
        ),
        (
            {"b.example": _health("needs token", detail="Give one with --token"),
             "a.example": _health("polling", detail="rate limited: waiting 300s")},
            "(1 needs token, 1 polling). a.example: rate limited: waiting 300s (1 more: ",
        ),
    ],
)  # fmt: skip
def test_a_run_failed_only_when_no_instance_was_ever_read(health, said):
    """`CollectResult.failure()`: an instance that was read once (a stream connected, a page
    came) and failed later, or stayed quiet, is a run that worked."""
    from tootlake.collector import CollectResult
    from tootlake.pipeline import RunStats

    result = CollectResult(RunStats(), health, state_dir="/state")
    failure = result.failure()
    if said is None:
        assert failure is None
    else:
        assert failure is not None and said in failure, failure
        assert "\n" not in failure and len(failure) < 700
    assert CollectResult(RunStats(events=1), health).failure() is None
