"""The Mastodon protocol, as the collector speaks it (see docs/collect.md).

Pure pieces, tested on their own: instance metadata (`InstanceInfo`) and the choice of a way
in (`choose_mode`), status ids as sortable keys (`id_key`), SSE framing (`SSEParser`, both
heartbeat spellings), WebSocket frames (`parse_ws_frame`), `Link` headers, rate-limit budgets
(`RateLimit`, `retry_after`) and capped exponential backoff with jitter (`Backoff`).
The async pieces (`probe`, `fetch_page`) use one shared aiohttp session; `tootlake.sources.fleet`
runs them for many instances at once.

    InstanceError(SourceError)     one instance cannot be read right now
    ├── AuthRequired               401/403/422: a (valid) user token is needed
    ├── RateLimited                429: wait `retry_after` seconds
    └── InstanceDown               network, TLS, timeout, 5xx, garbage body
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from tootlake import __version__
from tootlake.errors import ConfigError, SourceError
from tootlake.record import host_of

__all__ = [
    "AuthRequired",
    "Backoff",
    "InstanceDown",
    "InstanceError",
    "InstanceInfo",
    "Mode",
    "RateLimit",
    "RateLimited",
    "SSEParser",
    "TIMELINES",
    "USER_AGENT",
    "choose_mode",
    "fetch_page",
    "id_key",
    "max_id",
    "normalize_instance",
    "parse_link_header",
    "parse_ws_frame",
    "probe",
    "retry_after",
    "sse_url",
    "ws_url",
]

USER_AGENT = f"tootlake/{__version__} (+https://github.com/tootlake/tootlake)"

# --timeline -> (REST query, SSE path under /api/v1/streaming/, WebSocket stream name)
TIMELINES: dict[str, tuple[dict[str, str], str, str]] = {
    "public": ({}, "public", "public"),
    "local": ({"local": "true"}, "public/local", "public:local"),
    "remote": ({"remote": "true"}, "public/remote", "public:remote"),
}
PAGE_LIMIT = 40  # the server's maximum page size


class InstanceError(SourceError):
    """One instance cannot be read right now; the others carry on."""


class AuthRequired(InstanceError):
    """The instance wants a (valid) user token: HTTP 401, 403 or 422."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(InstanceError):
    """HTTP 429: wait `retry_after` seconds before the next request."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InstanceDown(InstanceError):
    """Network error, TLS error, timeout, 5xx or a body that is not what the API returns."""


# ----------------------------------------------------------------------------------------
# instances and modes


def normalize_instance(value: str) -> str:
    """The base URL of an instance given as `host`, `host:port` or a URL (https by default)."""
    value = value.strip().rstrip("/")
    if not value:
        raise ConfigError("Empty instance name.")
    if "://" not in value:
        value = f"https://{value}"
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(
            f"Invalid instance {value!r}: give a host name (mastodon.social) or an http(s) URL."
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


class Mode:
    """What the collector does with an instance."""

    STREAM = "stream"
    POLL = "poll"
    NEEDS_TOKEN = "needs token"
    DOWN = "down"


@dataclass(frozen=True)
class InstanceInfo:
    """What `/api/v2/instance` (or v1) says about how to read an instance."""

    base_url: str
    version: str = ""
    streaming_url: str | None = None
    live_feeds: Mapping[str, str] = field(default_factory=dict)  # local/remote -> access
    registrations: bool | None = None
    title: str = ""
    api: str = "v2"

    @property
    def host(self) -> str:
        return host_of(self.base_url) or self.base_url

    @classmethod
    def from_v2(cls, base_url: str, body: dict[str, Any]) -> InstanceInfo:
        config = body.get("configuration") or {}
        access = (config.get("timelines_access") or {}).get("live_feeds") or {}
        registrations = body.get("registrations")
        return cls(
            base_url=base_url,
            version=str(body.get("version") or ""),
            streaming_url=((config.get("urls") or {}).get("streaming")) or None,
            live_feeds={k: str(v) for k, v in access.items() if k in ("local", "remote")},
            registrations=registrations.get("enabled") if isinstance(registrations, dict) else None,
            title=str(body.get("title") or ""),
            api="v2",
        )

    @classmethod
    def from_v1(cls, base_url: str, body: dict[str, Any]) -> InstanceInfo:
        registrations = body.get("registrations")
        return cls(
            base_url=base_url,
            version=str(body.get("version") or ""),
            streaming_url=((body.get("urls") or {}).get("streaming_api")) or None,
            registrations=registrations if isinstance(registrations, bool) else None,
            title=str(body.get("title") or ""),
            api="v1",
        )

    def feed_access(self, timeline: str) -> str:
        """`public`, `authenticated`, `disabled`, or `unknown` (servers before 4.5 do not say)."""
        halves = ["local", "remote"] if timeline == "public" else [timeline]
        values = [self.live_feeds.get(h, "unknown") for h in halves]
        for level in ("disabled", "authenticated", "unknown"):
            if level in values:
                return level
        return "public"

    def version_tuple(self) -> tuple[int, ...]:
        match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", self.version)
        return tuple(int(g or 0) for g in match.groups()) if match else ()


def choose_mode(info: InstanceInfo, timeline: str, has_token: bool) -> tuple[str, str]:
    """(mode, reason) for an instance: stream with a token, else poll if the feed is open."""
    access = info.feed_access(timeline)
    if has_token:
        if access == "disabled":
            return (
                Mode.STREAM,
                "token given, but the admin disabled this live feed: expect few posts",
            )
        return Mode.STREAM, "token given"
    if access in ("public", "unknown"):
        return Mode.POLL, "no token; the public timeline is open" + (
            "" if access == "public" else " (not announced: trying)"
        )
    return Mode.NEEDS_TOKEN, f"live feed access is {access!r}: a user token is needed"


# ----------------------------------------------------------------------------------------
# ids, links, rate limits, backoff


def id_key(status_id: str | int) -> tuple[int, int, str]:
    """A sort key of a status id: snowflakes compare as integers ("99" < "100"); other
    servers' ids (Pleroma flake ids) compare by length, then text."""
    text = str(status_id)
    if text.isdigit():
        return (0, int(text), "")
    return (1, len(text), text)


def max_id(*ids: str | None) -> str | None:
    """The greatest of some status ids (None ignored)."""
    present = [i for i in ids if i]
    return max(present, key=id_key) if present else None


_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def parse_link_header(value: str | None) -> dict[str, str]:
    """`Link` header -> {rel: url}, e.g. {"next": ..., "prev": ...}."""
    links: dict[str, str] = {}
    for match in _LINK.finditer(value or ""):
        url, params = match.groups()
        for param in params.split(";"):
            key, _, val = param.strip().partition("=")
            if key.strip().lower() == "rel":
                for rel in val.strip().strip('"').split():
                    links.setdefault(rel.lower(), url)
    return links


def _parse_http_time(value: str) -> datetime | None:
    value = value.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date), else from
    `X-RateLimit-Reset`; None when neither says."""
    now = now or datetime.now(UTC)
    value = headers.get("Retry-After")
    if value:
        if value.strip().isdigit():
            return float(value.strip())
        when = _parse_http_time(value)
        if when is not None:
            return max(0.0, (when - now).total_seconds())
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        when = _parse_http_time(reset)
        if when is not None:
            return max(0.0, (when - now).total_seconds())
    return None


@dataclass(frozen=True)
class RateLimit:
    """The budget a server announced: `remaining` requests until `reset`."""

    limit: int | None
    remaining: int | None
    reset: datetime | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit:
        def _int(name: str) -> int | None:
            try:
                return int(float(headers[name]))
            except (KeyError, ValueError):
                return None

        reset = headers.get("X-RateLimit-Reset")
        return cls(
            _int("X-RateLimit-Limit"),
            _int("X-RateLimit-Remaining"),
            _parse_http_time(reset) if reset else None,
        )

    def min_interval(self, now: datetime | None = None, reserve: int = 1) -> float:
        """The shortest wait before the next request that cannot exhaust the budget: none
        while more than half of it is left (a backfill may burst), then the time left in the
        window shared evenly by the requests left (minus `reserve`, kept for retries); the
        whole window when nothing is left."""
        if self.remaining is None or self.reset is None:
            return 0.0
        if self.limit and self.remaining * 2 > self.limit:
            return 0.0
        left = max(0.0, (self.reset - (now or datetime.now(UTC))).total_seconds())
        usable = self.remaining - reserve
        if usable <= 0:
            return left
        return left / usable


class Backoff:
    """Capped exponential backoff with "equal jitter": the n-th wait is in
    [d/2, d] with d = min(cap, base * 2**n), so many failing instances spread out."""

    def __init__(self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.failures, 32)))
        self.failures += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0


# ----------------------------------------------------------------------------------------
# stream framing


class SSEParser:
    """Incremental parser of a Mastodon SSE body: bytes in, (event, data) pairs out.

    Comments (`:)` opener, `:thump` heartbeats, with or without a blank line after them) are
    skipped; a blank line ends an event; lines may end in LF or CRLF; a line cut by a dropped
    connection stays buffered and is dropped with the parser.
    """

    __slots__ = ("_buffer", "_event", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        buffer = self._buffer + chunk if self._buffer else chunk
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        out: list[tuple[str, bytes]] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    out.append((self._event or "message", b"\n".join(self._data)))
                self._event, self._data = None, []
            elif line[0] == 58:  # b":" comment
                continue
            else:
                name, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if name == b"data":
                    self._data.append(value)
                elif name == b"event":
                    self._event = value.decode("utf-8", "replace")
        return out


def parse_ws_frame(text: str | bytes) -> tuple[str, Any] | None:
    """A WebSocket text frame -> (event, payload string), or None for other messages.

    Raises ValueError for a frame that is not JSON or carries a server error."""
    frame = orjson.loads(text)
    if not isinstance(frame, dict):
        shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise ValueError(f"unexpected WebSocket frame {shown[:80]!r}")
    if "error" in frame:
        raise ValueError(
            f"server error on the stream: {frame.get('error')} ({frame.get('status')})"
        )
    event = frame.get("event")
    if not event:
        return None
    return str(event), frame.get("payload")


def _swap_scheme(url: str, secure: str, plain: str) -> str:
    parts = urlsplit(url)
    scheme = {"https": secure, "wss": secure, "http": plain, "ws": plain}.get(parts.scheme, secure)
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def sse_url(info: InstanceInfo, timeline: str) -> str:
    """The SSE endpoint of a timeline (the streaming host may differ from the web host)."""
    base = _swap_scheme(info.streaming_url or info.base_url, "https", "http")
    return f"{base}/api/v1/streaming/{TIMELINES[timeline][1]}"


def ws_url(info: InstanceInfo, timeline: str) -> str:
    """The WebSocket endpoint of a timeline (no token in it: that goes in a header)."""
    base = _swap_scheme(info.streaming_url or info.base_url, "wss", "ws")
    return f"{base}/api/v1/streaming?stream={TIMELINES[timeline][2]}"


# ----------------------------------------------------------------------------------------
# REST


def _auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _error_text(body: bytes) -> str:
    try:
        return str(orjson.loads(body).get("error") or "")[:200]
    except (orjson.JSONDecodeError, AttributeError):
        return body[:80].decode("utf-8", "replace")


def raise_for_status(status: int, headers: Mapping[str, str], body: bytes, what: str) -> None:
    """Map an HTTP status to the InstanceError tree (2xx returns)."""
    if status < 300:
        return
    detail = _error_text(body)
    message = f"{what}: HTTP {status}" + (f" {detail!r}" if detail else "")
    if status in (401, 403, 422):
        raise AuthRequired(message, status)
    if status == 429:
        raise RateLimited(message, retry_after(headers) or 60.0)
    raise InstanceDown(message)


async def get_json(
    session: Any,
    url: str,
    *,
    token: str | None = None,
    params: Mapping[str, str] | None = None,
    what: str = "",
) -> tuple[Any, Mapping[str, str]]:
    """GET a JSON document; network trouble and bad bodies become InstanceDown."""
    import aiohttp

    try:
        async with session.get(
            url, params=params, headers=_auth_headers(token), allow_redirects=True
        ) as resp:
            body = await resp.read()
            raise_for_status(resp.status, resp.headers, body, what or url)
            headers = resp.headers
    except InstanceError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise InstanceDown(f"{what or url}: {_describe(exc)}") from None
    try:
        return orjson.loads(body), headers
    except orjson.JSONDecodeError:
        raise InstanceDown(f"{what or url}: the answer is not JSON ({body[:60]!r})") from None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        text = "timed out"
    return text[:200]


async def probe(session: Any, base_url: str, token: str | None = None) -> InstanceInfo:
    """Read `/api/v2/instance`, falling back to `/api/v1/instance` (servers before 4.0)."""
    host = host_of(base_url)
    try:
        body, _ = await get_json(
            session, f"{base_url}/api/v2/instance", token=token, what=f"{host} /api/v2/instance"
        )
        if isinstance(body, dict) and body.get("version"):
            return InstanceInfo.from_v2(base_url, body)
    except (InstanceDown, AuthRequired):
        pass
    body, _ = await get_json(
        session, f"{base_url}/api/v1/instance", token=token, what=f"{host} /api/v1/instance"
    )
    if not isinstance(body, dict) or "version" not in body:
        raise InstanceDown(f"{host}: /api/v1/instance is not a Mastodon instance document")
    return InstanceInfo.from_v1(base_url, body)


@dataclass
class Page:
    statuses: list[dict[str, Any]]
    links: dict[str, str]
    rate: RateLimit


async def fetch_page(
    session: Any,
    info: InstanceInfo,
    timeline: str,
    *,
    min_id: str | None,
    token: str | None = None,
    limit: int = PAGE_LIMIT,
    max_id: str | None = None,
) -> Page:
    """One page of the public timeline above `min_id` (the newest page when None), or
    below `max_id`; newest-first as the server sends it."""
    params = {"limit": str(limit), **TIMELINES[timeline][0]}
    if min_id:
        params["min_id"] = min_id
    if max_id:
        params["max_id"] = max_id
    body, headers = await get_json(
        session,
        f"{info.base_url}/api/v1/timelines/public",
        token=token,
        params=params,
        what=f"{info.host} /api/v1/timelines/public",
    )
    if not isinstance(body, list) or not all(isinstance(s, dict) and "id" in s for s in body):
        raise InstanceDown(f"{info.host}: the timeline answer is not a list of statuses")
    return Page(body, parse_link_header(headers.get("Link")), RateLimit.from_headers(headers))
