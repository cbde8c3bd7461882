"""A worker against the hostile review's edges: a timeline page of nothing but poison neither
loops nor moves the cursor and is kept once; the cursor moves only once events are in the
bridge, so a connection or backfill cut while the bridge is full skips nothing; the backfill's
seen-set stays bounded. Then, over real sockets, `collect` keeps every good status of a page
holding a lone surrogate and a 2,000-deep item, and of a WebSocket sending a status object
nested 400 deep.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tootlake.collector import collect
from tootlake.lake.reader import open_lake
from tootlake.record import ValidStatus
from tootlake.record import status as status_module
from tootlake.sources import REJECT, UPDATE, Event
from tootlake.sources import fleet as fleet_module
from tootlake.sources.fleet import FleetOptions, InstanceSpec, InstanceWorker
from tootlake.sources.mastodon import InstanceInfo, Page, RateLimit
from tootlake.sources.state import CollectorState

from ..conftest import real_status
from .conftest import FAST
from .servers import DOC_V2, TOKEN, json_answer, serve

ID0 = 110_000_000_000_000_000  # a snowflake of 2023
CURSOR = str(ID0)


def _status(n: int, **change: Any) -> dict[str, Any]:
    """A real public status, given the id ID0 + n (and its own uri)."""
    status = real_status("mastodonsocial.json", 17)
    status["id"] = str(ID0 + n)
    status["uri"] = f"https://mastodon.social/users/_Jordan/statuses/{ID0 + n}"
    return {**status, **change}


def _json(status: dict[str, Any], key: str = "", raw: str = "") -> bytes:
    """The JSON bytes of `status`, with `"key": raw` (raw JSON text) added when given."""
    text = json.dumps(status)
    return (text[:-1] + f', "{key}": {raw}}}' if key else text).encode()


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


class FakeFleet:
    """What a worker uses of its fleet; its bridge (`put`) blocks, as a full one does, until
    `open` is set."""

    native_statuses = True  # (FleetSource's: streamed statuses read natively)

    def __init__(self, state_dir: Path, session: Any = None, block: bool = False) -> None:
        self.options = FleetOptions(**{**FAST.__dict__, "audit_posts": 0})
        self.state = CollectorState(state_dir)
        self.session = session
        self.out: list[Event] = []
        self.open, self.waiting = asyncio.Event(), asyncio.Event()
        if not block:
            self.open.set()

    async def put(self, events: list[Event]) -> None:
        self.waiting.set()
        await self.open.wait()
        self.out.extend(events)

    def has_room(self) -> bool:  # (the WebSocket reader offers from the socket's callback)
        return self.open.is_set()

    def offer(self, events: list[Event]) -> bool:
        self.waiting.set()  # (an offer came: as put's wait says)
        if not self.open.is_set():
            return False
        self.out.extend(events)
        return True


def _worker(fleet: FakeFleet, url: str = "http://127.0.0.1:1") -> InstanceWorker:
    worker = InstanceWorker(fleet, InstanceSpec(url))  # type: ignore[arg-type]
    worker.contiguous = CURSOR
    return worker


def _pages(monkeypatch: pytest.MonkeyPatch, items: list[bytes]) -> list[str | None]:
    """Every timeline page is `items` (JSON bytes, as fetch_page gives them); returns the
    `min_id` of each request made."""
    asked: list[str | None] = []

    async def fetch_page(session: Any, info: Any, timeline: str, **kw: Any) -> Page:
        asked.append(kw.get("min_id"))
        return Page(list(items), {}, RateLimit(None, None, None))

    monkeypatch.setattr(fleet_module, "fetch_page", fetch_page)
    return asked


def run(coroutine: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coroutine(), 30))


INFO = InstanceInfo("http://127.0.0.1:1", version="4.3.0")


# -- a page of poison ------------------------------------------------------------------------


def test_a_page_of_rejects_without_ids_moves_nothing_and_is_kept_once(tmp_path, monkeypatch):
    poison = [
        _json(_status(1, id=1.5)),
        _json(_status(2, id="x" * 65)),
        _json(_status(3, id="²")),
        _json(_status(4), "zzz", _deep(2000)),  # its id cannot be read either
    ]
    asked = _pages(monkeypatch, poison)

    async def main() -> None:
        fleet = FakeFleet(tmp_path)
        worker = _worker(fleet)
        assert await worker._page(INFO, None) == 0  # caught up: no hot loop
        assert [e.kind for e in fleet.out] == [REJECT] * 4
        assert await worker._page(INFO, None) == 0
        assert len(fleet.out) == 4  # the same poison again is not kept again
        assert worker.contiguous == CURSOR
        for event in fleet.out:
            event.ack()  # a reject's ack holds the cursor where it is
        assert fleet.state.cursor(worker.host) == CURSOR

    run(main)
    assert asked == [CURSOR, CURSOR]


def test_a_rejected_status_with_a_usable_id_moves_the_cursor_past_it(tmp_path, monkeypatch):
    _pages(monkeypatch, [_json(_status(2, created_at="yesterday")), _json(_status(1))])

    async def main() -> None:
        fleet = FakeFleet(tmp_path)
        worker = _worker(fleet)
        assert await worker._page(INFO, None) == 2
        assert worker.contiguous == str(ID0 + 2)
        assert [e.kind for e in fleet.out] == [UPDATE, REJECT]  # oldest first
        assert fleet.out[1].reject.field == "created_at"
        fleet.out[1].ack()
        assert fleet.state.cursor(worker.host) == str(ID0 + 2)

    run(main)


# -- the cursor moves once events are in the bridge ------------------------------------------


def test_a_stream_update_moves_the_cursor_only_once_handed_out(tmp_path):
    async def main() -> None:
        worker = _worker(FakeFleet(tmp_path))
        event = worker._stream_event("update", _json(_status(5)))
        assert event is not None and event.status.id == str(ID0 + 5)
        assert worker.contiguous == CURSOR
        worker._handed()
        assert worker.contiguous == str(ID0 + 5)

    run(main)


def test_stream_statuses_are_read_natively_only_where_the_pipeline_reads_them_so(tmp_path):
    """A lake's collector gets the native FastStatus of a usual status, frame and status in
    one call; one whose records are Post objects (Kafka, a pseudonymised lake: the
    collector says so with `native_statuses`) gets the ValidStatus, decoded once. Either
    way the same id, and the same cursor move."""
    payload = _json(_status(5))
    frame = json.dumps({"stream": ["public"], "event": "update", "payload": payload.decode()})

    async def main() -> None:
        built = status_module._native is not None  # (make install builds it)
        for native, kind in (
            (True, "FastStatus" if built else "ValidStatus"),
            (False, "ValidStatus"),
        ):
            fleet = FakeFleet(tmp_path)
            fleet.native_statuses = native
            worker = _worker(fleet)
            event = worker._stream_event("update", payload)
            (framed,) = worker._ws_events([frame.encode()])
            for got in (event, framed):
                assert got is not None and got.status is not None
                assert type(got.status).__name__ == kind
                assert got.status.id == str(ID0 + 5) and got.kind == "update"
            worker._handed()
            assert worker.contiguous == str(ID0 + 5)
        # a status the native reader declines (a field to coerce) is msgspec's, read once
        odd = _json(_status(6, replies_count="many")).decode()
        message = json.dumps({"stream": ["public"], "event": "update", "payload": odd})
        (event,) = _worker(FakeFleet(tmp_path))._ws_events([message.encode()])
        assert type(event.status) is ValidStatus and event.status.coerced == ("replies_count",)

    run(main)


def test_a_page_cut_while_the_bridge_is_full_is_fetched_again(tmp_path, monkeypatch):
    asked = _pages(monkeypatch, [_json(_status(2)), _json(_status(1))])

    async def main() -> None:
        fleet = FakeFleet(tmp_path, block=True)
        worker = _worker(fleet)
        page = asyncio.create_task(worker._page(INFO, None))
        await fleet.waiting.wait()
        page.cancel()  # the stream dropped: its backfill is cancelled
        await asyncio.gather(page, return_exceptions=True)
        assert worker.contiguous == CURSOR and fleet.out == []
        fleet.open.set()
        worker._cut = False  # a new connection starts afresh (`connected()` does this)
        assert await worker._page(INFO, None) == 2
        assert [e.status.id for e in fleet.out] == [str(ID0 + 1), str(ID0 + 2)]
        assert worker.contiguous == str(ID0 + 2)

    run(main)
    assert asked == [CURSOR, CURSOR]


def test_nothing_queued_behind_an_event_that_was_cut_off_gets_in(tmp_path):
    """A stop while the bridge is full: the stream's event X dies waiting, and a backfill page
    queued behind it (which skipped X as seen, and acks ids above it) must not get in after
    it, or the durable cursor would pass X."""
    x = Event(UPDATE, "127.0.0.1:1", id=str(ID0 + 5))
    y = Event(UPDATE, "127.0.0.1:1", id=str(ID0 + 6))

    async def main() -> None:
        fleet = FakeFleet(tmp_path, block=True)
        worker = _worker(fleet)
        first = asyncio.create_task(worker._emit([x]))
        await fleet.waiting.wait()
        second = asyncio.create_task(worker._emit([y]))
        await asyncio.sleep(0.01)  # it waits for the lock, behind X
        first.cancel()
        fleet.open.set()  # room comes as the fleet stops
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert fleet.out == []
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert worker.events == 0  # counted only once handed out

    run(main)


def test_websocket_messages_wait_behind_an_emit_that_waits(tmp_path):
    """A backfill page waits for room in the bridge: the stream's messages, which the socket's
    callback would hand over at once, must not pass it (its events were made first), so the
    callback leaves them to the reader, and makes no event of them meanwhile."""
    page = Event(UPDATE, "127.0.0.1:1", id=str(ID0 + 5))
    message = (
        b'{"stream":["public"],"event":"update","payload":'
        + json.dumps(_json(_status(6)).decode()).encode()
        + b"}"
    )

    async def main() -> None:
        fleet = FakeFleet(tmp_path, block=True)
        worker = _worker(fleet)
        waiting = asyncio.create_task(worker._emit([page]))
        await fleet.waiting.wait()
        fleet.open.set()  # room, but the page has not gone in yet
        assert worker._emit_now([message]) is False and worker._handing is None
        await waiting
        assert worker._emit_now([message]) is True
        assert [e.id or e.status.id for e in fleet.out] == [str(ID0 + 5), str(ID0 + 6)]

    run(main)


async def _sse(request: web.Request) -> web.StreamResponse:
    """One update, then heartbeats until the client goes."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    try:
        await resp.write(b"event: update\ndata: " + _json(_status(7)) + b"\n\n")
        while True:
            await resp.write(b":thump\n")
            await asyncio.sleep(0.05)
    except (ConnectionError, RuntimeError):
        pass
    return resp


async def _websocket(request: web.Request) -> web.StreamResponse:
    """One update frame (its payload a JSON string, as Mastodon sends it), then silence."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    payload = json.dumps(_json(_status(7)).decode())
    await ws.send_str('{"stream":["public"],"event":"update","payload":' + payload + "}")
    await ws.receive()  # until the client goes
    return ws


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_a_stream_cut_while_the_bridge_is_full_leaves_the_cursor(tmp_path, transport):
    routes = {"/api/v1/streaming/public": _sse, "/api/v1/streaming": _websocket}
    with serve(routes) as server:

        async def main() -> None:
            async with aiohttp.ClientSession() as session:
                for block in (True, False):
                    fleet = FakeFleet(tmp_path / str(block), session, block=block)
                    worker = _worker(fleet, server.url)
                    info = InstanceInfo(server.url, version="4.3.0")
                    read = worker._sse if transport == "sse" else worker._websocket
                    reader = asyncio.create_task(read(info, lambda: None))
                    await fleet.waiting.wait()
                    while block is False and worker.contiguous == CURSOR:
                        await asyncio.sleep(0.01)  # handed out: the cursor follows
                    reader.cancel()  # the connection ends
                    await asyncio.gather(reader, return_exceptions=True)
                    moved = [str(ID0 + 7)] if not block else []
                    assert [e.status.id for e in fleet.out] == moved
                    assert worker.contiguous == (CURSOR if block else str(ID0 + 7))

        run(main)


# -- the backfill's memory -------------------------------------------------------------------


def test_the_backfill_remembers_at_most_seen_limit_ids(tmp_path, monkeypatch):
    monkeypatch.setattr(fleet_module, "SEEN_LIMIT", 10)

    async def main() -> None:
        worker = _worker(FakeFleet(tmp_path))
        worker.backfilling = True
        for n in range(1, 101):
            assert worker._stream_event("update", _json(_status(n))) is not None
            assert len(worker._seen) <= 10
        assert list(worker._seen) == [str(ID0 + n) for n in range(91, 101)]
        assert worker._stream_event("update", _json(_status(95))) is None  # still known
        assert worker.stream_high == str(ID0 + 100) and worker.contiguous == CURSOR

    run(main)


def test_the_stream_copy_of_a_backfilled_post_read_after_the_backfill_is_not_handed_out_again(
    tmp_path, monkeypatch
):
    """The loop reads sockets in gathers (and not at all while the bridge is full): the
    stream's copy of a post on the backfill's last page may be read after the backfill
    caught up. It is dropped, as during the backfill, for SEEN_GRACE seconds; then the
    backfill's ids are freed (memory: a quiet instance's too), and a new post always goes
    out."""
    pages = [[_json(_status(n)) for n in (1, 2, 3)], []]

    async def fetch_page(session: Any, info: Any, timeline: str, **kw: Any) -> Page:
        return Page(pages.pop(0) if pages else [], {}, RateLimit(None, None, None))

    monkeypatch.setattr(fleet_module, "fetch_page", fetch_page)
    monkeypatch.setattr(fleet_module, "SEEN_GRACE", 1.0)

    async def main() -> None:
        fleet = FakeFleet(tmp_path)
        worker = _worker(fleet)
        worker.backfilling = True  # (as `connected` sets it)
        await worker._backfill(INFO)
        assert not worker.backfilling and worker.contiguous == str(ID0 + 3)
        assert [e.status.id for e in fleet.out] == [str(ID0 + n) for n in (1, 2, 3)]
        assert worker._stream_event("update", _json(_status(3))) is None  # a late copy
        new = worker._stream_event("update", _json(_status(4)))
        assert new is not None and new.status.id == str(ID0 + 4)
        edit = worker._stream_event("status.update", _json(_status(2)))  # (a new version)
        assert edit is not None
        await asyncio.sleep(1.1)  # the grace is over: freed, with no event needed
        assert not worker._seen
        again = worker._stream_event("update", _json(_status(3)))
        assert again is not None

    run(main)


# -- over real sockets -----------------------------------------------------------------------


def _posts_and_rejects(lake: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    con = open_lake(lake)
    posts = dict(con.execute("SELECT uri, text FROM posts").fetchall())
    return posts, con.execute("SELECT source, reason FROM rejects").fetchall()


def test_collect_keeps_every_good_status_of_a_page_with_two_bad_ones(tmp_path):
    good = [_status(n) for n in (1, 2, 3)]
    cut = _status(4, content="\x00")
    items = [(ID0 + n, _json(s)) for n, s in zip((1, 2, 3), good, strict=True)]
    items.append((ID0 + 4, _json(cut).replace(b'"\\u0000"', b'"cut \\ud83d"')))
    items.append((ID0 + 5, _json(_status(5), "zzz", _deep(2000))))

    async def timeline(request: web.Request) -> web.StreamResponse:
        above = int(request.query.get("min_id") or 0)
        page = [raw for n, raw in sorted(items, reverse=True) if n > above]
        return web.Response(body=b"[" + b",".join(page) + b"]", content_type="application/json")

    routes = {"/api/v2/instance": json_answer(DOC_V2), "/api/v1/timelines/public": timeline}
    lake = str(tmp_path / "lake")
    with serve(routes) as server:
        result = collect(
            [InstanceSpec(server.url)],
            lake,
            state_dir=str(tmp_path / "state"),
            options=FAST,
            duration=3.0,
            flush_seconds=1.0,
            include_opted_out=True,
        )
        # the deep item has no id to move past: it came on every poll, and is kept once
        assert server.paths("/api/v1/timelines/public") >= 2
    posts, rejects = _posts_and_rejects(lake)
    assert posts.keys() == {s["uri"] for s in [*good, cut]}
    assert posts[cut["uri"]] == "cut \ufffd"
    assert rejects == [("rest", "JSON nested too deeply")]
    assert result.stats.coerced["surrogates"] == 1


def test_collect_keeps_a_websocket_status_sent_as_a_deep_object(tmp_path):
    deep = _status(1)
    plain = _status(2)

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        # the status itself as the payload, 400 deep in an unknown key: too deep for orjson
        # to encode again (the worker died on its TypeError before reading the next frame)
        await ws.send_str(
            '{"stream":["public"],"event":"update","payload":'
            + _json(deep, "pleroma", _deep(400)).decode()
            + "}"
        )
        await ws.send_str(
            json.dumps({"stream": ["public"], "event": "update", "payload": json.dumps(plain)})
        )
        await ws.receive()  # until the client goes
        return ws

    routes = {
        "/api/v2/instance": json_answer(DOC_V2),
        "/api/v1/timelines/public": json_answer([]),
        "/api/v1/streaming": websocket,
    }
    lake = str(tmp_path / "lake")
    with serve(routes) as server:
        result = collect(
            [InstanceSpec(server.url, TOKEN)],
            lake,
            state_dir=str(tmp_path / "state"),
            options=FleetOptions(**{**FAST.__dict__, "stream": "websocket"}),
            duration=3.0,
            flush_seconds=1.0,
            include_opted_out=True,
        )
    posts, rejects = _posts_and_rejects(lake)
    assert posts.keys() == {deep["uri"], plain["uri"]}
    assert rejects == []
    assert result.health[server.host]["errors"] == 0


# -- a burst of WebSocket messages goes to the bridge together -----------------------------


def _ws_frame(text: bytes) -> bytes:
    """An unmasked server text frame (RFC 6455), written raw so that a burst is one write."""
    n = len(text)
    if n < 126:
        head = bytes([0x81, n])
    elif n < 65536:
        head = bytes([0x81, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 127]) + n.to_bytes(8, "big")
    return head + text


def _burst_messages(burst: int) -> list[bytes]:
    """The WebSocket messages of a burst of `burst` updates (statuses ID0 + 1, + 2, ...)."""
    return [
        json.dumps(
            {"stream": ["public"], "event": "update", "payload": _json(_status(n)).decode()}
        ).encode()
        for n in range(1, burst + 1)
    ]


def _offers_of_a_burst(tmp_path: Path, transport: str, burst: int) -> list[list[Event]]:
    """Stream a burst of `burst` updates in one write, once the backfill is over; the offers
    the worker made of them. Checks what holds however they were cut: every status arrives,
    in order; an offer's last event alone acks, and its ack moves the cursor to it."""
    messages = _burst_messages(burst)
    frames = b"".join(_ws_frame(m) for m in messages)
    events = b"".join(
        b"event: update\ndata: " + json.loads(m)["payload"].encode() + b"\n\n" for m in messages
    )
    backfilled = threading.Event()

    async def timeline(request: web.Request) -> web.StreamResponse:
        backfilled.set()
        return web.Response(body=b"[]", content_type="application/json")

    async def after_the_backfill() -> None:
        """The backfill (an empty page) is over: acks move the cursor from then on."""
        for _ in range(200):
            if backfilled.is_set():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # its answer read

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        assert request.transport is not None
        await after_the_backfill()
        request.transport.write(frames)  # the whole burst at once
        await asyncio.sleep(0.3)
        await ws.close()
        return ws

    async def sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await after_the_backfill()
        await response.write(events)  # the whole burst at once
        await asyncio.sleep(0.3)
        return response

    offers: list[list[Event]] = []

    class Recording(FakeFleet):
        async def put(self, events: list[Event]) -> None:
            offers.append(list(events))
            await super().put(events)

        def offer(self, events: list[Event]) -> bool:
            offers.append(list(events))
            return super().offer(events)

    routes = {
        "/api/v1/streaming": websocket,
        "/api/v1/streaming/public": sse,
        "/api/v1/timelines/public": timeline,
    }
    with serve(routes) as server:

        async def main() -> None:
            async with aiohttp.ClientSession() as session:
                fleet = Recording(tmp_path, session=session)
                worker = _worker(fleet, server.url)
                worker.transport = transport
                info = InstanceInfo(server.url, version="4.3.0", streaming_url=server.url)
                with pytest.raises(fleet_module.InstanceDown, match="closed the stream"):
                    await worker._stream_once(info)
                ids = [e.status.id for e in fleet.out if e.status is not None]
                assert ids == [str(ID0 + n) for n in range(1, burst + 1)]
                for offer in offers:
                    assert [e.ack is not None for e in offer] == [False] * (len(offer) - 1) + [True]
                    offer[-1].ack()  # what the lake's commit does, batch by batch
                    assert fleet.state.cursor(worker.host) == offer[-1].status.id
                assert fleet.state.cursor(worker.host) == str(ID0 + burst)

        run(main)
    return offers


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_a_stream_burst_is_handed_over_together_with_one_ack(tmp_path, transport):
    """Messages that wait in websockets' queue (or come in one SSE read) go to the bridge in
    one offer (each alone cost as much CPU as decoding it), whose last event alone acks: its
    cursor covers the others. If websockets moved its queue, every message would go alone
    and this fails."""
    burst = 60
    offers = _offers_of_a_burst(tmp_path, transport, burst)
    assert len(offers) < burst // 4, [len(o) for o in offers]


@pytest.mark.parametrize("cap", ["messages", "bytes"])
def test_a_websocket_burst_is_cut_at_the_batch_caps(tmp_path, monkeypatch, cap):
    """A WebSocket batch holds at most _WS_BATCH messages and closes once it holds
    _WS_BATCH_BYTES (here 5 messages, or 3 messages' bytes): a flood goes over in offers
    that reach the cap, never beyond it, each still acking once."""
    if cap == "messages":
        monkeypatch.setattr(fleet_module, "_WS_BATCH", 5)
        most = 5
    else:
        monkeypatch.setattr(fleet_module, "_WS_BATCH_BYTES", 3 * len(_burst_messages(1)[0]))
        most = 3
    offers = _offers_of_a_burst(tmp_path, "websocket", 60)
    assert max(len(o) for o in offers) == most, [len(o) for o in offers]
