"""The lake as Delta tables (issue 11) against the lake of plain Parquet files and a manifest
it replaced (the baseline rev, 144ae0a by default), on the same posts, in the same run.

    python bench/lake_bench.py                      the talk's 1,622,149 posts, scale 1x/4x/10x
    python bench/lake_bench.py --posts 100000       a smaller data set, for a quick look
    python bench/lake_bench.py --only before,compact,after --repeat 5
    python bench/lake_bench.py --only scale --scales 1,4

Parts (`--only`, comma-separated):

  before   `open_lake()` (in-process time of the call, fresh process each run), `tootlake
           report --format json` and `tootlake report --format json --html PAGE` (whole
           process: wall, CPU, peak RSS): the baseline's code on the old-layout lake against
           the current code on the Delta lake, neither compacted;
  compact  `tootlake compact --grace 0` (baseline) and `tootlake compact --retain-files 0`
           (current), each on a fresh copy of its lake: wall, CPU, peak RSS;
  after    `before` again on the compacted copies;
  scale    the Delta lake replicated 1x, 4x, 10x under new uris (1.6M, 6.4M, 16.1M posts):
           `tootlake report --memory-limit 700MB --temp-directory SPILL` (through the library,
           `read_lake(memory_limit=...)`, when the CLI lacks the option), and the plain
           `tootlake report`, written (not merged), merged (as `replay` and `collect`
           leave a lake) and compacted; the merge and the compaction themselves.

Both lakes hold the same posts. The old-layout lake is written by the baseline's own code
(`PYTHONPATH=bench/data/archive-REV/src`, its `ParquetSink`) from the generated events the
analysis data set uses (bench/datasets.py: talk-shaped statuses, `from_status`, opted-out
authors skipped), then the stream's edits and deletes as more files; the Delta lake is a copy
of it converted by the current `tootlake migrate`. Both reports (JSON) are checked equal.

Every measured command runs in a fresh process, the two sides alternating (who goes first
swaps every round); figures are medians over `--repeat` runs. Wall time is taken around the
process, CPU time and peak RSS from the kernel (`wait4`'s rusage). The load average is recorded
before every run: the machine's 2 cores are shared.

Data: bench/data/lake-N-seedS/ (git-ignored), built once. Results: bench/results/lake.json
and lake.md (a partial run keeps the other parts of the earlier results, dated); with
`--posts` other than the talk's, bench/data/lake-N-seedS/results/ instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import DATA, RESULTS, ROOT, clean_env, log, machine, summarize  # noqa: E402

BASELINE = "144ae0a"
TALK_POSTS = 1_622_149
PARTS = ("before", "compact", "after", "scale")
SCALES = (1, 4, 10)
EDITS = 0.015  # the analysis data set's lake-edited/: 1.5% of posts get a new version
DELETES = 0.01  # and 1% are deleted
SCALE_MEMORY_LIMIT = "700MB"
TARGET_OPEN_SECONDS = 0.1
TARGET_REPORT_MB = 1024
TARGET_MAINTENANCE_MB = 2048
WORSE = 0.10  # a figure more than 10% worse than the baseline's is called out
PY = sys.executable
THIS = Path(__file__).resolve()


# ----------------------------------------------------------------------------------------
# what runs in the measured processes (`--child MODE ...`)


def child_build_old(lake: str, n: int, seed: int, edits: float, deletes: float) -> None:
    """The old-layout lake, written by the baseline's ParquetSink (run with PYTHONPATH set to
    the baseline's src/): the analysis data set's posts, then its edits and deletes."""
    import gc
    from collections import OrderedDict

    from tootlake.sinks.parquet import ParquetSink

    from datasets import TALK_OBSERVERS
    from talkshape import generate_events
    from tootlake.record import Delete, from_status, skip_reason

    assert "archive-" in str(sys.modules["tootlake"].__file__), "not the baseline's code"
    gc.freeze()
    gc.disable()
    started = time.perf_counter()
    sink = ParquetSink(lake)
    kept = skipped = 0
    batch: list[Any] = []
    extra: list[Any] = []
    recent: OrderedDict[tuple[str, str], str] = OrderedDict()  # as the Recorder remembers
    for event in generate_events(
        n, seed=seed, observed_on=TALK_OBSERVERS, longest=True, edits=edits, deletes=deletes
    ):
        host = event.observed_on
        received = datetime.fromtimestamp(event.at_ms / 1000, UTC)
        if event.kind == "delete":
            assert isinstance(event.payload, str)
            uri = recent.pop((host, event.payload), None)
            extra.append(Delete(host, event.payload, uri, received))
            continue
        status = event.payload
        assert isinstance(status, dict)
        if skip_reason(status) is not None:
            skipped += event.kind == "update"
            continue
        post = from_status(status, host, ingested_at=received)
        if event.kind != "update":
            extra.append(post)
            continue
        recent[(host, post.id)] = post.uri
        if len(recent) > 200_000:
            recent.popitem(last=False)
        kept += 1
        batch.append(post)
        if len(batch) >= 20_000:
            sink.add(batch)
            batch = []
            if sink.due():
                sink.flush()
    sink.add(batch)
    sink.flush()
    edited = ParquetSink(lake)
    edited.add(extra)
    edited.flush()
    print(
        json.dumps(
            {
                "generated": n,
                "posts_written": kept,
                "skipped_opted_out": skipped,
                "edits_written": edited.stats.posts,
                "deletes_written": edited.stats.deletes,
                "files": sink.stats.files + edited.stats.files,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


def child_open(side: str, lake: str, times: int) -> None:
    """`open_lake(lake)` `times` times, each on a new connection: the first (what a command
    pays) and the median of the others."""
    t = time.perf_counter()
    if side == "baseline":
        from tootlake.analysis.lake import open_lake
    else:
        from tootlake.lake.reader import open_lake
    imported = time.perf_counter() - t
    seconds = []
    for _ in range(times):
        t = time.perf_counter()
        con = open_lake(lake)
        seconds.append(time.perf_counter() - t)
        con.close()
    out: dict[str, Any] = {
        "import": imported,
        "first": seconds[0],
        "again": statistics.median(seconds[1:]) if times > 1 else None,
        "module": open_lake.__module__,
    }
    if side == "current":  # of that, listing the tables' files from their Delta logs
        from tootlake.lake.reader import read_files

        t = time.perf_counter()
        read_files(lake)
        out["read_files"] = time.perf_counter() - t
    print(json.dumps(out))


def child_report_lib(lake: str, out: str, memory_limit: str, temp_directory: str) -> None:
    """The report through the library, with DuckDB's memory limit and a spill folder (what
    `tootlake report` would do with a --memory-limit), its JSON written to `out`."""
    t = time.perf_counter()
    from tootlake.analysis.report import build_report, render_report
    from tootlake.lake.reader import read_lake

    imported = time.perf_counter() - t
    t = time.perf_counter()
    tables = read_lake(
        lake,
        lambda con: build_report(con=con),
        memory_limit=memory_limit or None,
        temp_directory=temp_directory or None,
    )
    Path(out).write_text(render_report(tables, "json"))
    print(json.dumps({"import": imported, "report": time.perf_counter() - t}))


def child_merge(lake: str) -> None:
    """`merge_posts(lake)`: what `replay` and `collect` run after writing."""
    from tootlake.lake.maintenance import merge_posts

    stats = merge_posts(lake)
    print(json.dumps(stats.as_dict()))


def child_replicate(source: str, target: str, factor: int) -> None:
    """`factor` copies of every row of the source lake's posts_all, deletes, sightings and
    rejects into new Delta tables at `target` (through `tables.append`, one commit per source
    file and copy): copy 0 as it is, copy k with `#rk` after every uri and `-rk` after every
    local id (posts and deletes), so each copy holds its own posts, edits and deletes. The
    merged `posts` table is not copied: `merge_posts` makes it (`--child merge`)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tootlake.lake import tables
    from tootlake.lake.layout import DELETES as DELETES_TABLE
    from tootlake.lake.layout import POSTS_ALL, REJECTS, SIGHTINGS

    started = time.perf_counter()
    rows: dict[str, int] = {}
    for table in (POSTS_ALL, SIGHTINGS, REJECTS, DELETES_TABLE):  # deletes last, as a writer
        dt = tables.load(source, table)
        if dt is None:
            continue
        schema = tables.RECORD_SCHEMAS[table]()
        paths = dt.file_uris()
        for k in range(factor):
            for path in paths:
                data = pq.read_table(path.removeprefix("file://"))
                data = data.select([f.name for f in schema])
                data = pa.Table.from_batches(
                    [b.cast(schema) for b in data.to_batches()], schema=schema
                )
                if k:
                    for name, suffix in (("uri", f"#r{k}"), ("id", f"-r{k}")):
                        if name in schema.names:
                            i = schema.get_field_index(name)
                            column = pc.binary_join_element_wise(data.column(name), suffix, "")
                            data = data.set_column(i, schema.field(name), column)
                tables.append(target, table, tables.with_date(table, data))
                rows[table] = rows.get(table, 0) + data.num_rows
    print(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - started, 1)}))


CHILDREN: dict[str, Callable[..., None]] = {
    "build-old": lambda lake, n, seed, edits, deletes: child_build_old(
        lake, int(n), int(seed), float(edits), float(deletes)
    ),
    "open": lambda side, lake, times: child_open(side, lake, int(times)),
    "report-lib": child_report_lib,
    "merge": child_merge,
    "replicate": lambda source, target, factor: child_replicate(source, target, int(factor)),
}


# ----------------------------------------------------------------------------------------
# measuring a process


class Bench:
    """Where the data is, which code each side runs, and the measurements."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.folder = DATA / f"lake-{args.posts}-seed{args.seed}"
        self.work = self.folder / "work"
        self.baseline_src = baseline_source(args.baseline)
        self.sources = {"baseline": self.baseline_src, "current": ROOT / "src"}
        self.failures: list[dict[str, Any]] = []

    def run(
        self,
        side: str,
        cmd: Sequence[str | Path],
        *,
        what: str,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run `cmd` with `side`'s code in a fresh process: wall, CPU, peak RSS, stdout (a
        JSON document when it parses as one). A failure is recorded, not raised."""
        env = {**clean_env(), "PYTHONPATH": str(self.sources[side])}
        load = os.getloadavg()[0]
        self.work.mkdir(parents=True, exist_ok=True)
        out_path, err_path = self.work / ".stdout", self.work / ".stderr"
        timeout = timeout or self.args.timeout
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [str(c) for c in cmd], stdout=out, stderr=err, cwd=ROOT, env=env
            )
            timer = threading.Timer(timeout, lambda: proc.send_signal(signal.SIGKILL))
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
            seconds = time.perf_counter() - started
            proc.returncode = code = os.waitstatus_to_exitcode(status)
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        result: dict[str, Any] = {
            "seconds": round(seconds, 3),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "load_1min": round(load, 2),
        }
        if code != 0:
            killed = code == -signal.SIGKILL and seconds >= timeout
            reason = f"killed after the {timeout:.0f} s timeout" if killed else f"exit {code}"
            result["error"] = f"{reason}: {stderr.strip()[-3000:]}"
            self.failures.append(
                {"what": what, "side": side, "command": _shown(cmd), "error": result["error"]}
            )
            log(f"    FAILED {what} ({side}): {result['error'][-600:]}")
            return result
        try:
            result["output"] = json.loads(stdout)
        except json.JSONDecodeError:
            result["output_text"] = stdout[-2000:]
        return result

    def tootlake(self, *args: str | Path) -> list[str | Path]:
        return [PY, "-m", "tootlake", *args]

    def child(self, *args: str | Path) -> list[str | Path]:
        return [PY, THIS, "--child", *args]


def _shown(cmd: Sequence[str | Path]) -> str:
    text = " ".join(str(c) for c in cmd)
    return text.replace(str(ROOT) + "/", "").replace(PY, "python")


def baseline_source(rev: str) -> Path:
    """src/ of `rev`, unpacked once with `git archive` into bench/data/archive-REV/ (no
    worktree: the repository's state is left alone)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    tree = DATA / f"archive-{commit}"
    if not (tree / "src" / "tootlake" / "__init__.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.Popen(
            ["git", "archive", commit, "src"], cwd=ROOT, stdout=subprocess.PIPE
        )
        subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"git archive {commit} failed")
    return tree / "src"


def lake_facts(lake: Path) -> dict[str, Any]:
    """Parquet files and MB on disk per table folder (Delta: files not vacuumed yet too)."""
    out: dict[str, Any] = {}
    total_files, total_bytes = 0, 0
    for folder in sorted(p for p in lake.iterdir() if p.is_dir() and p.name[0] not in "._"):
        files = [p for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts]
        size = sum(p.stat().st_size for p in files)
        out[folder.name] = {"files": len(files), "mb": round(size / 2**20, 1)}
        total_files += len(files)
        total_bytes += size
    out["total"] = {"files": total_files, "mb": round(total_bytes / 2**20, 1)}
    return out


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def copy_lake(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def stats(runs: list[dict[str, Any]], *inner: str) -> dict[str, Any]:
    """Medians (and min, max, every run) of the runs that succeeded; `inner` names figures of
    the child's own JSON output (`output.KEY`) to summarise too."""
    good = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {"runs": len(runs), "failed": len(runs) - len(good)}
    if not good:
        out["errors"] = [r["error"][-1500:] for r in runs]
        return out
    for key in ("seconds", "cpu_seconds", "peak_rss_mb"):
        out[key] = summarize([r[key] for r in good])
    out["load_1min"] = [r["load_1min"] for r in runs]
    for key in inner:
        values = [r["output"][key] for r in good if r.get("output", {}).get(key) is not None]
        if values:
            out[key] = summarize(values)
    return out


def median(entry: dict[str, Any] | None, key: str) -> float | None:
    if not entry or key not in entry:
        return None
    value = entry[key]
    return value["median"] if isinstance(value, dict) else value


# ----------------------------------------------------------------------------------------
# the lakes


def build_lakes(bench: Bench) -> dict[str, Any]:
    """old/ (the baseline's writer) and delta/ (a copy of old/, `tootlake migrate`d), once."""
    args = bench.args
    folder = bench.folder
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "lakes.json"
    if marker.exists():
        return json.loads(marker.read_text())
    log(f"  writing {args.posts:,} generated posts with the baseline's ParquetSink ...")
    old = folder / "old"
    shutil.rmtree(old, ignore_errors=True)
    built = bench.run(
        "baseline",
        bench.child(
            "build-old", old, str(args.posts), str(args.seed), str(args.edits), str(args.deletes)
        ),
        what="build the old-layout lake",
        timeout=7200,
    )
    if "error" in built:
        raise SystemExit(f"could not build the old-layout lake: {built['error']}")
    log("  copying it and converting the copy with the current `tootlake migrate` ...")
    staging = folder / "delta.building"
    copy_lake(old, staging)
    migrated = bench.run(
        "current",
        bench.tootlake("migrate", staging, "--format", "json", "--quiet"),
        what="tootlake migrate",
        timeout=7200,
    )
    if "error" in migrated:
        raise SystemExit(f"tootlake migrate failed on {staging}: {migrated['error']}")
    shutil.rmtree(folder / "delta", ignore_errors=True)
    os.rename(staging, folder / "delta")
    meta = {
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "old_lake": {
            "path": str(old.relative_to(ROOT)),
            "writer": f"{args.baseline}'s ParquetSink (PYTHONPATH={_rel(bench.baseline_src)})",
            **built["output"],
            "build_wall_seconds": built["seconds"],
            "facts": lake_facts(old),
        },
        "delta_lake": {
            "path": str((folder / "delta").relative_to(ROOT)),
            "made_by": "a copy of old/, then the current `tootlake migrate LAKE`",
            "facts": lake_facts(folder / "delta"),
        },
        "migrate": {
            "seconds": migrated["seconds"],
            "cpu_seconds": migrated["cpu_seconds"],
            "peak_rss_mb": migrated["peak_rss_mb"],
            "load_1min": migrated["load_1min"],
            "stats": migrated.get("output"),
        },
        "edits": args.edits,
        "deletes": args.deletes,
    }
    marker.write_text(json.dumps(meta, indent=1))
    return meta


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------
# before / compact / after


def compare_reports(baseline: dict[str, Any] | None, current: dict[str, Any] | None) -> dict:
    """Whether the two JSON reports are equal; the sections that differ, with a sample."""
    if baseline is None or current is None:
        return {"equal": False, "why": "a report failed"}
    if baseline == current:
        return {"equal": True, "sections": len(current)}
    # Sections a newer report added (issue 13's) are not the baseline's to match.
    added = sorted(set(current) - set(baseline))
    if added and {name: current[name] for name in baseline} == baseline:
        return {"equal": True, "sections": len(baseline), "added": added}
    differ = {}
    for name in sorted(set(baseline) | set(current)):
        a, b = baseline.get(name), current.get(name)
        if a == b:
            continue
        if a is None or b is None:
            differ[name] = "only in " + ("current" if a is None else "baseline")
            continue
        sample = ""
        if isinstance(a, list) and isinstance(b, list):
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                if x != y:
                    sample = f"row {i}: baseline {x} / current {y}"
                    break
            else:
                sample = f"rows: baseline {len(a)}, current {len(b)}"
        else:
            sample = f"baseline {a} / current {b}"
        differ[name] = sample[:600]
    return {"equal": False, "differ": differ}


def headline(report: dict[str, Any] | None) -> dict[str, Any]:
    """The report's summary row (posts, users, instances, ...)."""
    if not report:
        return {}
    summary = report.get("summary")
    if isinstance(summary, list) and summary:
        return summary[0]
    return {}


def measure_reads(bench: Bench, lakes: dict[str, Path], state: str) -> dict[str, Any]:
    """open_lake(), report JSON, report JSON + HTML, each side alternating, `--repeat` rounds;
    one more report each (not timed, first) checks that the two are equal."""
    args = bench.args
    log(f"  {state}: checking that both reports are equal ...")
    check = {
        side: bench.run(
            side,
            bench.tootlake("report", "--lake", lakes[side], "--format", "json"),
            what=f"report ({state}, check)",
        )
        for side in ("baseline", "current")
    }
    reports = {side: run.get("output") for side, run in check.items()}
    equal = compare_reports(reports["baseline"], reports["current"])
    log(f"    equal: {equal.get('equal')}")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        what: {"baseline": [], "current": []} for what in ("open", "report", "report_html")
    }
    html_dir = bench.work / "html"
    html_dir.mkdir(parents=True, exist_ok=True)
    for r in range(args.repeat):
        order = ("baseline", "current") if r % 2 == 0 else ("current", "baseline")
        for what in ("open", "report", "report_html"):
            for side in order:
                lake = lakes[side]
                if what == "open":
                    cmd = bench.child("open", side, lake, "5")
                elif what == "report":
                    cmd = bench.tootlake("report", "--lake", lake, "--format", "json")
                else:
                    page = html_dir / f"{side}.html"
                    cmd = bench.tootlake(
                        "report", "--lake", lake, "--format", "json", "--html", page
                    )
                run = bench.run(side, cmd, what=f"{what} ({state})")
                run.pop("output", None) if what != "open" else None
                runs[what][side].append(run)
                log(
                    f"    {state} {what} {side} round {r + 1}: {run['seconds']:.2f} s, "
                    f"{run['peak_rss_mb']:.0f} MB" + (" FAILED" if "error" in run else "")
                )
    out: dict[str, Any] = {
        "lakes": {side: _rel(lake) for side, lake in lakes.items()},
        "facts": {side: lake_facts(lake) for side, lake in lakes.items()},
        "reports_equal": equal,
        "headline": headline(reports["current"]) or headline(reports["baseline"]),
    }
    for what, sides in runs.items():
        inner = ("first", "again", "import", "read_files") if what == "open" else ()
        out[what] = {side: stats(sides[side], *inner) for side in sides}
    html = html_dir / "current.html"
    if html.exists():
        out["html_bytes"] = {side: (html_dir / f"{side}.html").stat().st_size for side in lakes}
    return out


def measure_compaction(bench: Bench, lakes: dict[str, Path]) -> dict[str, Any]:
    """Each side's compaction on a fresh copy of its lake, `--repeat` times, alternating;
    the last copy of each is kept (work/compacted-SIDE) for `after`."""
    args = bench.args
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
    facts: dict[str, Any] = {}
    for r in range(args.repeat):
        order = ("baseline", "current") if r % 2 == 0 else ("current", "baseline")
        for side in order:
            copy = bench.work / f"compacted-{side}"
            copy_lake(lakes[side], copy)
            if side == "baseline":
                cmd = bench.tootlake("compact", "--lake", copy, "--grace", "0", "--format", "json")
            else:
                cmd = bench.tootlake(
                    "compact", "--lake", copy, "--retain-files", "0", "--format", "json",
                    "--quiet",
                )  # fmt: skip
            run = bench.run(side, cmd, what="compact")
            runs[side].append(run)
            facts[side] = {"before": lake_facts(lakes[side]), "after": lake_facts(copy)}
            if "output" in run:
                facts[side]["stats"] = run["output"]
            log(
                f"    compact {side} round {r + 1}: {run['seconds']:.2f} s, "
                f"{run['peak_rss_mb']:.0f} MB" + (" FAILED" if "error" in run else "")
            )
    out = {side: stats(side_runs) for side, side_runs in runs.items()}
    return {**out, "facts": facts, "commands": {
        "baseline": "python -m tootlake compact --lake COPY --grace 0 --format json",
        "current": "python -m tootlake compact --lake COPY --retain-files 0 --format json --quiet",
    }}  # fmt: skip


def compacted_lakes(bench: Bench, lakes: dict[str, Path]) -> dict[str, Path]:
    out = {side: bench.work / f"compacted-{side}" for side in lakes}
    if not all((path / ".complete").exists() for path in out.values()):
        return {}
    return out


# ----------------------------------------------------------------------------------------
# scale


def build_scale_lake(bench: Bench, source: Path, factor: int) -> tuple[Path, dict[str, Any]]:
    """`factor` copies of the Delta lake under new uris (written, not merged); once."""
    lake = bench.folder / f"scale-x{factor}"
    marker = bench.folder / f"scale-x{factor}.json"
    if marker.exists() and lake.exists():
        return lake, json.loads(marker.read_text())
    staging = bench.folder / f"scale-x{factor}.building"
    shutil.rmtree(staging, ignore_errors=True)
    log(f"  scale x{factor}: replicating the Delta lake ...")
    run = bench.run(
        "current", bench.child("replicate", source, staging, str(factor)),
        what=f"replicate x{factor}", timeout=7200,
    )  # fmt: skip
    if "error" in run:
        raise RuntimeError(f"replicating x{factor} failed: {run['error']}")
    shutil.rmtree(lake, ignore_errors=True)
    os.rename(staging, lake)
    meta = {
        "factor": factor,
        "replicate": {k: run[k] for k in ("seconds", "peak_rss_mb")} | run["output"],
        "facts": lake_facts(lake),
    }
    marker.write_text(json.dumps(meta, indent=1))
    return lake, meta


def measure_scale(bench: Bench, delta: Path, posts_1x: int) -> dict[str, Any]:
    args = bench.args
    out: dict[str, Any] = {
        "memory_limit": args.memory_limit,
        "repeat": args.scale_repeat,
        "report_memory_limit_option": report_has_memory_limit(),
        "sizes": [],
    }
    spill = bench.work / "duckdb-spill"
    reference = None
    if 1 in args.scales:  # the Delta lake's own report, for the 1x copy to match
        run = bench.run(
            "current", bench.tootlake("report", "--lake", delta, "--format", "json"),
            what="report of the source lake (reference)",
        )  # fmt: skip
        reference = run.get("output")
    for factor in args.scales:
        source_bytes = folder_bytes(delta)
        free = shutil.disk_usage(bench.folder).free
        need = source_bytes * factor * 5  # posts_all, posts, a copy of both, spill
        if need > free - 5 * 2**30:
            note = (
                f"x{factor} not run: it would need about {need / 2**30:.1f} GB of disk "
                f"({free / 2**30:.1f} GB free)"
            )
            log(f"  {note}")
            out["sizes"].append({"factor": factor, "skipped": note})
            break
        started = time.monotonic()
        try:
            entry = measure_scale_size(bench, delta, factor, posts_1x, spill, reference)
        except RuntimeError as exc:
            entry = {"factor": factor, "error": str(exc)[-3000:]}
        entry["wall_minutes"] = round((time.monotonic() - started) / 60, 1)
        out["sizes"].append(entry)
        if args.scale_keep is False:
            for name in (f"scale-x{factor}", f"scale-x{factor}-merged"):
                shutil.rmtree(bench.folder / name, ignore_errors=True)
            (bench.folder / f"scale-x{factor}.json").unlink(missing_ok=True)
        if "error" in entry or entry.get("stopped"):
            break
    return out


def equal_states(reports: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """The report of every state of one size against the written one's (and, at 1x, against
    the report of the Delta lake it was copied from)."""
    out: dict[str, Any] = {}
    first = reports.get("written")
    for state in ("merged", "compacted"):
        if state in reports:
            out[f"written_vs_{state}"] = compare_reports(first, reports[state])
    if reference is not None:
        out["written_vs_source_lake"] = compare_reports(reference, first)
    return out


def measure_scale_size(
    bench: Bench,
    delta: Path,
    factor: int,
    posts_1x: int,
    spill: Path,
    reference: dict[str, Any] | None,
) -> dict[str, Any]:
    args = bench.args
    written, meta = build_scale_lake(bench, delta, factor)
    entry: dict[str, Any] = {
        "factor": factor,
        "posts_rows_written": meta["replicate"]["rows"].get("posts_all"),
        "posts": posts_1x * factor,
        "build": meta,
    }
    repeat = args.scale_repeat
    reports: dict[str, Any] = {}
    limit_option = report_has_memory_limit()

    def report_runs(lake: Path, state: str) -> dict[str, Any]:
        lib, cli = [], []
        cli_report = None
        for _r in range(repeat):
            shutil.rmtree(spill, ignore_errors=True)
            spill.mkdir(parents=True)
            out_json = bench.work / f"scale-report-{factor}-{state}.json"
            out_json.unlink(missing_ok=True)
            if limit_option:  # `tootlake report --memory-limit ... --temp-directory ...`
                cmd = bench.tootlake(
                    "report", "--lake", lake, "--format", "json",
                    "--memory-limit", args.memory_limit, "--temp-directory", spill,
                )  # fmt: skip
            else:  # the library, as the CLI would do it
                cmd = bench.child("report-lib", lake, out_json, args.memory_limit, spill)
            lib.append(
                bench.run("current", cmd, what=f"report x{factor} {state} ({args.memory_limit})")
            )
            if "output" in lib[-1] and limit_option:
                out_json.write_text(json.dumps(lib[-1].pop("output")))
            log(f"    x{factor} {state} report ({args.memory_limit}): {_brief(lib[-1])}")
            if args.scale_cli:
                cli.append(
                    bench.run(
                        "current",
                        bench.tootlake("report", "--lake", lake, "--format", "json"),
                        what=f"report x{factor} {state} (CLI)",
                    )
                )
                cli_report = cli[-1].pop("output", None)
                log(f"    x{factor} {state} report (CLI): {_brief(cli[-1])}")
        result = {"library": stats(lib, "report"), "facts": lake_facts(lake)}
        if out_json.exists() and "error" not in lib[-1]:
            reports[state] = json.loads(out_json.read_text())
            result["headline"] = headline(reports[state])
            out_json.unlink()
        if cli:
            result["cli"] = stats(cli)
            if state in reports and cli_report:
                result["cli_report_equals_library"] = compare_reports(reports[state], cli_report)
        return result

    entry["written"] = report_runs(written, "written")
    # the merge, on a copy each time; the last copy stays as the merged lake
    merged = bench.folder / f"scale-x{factor}-merged"
    merge_runs = []
    for _ in range(repeat):
        copy_lake(written, merged)
        merge_runs.append(
            bench.run("current", bench.child("merge", merged), what=f"merge x{factor}")
        )
        log(f"    x{factor} merge_posts: {_brief(merge_runs[-1])}")
    entry["merge"] = stats(merge_runs)
    if merge_runs[-1].get("output"):
        entry["merge"]["stats"] = merge_runs[-1]["output"]
    if "error" in merge_runs[-1]:
        entry["stopped"] = "the merge failed"
        return entry
    entry["merged"] = report_runs(merged, "merged")
    compacted = bench.work / f"scale-x{factor}-compacted"
    compact_runs = []
    for _ in range(repeat):
        copy_lake(merged, compacted)
        compact_runs.append(
            bench.run(
                "current",
                bench.tootlake(
                    "compact",
                    "--lake",
                    compacted,
                    "--retain-files",
                    "0",
                    "--format",
                    "json",
                    "--quiet",
                ),  # fmt: skip
                what=f"compact x{factor}",
            )
        )
        log(f"    x{factor} compact: {_brief(compact_runs[-1])}")
    entry["compact"] = stats(compact_runs)
    if compact_runs[-1].get("output"):
        entry["compact"]["stats"] = compact_runs[-1]["output"]
    if "error" in compact_runs[-1]:
        entry["stopped"] = "the compaction failed"
        return entry
    entry["compacted"] = report_runs(compacted, "compacted")
    shutil.rmtree(compacted, ignore_errors=True)
    entry["reports_equal"] = equal_states(reports, reference if factor == 1 else None)
    shutil.rmtree(spill, ignore_errors=True)
    return entry


def _brief(run: dict[str, Any]) -> str:
    text = f"{run['seconds']:.1f} s, {run['peak_rss_mb']:.0f} MB"
    return text + (" FAILED" if "error" in run else "")


def report_has_memory_limit() -> bool:
    help_text = subprocess.run(
        [PY, "-m", "tootlake", "report", "--help"], capture_output=True, text=True,
        env={**clean_env(), "PYTHONPATH": str(ROOT / "src")}, check=False,
    ).stdout  # fmt: skip
    return "--memory-limit" in help_text


# ----------------------------------------------------------------------------------------
# results


def keep_earlier(results: dict[str, Any], path: Path) -> None:
    """A partial run (`--only`) replaces only the parts it ran: the others stay from the
    earlier results, marked with when they were made (`kept`: part -> time)."""
    if not path.exists():
        return
    earlier = json.loads(path.read_text())
    if earlier.get("dataset", {}).get("generated") != results["dataset"].get("generated"):
        return
    kept = dict(earlier.get("kept", {}))
    commands = dict(earlier.get("kept_commands", {}))
    for name in PARTS:
        if name not in results and name in earlier:
            results[name] = earlier[name]
            kept.setdefault(name, earlier.get("made_at"))
            commands.setdefault(name, earlier.get("command"))
        else:
            kept.pop(name, None)
            commands.pop(name, None)
    if kept:
        results["kept"] = kept
        results["kept_commands"] = commands


def _kept(results: dict[str, Any], part: str) -> str:
    """` (kept from TIME, by `COMMAND`)` for a part an earlier run made, else ''."""
    when = results.get("kept", {}).get(part)
    if not when:
        return ""
    command = results.get("kept_commands", {}).get(part)
    return f" (kept from {when}" + (f", made by `{command}`)" if command else ")")


def _n(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _change(base: float | None, cur: float | None) -> str:
    """cur against base: `2.10x faster` / `12% worse`, lower being better."""
    if not base or cur is None:
        return "—"
    if cur <= base:
        return f"{base / cur:.2f}x less" if cur else "—"
    worse = cur / base - 1
    flag = " **WORSE >10%**" if worse > WORSE else ""
    return f"+{worse * 100:.0f}%{flag}"


def worse_figures(results: dict[str, Any]) -> list[str]:
    """Every current figure more than 10% worse than the baseline's (median)."""
    found = []
    for state in ("before", "after"):
        part = results.get(state)
        if not part:
            continue
        for what in ("open", "report", "report_html"):
            pair = part.get(what, {})
            keys = ("first", "seconds", "peak_rss_mb") if what == "open" else (
                "seconds", "cpu_seconds", "peak_rss_mb"
            )  # fmt: skip
            for key in keys:
                base, cur = median(pair.get("baseline"), key), median(pair.get("current"), key)
                if base and cur and cur > base * (1 + WORSE):
                    found.append(
                        f"{state} {what} {key}: {base:g} -> {cur:g} (+{cur / base - 1:.0%})"
                    )
    part = results.get("compact")
    if part:
        for key in ("seconds", "cpu_seconds", "peak_rss_mb"):
            base, cur = median(part.get("baseline"), key), median(part.get("current"), key)
            if base and cur and cur > base * (1 + WORSE):
                found.append(f"compact {key}: {base:g} -> {cur:g} (+{cur / base - 1:.0%})")
    return found


def write_markdown(results: dict[str, Any], path: Path) -> None:
    ds = results["dataset"]
    m = results["machine"]
    lines = [
        "# The lake: Delta tables against the Parquet files + manifest of "
        f"{results['baseline']['rev']}",
        "",
        f"Made {results['made_at']} by `{results['command']}` in "
        f"{results['seconds_total'] / 60:.1f} min on {m['cpus']} shared cores (load average "
        f"at start {m['load_average_at_start']}, at end {results['load_average_at_end']}; the "
        "load before each run is in lake.json). Python "
        f"{m['python']}, " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ".",
        "",
        f"Baseline: `{results['baseline']['rev']}` (its src/ unpacked with `git archive` into "
        f"`{results['baseline']['source']}`, run with PYTHONPATH), on the old-layout lake its own "
        "`ParquetSink` wrote; current: the working tree, on a copy of that lake converted by "
        "`tootlake migrate`. Same posts: "
        f"{ds.get('posts_written', 0):,} posts generated the analysis data set's way "
        f"({ds['generated']:,} statuses, opted-out authors skipped), then "
        f"{ds.get('edits_written', 0):,} edits and {ds.get('deletes_written', 0):,} deletes "
        "as the stream's events (more files). Every figure is a fresh process; sides "
        f"alternate; medians of {results['repeat']} runs.",
        "",
    ]
    mig = results.get("migrate")
    if mig:
        lines += [
            f"`tootlake migrate` of the old lake: {mig['seconds']:.1f} s, "
            f"{mig['cpu_seconds']:.1f} s CPU, peak RSS {mig['peak_rss_mb']:.0f} MB "
            f"(load {mig['load_1min']}).",
            "",
        ]
    for state, title in (("before", "Not compacted"), ("after", "After compaction")):
        part = results.get(state)
        if not part:
            continue
        lines += [
            f"## {title}" + _kept(results, state),
            "",
            f"Load average (1 min) before its runs: {_load_range(part)}.",
            "",
        ]
        eq = part["reports_equal"]
        if eq.get("equal"):
            added = eq.get("added")
            lines.append(
                f"The two `report --format json` outputs are **equal** ({eq['sections']} sections)"
                + (f"; the current one adds {len(added)}: {', '.join(added)}." if added else ".")
            )
        else:
            lines.append(f"The two reports **differ**: {json.dumps(eq)[:1500]}")
        head = part.get("headline") or {}
        if head:
            lines.append(
                "Report: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                                       for k, v in list(head.items())[:6]) + "."
            )  # fmt: skip
        facts = part["facts"]
        lines += [
            "",
            "Lakes: baseline "
            + _facts_text(facts["baseline"])
            + "; current "
            + _facts_text(facts["current"])
            + ".",
            "",
            "| | baseline s | current s | | baseline CPU s | current CPU s | "
            "baseline MB | current MB | |",
            "|---|---:|---:|---|---:|---:|---:|---:|---|",
        ]
        for what, label in (
            ("open", "`open_lake()` x5 (process)"),
            ("report", "`report --format json`"),
            ("report_html", "`report --format json --html`"),
        ):
            b, c = part[what]["baseline"], part[what]["current"]
            lines.append(
                f"| {label} | {_n(median(b, 'seconds'))} | {_n(median(c, 'seconds'))} | "
                f"{_change(median(b, 'seconds'), median(c, 'seconds'))} | "
                f"{_n(median(b, 'cpu_seconds'))} | {_n(median(c, 'cpu_seconds'))} | "
                f"{_n(median(b, 'peak_rss_mb'), 0)} | {_n(median(c, 'peak_rss_mb'), 0)} | "
                f"{_change(median(b, 'peak_rss_mb'), median(c, 'peak_rss_mb'))} |"
            )
        b, c = part["open"]["baseline"], part["open"]["current"]
        first = median(c, "first")
        met = "met" if first is not None and first < TARGET_OPEN_SECONDS else "NOT met"
        lines += [
            "",
            f"`open_lake()` itself, in-process (first call / again, median of 4 more): "
            f"baseline {_n(median(b, 'first'), 3)} / {_n(median(b, 'again'), 3)} s, current "
            f"{_n(first, 3)} / {_n(median(c, 'again'), 3)} s; target < "
            f"{TARGET_OPEN_SECONDS} s: **{met}**.",
            "",
        ]
        for what in ("open", "report", "report_html"):
            for side in ("baseline", "current"):
                entry = part[what][side]
                if entry.get("failed"):
                    lines.append(
                        f"* FAILED {what} ({side}): {error_summary(entry.get('errors', ['?'])[0])}"
                    )
        lines.append("")
    comp = results.get("compact")
    if comp:
        lines += [
            "## Compaction" + _kept(results, "compact"),
            "",
            f"Load average (1 min) before its runs: {_load_range(comp)}.",
            "",
            "| | s | CPU s | peak RSS MB | files before -> after | MB before -> after |",
            "|---|---:|---:|---:|---|---|",
        ]
        for side in ("baseline", "current"):
            e = comp[side]
            f = comp["facts"].get(side, {})
            before, after = (
                f.get("before", {}).get("total", {}),
                f.get("after", {}).get("total", {}),
            )
            lines.append(
                f"| {side}: `{comp['commands'][side].replace('python -m ', '')}` | "
                f"{_n(median(e, 'seconds'))} | {_n(median(e, 'cpu_seconds'))} | "
                f"{_n(median(e, 'peak_rss_mb'), 0)} | "
                f"{before.get('files')} -> {after.get('files')} | "
                f"{before.get('mb')} -> {after.get('mb')} |"
            )
        b, c = comp["baseline"], comp["current"]
        lines += [
            "",
            "Current against baseline: time "
            f"{_change(median(b, 'seconds'), median(c, 'seconds'))}, "
            f"CPU {_change(median(b, 'cpu_seconds'), median(c, 'cpu_seconds'))}, peak RSS "
            f"{_change(median(b, 'peak_rss_mb'), median(c, 'peak_rss_mb'))}.",
            "",
        ]
        for side in ("baseline", "current"):
            if comp[side].get("failed"):
                lines.append(f"* FAILED compact ({side}): {error_summary(comp[side]['errors'][0])}")
        lines.append("")
    scale = results.get("scale")
    if scale:
        lines += _scale_markdown(scale, results)
    worse = results.get("worse_by_more_than_10_percent") or []
    lines += ["## Figures more than 10% worse than the baseline", ""]
    lines += [f"* {w}" for w in worse] or ["None."]
    lines.append("")
    lines += ["## Failures", ""]
    lines += [f"* {where}: {error_summary(error)}" for where, error in part_failures(results)] or [
        "None."
    ]
    if results.get("failures"):
        lines += ["", "Commands of this run that failed (stderr in lake.json):", ""]
        lines += [f"* {f['what']} ({f['side']}): `{f['command']}`" for f in results["failures"]]
    lines += ["", "See bench/lake_bench.py and bench/README.md for what each figure is."]
    path.write_text("\n".join(lines) + "\n")


def _load_range(part: Any) -> str:
    """min-max of every `load_1min` recorded under `part`."""
    loads: list[float] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "load_1min":
                    loads.extend(inner if isinstance(inner, list) else [inner])
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(part)
    return f"{min(loads)}-{max(loads)}" if loads else "?"


def part_failures(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Every failed measurement kept in the results (this run's and kept parts'): where, and
    the error of its first failed run."""
    found: list[tuple[str, str]] = []

    def check(where: str, entry: Any) -> None:
        if isinstance(entry, dict) and entry.get("failed"):
            found.append(
                (f"{where} ({entry['failed']} of {entry['runs']} runs)", entry["errors"][0])
            )

    for state in ("before", "after"):
        for what, sides in (results.get(state) or {}).items():
            if what in ("open", "report", "report_html"):
                for side, entry in sides.items():
                    check(f"{state} {what} {side}", entry)
    for side, entry in (results.get("compact") or {}).items():
        if side in ("baseline", "current"):
            check(f"compact {side}", entry)
    scale = results.get("scale") or {}
    for size in scale.get("sizes", []):
        x = f"scale x{size['factor']}"
        if "error" in size:
            found.append((x, size["error"]))
        for state in ("written", "merged", "compacted"):
            for how in ("library", "cli"):
                label = {"library": scale.get("memory_limit"), "cli": "plain CLI"}[how]
                check(f"{x} {state} report ({label})", (size.get(state) or {}).get(how))
        for step in ("merge", "compact"):
            check(f"{x} {step}", size.get(step))
    return found


def error_summary(error: str) -> str:
    """A failure in one line: its exception line, and where in tootlake it was raised."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    frames = [line for line in lines if line.startswith("File ") and "/src/tootlake/" in line]
    if not raised:
        return " ".join(lines)[-800:]
    shown = [f.split("/src/", 1)[1].replace('", line', ":").replace(", in", " in") for f in frames]
    where = f" (at {' > '.join(shown[-2:])})" if shown else ""
    return raised[-1][:600] + where


def _facts_text(facts: dict[str, Any]) -> str:
    parts = [f"{k} {v['files']} files {v['mb']} MB" for k, v in facts.items() if k != "total"]
    return ", ".join(parts)


def _scale_markdown(scale: dict[str, Any], results: dict[str, Any]) -> list[str]:
    limit = scale["memory_limit"]
    lines = [
        "## Scale" + _kept(results, "scale"),
        "",
        "When this part ran, `tootlake report` had "
        + (
            f"a --memory-limit option: the limited report is `tootlake report --format json "
            f"--memory-limit {limit} --temp-directory SPILL`, and the plain CLI is beside it "
            "(DuckDB's default limit: 80% of RAM)."
            if scale["report_memory_limit_option"]
            else "**no --memory-limit option**: the report is measured through the library "
            f'in a fresh process (`read_lake(lake, build_report, memory_limit="{limit}", '
            "temp_directory=SPILL)`, JSON rendered), and the plain CLI beside it (DuckDB's "
            "default limit: 80% of RAM)."
        )
        + " The Delta lake replicated under new uris (`#rk` after each uri, `-rk` after each "
        "local id; each copy has its own edits and deletes), appended to new Delta tables "
        "(one commit per source file and copy); *written*: as appended; *merged*: after "
        "`merge_posts()` (what `replay` and `collect` run after writing); *compacted*: after "
        "`tootlake compact --retain-files 0`. Medians of "
        f"{scale.get('repeat', 1)} run(s); load average (1 min) before its runs "
        f"{_load_range(scale)}.",
        "",
        f"| posts | state | files (posts_all/posts) | report s ({limit}) | s per M posts | "
        f"peak RSS MB ({limit}) | plain CLI s | CLI s per M | CLI MB |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    per_million: dict[str, list[tuple[int, float]]] = {}
    maint: list[str] = []
    for size in scale["sizes"]:
        if "skipped" in size or "error" in size:
            continue
        posts = (size.get("merged") or size.get("written") or {}).get("headline", {}).get(
            "posts"
        ) or size["posts"]
        for state in ("written", "merged", "compacted"):
            entry = size.get(state)
            if not entry:
                continue
            lib = entry["library"]
            s = median(lib, "seconds")
            f = entry["facts"]
            files = f"{f.get('posts_all', {}).get('files', 0)}/{f.get('posts', {}).get('files', 0)}"
            per = s / (posts / 1e6) if s else None
            if per:
                per_million.setdefault(state, []).append((posts, per))
            cli = entry.get("cli", {})
            cli_s = median(cli, "seconds")
            cli_per = cli_s / (posts / 1e6) if cli_s else None
            if cli_per:
                per_million.setdefault(f"{state} (CLI)", []).append((posts, cli_per))
            failed = f" ({limit} FAILED)" if lib.get("failed") else ""
            lines.append(
                f"| {posts:,} | {state}{failed} | {files} | {_n(s)} | {_n(per)} | "
                f"{_n(median(lib, 'peak_rss_mb'), 0)} | {_n(cli_s)} | {_n(cli_per)} | "
                f"{_n(median(cli, 'peak_rss_mb'), 0)} |"
            )
        for step in ("merge", "compact"):
            e = size.get(step)
            if e:
                maint.append(
                    f"| {posts:,} | {step} | {_n(median(e, 'seconds'))} | "
                    f"{_n(median(e, 'cpu_seconds'))} | {_n(median(e, 'peak_rss_mb'), 0)} |"
                    + (" FAILED" if e.get("failed") else "")
                )
    lines += [
        "",
        "Maintenance (target peak RSS < 2 GB):",
        "",
        "| posts | step | s | CPU s | peak RSS MB |",
        "|---:|---|---:|---:|---:|",
        *maint,
        "",
    ]
    for state, points in per_million.items():
        if len(points) > 1:
            first = points[0][1]
            curve = ", ".join(f"{p / 1e6:.1f}M {v:.2f} s/M ({v / first:.2f}x)" for p, v in points)
            lines.append(f"* {state}: seconds per million posts {curve}")
    for size in scale["sizes"]:
        if "skipped" in size:
            lines.append(f"* {size['skipped']}")
        if "error" in size:
            lines.append(f"* x{size['factor']} FAILED: {error_summary(size['error'])}")
        if size.get("stopped"):
            lines.append(f"* x{size['factor']}: stopped: {size['stopped']}")
        checks = dict(size.get("reports_equal") or {})
        for state in ("written", "merged", "compacted"):
            check = (size.get(state) or {}).get("cli_report_equals_library")
            if check is not None:
                checks[f"{state}: plain CLI vs limited"] = check
        if checks:
            said = [
                f"{name} {'equal' if c.get('equal') else 'DIFFER: ' + json.dumps(c)[:600]}"
                for name, c in checks.items()
            ]
            lines.append(f"* x{size['factor']} reports: " + "; ".join(said))
    lines.append("")
    return lines


# ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=TALK_POSTS, help="statuses generated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edits", type=float, default=EDITS)
    parser.add_argument("--deletes", type=float, default=DELETES)
    parser.add_argument("--baseline", default=BASELINE, help="the rev of the old layout")
    parser.add_argument("--only", default=",".join(PARTS), help="parts: " + ",".join(PARTS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scales", default=",".join(map(str, SCALES)))
    parser.add_argument("--scale-repeat", type=int, default=None, help="default: --repeat")
    parser.add_argument(
        "--no-scale-cli", dest="scale_cli", action="store_false",
        help="at scale, only the library's report (not the plain CLI's)",
    )  # fmt: skip
    parser.add_argument("--scale-keep", action="store_true", help="keep the scale lakes")
    parser.add_argument("--memory-limit", default=SCALE_MEMORY_LIMIT)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per process")
    parser.add_argument("--results", default=None, help="folder (default: see the docstring)")
    parser.add_argument(
        "--markdown-only", action="store_true", help="only write lake.md again from lake.json"
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *rest = args.child
        CHILDREN[mode](*rest)
        return
    if args.markdown_only:
        folder = Path(args.results) if args.results else (
            RESULTS if args.posts == TALK_POSTS else DATA / f"lake-{args.posts}-seed{args.seed}"
            / "results"
        )  # fmt: skip
        write_markdown(json.loads((folder / "lake.json").read_text()), folder / "lake.md")
        return
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(only) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    args.scales = [int(x) for x in args.scales.split(",") if x.strip()]
    args.scale_repeat = args.scale_repeat or args.repeat
    started = time.monotonic()
    command = "python bench/lake_bench.py " + " ".join(sys.argv[1:])
    bench = Bench(args)
    mach = machine()
    log(f"lake benchmark: {command.strip()} (load average {mach['load_average_at_start']})")
    meta = build_lakes(bench)
    lakes = {"baseline": bench.folder / "old", "current": bench.folder / "delta"}
    import deltalake
    import duckdb
    import pyarrow

    results: dict[str, Any] = {
        "benchmark": "lake",
        "command": command.strip(),
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": mach,
        "versions": {
            "deltalake": deltalake.__version__,
            "duckdb": duckdb.__version__,
            "pyarrow": pyarrow.__version__,
        },
        "baseline": {"rev": args.baseline, "source": _rel(bench.baseline_src)},
        "repeat": args.repeat,
        "scale_repeat": args.scale_repeat,
        "dataset": {**meta["old_lake"], "edits": args.edits, "deletes": args.deletes},
        "delta_lake": meta["delta_lake"],
        "migrate": meta["migrate"],
    }
    if "before" in only:
        results["before"] = measure_reads(bench, lakes, "before")
    if "compact" in only or ("after" in only and not compacted_lakes(bench, lakes)):
        for path in (bench.work / "compacted-baseline", bench.work / "compacted-current"):
            (path / ".complete").unlink(missing_ok=True)
        results["compact"] = measure_compaction(bench, lakes)
        for side in lakes:
            path = bench.work / f"compacted-{side}"
            if path.exists() and not results["compact"][side].get("failed"):
                (path / ".complete").write_text("")
    if "after" in only:
        done = compacted_lakes(bench, lakes)
        if done:
            results["after"] = measure_reads(bench, done, "after")
        else:
            log("  after: a compaction failed, nothing to read")
    if "scale" in only:
        posts_1x = meta["old_lake"]["posts_written"] - meta["old_lake"]["deletes_written"]
        headline_posts = (results.get("before") or {}).get("headline", {}).get("posts")
        results["scale"] = measure_scale(bench, lakes["current"], headline_posts or posts_1x)
    results["failures"] = bench.failures
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds_total"] = round(time.monotonic() - started, 1)
    folder = Path(args.results) if args.results else (
        RESULTS if args.posts == TALK_POSTS else bench.folder / "results"
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    keep_earlier(results, folder / "lake.json")
    results["worse_by_more_than_10_percent"] = worse_figures(results)
    (folder / "lake.json").write_text(json.dumps(results, indent=1))
    write_markdown(results, folder / "lake.md")
    print((folder / "lake.md").read_text())


if __name__ == "__main__":
    main()
