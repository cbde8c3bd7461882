"""Small hostile servers for the collector's tests: an aiohttp app on a loopback address
(127.0.0.1, or 127.0.0.2 as "another host"), run in a thread for the length of a `with`; and
a fleet of workers reading them, its events drained in a thread.

The simulator (`tootlake.simulate`) plays well-behaved Mastodon; these play what it never
does: endless lines, endless events, gigabyte documents, documents of the wrong shape,
redirects and streaming URLs pointing at other hosts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tootlake.sources import Event
from tootlake.sources.fleet import FleetOptions, FleetSource, InstanceSpec, InstanceWorker
from tootlake.sources.state import CollectorState

from .conftest import FAST, wait_for

TOKEN = "t0ken-only-for-its-own-instance"
DOC_V2: dict[str, Any] = {"version": "4.3.0", "title": "hostile", "configuration": {}}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    """A running server: its base URL and what it saw."""

    url: str
    host: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # path, headers
    sent: list[int] = field(default_factory=list)  # bytes written per streamed answer

    def paths(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@contextmanager
def serve(routes: dict[str, Handler], address: str = "127.0.0.1") -> Iterator[Server]:
    """Serve `routes` ({path: handler}, every other path 404) on `address`, port chosen by
    the kernel; every request is recorded (path and headers) before its handler runs."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        box["server"].requests.append((request.path, dict(request.headers)))
        return await handler(request)

    async def start() -> None:
        app = web.Application(middlewares=[record])
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, address, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        box["runner"] = runner
        box["server"] = Server(f"http://{address}:{port}", f"{address}:{port}")

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(box["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=run, name=f"test-server-{address}", daemon=True)
    thread.start()
    assert ready.wait(10), "the test server did not start"
    try:
        yield box["server"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def json_answer(body: Any, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)

    return handler


async def stream_forever(
    request: web.Request, server: Server, opening: bytes, chunk: bytes, limit: int = 1 << 40
) -> web.StreamResponse:
    """An SSE answer: `opening`, then `chunk` again and again until the client goes away (or
    `limit` bytes); the bytes written are added to `server.sent`."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    server.sent.append(0)
    try:
        await resp.write(opening)
        while server.sent[-1] < limit:
            await resp.write(chunk)
            server.sent[-1] += len(chunk)
    except (ConnectionError, RuntimeError):
        pass  # the collector dropped the connection
    return resp


@dataclass
class Fleet:
    source: FleetSource
    events: list[Event]

    def worker(self, host: str) -> InstanceWorker:
        return next(w for w in self.source.workers if w.host == host)

    def wait_status(self, host: str, status: str, contains: str = "", timeout: float = 20) -> Any:
        def check() -> bool:
            workers = [w for w in self.source.workers if w.host == host]
            return bool(workers) and workers[0].status == status and contains in workers[0].detail

        return wait_for(check, timeout, f"{host} {status} {contains!r}")


@contextmanager
def running_fleet(specs: list[InstanceSpec], state_dir: Path, **options: Any) -> Iterator[Fleet]:
    """A FleetSource over `specs` (FAST options, overridden by `options`), its events drained
    into a list by a thread; stopped (its workers cancelled) at the end of the `with`."""
    source = FleetSource(
        specs,
        CollectorState(state_dir),
        options=FleetOptions(**{**FAST.__dict__, **options}),
        health_every=0.5,
    )
    fleet = Fleet(source, [])
    failure: list[BaseException] = []

    def drain() -> None:
        try:
            for event in source.events():
                if event is not None:
                    fleet.events.append(event)
        except BaseException as exc:  # re-raised below
            failure.append(exc)

    thread = threading.Thread(target=drain, name="test-fleet", daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(source.workers) == len(specs), 10, "the workers")
        yield fleet
    finally:
        source.stop.set()
        thread.join(30)
    assert not thread.is_alive(), "the fleet did not stop"
    if failure:
        raise failure[0]
