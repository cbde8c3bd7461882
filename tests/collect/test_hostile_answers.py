"""Hostile server answers that once raised an unexpected exception out of a parser, stopped a
run or stalled an instance (found by an audit on 2026-12-05; each test failed before its fix;
the comment above each names the function). The HTTP ones go through aiohttp's real header
parsing, from a one-answer server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tootlake.errors import ConfigError
from tootlake.sources.mastodon import (
    MAX_RETRY_AFTER,
    InstanceError,
    RateLimit,
    RateLimited,
    normalize_instance,
    raise_for_status,
    retry_after,
)

# An RFC 2822 date whose year (or day, hour, second) does not fit a C long:
# email.utils.parsedate_to_datetime raises OverflowError, not ValueError.
HUGE_DATE = "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"
# U+00B2 SUPERSCRIPT TWO: str.isdigit() is True, float() raises ValueError. aiohttp hands
# the header over as '²' (UTF-8 bytes in a header value are decoded, not refused).
SUPERSCRIPT = "²"


# -- a tiny HTTP server on 127.0.0.1: one canned answer per connection ---------------------


@pytest.fixture
def serve() -> Iterator[object]:
    sockets: list[socket.socket] = []

    def start(answer: bytes) -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        sockets.append(listener)

        def run() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    conn.sendall(answer)

        threading.Thread(target=run, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for listener in sockets:
        listener.close()


def _answer(status: str, headers: dict[str, str], body: bytes = b"{}") -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode("utf-8") + body


async def _session():  # type: ignore[no-untyped-def]
    import aiohttp

    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))


# -- retry_after / raise_for_status ---------------------------------------------------------


# mastodon.py:421-422 retry_after: `value.strip().isdigit()` then `float(value.strip())`
def test_retry_after_superscript_digit_raises_valueerror() -> None:
    assert retry_after({"Retry-After": SUPERSCRIPT}) is None  # (not delta-seconds)


# mastodon.py:424 -> 396-404 _parse_http_time: parsedate_to_datetime raises OverflowError,
# only (TypeError, ValueError) are caught
def test_retry_after_huge_http_date_raises_overflow() -> None:
    assert retry_after({"Retry-After": HUGE_DATE}) is None


# mastodon.py:729 raise_for_status: a 429 must become RateLimited (an InstanceError), whatever
# its Retry-After says; fleet._sse (fleet.py:561) and fleet._websocket (fleet.py:604) call it
# outside get_bytes' `except ValueError`, so the worker gets an "unexpected" exception
@pytest.mark.parametrize("value", [SUPERSCRIPT, HUGE_DATE])
def test_raise_for_status_429_with_hostile_retry_after(value: str) -> None:
    with pytest.raises(RateLimited):
        raise_for_status(429, {"Retry-After": value}, b"", "host SSE stream")


# -- RateLimit.from_headers / min_interval -------------------------------------------------


# mastodon.py:459 RateLimit.from_headers -> _parse_http_time (mastodon.py:396-404): OverflowError
# out of every fetch_page (mastodon.py:963), fetch_instance_policy (policy.py:416) and
# InstanceLookups._get (lookup.py:242) on a plain 200 answer
def test_ratelimit_from_headers_huge_reset_raises_overflow() -> None:
    RateLimit.from_headers({"X-RateLimit-Reset": HUGE_DATE, "X-RateLimit-Remaining": "0"})


# mastodon.py:466-480 RateLimit.min_interval: the reset time is not capped (retry_after caps at
# MAX_RETRY_AFTER, this does not). fleet._page (fleet.py:838-840/853) and _audit (796) sleep
# it, lookup._get (lookup.py:242, 211) pauses for it: a reset in year 9999 with nothing left
# stalls the instance (and, in a stream, its backfill, so the cursor never moves) for ~8,000
# years
def test_min_interval_far_future_reset_is_capped() -> None:
    rate = RateLimit.from_headers(
        {"X-RateLimit-Reset": "9999-12-31T00:00:00Z", "X-RateLimit-Remaining": "0"}
    )
    assert rate.min_interval() <= MAX_RETRY_AFTER


# -- whole paths over real sockets -----------------------------------------------------------


# mastodon.py:803 get_bytes -> raise_for_status -> retry_after: the OverflowError passes
# get_bytes' `except (ClientError, TimeoutError, OSError, ValueError)` and leaves probe();
# collector._check_one (collector.py:534) and revalidate (revalidate.py:427) catch only
# InstanceError: one instance ends `instances check` / `revalidate` for all
def test_probe_429_huge_retry_after_date_is_an_instance_error(serve) -> None:  # type: ignore[no-untyped-def]
    from tootlake.sources.mastodon import probe

    base = serve(_answer("429 Too Many Requests", {"Retry-After": HUGE_DATE}))

    async def main() -> None:
        async with await _session() as session:
            with pytest.raises(InstanceError):
                await probe(session, base)

    asyncio.run(main())


# mastodon.py:963 fetch_page -> RateLimit.from_headers: the collector's poll and backfill
# (fleet._page, fleet.py:843) get OverflowError for every page of the instance; the worker
# restarts as "unexpected" (fleet.py:383) and never collects from it (a stream's backfill dies
# too, fleet.py:535, ending each connection)
def test_fetch_page_huge_ratelimit_reset(serve) -> None:  # type: ignore[no-untyped-def]
    from tootlake.sources.mastodon import InstanceInfo, fetch_page

    base = serve(_answer("200 OK", {"X-RateLimit-Reset": HUGE_DATE}, b"[]"))

    async def main() -> None:
        async with await _session() as session:
            # an InstanceError (backoff) would be fine; OverflowError is not
            with contextlib.suppress(InstanceError):
                await fetch_page(session, InstanceInfo(base), "public", min_id=None)

    asyncio.run(main())


# policy.py:416 fetch_instance_policy ("Never raises for what the server sends"): a 200 with a
# hostile X-RateLimit-Reset raises OverflowError. collector._rules_hashes (collector.py:459)
# gathers it for every instance when `collect` runs under a policy: the whole collection
# aborts before it starts (next test)
def test_fetch_instance_policy_never_raises(serve) -> None:  # type: ignore[no-untyped-def]
    from tootlake.sources.policy import fetch_instance_policy

    base = serve(_answer("200 OK", {"X-RateLimit-Reset": HUGE_DATE}, b"[]"))

    async def main() -> None:
        async with await _session() as session:
            await fetch_instance_policy(session, base, only_rules=True)

    asyncio.run(main())


# collector.py:352/459-465: `collect --policy` reads every instance's rules first; one hostile
# instance's OverflowError (policy.py:416) escapes asyncio.gather and _run: collect() aborts
def test_collect_rules_hashes_survive_one_hostile_instance(serve) -> None:  # type: ignore[no-untyped-def]
    from tootlake.collector import _rules_hashes
    from tootlake.sources.fleet import InstanceSpec

    good = serve(_answer("200 OK", {}, b'[{"id":"1","text":"be nice"}]'))
    bad = serve(_answer("200 OK", {"X-RateLimit-Reset": HUGE_DATE}, b"[]"))
    hashes = _rules_hashes([InstanceSpec(good), InstanceSpec(bad)])
    assert hashes[InstanceSpec(good).host] is not None


# lookup.py:222 InstanceLookups._get: retry_after outside _answer's try, so a 429 with
# `Retry-After: ²` raises ValueError out of status(); revalidate._work (revalidate.py:485)
# catches only InstanceError: the task fails and `task.result()` (revalidate.py:675) ends
# the whole revalidate run
def test_lookup_429_superscript_retry_after(serve) -> None:  # type: ignore[no-untyped-def]
    from tootlake.sources.lookup import InstanceLookups, LookupOptions, lookup_session

    base = serve(_answer("429 Too Many Requests", {"Retry-After": SUPERSCRIPT}))

    async def main() -> None:
        # (an unreadable Retry-After waits the default 60 s: beyond this max_wait, at once)
        options = LookupOptions(max_wait=30)
        async with lookup_session(options) as session:
            lookups = InstanceLookups(session, base, None, host="h", options=options)
            with pytest.raises((InstanceError, RateLimited)):
                await lookups.status("1")

    asyncio.run(main())


# lookup.py:82-85 mastodon_error: catches DecodeError and ValidationError but not the
# RecursionError msgspec raises for nesting beyond Python's recursion limit; a 404 body of
# 1.5 KB (within ERROR_BODY) makes InstanceLookups.status/account (lookup.py:250, 264) raise
# it, and revalidate (revalidate.py:485, 675) ends the whole run
def test_mastodon_error_deep_nesting_is_not_an_error_doc() -> None:
    from tootlake.sources.lookup import mastodon_error

    body = b'{"x":' + b"[" * 1500 + b"]" * 1500 + b',"error":"Record not found"}'
    assert len(body) < 4096
    assert mastodon_error(body) in (True, False)


def test_lookup_404_deeply_nested_body(serve) -> None:  # type: ignore[no-untyped-def]
    from tootlake.sources.lookup import InstanceLookups, LookupOptions, lookup_session

    base = serve(_answer("404 Not Found", {}, b'{"x":' + b"[" * 1500 + b"]" * 1500 + b"}"))

    async def main() -> None:
        async with lookup_session(LookupOptions()) as session:
            lookups = InstanceLookups(session, base, None, host="h")
            with contextlib.suppress(InstanceError):  # (not taken as gone: fine)
                await lookups.status("1")

    asyncio.run(main())


# -- normalize_instance ----------------------------------------------------------------------


# mastodon.py:149 normalize_instance: urlsplit raises ValueError ("Invalid IPv6 URL", or a
# netloc that NFKC-normalizes to '/', '?', '#', '@', ':'), not ConfigError. A lake's hosts are
# data (replay infers observed_on from a status's account.url, record host_of keeps '[x'):
# revalidate._specs (revalidate.py:526) catches only ConfigError and the run dies
@pytest.mark.parametrize("value", ["[x", "https://[::1", "exa\uff0fmple.org"])
def test_normalize_instance_raises_configerror_only(value: str) -> None:
    with pytest.raises(ConfigError):
        normalize_instance(value)


def test_revalidate_specs_survive_a_lake_host_that_is_no_host() -> None:
    from tootlake.revalidate import _specs

    specs, bad = _specs(["[x"], [], None)
    assert "[x" in bad


# -- policy.parse_rules: memory ---------------------------------------------------------------


# policy.py:187-197 parse_rules: MAX_RULES counts kept rules only; every item that is not an
# object (or has no text) adds a problem string. A 2 MiB rules body `[1,1,1,...]` (POLICY_BODY)
# gives ~1,000,000 problems, ~100 MB of str per instance (50x the body), all of them in
# InstancePolicy.problems and the `instances check` report
def test_parse_rules_problems_are_bounded() -> None:
    from tootlake.sources.policy import MAX_RULES, parse_rules

    rules, problems = parse_rules([1] * 100_000)
    assert len(problems) <= MAX_RULES + 1
