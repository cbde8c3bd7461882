"""Layout: the full report over a compacted lake against the same posts in Kafka Connect's
layout (1,000 small files).                                                  target >= 5x

    python bench/layout_bench.py                 the talk's size (1,622,149 generated posts,
                                                 the lake bench/run.py caches); results in
                                                 bench/results/layout.json and layout.md
    python bench/layout_bench.py --quick         20,000 posts; results in bench/data/quick/
    python bench/layout_bench.py --lake PATH     any local lake as the source
    python bench/layout_bench.py --s3            both lakes on S3 instead of local disk (a
                                                 local moto server that this script starts,
                                                 as `make test` does); results in
                                                 layout-s3.json and layout-s3.md

What is compared, exactly:

  compacted   a copy of the source lake after `tootlake compact --grace 0 --date D...` for
              every day D (whole process, its time is reported too): each day rewritten
              whole into one zstd file, one row per post
  connect     the same rows (every row of the source lake's `posts_all`, so also the versions
              and copies that compaction folds away) written as the Kafka Connect S3 sink
              writes a topic: `topics/mastodon-topic/partition=0/mastodon-topic+0+<start
              offset, 10 digits>.parquet`, 1,000 files in arrival order (ingested_at), snappy
              (the sink's default codec), tootlake's schema. A tootlake lake points at them:
              its `posts/` is a symbolic link to `topics/mastodon-topic/`, so the files are
              read where Connect wrote them. Deletes and sightings, if any, are the same
              files on both sides.

On S3 (--s3): the same two lakes are uploaded, object for object, to a moto S3 server on
127.0.0.1 (the Connect files under `connect/posts/partition=0/`, where the local lake's
symbolic link points), and read as `--lake s3://tootlake-layout/compacted` and
`s3://tootlake-layout/connect`. This is where the talk's files lived (Kafka Connect's S3
sink into MinIO, read over httpfs). moto answers each request in a millisecond or two on
loopback; a real object store takes tens of milliseconds per request, which only widens the
gap for the side that makes the most requests. moto runs on the same two cores: its CPU time
is reported beside the report's.

Both sides are timed as `tootlake report --lake LAKE --format json`: the whole process, all
nine sections, alternating runs, medians; CPU time and peak RSS beside the wall time (the
machine's two cores are shared). Before timing, the two reports must be equal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    BIN,
    DATA,
    RESULTS,
    ROOT,
    free_port,
    log,
    machine,
    run_process,
    summarize,
)

TARGET = 5.0
TOPIC = "mastodon-topic"
DATA_VERSION = 2  # 2: compaction records unique_posts in the manifest


def source_lake(args: argparse.Namespace) -> tuple[Path, str]:
    """The lake to start from, and a name for the work folder."""
    if args.lake:
        lake = Path(args.lake).resolve()
        if not (lake / "posts").is_dir():
            raise SystemExit(f"{lake} is not a lake (no posts/ folder)")
        return lake, f"layout-v{DATA_VERSION}-{lake.name}"
    import datasets  # bench/run.py's cached, seed-shaped lake

    data = datasets.analysis_dataset(args.posts, args.seed)
    name = f"layout-v{DATA_VERSION}-data{datasets.DATA_VERSION}-{args.posts}-seed{args.seed}"
    return data.lake, name


def _copy_side_tables(source: Path, lake: Path) -> None:
    for table in ("deletes", "sightings"):
        if (source / table).is_dir():
            shutil.copytree(source / table, lake / table)


def write_connect(source: Path, work: Path, files: int) -> dict[str, Any]:
    """The source lake's posts_all rows as Kafka Connect's files, and a lake pointing at them."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tootlake.analysis.lake import open_lake
    from tootlake.record import arrow_schema

    topic = work / "connect" / "topics" / TOPIC
    folder = topic / "partition=0"
    folder.mkdir(parents=True)
    schema = arrow_schema()
    con = open_lake(str(source), connection=duckdb.connect())
    ((total,),) = con.sql("SELECT count(*) FROM posts_all").fetchall()
    files = min(files, total)
    # File i holds offsets [ends[i-1], ends[i]): sizes differ by one row at most.
    ends = [round((i + 1) * total / files) for i in range(files)]
    reader = con.sql("SELECT * FROM posts_all ORDER BY ingested_at, uri").to_arrow_reader()
    pending: list[pa.RecordBatch] = []
    rows = offset = written = 0

    def flush() -> None:
        nonlocal offset, written, rows
        table = pa.Table.from_batches(pending)
        table = pa.Table.from_arrays(
            [table.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema
        )
        path = folder / f"{TOPIC}+0+{offset:010d}.parquet"
        pq.write_table(table, path, compression="snappy")
        offset += table.num_rows
        written += 1
        pending.clear()
        rows = 0

    for batch in reader:
        while batch.num_rows:
            take = min(ends[written] - offset - rows, batch.num_rows)
            pending.append(batch.slice(0, take))
            rows += take
            batch = batch.slice(take)
            if offset + rows == ends[written]:
                flush()
    lake = work / "connect-lake"
    lake.mkdir()
    (lake / "posts").symlink_to(Path("..") / "connect" / "topics" / TOPIC)
    _copy_side_tables(source, lake)
    return {"files": written, "rows": int(total), "rows_per_file": round(total / files)}


def lake_files(lake: Path) -> dict[str, Any]:
    from tootlake.sinks.snapshot import read_snapshot
    from tootlake.sinks.storage import storage_for

    snapshot = read_snapshot(storage_for(str(lake)), str(lake))
    infos = snapshot.visible["posts"]
    return {
        "posts_files": len(infos),
        "posts_mb": round(sum((i.size or 0) for i in infos) / 1e6, 1),
    }


def prepare(args: argparse.Namespace) -> tuple[Path, Path, dict[str, Any]]:
    source, name = source_lake(args)
    work = DATA / name
    marker = work / "complete.json"
    local = {"compacted": str(work / "compacted"), "connect": str(work / "connect-lake")}
    if marker.exists():
        log(f"layout: reusing {work}")
        return (
            work / "compacted",
            work / "connect-lake",
            {**json.loads(marker.read_text()), "_local": local},
        )
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"layout: writing {source}'s posts in Kafka Connect's layout ({args.files} files) ...")
    started = time.perf_counter()
    # In a fresh process: a child's peak RSS counts its parent's at fork (Linux keeps the
    # high-water mark across exec), so this process stays small for the timed ones.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        connect = pool.apply(write_connect, (source, work, args.files))
    connect["build_seconds"] = round(time.perf_counter() - started, 1)
    compacted = work / "compacted"
    shutil.copytree(source, compacted)
    before = lake_files(compacted)
    # Every day named: each partition is rewritten whole into one file (the sink's files are
    # large already, so the default, small files only, would leave most of them as they are).
    days = sorted(p.name.removeprefix("date=") for p in (compacted / "posts").glob("date=*"))
    log(f"layout: compacting a copy of the lake ({before['posts_files']} posts files) ...")
    run = run_process(
        [BIN / "tootlake", "compact", "--lake", compacted, "--grace", "0", "--format", "json"]
        + [arg for day in days for arg in ("--date", day)]
    )
    stats = json.loads(run.stdout)
    meta = {
        "source": str(source.relative_to(ROOT) if source.is_relative_to(ROOT) else source),
        "connect": connect,
        "source_files": before,
        "compaction": {
            "seconds": round(run.seconds, 2),
            "cpu_seconds": round(run.cpu_seconds, 2),
            "peak_rss_mb": round(run.peak_rss_mb, 1),
            "posts_rows_before": stats["posts_before"],
            "posts_rows_after": stats["posts_after"],
            "files_before": stats["files_before"],
            "files_after": stats["files_after"],
        },
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    marker.write_text(json.dumps(meta, indent=2))
    return compacted, work / "connect-lake", {**meta, "_local": local}


def report_cmd(lake: Path | str) -> list[str | Path]:
    return [BIN / "tootlake", "report", "--lake", lake, "--format", "json"]


BUCKET = "tootlake-layout"


class S3Server:
    """scripts/s3.sh's moto server on a free port, for the length of a `with` block."""

    def __init__(self) -> None:
        self.port = free_port()
        self.env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
        self._script_env = {
            **os.environ,
            "S3_PORT": str(self.port),
            "S3_WATCH_PID": str(os.getpid()),
            "S3_PYTHON": str(BIN / "python"),
        }

    def __enter__(self) -> S3Server:
        subprocess.run([ROOT / "scripts" / "s3.sh", "up"], env=self._script_env, check=True)
        pid_file = ROOT / ".cache" / "s3" / f"run-{self.port}" / "moto.pid"
        self.pid = int(pid_file.read_text().split()[0])
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(
            [ROOT / "scripts" / "s3.sh", "down", "--purge"], env=self._script_env, check=False
        )

    def cpu_seconds(self) -> float:
        """The server's CPU time so far (user + system), from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def upload(self, lake: Path, prefix: str) -> int:
        """Every file of the local lake `lake` (following its symbolic links) to
        s3://BUCKET/prefix/..., same relative keys. Returns the number of objects."""
        from concurrent.futures import ThreadPoolExecutor

        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=BUCKET)
        files = [
            Path(folder) / name
            for folder, _, names in os.walk(lake, followlinks=True)
            for name in names
            if not name.startswith(".")
        ]

        def put(path: Path) -> None:
            key = f"{prefix}/{path.relative_to(lake).as_posix()}"
            client.upload_file(str(path), BUCKET, key)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, files))
        return len(files)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    compacted, connect, meta = prepare(args)
    if args.s3:
        with S3Server() as server:
            log(f"layout: uploading both lakes to moto on port {server.port} ...")
            meta["s3_objects"] = {
                "compacted": server.upload(compacted, "compacted"),
                "connect": server.upload(connect, "connect"),
            }
            sides = {side: f"s3://{BUCKET}/{side}" for side in ("compacted", "connect")}
            return _timed(args, sides, meta, server)
    return _timed(args, {"compacted": compacted, "connect": connect}, meta, None)


def _timed(
    args: argparse.Namespace,
    sides: dict[str, Any],
    meta: dict[str, Any],
    server: S3Server | None,
) -> dict[str, Any]:
    keys = ["seconds", "cpu_seconds", "peak_rss_mb"] + (["server_cpu_seconds"] if server else [])
    figures: dict[str, dict[str, list[float]]] = {side: {k: [] for k in keys} for side in sides}
    outputs: dict[str, str] = {}
    for round_ in range(args.repeat):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            server_cpu = server.cpu_seconds() if server else 0.0
            run = run_process(report_cmd(sides[side]), env=server.env if server else None)
            outputs.setdefault(side, run.stdout)
            figures[side]["seconds"].append(run.seconds)
            figures[side]["cpu_seconds"].append(run.cpu_seconds)
            figures[side]["peak_rss_mb"].append(run.peak_rss_mb)
            extra = ""
            if server:
                figures[side]["server_cpu_seconds"].append(server.cpu_seconds() - server_cpu)
                extra = f", S3 server {figures[side]['server_cpu_seconds'][-1]:.2f} s CPU"
            log(
                f"  {side:9} {run.seconds:7.2f} s wall, {run.cpu_seconds:7.2f} s CPU, "
                f"{run.peak_rss_mb:7.1f} MB{extra}"
            )
    same = json.loads(outputs["compacted"]) == json.loads(outputs["connect"])
    if not same:
        raise SystemExit("layout: the two reports differ; the comparison would be meaningless")
    result: dict[str, Any] = {side: {k: summarize(v) for k, v in f.items()}
                              for side, f in figures.items()}  # fmt: skip
    local = {"compacted": meta["_local"]["compacted"], "connect": meta["_local"]["connect"]}
    for side in sides:
        result[side].update(lake_files(Path(local[side])))
    wall = result["connect"]["seconds"]["median"] / result["compacted"]["seconds"]["median"]
    cpu = result["connect"]["cpu_seconds"]["median"] / result["compacted"]["cpu_seconds"]["median"]
    posts = json.loads(outputs["compacted"])["summary"]["posts"]
    extra: dict[str, Any] = {}
    if server:  # the server's work is part of every read on S3
        both = {
            side: result[side]["cpu_seconds"]["median"]
            + result[side]["server_cpu_seconds"]["median"]
            for side in sides
        }
        extra["speedup_cpu_with_server"] = round(both["connect"] / both["compacted"], 2)
    return {
        **extra,
        "storage": "s3 (moto on 127.0.0.1)" if server else "local disk",
        "lakes": {side: str(where) for side, where in sides.items()},
        "target": TARGET,
        "speedup_wall": round(wall, 2),
        "speedup_cpu": round(cpu, 2),
        "met": wall >= TARGET,
        "reports_equal": same,
        "posts": posts,
        "sides": result,
        "data": meta,
    }


def render_markdown(results: dict[str, Any]) -> str:
    r = results["layout"]
    s = r["sides"]
    d = r["data"]
    lines = [
        "# Layout: compacted lake vs Kafka Connect's small files"
        + (", both on S3" if r["storage"].startswith("s3") else ", local disk"),
        "",
        f"Made {results['made_at']} by `bench/layout_bench.py"
        f"{' --quick' if results['mode'] == 'quick' else ''}` in {results['seconds']:.0f} s on "
        f"{results['machine']['cpus']} shared cores (load average at start "
        f"{results['machine']['load_average_at_start']}); {r['posts']:,} posts in the report, "
        f"from `{d['source']}`.",
        "",
        "`tootlake report --format json` (whole process, all nine sections), medians of "
        f"{len(s['compacted']['seconds']['runs'])} alternating runs:",
        "",
    ]
    on_s3 = r["storage"].startswith("s3")
    if on_s3:
        lines += [
            "| lake | posts files | MB | wall s | CPU s | peak RSS MB | S3 server CPU s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
    else:
        lines += [
            "| lake | posts files | MB | wall s | CPU s | peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
    for side, title in (("compacted", "compacted (`tootlake compact`)"),
                        ("connect", "Kafka Connect layout")):  # fmt: skip
        f = s[side]
        lines.append(
            f"| {title} | {f['posts_files']:,} | {f['posts_mb']:,} | "
            f"{f['seconds']['median']:.2f} | {f['cpu_seconds']['median']:.2f} | "
            f"{f['peak_rss_mb']['median']:.0f} |"
            + (f" {f['server_cpu_seconds']['median']:.2f} |" if on_s3 else "")
        )
    c = d["compaction"]
    lines += [
        "",
        f"**Speed-up: {r['speedup_wall']}x wall clock ({r['speedup_cpu']}x CPU time"
        + (
            f" of the report, {r['speedup_cpu_with_server']}x of report and S3 server"
            if on_s3
            else ""
        )
        + "); target "
        f"{r['target']}x: {'met' if r['met'] else 'NOT met'}.** The two reports are equal.",
        "",
        f"* Connect side: the {d['connect']['rows']:,} rows of the source lake's `posts_all` in "
        f"{d['connect']['files']:,} files of {d['connect']['rows_per_file']:,} rows, arrival "
        "order, snappy, `topics/mastodon-topic/partition=0/mastodon-topic+0+<offset>.parquet`; "
        "the lake's `posts/` links there.",
        f"* Compacted side: a copy of the source lake ({d['source_files']['posts_files']} posts "
        "files) after `tootlake compact --grace 0 --date D` for each of its days (every "
        f"partition rewritten whole): {c['files_before']} files rewritten into "
        f"{c['files_after']}, posts rows {c['posts_rows_before']:,} -> {c['posts_rows_after']:,}, "
        f"in {c['seconds']} s ({c['cpu_seconds']} s CPU, peak RSS {c['peak_rss_mb']} MB).",
        "* Same schema, same reader, same machine; what differs is the layout (file count and "
        "size, zstd vs snappy, rows sorted by day and time vs arrival order) and that "
        "compaction already folded versions and copies away, and checked that its files hold "
        "each post once (so opening the lake skips the search for versions; deletes are "
        "still applied when reading).",
    ]
    if on_s3:
        lines.append(
            f"* On S3: both lakes uploaded object for object ({d['s3_objects']['compacted']:,} "
            f"and {d['s3_objects']['connect']:,} objects) to a moto server on 127.0.0.1, read "
            f"as `{r['lakes']['compacted']}` and `{r['lakes']['connect']}` (the Connect files "
            "under `connect/posts/partition=0/`). moto answers a request in a millisecond or "
            "two on loopback, a real object store in tens of milliseconds; it runs on the same "
            "two cores (its CPU time is the last column)."
        )
    load = results["machine"]["load_average_at_start"][0]
    if load > results["machine"]["cpus"]:
        lines.append(
            f"* The machine was overloaded (load {load} on {results['machine']['cpus']} cores): "
            + (
                "the report and the S3 server waited for the same cores."
                if on_s3
                else "wall-clock times were mostly waiting for a core, so read the CPU-time ratio."
            )
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 posts, one run")
    parser.add_argument("--lake", help="a local lake to start from (default: the generated one)")
    parser.add_argument("--posts", type=int, help="generated posts (default 1,622,149)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--files", type=int, default=1000, help="Kafka Connect files")
    parser.add_argument("--repeat", type=int, help="timed runs per side (default 3; quick 1)")
    parser.add_argument("--results", type=Path, help="folder for layout.json and layout.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument("--s3", action="store_true", help="both lakes on a local S3 server")
    args = parser.parse_args(argv)
    args.posts = args.posts or (20_000 if args.quick else 1_622_149)
    args.repeat = args.repeat or (1 if args.quick else 3)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
    }
    results["layout"] = bench(args)
    results["seconds"] = round(time.perf_counter() - started, 1)
    folder = args.results or (DATA / "quick" if args.quick else RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    name = "layout-s3" if args.s3 else "layout"
    results["layout"]["data"].pop("_local", None)
    (folder / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / f"{name}.md").write_text(render_markdown(results))
    r = results["layout"]
    log(
        f"layout: {r['speedup_wall']}x wall, {r['speedup_cpu']}x CPU (target {TARGET}x); "
        f"results in {folder}/{name}.json and {name}.md"
    )
    return 1 if args.check and not r["met"] else 0


if __name__ == "__main__":
    sys.exit(main())
