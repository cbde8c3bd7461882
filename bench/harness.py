"""What every benchmark needs: paths, whole-process measurements, medians.

A process is measured from outside: wall time from just before `fork` to its exit, its CPU
time (user + system) and its peak resident set size from the kernel (`wait4`'s rusage, the
figures `/usr/bin/time -v` prints, "Maximum resident set size" among them). Imports,
start-up and DuckDB's memory are included.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DATA = BENCH / "data"  # git-ignored: generated inputs, cached between runs
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent  # the venv's bin/: python, tootlake


@dataclass
class ProcessRun:
    seconds: float  # wall clock
    cpu_seconds: float  # user + system: steadier than wall time on a shared machine
    peak_rss_mb: float
    stdout: str
    stderr: str


def clean_env() -> dict[str, str]:
    """The environment for measured processes: no developer settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull  # no config file
    env["PYTHONHASHSEED"] = "0"
    # The talk's Mastodon.py 1.8.0 (bench/vendor.py) for the baselines; tootlake ignores it.
    from vendor import VENDOR

    if VENDOR.exists():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(VENDOR), env.get("PYTHONPATH")]))
    return env


def run_process(
    cmd: Sequence[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> ProcessRun:
    """Run `cmd` to completion; its wall time and peak RSS. Raises on a non-zero exit.
    `env` adds to (or overrides) the clean environment."""
    out_path = DATA / f".stdout-{os.getpid()}"
    err_path = DATA / f".stderr-{os.getpid()}"
    DATA.mkdir(parents=True, exist_ok=True)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=out,
            stderr=err,
            cwd=cwd or ROOT,
            env={**clean_env(), **(env or {})},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} exited with {proc.returncode}:\n{stderr[-3000:]}"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return ProcessRun(seconds, cpu, usage.ru_maxrss / 1024, stdout, stderr)


def free_port() -> int:
    """A free loopback port (nothing listens on it when returned)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_pair() -> int:
    """A port p such that p and p+1 (Kafka's KRaft controller) are both free."""
    import socket

    for _ in range(50):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise SystemExit("no two consecutive free ports")


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of repeated measurements (the median is the figure we quote)."""
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "runs": [round(v, 4) for v in values],
    }


def machine() -> dict[str, Any]:
    import platform

    load = os.getloadavg()
    try:  # tootlake's text helpers in Rust (docs/native.md): in use when installed
        import tootlake_native  # noqa: F401

        native = True
    except ImportError:
        native = False
    return {
        "native_text_helpers": native,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
