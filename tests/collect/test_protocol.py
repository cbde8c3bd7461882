"""The protocol pieces on their own: ids, SSE framing, links, rate limits, backoff, modes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tootlake.errors import ConfigError
from tootlake.sources.fleet import poll_interval
from tootlake.sources.mastodon import (
    MAX_RETRY_AFTER,
    Backoff,
    InstanceInfo,
    Mode,
    RateLimit,
    SSEParser,
    choose_mode,
    id_key,
    max_id,
    normalize_instance,
    parse_link_header,
    parse_ws_frame,
    retry_after,
    sse_url,
    ws_url,
)
from tootlake.sources.state import CollectorState

from ..conftest import real_lines

NOW = datetime(2025, 7, 17, 20, 0, 0, tzinfo=UTC)


# -- ids and cursors ---------------------------------------------------------------------


def test_snowflake_ids_compare_as_integers_not_strings():
    assert "99" > "100"  # the trap
    assert id_key("99") < id_key("100")
    assert max_id("114870361500887110", "99", None, "114870361973436726") == "114870361973436726"
    assert max_id(None, None) is None
    # Pleroma-style flake ids: by length, then text
    assert id_key("9yB1") < id_key("AAAAA")


def test_cursor_only_moves_forward_and_survives_a_restart(tmp_path):
    state = CollectorState(tmp_path)
    state.advance("a.example", "99")
    state.advance("a.example", "100")
    state.advance("a.example", "98")  # an older ack: ignored
    state.advance("a.example", None)
    state.save()
    again = CollectorState(tmp_path)
    assert again.cursor("a.example") == "100"
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file


def test_unreadable_state_says_how_to_recover(tmp_path):
    (tmp_path / "cursors.json").write_text("{not json")
    with pytest.raises(ConfigError, match="Move it away"):
        CollectorState(tmp_path)


# -- SSE and WebSocket framing -------------------------------------------------------------


def _sse_body(heartbeat: bytes) -> bytes:
    status = real_lines("mastodonsocial.json")[0].encode()
    return (
        b":)\n"
        + heartbeat
        + b"event: update\ndata: "
        + status
        + b"\n\n"
        + heartbeat
        + b"event: delete\ndata: 109384328157489340\n\n"
        + heartbeat
        + b"event: status.update\r\ndata: "
        + status
        + b"\r\n\r\n"
    )


@pytest.mark.parametrize("heartbeat", [b":thump\n", b":thump\n\n"])
def test_sse_parser_handles_both_heartbeats_and_any_chunking(heartbeat):
    body = _sse_body(heartbeat)
    whole = SSEParser().feed(body)
    assert [name for name, _ in whole] == ["update", "delete", "status.update"]
    assert whole[1][1] == b"109384328157489340"
    for size in (1, 7, 100):
        parser = SSEParser()
        events = []
        for i in range(0, len(body), size):
            events += parser.feed(body[i : i + size])
        assert events == whole


def test_sse_event_cut_by_a_dropped_connection_is_not_emitted():
    parser = SSEParser()
    assert parser.feed(b'event: update\ndata: {"id":"1","uri":') == []
    # the connection dies here; a new connection starts a new parser


def test_websocket_frames():
    assert parse_ws_frame('{"stream":["public"],"event":"delete","payload":"123"}') == (
        "delete",
        b"123",
    )
    assert parse_ws_frame('{"stream":["public"],"event":"update","payload":"{}"}') == (
        "update",
        b"{}",
    )
    # a payload sent as the object itself is passed on as its JSON text, not re-encoded
    assert parse_ws_frame(b'{"event":"update","payload":{"a": [1]}}') == ("update", b'{"a": [1]}')
    assert parse_ws_frame(b'{"event":"delete","payload":123}') == ("delete", b"123")
    assert parse_ws_frame('{"event":"filters_changed"}') == ("filters_changed", None)
    with pytest.raises(ValueError, match="Unknown stream type"):
        parse_ws_frame('{"error":"Unknown stream type","status":400}')
    with pytest.raises(ValueError):
        parse_ws_frame("not json")


# -- REST paging and rate limits ------------------------------------------------------------


def test_link_header_of_mastodon_social():
    header = (
        "<https://mastodon.social/api/v1/timelines/public?limit=20&local=FALSE"
        '&max_id=114870361500887110&only_media=FALSE&remote=FALSE>; rel="next", '
        "<https://mastodon.social/api/v1/timelines/public?limit=20&local=FALSE"
        '&min_id=114870361973436726&only_media=FALSE&remote=FALSE>; rel="prev"'
    )
    links = parse_link_header(header)
    assert links["next"].endswith("max_id=114870361500887110&only_media=FALSE&remote=FALSE")
    assert "min_id=114870361973436726" in links["prev"]
    assert parse_link_header(None) == {}
    assert parse_link_header("garbage") == {}


def test_rate_limit_spreads_the_remaining_budget_over_the_window():
    reset = (NOW + timedelta(seconds=300)).isoformat().replace("+00:00", "Z")
    rate = RateLimit.from_headers(
        {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "151", "X-RateLimit-Reset": reset}
    )
    assert rate.limit == 300 and rate.remaining == 151
    assert rate.min_interval(NOW) == 0.0  # more than half left: a backfill may burst
    half = RateLimit(300, 101, NOW + timedelta(seconds=300))
    assert half.min_interval(NOW) == pytest.approx(3.0)  # 300 s / (101 - 1 kept in reserve)
    empty = RateLimit(300, 1, NOW + timedelta(seconds=42))
    assert empty.min_interval(NOW) == pytest.approx(42.0)  # wait for the reset
    assert RateLimit.from_headers({}).min_interval(NOW) == 0.0  # nothing announced
    past = RateLimit(300, 0, NOW - timedelta(seconds=5))
    assert past.min_interval(NOW) == 0.0


def test_retry_after_in_seconds_http_date_or_from_the_reset():
    assert retry_after({"Retry-After": "17"}, NOW) == 17.0
    assert retry_after({"Retry-After": "Thu, 17 Jul 2025 20:01:00 GMT"}, NOW) == 60.0
    assert retry_after({"X-RateLimit-Reset": "2025-07-17T20:05:00.923550Z"}, NOW) == pytest.approx(
        300.92355
    )
    assert retry_after({}, NOW) is None


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.sampled_from(["inf", "-inf", "nan", "1e999", "9" * 5000, "-5", "\u0661\u0662", ""]),
        st.text(max_size=40),
        st.integers(-(10**30), 10**30).map(str),
        st.floats().map(str),
    ),
    st.sampled_from(["Retry-After", "X-RateLimit-Reset", "X-RateLimit-Limit"]),
)
def test_rate_headers_of_any_value_never_raise_and_bound_the_wait(value, name):
    """A server's rate-limit headers are untrusted: any value is read or ignored, never an
    error (an OverflowError stopped every page of a server sending `inf`), and no wait it
    asks for is longer than MAX_RETRY_AFTER (`Retry-After: 999...` made an instance sleep
    for ever)."""
    headers = {name: value, "X-RateLimit-Remaining": value}
    rate = RateLimit.from_headers(headers)
    assert rate.limit is None or isinstance(rate.limit, int)
    assert rate.min_interval(NOW) >= 0.0
    wait = retry_after(headers, NOW)
    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER


def test_a_wait_longer_than_the_cap_is_the_cap():
    assert retry_after({"Retry-After": "9" * 5000}, NOW) == MAX_RETRY_AFTER
    assert retry_after({"Retry-After": "86400"}, NOW) == MAX_RETRY_AFTER
    assert retry_after({"X-RateLimit-Reset": "2999-01-01T00:00:00Z"}, NOW) == MAX_RETRY_AFTER
    assert RateLimit.from_headers({"X-RateLimit-Remaining": "1e999"}).remaining is None


def test_backoff_is_capped_exponential_with_jitter():
    backoff = Backoff(base=1.0, cap=30.0, rng=random.Random(1))
    waits = [backoff.next() for _ in range(10)]
    for n, wait in enumerate(waits):
        ceiling = min(30.0, 2.0**n)
        assert ceiling / 2 <= wait <= ceiling
    assert max(waits) <= 30.0
    backoff.reset()
    assert backoff.next() <= 1.0
    # two instances failing together do not retry in lockstep
    a, b = Backoff(rng=random.Random(1)), Backoff(rng=random.Random(2))
    assert [a.next() for _ in range(5)] != [b.next() for _ in range(5)]


def test_polling_speeds_up_on_posts_and_slows_down_on_empty_pages():
    assert poll_interval(10.0, 12, 3.0, 60.0) == 5.0
    assert poll_interval(4.0, 12, 3.0, 60.0) == 3.0  # never below the paging budget
    assert poll_interval(10.0, 0, 3.0, 60.0) == 15.0
    assert poll_interval(50.0, 0, 3.0, 60.0) == 60.0


# -- instances and modes ---------------------------------------------------------------------


def test_instance_names():
    assert normalize_instance("Mastodon.Social") == "https://mastodon.social"
    assert normalize_instance("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    with pytest.raises(ConfigError):
        normalize_instance("ftp://x")


def _v2(local: str | None, remote: str | None, streaming: str = "wss://streaming.example.social"):
    body = {"version": "4.5.0", "configuration": {"urls": {"streaming": streaming}}}
    if local:
        body["configuration"]["timelines_access"] = {
            "live_feeds": {"local": local, "remote": remote}
        }
    return InstanceInfo.from_v2("https://example.social", body)


def test_mode_depends_on_token_and_live_feed_access():
    assert choose_mode(_v2("public", "public"), "public", True)[0] == Mode.STREAM
    assert choose_mode(_v2("public", "public"), "public", False)[0] == Mode.POLL
    assert choose_mode(_v2(None, None), "public", False)[0] == Mode.POLL  # before 4.5: try
    # mastodon.social today: both disabled
    mode, reason = choose_mode(_v2("disabled", "disabled"), "public", False)
    assert mode == Mode.NEEDS_TOKEN and "disabled" in reason
    assert choose_mode(_v2("public", "authenticated"), "local", False)[0] == Mode.POLL
    assert choose_mode(_v2("public", "authenticated"), "public", False)[0] == Mode.NEEDS_TOKEN
    assert "disabled" in choose_mode(_v2("disabled", "disabled"), "public", True)[1]


def test_streaming_urls_may_live_on_another_host():
    info = _v2("public", "public")
    assert (
        sse_url(info, "local") == "https://streaming.example.social/api/v1/streaming/public/local"
    )
    assert (
        ws_url(info, "remote")
        == "wss://streaming.example.social/api/v1/streaming?stream=public:remote"
    )
    v1 = InstanceInfo.from_v1(
        "http://127.0.0.1:4000",
        {"version": "4.1.0", "urls": {"streaming_api": "ws://127.0.0.1:4001"}},
    )
    assert sse_url(v1, "public") == "http://127.0.0.1:4001/api/v1/streaming/public"
    bare = InstanceInfo("http://127.0.0.1:4000")
    assert ws_url(bare, "public") == "ws://127.0.0.1:4000/api/v1/streaming?stream=public"


def test_fewer_collections_restores_the_gc_settings():
    import gc

    from tootlake._gc import fewer_collections

    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] == 20_000
        assert gc.get_freeze_count() > 0
        with fewer_collections():  # nested (another thread's loop): one restore, at the end
            pass
        assert gc.get_threshold()[0] == 20_000
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_worker_hands_events_over_in_the_order_it_made_them():
    """The stream reader, a backfill page and the audit may all wait on a full bridge; the
    one that started waiting first goes first (a later event's ack may cover an earlier one's
    id, so it must not reach the lake first). A unit test with a bridge that lets one batch
    through per tick."""
    import asyncio
    from types import SimpleNamespace

    from tootlake.sources import Event
    from tootlake.sources.fleet import FleetOptions, InstanceSpec, InstanceWorker

    delivered: list[str] = []

    class SlowFleet:
        options = FleetOptions()
        state = SimpleNamespace(cursor=lambda host: None)

        async def put(self, events):
            # a full bridge: wait a tick or two, the later callers more (as a poll loop may)
            await asyncio.sleep(0.01 if events[0].id == "1" else 0.001)
            delivered.extend(e.id for e in events)

    async def main() -> None:
        worker = InstanceWorker(SlowFleet(), InstanceSpec("http://127.0.0.1:1"))  # type: ignore[arg-type]
        batches = [[Event("delete", worker.host, id=str(i))] for i in range(1, 6)]
        await asyncio.gather(*(worker._emit(b) for b in batches))

    asyncio.run(main())
    assert delivered == ["1", "2", "3", "4", "5"]


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(st.none(), st.from_regex(r"[0-9]{1,20}|[0-9A-Za-z_-]{1,30}", fullmatch=True)),
    st.one_of(st.none(), st.from_regex(r"[0-9]{1,20}|[0-9A-Za-z_-]{1,30}", fullmatch=True)),
)
def test_the_streams_fast_cursor_step_agrees_with_the_general_one(cursor, new):
    from tootlake.sources.mastodon import _advance, advance

    assert advance(cursor, new) == _advance(cursor, new)
