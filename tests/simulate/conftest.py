"""Helpers for the simulated fediverse's tests: real sockets on 127.0.0.1, no plugins.

`async def` tests run in a fresh event loop each (asyncio.run), with a timeout, so a hung
stream fails the test instead of the suite.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import aiohttp
import pytest

ASYNC_TIMEOUT = 30.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**args), ASYNC_TIMEOUT))
    return True


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def read_until(
    response: aiohttp.ClientResponse, marker: bytes, timeout: float = 5.0
) -> bytes:
    """Body bytes of a stream until `marker` has been seen (and what came with it)."""
    data = b""

    async def read() -> bytes:
        nonlocal data
        while marker not in data:
            chunk = await response.content.readany()
            if not chunk:
                break
            data += chunk
        return data

    return await asyncio.wait_for(read(), timeout)


async def sse_events(
    response: aiohttp.ClientResponse, count: int, timeout: float = 5.0
) -> list[tuple[str, str]]:
    """The next `count` (event, data) pairs of an SSE response; comments are skipped."""
    events: list[tuple[str, str]] = []
    name = None

    async def read() -> None:
        nonlocal name
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name is not None:
                events.append((name, line[6:]))
                name = None
                if len(events) == count:
                    return

    await asyncio.wait_for(read(), timeout)
    return events


async def ws_messages(
    ws: aiohttp.ClientWebSocketResponse, count: int, timeout: float = 5.0
) -> list[Any]:
    out: list[Any] = []

    async def read() -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                out.append(msg.json())
                if len(out) == count:
                    return

    await asyncio.wait_for(read(), timeout)
    return out


async def settle(predicate: Any, timeout: float = 5.0) -> None:
    """Wait until `predicate()` is true (servers register connections asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def plain_draft(fed: Any, index: int, **changes: Any) -> Any:
    """A draft by an account of simulated instance `index` that public feeds show: public,
    no boost, no reply, no media, no opt-out (unless `changes` say otherwise)."""
    from dataclasses import replace

    workload = fed.workload
    author = next(a for a in workload.authors(index, fed.hosts[index]) if not a.opted_out)
    fields = {"visibility": "public", "reblog": False, "reply": None, "media": (), **changes}
    return replace(workload.draft(author), **fields)
