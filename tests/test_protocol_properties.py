"""Property-based tests of the collector's protocol readers: whatever a server sends (any
bytes, cut anywhere; any JSON value), they answer with a result or their one documented
error, never another exception, and never hold more than their limits."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tootlake.sources.mastodon import (
    InstanceDown,
    InstanceInfo,
    SSEParser,
    TooLarge,
    parse_ws_frame,
    sse_url,
    token_refusal,
    ws_url,
)

# No example database in the repository; no deadline on a shared, busy machine.
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- values -----------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
URLS = ["wss://streaming.example", "ws://127.0.0.2:4000", "https://x.example/", "http://h:99999",
        "wss://", "javascript:alert(1)", "wss://user:pw@h.example", "wss://[::1]:4000",
        "wss://\x1b[31mred", "ws://a b", "wss://h.example/?q#f", "wss://[zz"]  # fmt: skip
odd = json_values | st.sampled_from(URLS) | st.sampled_from(["public", "authenticated", "disabled"])


def _doc(keys: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Documents shaped like an instance document, any part of them odd."""
    return st.fixed_dictionaries({}, optional={k: v for k, v in keys.items()})


live_feeds = st.dictionaries(st.sampled_from(["local", "remote", "x"]), odd, max_size=3) | odd
v2_documents = _doc(
    {
        "version": st.sampled_from(["4.5.0", "4.3.0+glitch", "3.5.3"]) | odd,
        "title": odd,
        "registrations": st.fixed_dictionaries({}, optional={"enabled": odd}) | odd,
        "configuration": _doc(
            {
                "urls": _doc({"streaming": st.sampled_from(URLS) | odd}) | odd,
                "timelines_access": _doc({"live_feeds": live_feeds}) | odd,
            }
        )
        | odd,
    }
)
v1_documents = _doc(
    {
        "version": st.sampled_from(["3.5.3", "2.9.0"]) | odd,
        "title": odd,
        "registrations": odd,
        "urls": _doc({"streaming_api": st.sampled_from(URLS) | odd}) | odd,
    }
)


def _check_info(info: InstanceInfo) -> None:
    assert isinstance(info.version, str) and isinstance(info.title, str)
    assert info.registrations in (None, True, False)
    assert info.feed_access("public") in ("public", "authenticated", "disabled", "unknown")
    assert info.feed_access("local") in ("public", "authenticated", "disabled", "unknown")
    if info.streaming_url is not None:
        assert info.streaming_url.split("://")[0] in ("ws", "wss", "http", "https")
        assert "@" not in info.streaming_url and "?" not in info.streaming_url
        assert all(" " < c < "\x7f" for c in info.streaming_url)
    # the URLs built from it are well-formed, and the token rule answers for them
    for url in (sse_url(info, "public"), ws_url(info, "local")):
        token_refusal(info.base_url, url)


@PROPERTY
@given(v2_documents | json_values)
def test_instance_v2_reader_is_total(body):
    try:
        info = InstanceInfo.from_v2("https://example.social", body)
    except InstanceDown as exc:
        assert not isinstance(body, dict)
        assert "/api/v2/instance is not an instance document" in str(exc)
        return
    _check_info(info)


@PROPERTY
@given(v1_documents | json_values)
def test_instance_v1_reader_is_total(body):
    try:
        info = InstanceInfo.from_v1("http://127.0.0.1:3000", body)
    except InstanceDown:
        assert not isinstance(body, dict)
        return
    _check_info(info)


def test_instance_reader_keeps_what_is_right_and_drops_what_is_odd():
    info = InstanceInfo.from_v2(
        "https://mastodon.social",
        {
            "version": "4.5.0",
            "configuration": {
                "urls": {"streaming": "wss://user:pw@Streaming.Mastodon.Social/?x=1"},
                "timelines_access": {"live_feeds": {"local": "disabled", "remote": ["public"]}},
            },
            "registrations": {"enabled": "yes"},
            "title": "Mastodon\x1b]0;pwned\x07 \u202eevil",
        },
    )
    assert info.streaming_url == "wss://streaming.mastodon.social"
    assert info.live_feeds == {"local": "disabled"}
    assert info.feed_access("public") == "disabled"
    assert info.registrations is None
    assert info.title == "Mastodon]0;pwned evil"
    assert InstanceInfo.from_v2("https://a.b", {"version": 4.3}).version == "4.3"
    assert InstanceInfo.from_v1("https://a.b", {"urls": 5, "version": "3"}).streaming_url is None


# -- SSE --------------------------------------------------------------------------------------

sse_pieces = st.lists(
    st.sampled_from(
        [b"data: ", b"data:", b"event: update", b"event: delete", b":thump", b":)", b"\n",
         b"\r\n", b"\n\n", b"\r", b"{\"id\":\"1\"}", b"x" * 40, b"id: 5", b"retry: 1"]
    )
    | st.binary(max_size=60),
    max_size=40,
).map(b"".join)  # fmt: skip


@st.composite
def chunked(draw: Any) -> tuple[bytes, list[bytes]]:
    body = draw(sse_pieces)
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=12)))
    bounds = [0, *cuts, len(body)]
    return body, [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _feed_all(parser: SSEParser, chunks: list[bytes]) -> tuple[list[tuple[str, bytes]], bool]:
    """(events, whether it refused) of feeding `chunks`, checking the bounds after each."""
    events: list[tuple[str, bytes]] = []
    for chunk in chunks:
        try:
            events += parser.feed(chunk)
        except TooLarge:
            assert parser._partial_size == 0 and parser._size == 0  # let go of everything
            return events, True
        assert parser._partial_size <= parser.max_line
        assert sum(map(len, parser._partial)) == parser._partial_size
        assert sum(len(d) + 1 for d in parser._data) == parser._size <= parser.max_event + 1
    return events, False


@PROPERTY
@given(chunked(), st.integers(1, 120), st.integers(1, 200))
def test_sse_parser_takes_any_bytes_cut_anywhere_within_its_limits(case, max_line, max_event):
    body, chunks = case
    whole, whole_refused = _feed_all(SSEParser(max_line, max_event), [body])
    parts, parts_refused = _feed_all(SSEParser(max_line, max_event), chunks)
    assert whole_refused == parts_refused  # the limits do not depend on the chunking
    if not whole_refused:
        assert parts == whole  # nor do the events
    for name, data in whole:
        assert isinstance(name, str) and isinstance(data, bytes) and len(data) <= max_event


@PROPERTY
@given(chunked())
def test_sse_parser_with_default_limits_never_refuses_ordinary_input(case):
    body, chunks = case
    assert _feed_all(SSEParser(), chunks)[1] is False


# -- WebSocket --------------------------------------------------------------------------------


def _check_frame(message: bytes | str) -> None:
    try:
        frame = parse_ws_frame(message)
    except ValueError:
        return  # orjson.JSONDecodeError is one too
    assert frame is None or (isinstance(frame, tuple) and isinstance(frame[0], str) and frame[0])


@PROPERTY
@given(st.binary(max_size=200))
def test_websocket_frame_parser_on_any_bytes(message):
    _check_frame(message)


@PROPERTY
@given(json_values | _doc({"event": odd, "payload": odd, "error": odd, "status": odd}))
def test_websocket_frame_parser_on_any_json(value):
    encoded = orjson.dumps(value)
    _check_frame(encoded)
    _check_frame(encoded.decode())


@pytest.mark.parametrize("depth", [900, 2000])
def test_websocket_frame_parser_on_deep_nesting(depth):
    _check_frame(b'{"event":' + b"[" * depth + b"]" * depth + b"}")
    _check_frame(b'{"error":' + b"[" * depth + b"]" * depth + b"}")
