"""Collector benchmarks, each with its baseline in the same run (results: bench/results/collect.*).

    python bench/collect_bench.py [--quick] [--only simulator,ceiling,throughput,fleet,marginal]
        [--rates 1000,2500,5000,7000] [--baseline REV [--pairs N]] [--results DIR]

* simulator: `tootlake simulate` alone at each rate, read by clients that only count events:
  the rate it was asked for against the rate it delivered, and its CPU.
* throughput: a simulated fediverse (`tootlake simulate`, its own process) publishes at a
  fixed rate to 4 instances (no federation, no edits, no deletes: every event is one status
  update); one `tootlake collect` process streams all of them for a while. Reported: updates/s
  handled and posts/s written over the steady part of the run (after SKIP seconds of
  connecting, until the stop: start-up and the final drain are not in the rates), lag
  (now - created_at of the newest post handed to the pipeline) per half of the run, CPU of
  both processes, so the bottleneck shows. Baseline: the talk's listener (Mastodon.py 1.8.0 +
  BeautifulSoup, one process per instance) against the same simulator at the same rate, at
  the highest rate asked, over the same kind of steady window. The speedup is like for like:
  status updates handled per second on both sides (the talk's on_update calls; ours include
  the posts of opted-out authors, which we skip and the talk kept). The ratio of the posts we
  write (opted-out authors left out) is given beside it.
* marginal (with --baseline): the CPU of one more event, beyond what a run costs whatever its
  length, for ours and the baseline: each runs 15 s then 45 s at the highest rate, the sides
  alternating, --pairs times.
* fleet: 1,000 simulated instances, every one streaming to one collector: peak RSS, lag per
  half, how many streamed. Baseline: the talk's one-process-per-instance design, measured on
  20 instances and scaled to 1,000 (RSS adds up per process).

The machine has 2 cores shared by the simulator and the collector (and whatever else runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
VENDOR_1_8 = BENCH / "data" / "vendor" / "mastodon-1.8.0"
PY = sys.executable
TOKEN = "bench-token"
# `--ablate`: parts of our collector's work left out (bench/ablate.py); the baseline keeps them
ABLATE: str | None = None
SKIP = 2.0  # seconds left out at the start of each rate: connecting, the first backfill page


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull  # no config file
    env.update(extra)
    return env


class Measured:
    """A subprocess measured from outside: wall time, CPU seconds and peak RSS (wait4)."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        self.seconds = self.cpu = self.rss_mb = 0.0
        self.code: int | None = None

    def wait(self, timeout: float = 600) -> Measured:
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
            time.sleep(0.05)
        self.seconds = time.perf_counter() - self.started
        self.cpu = usage.ru_utime + usage.ru_stime
        self.rss_mb = usage.ru_maxrss / 1024
        self.code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.code
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> Measured:
        if self.code is None:
            # (not Popen.send_signal: its poll() would reap a process that ended by itself,
            # and wait4 would find no child to measure)
            os.kill(self.proc.pid, sig)
        return self.wait(timeout)


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_simulator(
    work: Path, *, instances: int, rate: float, federation: int, seconds: float
) -> tuple[Measured, list[str]]:
    urls_file = work / f"instances-{instances}-{int(rate)}.txt"
    urls_file.unlink(missing_ok=True)
    # Publishing starts at once; what comes before the collector connects is not counted.
    cmd = [
        PY,
        "-m",
        "tootlake",
        "simulate",
        "-n",
        str(instances),
        "--rate",
        str(rate),
        "--open",
        "--federation",
        str(federation),
        "--edits",
        "0",
        "--deletes",
        "0",
        "--write-instances",
        str(urls_file),
        "--duration",
        str(seconds + 60),
    ]
    sim = Measured(cmd, _env(), work / f"simulator-{instances}-{int(rate)}.log")
    deadline = time.monotonic() + 120
    while not urls_file.exists() or len(urls_file.read_text().split()) < instances:
        if sim.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the simulator did not start: {sim.log.read_text()}")
        time.sleep(0.2)
    urls = [
        line.split()[0]
        for line in urls_file.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return sim, urls


def run_collector(
    work: Path, urls: list[str], seconds: float, name: str, source: Path | None = None
) -> dict[str, Any]:
    """One `tootlake collect` run; `source`: a checkout's src/ to run instead of this one."""
    config = work / f"{name}.toml"
    config.write_text(
        "[tokens]\n" + "".join(f'"{u.split("://", 1)[1]}" = "{TOKEN}"\n' for u in urls)
    )
    listing = work / f"{name}-instances.txt"
    listing.write_text("\n".join(urls) + "\n")
    stats = work / f"{name}-stats.json"
    # (the baseline's checkout is never ablated)
    run = [str(BENCH / "ablate.py"), ABLATE] if ABLATE and source is None else ["-m", "tootlake"]
    cmd = [
        PY,
        *run,
        "collect",
        "--instances-file",
        str(listing),
        "--lake",
        str(work / f"{name}-lake"),
        "--duration",
        str(seconds),
        "--flush-seconds",
        "5",
        "--quiet",
        "--stats",
        str(stats),
    ]
    env = _env(TOOTLAKE_CONFIG=str(config))
    if source is not None:
        env["PYTHONPATH"] = str(source)  # before the editable install's path
    proc = Measured(cmd, env, work / f"{name}.log").wait(seconds + 300)
    if proc.code != 0:
        raise RuntimeError(f"collect failed: {(work / f'{name}.log').read_text()[-3000:]}")
    result = json.loads(stats.read_text())
    s = result["stats"]
    written = s["posts"] + s["edits"]
    window = steady_window(result["samples"], seconds, s["events"], written)
    if window is None:  # too short a run for a steady part: the whole run
        window = (s["seconds"], s["events"], written)
    window_seconds, window_events, window_written = window
    return {
        "posts": written,
        "events": s["events"],
        "updates": s["events"] - s["deletes"] - s["edits"],
        "seconds": s["seconds"],
        # the whole run, start-up (probes, connecting) and the final drain and flush included
        "posts_per_second": round(written / s["seconds"], 1),
        "events_per_second": round(s["events"] / s["seconds"], 1),
        # the steady part: from SKIP s after the first event until the stop (see steady_window)
        "steady_seconds": round(window_seconds, 2),
        "steady_events_per_second": round(window_events / window_seconds, 1),
        "steady_posts_per_second": round(window_written / window_seconds, 1),
        "lag": result["lag"],
        "instances": result["instances"],
        "reconnects": result["reconnects"],
        "cpu_seconds": round(proc.cpu, 1),
        "cpu_seconds_exact": round(proc.cpu, 3),
        "cpu_cores_used": round(proc.cpu / proc.seconds, 2),
        # start-up (imports, probes) included: an upper bound of the cost of one event
        "cpu_us_per_event": round(proc.cpu / max(s["events"], 1) * 1e6),
        "peak_rss_mb": round(proc.rss_mb, 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
    }


def steady_window(
    samples: list[list[Any]], seconds: float, events: int, written: int
) -> tuple[float, int, int] | None:
    """(seconds, events, posts + edits) from the first sample SKIP s after the first event
    until the stop, `seconds` after the start: reading stops there, and what was read by
    then is drained into the lake, so the final counts (`events`, `written`) close the
    window. A sample is (t, posts + edits, lag, events), t counted from the start of
    `collect()`; its counts are of the posts created up to `lag` seconds before it. A
    collector that is behind at the stop never reads the rest: its rate comes out low."""
    first = next((row[0] for row in samples if row[3] > 0), None)
    if first is None:
        return None
    start = next((row for row in samples if first + SKIP <= row[0] <= seconds - 1.0), None)
    if start is None:
        return None
    t, written_then, lag, events_then = start
    begins = t - (lag or 0.0)
    return seconds - begins, events - events_then, written - written_then


def run_talk(work: Path, urls: list[str], seconds: float, name: str) -> dict[str, Any]:
    """The talk's listener, one process per instance, for `seconds`."""
    if not (VENDOR_1_8 / "mastodon").exists():
        raise SystemExit(
            "The talk's baseline needs Mastodon.py 1.8.0 in bench/data/vendor/mastodon-1.8.0:\n"
            "  pip download --no-deps -d /tmp/m 'Mastodon.py==1.8.0' && python -m zipfile -e "
            "/tmp/m/Mastodon.py-1.8.0-py2.py3-none-any.whl bench/data/vendor/mastodon-1.8.0"
        )
    env = _env(PYTHONPATH=f"{VENDOR_1_8}{os.pathsep}{BENCH}")
    procs = []
    for i, url in enumerate(urls):
        out = work / f"{name}-{i}.json"
        cmd = [
            PY,
            str(Path(__file__)),
            "--talk-listener",
            url,
            "--seconds",
            str(seconds),
            "--out",
            str(out),
        ]
        procs.append((Measured(cmd, env, work / f"{name}-{i}.log"), out))
    updates, rss, cpu, wall, steady = 0, [], 0.0, 0.0, 0.0
    for proc, out in procs:
        proc.wait(seconds + 120)
        if proc.code != 0 or not out.exists():
            raise RuntimeError(f"talk listener failed: {proc.log.read_text()[-3000:]}")
        data = json.loads(out.read_text())
        updates += data["updates"]
        rss.append(proc.rss_mb)
        cpu += proc.cpu
        wall = max(wall, data["seconds"])
        steady += data["steady_updates"] / data["steady_seconds"]  # the processes run at once
    return {
        "processes": len(procs),
        "posts": updates,
        "seconds": round(wall, 2),
        "posts_per_second": round(updates / wall, 1),
        # on_update calls per second over the steady part (SKIP s after the stream opened)
        "steady_posts_per_second": round(steady, 1),
        "cpu_seconds": round(cpu, 1),
        "cpu_us_per_event": round(cpu / max(updates, 1) * 1e6),
        "peak_rss_mb_per_process": round(max(rss), 1),
        "peak_rss_mb_total": round(sum(rss), 1),
    }


def talk_listener_main(url: str, seconds: float, out: str) -> None:
    """One talk listener: Mastodon.py 1.8.0 `stream_public` + the talk's BeautifulSoup
    transform into a list where the talk produced to Kafka."""
    import mastodon

    from talk_listener import talk_value_dict  # bench/talk_listener.py

    assert mastodon.Mastodon.__module__.startswith("mastodon")
    values: list[dict[str, Any]] = []

    class Listener(mastodon.StreamListener):  # type: ignore[misc]
        def on_update(self, status: Any) -> None:
            values.append(talk_value_dict(status, url))
            counted[0] += 1
            if len(values) >= 10_000:
                values.clear()

    counted = [0]
    client = mastodon.Mastodon(api_base_url=url, access_token=TOKEN, version_check_mode="none")
    started = time.perf_counter()
    handle = client.stream_public(Listener(), run_async=True)
    time.sleep(SKIP)
    at_skip, skipped = counted[0], time.perf_counter()
    time.sleep(max(seconds - SKIP, 1.0))
    total = counted[0]
    ended = time.perf_counter()
    Path(out).write_text(
        json.dumps(
            {
                "updates": total,
                "seconds": ended - started,
                "steady_updates": total - at_skip,
                "steady_seconds": ended - skipped,
            }
        )
    )
    try:
        handle.close()
    finally:
        os._exit(0)  # the stream thread may be blocked in a read


def firehose_main(ports_file: str, count: int) -> None:
    """A minimal Mastodon that streams real recorded statuses (fresh ids, uris and times)
    over SSE as fast as the client reads, for as long as it is connected: the collector's
    ceiling, without a simulator's cost. WebSocket is refused (404): the collector uses SSE."""
    import asyncio
    from datetime import UTC, datetime

    fixtures = ROOT / "tests" / "fixtures" / "real" / "mastodonsocial.json"
    templates = []
    for line in (
        fixtures.read_text(encoding="utf-8").rstrip("\n").split("\n")
    ):  # not splitlines: U+2028
        status = json.loads(line)
        status.update(id="@ID@", uri="https://firehose.example/s/@ID@", created_at="@AT@")
        templates.append(json.dumps(status).encode().split(b"@ID@"))
    counter = [10**17]

    def chunk(n: int) -> bytes:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3].encode() + b"Z"
        parts = []
        for _ in range(n):
            counter[0] += 1
            ident = str(counter[0]).encode()
            body = ident.join(templates[counter[0] % len(templates)]).replace(b"@AT@", now)
            parts.append(b"event: update\ndata: " + body + b"\n\n")
        data = b"".join(parts)
        return b"%x\r\n%s\r\n" % (len(data), data)

    instance = json.dumps(
        {
            "version": "4.5.0",
            "configuration": {
                "timelines_access": {"live_feeds": {"local": "public", "remote": "public"}}
            },
        }
    ).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                if path.startswith(b"/api/v1/streaming/public"):
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                    )
                    while True:
                        writer.write(chunk(100))
                        await writer.drain()
                body, status = b"[]", b"200 OK"
                if path.startswith((b"/api/v2/instance", b"/api/v1/instance")):
                    body = instance
                elif not path.startswith(b"/api/v1/timelines/public"):
                    body, status = b'{"error":"Not found"}', b"404 Not Found"
                writer.write(
                    b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (status, len(body), body)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, "127.0.0.1", 0) for _ in range(count)]
        ports = [srv.sockets[0].getsockname()[1] for srv in servers]
        Path(ports_file).write_text("".join(f"http://127.0.0.1:{p}\n" for p in ports))
        await asyncio.Event().wait()

    asyncio.run(main())


def bench_ceiling(work: Path, seconds: float) -> dict[str, Any]:
    """The collector's own ceiling: 4 firehose instances that never make it wait."""
    urls_file = work / "firehose.txt"
    server = Measured(
        [PY, str(Path(__file__)), "--firehose", str(urls_file)], _env(), work / "firehose.log"
    )
    try:
        deadline = time.monotonic() + 30
        while not urls_file.exists():
            if server.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((work / "firehose.log").read_text())
            time.sleep(0.1)
        urls = urls_file.read_text().split()
        cpu0, t0 = proc_cpu(server.proc.pid), time.monotonic()
        collector = run_collector(work, urls, seconds, "ceiling")
        server_cores = (proc_cpu(server.proc.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        server.stop(signal.SIGKILL)
    out = {
        "instances": len(urls),
        "seconds": seconds,
        "collector": collector,
        "firehose_cpu_cores": round(server_cores, 2),
    }
    print(json.dumps(out), flush=True)
    return out


# ----------------------------------------------------------------------------------------


# Of the statuses the simulator publishes, this share is public and streamable (the rest are
# boosts, unlisted posts and replies to others, which public streams never carry), as its own
# summary says ("46,739 collectable, 3,342 opted out, 19,090 hidden" of 69,171: 0.724).
STREAMABLE = 0.723


def count_streams(urls: list[str], seconds: float) -> tuple[float, int]:
    """Read the public SSE stream of every instance for `seconds`, counting `update` events
    without parsing them: (seconds, events) over the steady part (after SKIP s)."""
    import asyncio

    import aiohttp

    marker = b"event: update\n"
    counts = [0]

    async def read(session: Any, url: str) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.get(f"{url}/api/v1/streaming/public", headers=headers) as resp:
            tail = b""
            async for chunk in resp.content.iter_any():
                data = tail + chunk
                cut = data.rfind(b"\n") + 1  # count whole lines only; keep the rest
                counts[0] += data.count(marker, 0, cut)
                tail = data[cut:]

    async def main() -> tuple[float, int]:
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            tasks = [asyncio.create_task(read(session, url)) for url in urls]
            await asyncio.sleep(SKIP)
            t0, n0 = time.monotonic(), counts[0]
            await asyncio.sleep(max(seconds - SKIP, 1.0))
            t1, n1 = time.monotonic(), counts[0]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return t1 - t0, n1 - n0

    return asyncio.run(main())


def bench_simulator(work: Path, rates: list[float], seconds: float) -> dict[str, Any]:
    """The simulator alone: asked vs delivered streamed posts/s (4 instances, as throughput)."""
    out: dict[str, Any] = {"instances": 4, "federation": 0, "seconds": seconds, "runs": []}
    for rate in rates:
        sim, urls = start_simulator(
            work, instances=4, rate=round(rate / STREAMABLE), federation=0, seconds=seconds + 30
        )
        try:
            cpu0, t0 = proc_cpu(sim.proc.pid), time.monotonic()
            window, events = count_streams(urls, seconds)
            sim_cores = (proc_cpu(sim.proc.pid) - cpu0) / (time.monotonic() - t0)
        finally:
            sim.stop()
        run = {
            "rate": rate,
            "statuses_per_second_asked": round(rate / STREAMABLE),
            "delivered_per_second": round(events / window, 1),
            "seconds": round(window, 2),
            "simulator_cpu_cores": round(sim_cores, 2),
        }
        print(json.dumps(run), flush=True)
        out["runs"].append(run)
    return out


def baseline_source(rev: str) -> Path:
    """src/ of a git worktree at `rev` (bench/data/baseline-REV/), made once."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    tree = BENCH / "data" / f"baseline-{commit}"
    if not (tree / "src").exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--force", str(tree), commit],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
    return tree / "src"


def bench_throughput(
    work: Path, rates: list[float], seconds: float, baseline: Path | None = None, pairs: int = 1
) -> dict[str, Any]:
    """`rates`: posts/s on the streams; the simulator publishes rate / STREAMABLE. The talk's
    listener runs at the highest rate, after the collector, against the same simulator. With
    `baseline` (an older checkout's src/), that collector runs too, right after ours; with
    `pairs` > 1, ours and the baseline alternate that many times (a later run meets a
    simulator holding more posts: alternating spreads that over both) and the ratio is of
    the CPU per event of all the runs of each side."""
    out: dict[str, Any] = {"instances": 4, "federation": 0, "seconds": seconds, "runs": []}
    for rate in rates:
        runs = 2 * pairs if baseline is not None else 1  # and the talk's listener's
        sim, urls = start_simulator(
            work,
            instances=4,
            rate=round(rate / STREAMABLE),
            federation=0,
            seconds=(runs + 1) * (seconds + 15),
        )
        try:
            cpu0, t0 = proc_cpu(sim.proc.pid), time.monotonic()
            collector = run_collector(work, urls, seconds, f"tp{int(rate)}")
            sim_cores = (proc_cpu(sim.proc.pid) - cpu0) / (time.monotonic() - t0)
            before = None
            ours, theirs = [collector], []
            for pair in range(pairs if baseline is not None else 0):
                if pair:
                    ours.append(run_collector(work, urls, seconds, f"tp{int(rate)}-{pair}"))
                theirs.append(
                    run_collector(work, urls, seconds, f"base{int(rate)}-{pair}", baseline)
                )
            if theirs:
                before = theirs[0]
            talk = None
            if rate == max(rates):
                talk = run_talk(work, urls, seconds, f"talk{int(rate)}")
        finally:
            sim.stop()
        run: dict[str, Any] = {
            "rate": rate,
            "collector": collector,
            "talk_listener": talk,
            "simulator_cpu_cores": round(sim_cores, 2),
        }
        if before is not None:
            run["baseline_collector"] = before
            run["pairs"] = [
                [o["cpu_us_per_event"], t["cpu_us_per_event"]]
                for o, t in zip(ours, theirs, strict=True)
            ]
            run["cpu_per_event_vs_baseline"] = round(
                sum(o["cpu_seconds"] for o in ours)
                / sum(o["events"] for o in ours)
                / (sum(t["cpu_seconds"] for t in theirs) / sum(t["events"] for t in theirs)),
                3,
            )
        if talk:
            # Like for like: status updates handled per second, both over a steady window
            # (every event is an update here: the simulator makes no edits or deletes).
            talk_rate = max(talk["steady_posts_per_second"], 0.1)
            run["speedup"] = round(collector["steady_events_per_second"] / talk_rate, 1)
            run["speedup_written_posts"] = round(
                collector["steady_posts_per_second"] / talk_rate, 1
            )
        print(json.dumps(run), flush=True)
        out["runs"].append(run)
    return out


def bench_fleet(
    work: Path, instances: int, rate: float, seconds: float, talk_n: int
) -> dict[str, Any]:
    sim, urls = start_simulator(
        work, instances=instances, rate=rate, federation=0, seconds=seconds + 120
    )
    try:
        cpu0, t0 = proc_cpu(sim.proc.pid), time.monotonic()
        collector = run_collector(work, urls, seconds, "fleet")
        sim_cores = (proc_cpu(sim.proc.pid) - cpu0) / (time.monotonic() - t0)
        talk = run_talk(work, urls[:talk_n], min(seconds, 20), "fleet-talk")
    finally:
        sim.stop()
    per = talk["peak_rss_mb_per_process"]
    out = {
        "instances": instances,
        "rate": rate,
        "seconds": seconds,
        "collector": collector,
        "talk_listener_measured": talk,
        "talk_listener_projected_rss_mb": round(per * instances, 0),
        "simulator_cpu_cores": round(sim_cores, 2),
    }
    print(json.dumps(out), flush=True)
    return out


def bench_marginal(
    work: Path, rate: float, baseline: Path, short: float, long: float, repeats: int
) -> Any:
    """CPU per event beyond the fixed costs: ours and the baseline alternate, each running
    `short` then `long` seconds against one simulator, `repeats` times; the long runs' extra
    CPU over their extra events is the cost of one more event, what is left of the short
    runs' CPU the cost of a run whatever its length (start-up, probes, the end-of-run merge's
    start). Sums over the repeats: one pair of runs is too noisy on a shared machine."""
    sim, urls = start_simulator(
        work, instances=4, rate=round(rate / STREAMABLE), federation=0,
        seconds=2 * repeats * (short + long + 20) + 120,
    )  # fmt: skip
    sides = {"ours": None, "baseline": baseline}
    runs: dict[str, list[list[dict[str, Any]]]] = {side: [] for side in sides}
    try:
        for n in range(repeats):
            for side, source in sides.items():
                pair = [
                    run_collector(work, urls, s, f"m-{side}-{s:g}-{n}", source)
                    for s in (short, long)
                ]
                runs[side].append(pair)
                print(side, [(r["events"], r["cpu_seconds_exact"]) for r in pair], flush=True)
    finally:
        sim.stop()
    out: dict[str, Any] = {"rate": rate, "short": short, "long": long, "repeats": repeats}
    cpu = "cpu_seconds_exact"
    for side, pairs in runs.items():
        extra_cpu = sum(b[cpu] - a[cpu] for a, b in pairs)
        extra_events = sum(b["events"] - a["events"] for a, b in pairs)
        marginal = extra_cpu / max(extra_events, 1)
        out[side] = {
            "runs": [[{k: r[k] for k in ("seconds", "events", cpu)} for r in p] for p in pairs],
            "marginal_us_per_event": round(marginal * 1e6, 1),
            "fixed_cpu_seconds": round(
                sum(a[cpu] - marginal * a["events"] for a, _ in pairs) / len(pairs), 2
            ),
        }
    out["marginal_ratio"] = round(
        out["ours"]["marginal_us_per_event"] / out["baseline"]["marginal_us_per_event"], 3
    )
    return out


SECTIONS = ("simulator", "ceiling", "throughput", "fleet", "marginal")


def keep_earlier(results: dict[str, Any], path: Path) -> None:
    """A partial run (`--only`) replaces only the sections it ran: the others stay from the
    earlier results, marked with when they were made (`kept`: section -> time)."""
    if not path.exists():
        return
    earlier = json.loads(path.read_text())
    kept = dict(earlier.get("kept", {}))
    for name in SECTIONS:
        if name not in results and name in earlier:
            results[name] = earlier[name]
            kept.setdefault(name, earlier.get("when"))
            if name == "throughput" and "baseline" in earlier:
                results["baseline"] = earlier["baseline"]
        else:
            kept.pop(name, None)
    if kept:
        results["kept"] = kept


def write_markdown(results: dict[str, Any], path: Path) -> None:
    lines = [
        "# Collector benchmarks",
        "",
        f"Run {results['when']} on {results['machine']} (load average before the run: "
        f"{results.get('load_average_before', '?')}; the cores are shared with other work, so "
        "CPU per event is the steadier figure). Produced by `bench/collect_bench.py`.",
        "",
    ]
    if results.get("ablated"):
        lines += [
            f'**A measuring run: "ours" is our collector without `{results["ablated"]}` '
            "(bench/ablate.py says what each part leaves out); the baseline is the whole "
            "collector.** 1 minus the ratio is those parts' share of its CPU per event.",
            "",
        ]
    if results.get("kept"):
        lines += [
            "Kept from earlier runs (a partial run replaces only what it ran): "
            + "; ".join(f"{name}, made {when}" for name, when in results["kept"].items())
            + ".",
            "",
        ]
    sm = results.get("simulator")
    if sm:
        lines += [
            "## Simulator alone (4 instances, read by clients that only count events)",
            "",
            f"Steady part of {sm['seconds']:g} s runs (the first {SKIP:g} s left out).",
            "",
            "| streamed posts/s asked | statuses/s published | delivered events/s "
            "| simulator CPU cores |",
            "|---|---|---|---|",
        ]
        for run in sm["runs"]:
            lines.append(
                f"| {run['rate']:g} | {run['statuses_per_second_asked']:,} "
                f"| {run['delivered_per_second']:,} | {run['simulator_cpu_cores']} |"
            )
        lines.append("")
    tp = results.get("throughput")
    if tp:
        lines += [
            "## Throughput (4 instances, one event per post, every event an update)",
            "",
            f"Rates over the steady part of each {tp['seconds']:g} s run: from {SKIP:g} s "
            "after the first event until the stop (the talk's listener: from "
            f"{SKIP:g} s after its stream opened). Whole run: start-up (probes, connecting) "
            "and the final drain included. Speedup: updates/s handled on both sides (the "
            "talk's on_update calls), like for like; in brackets, the posts we write "
            "(opted-out authors skipped) over the talk's.",
            "",
            "| streamed posts/s asked | collector updates/s | posts/s written "
            "| events/s (whole run) | lag median 1st/2nd half (s) | lag max (s) "
            "| collector CPU cores | collector CPU µs/event | simulator CPU cores "
            "| talk listener posts/s | talk CPU µs/post | speedup |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for run in tp["runs"]:
            c, lag, t = run["collector"], run["collector"]["lag"], run.get("talk_listener")
            speedup = (
                f"{run['speedup']}x ({run['speedup_written_posts']}x)" if "speedup" in run else "-"
            )
            lines.append(
                f"| {run['rate']:g} | {c['steady_events_per_second']:,} "
                f"| {c['steady_posts_per_second']:,} | {c['events_per_second']:,} | "
                f"{lag.get('lag_median_first_half')} / {lag.get('lag_median_second_half')} | "
                f"{lag.get('lag_max')} | {c['cpu_cores_used']} | {c.get('cpu_us_per_event')} | "
                f"{run['simulator_cpu_cores']} | {t['steady_posts_per_second'] if t else '-'} | "
                f"{t.get('cpu_us_per_event', '-') if t else '-'} | {speedup} |"
            )
        lines.append("")
        compared = [run for run in tp["runs"] if "baseline_collector" in run]
        if compared:
            alternating = any(len(run.get("pairs", [])) > 1 for run in compared)
            lines += [
                f"### Against the collector of `{results.get('baseline')}`, same simulator, "
                + ("alternating with ours" if alternating else "right after ours"),
                "",
                "| streamed posts/s asked | updates/s (ours / baseline) "
                "| CPU µs/event (ours / baseline) | ratio | peak RSS MB (ours / baseline) |",
                "|---|---|---|---|---|",
            ]
            for run in compared:
                c, b = run["collector"], run["baseline_collector"]
                cpu = ", ".join(f"{o} / {t}" for o, t in run.get("pairs", [])) or (
                    f"{c['cpu_us_per_event']} / {b['cpu_us_per_event']}"
                )
                lines.append(
                    f"| {run['rate']:g} | {c['steady_events_per_second']:,} / "
                    f"{b['steady_events_per_second']:,} | {cpu} | "
                    f"{run['cpu_per_event_vs_baseline']} | "
                    f"{c['peak_rss_mb']} / {b['peak_rss_mb']} |"
                )
            if alternating:
                lines += [
                    "",
                    "Ours and the baseline ran alternately (ours first), one pair of CPU "
                    "figures per pair of runs; the ratio is of all the CPU per all the events "
                    "of each side.",
                ]
            lines.append("")
    mg = results.get("marginal")
    if mg:
        lines += [
            f"## CPU per event beyond a run's fixed costs ({mg['rate']:g} posts/s, against "
            f"`{results.get('baseline')}`)",
            "",
            f"Each side ran {mg['short']:g} s then {mg['long']:g} s against one simulator, the "
            f"sides alternating, {mg['repeats']} times: the long runs' extra CPU over their "
            "extra events is what one more event costs; what is left of the short runs' CPU is "
            "what a run costs whatever its length (start-up, probes, and for ours the start of "
            "the end-of-run merge of `posts` in its child process, whose work grows with the "
            "posts).",
            "",
            "| | CPU s / events, short runs | CPU s / events, long runs | µs per event beyond "
            "the fixed costs | fixed CPU s |",
            "|---|---|---|---|---|",
        ]
        for side in ("ours", "baseline"):
            m = mg[side]
            shorts = ", ".join(
                f"{a['cpu_seconds_exact']:.2f} / {a['events']:,}" for a, _ in m["runs"]
            )
            longs = ", ".join(
                f"{b['cpu_seconds_exact']:.2f} / {b['events']:,}" for _, b in m["runs"]
            )
            lines.append(
                f"| {side} | {shorts} | {longs} "
                f"| {m['marginal_us_per_event']} | {m['fixed_cpu_seconds']} |"
            )
        lines += [
            "",
            f"Ratio of the costs per event beyond the fixed ones: {mg['marginal_ratio']}",
            "",
        ]
    ce = results.get("ceiling")
    if ce:
        c = ce["collector"]
        lines += [
            "## Ceiling (4 firehose instances that never make the collector wait)",
            "",
            "| events/s | posts/s written | CPU µs/event | collector CPU cores "
            "| firehose CPU cores | lag median 1st / 2nd half (s) | peak RSS |",
            "|---|---|---|---|---|---|---|",
            f"| {c['events_per_second']:,} | {c['posts_per_second']:,} "
            f"| {c['cpu_us_per_event']} | {c['cpu_cores_used']} | {ce['firehose_cpu_cores']} "
            f"| {c['lag'].get('lag_median_first_half')} / "
            f"{c['lag'].get('lag_median_second_half')} | {c['peak_rss_mb']} MB |",
            "",
        ]
    fl = results.get("fleet")
    if fl:
        c, t = fl["collector"], fl["talk_listener_measured"]
        lines += [
            f"## Fleet ({fl['instances']} instances, {fl['rate']:g} posts/s in all)",
            "",
            "| | collector (1 process) | talk listener (1 process per instance) |",
            "|---|---|---|",
            f"| peak RSS | {c['peak_rss_mb']:,} MB | {t['peak_rss_mb_per_process']} MB each: "
            f"{fl['talk_listener_projected_rss_mb']:,.0f} MB for {fl['instances']} "
            f"(measured on {t['processes']}) |",
            f"| instances streaming at the end | {c['instances']} | - |",
            f"| lag median 1st / 2nd half | {c['lag'].get('lag_median_first_half')} / "
            f"{c['lag'].get('lag_median_second_half')} s | - |",
            f"| posts/s | {c['posts_per_second']} | - |",
            "",
        ]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="Collector benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs, results in bench/data/quick/"
    )
    parser.add_argument("--only", default="simulator,ceiling,throughput,fleet")
    parser.add_argument("--talk-listener", help=argparse.SUPPRESS)
    parser.add_argument("--firehose", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument(
        "--rates",
        default="1000,2500,5000,7000",
        help="streamed posts/s (the talk's listener runs at the highest: give one where the "
        "collector is not starved, above the 5,000 of the target)",
    )
    parser.add_argument("--fleet-instances", type=int, default=1000)
    parser.add_argument(
        "--baseline", metavar="REV",
        help="also run the collector of this git revision (e.g. HEAD, main~3) after ours at "
        "each throughput rate, for its CPU per event in the same run",
    )  # fmt: skip
    parser.add_argument(
        "--pairs", type=int, default=1,
        help="with --baseline: run ours and the baseline alternately this many times",
    )  # fmt: skip
    parser.add_argument(
        "--results", type=Path, help="folder for collect.json and collect.md (default: "
        "bench/results/, or bench/data/quick/ with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--ablate", metavar="PARTS",
        help="run our collector without these parts of its work (bench/ablate.py: decode, "
        "merge, commit, record), to measure what each costs live; use with --baseline HEAD. "
        "Results in bench/results/ablate-PARTS/ unless --results",
    )  # fmt: skip
    args = parser.parse_args()
    if args.talk_listener:
        talk_listener_main(args.talk_listener, args.seconds, args.out)
        return
    if args.firehose:
        firehose_main(args.firehose, 4)
        return
    seconds = 15.0 if args.quick else 30.0
    only = set(args.only.split(","))
    rates = [float(r) for r in args.rates.split(",")]
    folder = args.results or (BENCH / "data" / "quick" if args.quick else RESULTS)
    if args.ablate:
        from ablate import unknown_parts  # (bench/, this script's folder)

        wrong = unknown_parts(args.ablate)
        if wrong:  # before a simulator starts, not when the first collector does
            parser.error(f"--ablate: {wrong}")
        global ABLATE
        ABLATE = args.ablate
        if not args.results:
            folder = RESULTS / f"ablate-{args.ablate.replace(',', '-')}"
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores",
        "load_average_before": round(os.getloadavg()[0], 1),
    }
    if args.ablate:
        results["ablated"] = args.ablate
    work = BENCH / "data" / "collect-work"  # logs and lakes of the last run, git-ignored
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if "simulator" in only:
        results["simulator"] = bench_simulator(work, rates, min(seconds, 12.0))
    if "ceiling" in only:
        results["ceiling"] = bench_ceiling(work, seconds)
    if "throughput" in only:
        baseline = baseline_source(args.baseline) if args.baseline else None
        results["baseline"] = args.baseline
        results["throughput"] = bench_throughput(work, rates, seconds, baseline, args.pairs)
    if "fleet" in only:
        results["fleet"] = bench_fleet(work, args.fleet_instances, 500.0, 2 * seconds, 20)
    if "marginal" in only:
        if not args.baseline:
            parser.error("--only marginal needs --baseline REV")
        results["baseline"] = args.baseline
        results["marginal"] = bench_marginal(
            work,
            max(rates),
            baseline_source(args.baseline),
            seconds / 2,
            seconds * 1.5,
            args.pairs,
        )
    keep_earlier(results, folder / "collect.json")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "collect.json").write_text(json.dumps(results, indent=1))
    write_markdown(results, folder / "collect.md")
    print((folder / "collect.md").read_text())


if __name__ == "__main__":
    main()
