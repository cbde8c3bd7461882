"""The report on one lake by two tootlake source trees, alternating: did a change slow it down?

    git archive HEAD src | tar -x -C /tmp/before          # the baseline, without a worktree
    python bench/report_ab.py --before /tmp/before/src --after src --lake LAKE --repeat 7

Each run is bench/report_bench.py's own measurement of `write_html_report` (a fresh process:
imports, queries, charts and page), with PYTHONPATH set to the tree. Runs alternate, so a busy
machine slows both alike; CPU seconds (every thread) are the steadier figure on a shared one.
Prints every run and the medians, and writes them as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def run(src: str, lake: str, out: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(BENCH / "report_bench.py"), "_child", "ours", lake, str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the baseline's src folder")
    parser.add_argument("--after", required=True, help="the changed src folder")
    parser.add_argument("--lake", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="write the runs and medians here")
    args = parser.parse_args()
    trees = {"before": args.before, "after": args.after}
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for name in ("before", "after") if i % 2 == 0 else ("after", "before"):
                result = run(trees[name], args.lake, Path(tmp) / f"{name}.html")
                runs[name].append(result)
                print(
                    f"{name}: {result['seconds']:.2f} s, {result['cpu_seconds']:.2f} s CPU, "
                    f"{result['charts']} charts, load {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                )
    medians = {
        name: {
            "seconds": round(statistics.median(float(r["seconds"]) for r in rs), 2),
            "cpu_seconds": round(statistics.median(float(r["cpu_seconds"]) for r in rs), 2),
        }
        for name, rs in runs.items()
    }
    for what in ("seconds", "cpu_seconds"):
        change = medians["after"][what] / medians["before"][what] - 1
        print(f"{what}: {medians['before'][what]} -> {medians['after'][what]} ({change:+.1%})")
    if args.json:
        Path(args.json).write_text(json.dumps({"medians": medians, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
