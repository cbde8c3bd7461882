"""Free loopback ports for the servers tests start (nothing listens on them when returned;
the server that takes one next binds it), and the port a server started on port 0 says it
took."""

from __future__ import annotations

import re
import socket

__all__ = ["free_port", "free_port_pair", "printed_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_pair() -> int:
    """A port p such that p and p+1 (Kafka's KRaft controller) are both free."""
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
    raise RuntimeError("no two consecutive free ports")


_LISTENING = re.compile(r"on http://127\.0\.0\.1:(\d+)/ ")


def printed_port(output: str) -> int:
    """The port `tootlake dashboard --port 0` says it listens on ("... on http://127.0.0.1:
    PORT/ ..."), 0 while it has not said it yet."""
    found = _LISTENING.search(output)
    return int(found.group(1)) if found else 0
