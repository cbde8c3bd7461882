"""The collector against a hostile fediverse, over real sockets: `tootlake collect` as a real
process, 10% of statuses mutated, and instances that flood, stall, send huge bodies and a bad
instance document. It runs its whole --duration in bounded memory, keeps every good post once,
rejects every invalid one into the lake's `rejects`, and a restart loses and doubles nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tootlake.lake.reader import open_lake
from tootlake.simulate import InstanceSettings
from tootlake.simulate.hostile import INSTANCE_KINDS

from .conftest import assert_lake_matches, wait_for

TOKEN = "hostile-e2e-token"
DURATION = 25.0  # seconds of each collector run
RATE = 60.0  # ordinary posts per second, across the three ordinary instances
# Capped at the collector's design rate (5,000 posts/s, bench/results/collect.md): uncapped,
# the flood (10,000-16,000 posts/s) peaked at 395-410 MB, over the limit, because a backfill
# that never catches up keeps its set of seen ids growing (issue 9's closing note: open).
FLOOD_RATE: float | None = 5000.0
RSS_LIMIT_MB = 400
MARKER = re.compile(r"tootlake-hostile-\d+-\d+")


class Measured:
    """A child process measured from outside: wall time and peak RSS (wait4), and its RSS
    every second (/proc), so a failure says when the memory grew."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.seconds = self.rss_mb = 0.0
        self.code: int | None = None
        self.samples: list[int] = []  # RSS in MB, one a second
        # The highest VmHWM read while it ran, MB: its peak RSS. (wait4's ru_maxrss is not:
        # Linux keeps it across exec, so it counts the forked copy of this test process, and
        # the simulator here holds hundreds of MB of posts by the second run.)
        self.seen_peak = 0
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.proc.pid}/status")
        while self.code is None:
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
                rss, peak = (int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM"))
            except (OSError, ValueError, KeyError):  # gone, or a zombie without memory
                return
            self.seen_peak = peak
            if time.monotonic() - self.started >= len(self.samples):
                self.samples.append(rss)
            time.sleep(0.1)

    def wait(self, timeout: float) -> Measured:
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                deadline = float("inf")
            time.sleep(0.05)
        self.seconds = time.monotonic() - self.started
        self.rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
        self.code = self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def processes() -> Iterator[list[Measured]]:
    """Measured processes of a test: any still running at its end is killed."""
    started: list[Measured] = []
    yield started
    for measured in started:
        if measured.code is None:
            measured.proc.kill()
            measured.wait(30)


def _env(tmp_path: Path, hosts: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull
    for host in hosts:  # TOOTLAKE_TOKEN_<HOST>: not on the command line, where ps shows it
        env["TOOTLAKE_TOKEN_" + host.replace(".", "_").replace(":", "_")] = TOKEN
    return env


def _markers_in_rejects(lake: str) -> set[str]:
    con = open_lake(lake)
    raws = con.execute("SELECT raw FROM rejects").fetchall()
    return {marker for (raw,) in raws for marker in MARKER.findall(raw or "")}


@pytest.mark.slow
def test_a_hostile_fediverse_neither_stops_nor_bloats_the_collector(fediverse, processes, tmp_path):
    # Heartbeats every 2 s, so a 5 s heartbeat timeout drops the stalled streams, not these.
    settings = InstanceSettings(token=TOKEN, heartbeat=2.0, flood_rate=FLOOD_RATE)
    sim = fediverse(
        instances=3, seed=21, settings=settings, hostile=0.1, hostile_instances=INSTANCE_KINDS
    )
    fed = sim.fed
    flood, stall, huge, huge_document, bad_document = fed.misbehaving
    listening = [*fed.instances[: fed.ordinary], flood]
    instances_file = tmp_path / "instances.txt"
    instances_file.write_text("".join(f"{url}\n" for url in fed.urls))
    lake, state = tmp_path / "lake", tmp_path / "state"
    env = _env(tmp_path, fed.hosts)

    def run(n: int) -> Measured:
        # WebSocket (auto) the first time, SSE after the restart: both parsers meet the
        # huge and stalled streams.
        args = [
            sys.executable, "-m", "tootlake", "--log-level", "info", "collect",
            "--stream", "auto" if n == 1 else "sse",
            "--instances-file", str(instances_file), "--lake", str(lake), "--state", str(state),
            "--duration", str(DURATION), "--flush-seconds", "1", "--heartbeat-timeout", "5",
            "--include-opted-out", "--quiet", "--stats", str(tmp_path / f"stats{n}.json"),
        ]  # fmt: skip
        processes.append(Measured(args, env, tmp_path / f"run{n}.log"))
        return processes[-1]

    def connected() -> bool:
        return all(inst.connections >= 1 for inst in listening)

    # Run 1, with edits and deletes until 4 s before its end: a delete or an edit made while
    # no collector listens is lost to streams, and the REST backfill has new posts only.
    first = run(1)
    wait_for(connected, timeout=30, what="the first run's streams")
    sim.call(fed.start_publishing, RATE, edits=0.02, deletes=0.01)
    time.sleep(max(0.0, first.started + DURATION - 4 - time.monotonic()))
    sim.call(fed.stop_publishing)
    sim.call(fed.start_publishing, RATE, edits=0, deletes=0)
    first.wait(DURATION + 60)
    assert first.code == 0, first.output()[-5000:]

    # Posts keep coming while no collector runs; run 2 backfills them from the cursors.
    time.sleep(2.0)
    second = run(2)
    wait_for(connected, timeout=30, what="the second run's streams")
    sim.call(fed.stop_publishing)
    sim.call(fed.start_publishing, RATE, edits=0.02, deletes=0.01)
    time.sleep(max(0.0, second.started + DURATION - 6 - time.monotonic()))
    sim.call(fed.stop_publishing)  # the rest of the run drains what is in flight
    second.wait(DURATION + 60)
    assert second.code == 0, second.output()[-5000:]
    for run_ in (first, second):  # (websockets' own noise once the huge stream is dropped)
        assert "keepalive ping failed" not in run_.output(), run_.output()[-5000:]

    truth = sim.call(fed.truth, include_opted_out=True)
    flooded = len(sim.call(fed.posts, flood.index))
    # The fediverse was as hostile as promised...
    assert len(truth.invalid) > 20 and len(truth.coerced) > 20 and len(truth.shaped) > 10
    assert flooded > 5 * RATE * DURATION, f"the flood published only {flooded} posts"
    assert stall.stats["stalled"] >= 2 and huge.stats["huge_bodies"] >= 2
    assert huge_document.stats["huge_bodies"] >= 2 and bad_document.stats["requests"] >= 2
    # ...and the collector ran its whole duration each time,
    assert first.seconds >= DURATION and second.seconds >= DURATION
    # kept every good post exactly once (in its latest version, deletes applied),
    assert_lake_matches(str(lake), truth)
    # and rejected every invalid one, and nothing else the simulator marked.
    markers = _markers_in_rejects(str(lake))
    invalid = set(truth.invalid.values())
    missing = invalid - markers
    assert not missing, (
        f"{len(missing)} invalid statuses not in rejects, e.g. {sorted(missing)[:3]}"
    )
    assert markers <= invalid, f"good statuses rejected: {sorted(markers - invalid)[:3]}"
    stats = [json.loads((tmp_path / f"stats{n}.json").read_text())["stats"] for n in (1, 2)]
    assert sum(s["rejected"] for s in stats) >= len(invalid)
    assert sum(sum(s["coerced"].values()) for s in stats) >= len(truth.coerced)
    # in bounded memory, never reading a huge body whole (not even to discard it).
    completed = {i.settings.misbehave: i.stats["huge_completed"] for i in (huge, huge_document)}
    # the collector's own VmHWM at its very end (--stats), and what was seen while it ran
    peaks = [
        max(
            measured.seen_peak, json.loads((tmp_path / f"stats{n}.json").read_text())["peak_rss_mb"]
        )
        for n, measured in ((1, first), (2, second))
    ]
    assert not any(completed.values()) and max(peaks) < RSS_LIMIT_MB, (
        f"huge bodies read to their end: {completed}; peak RSS of the two runs: {peaks} MB "
        f"(seen while running: {first.seen_peak}, {second.seen_peak} MB); RSS each second "
        f"(MB): {first.samples}, {second.samples}"
    )


@pytest.mark.slow
def test_demo_hostile_rejects_every_invalid_status_and_keeps_the_good_ones(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tootlake",
            "demo",
            "--hostile",
            "0.05",
            "--duration",
            "10",
            "--lake",
            str(tmp_path / "lake"),
            "--quiet",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    found = re.search(
        r"Hostile statuses: (\d+) served invalid, (\d+) of them in the rejects table .*?; "
        r"(\d+) odd but good, (\d+) of them missing from the lake",
        proc.stdout,
    )
    assert found, proc.stdout[-3000:]
    invalid, rejected, good, missing = map(int, found.groups())
    assert invalid > 0 and rejected == invalid and good > 0 and missing == 0
    assert "Headline statistics" in proc.stdout
