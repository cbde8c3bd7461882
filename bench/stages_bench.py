"""Where a collected post's CPU goes, stage by stage, in one process (results:
bench/results/stages.*).

    python bench/stages_bench.py [--frames 60000] [--rounds 3]

The simulator (4 instances, 5,000 posts/s in all) streams WebSocket frames; a client records
`--frames` of them as they came. Then each round, in a fresh process, runs the collector's
own code over them, as the collector runs it but without sockets or threads, 2,000 frames at
a time through every stage (the collector's memory is reused likewise) and a flush every
24,000 (the collector benchmark flushes every 5 s):

- `InstanceWorker._emit_now` on the messages of each read (10 at a time: what one read held
  in the collector at this rate), and the bridge's `take`: framing, `decode_status`, the
  event, cursor bookkeeping (of which `ws_frame` and `decode_status` are also timed alone);
- the Recorder (`pipeline.batches`, dedupe on, the default consent);
- the lake writer: `add` (Arrow conversion), then `flush` (Delta commits of `posts_all` and
  `sightings`, delta-rs' own threads included), then the records' deallocation.

CPU is process time per frame. bench/collect_bench.py measures the whole collector; the gap
between the two is receiving from the socket, the hand-overs between threads, start-up and
the end-of-run merge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import collect_bench as cb  # noqa: E402
import harness  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WORK = cb.ROOT / "bench" / "data" / "stages"
CHUNK = 2_000  # frames taken through every stage together
FLUSH_CHUNKS = 12  # a flush every 24,000 frames: the collector benchmark flushes every 5 s
READ = 10  # messages handed over together, as one socket read held them in the collector
STAGES = (
    ("ws_frame", "`ws_frame` alone (part of the next row)"),
    ("decode_status", "`decode_status` alone (part of the next row)"),
    ("emit", "`_emit_now` + bridge `take`: frame, decode, event, cursors"),
    ("record", "Recorder: gates, dedupe, `to_post`, batches"),
    ("add", "writer `add`: Arrow conversion"),
    ("flush", "writer `flush`: Delta commits (Parquet, ZSTD)"),
    ("dealloc", "deallocating the records"),
)


async def _capture(urls: list[str], count: int) -> list[tuple[str, bytes]]:
    import picows

    frames: list[tuple[str, bytes]] = []
    done = asyncio.Event()

    def listener(host: str) -> Any:
        class Listener(picows.WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == picows.WSMsgType.TEXT and len(frames) < count:
                    frames.append((host, frame.get_payload_as_bytes()))
                    if len(frames) == count:
                        done.set()

        return Listener

    for url in urls:
        host = url.split("://", 1)[1]
        ws = f"ws://{host}/api/v1/streaming?stream=public&access_token={cb.TOKEN}"
        await picows.ws_connect(lambda host=host: listener(host)(), ws, use_aiofastnet=False)
    await asyncio.wait_for(done.wait(), timeout=count / 1000 + 60)
    return frames


def _save(frames: list[tuple[str, bytes]], path: Path) -> None:
    with open(path, "wb") as out:
        for host, data in frames:
            name = host.encode()
            out.write(len(name).to_bytes(2, "little") + name + len(data).to_bytes(4, "little"))
            out.write(data)


def _load(path: Path) -> list[tuple[str, bytes]]:
    raw, at, frames = path.read_bytes(), 0, []
    while at < len(raw):
        n = int.from_bytes(raw[at : at + 2], "little")
        host = raw[at + 2 : at + 2 + n].decode()
        at += 2 + n
        size = int.from_bytes(raw[at : at + 4], "little")
        frames.append((host, raw[at + 4 : at + 4 + size]))
        at += 4 + size
    return frames


def _round(path: Path) -> dict[str, float]:
    """One round over the recorded frames: CPU microseconds per frame, by stage."""
    import tempfile

    from tootlake._arrow import skip_pandas_probe
    from tootlake._gc import fewer_collections
    from tootlake.lake.writer import LakeWriter
    from tootlake.pipeline import Recorder, RunStats, batches
    from tootlake.record.status import decode_status
    from tootlake.sources.fleet import FleetSource, InstanceSpec, InstanceWorker
    from tootlake.sources.mastodon import parse_ws_frame
    from tootlake.sources.state import CollectorState

    skip_pandas_probe()  # as the CLI does: pyarrow would import pandas to ask about a list
    frames = _load(path)
    n = len(frames)
    out: dict[str, float] = {}

    spent = dict.fromkeys((name for name, _ in STAGES), 0.0)

    def timed(name: str, work: Any) -> Any:
        started = time.process_time()
        result = work()
        spent[name] += time.process_time() - started
        return result

    work = Path(tempfile.mkdtemp(dir=WORK))
    state = CollectorState(work / "state")
    hosts = sorted({host for host, _ in frames})
    fleet = FleetSource([InstanceSpec(f"http://{host}") for host in hosts], state)
    workers = {w.host: w for w in (InstanceWorker(fleet, spec) for spec in fleet.specs)}
    bridge = fleet._bridge  # noqa: SLF001 - the bridge the loop hands events to
    pending: dict[str, list[bytes]] = {host: [] for host in hosts}

    def emit(chunk: list[tuple[str, bytes]], last: bool) -> list[Any]:
        events: list[Any] = []
        for host, data in chunk:
            read = pending[host]
            read.append(data)
            if len(read) == READ:
                assert workers[host]._emit_now(read)  # noqa: SLF001
                pending[host] = []
                events += bridge.take(0) or []
        for host, read in pending.items():
            if read and last:
                assert workers[host]._emit_now(read)  # noqa: SLF001
                events += bridge.take(0) or []
        return events

    def alone(chunk: list[tuple[str, bytes]]) -> None:
        payloads = timed("ws_frame", lambda: [parse_ws_frame(data) for _, data in chunk])
        timed("decode_status", lambda: [decode_status(p[1]) for p in payloads if p and p[1]])

    recorder = Recorder(RunStats(), dedupe=True)
    writer = LakeWriter(str(work / "lake"), sightings=True)
    recorder.use_rows(writer.new_rows)  # as `pipeline.run` does: the fused path's rows
    # in chunks, as the collector's memory is reused: a run holding every frame's objects
    # at once would pay the kernel for fresh pages instead
    with fewer_collections():
        for at in range(0, n, CHUNK):
            chunk = frames[at : at + CHUNK]
            alone(chunk)
            events = timed("emit", lambda chunk=chunk, at=at: emit(chunk, at + CHUNK >= n))
            made = timed(
                "record", lambda e=events: list(batches(iter(e), recorder, batch_size=2000))
            )
            del events

            def add(made: list[Any] = made) -> None:
                for batch in made:
                    writer.add(batch.records)

            timed("add", add)
            timed("dealloc", made.clear)
            if (at // CHUNK + 1) % FLUSH_CHUNKS == 0 or at + CHUNK >= n:
                timed("flush", writer.flush)
    out.update({name: round(cpu / n * 1e6, 2) for name, cpu in spent.items()})
    out["frames"] = n
    out["posts"] = recorder.stats.posts
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--round", type=Path, help=argparse.SUPPRESS)  # FRAMES FILE
    args = parser.parse_args()
    if args.round:
        print(json.dumps(_round(args.round)), flush=True)
        return
    machine = harness.machine()  # (its load average: before this benchmark's own work)
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "frames.bin"
    rate = round(5000 / cb.STREAMABLE)
    sim, urls = cb.start_simulator(
        WORK, instances=4, rate=rate, federation=0, seconds=args.frames / 1000 + 90
    )
    try:
        _save(asyncio.run(_capture(urls, args.frames)), path)
    finally:
        sim.stop()
    runs = []
    for _ in range(args.rounds):
        done = subprocess.run(
            [sys.executable, __file__, "--round", str(path)],
            capture_output=True, text=True, timeout=600, check=True, env=cb._env(),
        )  # fmt: skip
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(runs[-1], flush=True)
    medians = {name: statistics.median(r[name] for r in runs) for name, _ in STAGES}
    chain = sum(v for k, v in medians.items() if k not in ("ws_frame", "decode_status"))
    result = {
        "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "frames": runs[0]["frames"],
        "posts": runs[0]["posts"],
        "runs": runs,
        "median_us_per_frame": medians,
        "chain_us_per_frame": round(chain, 2),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "stages.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# A collected post's CPU, stage by stage",
        "",
        f"Run {result['made']} on {machine['cpus']} cores (load average before: "
        f"{machine['load_average_at_start'][0]}) by `bench/stages_bench.py`: "
        f"{result['frames']:,} WebSocket frames recorded from the simulator (4 instances, "
        f"5,000 posts/s), {result['posts']:,} of them posts written; the collector's code run "
        f"over them in one process, no sockets or threads, {args.rounds} rounds (median).",
        "",
        "| stage | CPU µs per frame, each round | median |",
        "|---|---|---|",
    ]
    for name, what in STAGES:
        each = ", ".join(f"{r[name]:.2f}" for r in runs)
        lines.append(f"| {what} | {each} | {medians[name]:.2f} |")
    lines += [
        "",
        f"The chain (every row but the first two): {chain:.2f} µs per frame. The collector's "
        "whole CPU per event is in bench/results/collect.md; the difference is receiving "
        "from the socket, the hand-overs between its threads, start-up and the end-of-run "
        "merge.",
        "",
    ]
    (args.results / "stages.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
