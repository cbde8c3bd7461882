"""Single-object lookups on one instance: `GET /api/v1/statuses/:id` and `GET
/api/v1/accounts/:id`, as `tootlake revalidate` asks them (docs/collect.md, "Deletes that
were missed").

One request at a time per instance, within the budget the instance announces: the
`X-RateLimit-*` headers of every answer (a 404 too) spread the next requests as the poller
spreads its pages (`RateLimit.min_interval`), and a 429 waits its `Retry-After` (or
`X-RateLimit-Reset`) and asks again, unless that is longer than `max_wait`: then the
instance's share of the run ends (`RateLimited`), as it does when any answer's budget puts
the next request beyond `max_wait`. Answers are bounded (`max_body`, error
bodies `ERROR_BODY`), read with the collector's User-Agent and size caps
(`tootlake.sources.mastodon`).

What an answer means is decided here only as far as HTTP goes: 200 is the object (a status
validated at the edge, `tootlake.record.decode_status`; an account's state,
`parse_account_state`), 404 and 410 say it is gone, anything else raises the
`InstanceError` of `mastodon.raise_for_status` (401/403/422 `AuthRequired`, 5xx and
network trouble `InstanceDown`), never "gone".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import msgspec

from tootlake.errors import MissingDependency
from tootlake.record import Rejection, ValidStatus, decode_status
from tootlake.sources.mastodon import (
    ERROR_BODY,
    MAX_BODY,
    USER_AGENT,
    InstanceDown,
    InstanceError,
    RateLimit,
    RateLimited,
    describe_error,
    raise_for_status,
    read_body,
    read_head,
    retry_after,
)

__all__ = [
    "ACTIVE",
    "GONE",
    "SUSPENDED",
    "UNREADABLE",
    "InstanceLookups",
    "LookupOptions",
    "OutOfRequests",
    "StatusAnswer",
    "lookup_session",
    "mastodon_error",
    "parse_account_state",
    "pause",
]

GONE_STATUSES = (404, 410)
MIN_429_WAIT = 1.0  # seconds waited after a 429 at least, whatever its Retry-After says
MAX_429 = 20  # 429 answers from one instance in a run before it waits for the next run
# An account's state as its document (or its absence) says it.
ACTIVE = "active"
SUSPENDED = "suspended"  # `suspended: true` (Mastodon 4.x: suspended, or deleted and kept)
GONE = "gone"  # 404 or 410
UNREADABLE = "unreadable"  # a 200 whose body is not an account object


class _ErrorDoc(msgspec.Struct):
    error: str


def mastodon_error(body: bytes) -> bool:
    """True when `body` is Mastodon's JSON error document (`{"error": "Record not found"}`):
    what a 404 or 410 of the API carries, where a proxy's or another server's page is HTML."""
    try:
        msgspec.json.decode(body, type=_ErrorDoc)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return False
    return True


async def pause(seconds: float, stop: threading.Event) -> None:
    """Sleep `seconds` (a rate-limit wait may be minutes), or until `stop` is set."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.25))


class OutOfRequests(Exception):  # noqa: N818 - a signal to stop asking, not an error
    """The run's request budget is spent: no request was made."""


@dataclass(frozen=True)
class LookupOptions:
    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    max_body: int = MAX_BODY  # a status is a few KB; a hostile one may be 1 MiB
    max_wait: float = 900.0  # a 429 asking for longer ends the instance's share of the run


@dataclass(frozen=True)
class StatusAnswer:
    """What the instance said of one status id: `status` None when gone (404/410)."""

    http_status: int
    status: ValidStatus | Rejection | None


class _AccountDoc(msgspec.Struct):
    suspended: msgspec.Raw = msgspec.Raw(b"")


_ACCOUNT = msgspec.json.Decoder(_AccountDoc)


def parse_account_state(body: bytes) -> str:
    """SUSPENDED when the account document says `"suspended": true`, ACTIVE for any other
    JSON object, UNREADABLE for anything else (not JSON, not an object, nesting too deep).
    Total: any bytes give one of the three, never an exception."""
    try:
        doc = _ACCOUNT.decode(body)
    except (msgspec.MsgspecError, RecursionError, UnicodeError):
        return UNREADABLE
    return SUSPENDED if bytes(doc.suspended).strip() == b"true" else ACTIVE


@asynccontextmanager
async def lookup_session(options: LookupOptions) -> AsyncIterator[Any]:
    """The aiohttp session lookups share: tootlake's User-Agent, the options' timeouts, no
    proxy or .netrc from the environment (`trust_env=False`, as the collector)."""
    try:
        import aiohttp
    except ImportError as exc:  # pragma: no cover - the collect extra brings it
        raise MissingDependency("aiohttp", "collect") from exc
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(
            total=options.request_timeout, sock_connect=options.connect_timeout
        ),
        headers={"User-Agent": USER_AGENT},
        connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=300),
        trust_env=False,
    ) as session:
        yield session


async def _answer(
    session: Any, url: str, token: str | None, what: str, max_body: int
) -> tuple[int, Mapping[str, str], bytes]:
    """(HTTP status, headers, body) of a GET whose status is 200, 404, 410 or 429 (the
    body of a 404/410/429 cut to ERROR_BODY); any other status raises as
    `raise_for_status` maps it, network trouble and oversized bodies InstanceDown."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        # No redirect is followed: another host's 404 would delete the post, and a redirect
        # could lead into a private network. A 3xx is an error (asked again next run).
        async with session.get(url, headers=headers, allow_redirects=False) as resp:
            status = resp.status
            if status in (*GONE_STATUSES, 429):
                return status, resp.headers, await read_head(resp, ERROR_BODY)
            if status != 200:
                raise_for_status(status, resp.headers, await read_head(resp), what)
            return status, resp.headers, await read_body(resp, max_body, what)
    except InstanceError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise InstanceDown(f"{what}: {describe_error(exc, url)}") from None


class InstanceLookups:
    """Lookups on one instance (`base_url`, with its `token` when one is known), one at a
    time, spread by its rate-limit budget. `take()` is asked before every request (the
    run's budget): False raises OutOfRequests and nothing is sent."""

    def __init__(
        self,
        session: Any,
        base_url: str,
        token: str | None,
        *,
        host: str,
        options: LookupOptions | None = None,
        take: Callable[[], bool] = lambda: True,
        stop: threading.Event | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.host = host
        self._token = token
        self.options = options or LookupOptions()
        self._take = take
        self._stop = stop or threading.Event()
        self._not_before = 0.0  # monotonic time before which no request goes out
        self.requests = 0
        self.rate_limited = 0  # 429 answers
        self.rate_wait = 0.0  # seconds waited because of them
        self._spent: RateLimited | None = None  # an answer said no budget within max_wait

    async def _get(self, path: str, what: str) -> tuple[int, bytes]:
        while True:
            if self._spent is not None:
                raise self._spent
            await pause(self._not_before - time.monotonic(), self._stop)
            if self._stop.is_set() or not self._take():
                raise OutOfRequests()
            self.requests += 1
            try:
                status, headers, body = await _answer(
                    self.session, self.base_url + path, self._token, what, self.options.max_body
                )
            finally:
                self._not_before = time.monotonic()
            if status == 429:
                delay = retry_after(headers)
                # at least a second: `Retry-After: 0` (or a date past) is no reason to ask
                # again at once, and after MAX_429 of them the instance waits for a next run
                delay = 60.0 if delay is None else max(delay, MIN_429_WAIT)
                self.rate_limited += 1
                if self.rate_limited > MAX_429:
                    raise RateLimited(
                        f"{what}: HTTP 429 {self.rate_limited} times in this run: the rest "
                        "waits for the next run",
                        delay,
                    )
                if delay > self.options.max_wait:
                    raise RateLimited(
                        f"{what}: HTTP 429, Retry-After {delay:.0f} s is beyond the longest "
                        f"wait ({self.options.max_wait:.0f} s): the rest waits for the next run",
                        delay,
                    )
                self._not_before += delay
                self.rate_wait += delay
                continue
            interval = RateLimit.from_headers(headers).min_interval()
            if interval > self.options.max_wait:
                # a 200 saying no budget until a reset far away (`Remaining: 0`, a lie or a
                # proxy's): as a 429 asking as long, the rest waits for the next run
                self._spent = RateLimited(
                    f"{what}: X-RateLimit allows the next request in {interval:.0f} s, beyond "
                    f"the longest wait ({self.options.max_wait:.0f} s): the rest waits for the "
                    "next run",
                    interval,
                )
            self._not_before += interval
            return status, body

    async def status(self, status_id: str) -> StatusAnswer:
        """The status this instance knows as `status_id` (validated), or gone."""
        path = f"/api/v1/statuses/{quote(status_id, safe='')}"
        status, body = await self._get(path, f"{self.host} /api/v1/statuses/{status_id}")
        if status in GONE_STATUSES:
            if not mastodon_error(body):
                raise InstanceDown(
                    f"{self.host} /api/v1/statuses/{status_id}: HTTP {status} without "
                    "Mastodon's JSON error body (a proxy's page?): not taken as gone"
                )
            return StatusAnswer(status, None)
        return StatusAnswer(status, decode_status(body))

    async def account(self, account_id: str) -> str:
        """The state of the account this instance knows as `account_id`: ACTIVE, SUSPENDED,
        GONE or UNREADABLE."""
        path = f"/api/v1/accounts/{quote(account_id, safe='')}"
        status, body = await self._get(path, f"{self.host} /api/v1/accounts/{account_id}")
        if status in GONE_STATUSES:
            if not mastodon_error(body):
                raise InstanceDown(
                    f"{self.host} /api/v1/accounts/{account_id}: HTTP {status} without "
                    "Mastodon's JSON error body: not taken as gone"
                )
            return GONE
        return parse_account_state(body)
