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
    ├── TokenRefused               the token may not go to the announced streaming URL
    └── InstanceDown               network, TLS, timeout, 5xx, garbage body
        ├── NotFound               404/410: not served here
        └── TooLarge               a body, SSE line or event, or message beyond its limit

Every read is bounded (docs/collect.md, "Limits"): bodies by `MAX_BODY` (error bodies by
`ERROR_BODY`), SSE lines and events by `MAX_SSE_LINE` / `MAX_SSE_EVENT`, WebSocket messages
by `MAX_WS_MESSAGE`; the fleet's `FleetOptions` change them.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

import msgspec
import orjson

from tootlake._native import native
from tootlake._version import __version__
from tootlake.errors import ConfigError, SourceError
from tootlake.record import host_of, mend_surrogates
from tootlake.record.status import Status

# The native helpers (tootlake._native) when their build has `ws_frame` (an older build of
# native/ lacks it: `make install` rebuilds it); None runs the Python.
_native = native if hasattr(native, "ws_frame") else None
_WS_FAST = hasattr(native, "ws_fast_status")

__all__ = [
    "AuthRequired",
    "Backoff",
    "InstanceDown",
    "InstanceError",
    "InstanceInfo",
    "Mended",
    "Mode",
    "NotFound",
    "RateLimit",
    "RateLimited",
    "SSEParser",
    "TIMELINES",
    "TokenRefused",
    "TooLarge",
    "USER_AGENT",
    "choose_mode",
    "describe_error",
    "fetch_page",
    "advance",
    "id_key",
    "may_lead",
    "same_kind",
    "max_id",
    "split_page",
    "normalize_instance",
    "parse_link_header",
    "parse_ws_frame",
    "probe",
    "ws_status",
    "retry_after",
    "sse_url",
    "token_refusal",
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

# Size limits, far above what real servers send (a status is a few KB, an instance document
# tens of KB); each bounds the memory one connection can take.
MiB = 1 << 20
MAX_BODY = 10 * MiB  # a REST answer or instance document
ERROR_BODY = 4096  # what is read of an error answer, for its message
MAX_SSE_LINE = MiB  # one SSE line, newline not yet seen
MAX_SSE_EVENT = MiB  # the data lines of one SSE event together
MAX_WS_MESSAGE = MiB  # one WebSocket message


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


class NotFound(InstanceDown):
    """404 or 410: the server does not serve this (an endpoint it lacks, a status gone)."""


class TooLarge(InstanceDown):
    """A body, an SSE line or event, or a WebSocket message beyond its size limit."""


class TokenRefused(InstanceError):
    """The announced streaming URL is neither TLS nor this instance: no token goes there."""


# ----------------------------------------------------------------------------------------
# instances and modes


def normalize_instance(value: str) -> str:
    """The base URL of an instance given as `host`, `host:port` or a URL (https by default)."""
    value = value.strip().rstrip("/")
    if not value:
        raise ConfigError("Empty instance name.")
    if "://" not in value:
        value = f"https://{value}"
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:  # ("[x": an IPv6 bracket unclosed; a character NFKC makes "/")
        hostname = None
    if not hostname or parts.scheme not in {"http", "https"}:
        raise ConfigError(
            f"Invalid instance {value!r}: give a host name (mastodon.social) or an http(s) URL."
        )
    # no user:password@ (Mastodon has no use for it, and it would reach logs and health)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}"


class Mode:
    """What the collector does with an instance."""

    STREAM = "stream"
    POLL = "poll"
    NEEDS_TOKEN = "needs token"
    DOWN = "down"


DESCRIPTION_LIMIT = 20_000  # characters of an instance's description kept
_ACCESS_LEVELS = ("public", "authenticated", "disabled")  # a tuple: `in` takes any value
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_URL_CHARS = re.compile(r"[!-~]{1,2000}")  # printable ASCII, no space
_HOST_NAME = re.compile(r"[a-z0-9._-]+|[0-9a-f:.]+")  # a DNS name or an IP address


def _document(base_url: str, body: Any, api: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InstanceDown(
            f"{host_of(base_url) or base_url}: /api/{api}/instance is not an instance document "
            f"(a JSON {type(body).__name__}, not an object)"
        )
    return body


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int) -> str:
    """A short label from an instance document (a number is taken as text), without
    control characters."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            value = str(value)
        except ValueError:  # an int of more than 4300 digits
            return ""
    return _CONTROL.sub("", value[: limit * 2])[:limit] if isinstance(value, str) else ""


def _streaming_url(value: Any) -> str | None:
    """`scheme://host[:port][/path]` of an announced streaming URL (no credentials, query or
    fragment), or None unless it is a ws, wss, http or https URL with a plain host name."""
    if not isinstance(value, str) or not _URL_CHARS.fullmatch(value):
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:  # a bad port or IPv6 address
        return None
    host = parts.hostname
    if parts.scheme not in ("ws", "wss", "http", "https") or not host:
        return None
    if not _HOST_NAME.fullmatch(host):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


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
    description: str = ""  # the admin's words about the server (`instances check` reads them)

    @property
    def host(self) -> str:
        return host_of(self.base_url) or self.base_url

    # Both readers are total: any JSON value gives an InstanceInfo, its odd parts ignored
    # (a `configuration` that is not an object, `urls: 5`, a streaming URL that is not a
    # ws(s)/http(s) URL with a host...), or InstanceDown when it is not an object at all.

    @classmethod
    def from_v2(cls, base_url: str, body: Any) -> InstanceInfo:
        body = _document(base_url, body, "v2")
        config = _object(body.get("configuration"))
        access = _object(_object(config.get("timelines_access")).get("live_feeds"))
        registrations = _object(body.get("registrations")).get("enabled")
        return cls(
            base_url=base_url,
            version=_text(body.get("version"), 100),
            streaming_url=_streaming_url(_object(config.get("urls")).get("streaming")),
            live_feeds={
                half: value
                for half, value in access.items()
                if half in ("local", "remote") and value in _ACCESS_LEVELS
            },
            registrations=registrations if isinstance(registrations, bool) else None,
            title=_text(body.get("title"), 500),
            api="v2",
            description=_text(body.get("description"), DESCRIPTION_LIMIT),
        )

    @classmethod
    def from_v1(cls, base_url: str, body: Any) -> InstanceInfo:
        body = _document(base_url, body, "v1")
        registrations = body.get("registrations")
        return cls(
            base_url=base_url,
            version=_text(body.get("version"), 100),
            streaming_url=_streaming_url(_object(body.get("urls")).get("streaming_api")),
            registrations=registrations if isinstance(registrations, bool) else None,
            title=_text(body.get("title"), 500),
            api="v1",
            description=_text(
                body.get("description") or body.get("short_description"), DESCRIPTION_LIMIT
            ),
        )

    def feed_access(self, timeline: str) -> str:
        """`public`, `authenticated`, `disabled`, or `unknown` (servers before 4.5 do not say)."""
        halves = ["local", "remote"] if timeline == "public" else [timeline]
        values = [self.live_feeds.get(h, "unknown") for h in halves]
        for level in ("disabled", "authenticated", "unknown"):
            if level in values:
                return level
        return "public"


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
    return Mode.NEEDS_TOKEN, f"live feed access is {access}: a user token is needed"


# ----------------------------------------------------------------------------------------
# ids, links, rate limits, backoff


def id_key(status_id: str | int) -> tuple[int, int, str]:
    """A sort key of a status id: snowflakes compare as integers ("99" < "100"); other
    servers' ids (Pleroma flake ids) compare by length, then text. (Ids are checked at the
    edge, `record.usable_id`: at most 64 ASCII characters.)"""
    text = str(status_id)
    if text.isdigit() and text.isascii():
        return (0, int(text), "")
    return (1, len(text), text)


def max_id(*ids: str | None) -> str | None:
    """The greatest of some status ids (None ignored)."""
    present = [i for i in ids if i]
    return max(present, key=id_key) if present else None


def advance(cursor: str | None, *ids: str | None) -> str | None:
    """`cursor` moved up to the greatest of `ids` of its own kind (numbers, or other ids)
    that may be a cursor (`may_lead`).

    A server's ids are all of one kind; one of the other kind is a lie or a bug that would
    carry the cursor where the timeline has nothing (a text id ranks above every number), so
    the instance would silently give nothing more. A first cursor takes the kind most ids
    have."""
    if cursor and len(ids) == 1:  # the stream's case, once per post: no lists, no int()
        new = ids[0]
        if not new or new.isdigit() != cursor.isdigit():
            return cursor
        if new[0] != "0" and cursor[0] != "0":  # digits without leading zeros: longer is more
            if (len(new), new) <= (len(cursor), cursor):
                return cursor
            return new if may_lead(new) else cursor
    return _advance(cursor, *ids)


# A Mastodon snowflake holds its creation time (ms << 16): an id made later than this after
# now would carry the cursor past posts the server has yet to make (a clock ahead, or a lie).
CURSOR_SLACK_MS = 5 * 60 * 1000
_LEAD_LIMIT: list[Any] = [0, ""]  # (wall-clock second, the largest snowflake text by then)


def may_lead(status_id: str) -> bool:
    """False for a snowflake from more than `CURSOR_SLACK_MS` ahead: its post is kept, but
    the cursor does not move to it."""
    if len(status_id) < 17 or not status_id.isdigit():
        return True
    second = int(time.time())
    if second != _LEAD_LIMIT[0]:
        limit = ((second + 1) * 1000 + CURSOR_SLACK_MS) << 16 | 0xFFFF
        _LEAD_LIMIT[:] = [second, str(limit)]
    limit_text: str = _LEAD_LIMIT[1]
    text = status_id.lstrip("0") or "0"
    return (len(text), text) <= (len(limit_text), limit_text)


def same_kind(a: str, b: str) -> bool:
    """Both ids numbers, or both not (one server's ids are all of one kind)."""
    return a.isdigit() == b.isdigit()


def _advance(cursor: str | None, *ids: str | None) -> str | None:
    """`advance` in general: several ids, or ids with leading zeros."""
    present = [i for i in ids if i and may_lead(i)]
    if cursor is None:
        if not present:
            return None
        numeric = [i for i in present if i.isdigit()]
        present = (
            numeric if 2 * len(numeric) >= len(present) else [i for i in present if not i.isdigit()]
        )
        return max(present, key=id_key)
    kind = cursor.isdigit()
    return max_id(cursor, *(i for i in present if i.isdigit() == kind))


# (`[^<>]`: from each `<` of a header of many, the scan stops at the next one, not the end)
_LINK = re.compile(r"<([^<>]*)>\s*((?:;\s*[^;,]+)*)")


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
        except (TypeError, ValueError, OverflowError):  # (a year beyond a C long)
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# The longest wait a 429 may ask for: a server asking for more (a lie, a bug, "9" * 5000
# seconds) is asked again after this, politely, rather than never.
MAX_RETRY_AFTER = 3600.0


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date), else from
    `X-RateLimit-Reset`, at most MAX_RETRY_AFTER; None when neither says."""
    now = now or datetime.now(UTC)
    value = headers.get("Retry-After")
    if value:
        if value.strip().isdigit() and value.isascii():  # ("²" is a digit float() refuses)
            return min(float(value.strip()), MAX_RETRY_AFTER)
        when = _parse_http_time(value)
        if when is not None:
            return _seconds_until(when, now)
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        when = _parse_http_time(reset)
        if when is not None:
            return _seconds_until(when, now)
    return None


def _seconds_until(when: datetime, now: datetime) -> float:
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


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
            except (KeyError, ValueError, OverflowError):  # ("inf", "1e999": a server's lie)
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
        left = _seconds_until(self.reset, now or datetime.now(UTC))  # (a reset in 9999: capped)
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

    Bounded: a line longer than `max_line` bytes (also one whose newline has not come yet) or
    an event whose data lines add up to more than `max_event` bytes raises TooLarge, and the
    parser forgets what it held. Besides the chunk being fed it never holds more than
    `max_line` bytes of an unfinished line plus `max_event` bytes of an unfinished event.
    """

    __slots__ = ("max_line", "max_event", "_partial", "_partial_size", "_event", "_data", "_size")

    def __init__(self, max_line: int = MAX_SSE_LINE, max_event: int = MAX_SSE_EVENT) -> None:
        self.max_line = max_line
        self.max_event = max_event
        self._partial: list[bytes] = []  # the pieces of a line whose newline has not come
        self._partial_size = 0
        self._event: str | None = None
        self._data: list[bytes] = []
        self._size = 0  # bytes of `_data` joined, plus one

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        if self._partial:
            self._partial.append(chunk)
            self._partial_size += len(chunk)
            if b"\n" not in chunk:  # still inside one long line: keep the pieces (no copy)
                if self._partial_size > self.max_line:
                    self._too_large(f"an SSE line longer than {self.max_line} bytes")
                return []
            buffer = b"".join(self._partial)
            self._partial, self._partial_size = [], 0
        else:
            buffer = chunk
        lines = buffer.split(b"\n")
        rest = lines.pop()
        if rest:
            self._partial, self._partial_size = [rest], len(rest)
        out: list[tuple[str, bytes]] = []
        max_line = self.max_line
        for line in lines:
            if len(line) > max_line:
                self._too_large(f"an SSE line longer than {max_line} bytes")
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    out.append((self._event or "message", b"\n".join(self._data)))
                self._event, self._data, self._size = None, [], 0
            elif line[0] == 58:  # b":" comment
                continue
            else:
                name, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if name == b"data":
                    self._data.append(value)
                    self._size += len(value) + 1
                    if self._size > self.max_event + 1:
                        self._too_large(f"an SSE event larger than {self.max_event} bytes")
                elif name == b"event":
                    self._event = value.decode("utf-8", "replace")
        if self._partial_size > max_line:
            self._too_large(f"an SSE line longer than {max_line} bytes")
        return out

    def _too_large(self, what: str) -> NoReturn:
        self._partial, self._partial_size = [], 0
        self._event, self._data, self._size = None, [], 0
        raise TooLarge(what)


class _WsFrame(msgspec.Struct):
    """The keys of a streaming WebSocket frame, each left as its JSON text until needed."""

    event: msgspec.Raw = msgspec.Raw(b"")
    payload: msgspec.Raw = msgspec.Raw(b"")
    error: msgspec.Raw = msgspec.Raw(b"")
    status: msgspec.Raw = msgspec.Raw(b"")


_WS_FRAME = msgspec.json.Decoder(_WsFrame)


def parse_ws_frame(text: str | bytes) -> tuple[str, bytes | None] | None:
    """A WebSocket text frame -> (event, payload), or None for other messages (see
    `parse_ws_frame_python`, the reference). The native helpers read the usual frame in one
    pass (the payload's JSON string straight into bytes); any other goes to the Python."""
    if _native is not None:
        fast = _native.ws_frame(text)
        if fast is not None:
            return fast  # type: ignore[no-any-return]
    return parse_ws_frame_python(text)


def ws_status(message: str | bytes) -> Status | None:
    """The status of a WebSocket message that is an `update` or a `status.update` of the
    usual shape with a status `decode_stream_status` would read natively, read from the
    frame in the same native call (a `FastStatus`, its `event` the frame's; no bytes object
    for the payload); None for any other message: `parse_ws_frame` and `decode_stream_status`
    read it then."""
    if _native is not None and _WS_FAST:
        return _native.ws_fast_status(message)  # type: ignore[no-any-return]
    return None


def parse_ws_frame_python(text: str | bytes) -> tuple[str, bytes | None] | None:
    """A WebSocket text frame -> (event, payload), or None for other messages.

    The payload comes as bytes: the status's JSON text (Mastodon sends it as a JSON string;
    a server sending the object itself is read the same way, never re-encoded) or a delete's
    id; None when the frame has none. Raises ValueError (only) for a frame that is not a JSON
    object or carries a server error; an `event` that is not a string makes the frame one of
    the other messages."""
    frame, mended = _decode_frame(text)
    if frame.error:
        error, status = _json_scalar(frame.error), _json_scalar(frame.status)
        raise ValueError(
            "server error on the stream: "
            + (error[:200] if isinstance(error, str) else "(no message)")
            + (f" ({status})" if isinstance(status, int) and not isinstance(status, bool) else "")
        )
    event = _EVENTS.get(bytes(frame.event)) or _json_scalar(frame.event)
    if not event or not isinstance(event, str):
        return None
    raw = bytes(frame.payload)
    if not raw or raw == b"null":
        return event, None
    if raw[:1] == b'"':
        text_payload = _json_scalar(frame.payload)
        if not isinstance(text_payload, str):
            return event, None
        raw = text_payload.encode()
    return event, Mended(raw) if mended else raw


class Mended(bytes):
    """A payload whose frame had lone surrogate escapes, mended on the way (see
    `record.mend_surrogates`): its post counts `surrogates` as coerced."""


def _decode_frame(text: str | bytes) -> tuple[_WsFrame, bool]:
    """The frame, and whether lone surrogate escapes had to be mended to read it."""
    try:
        return _WS_FRAME.decode(text), False
    except UnicodeEncodeError:  # a str holding lone surrogates themselves
        assert isinstance(text, str)
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return _decode_frame(text)[0], True
    except (msgspec.MsgspecError, RecursionError) as exc:
        error: Exception = exc
    mended = mend_surrogates(text) if isinstance(error, msgspec.DecodeError) else None
    if mended is not None:
        try:
            return _WS_FRAME.decode(mended), True
        except (msgspec.MsgspecError, RecursionError):
            pass
    shown = text[:80] if isinstance(text, str) else text[:80].decode("utf-8", "replace")
    raise ValueError(f"unexpected WebSocket frame {shown!r} ({error})")


# the usual event names as the frame spells them: no decoding for them
_EVENTS = {f'"{name}"'.encode(): name for name in ("update", "status.update", "delete")}


def _json_scalar(raw: msgspec.Raw) -> Any:
    """A string or number held as JSON text; None for anything else (or nothing)."""
    if not raw or bytes(raw)[:1] in (b"{", b"["):
        return None
    try:
        return msgspec.json.decode(raw)
    except (msgspec.MsgspecError, RecursionError):
        return None


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


def token_refusal(base_url: str, url: str) -> str | None:
    """Why the token of the instance at `base_url` must not go to `url`, or None when it may:
    to the instance's own host name (any port, but not from https down to plain text), or
    to any host over TLS (https, wss). An instance document can announce any streaming URL,
    and plain http to another host would hand the token to whoever is on the path."""
    own, target = urlsplit(base_url), urlsplit(url)
    if target.scheme in ("https", "wss"):
        return None
    secure = "wss" if target.scheme == "ws" else "https"
    if target.hostname == own.hostname:
        if own.scheme == "http":
            return None
        why = f"is not {secure} while the instance is https"
    else:
        why = f"is not {secure} and not this instance"
    return f"streaming URL {url} {why}: refusing to send the token there"


# ----------------------------------------------------------------------------------------
# REST


def _auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _error_text(body: bytes) -> str:
    try:
        error = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:80].decode("utf-8", "replace")
    error = error.get("error") if isinstance(error, dict) else None
    return error[:200] if isinstance(error, str) else ""


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
    if status in (404, 410):
        raise NotFound(message)
    raise InstanceDown(message)


async def read_body(resp: Any, limit: int, what: str) -> bytes:
    """The body of an aiohttp response, refused (TooLarge) when it is larger than `limit`
    bytes: by its Content-Length before anything is read, else while reading, never holding
    more than `limit` bytes."""
    length = resp.content_length
    if length is not None and length > limit:
        raise TooLarge(f"{what}: body larger than {limit} bytes (Content-Length {length})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"{what}: body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_head(resp: Any, limit: int = ERROR_BODY) -> bytes:
    """At most the first `limit` bytes of a body (an error answer, read for its message)."""
    body = b""
    while len(body) < limit:
        chunk = await resp.content.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return body


async def get_json(
    session: Any,
    url: str,
    *,
    token: str | None = None,
    params: Mapping[str, str] | None = None,
    what: str = "",
    max_body: int = MAX_BODY,
) -> tuple[Any, Mapping[str, str]]:
    """GET a JSON document of at most `max_body` bytes; network trouble, bad bodies and
    larger ones become InstanceDown. Redirects are followed; aiohttp drops the
    Authorization header on a redirect to another origin (scheme, host or port)."""
    body, headers = await get_bytes(
        session, url, token=token, params=params, what=what, max_body=max_body
    )
    try:
        return orjson.loads(body), headers
    except orjson.JSONDecodeError:
        what = what or url
        raise InstanceDown(f"{what}: the answer is not JSON ({body[:60]!r})") from None


async def get_bytes(
    session: Any,
    url: str,
    *,
    token: str | None = None,
    params: Mapping[str, str] | None = None,
    what: str = "",
    max_body: int = MAX_BODY,
) -> tuple[bytes, Mapping[str, str]]:
    """GET a body of at most `max_body` bytes, as `get_json` (which reads it as JSON)."""
    import aiohttp

    what = what or url
    try:
        async with session.get(
            url, params=params, headers=_auth_headers(token), allow_redirects=True
        ) as resp:
            if resp.status >= 300:
                raise_for_status(resp.status, resp.headers, await read_head(resp), what)
            body = await read_body(resp, max_body, what)
            headers = resp.headers
    except InstanceError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise InstanceDown(f"{what}: {describe_error(exc, url)}") from None
    return body, headers


# What OpenSSL says when a TLS handshake meets a plain-HTTP answer (3.0: WRONG_VERSION_NUMBER;
# 3.2+: RECORD_LAYER_FAILURE; others: PACKET_LENGTH_TOO_LONG, HTTP_REQUEST)
_PLAIN_HTTP_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}
)


def describe_error(exc: BaseException, url: str = "") -> str:
    """A network error in a few words (its text cut to 200 characters), with a hint where
    one helps: an https:// `url` whose server speaks plain HTTP fails its TLS handshake."""
    import ssl

    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        text = "timed out"
    text = text[:200]
    tls = getattr(exc, "os_error", None) or exc.__cause__ or exc
    if (
        url.startswith("https://")
        and isinstance(tls, ssl.SSLError)
        and getattr(tls, "reason", None) in _PLAIN_HTTP_REASONS
    ):
        text += " (the server does not speak TLS there: give a plain-HTTP one's URL with http://)"
    return text


async def probe(
    session: Any, base_url: str, token: str | None = None, *, max_body: int = MAX_BODY
) -> InstanceInfo:
    """Read `/api/v2/instance`, falling back to `/api/v1/instance` (servers before 4.0);
    a v2 document larger than `max_body` is refused outright."""
    host = host_of(base_url)
    try:
        body, _ = await get_json(
            session,
            f"{base_url}/api/v2/instance",
            token=token,
            what=f"{host} /api/v2/instance",
            max_body=max_body,
        )
        if isinstance(body, dict) and body.get("version"):
            return InstanceInfo.from_v2(base_url, body)
    except TooLarge:
        raise
    except (InstanceDown, AuthRequired):
        pass
    body, _ = await get_json(
        session,
        f"{base_url}/api/v1/instance",
        token=token,
        what=f"{host} /api/v1/instance",
        max_body=max_body,
    )
    if not isinstance(body, dict) or "version" not in body:
        raise InstanceDown(f"{host}: /api/v1/instance is not a Mastodon instance document")
    return InstanceInfo.from_v1(base_url, body)


@dataclass
class Page:
    statuses: list[Any]  # each as the server sent it (JSON bytes): validated one by one
    links: dict[str, str]
    rate: RateLimit


_PAGE = msgspec.json.Decoder(list[msgspec.Raw])
# The tokens that give a JSON text its structure: strings (skipped whole; possessive, so an
# unterminated one runs to the end in one step, never back), runs of openers or closers, and
# commas. Linear on any input.
_STRUCTURE = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?|[\[{]++|[\]}]++|,')
# A real page has ~150 commas per status; far more, and the page is tiny items (a memory
# attack: each would cost a Python object): such a body is read by the scan, which stops early.
_COMMAS_PER_ITEM = 2_000


def split_page(body: bytes, max_items: int = 2 * PAGE_LIMIT) -> list[bytes] | None:
    """The items of a JSON array, each as its own JSON bytes, unread; None when `body` is
    not a whole array (cut short, not an array) or holds more than `max_items` items. One
    item that is not valid JSON (a lone surrogate, nesting too deep for a decoder) does not
    cost the others: it comes out as its bytes, to be rejected on its own."""
    if body.count(b",") <= _COMMAS_PER_ITEM * max_items:
        try:
            items = _PAGE.decode(body)
        except (msgspec.MsgspecError, RecursionError):
            pass
        else:
            return [bytes(item) for item in items] if len(items) <= max_items else None
    return _scan_page(body, max_items)


def _scan_page(body: bytes, max_items: int) -> list[bytes] | None:
    """`split_page` the slow way, for a page something is wrong with: cut the array at its
    top-level commas, counting brackets outside strings (no recursion, whatever the depth)."""
    start = len(body) - len(body.lstrip())
    if body[start : start + 1] != b"[":
        return None
    items: list[bytes] = []
    depth, begin = 0, start + 1
    for token in _STRUCTURE.finditer(body, start):
        mark = token.group()
        first = mark[0]
        if first == 0x22:  # a string
            continue
        if first in b"[{":
            depth += len(mark)
        elif first in b"]}":
            if depth - len(mark) <= 0:  # the array closes within this run
                items.append(body[begin : token.start() + depth - 1])
                return [item.strip() for item in items if item.strip()]
            depth -= len(mark)
        elif depth == 1:  # a comma between items
            items.append(body[begin : token.start()])
            begin = token.end()
            if len(items) > max_items:
                return None
    return None  # cut short: a page that never ends is not a page


async def fetch_page(
    session: Any,
    info: InstanceInfo,
    timeline: str,
    *,
    min_id: str | None,
    token: str | None = None,
    limit: int = PAGE_LIMIT,
    max_id: str | None = None,
    max_body: int = MAX_BODY,
) -> Page:
    """One page of the public timeline above `min_id` (the newest page when None), or
    below `max_id`; newest-first as the server sends it; at most `max_body` bytes. The
    statuses come as JSON bytes each, checked by the caller one by one."""
    params = {"limit": str(limit), **TIMELINES[timeline][0]}
    if min_id:
        params["min_id"] = min_id
    if max_id:
        params["max_id"] = max_id
    body, headers = await get_bytes(
        session,
        f"{info.base_url}/api/v1/timelines/public",
        token=token,
        params=params,
        what=f"{info.host} /api/v1/timelines/public",
        max_body=max_body,
    )
    statuses = split_page(body, 2 * limit)
    if statuses is None:
        raise InstanceDown(
            f"{info.host}: the timeline answer is not a whole list of at most {2 * limit} statuses"
        )
    return Page(statuses, parse_link_header(headers.get("Link")), RateLimit.from_headers(headers))
