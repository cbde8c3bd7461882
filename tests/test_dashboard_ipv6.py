"""`tootlake dashboard --host ::1` as a user runs it: a real process serving on the IPv6
loopback, the address it prints (one pair of brackets, the port the system chose) answering
over a real socket, and a Host header of another name refused (DNS rebinding)."""

from __future__ import annotations

import http.client
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from tootlake.pipeline import replay

from .smalllake import write_inputs


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")


def _announced(proc: subprocess.Popen[str], seconds: float = 60) -> str:
    """The first line the dashboard says on stderr naming its address."""
    assert proc.stderr is not None
    deadline = time.monotonic() + seconds
    said = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()
            if not line:
                break
            said.append(line)
            if "http://" in line:
                return line
        if proc.poll() is not None:
            break
    raise AssertionError(f"the dashboard said no address: {''.join(said)!r}")


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_the_dashboard_serves_on_the_ipv6_loopback_at_the_address_it_prints(tmp_path, lake, host):
    jsonl, _ = write_inputs(tmp_path / "input")
    replay([jsonl], lake)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOTLAKE_")}
    env["TOOTLAKE_CONFIG"] = os.devnull
    proc = subprocess.Popen(
        [sys.executable, "-m", "tootlake", "dashboard", "--lake", lake, "--host", host]
        + ["--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        line = _announced(proc)
        found = re.search(r"http://\[::1\]:(\d+)/", line)
        assert found, line
        assert "[[" not in line
        port = int(found.group(1))
        assert port > 0
        page = http.client.HTTPConnection("::1", port, timeout=30)
        page.request("GET", "/", headers={"Host": f"[::1]:{port}"})
        answer = page.getresponse()
        body = answer.read().decode()
        assert answer.status == 200, body[:500]
        assert "<html" in body.lower() and answer.getheader("Content-Security-Policy")
        page.close()
        # another name for the same socket (a rebinding page's) is refused
        other = http.client.HTTPConnection("::1", port, timeout=30)
        other.request("GET", "/", headers={"Host": f"evil.example:{port}"})
        assert other.getresponse().status == 400
        other.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
