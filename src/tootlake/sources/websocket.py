"""A Mastodon streaming WebSocket, read with picows (a Cython WebSocket client) on asyncio's
own transports (and its TLS).

`open_stream` connects (handshake headers, timeouts, redirects followed here: the token goes
to the same origin only) and returns a `Stream`. Its messages reach the reader a batch per
read, from the socket's callback (`Stream.deliver`), or through `Stream.receive` when they
must wait. The collector reads thousands of messages a second on one asyncio loop:
websockets' frame parser and its per-message futures cost 10 us of CPU per message, picows'
callbacks 5 (bench/results/ws.md).

Everything stays bounded: a message (one frame, or its fragments together) beyond
`max_message` ends the connection at once (`TooLarge`: the rest is not read, not even to be
discarded); messages not yet taken beyond `max_buffered` bytes (each counted at least
`_OVERHEAD`) stop reading the socket until they are (backpressure reaches the server through
TCP); the handshake answer is at most 16 KiB (picows); a server that does not read what we
send (pongs to a ping flood) is dropped once 64 KiB wait. Every `keepalive` seconds a ping
goes out; no pong by the next one ends the connection (not while reading is paused for
backpressure: the pong would wait unread).

The protocol is held to RFC 6455 where picows does not: no reserved bits (no extension is
negotiated), nothing after a close, a message not begun inside a fragmented one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

from tootlake.errors import MissingDependency
from tootlake.sources.mastodon import InstanceDown, TooLarge

__all__ = ["REDIRECTS", "HandshakeFailed", "Refused", "Stream", "open_stream", "redirected"]

REDIRECTS = 5  # followed at most, per connection
_CLEAN = frozenset({1000, 1001, 1005})  # close codes of a stream that ended well (1005: none)
_OVERHEAD = 64  # bytes a message or fragment counts at least: empty ones are not free
_PING = b"tootlake"
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] +(\d{3})\b")
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


class Refused(Exception):
    """The server answered the upgrade with another HTTP status."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(f"HTTP {status} instead of an upgrade")
        self.status = status
        self.headers = headers
        self.body = body


class HandshakeFailed(Exception):
    """The upgrade answer was not a WebSocket one (bad headers, bad key)."""


class _ConnectionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The log picows writes for one connection. Its records go down to DEBUG (picows logs a
    connection's end at WARNING or ERROR; the worker says why it ended, once), its traces
    below DEBUG (the upgrade request among them, token and all) nowhere. A parser error (a
    frame beyond `max_message`, a protocol violation) drops the connection at once: picows
    would close it 10 ms later, reading on meanwhile (a huge frame, into a buffer that
    doubles as it fills)."""

    def __init__(self, logger: logging.Logger, stream: Stream) -> None:
        super().__init__(logger, {})
        self.stream = stream

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        return level >= logging.DEBUG and self.logger.isEnabledFor(logging.DEBUG)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str):
            if msg.startswith("WS parser error"):
                self.stream._parser_error(args[0] if args else ())
            elif msg.startswith("WS parser failure"):
                self.stream._fail(InstanceDown("a frame picows could not parse"))
        if level < logging.DEBUG:
            return
        kwargs.pop("exc_info", None)  # (the worker's own message says what happened)
        super().log(logging.DEBUG, msg, *args, **kwargs)


class Stream:
    """The messages of one connection (see the module docstring). Made by `open_stream`."""

    def __init__(self, max_message: int, max_buffered: int, keepalive: float) -> None:
        self.max_message = max_message
        self.max_buffered = max_buffered
        self.keepalive = keepalive
        self.transport: Any = None
        self._messages: collections.deque[bytes] = collections.deque()
        self._buffered = 0  # bytes in _messages (each counted at least _OVERHEAD)
        self._parts: list[bytes] | None = None  # the fragments of a message still coming
        self._part_bytes = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None  # what ended it, found on our side
        self._ended = False  # disconnected
        self._closing = False  # a close frame came or went: nothing more is read
        self._abandoned = False  # open_stream gave up: a late connection is dropped
        self._handler: Callable[[list[bytes]], bool] | None = None
        self._batch = (1 << 30, 1 << 62)  # a batch's messages and bytes at most
        self._flushing = False  # a flush is scheduled (call_soon)
        self._pinged = False  # a ping went out and no pong came yet
        self._ticker: asyncio.TimerHandle | None = None

    def deliver(
        self, handler: Callable[[list[bytes]], bool], max_messages: int, max_bytes: int
    ) -> None:
        """Hand the messages of each read to `handler` from the socket's callback, while the
        reader waits in `receive` (nothing is queued before them then): no task is woken per
        read. At most `max_messages` at a time, closing a batch once it holds `max_bytes`.
        `handler` says False to leave them to `receive` (they must wait), True when it took
        them; what it raises ends the connection and is raised by `receive`."""
        self._handler = handler
        self._batch = (max_messages, max_bytes)

    # -- picows' side (callbacks, on the loop) --------------------------------------------

    def _connected(self, transport: Any) -> None:
        self.transport = transport
        if self._abandoned:
            transport.disconnect(graceful=False)
            return
        self._tick_later()

    def _frame(self, frame: Any, kinds: tuple[Any, ...]) -> None:
        if self._error is not None or self._closing:
            return  # nothing counts after a failure or a close
        text, binary, continuation, close, pong = kinds
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            return self._fail(InstanceDown("a frame with reserved bits set (no extension)"))
        kind = frame.msg_type
        if kind is text or kind is binary:
            if self._parts is not None:
                return self._fail(InstanceDown("a new message began inside a fragmented one"))
            if frame.fin:
                return self._put(frame.get_payload_as_bytes())
            self._parts, self._part_bytes = [], 0
            self._add_part(frame)
        elif kind is continuation:
            if self._parts is None:
                return self._fail(InstanceDown("a continuation frame without a message"))
            self._add_part(frame)
        elif kind is pong:
            self._pinged = False
        elif kind is close:
            # The server closes: answer (RFC 6455 asks for an echo; an empty close has no
            # code to echo: 1000), then drop the connection. What came before still counts.
            self._closing = True
            code = frame.get_close_code() if frame.payload_size >= 2 else None
            self.transport.send_close(code or _close_code(1000), None)
            backlog = self.transport.underlying_transport.get_write_buffer_size()
            self.transport.disconnect(graceful=not backlog)
        # pings are answered by picows itself

    def _add_part(self, frame: Any) -> None:
        parts = self._parts
        assert parts is not None
        self._part_bytes += frame.payload_size
        # (empty fragments are not free: each counts _OVERHEAD towards the limit too)
        if max(self._part_bytes, (len(parts) + 1) * _OVERHEAD) > self.max_message:
            self._parts = None
            return self._too_large()
        parts.append(frame.get_payload_as_bytes())
        if frame.fin:
            self._parts = None
            self._put(b"".join(parts))

    def _put(self, message: bytes) -> None:
        self._messages.append(message)
        self._buffered += len(message) + _OVERHEAD
        most, most_bytes = self._batch
        if len(self._messages) >= most or self._buffered >= most_bytes:
            self._flush()
        elif not self._flushing:
            # once the rest of this read (and of the loop's other reads) is parsed
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)
        if self._buffered >= self.max_buffered and not self._paused and not self._ended:
            self._paused = True
            self.transport.underlying_transport.pause_reading()

    def _flush(self) -> None:
        self._flushing = False
        messages = self._messages
        if not messages:
            return
        waiter = self._waiter
        if self._handler is not None and waiter is not None and not waiter.done():
            try:
                taken = self._handler(list(messages))
            except BaseException as exc:  # (a bug: what the reader's own loop would raise)
                messages.clear()
                self._buffered = 0
                self._fail(exc)
                taken = False
            if taken:
                messages.clear()
                self._buffered = 0
                self._resume()
                return
        self._wake()

    def _too_large(self) -> None:
        self._fail(TooLarge(f"a message larger than {self.max_message} bytes; connection dropped"))

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        transport = self.transport
        if transport is not None and not transport.is_disconnected:
            too_big = isinstance(error, TooLarge)
            if not transport.is_close_frame_sent:
                transport.send_close(_close_code(1009 if too_big else 1002), None)
            # not a graceful close: that would read (and discard) the rest of a huge message
            transport.disconnect(graceful=False)
        self._wake()

    def _parser_error(self, args: Any) -> None:
        """picows found a frame it will not read: `args` is (close code, description)."""
        args = args if isinstance(args, tuple) else ()
        if args and _code(args[0]) == 1009:
            self._too_large()
        else:
            self._fail(InstanceDown(f"protocol error: {_reason(str(args[-1]) if args else '')}"))

    def _write_blocked(self) -> None:
        self._fail(InstanceDown("the server does not read what we send (a ping flood?)"))

    def _disconnected(self) -> None:
        self._ended = True
        if self._ticker is not None:
            self._ticker.cancel()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _tick_later(self) -> None:
        self._ticker = asyncio.get_running_loop().call_later(self.keepalive, self._tick)

    def _tick(self) -> None:
        """Every `keepalive` seconds: no pong since the last ping ends the connection, else a
        ping goes out. Not while reading is paused: a pong would wait unread."""
        self._ticker = None
        if self._ended or self._error is not None:
            return
        if self._paused:
            self._pinged = False
        elif self._pinged:
            return self._fail(InstanceDown(f"ping timeout (no pong within {self.keepalive:g}s)"))
        elif not self._closing:
            self._pinged = True
            self.transport.send_ping(_PING)
        self._tick_later()

    def _resume(self) -> None:
        if self._paused and self._buffered <= self.max_buffered // 2 and not self._ended:
            self._paused = False
            self.transport.underlying_transport.resume_reading()

    # -- the reader's side ----------------------------------------------------------------

    async def receive(self, max_messages: int, max_bytes: int) -> list[bytes]:
        """The messages that arrived and were not taken yet, in order: at least one (waiting
        for it), at most `max_messages`, and no more once they hold `max_bytes`. An empty
        list when the server closed the stream well and every message was taken; the error
        that ended the connection (InstanceDown, TooLarge) once every message before it was."""
        messages = self._messages
        while not messages:
            if self._ended or self._error is not None:
                self._raise_end()
                return []
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        taken = [messages.popleft()]
        size = len(taken[0])
        while messages and len(taken) < max_messages and size < max_bytes:
            message = messages.popleft()
            taken.append(message)
            size += len(message)
        self._buffered -= size + _OVERHEAD * len(taken)
        self._resume()
        return taken

    def _raise_end(self) -> None:
        if self._error is not None:
            raise self._error
        handshake = self.transport.close_handshake
        if handshake is None:
            raise InstanceDown("connection lost (no close frame)")
        received, sent = handshake.recv, handshake.sent
        if sent is not None and (received is None or not handshake.recv_then_sent):
            # we closed first: picows found something wrong
            raise InstanceDown(f"closed ({_code(sent.code)}): {_reason(sent.reason)}")
        if received is not None and _code(received.code) in _CLEAN | {0}:  # 0: picows' 1005
            return  # the server ended the stream well
        if received is not None:
            raise InstanceDown(
                f"closed by the server ({_code(received.code)}): {_reason(received.reason)}"
            )
        raise InstanceDown("connection lost (no close frame)")

    def close(self) -> None:
        """Drop the connection (a no-op once it is down)."""
        self._abandoned = True
        if self._ticker is not None:
            self._ticker.cancel()
        transport = self.transport
        if transport is not None and not transport.is_disconnected:
            transport.disconnect(graceful=False)


def _close_code(code: int) -> Any:
    from picows import WSCloseCode

    return WSCloseCode(code)


def _code(code: Any) -> int:
    return int(getattr(code, "value", code))


def _reason(reason: str | None) -> str:
    return (reason or "no reason given")[:200]


@cache
def _listener_class() -> type:
    """picows' listener, passing each callback to its Stream (made once: picows is only
    imported by a collector that reads WebSockets)."""
    import picows

    kinds = (
        picows.WSMsgType.TEXT,
        picows.WSMsgType.BINARY,
        picows.WSMsgType.CONTINUATION,
        picows.WSMsgType.CLOSE,
        picows.WSMsgType.PONG,
    )

    class Listener(picows.WSListener):  # type: ignore[misc]
        def __init__(self, stream: Stream) -> None:
            self.stream = stream

        def on_ws_connected(self, transport: Any) -> None:
            self.stream._connected(transport)
            # What ended the connection on picows' side is raised by wait_disconnected(); the
            # stream says it itself (_raise_end), so it is only taken, never left unread.
            asyncio.ensure_future(transport.wait_disconnected()).add_done_callback(_taken)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            try:
                self.stream._frame(frame, kinds)
            except Exception as exc:  # pragma: no cover - a bug: end the connection with it
                self.stream._fail(exc)

        def on_ws_disconnected(self, transport: Any) -> None:
            self.stream._disconnected()

        def pause_writing(self) -> None:
            self.stream._write_blocked()

        def resume_writing(self) -> None:
            pass

    return Listener


def _taken(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


def redirected(url: str, location: str, headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Where a redirect from `url` to `location` leads, and the headers to send there: the
    Authorization header only to the same origin (scheme, host, port), as browsers and
    websockets do. InstanceDown for a target that is not ws(s) or http(s), that goes from
    wss to ws (the token, or the posts, would travel in the clear), or cannot be read."""
    try:
        target = urljoin(url, location)
        before, after = urlsplit(url), urlsplit(target)
        scheme = _WS_SCHEMES.get(after.scheme.lower())
        if scheme is None or not after.hostname:
            raise InstanceDown(f"a redirect to something other than a WebSocket: {target[:200]}")
        if before.scheme == "wss" and scheme == "ws":
            raise InstanceDown(f"a redirect from wss to ws refused: {target[:200]}")
        same = (before.scheme, before.hostname, before.port) == (
            scheme,
            after.hostname,
            after.port,
        )
        target = after._replace(scheme=scheme).geturl()
    except ValueError as exc:  # a port out of range, a broken IPv6 address...
        raise InstanceDown(f"a redirect to a bad URL {location[:200]!r}: {exc}") from None
    kept = dict(headers)
    if not same:
        kept = {k: v for k, v in kept.items() if k.lower() != "authorization"}
    return target, kept


async def open_stream(
    url: str,
    headers: Mapping[str, str],
    *,
    connect_timeout: float,
    keepalive: float,
    max_message: int,
    max_buffered: int,
    logger: logging.Logger,
) -> Stream:
    """Connect to `url` (ws:// or wss://) with `headers` (the User-Agent among them),
    following up to `REDIRECTS` redirects (`redirected`). Raises Refused (an HTTP answer other
    than the upgrade), HandshakeFailed, or InstanceDown (the network, a timeout, a bad URL)."""
    sent = dict(headers)
    for _ in range(REDIRECTS + 1):
        try:
            stream = Stream(max_message, max_buffered, keepalive)
            return await _open(url, sent, stream, connect_timeout, logger)
        except Refused as exc:
            location = exc.headers.get("Location")
            if exc.status not in (301, 302, 303, 307, 308) or not location:
                raise
            url, sent = redirected(url, location, sent)
    raise InstanceDown(f"more than {REDIRECTS} redirects")


async def _open(
    url: str, headers: dict[str, str], stream: Stream, timeout: float, logger: logging.Logger
) -> Stream:
    """One connection attempt, for `stream` (a Stream holds one connection)."""
    try:
        import picows
    except ImportError as exc:  # pragma: no cover - the collect extra brings it
        raise MissingDependency("picows", "collect") from exc
    listener = _listener_class()
    try:
        async with asyncio.timeout(timeout):
            await picows.ws_connect(
                lambda: listener(stream),
                url,
                extra_headers=headers,
                websocket_handshake_timeout=timeout,
                enable_auto_ping=False,  # Stream pings itself (_tick)
                max_frame_size=stream.max_message,  # one frame; a fragmented message: Stream counts
                max_redirects=0,  # followed by open_stream
                proxy=None,
                use_aiofastnet=False,  # asyncio's transports and TLS: as fast here
                logger_name=_ConnectionLog(logger, stream),
            )
    except BaseException as exc:
        stream.close()  # a connection made after we gave up is dropped as it comes
        _raise_open_error(exc, picows)
    if stream.transport is None:  # picows returns when the connection ends mid-handshake
        stream.close()
        raise InstanceDown("connection closed during the WebSocket handshake")
    return stream


def _raise_open_error(exc: BaseException, picows: Any) -> NoReturn:
    if isinstance(exc, picows.WSHandshakeError):
        response = exc.response
        if response is not None and int(response.status) != 101:
            body = bytes(exc.raw_body or b"") if hasattr(exc, "raw_body") else b""
            raise Refused(int(response.status), response.headers, body) from None
        # picows reads HTTP/1.1 status lines with a known code and a reason phrase only:
        # `HTTP/1.1 429`, `HTTP/1.1 522 `, `HTTP/1.0 503` are refusals all the same.
        raw = bytes(getattr(exc, "raw_header", None) or b"")
        match = _STATUS_LINE.match(raw)
        if match is not None and match.group(1) != b"101":
            raise Refused(int(match.group(1)), _headers(raw), b"") from None
        raise HandshakeFailed(str(exc)[:200]) from None
    if isinstance(exc, TimeoutError):
        raise InstanceDown("timed out connecting") from None
    if isinstance(exc, (OSError, ValueError, picows.WSError)):  # ValueError: a bad URL
        raise InstanceDown(str(exc)[:200] or type(exc).__name__) from None
    raise exc


def _headers(raw: bytes) -> dict[str, str]:
    """The headers of an HTTP answer picows would not read (names title-cased)."""
    headers: dict[str, str] = {}
    for line in raw.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            key = name.strip().decode("latin-1").title()
            headers[key] = value.strip().decode("latin-1")
    return headers
