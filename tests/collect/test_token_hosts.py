"""A token goes only to its own instance's host, or to the announced streaming host over TLS:
an instance document can name any streaming URL, and a redirect can point anywhere. The
"other host" here is a server on a second loopback address, 127.0.0.2."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tootlake.sources.fleet import InstanceSpec
from tootlake.sources.mastodon import get_json, token_refusal

from .conftest import wait_for
from .servers import DOC_V2, TOKEN, Server, json_answer, running_fleet, serve

OTHER = "127.0.0.2"


def _authorized(server: Server) -> list[str]:
    """The paths of the requests that carried an Authorization header."""
    return [path for path, headers in server.requests if "Authorization" in headers]


@pytest.mark.parametrize(
    ("base", "streaming", "allowed"),
    [
        ("https://mastodon.social", "wss://streaming.mastodon.social", True),
        ("https://mastodon.social", "https://streaming.mastodon.social", True),
        ("http://127.0.0.1:3000", "wss://elsewhere.example", True),
        ("http://127.0.0.1:3000", "ws://127.0.0.1:4000", True),  # the same host, another port
        ("http://localhost:3000", "ws://localhost:4000", True),
        ("https://mastodon.social", "wss://mastodon.social", True),
        ("https://mastodon.social", "ws://streaming.mastodon.social", False),
        ("https://mastodon.social", "http://evil.example", False),
        ("http://127.0.0.1:3000", "ws://127.0.0.2:4000", False),
        ("https://mastodon.social", "ws://mastodon.social", False),  # no downgrade to plain
    ],
)
def test_token_goes_to_its_own_host_or_a_tls_streaming_host(base, streaming, allowed):
    refusal = token_refusal(base, streaming)
    assert (refusal is None) == allowed, refusal
    if not allowed:
        assert refusal.startswith(f"streaming URL {streaming} is not ")
        assert refusal.endswith("refusing to send the token there")


@pytest.mark.parametrize(("scheme", "transport"), [("http", "sse"), ("ws", "websocket")])
def test_a_plain_streaming_url_on_another_host_never_gets_the_token(tmp_path, scheme, transport):
    with serve({"/{tail:.*}": json_answer({"error": "Not found"}, 404)}, OTHER) as other:
        announced = f"{scheme}://{other.host}"
        doc = {**DOC_V2, "configuration": {"urls": {"streaming": announced}}}
        routes = {"/api/v2/instance": json_answer(doc), "/api/v1/timelines/public": json_answer([])}
        with serve(routes) as instance:
            spec = InstanceSpec(instance.url, TOKEN)
            with running_fleet([spec], tmp_path, stream=transport) as fleet:
                fleet.wait_status(
                    instance.host,
                    "failing",
                    f"streaming URL {announced} is not {'https' if scheme == 'http' else 'wss'} "
                    "and not this instance: refusing to send the token there",
                )
                wait_for(lambda: instance.paths("/api/v2/instance") >= 2, 20, "a re-probe")
    assert other.requests == []
    assert _authorized(instance) == ["/api/v2/instance"] * instance.paths("/api/v2/instance")


def test_a_rest_redirect_to_another_host_drops_the_token():
    doc = json_answer(DOC_V2)
    with serve({"/api/v2/instance": doc}, OTHER) as other:

        async def moved(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{other.url}/api/v2/instance")

        async def main(url: str) -> Any:
            async with aiohttp.ClientSession() as session:
                return await get_json(session, url, token=TOKEN)

        with serve({"/api/v2/instance": moved}) as instance:
            body, _ = asyncio.run(main(f"{instance.url}/api/v2/instance"))
    assert body["version"] == "4.3.0"  # the redirect was followed...
    assert _authorized(instance) == ["/api/v2/instance"]
    assert other.paths("/api/v2/instance") == 1 and _authorized(other) == []  # ...tokenless


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_a_stream_redirected_to_another_host_does_not_carry_the_token(tmp_path, transport):
    missing = json_answer({"error": "Missing access token"}, 401)
    with serve({"/api/v1/streaming{tail:.*}": missing}, OTHER) as other:

        async def moved(request: web.Request) -> web.StreamResponse:
            scheme = "ws" if transport == "websocket" else "http"
            raise web.HTTPFound(f"{scheme}://{other.host}{request.path_qs}")

        routes = {
            "/api/v2/instance": json_answer(DOC_V2),  # no streaming URL: this host streams
            "/api/v1/timelines/public": json_answer([]),
            "/api/v1/streaming{tail:.*}": moved,
        }
        with serve(routes) as instance:
            spec = InstanceSpec(instance.url, TOKEN)
            with running_fleet([spec], tmp_path, stream=transport):
                wait_for(lambda: len(other.requests) >= 1, 20, "the redirected stream")
    streams = [p for p, _ in instance.requests if p.startswith("/api/v1/streaming")]
    assert streams and set(_authorized(instance)) >= set(streams)  # the token went here...
    assert _authorized(other) == []  # ...and not there
