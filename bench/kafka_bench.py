"""The Kafka benchmarks: tootlake's producer and sink worker against the talk's patterns, on the
same broker, with the same posts, in the same run.

    producing  posts/s into a topic (4 partitions): tootlake's KafkaTransport (idempotent,
               acks=all, zstd, linger 50 ms, delivery reports served by a thread, batches
               acknowledged once delivered) against the talk's AvroProducer pattern: produce,
               then flush, for every message (librdkafka's defaults otherwise, acks=all).
               Both send the same Post records with the same Avro encoder (single-object
               envelopes), so only the way of producing differs.        target >= 20x
    sinking    `tootlake sink --until-idle 1` as a whole process, over a topic pre-filled
               with 500,000 posts (created over 10 days, like the talk's), into a fresh lake
               (Delta tables, the offsets committed with the rows):
               posts/s = posts / (wall time - the 1 s idle wait).    target >= 100,000/s
               Baselines, whole processes too: the talk's Kafka Connect S3 sink pattern
               (bench/talk_sink.py: each message decoded on its own, a Parquet file every
               1,000 messages, a commit per file), and tootlake's own worker with its bulk
               decoder turned off (fastavro message by message), which shows what the bulk
               decoder buys. With --baseline REV, also the `tootlake sink` of that revision
               (its src/ taken with `git archive`, run with PYTHONPATH), same topic, same run.

    python bench/kafka_bench.py              full sizes; bench/results/kafka.json and .md
    python bench/kafka_bench.py --quick      small sizes; bench/data/quick/kafka.*
    python bench/kafka_bench.py --only sinking --baseline HEAD

The broker is `$BENCH_KAFKA_BOOTSTRAP`, or one started with scripts/kafka.sh on free ports
(stopped and purged at the end). Runs alternate between the sides; figures are medians. Wall
time depends on what else the 2 shared cores do, so CPU time (user + system, from the
kernel) and the load average are recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    BENCH,
    DATA,
    RESULTS,
    ROOT,
    free_port_pair,
    log,
    machine,
    run_process,
    summarize,
)

TARGETS = {"producing": 20.0, "sinking": 100_000.0}
SIZES: dict[str, dict[str, int]] = {
    "full": {"ours_posts": 200_000, "talk_posts": 2_000, "sink_posts": 500_000, "repeat": 3},
    "quick": {"ours_posts": 20_000, "talk_posts": 300, "sink_posts": 50_000, "repeat": 1},
}
UNTIL_IDLE = 1.0
PARTITIONS = 4


# ----------------------------------------------------------------------------------------
# the broker


class Broker:
    def __init__(self) -> None:
        self.bootstrap = os.environ.get("BENCH_KAFKA_BOOTSTRAP", "")
        self.env: dict[str, str] | None = None

    def __enter__(self) -> Broker:
        if not self.bootstrap:
            port = free_port_pair()
            self.env = {**os.environ, "KAFKA_PORT": str(port)}
            log(f"starting a broker on 127.0.0.1:{port} (scripts/kafka.sh up)")
            subprocess.run(
                [str(ROOT / "scripts" / "kafka.sh"), "up"],
                env=self.env,
                check=True,
                capture_output=True,
                timeout=180,
            )
            self.bootstrap = f"127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.env is not None:
            subprocess.run(
                [str(ROOT / "scripts" / "kafka.sh"), "down", "--purge"],
                env=self.env,
                capture_output=True,
                timeout=180,
            )

    def topic(self, prefix: str) -> str:
        from confluent_kafka.admin import AdminClient, NewTopic

        name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(timeout=30)
        return name


# ----------------------------------------------------------------------------------------
# posts


def make_posts(n: int) -> list[Any]:
    """n distinct posts from the real recorded statuses (uri and id made unique), created over
    ten days (3 to 12 February 2023, the talk's collection)."""
    from datasets import real_statuses  # bench/datasets.py
    from tootlake.record import from_status, skip_reason

    base = []
    for observed_on, status in real_statuses():
        if skip_reason(status) is None:
            try:
                base.append(from_status(status, observed_on))
            except Exception:
                continue
    start = datetime(2023, 2, 3, tzinfo=UTC)
    step = timedelta(days=10) / n
    return [
        msgspec.structs.replace(
            base[k % len(base)],
            uri=f"{base[k % len(base)].uri}#{k}",
            id=f"{base[k % len(base)].id}{k:07d}",
            created_at=start + step * k,
        )
        for k in range(n)
    ]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ----------------------------------------------------------------------------------------
# producing


def produce_ours(bootstrap: str, topic: str, posts: list[Any]) -> dict[str, float]:
    from tootlake.kafka.producer import KafkaTransport
    from tootlake.transports import Batch

    transport = KafkaTransport(bootstrap, topic)
    started, cpu = time.perf_counter(), _cpu()
    for i in range(0, len(posts), 2000):
        transport.send(Batch(posts[i : i + 2000]))
    transport.close()
    return _produced(len(posts), started, cpu)


def _produced(posts: int, started: float, cpu: float) -> dict[str, float]:
    """Figures of a producing run that began at perf_counter `started`, CPU time `cpu`."""
    seconds = time.perf_counter() - started
    return {
        "posts": posts,
        "seconds": seconds,
        "cpu_seconds": _cpu() - cpu,
        "posts_per_second": posts / seconds,
    }


def produce_talk(bootstrap: str, topic: str, posts: list[Any]) -> dict[str, float]:
    """The talk's pattern: `producer.produce(topic=..., value=...)` then `producer.flush()`."""
    from confluent_kafka import Producer

    from tootlake.kafka.encode import single_object_encoder

    encode = single_object_encoder()
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.list_topics(timeout=10)
    started, cpu = time.perf_counter(), _cpu()
    for post in posts:
        producer.produce(topic=topic, value=encode(post))
        producer.flush()
    return _produced(len(posts), started, cpu)


def bench_producing(broker: Broker, size: dict[str, int]) -> dict[str, Any]:
    posts = make_posts(size["ours_posts"])
    ours, talk = [], []
    for run in range(size["repeat"]):
        talk.append(
            produce_talk(broker.bootstrap, broker.topic("talk"), posts[: size["talk_posts"]])
        )
        ours.append(produce_ours(broker.bootstrap, broker.topic("ours"), posts))
        log(
            f"producing run {run + 1}: ours {ours[-1]['posts_per_second']:,.0f} posts/s, "
            f"talk {talk[-1]['posts_per_second']:,.0f} posts/s"
        )
    ours_rate = statistics.median(r["posts_per_second"] for r in ours)
    talk_rate = statistics.median(r["posts_per_second"] for r in talk)
    return {
        "ours": {
            "posts": size["ours_posts"],
            "posts_per_second": summarize([r["posts_per_second"] for r in ours]),
            "cpu_us_per_post": summarize([r["cpu_seconds"] / r["posts"] * 1e6 for r in ours]),
        },
        "talk": {
            "posts": size["talk_posts"],
            "posts_per_second": summarize([r["posts_per_second"] for r in talk]),
            "cpu_us_per_post": summarize([r["cpu_seconds"] / r["posts"] * 1e6 for r in talk]),
        },
        "speedup": round(ours_rate / talk_rate, 1),
        "target": TARGETS["producing"],
        "met": ours_rate / talk_rate >= TARGETS["producing"],
    }


# ----------------------------------------------------------------------------------------
# sinking


def fill(broker: Broker, n: int) -> tuple[str, dict[str, float]]:
    topic = broker.topic("sink")
    posts = make_posts(n)
    result = produce_ours(broker.bootstrap, topic, posts)
    log(f"filled {topic} with {n:,} posts at {result['posts_per_second']:,.0f} posts/s")
    return topic, result


def sink_ours(
    broker: Broker, topic: str, lake: Path, *, bulk: bool = True, src: Path | None = None
) -> dict[str, Any]:
    """`tootlake sink` (of `src`, another revision's src/, when given)."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    if bulk:
        cmd: list[Any] = [
            sys.executable,
            "-m",
            "tootlake",
            "sink",
            "--kafka",
            broker.bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--lake",
            lake,
            "--until-idle",
            UNTIL_IDLE,
            "--format",
            "json",
        ]
    else:
        cmd = [
            sys.executable,
            __file__,
            "--child-sink-fastavro",
            broker.bootstrap,
            topic,
            group,
            lake,
        ]
    run = run_process(cmd, env={"PYTHONPATH": str(src)} if src else None)
    stats = json.loads(run.stdout)
    # Delta commits now; a revision before Delta wrote files (and its "commits" were offsets)
    return _sink_figures(run, stats["messages"], stats["files" if "files" in stats else "commits"])


def sink_talk(broker: Broker, topic: str, folder: Path) -> dict[str, Any]:
    group = f"bench-{uuid.uuid4().hex[:8]}"
    run = run_process(
        [
            sys.executable,
            BENCH / "talk_sink.py",
            broker.bootstrap,
            topic,
            group,
            folder,
            "--until-idle",
            str(UNTIL_IDLE),
        ]
    )
    stats = json.loads(run.stdout)
    return _sink_figures(run, stats["messages"], stats["files"])


def _sink_figures(run: Any, messages: int, writes: int) -> dict[str, Any]:
    """`writes`: files written, or Delta commits made."""
    return {
        "messages": messages,
        "writes": writes,
        "seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        "peak_rss_mb": run.peak_rss_mb,
        "posts_per_second": messages / max(run.seconds - UNTIL_IDLE, 1e-9),
    }


def _child_sink_fastavro(bootstrap: str, topic: str, group: str, lake: str) -> None:
    """tootlake's sink worker with its bulk decoder off: fastavro, message by message."""
    import gc

    from tootlake.kafka.decode import EnvelopeDecoder
    from tootlake.kafka.sink import KafkaSinkWorker

    worker = KafkaSinkWorker(lake, kafka=bootstrap, topic=topic, group=group, until_idle=UNTIL_IDLE)
    worker._decoder = EnvelopeDecoder(bulk=False)  # the one difference
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as `tootlake sink` does
    print(json.dumps(worker.run().as_dict()))


def baseline_source(rev: str) -> Path:
    """src/ of revision `rev`, from `git archive` (git's state is left alone), made once."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    tree = DATA / f"archive-{commit}"
    if not (tree / "src").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", commit, "src"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree / "src"


def bench_sinking(
    broker: Broker, size: dict[str, int], work: Path, baseline: str | None = None
) -> dict[str, Any]:
    topic, filled = fill(broker, size["sink_posts"])
    sides: dict[str, list[dict[str, Any]]] = {"ours": [], "ours_fastavro": [], "talk": []}
    src = baseline_source(baseline) if baseline else None
    if src is not None:
        sides["baseline"] = []
    for run in range(size["repeat"]):
        for side in sides:
            folder = work / f"{side}-{run}"
            if side == "talk":
                result = sink_talk(broker, topic, folder)
            elif side == "baseline":
                result = sink_ours(broker, topic, folder, src=src)
            else:
                result = sink_ours(broker, topic, folder, bulk=side == "ours")
            assert result["messages"] == size["sink_posts"], (side, result)
            if side in ("ours", "ours_fastavro"):  # every post is in the Delta table, once
                from tootlake.lake import tables

                written = tables.load(str(folder), "posts_all").count()
                assert written == size["sink_posts"], (side, written)
            sides[side].append(result)
            shutil.rmtree(folder, ignore_errors=True)
            log(
                f"sinking run {run + 1} {side}: {result['posts_per_second']:,.0f} posts/s "
                f"({result['seconds']:.1f} s wall, {result['cpu_seconds']:.1f} s CPU, "
                f"{result['peak_rss_mb']:.0f} MB, {result['writes']} files or commits)"
            )
    out: dict[str, Any] = {"posts": size["sink_posts"], "fill": filled, "until_idle": UNTIL_IDLE}
    if baseline:
        out["baseline_rev"] = baseline
    for side, results in sides.items():
        out[side] = {
            key: summarize([r[key] for r in results])
            for key in ("posts_per_second", "seconds", "cpu_seconds", "peak_rss_mb", "writes")
        }
        out[side]["cpu_us_per_post"] = summarize(
            [r["cpu_seconds"] / r["messages"] * 1e6 for r in results]
        )
    ours = out["ours"]["posts_per_second"]["median"]
    out["speedup_vs_talk"] = round(ours / out["talk"]["posts_per_second"]["median"], 1)
    out["target"] = TARGETS["sinking"]
    out["met"] = ours >= TARGETS["sinking"]
    # What the run would reach with the cores to itself: CPU time spread over 2 cores.
    out["ours"]["posts_per_cpu_second_on_2_cores"] = round(
        size["sink_posts"] / (out["ours"]["cpu_seconds"]["median"] / 2), 1
    )
    return out


# ----------------------------------------------------------------------------------------
# results


def _producing_row(name: str, side: dict[str, Any]) -> str:
    rate = side["posts_per_second"]["median"]
    return f"| {name} | {side['posts']:,} | {rate:,.0f} | {side['cpu_us_per_post']['median']:.1f} |"


def render(results: dict[str, Any]) -> str:
    p, s = results["producing"], results["sinking"]
    m = results["machine"]
    lines = [
        "# Kafka benchmarks",
        "",
        f"Run {results['date']} on {m['cpus']} cores (load average {m['load_average_at_start']} at "
        f"the start, {results['load_average_at_end']} at the end), Python {m['python']}. "
        "Medians of alternating runs; `python bench/kafka_bench.py` (see its docstring).",
        "",
        "## Producing: posts/s into a 4-partition topic",
        "",
        "| | posts | posts/s | CPU µs/post |",
        "|---|---:|---:|---:|",
        _producing_row(
            "tootlake KafkaTransport (idempotent, acks=all, zstd, linger 50 ms)", p["ours"]
        ),
        _producing_row("the talk's pattern: produce + flush per message", p["talk"]),
        "",
        f"Speedup **{p['speedup']}x** (target {p['target']:.0f}x: "
        f"{'met' if p['met'] else 'MISSED'}).",
        "",
        f"## Sinking: {s['posts']:,} posts from Kafka into the lake, whole process",
        "",
        "posts/s = posts / (wall time − the 1 s `--until-idle` wait); start-up, group join and the "
        "final flush are included.",
        "",
        "| | posts/s | wall s | CPU s | CPU µs/post | peak RSS MB | files / Delta commits |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "ours": "`tootlake sink` (bulk Avro decoding with polars)",
        "ours_fastavro": "`tootlake sink` worker, bulk decoding off (fastavro per message)",
        "talk": "the talk's Kafka Connect S3 sink pattern (bench/talk_sink.py)",
        "baseline": f"`tootlake sink` of {s.get('baseline_rev')}",
    }
    for side, name in names.items():
        if side not in s:
            continue
        r = s[side]
        lines.append(
            f"| {name} | {r['posts_per_second']['median']:,.0f} | {r['seconds']['median']:.1f} | "
            f"{r['cpu_seconds']['median']:.1f} | {r['cpu_us_per_post']['median']:.1f} | "
            f"{r['peak_rss_mb']['median']:.0f} | {r['writes']['median']:.0f} |"
        )
    lines += [
        "",
        f"Target {s['target']:,.0f} posts/s: **{'met' if s['met'] else 'MISSED'}** "
        f"({s['ours']['posts_per_second']['median']:,.0f}); {s['speedup_vs_talk']}x the talk's "
        f"pattern. With the 2 cores to itself, its CPU time would allow "
        f"{s['ours']['posts_per_cpu_second_on_2_cores']:,.0f} posts/s.",
        "",
    ]
    if "baseline" in s:
        before = s["baseline"]["posts_per_second"]["median"]
        lines += [
            f"Against the sink of {s['baseline_rev']} in the same run: "
            f"{s['ours']['posts_per_second']['median'] / before:.2f}x its posts/s.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--only", choices=["producing", "sinking"])
    parser.add_argument("--baseline", metavar="REV", help="also sink with this revision's code")
    parser.add_argument(
        "--child-sink-fastavro",
        nargs=4,
        metavar=("KAFKA", "TOPIC", "GROUP", "LAKE"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.child_sink_fastavro:
        _child_sink_fastavro(*args.child_sink_fastavro)
        return
    size = dict(SIZES["quick" if args.quick else "full"])
    if args.repeat:
        size["repeat"] = args.repeat
    out_dir = DATA / "quick" if args.quick else RESULTS
    work = DATA / f"kafka-work-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "sizes": size,
    }
    try:
        with Broker() as broker:
            if args.only in (None, "producing"):
                results["producing"] = bench_producing(broker, size)
            if args.only in (None, "sinking"):
                results["sinking"] = bench_sinking(broker, size, work, args.baseline)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out_dir.mkdir(parents=True, exist_ok=True)
    # a partial run (--only) does not replace the full run's results
    name = f"kafka-{args.only}" if args.only else "kafka"
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if "producing" in results and "sinking" in results:
        (out_dir / "kafka.md").write_text(render(results), encoding="utf-8")
        print(render(results))
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
