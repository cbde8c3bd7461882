"""The cost of receiving a streaming WebSocket message: websockets (what the collector used)
against picows (what it uses), alternating in one run (results: bench/results/ws.*).

    python bench/ws_bench.py [--rounds 3] [--seconds 15]

A simulated fediverse (`tootlake simulate`, 4 instances, its own process) streams 5,000
posts/s in all. A client process per round reads every instance's public WebSocket stream
and does with each message what the collector does first (`parse_ws_frame`: the event and
its payload); its CPU per message is measured over `--seconds` after 3 s of connecting. Each
library runs the way the collector would run it: websockets' `recv()` per message, picows'
callback per frame (on asyncio's transports). The collector's whole CPU per event is
bench/collect_bench.py's business; this isolates the receiving.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import collect_bench as cb  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("websockets", "picows")


def _ws_urls(urls: list[str]) -> list[str]:
    return [
        f"ws://{u.split('://', 1)[1]}/api/v1/streaming?stream=public&access_token={cb.TOKEN}"
        for u in urls
    ]


async def _client(kind: str, urls: list[str], seconds: float) -> dict[str, float]:
    from tootlake.sources.mastodon import parse_ws_frame

    count = [0]
    tasks: list[asyncio.Task[None]] = []
    if kind == "websockets":
        from websockets.asyncio.client import connect

        async def one(url: str) -> None:
            async with connect(url, compression=None, max_size=1 << 20) as ws:
                while True:
                    parse_ws_frame(await ws.recv(decode=False))
                    count[0] += 1

        tasks = [asyncio.create_task(one(u)) for u in urls]
    else:
        import picows

        class Listener(picows.WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == picows.WSMsgType.TEXT:
                    parse_ws_frame(frame.get_payload_as_bytes())
                    count[0] += 1

        for url in urls:
            await picows.ws_connect(Listener, url, use_aiofastnet=False)
    await asyncio.sleep(3)
    cpu0, n0, t0 = time.process_time(), count[0], time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, n1, t1 = time.process_time(), count[0], time.monotonic()
    for task in tasks:
        task.cancel()
    return {
        "us_per_message": round((cpu1 - cpu0) / max(n1 - n0, 1) * 1e6, 2),
        "messages_per_second": round((n1 - n0) / (t1 - t0), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--client", nargs="+", help=argparse.SUPPRESS)  # KIND SECONDS URL...
    args = parser.parse_args()
    if args.client:
        kind, seconds, *urls = args.client
        print(json.dumps(asyncio.run(_client(kind, urls, float(seconds)))), flush=True)
        os._exit(0)  # (the connections are not closed politely: nothing to wait for)
    work = cb.ROOT / "bench" / "data" / "ws-bench"
    work.mkdir(parents=True, exist_ok=True)
    rate = round(5000 / cb.STREAMABLE)
    budget = args.rounds * len(KINDS) * (args.seconds + 10) + 60
    sim, urls = cb.start_simulator(work, instances=4, rate=rate, federation=0, seconds=budget)
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    try:
        for _ in range(args.rounds):
            for kind in KINDS:  # alternating: the machine's drift falls on both
                out = subprocess.run(
                    [sys.executable, __file__, "--client", kind, str(args.seconds),
                     *_ws_urls(urls)],
                    capture_output=True, text=True, timeout=args.seconds + 120, check=True,
                    env=cb._env(),
                )  # fmt: skip
                runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(kind, runs[kind][-1], flush=True)
    finally:
        sim.stop()
    medians = {k: statistics.median(r["us_per_message"] for r in v) for k, v in runs.items()}
    result = {
        "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores",
        "load_average_before": round(os.getloadavg()[0], 1),
        "seconds": args.seconds,
        "runs": runs,
        "median_us_per_message": medians,
        "ratio": round(medians["picows"] / medians["websockets"], 2),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "ws.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Receiving a streaming WebSocket message",
        "",
        f"Run {result['made']} on {result['machine']} by `bench/ws_bench.py`: the simulator "
        f"streaming 5,000 posts/s from 4 instances, one client process per round reading all "
        f"four ({args.seconds:g} s measured after 3 s), the two libraries alternating.",
        "",
        "| library | CPU µs per message, each round | median | messages/s |",
        "|---|---|---|---|",
    ]
    for kind, rows in runs.items():
        each = ", ".join(f"{r['us_per_message']:.1f}" for r in rows)
        rate_seen = statistics.median(r["messages_per_second"] for r in rows)
        lines.append(f"| {kind} | {each} | {medians[kind]:.1f} | {rate_seen:,.0f} |")
    lines += ["", f"picows / websockets: {result['ratio']}", ""]
    (args.results / "ws.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
