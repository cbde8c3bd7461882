"""Faults on demand: cuts (also mid-event), stalls, malformed lines, error answers, outages."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import orjson
import pytest

from tootlake.simulate import Fediverse, InstanceSettings

from .conftest import bearer, plain_draft, read_until, settle, sse_events, ws_messages

TOKEN = "secret-token"
SSE = "/api/v1/streaming/public"
TIMELINE = "/api/v1/timelines/public"


async def _drain(response: aiohttp.ClientResponse) -> tuple[bytes, BaseException | None]:
    """Everything left in a stream, and how it ended (None: a clean end)."""
    data = b""
    try:
        while chunk := await asyncio.wait_for(response.content.readany(), 5):
            data += chunk
    except (aiohttp.ClientError, ConnectionError) as exc:
        return data, exc
    return data, None


async def test_cut_drops_every_live_connection():
    async with (
        Fediverse(2, settings=InstanceSettings(token=TOKEN)) as fed,
        aiohttp.ClientSession() as http,
    ):
        inst = fed.instances[0]
        async with (
            http.get(inst.url + SSE, headers=bearer(TOKEN)) as sse,
            http.ws_connect(
                inst.url + "/api/v1/streaming?stream=public", headers=bearer(TOKEN)
            ) as ws,
        ):
            await settle(lambda: inst.connections == 2)
            assert fed.cut([0]) == 2
            await _drain(sse)
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type in (
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
                aiohttp.WSMsgType.CLOSE,
            )
            await settle(lambda: inst.connections == 0)
            assert fed.instances[1].stats["cuts"] == 0


async def test_a_cut_mid_event_leaves_a_truncated_data_line():
    async with (
        Fediverse(2, settings=InstanceSettings(token=TOKEN)) as fed,
        aiohttp.ClientSession() as http,
    ):
        inst = fed.instances[0]
        async with http.get(inst.url + SSE, headers=bearer(TOKEN)) as response:
            await settle(lambda: inst.connections == 1)
            fed.post(plain_draft(fed, 0), targets=[])
            await read_until(response, b"\n\n")
            inst.cut(mid_event=True)
            tail, ended = await _drain(response)
    assert tail.startswith(b"event: update\ndata: {") and not tail.endswith(b"\n")
    with pytest.raises(ValueError):
        json.loads(tail.split(b"data: ", 1)[1])
    assert isinstance(ended, aiohttp.ClientPayloadError)  # no final chunk: not a clean end


async def test_a_websocket_cut_mid_event_leaves_half_a_frame():
    async with (
        Fediverse(1, settings=InstanceSettings(token=TOKEN)) as fed,
        aiohttp.ClientSession() as http,
    ):
        inst = fed.instances[0]
        async with http.ws_connect(
            inst.url + "/api/v1/streaming?stream=public", headers=bearer(TOKEN)
        ) as ws:
            await settle(lambda: inst.connections == 1)
            fed.post(plain_draft(fed, 0), targets=[])
            assert len(await ws_messages(ws, 1)) == 1
            inst.cut(mid_event=True)
            msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)


async def test_a_stall_silences_events_and_heartbeats_until_it_ends():
    settings = InstanceSettings(token=TOKEN, heartbeat=0.05)
    async with Fediverse(2, settings=settings) as fed, aiohttp.ClientSession() as http:
        inst = fed.instances[0]
        async with http.get(inst.url + SSE, headers=bearer(TOKEN)) as response:
            await read_until(response, b":thump\n")
            inst.stall()
            with pytest.raises(TimeoutError):  # read whatever was in flight, until silence
                await read_until(response, b"never", timeout=0.2)
            fed.post(plain_draft(fed, 0), targets=[])  # lost to the stalled connection
            with pytest.raises(TimeoutError):
                await read_until(response, b"\n", timeout=0.3)
            assert inst.connections == 1  # still open
            inst.unstall()
            after = fed.post(plain_draft(fed, 0), targets=[])
            events = await sse_events(response, 1)
            assert json.loads(events[0][1])["uri"] == after.uri


async def test_new_connections_can_stall_too():
    settings = InstanceSettings(token=TOKEN, heartbeat=0.05)
    async with Fediverse(1, settings=settings) as fed, aiohttp.ClientSession() as http:
        fed.instances[0].stall(new=True)
        async with http.get(fed.urls[0] + SSE, headers=bearer(TOKEN)) as response:
            assert await read_until(response, b":)\n") == b":)\n"
            with pytest.raises(TimeoutError):
                await read_until(response, b":thump", timeout=0.3)


async def test_malformed_events_on_both_transports():
    async with (
        Fediverse(1, settings=InstanceSettings(token=TOKEN)) as fed,
        aiohttp.ClientSession() as http,
    ):
        inst = fed.instances[0]
        fed.post(plain_draft(fed, 0), targets=[])
        async with (
            http.get(inst.url + SSE, headers=bearer(TOKEN)) as sse,
            http.ws_connect(
                inst.url + "/api/v1/streaming?stream=public", headers=bearer(TOKEN)
            ) as ws,
        ):
            await settle(lambda: inst.connections == 2)
            assert inst.send_malformed() == 2
            ((name, data),) = await sse_events(sse, 1)
            (frame,) = await ws_messages(ws, 1)
            assert name == "update" and frame["event"] == "update"
            for broken in (data, frame["payload"]):
                with pytest.raises(ValueError):
                    json.loads(broken)
            inst.send_malformed(b"data: no event name\n\n")
            assert (await read_until(sse, b"no event name\n\n")).endswith(
                b"\ndata: no event name\n\n"
            )


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [
        (500, 500, {"error": "An unexpected error occurred"}),
        (401, 401, {"error": "The access token is invalid"}),
        (422, 422, {"error": "This method requires an authenticated user"}),
        (429, 429, {"error": "Too many requests"}),
        (403, 403, {"error": "Forbidden"}),
    ],
)
async def test_error_answers_for_the_next_requests(fault, status, body):
    async with Fediverse(1) as fed, aiohttp.ClientSession() as http:
        fed.instances[0].fail(fault, count=2, path=TIMELINE)
        answers = []
        for _ in range(3):
            async with http.get(fed.urls[0] + TIMELINE) as response:
                answers.append((response.status, await response.read(), dict(response.headers)))
        async with http.get(fed.urls[0] + "/api/v1/instance") as response:
            assert response.status == 200  # another path
    assert [s for s, _, _ in answers] == [status, status, 200]
    assert orjson.loads(answers[0][1]) == body
    if fault == 429:
        assert answers[0][2]["X-RateLimit-Remaining"] == "0" and "Retry-After" in answers[0][2]


async def test_gateway_errors_and_garbage_are_not_json():
    async with Fediverse(1) as fed, aiohttp.ClientSession() as http:
        inst = fed.instances[0]
        inst.fail(503, count=1)
        inst.fail("garbage", count=1)
        async with http.get(fed.urls[0] + TIMELINE) as response:
            assert response.status == 503 and response.headers["Content-Type"].startswith(
                "text/html"
            )
            assert b"503 Service Temporarily Unavailable" in await response.read()
        async with http.get(fed.urls[0] + TIMELINE) as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith(
                "application/json"
            )
            with pytest.raises(ValueError):
                json.loads(await response.read())


async def test_permanent_failures_last_until_cleared_and_reach_streams():
    async with (
        Fediverse(1, settings=InstanceSettings(token=TOKEN)) as fed,
        aiohttp.ClientSession() as http,
    ):
        inst = fed.instances[0]
        inst.fail(401, count=None, path="/api/v1/streaming")
        for _ in range(3):
            async with http.get(fed.urls[0] + SSE, headers=bearer(TOKEN)) as response:
                assert response.status == 401
                assert await response.json() == {"error": "Invalid access token"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                fed.urls[0] + "/api/v1/streaming?stream=public", headers=bearer(TOKEN)
            )
        assert refused.value.status == 401
        inst.clear_faults()
        async with http.get(fed.urls[0] + SSE, headers=bearer(TOKEN)) as response:
            assert response.status == 200


async def test_an_instance_goes_down_and_comes_back_on_the_same_port():
    async with (
        Fediverse(2, settings=InstanceSettings(token=TOKEN)) as fed,
        aiohttp.ClientSession() as http,
    ):
        inst = fed.instances[0]
        before = fed.post(plain_draft(fed, 1), targets=[0])
        async with http.get(inst.url + SSE, headers=bearer(TOKEN)) as response:
            await settle(lambda: inst.connections == 1)
            await inst.stop()
            await _drain(response)
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(inst.url + TIMELINE):
                pass
        during = fed.post(plain_draft(fed, 1), targets=[0])  # lands in its timeline meanwhile
        await inst.start()
        async with http.get(inst.url + TIMELINE) as response:
            uris = [s["uri"] for s in await response.json()]
    assert uris == [during.uri, before.uri]


async def test_leaking_hidden_statuses_puts_them_on_the_stream():
    async with (
        Fediverse(1, settings=InstanceSettings(token=TOKEN)) as fed,
        aiohttp.ClientSession() as http,
    ):
        inst = fed.instances[0]
        async with http.get(inst.url + SSE, headers=bearer(TOKEN)) as response:
            await settle(lambda: inst.connections == 1)
            inst.leak_hidden = True
            boost = fed.post(plain_draft(fed, 0, reblog=True), targets=[])
            ((_, data),) = await sse_events(response, 1)
    status = json.loads(data)
    assert status["uri"] == boost.uri and status["reblog"]["uri"] != boost.uri
