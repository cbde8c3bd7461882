"""A TCP proxy that loses one reply: it forwards connections to a server both ways, except
that the first request whose request line matches a pattern reaches the server whole and its
reply is swallowed, the connection then closed. The server did the request; the client never
hears of it (a reply lost on the way back).

    with LoseOneReply(("127.0.0.1", 9000), r"PUT \\S*/_delta_log/0+1\\.json") as proxy:
        ...  # talk to 127.0.0.1:proxy.port
    proxy.lost  # the request lines whose reply was lost

It runs in a process of its own: some delta-rs calls hold the GIL while they wait for the
network, so a proxy on threads of the test's process would never answer them.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import threading
from typing import Any

__all__ = ["LoseOneReply"]


class LoseOneReply:
    """The proxy's process (see the module); `port` is where it listens, on 127.0.0.1."""

    def __init__(self, upstream: tuple[str, int], pattern: str) -> None:
        self.lost: list[str] = []
        self._proc = subprocess.Popen(
            [sys.executable, __file__, upstream[0], str(upstream[1]), pattern],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        first = self._proc.stdout.readline().split()
        if first[:1] != ["port"]:
            self._proc.kill()
            raise RuntimeError(f"the proxy did not start: {first!r}")
        self.port = int(first[1])

    def close(self) -> None:
        """Stops the proxy; `lost` then holds what it lost."""
        if self._proc.returncode is not None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
        out, _ = self._proc.communicate(timeout=30)
        self.lost = [line.removeprefix("lost ") for line in out.splitlines() if line]

    def __enter__(self) -> LoseOneReply:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _serve(upstream: tuple[str, int], pattern: re.Pattern[bytes]) -> None:
    lock = threading.Lock()
    lost: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    print("port", listener.getsockname()[1], flush=True)

    def forward(client: socket.socket) -> None:
        server = socket.create_connection(upstream)
        drop = threading.Event()
        threading.Thread(target=back, args=(server, client, drop), daemon=True).start()
        seen = b""
        try:
            while data := client.recv(65536):
                seen = seen[-512:] + data  # (a request line split between two reads)
                match = pattern.search(seen)
                with lock:
                    if match and not lost:
                        lost.append(match.group(0))
                        print("lost", match.group(0).decode(), flush=True)
                        drop.set()
                server.sendall(data)
        except OSError:
            pass
        finally:
            _shut(server)

    def back(server: socket.socket, client: socket.socket, drop: threading.Event) -> None:
        try:
            while data := server.recv(65536):
                if drop.is_set():  # the server answered: the client never hears it
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _shut(client)

    while True:
        client, _ = listener.accept()
        threading.Thread(target=forward, args=(client,), daemon=True).start()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


if __name__ == "__main__":
    _serve((sys.argv[1], int(sys.argv[2])), re.compile(sys.argv[3].encode()))
