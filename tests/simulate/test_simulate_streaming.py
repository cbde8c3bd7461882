"""The simulated instances speak Mastodon's streaming protocol byte for byte
(docs/mastodon-api.md sections 1.1-1.6)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest

from tootlake.simulate import Fediverse, InstanceSettings

from .conftest import bearer, plain_draft, read_until, settle, sse_events, ws_messages

TOKEN = "secret-token"


def _settings(**overrides: object) -> InstanceSettings:
    return InstanceSettings(token=TOKEN, **overrides)  # type: ignore[arg-type]


async def test_instance_documents_point_at_the_streaming_api():
    settings = _settings(live_feeds={"local": "authenticated", "remote": "disabled"})
    async with Fediverse(2, settings=settings) as fed, aiohttp.ClientSession() as http:
        inst = fed.instances[0]
        async with http.get(inst.url + "/api/v1/instance/") as response:  # Mastodon.py's path
            v1 = await response.json()
        async with http.get(inst.url + "/api/v2/instance") as response:
            v2 = await response.json()
    assert v1["uri"] == inst.host == f"127.0.0.1:{inst.port}"
    assert v1["urls"]["streaming_api"] == f"ws://{inst.host}"
    assert v1["version"] == v2["version"] == "4.5.0"
    assert v2["domain"] == inst.host
    assert v2["configuration"]["urls"]["streaming"] == f"ws://{inst.host}"
    assert v2["configuration"]["timelines_access"]["live_feeds"] == {
        "local": "authenticated",
        "remote": "disabled",
    }
    assert v2["registrations"]["enabled"] is False
    assert v2["api_versions"]["mastodon"] >= 2


async def test_old_versions_have_no_timelines_access_nor_api_versions():
    async with (
        Fediverse(1, settings=_settings(version="4.2.10")) as fed,
        aiohttp.ClientSession() as http,
        http.get(fed.urls[0] + "/api/v2/instance") as response,
    ):
        v2 = await response.json()
    assert "timelines_access" not in v2["configuration"]
    assert "api_versions" not in v2


async def test_health_and_the_streaming_probe_on_the_same_host():
    async with Fediverse(1, settings=_settings()) as fed, aiohttp.ClientSession() as http:
        async with http.get(fed.urls[0] + "/api/v1/streaming/health") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            assert await response.text() == "OK"
        async with http.get(fed.urls[0] + "/api/v1/streaming") as response:
            assert response.status == 404


async def test_a_separate_streaming_host_is_announced_and_redirected_to():
    async with (
        Fediverse(1, settings=_settings(separate_streaming=True)) as fed,
        aiohttp.ClientSession() as http,
    ):
        inst = fed.instances[0]
        assert inst.streaming_port != inst.port
        async with http.get(inst.url + "/api/v2/instance") as response:
            streaming = (await response.json())["configuration"]["urls"]["streaming"]
        assert streaming == f"ws://127.0.0.1:{inst.streaming_port}"
        probe = "/api/v1/streaming?stream=public&access_token=abc"
        async with http.get(inst.url + probe, allow_redirects=False) as response:
            assert response.status == 301
            assert response.headers["Location"] == f"http://127.0.0.1:{inst.streaming_port}{probe}"
        sse = streaming.replace("ws://", "http://") + "/api/v1/streaming/public"
        async with http.get(sse, headers=bearer(TOKEN)) as response:
            assert response.status == 200
            assert await read_until(response, b":)\n") == b":)\n"


async def test_sse_framing_is_byte_for_byte_mastodons():
    async with (
        Fediverse(2, settings=_settings(heartbeat=0.3)) as fed,
        aiohttp.ClientSession() as http,
    ):
        inst = fed.instances[0]
        async with http.get(
            inst.url + "/api/v1/streaming/public", headers=bearer(TOKEN)
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            assert response.headers["Cache-Control"] == "private, no-store"
            assert response.headers["Transfer-Encoding"] == "chunked"
            assert await read_until(response, b":)\n") == b":)\n"  # first write, always
            await settle(lambda: inst.connections == 1)
            post = fed.post(origin=0, targets=[1], public=True)
            local_id = post.copies[0]
            payload = fed.renderer.render(post, inst.observer, local_id, stream=True)
            update = await read_until(response, b"\n\n")
            assert update == b"event: update\ndata: " + payload + b"\n\n"
            status = json.loads(payload)
            assert status["id"] == str(local_id) and status["filtered"] == []  # added for users
            assert b"\n" not in payload  # JSON on one line
            fed.edit(post)
            edit = await read_until(response, b"\n\n")
            name, data = edit.split(b"\n", 1)
            assert name == b"event: status.update"
            assert json.loads(data.removeprefix(b"data: "))["edited_at"] == post.edited_at
            fed.delete(post)
            assert await read_until(response, b"\n\n") == b"event: delete\ndata: %d\n\n" % local_id
            assert await read_until(response, b":thump\n") == b":thump\n"  # heartbeat


async def test_heartbeat_of_newer_servers_is_its_own_event():
    settings = _settings(heartbeat=0.1, heartbeat_frame=b":thump\n\n")
    async with Fediverse(1, settings=settings) as fed, aiohttp.ClientSession() as http:
        url = fed.urls[0] + "/api/v1/streaming/public/local"
        async with http.get(url, headers=bearer(TOKEN)) as response:
            body = await read_until(response, b":thump\n\n:thump\n\n")
    assert body == b":)\n:thump\n\n:thump\n\n"


@pytest.mark.parametrize(
    ("token_setting", "headers", "query", "status", "error"),
    [
        (TOKEN, {}, "", 401, "Missing access token"),
        (TOKEN, bearer("wrong"), "", 401, "Invalid access token"),
        (TOKEN, {}, "?access_token=wrong", 401, "Invalid access token"),
        (TOKEN, {}, f"?access_token={TOKEN}", 200, None),
        (None, {}, "", 401, "Missing access token"),  # >= 4.2: a token, always
        (None, bearer("any"), "", 200, None),
    ],
)
async def test_streaming_needs_a_token(token_setting, headers, query, status, error):
    async with (
        Fediverse(1, settings=InstanceSettings(token=token_setting)) as fed,
        aiohttp.ClientSession() as http,
        http.get(fed.urls[0] + "/api/v1/streaming/public" + query, headers=headers) as response,
    ):
        assert response.status == status
        if error:
            assert response.headers["Content-Type"].startswith("application/json")
            assert await response.read() == orjson.dumps({"error": error})


async def test_channel_errors():
    async with Fediverse(1, settings=_settings()) as fed, aiohttp.ClientSession() as http:
        async with http.get(
            fed.urls[0] + "/api/v1/streaming/publik", headers=bearer(TOKEN)
        ) as response:
            assert response.status == 400
            assert await response.json() == {"error": "Unknown channel requested"}
        async with http.get(
            fed.urls[0] + "/api/v1/streaming/hashtag", headers=bearer(TOKEN)
        ) as response:
            assert response.status == 400
            assert await response.json() == {"error": "Missing tag name parameter"}


async def test_public_streams_carry_only_public_statuses_without_boosts_or_replies_to_others():
    async with Fediverse(2, settings=_settings()) as fed, aiohttp.ClientSession() as http:
        inst = fed.instances[0]
        async with http.get(
            inst.url + "/api/v1/streaming/public", headers=bearer(TOKEN)
        ) as response:
            await read_until(response, b":)\n")
            await settle(lambda: inst.connections == 1)
            base = fed.post(origin=0, targets=[], public=True).draft
            assert base is not None
            hidden = [
                replace(base, visibility="unlisted"),
                replace(base, visibility="private"),
                replace(base, reblog=True),
                replace(base, reply="other"),
            ]
            for draft in hidden:
                fed.post(draft, targets=[])
            thread = fed.post(replace(base, reply="self"), targets=[])
            events = await sse_events(response, 2)
        assert [json.loads(data)["uri"] for _, data in events][1] == thread.uri
        assert (
            json.loads(events[1][1])["in_reply_to_account_id"]
            == json.loads(events[1][1])["account"]["id"]
        )
        assert all(json.loads(data)["visibility"] == "public" for _, data in events)


async def test_local_remote_and_media_channels():
    async with Fediverse(2, settings=_settings()) as fed, aiohttp.ClientSession() as http:
        url = fed.urls[0] + "/api/v1/streaming"
        media: tuple[dict[str, Any], ...] = (
            {"type": "image", "meta": {}, "description": None, "blurhash": None},
        )
        async with (
            http.get(url + "/public/local", headers=bearer(TOKEN)) as local,
            http.get(url + "/public/remote", headers=bearer(TOKEN)) as remote,
            http.get(url + "/public?only_media=true", headers=bearer(TOKEN)) as only_media,
            http.get(url + "/public?only_media=false", headers=bearer(TOKEN)) as everything,
        ):
            await settle(lambda: fed.instances[0].connections == 4)
            mine = fed.post(plain_draft(fed, 0), targets=[])
            theirs = fed.post(plain_draft(fed, 1), targets=[0])
            pictured = fed.post(plain_draft(fed, 0, media=media), targets=[])
            uris = {}
            expected = [("local", local, 2), ("remote", remote, 1), ("media", only_media, 1)]
            for name, response, count in [*expected, ("all", everything, 3)]:
                uris[name] = [
                    json.loads(data)["uri"] for _, data in await sse_events(response, count)
                ]
    assert uris["local"] == [mine.uri, pictured.uri]
    assert uris["remote"] == [theirs.uri]
    assert uris["media"] == [pictured.uri]
    assert uris["all"] == [mine.uri, theirs.uri, pictured.uri]


async def test_disabled_live_feeds_leave_only_heartbeats():
    settings = _settings(heartbeat=0.05, live_feeds={"local": "disabled", "remote": "public"})
    async with Fediverse(2, settings=settings) as fed, aiohttp.ClientSession() as http:
        inst = fed.instances[0]
        async with http.get(
            inst.url + "/api/v1/streaming/public", headers=bearer(TOKEN)
        ) as response:
            await read_until(response, b":)\n")
            await settle(lambda: inst.connections == 1)
            fed.post(origin=0, targets=[], public=True)  # local: dropped
            remote = fed.post(origin=1, targets=[0], public=True)
            events = await sse_events(response, 1)
            assert json.loads(events[0][1])["uri"] == remote.uri
            inst.settings.live_feeds["remote"] = "disabled"
            fed.post(origin=1, targets=[0], public=True)
            body = await read_until(response, b":thump\n:thump\n:thump\n", timeout=2)
            assert b"event:" not in body


async def test_websocket_stream_query_and_frames():
    async with Fediverse(2, settings=_settings()) as fed, aiohttp.ClientSession() as http:
        inst = fed.instances[0]
        async with http.ws_connect(
            inst.url + "/api/v1/streaming?stream=public", headers=bearer(TOKEN)
        ) as ws:
            await settle(lambda: inst.connections == 1)
            post = fed.post(origin=1, targets=[0], public=True)
            fed.delete(post)
            update, delete = await ws_messages(ws, 2)
    assert list(update) == ["stream", "event", "payload"]
    assert update["stream"] == ["public"] and update["event"] == "update"
    assert isinstance(update["payload"], str)  # the status JSON as a string
    status = json.loads(update["payload"])
    assert status["id"] == str(post.copies[0]) and status["account"]["acct"].endswith(
        "@" + fed.hosts[1]
    )
    assert delete == {"stream": ["public"], "event": "delete", "payload": str(post.copies[0])}


async def test_websocket_subscribe_unsubscribe_and_errors():
    async with Fediverse(2, settings=_settings()) as fed, aiohttp.ClientSession() as http:
        inst = fed.instances[0]
        async with http.ws_connect(inst.url + "/api/v1/streaming", headers=bearer(TOKEN)) as ws:
            await ws.send_json({"type": "subscribe", "stream": "public:local"})
            await ws.send_json({"type": "subscribe", "stream": "public:local"})  # a no-op
            await ws.send_json({"type": "subscribe", "stream": "hashtag", "tag": "Caturday"})
            await ws.send_json({"type": "subscribe", "stream": "firehose"})
            assert await ws_messages(ws, 1) == [{"error": "Unknown stream type", "status": 400}]
            cat = fed.post(plain_draft(fed, 0, tags=("caturday",)), targets=[])
            fed.post(origin=1, targets=[0], public=True)  # remote: not on public:local
            frames = await ws_messages(ws, 2)
            assert [f["stream"] for f in frames] == [["public:local"], ["hashtag", "Caturday"]]
            assert {json.loads(f["payload"])["uri"] for f in frames} == {cat.uri}
            with pytest.raises(TimeoutError):  # the remote post is not on public:local
                await ws_messages(ws, 1, timeout=0.2)
            await ws.send_json({"type": "unsubscribe", "stream": "public:local"})
            await ws.send_json({"type": "unsubscribe", "stream": "hashtag", "tag": "Caturday"})
            await asyncio.sleep(0.1)
            fed.post(origin=0, targets=[], public=True)
            with pytest.raises(TimeoutError):
                await ws_messages(ws, 1, timeout=0.3)


async def test_websocket_refuses_before_the_upgrade_without_a_token():
    async with Fediverse(1, settings=_settings()) as fed, aiohttp.ClientSession() as http:
        url = fed.urls[0] + "/api/v1/streaming?stream=public"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url)
        assert refused.value.status == 401
        assert refused.value.headers is not None
        assert refused.value.headers["X-Error-Message"] == "Missing access token"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, headers=bearer("wrong"))
        assert refused.value.headers is not None
        assert refused.value.headers["X-Error-Message"] == "Invalid access token"
        async with http.ws_connect(url, protocols=(TOKEN,)) as ws:  # Sec-WebSocket-Protocol
            assert ws.protocol == TOKEN
        async with http.ws_connect(url + f"&access_token={TOKEN}") as ws:
            assert not ws.closed


async def test_websocket_pings_and_drops_clients_that_do_not_answer():
    async with (
        Fediverse(1, settings=_settings(ws_ping=0.1)) as fed,
        aiohttp.ClientSession() as http,
    ):
        url = fed.urls[0] + "/api/v1/streaming?stream=public"
        async with http.ws_connect(url, headers=bearer(TOKEN), autoping=False) as ws:
            msg = await asyncio.wait_for(ws.receive(), 2)
            assert msg.type == aiohttp.WSMsgType.PING
            # No pong: the next ping finds the client dead and the server drops it.
            msg = await asyncio.wait_for(ws.receive(), 2)
            assert msg.type in (
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
                aiohttp.WSMsgType.CLOSE,
            )
        async with http.ws_connect(
            url, headers=bearer(TOKEN)
        ) as ws:  # autoping answers, while reading
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.receive(), 0.35)
            assert not ws.closed and fed.instances[0].connections == 1
