"""One simulated Mastodon instance: an aiohttp app on its own loopback port.

It speaks the protocol as real servers do (docs.joinmastodon.org):
instance documents, SSE and WebSocket streaming with the exact framing and error bodies, the
REST public timeline with Mastodon's paging, Link and rate-limit headers, and the 4.5 live-feed
settings. Faults (cuts, stalls, malformed lines, error answers, slowness) are switched on by
calling methods, from tests or the CLI.

Cost model, because a benchmark pushes thousands of statuses a second through here: a status
is serialized at most once per instance and event (and only if a connection wants it), framed
once (SSE event, WebSocket frame) and appended to each connection's buffer; one `Outbox`
callback then writes every dirty connection's bytes to its transport in one write. No task
wakes per event; heartbeats and pings are timer callbacks.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from tootlake.errors import ConfigError
from tootlake.simulate.directory import DELETED, SUSPENDED, Directory
from tootlake.simulate.hostile import INSTANCE_KINDS
from tootlake.simulate.status import Observer, Renderer, SimPost, Snowflake

__all__ = ["FEED_ACCESS", "Instance", "InstanceSettings", "Outbox"]

log = logging.getLogger(__name__)

FEED_ACCESS = ("public", "authenticated", "disabled")
# Node's isTruthy and Rails' boolean cast agree on these false spellings; empty is false too.
_FALSE = {"", "0", "f", "F", "false", "FALSE", "off", "OFF"}
_JSON = "application/json; charset=utf-8"
_STREAM_PREFIX = "/api/v1/streaming"
# Streaming channels without statuses in a simulation (no users, lists or DMs): they are
# accepted, as the real server does for a valid token, and only ever get heartbeats.
_QUIET_CHANNELS = {"user", "user:notification", "list", "direct"}
_SSE_PATHS = {
    "public": "public",
    "public/local": "public:local",
    "public/remote": "public:remote",
    "hashtag": "hashtag",
    "hashtag/local": "hashtag:local",
    "user": "user",
    "user/notification": "user:notification",
    "list": "list",
    "direct": "direct",
}
_API_VERSIONS = {(4, 3): 2, (4, 4): 6, (4, 5): 7}  # instance v2 `api_versions.mastodon`
# What a "huge" instance sends, 64 KiB at a time: filler without a newline (one endless line,
# or an endless JSON string), or whole `data:` lines of 1 KiB (an event that never ends).
_FILLER = b"A" * (64 << 10)
_DATA_LINES = (b"data: " + b"A" * 1017 + b"\n") * 64


@dataclass
class InstanceSettings:
    """How one simulated instance behaves. Mutable: tests flip settings while it runs."""

    token: str | None = None  # the user token streaming (and REST, when given) accepts; None: any
    live_feeds: dict[str, str] = field(
        default_factory=lambda: {"local": "public", "remote": "public"}
    )  # Mastodon 4.5 local/remote_live_feed_access: public | authenticated | disabled
    version: str = "4.5.0"
    rate_limit: tuple[int, float] = (300, 300.0)  # requests per window (s), per IP or token
    paging_rate_limit: tuple[int, float] | None = (300, 900.0)  # requests with min/max/since_id
    separate_streaming: bool = False  # serve streaming on a second port (like streaming.host)
    heartbeat: float = 15.0  # SSE `:thump` interval, seconds
    heartbeat_frame: bytes = b":thump\n"  # b":thump\n\n" on servers after PR #37389 (2026-01)
    ws_ping: float = 30.0  # WebSocket ping interval; clients that miss a pong are dropped
    timeline_size: int = 5000  # statuses kept for the REST timeline
    max_buffer: int = 32 << 20  # bytes queued for a slow client before it is dropped
    title: str = "Simulated Mastodon"
    # A hostile instance (see tootlake.simulate.hostile): flood | stall | huge |
    # huge_document | bad_document; None: an ordinary one.
    misbehave: str | None = None
    huge_bytes: int = 512 << 20  # the size of each body a "huge" instance sends, lazily
    flood_rate: float | None = None  # a flood's cap, posts/s (None: as fast as clients read)
    # What /api/v1/instance/rules, /terms_of_service and /privacy_policy serve (instance
    # policy, `instances check`). None: a default by the instance's index (`default_policy`:
    # every third instance's rules mention research and bots, every other one publishes no
    # terms). `rules` is served as JSON whatever it is (a test may give wrong types);
    # `policy_raw` (bytes) is served as the body of all three instead (HTML, garbage);
    # `terms`/`privacy` "" = not published (404).
    rules: Any = None
    terms: str | None = None
    privacy: str | None = None
    description: str | None = None
    policy_raw: bytes | None = None
    # `GET /api/v1/statuses/:id` and `/api/v1/accounts/:id` answer anonymous requests 401, as
    # with Mastodon's DISALLOW_UNAUTHENTICATED_API_ACCESS (revalidation then needs the token).
    lookups_need_token: bool = False

    def __post_init__(self) -> None:
        if self.misbehave is not None and self.misbehave not in INSTANCE_KINDS:
            raise ValueError(
                f"Invalid misbehave: {self.misbehave!r}. Allowed values: "
                f"{', '.join(INSTANCE_KINDS)} (or None)."
            )
        for half in ("local", "remote"):
            value = self.live_feeds.get(half, "public")
            if value not in FEED_ACCESS:
                allowed = ", ".join(FEED_ACCESS)
                raise ValueError(
                    f"Invalid live_feeds[{half!r}]: {value!r}. Allowed values: {allowed}."
                )
            self.live_feeds[half] = value


def _truthy(value: str | None) -> bool:
    return value is not None and value not in _FALSE


def _int_param(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _limit(value: str | None, default: int = 20) -> int:
    """Api::BaseController#limit_param: [limit.to_i.abs, default * 2].min (Ruby's to_i: the
    leading digits after an optional sign, 0 when there are none)."""
    if value is None:
        return default
    digits = value.strip().lstrip("+-")
    digits = digits[: len(digits) - len(digits.lstrip("0123456789"))]
    return min(int(digits or 0), default * 2)


def _bearer(request: web.Request) -> str | None:
    """The token of a request: `Authorization: Bearer`, else the `access_token` query."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.query.get("access_token") or None


def _iso_us(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), headers={"Content-Type": _JSON, **(headers or {})}
    )


def _rails_json(body: bytes) -> bytes:
    # Rails escapes <, > and & in JSON (escape_html_entities_in_json); the streaming server
    # (Node's JSON.stringify) does not. Safe on bytes: those characters only occur in strings.
    return body.replace(b"&", b"\\u0026").replace(b"<", b"\\u003c").replace(b">", b"\\u003e")


class _Throttle:
    """rack-attack's fixed windows: `limit` requests per `period` seconds per key."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._counts: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, now: float) -> tuple[bool, int, float]:
        """Count a request: (allowed, remaining, reset time)."""
        window = int(now // self.period)
        seen_window, count = self._counts.get(key, (window, 0))
        count = count + 1 if seen_window == window else 1
        self._counts[key] = (window, count)
        # Mastodon's reset: now + (period - now.to_i % period), hence its odd fractions.
        reset = now + (self.period - int(now) % self.period)
        return count <= self.limit, max(0, self.limit - count), reset


class _Sub:
    """One subscription of a connection: which statuses of the instance it carries."""

    __slots__ = ("media", "name", "public", "quiet", "scope", "stream_json", "tag")

    def __init__(self, name: str, tag: str | None = None) -> None:
        self.name = name
        parts = name.split(":")
        self.quiet = name in _QUIET_CHANNELS
        self.public = parts[0] == "public"
        self.scope = "local" if "local" in parts else "remote" if "remote" in parts else "all"
        self.media = parts[-1] == "media"
        self.tag = tag.lower() if tag else None
        self.stream_json = orjson.dumps([name, tag] if parts[0] in ("hashtag", "list") else [name])

    def accepts(self, local: bool, media: bool, tags: frozenset[str], feed_disabled: bool) -> bool:
        if self.quiet or (self.public and feed_disabled):
            return False
        if (self.scope == "local" and not local) or (self.scope == "remote" and local):
            return False
        if self.media and not media:
            return False
        return self.tag is None or self.tag in tags


def _ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """An unmasked, unfragmented server->client WebSocket frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return header + payload


_WS_PING = _ws_frame(b"", opcode=0x9)


class Outbox:
    """Connections with bytes waiting, flushed together once the current callback returns.

    Publishing a batch marks connections dirty; one loop callback then writes each one's
    bytes with a single transport write. No task per connection wakes up per event.
    """

    def __init__(self) -> None:
        self._dirty: set[_Conn] = set()
        self._scheduled = False

    def mark(self, conn: _Conn) -> None:
        self._dirty.add(conn)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            conn.flush()


class _Conn:
    """A live streaming connection: its subscriptions and the bytes waiting to be written.

    Bytes go straight to the transport: SSE as HTTP chunks (aiohttp already sent the headers
    and the `:)` line), WebSocket as ready-made frames.
    """

    __slots__ = (
        "alive",
        "buf",
        "chunked",
        "closed",
        "doomed",
        "limit",
        "outbox",
        "partial",
        "stalled",
        "subs",
        "timer",
        "transport",
        "ws",
    )

    def __init__(
        self, ws: bool, transport: asyncio.BaseTransport | None, outbox: Outbox, limit: int
    ) -> None:
        self.ws = ws
        self.transport: Any = transport
        self.outbox = outbox
        self.limit = limit
        self.chunked = False
        self.subs: list[_Sub] = []
        self.buf: list[bytes] = []
        self.stalled = False
        self.doomed = False  # closing: nothing more is queued
        self.partial: bytes | None = None  # raw bytes written just before an abrupt close
        self.alive = True  # answered the last WebSocket ping
        self.timer: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def push(self, frame: bytes) -> None:
        self.buf.append(frame)
        self.outbox.mark(self)

    def backlog(self) -> int:
        """Bytes waiting to reach the client: queued here, plus in the transport's buffer."""
        transport = self.transport
        waiting = transport.get_write_buffer_size() if transport is not None else 0
        return waiting + sum(map(len, self.buf))

    def flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            self.finish()
            return
        if self.buf:
            data = b"".join(self.buf)
            self.buf.clear()
            if not data:  # an empty chunk would end the HTTP body cleanly
                return
            if transport.get_write_buffer_size() + len(data) > self.limit:
                self.abort()  # a client this slow would exhaust the server: drop it
                return
            transport.write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
        if self.partial is not None:  # a cut in the middle of an event
            partial = self.partial
            transport.write(b"%x\r\n%s\r\n" % (len(partial), partial) if self.chunked else partial)
            # close(), not abort(): the bytes already queued must reach the client (a reset
            # can discard them); the stream still ends without its final chunk or frame.
            transport.close()
            self.finish()

    def abort(self) -> None:
        """Drop the connection at once, without a clean close (as a crashed proxy would)."""
        self.doomed = True
        self.buf.clear()
        if self.transport is not None:
            self.transport.abort()
        self.finish()

    def finish(self) -> None:
        self.doomed = True
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class _Failure:
    status: int | str  # an HTTP status, or "garbage" for a 200 with a non-JSON body
    remaining: int | None  # None: every request until cleared
    path: str


class Instance:
    """A simulated Mastodon server on 127.0.0.1: web API, streaming, timeline and faults.

    Built and fed by `Fediverse`; tests reach it as `fed.instances[i]` to read its URLs and
    settings or to inject faults (`cut`, `stall`, `send_malformed`, `fail`, `slow`, `stop`).
    """

    def __init__(
        self,
        index: int,
        settings: InstanceSettings,
        renderer: Renderer,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        streaming_port: int = 0,
        outbox: Outbox | None = None,
    ) -> None:
        self.index = index
        self.outbox = outbox or Outbox()
        self.settings = settings
        self.renderer = renderer
        self.bind = bind
        self.stats: Counter[str] = Counter()
        self.ids = Snowflake(salt=index * 7919 + 1)
        self._sockets = [self._listen(port)]
        if settings.separate_streaming:
            try:
                self._sockets.append(self._listen(streaming_port))
            except BaseException:
                self._sockets[0].close()
                raise
        self._ports = [sock.getsockname()[1] for sock in self._sockets]
        self.port = self._ports[0]
        self.streaming_port = self._ports[-1]
        self.host = f"{bind}:{self.port}"  # also the origin host of its local posts' uris
        self.url = f"http://{self.host}"
        self.streaming_url = f"ws://{bind}:{self.streaming_port}"  # as instance docs give it
        self.observer = Observer(index, self.host, self.url)
        self._runners: list[web.AppRunner] = []
        self._conns: set[_Conn] = set()
        self._ids: list[int] = []  # the public timeline, ascending local ids...
        self._posts: list[SimPost] = []  # ...and their posts
        self._throttle = _Throttle(*settings.rate_limit)
        self._paging = (
            _Throttle(*settings.paging_rate_limit) if settings.paging_rate_limit else None
        )
        self._failures: list[_Failure] = []
        self._delay: tuple[float, str] = (0.0, "/")
        self._stall_new = False
        self.leak_hidden = False  # fault: stream unlisted posts, boosts and replies too
        self.directory: Directory | None = None  # set by Fediverse: posts and accounts by id
        self._closing = asyncio.Event()  # set by stop(): ends what a "stall" holds open

    def __repr__(self) -> str:
        return f"Instance({self.index}, {self.url!r}, connections={len(self._conns)})"

    # -- lifecycle ---------------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        # Bound here rather than by aiohttp so the port is known before the first start and
        # kept across stop()/start().
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.bind, port))
            sock.listen(512)
            sock.setblocking(False)
        except OSError as exc:  # a port in use, or an address not here: said in one line
            sock.close()
            raise ConfigError(
                f"Cannot serve on {self.bind}:{port}: {exc.strerror or exc}"
                + (" (without --port-base, free ports are taken)" if port else "")
            ) from None
        except BaseException:
            sock.close()
            raise
        return sock

    @property
    def running(self) -> bool:
        return bool(self._runners)

    async def start(self) -> None:
        """Serve (again, after `stop()`) on the same port(s)."""
        if self._runners:
            return
        self._closing = asyncio.Event()
        if self._sockets[0].fileno() == -1:  # closed by stop(): bind the same ports again
            self._sockets = [self._listen(port) for port in self._ports]
        apps = [self._app(web_routes=True, streaming=not self.settings.separate_streaming)]
        if self.settings.separate_streaming:
            apps.append(self._app(web_routes=False, streaming=True))
        for app, sock in zip(apps, self._sockets, strict=True):
            runner = web.AppRunner(
                app,
                handle_signals=False,
                access_log=None,
                handler_cancellation=True,
                shutdown_timeout=1.0,
            )
            await runner.setup()
            await web.SockSite(runner, sock).start()
            self._runners.append(runner)

    async def stop(self) -> None:
        """Go down: drop every connection and stop listening (the timeline is kept)."""
        self._closing.set()
        for conn in list(self._conns):
            conn.abort()
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
        for sock in self._sockets:
            sock.close()

    def _app(self, *, web_routes: bool, streaming: bool) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        if web_routes:
            r.add_get("/health", self._health)
            r.add_get("/api/v1/instance{_:/?}", self._instance_v1)
            r.add_get("/api/v2/instance{_:/?}", self._instance_v2)
            r.add_get("/api/v1/timelines/public{_:/?}", self._timeline)
            r.add_get("/api/v1/instance/rules{_:/?}", self._rules)
            r.add_get("/api/v1/instance/terms_of_service{_:/?}", self._terms)
            r.add_get("/api/v1/instance/privacy_policy{_:/?}", self._privacy)
            r.add_get("/api/v1/statuses/{id}", self._status)
            r.add_get("/api/v1/accounts/{id}", self._account)
        if streaming:
            r.add_get(_STREAM_PREFIX + "/health", self._health)
            r.add_get(_STREAM_PREFIX + "{_:/?}", self._websocket)
            r.add_get(_STREAM_PREFIX + "/{channel:.+}", self._sse)
        else:
            r.add_get(_STREAM_PREFIX + "{tail:.*}", self._redirect_to_streaming)
        return app

    # -- feeding -----------------------------------------------------------------------------

    def receive(self, post: SimPost, local_id: int | None = None) -> int:
        """A status arrives (authored here, or federated): give it a local id and publish it."""
        if local_id is None:
            local_id = self.ids.next(time.time())
        post.copies[self.index] = local_id
        if post.streamable:
            self._ids.append(local_id)
            self._posts.append(post)
            if len(self._ids) > self.settings.timeline_size * 1.25:
                del (
                    self._ids[: -self.settings.timeline_size],
                    self._posts[: -self.settings.timeline_size],
                )
        if post.streamable or self.leak_hidden:
            self._broadcast(b"update", post, local_id)
        return local_id

    def edited(self, post: SimPost) -> None:
        """The post has a new version: `status.update` on the streams."""
        if post.streamable or self.leak_hidden:
            self._broadcast(b"status.update", post, post.copies[self.index])

    def deleted(self, post: SimPost) -> None:
        """The post was deleted: `delete` with this instance's id (the timeline skips it)."""
        if post.streamable or self.leak_hidden:
            self._broadcast(
                b"delete", post, post.copies[self.index], payload=b"%d" % post.copies[self.index]
            )

    def _broadcast(
        self, event: bytes, post: SimPost, local_id: int, payload: bytes | None = None
    ) -> None:
        if not self._conns:
            return
        local = post.origin_index == self.index
        feed_disabled = self.settings.live_feeds["local" if local else "remote"] == "disabled"
        sse: bytes | None = None
        ws_payload: bytes | None = None
        ws_frames: dict[bytes, bytes] = {}
        for conn in self._conns:
            if conn.stalled or conn.doomed:
                continue
            for sub in conn.subs:
                if not sub.accepts(local, post.media, post.tags, feed_disabled):
                    continue
                if payload is None:  # serialized once, only when some connection wants it
                    payload = self.renderer.render(post, self.observer, local_id, stream=True)
                if conn.ws:
                    frame = ws_frames.get(sub.stream_json)
                    if frame is None:
                        if ws_payload is None:
                            ws_payload = orjson.dumps(payload.decode())  # the payload is a string
                        frame = ws_frames[sub.stream_json] = _ws_frame(
                            b'{"stream":%s,"event":"%s","payload":%s}'
                            % (sub.stream_json, event, ws_payload)
                        )
                    conn.push(frame)
                else:
                    if sse is None:
                        sse = b"event: %s\ndata: %s\n\n" % (event, payload)
                    conn.push(sse)
        self.stats["events"] += 1

    # -- faults ------------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Live streaming connections (SSE and WebSocket)."""
        return len(self._conns)

    def listened(self, backlog: int) -> bool:
        """Some live connection carries the public stream, and none of those has `backlog`
        bytes or more waiting: what a flood publishes now reaches its clients."""
        readers = [
            conn
            for conn in self._conns
            if not (conn.doomed or conn.stalled) and any(sub.public for sub in conn.subs)
        ]
        return bool(readers) and all(conn.backlog() < backlog for conn in readers)

    def cut(self, *, mid_event: bool = False, count: int | None = None) -> int:
        """Drop live connections abruptly (all, or `count` of them); return how many.

        `mid_event`: first send half of an event (a truncated `data:` line, or half a
        WebSocket frame), as when a proxy dies mid-write.
        """
        victims = list(self._conns)[:count]
        for conn in victims:
            if mid_event:
                conn.partial = self._truncated_event(conn.ws)
                conn.doomed = True
                self.outbox.mark(conn)
            else:
                conn.abort()
        self.stats["cuts"] += len(victims)
        return len(victims)

    def stall(self, *, seconds: float | None = None, new: bool = False) -> None:
        """Live connections go silent (no events, no heartbeats, no pings) but stay open.

        `new`: connections opened later stall too. `seconds`: unstall after that long.
        """
        for conn in self._conns:
            conn.stalled = True
        self._stall_new = new
        if seconds is not None:
            asyncio.get_running_loop().call_later(seconds, self.unstall)

    def unstall(self) -> None:
        """Stalled connections that are still open speak again (what they missed is lost)."""
        self._stall_new = False
        for conn in self._conns:
            conn.stalled = False

    def send_malformed(self, data: bytes | None = None) -> int:
        """Send a malformed event on every live connection; return how many got it.

        Default: an `update` whose JSON is cut in half (complete lines, invalid JSON). `data`
        is sent verbatim instead (raw SSE bytes, or the text of a WebSocket frame).
        """
        half = self._half_status()
        sent = 0
        for conn in self._conns:
            if conn.stalled or conn.doomed:
                continue
            if data is not None:
                conn.push(_ws_frame(data) if conn.ws else data)
            elif conn.ws:
                text = b'{"stream":["public"],"event":"update","payload":%s}' % orjson.dumps(
                    half.decode(errors="ignore")
                )
                conn.push(_ws_frame(text))
            else:
                conn.push(b"event: update\ndata: %s\n\n" % half)
            sent += 1
        return sent

    def fail(self, status: int | str = 503, count: int | None = 1, *, path: str = "/") -> None:
        """Answer the next `count` requests under `path` (None: all, until `clear_faults()`)
        with an error: 401, 422, 429, 5xx... or "garbage" (a 200 whose body is not JSON)."""
        self._failures.append(_Failure(status, count, path))

    def slow(self, seconds: float, *, path: str = "/") -> None:
        """Delay every answer under `path` by `seconds` (0 to stop)."""
        self._delay = (seconds, path)

    def clear_faults(self) -> None:
        """Stop failing, delaying, stalling and leaking."""
        self._failures.clear()
        self._delay = (0.0, "/")
        self.leak_hidden = False
        self.unstall()

    def _half_status(self) -> bytes:
        for post in reversed(self._posts):
            if post.draft is not None and not post.deleted:
                line = self.renderer.render(
                    post, self.observer, post.copies[self.index], stream=True
                )
                return line[: len(line) // 2]
        return b'{"id":"1","created_at":"2025-07-17T20:03:41.742Z","content":"<p>cut he'

    def _truncated_event(self, ws: bool) -> bytes:
        half = self._half_status()
        if not ws:
            return b"event: update\ndata: " + half
        text = b'{"stream":["public"],"event":"update","payload":%s}' % orjson.dumps(
            half.decode(errors="ignore")
        )
        # A frame header announcing the whole frame, then only half of it on the wire.
        frame = _ws_frame(text)
        return frame[: len(frame) - len(text) // 2]

    # -- hostile instances (settings.misbehave; see tootlake.simulate.hostile) ---------------

    async def _hang(self) -> None:
        """Hold the request open without a byte, until the client leaves or `stop()`."""
        self.stats["stalled"] += 1
        await self._closing.wait()

    async def _send_huge(
        self, write: Callable[[bytes], Awaitable[None]], size: int, filler: bytes = _FILLER
    ) -> bool:
        """Write `size` bytes of `filler` in 64 KiB chunks, each once the client took the last
        (aiohttp's drain): nothing is built in memory. True when all of it was written."""
        sent = 0
        self.stats["huge_bodies"] += 1
        try:
            while sent < size:
                chunk = filler if size - sent >= len(filler) else filler[: size - sent]
                await write(chunk)
                sent += len(chunk)
                self.stats["huge_bytes"] += len(chunk)
        except ConnectionError:  # the client hung up: what a careful one does
            return False
        self.stats["huge_completed"] += 1
        return True

    async def _huge_json(
        self, request: web.Request, headers: dict[str, str], prefix: bytes, suffix: bytes
    ) -> web.StreamResponse:
        """A JSON body of `huge_bytes` (valid, if read to its end), streamed in chunks."""
        response = web.StreamResponse(headers={**headers, "Content-Type": _JSON})
        response.enable_chunked_encoding()
        size = max(0, self.settings.huge_bytes - len(prefix) - len(suffix))
        with contextlib.suppress(ConnectionError):  # the client left: what a careful one does
            await response.prepare(request)
            await response.write(prefix)
            if await self._send_huge(response.write, size):
                await response.write(suffix)
                await response.write_eof()
        return response

    async def _misbehaving_sse(
        self, request: web.Request, response: web.StreamResponse
    ) -> web.StreamResponse:
        """A "stall": the headers, then nothing (no `:)`, no heartbeat). A "huge": an `update`
        that never ends, as one endless `data:` line on even connections, as `data:` lines
        without the blank line that would end the event on odd ones."""
        with contextlib.suppress(ConnectionError):  # the client left
            await response.prepare(request)
            if self.settings.misbehave == "stall":
                await self._hang()
                return response
            await response.write(b":)\n")
            odd = self.stats["huge_streams"] % 2
            self.stats["huge_streams"] += 1
            if odd:
                await response.write(b"event: update\n")
                await self._send_huge(response.write, self.settings.huge_bytes, _DATA_LINES)
            else:
                await response.write(b'event: update\ndata: {"id":"1","content":"')
                await self._send_huge(response.write, self.settings.huge_bytes)
        return response

    async def _huge_ws(self, request: web.Request) -> None:
        """A text frame announcing 2**40 bytes, then `huge_bytes` of it, written as the client
        reads (the transport's buffer stays under 1 MiB)."""
        transport = request.transport
        if transport is None:
            return
        transport.write(bytes((0x81, 127)) + (1 << 40).to_bytes(8, "big"))

        async def write(chunk: bytes) -> None:
            while True:
                if transport.is_closing():
                    raise ConnectionResetError("the client left")
                if transport.get_write_buffer_size() < 1 << 20:
                    break
                await asyncio.sleep(0.005)
            transport.write(chunk)

        self.stats["huge_streams"] += 1
        await self._send_huge(write, self.settings.huge_bytes)
        transport.abort()

    # -- HTTP plumbing -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.stats["requests"] += 1
        delay, delay_path = self._delay
        if delay and request.path.startswith(delay_path):
            await asyncio.sleep(delay)
        for failure in self._failures:
            if request.path.startswith(failure.path):
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                self.stats[f"failed_{failure.status}"] += 1
                return self._failure_response(request, failure.status)
        response = await handler(request)
        if not response.prepared:  # streams set theirs before their first write
            response.headers.setdefault("X-Request-Id", uuid.uuid4().hex)
        return response

    def _failure_response(self, request: web.Request, status: int | str) -> web.Response:
        streaming = request.path.startswith(_STREAM_PREFIX)
        if status == "garbage":  # a captive portal, a CDN challenge, a half-written body...
            body = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
            return web.Response(status=200, body=body, headers={"Content-Type": _JSON})
        assert isinstance(status, int)
        if status == 401 and request.headers.get("Upgrade", "").lower() == "websocket":
            return self._ws_refusal("Invalid access token")
        if status == 401:
            message = "Invalid access token" if streaming else "The access token is invalid"
            return _json(401, {"error": message})
        if status == 422:
            return _json(422, {"error": "This method requires an authenticated user"})
        if status == 429:
            return self._too_many(self._throttle.limit, self._throttle.hit("fault", time.time())[2])
        if status in (502, 503, 504):  # what the reverse proxy answers when Puma/Node are gone
            reason = {
                502: "Bad Gateway",
                503: "Service Temporarily Unavailable",
                504: "Gateway Time-out",
            }
            title = f"{status} {reason[status]}"
            html = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1>"
                "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            )
            return web.Response(status=status, text=html, content_type="text/html")
        if status >= 500:
            return _json(status, {"error": "An unexpected error occurred"})
        return _json(status, {"error": web.Response(status=status).reason})

    def _too_many(self, limit: int, reset: float) -> web.Response:
        headers = self._rate_headers(limit, 0, reset)
        headers["Retry-After"] = str(max(1, math.ceil(reset - time.time())))
        self.stats["throttled"] += 1
        return _json(429, {"error": "Too many requests"}, headers)

    @staticmethod
    def _rate_headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": _iso_us(reset),
        }

    def _rate_limit(self, request: web.Request, token: str | None) -> web.Response | dict[str, str]:
        """Count the request: the 429 answer when over budget, else the headers to send."""
        now = time.time()
        key = f"token:{token}" if token else f"ip:{request.remote}"
        allowed, remaining, reset = self._throttle.hit(key, now)
        if not allowed:
            return self._too_many(self._throttle.limit, reset)
        query = request.query
        if self._paging is not None and any(
            k in query for k in ("min_id", "max_id", "since_id", "page")
        ):
            paging_ok, _, paging_reset = self._paging.hit(key, now)
            if not paging_ok:
                return self._too_many(self._paging.limit, paging_reset)
        return self._rate_headers(self._throttle.limit, remaining, reset)

    def _token_valid(self, token: str) -> bool:
        return self.settings.token is None or token == self.settings.token

    # -- web API -----------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK", content_type="text/plain")

    async def _redirect_to_streaming(self, request: web.Request) -> web.Response:
        # Api::V1::StreamingController: same path, same query, on the streaming host.
        target = f"http://{self.bind}:{self.streaming_port}{request.path_qs}"
        return web.Response(status=301, headers={"Location": target})

    def _rest_guard(self, request: web.Request) -> tuple[web.Response | None, dict[str, str], bool]:
        """(error answer or None, rate headers, authenticated) for a REST request."""
        token = _bearer(request)
        if token is not None and not self._token_valid(token):
            return _json(401, {"error": "The access token is invalid"}), {}, False
        limited = self._rate_limit(request, token)
        if isinstance(limited, web.Response):
            return limited, {}, False
        return None, limited, token is not None

    async def _instance_v1(self, request: web.Request) -> web.StreamResponse:
        error, headers, _ = self._rest_guard(request)
        if error is not None:
            return error
        if self.settings.misbehave == "huge_document":
            prefix = b'{"uri":"%s","version":"4.5.0","description":"' % self.host.encode()
            return await self._huge_json(request, headers, prefix, b'"}')
        s = self.settings
        doc = {
            "uri": self.host,
            "title": s.title,
            "short_description": "A Mastodon server simulated by tootlake.",
            "description": self.policy_documents()[3],
            "email": f"admin@{self.bind}",
            "version": s.version,
            "urls": {"streaming_api": self.streaming_url},
            "stats": {"user_count": 40, "status_count": len(self._ids), "domain_count": 20},
            "thumbnail": f"{self.url}/packs/media/images/preview.png",
            "languages": ["en"],
            "registrations": False,
            "approval_required": False,
            "invites_enabled": False,
            "configuration": _CONFIGURATION,
            "contact_account": None,
            "rules": [],
        }
        if self.settings.misbehave == "bad_document":
            doc["urls"] = 5
        return _json(200, doc, headers)

    def policy_documents(self) -> tuple[Any, str, str, str]:
        """(rules, terms HTML, privacy HTML, description) this instance serves ("" = none)."""
        s = self.settings
        rules, terms, privacy, description = default_policy(self.index)
        return (
            rules if s.rules is None else s.rules,
            terms if s.terms is None else s.terms,
            privacy if s.privacy is None else s.privacy,
            description if s.description is None else s.description,
        )

    async def _policy_document(self, request: web.Request, which: int) -> web.StreamResponse:
        error, headers, _ = self._rest_guard(request)
        if error is not None:
            return error
        if self.settings.policy_raw is not None:
            return web.Response(
                status=200, body=self.settings.policy_raw, content_type="text/html", headers=headers
            )
        document = self.policy_documents()[which]
        if which == 0:
            return _json(200, document, headers)
        if not document:
            return _json(404, {"error": "Record not found"}, headers)
        stamp: dict[str, Any] = {"updated_at": "2026-01-01T00:00:00.000Z"}
        if which == 1:
            stamp = {"effective_date": "2026-01-01", "effective": True, "succeeded_by": None}
        return _json(200, {**stamp, "content": document}, headers)

    async def _rules(self, request: web.Request) -> web.StreamResponse:
        return await self._policy_document(request, 0)

    async def _terms(self, request: web.Request) -> web.StreamResponse:
        return await self._policy_document(request, 1)

    async def _privacy(self, request: web.Request) -> web.StreamResponse:
        return await self._policy_document(request, 2)

    # -- single statuses and accounts (what `tootlake revalidate` asks) ------------------------

    def _lookup_guard(
        self, request: web.Request
    ) -> tuple[web.Response | None, dict[str, str], bool, int | None]:
        """(error answer or None, rate headers, authenticated, the id asked for)."""
        error, headers, authenticated = self._rest_guard(request)
        if error is None and self.settings.lookups_need_token and not authenticated:
            error = _json(401, {"error": "This method requires an authenticated user"}, headers)
        self.stats["lookups"] += 1
        return error, headers, authenticated, _int_param(request.match_info["id"])

    async def _status(self, request: web.Request) -> web.StreamResponse:
        """Api::V1::StatusesController#show: this instance's copy, or 404 when it is deleted,
        never was here, or is not visible to the asker (private, direct; a gone author)."""
        error, headers, authenticated, local_id = self._lookup_guard(request)
        if error is not None:
            return error
        if self.settings.misbehave == "stall":
            await self._hang()
            return _json(503, {"error": "An unexpected error occurred"})
        found = self.directory.status(self.index, local_id) if self.directory and local_id else None
        draft = found.draft if found is not None else None
        if found is None or found.deleted or (draft and draft.visibility in ("private", "direct")):
            return _json(404, {"error": "Record not found"}, headers)
        if draft is None:  # evicted from memory: the simulator cannot say (never a 404)
            return _json(503, {"error": "An unexpected error occurred"}, headers)
        assert local_id is not None
        body = self.renderer.render(found, self.observer, local_id, user=authenticated)
        headers["Content-Type"] = _JSON
        return web.Response(body=_rails_json(body), headers=headers)

    async def _account(self, request: web.Request) -> web.StreamResponse:
        """Api::V1::AccountsController#show: the account, `suspended: true` for a suspended
        one, 404 for one that was deleted or is unknown here."""
        error, headers, _, account_id = self._lookup_guard(request)
        if error is not None:
            return error
        directory = self.directory
        author = directory.account(self.index, account_id) if directory and account_id else None
        state = directory.state(author) if directory and author else None
        if author is None or state == DELETED:
            return _json(404, {"error": "Record not found"}, headers)
        account = self.renderer.account(author, self.index, suspended=state == SUSPENDED)
        return _json(200, account, headers)

    async def _instance_v2(self, request: web.Request) -> web.StreamResponse:
        error, headers, _ = self._rest_guard(request)
        if error is not None:
            return error
        if self.settings.misbehave == "huge_document":
            prefix = b'{"domain":"%s","version":"4.5.0","description":"' % self.host.encode()
            return await self._huge_json(request, headers, prefix, b'"}')
        s = self.settings
        configuration: dict[str, Any] = {
            "urls": {
                "streaming": self.streaming_url,
                "status": None,
                "about": f"{self.url}/about",
                "privacy_policy": f"{self.url}/privacy-policy",
                "terms_of_service": None,
            },
            "vapid": {"public_key": _VAPID_KEY},
            **_CONFIGURATION,
            "translation": {"enabled": False},
            "limited_federation": False,
        }
        major, minor = _major_minor(s.version)
        if (major, minor) >= (4, 5):  # timelines_access exists since 4.5.0
            configuration["timelines_access"] = {
                "live_feeds": dict(s.live_feeds),
                "hashtag_feeds": {"local": "public", "remote": "public"},
                "trending_link_feeds": {"local": "public", "remote": "public"},
            }
        doc: dict[str, Any] = {
            "domain": self.host,
            "title": s.title,
            "version": s.version,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": self.policy_documents()[3],
            "usage": {"users": {"active_month": 40}},
            "thumbnail": {"url": f"{self.url}/packs/media/images/preview.png"},
            "icon": [],
            "languages": ["en"],
            "configuration": configuration,
            "registrations": {
                "enabled": False,
                "approval_required": False,
                "reason_required": False,
                "message": None,
                "min_age": None,
                "url": None,
            },  # fmt: skip
            "contact": {"email": f"admin@{self.bind}", "account": None},
            "rules": [],
        }
        if (major, minor) >= (4, 3):  # Mastodon.py warns about a >= 4.3 server without it
            doc["api_versions"] = {"mastodon": _API_VERSIONS.get((major, minor), 7)}
        if self.settings.misbehave == "bad_document":
            doc["configuration"] = "x"
        return _json(200, doc, headers)

    async def _timeline(self, request: web.Request) -> web.StreamResponse:
        error, headers, authenticated = self._rest_guard(request)
        if error is not None:
            return error
        if self.settings.misbehave == "stall":
            await self._hang()  # not even the status line
            return _json(503, {"error": "An unexpected error occurred"})
        if self.settings.misbehave == "huge":
            prefix = b'[{"id":"1","created_at":"2025-07-17T20:03:41.742Z","content":"'
            return await self._huge_json(request, headers, prefix, b'"}]')
        q = request.query
        local, remote, media = (
            _truthy(q.get("local")),
            _truthy(q.get("remote")),
            _truthy(q.get("only_media")),
        )
        feeds = self.settings.live_feeds
        # Api::V1::Timelines::PublicController#require_auth?
        if local:
            needs_user = feeds["local"] != "public"
        elif remote:
            needs_user = feeds["remote"] != "public"
        else:
            needs_user = feeds["local"] != "public" or feeds["remote"] != "public"
        if needs_user and not authenticated:
            return _json(422, {"error": "This method requires an authenticated user"}, headers)
        # PublicFeed: local=&remote= together mean both; a disabled half is silently left out.
        want_local = not (remote and not local) and feeds["local"] != "disabled"
        want_remote = not (local and not remote) and feeds["remote"] != "disabled"
        limit = _limit(q.get("limit"))
        max_id, since_id, min_id = (_int_param(q.get(k)) for k in ("max_id", "since_id", "min_id"))
        page = self._page(want_local, want_remote, media, max_id, since_id, min_id, limit)
        render, observer = self.renderer.render, self.observer
        items = [render(post, observer, local_id, user=authenticated) for local_id, post in page]
        body = b"[" + b",".join(items) + b"]"
        headers["Content-Type"] = _JSON
        headers["Vary"] = "Authorization, Origin"
        headers["Cache-Control"] = (
            "private, no-store" if authenticated
            else "max-age=15, public, stale-while-revalidate=30, stale-if-error=86400"
        )  # fmt: skip
        if page:
            headers["Link"] = self._link_header(q, page[-1][0], page[0][0])
        self.stats["timeline_requests"] += 1
        return web.Response(body=_rails_json(body), headers=headers)

    def _page(
        self,
        want_local: bool,
        want_remote: bool,
        media: bool,
        max_id: int | None,
        since_id: int | None,
        min_id: int | None,
        limit: int,
    ) -> list[tuple[int, SimPost]]:
        """`to_a_paginated_by_id`: newest first; with min_id, the page just above it."""
        if not (want_local or want_remote) or limit <= 0:
            return []
        ids, posts, index = self._ids, self._posts, self.index

        def keep(post: SimPost) -> bool:
            if post.deleted or post.draft is None or (media and not post.media):
                return False
            if not post.streamable:  # made non-public since (Fediverse.restrict)
                return False
            return want_local if post.origin_index == index else want_remote

        hi = bisect.bisect_left(ids, max_id) if max_id is not None else len(ids)
        out: list[tuple[int, SimPost]] = []
        if min_id is not None:
            for i in range(bisect.bisect_right(ids, min_id), hi):
                if keep(posts[i]):
                    out.append((ids[i], posts[i]))
                    if len(out) == limit:
                        break
            out.reverse()
            return out
        lo = bisect.bisect_right(ids, since_id) if since_id is not None else 0
        for i in range(hi - 1, lo - 1, -1):
            if keep(posts[i]):
                out.append((ids[i], posts[i]))
                if len(out) == limit:
                    break
        return out

    def _link_header(self, query: Any, oldest: int, newest: int) -> str:
        # Only these parameters are carried over, sorted by name as Rails' to_query does.
        kept = {k: query[k] for k in ("limit", "local", "only_media", "remote") if k in query}

        def url(cursor: dict[str, str]) -> str:
            params = sorted({**kept, **cursor}.items())
            return f"{self.url}/api/v1/timelines/public?" + "&".join(f"{k}={v}" for k, v in params)

        older, newer = url({"max_id": str(oldest)}), url({"min_id": str(newest)})
        return f'<{older}>; rel="next", <{newer}>; rel="prev"'

    # -- streaming ---------------------------------------------------------------------------

    def _stream_auth_error(self, token: str | None) -> str | None:
        # Since 4.2 every streaming request needs a user token (docs section 1.6).
        if not token:
            return "Missing access token"
        if not self._token_valid(token):
            return "Invalid access token"
        return None

    def _subscription(self, name: str, params: Any) -> _Sub | tuple[int, str]:
        """The subscription for a channel name, or (status, error message)."""
        base = name.removesuffix(":media") if name.startswith("public") else name
        if base not in ("public", "public:local", "public:remote") and name not in (
            "hashtag", "hashtag:local", *_QUIET_CHANNELS,
        ):  # fmt: skip
            return 400, "Unknown stream type"
        if name.startswith("hashtag") and not params.get("tag"):
            return 400, "Missing tag name parameter"
        if name == "list" and not params.get("list"):
            return 400, "Missing list name parameter"
        return _Sub(name, params.get("tag") or params.get("list"))

    def _register(self, conn: _Conn) -> None:
        self._conns.add(conn)
        conn.stalled = self._stall_new
        loop = asyncio.get_running_loop()
        if conn.ws:
            conn.timer = loop.call_later(self.settings.ws_ping, self._ping, conn)
        else:
            conn.timer = loop.call_later(self.settings.heartbeat, self._beat, conn)

    def _unregister(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        conn.finish()
        if conn.timer is not None:
            conn.timer.cancel()

    def _beat(self, conn: _Conn) -> None:
        if conn.doomed:
            return
        if not conn.stalled:
            conn.push(self.settings.heartbeat_frame)
        conn.timer = asyncio.get_running_loop().call_later(
            self.settings.heartbeat, self._beat, conn
        )

    def _ping(self, conn: _Conn) -> None:
        if conn.doomed:
            return
        if not conn.stalled:
            if not conn.alive:  # no pong since the last ping: terminate, as Mastodon does
                conn.abort()
                return
            conn.alive = False
            conn.push(_WS_PING)
        conn.timer = asyncio.get_running_loop().call_later(self.settings.ws_ping, self._ping, conn)

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        name = _SSE_PATHS.get(request.match_info["channel"].rstrip("/"))
        if name is None:
            return _json(400, {"error": "Unknown channel requested"})
        message = self._stream_auth_error(_bearer(request))
        if message is not None:
            self.stats["refused"] += 1
            return _json(401, {"error": message})
        if name.startswith("public") and _truthy(request.query.get("only_media")):
            name += ":media"
        sub = self._subscription(name, request.query)
        if isinstance(sub, tuple):
            return _json(sub[0], {"error": sub[1]})
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "private, no-store",
                "Access-Control-Allow-Origin": "*",
                "X-Request-Id": str(uuid.uuid4()),
            }
        )
        response.enable_chunked_encoding()  # so we know the framing of our direct writes
        if self.settings.misbehave in ("stall", "huge"):
            return await self._misbehaving_sse(request, response)
        await response.prepare(request)
        await response.write(b":)\n")
        conn = _Conn(False, request.transport, self.outbox, self.settings.max_buffer)
        conn.chunked = True
        conn.subs.append(sub)
        self._register(conn)
        self.stats["sse_connections"] += 1
        try:
            await conn.closed  # the outbox writes; this only waits for the end
        finally:
            self._unregister(conn)
        return response

    def _ws_refusal(self, message: str) -> web.Response:
        # The streaming server answers before the upgrade, with an empty body.
        self.stats["refused"] += 1
        return web.Response(status=401, headers={"Connection": "close", "X-Error-Message": message})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _json(404, {"error": "Not found"})
        offered = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        token = _bearer(request) or (offered[0] if offered else None)
        message = self._stream_auth_error(token)
        if message is not None:
            return self._ws_refusal(message)
        # The `ws` library echoes the first offered protocol (the token, when sent that way).
        # No permessage-deflate: Mastodon's server does not enable it.
        ws = web.WebSocketResponse(
            protocols=offered[:1], autoping=False, compress=False, max_msg_size=1 << 16
        )
        await ws.prepare(request)
        if self.settings.misbehave == "stall":
            await self._hang()  # upgraded, then nothing: no frame, no ping, no pong
            return ws
        if self.settings.misbehave == "huge":
            with contextlib.suppress(ConnectionError):
                await self._huge_ws(request)
            return ws
        conn = _Conn(True, request.transport, self.outbox, self.settings.max_buffer)
        self._register(conn)
        self.stats["ws_connections"] += 1
        try:
            if "stream" in request.query:
                self._ws_subscribe(conn, request.query["stream"], request.query)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._ws_command(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await ws.close(code=1003)
                elif msg.type == WSMsgType.PING and not conn.stalled:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.alive = True
        except ConnectionError:
            pass
        finally:
            self._unregister(conn)
        return ws

    def _ws_subscribe(self, conn: _Conn, name: str, params: Any) -> None:
        sub = self._subscription(name, params)
        if isinstance(sub, tuple):
            conn.push(_ws_frame(orjson.dumps({"error": sub[1], "status": sub[0]})))
        elif not any(s.name == sub.name and s.tag == sub.tag for s in conn.subs):
            conn.subs.append(sub)

    def _ws_command(self, conn: _Conn, text: str) -> None:
        try:
            command = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if not isinstance(command, dict) or not isinstance(command.get("stream"), str):
            return
        if command.get("type") == "subscribe":
            self._ws_subscribe(conn, command["stream"], command)
        elif command.get("type") == "unsubscribe":
            tag = command.get("tag") or command.get("list")
            tag = tag.lower() if isinstance(tag, str) else None
            conn.subs = [s for s in conn.subs if not (s.name == command["stream"] and s.tag == tag)]


def default_policy(index: int) -> tuple[list[dict[str, str]], str, str, str]:
    """The rules, terms, privacy policy and description of the `index`-th simulated
    instance: every third one's rules mention research and bots (index 1, 4, ...), every
    other one publishes no terms of service (odd indexes), and instance 2's description
    speaks of archiving."""
    rules = [
        {"id": "1", "text": "Be kind to each other.", "hint": ""},
        {"id": "2", "text": "No spam or advertising.", "hint": "Unsolicited promotion."},
    ]
    if index % 3 == 1:
        rules.append(
            {
                "id": "3",
                "text": "No scraping of posts for research without the admins' consent.",
                "hint": "Bots must be marked as bots.",
            }
        )
    terms = "" if index % 2 else "<p>You keep the rights to what you post.</p>"
    privacy = "<p>We store what you post and your IP address for 12 months.</p>"
    description = "A Mastodon server simulated by tootlake."
    if index == 2:
        description += " Posts here must not be archived by third parties."
    return rules, terms, privacy, description


def _major_minor(version: str) -> tuple[int, int]:
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in version.split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


_VAPID_KEY = (  # any well-formed key: clients only store it
    "BCk-QqERU0q-CfYZjcuB6lnyyOYfJ2AifKqfeGIm7Z-HiTU5T9eTG5GxVA0_OH5mMlI4UkkDTpaZwozy0TzdZ2M="
)
_CONFIGURATION: dict[str, Any] = {
    "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
    "statuses": {
        "max_characters": 500,
        "max_media_attachments": 4,
        "characters_reserved_per_url": 23,
    },
    "media_attachments": {
        "supported_mime_types": [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "video/mp4",
            "audio/mpeg",
        ],
        "image_size_limit": 16777216,
        "image_matrix_limit": 33177600,
        "video_size_limit": 103809024,
        "video_frame_rate_limit": 120,
        "video_matrix_limit": 8294400,
    },  # fmt: skip
    "polls": {
        "max_options": 4,
        "max_characters_per_option": 50,
        "min_expiration": 300,
        "max_expiration": 2629746,
    },
}
