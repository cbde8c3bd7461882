"""A TCP proxy in front of the test S3 server that makes the faults a real store has. It
forwards connections both ways, and:

- `lose`: the first request whose request line matches this pattern reaches the server whole,
  and its reply is swallowed, the connection then closed. The server did the request; the
  client never hears of it (a reply lost on the way back);
- `refuse()` until `forward()`: every request is answered 403 AccessDenied and its connection
  closed, as a store answers keys that expired (a client error: no client retries it);
  `refuse(message=N)`: with a message of N characters (newlines and escapes among them), as a
  store or a proxy in front of it may send.

    with S3Faults(("127.0.0.1", 9000), lose=r"PUT \\S*/_delta_log/0+1\\.json") as proxy:
        ...  # talk to 127.0.0.1:proxy.port
    proxy.lost  # the request lines whose reply was lost (once closed)

It runs in a process of its own: some delta-rs calls hold the GIL while they wait for the
network, so a proxy on threads of the test's process would never answer them.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["S3Faults", "faulty_s3"]


class S3Faults:
    """The proxy's process (see the module); `port` is where it listens, on 127.0.0.1."""

    def __init__(self, upstream: tuple[str, int], *, lose: str = "$^") -> None:
        self.lost: list[str] = []
        self._proc = subprocess.Popen(
            [sys.executable, __file__, upstream[0], str(upstream[1]), lose],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        first = self._proc.stdout.readline().split()
        if first[:1] != ["port"]:
            self._proc.kill()
            raise RuntimeError(f"the proxy did not start: {first!r}")
        self.port = int(first[1])

    def refuse(self, *, message: int = 0) -> None:
        """From now on, answer every request 403 (until `forward`); `message`: the length of
        the error's message, when not the usual one."""
        self._say(f"refuse {message}")

    def forward(self) -> None:
        self._say("forward")

    def _say(self, command: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()

    def close(self) -> None:
        """Stops the proxy; `lost` then holds what it lost."""
        if self._proc.returncode is not None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
        out, _ = self._proc.communicate(timeout=30)
        self.lost = [line.removeprefix("lost ") for line in out.splitlines() if line]

    def __enter__(self) -> S3Faults:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


@contextlib.contextmanager
def faulty_s3(monkeypatch: Any, *, lose: str = "$^") -> Iterator[S3Faults]:
    """The test S3 server (`AWS_ENDPOINT_URL`, as the `s3_lake` fixture sets it) behind an
    `S3Faults` proxy for the block: `AWS_ENDPOINT_URL` names the proxy meanwhile, and the
    server again after it."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    host, port = endpoint.removeprefix("http://").split(":")
    with S3Faults((host, int(port)), lose=lose) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        try:
            yield proxy
        finally:
            monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)


def _denied(message: int) -> bytes:
    text = b"Access Denied"
    if message:
        text = (b"Denied \x1b[31mred\x1b[0m\nline " * (message // 30 + 1))[:message]
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<Error><Code>AccessDenied</Code><Message>%s</Message></Error>" % text
    )
    return (
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def _serve(upstream: tuple[str, int], pattern: re.Pattern[bytes]) -> None:
    lock = threading.Lock()
    lost: list[bytes] = []
    refusing = threading.Event()
    denied = [_denied(0)]
    listener = socket.create_server(("127.0.0.1", 0))
    print("port", listener.getsockname()[1], flush=True)

    def commands() -> None:
        for line in sys.stdin:
            if line.startswith("refuse"):
                denied[0] = _denied(int(line.split()[1]))
                refusing.set()
            elif line.strip() == "forward":
                refusing.clear()

    threading.Thread(target=commands, daemon=True).start()

    def forward(client: socket.socket) -> None:
        if refusing.is_set():
            with contextlib.suppress(OSError):
                client.recv(65536)
                client.sendall(denied[0])
            _shut(client)
            return
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
