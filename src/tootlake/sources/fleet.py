"""The collector's source: many Mastodon instances read at once by one asyncio loop.

Each instance has its own worker (`InstanceWorker`) that probes it, picks a way in
(`choose_mode`: stream with a token, else poll the open public timeline, else "needs token"),
and fails, backs off and recovers on its own. Workers hand events to one bounded bridge; the
pipeline's producer thread takes them out through `FleetSource.events()`. When the bridge is
full the workers stop reading their sockets (backpressure reaches the servers through TCP).

Gap-free by construction, per instance:
  * a stream is connected first, then the timeline is paged from the cursor with `min_id`
    until a page comes back empty (backfill); events seen on both paths go out once;
  * `contiguous` is the greatest id below which every status has been handed out. Backfill
    moves it page by page; stream events move it only once the backfill has caught up;
  * every event's ack carries the `contiguous` of the moment it was handed out, so the
    durable cursor (`CollectorState.advance`, called from acks after the sink flushed) can
    never pass a status that is not in the lake yet. A restart backfills from it.

The REST timeline has no deletes and shows only the current version of a post, so what
happened to older posts while a stream was down is found by an audit after the backfill of a
reconnect: the last `audit_posts` posts handed out (a ring per instance) are paged again
(`max_id`); an id that is gone becomes a delete, a newer `edited_at` an edit.

Memory per instance: a few fields plus the audit ring (`audit_posts` ids, about 100 bytes
each); the backfill's seen-set lives only while a backfill runs. Times are `time.monotonic()`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgspec

from tootlake.errors import LakeError, MissingDependency
from tootlake.record import (
    Rejection,
    ValidStatus,
    decode_status,
    decode_stream_status,
    host_of,
    usable_id,
    validate_status,
)
from tootlake.record.status import Status as StreamStatus
from tootlake.sources import DELETE, EDIT, UPDATE, Event, reject_event
from tootlake.sources.gather import GatheringSelector
from tootlake.sources.mastodon import (
    ERROR_BODY,
    MAX_BODY,
    MAX_SSE_EVENT,
    MAX_SSE_LINE,
    MAX_WS_MESSAGE,
    PAGE_LIMIT,
    USER_AGENT,
    AuthRequired,
    Backoff,
    InstanceDown,
    InstanceError,
    InstanceInfo,
    Mended,
    Mode,
    RateLimited,
    SSEParser,
    TokenRefused,
    TooLarge,
    advance,
    choose_mode,
    fetch_page,
    id_key,
    parse_ws_frame,
    probe,
    raise_for_status,
    read_head,
    sse_url,
    token_refusal,
    ws_status,
    ws_url,
)
from tootlake.sources.state import CollectorState
from tootlake.sources.websocket import HandshakeFailed, Refused, open_stream

__all__ = ["FleetOptions", "FleetSource", "InstanceSpec", "InstanceWorker", "Status"]

log = logging.getLogger(__name__)
SEEN_LIMIT = 100_000  # ids a backfill remembers to meet the stream (about 10 MB)
# ...and keeps for this many seconds after it caught up: the stream's copy of a post on its
# last pages may be read after them (the loop reads in gathers; a full bridge pauses reading)
SEEN_GRACE = 5.0
# The pipeline thread takes the bridge's events together; when fewer than _FEW wait after a
# take it sleeps _GATHER seconds before the next (5,000 posts/s: ~30 a take instead of one).
_FEW = 32
_GATHER = 0.005
_TAKE_EVENTS = 256  # events one take hands over at most (beyond the first offer's)...
_TAKE_BYTES = 1024 * 1024  # ...and their bytes
_WS_BATCH = 256  # WebSocket messages handed to the bridge together at most...
_WS_BATCH_BYTES = 1024 * 1024  # ...and their bytes
REJECTS_REMEMBERED = 1_000  # a worker's recent timeline rejects, kept once each


class _RedactSecrets(logging.Filter):
    """picows logs the upgrade request at DEBUG, Authorization among its headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "authorization" in text.lower() or "bearer" in text.lower():
            record.msg, record.args = "%s", (text.split(":", 1)[0] + ": ***",)
        return True


_ws_log = logging.getLogger("tootlake.sources.websocket")
_ws_log.addFilter(_RedactSecrets())


class Status:
    """Where a worker is now (the progress line counts these)."""

    STARTING = "starting"
    STREAMING = "streaming"
    POLLING = "polling"
    FAILING = "failing"
    NEEDS_TOKEN = "needs token"


@dataclass(frozen=True)
class InstanceSpec:
    url: str  # base URL, normalized
    token: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return host_of(self.url) or self.url


@dataclass(frozen=True)
class FleetOptions:
    timeline: str = "public"
    stream: str = "auto"  # auto: WebSocket, SSE where WebSocket is not offered | websocket | sse
    heartbeat_timeout: float = 45.0  # no byte (SSE) / no pong (WebSocket) for this long = dead
    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    poll_min: float = 3.0  # paging budget of Mastodon: 300 requests / 15 min
    poll_max: float = 60.0
    recheck: float = 1800.0  # re-probe an instance that needs a token this often
    bridge_capacity: int = 5_000  # events waiting for the pipeline, all instances together
    bridge_bytes: int = 32 * 1024 * 1024  # ...and their bytes: a status may be 1 MiB
    probe_concurrency: int = 64
    healthy_after: float = 10.0  # a connection that lived this long resets the backoff
    audit_posts: int = 200  # recent posts per instance re-checked after a reconnect (0: off)
    # Size limits per connection (bytes): beyond one, the connection is dropped (backoff).
    max_body: int = MAX_BODY  # a REST answer or instance document
    max_sse_line: int = MAX_SSE_LINE  # one SSE line
    max_sse_event: int = MAX_SSE_EVENT  # the data lines of one SSE event
    max_ws_message: int = MAX_WS_MESSAGE  # one WebSocket message
    # Seconds the loop lets the servers' messages gather between two reads while it keeps up
    # (`tootlake.sources.gather`; 0: read each as it comes; at most 1).
    gather: float = 0.02


class _Bridge:
    """The one bounded queue between the asyncio loop and the pipeline thread. `offer`
    never blocks (the loop retries); capacity is counted in events.

    `take` hands over what is queued together, up to `_TAKE_EVENTS` events or `_TAKE_BYTES`
    (and at least one offer): a WebSocket stream offers its events one by one, and waking the
    pipeline thread for each (a futex wake and a GIL hand-over per event) cost more CPU than
    building the post. The cap keeps what is taken but not yet recorded small beside the
    bridge's own bounds."""

    def __init__(self, capacity: int, max_bytes: int) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.size = 0
        self.bytes = 0
        self._items: collections.deque[tuple[list[Event], int]] = collections.deque()
        self._cond = threading.Condition()
        self._waiting = False  # the pipeline thread waits in take(): wake it

    def offer(self, events: list[Event]) -> bool:
        size = sum(event.size for event in events)
        with self._cond:
            if not self.has_room():
                return False
            self._items.append((events, size))
            self.size += len(events)
            self.bytes += size
            if self._waiting:
                self._cond.notify()
            return True

    def has_room(self) -> bool:
        return self.size < self.capacity and self.bytes < self.max_bytes

    def take(self, timeout: float) -> list[Event] | None:
        """The events queued first (in order), waiting up to `timeout` for one; None if none
        came."""
        with self._cond:
            items = self._items
            if not items:
                self._waiting = True
                try:
                    self._cond.wait(timeout)
                finally:
                    self._waiting = False
                if not items:
                    return None
            events, taken = items.popleft()
            if items and len(events) < _TAKE_EVENTS and taken < _TAKE_BYTES:
                events = list(events)
                while items and len(events) < _TAKE_EVENTS and taken < _TAKE_BYTES:
                    more, size = items.popleft()
                    events += more
                    taken += size
            self.size -= len(events)
            self.bytes -= taken
            return events

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class InstanceWorker:
    """Reads one instance for as long as the fleet runs."""

    def __init__(self, fleet: FleetSource, spec: InstanceSpec) -> None:
        self.fleet = fleet
        self.spec = spec
        self.host = spec.host
        self.opts = fleet.options
        self.status = Status.STARTING
        self.mode = ""
        self.detail = ""
        self.since = time.time()
        self.transport = "websocket" if self.opts.stream in ("auto", "websocket") else "sse"
        self.info: InstanceInfo | None = None
        self.backoff = Backoff(self.opts.backoff_base, self.opts.backoff_cap)
        self.contiguous: str | None = fleet.state.cursor(self.host)
        # the greatest id the stream handed out during the backfill, per kind (numbers or not)
        # and how many of each: the cursor's kind, or on a first run the usual one, wins
        self._stream_highs: dict[bool, str | None] = {True: None, False: None}
        self._stream_ids: collections.Counter[bool] = collections.Counter()
        self.backfilling = False
        self._seen: dict[str, None] = {}  # ids handed out during a backfill (insertion order)
        self._handing: str | None = None  # `contiguous` once the events made are handed out
        self._rejected: dict[int, None] = {}  # recent rejects of timeline pages (hashes)
        self._cut = False  # an event of this connection was cancelled before it got in
        self._recent: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._ws_refusals = 0  # WebSocket handshakes refused in a row: 3 = use SSE
        self._not_before = 0.0  # monotonic time before which no REST request goes out
        self.events = 0
        self.reached = False  # a stream connected or a page was read at some point of the run
        self._emit_lock = asyncio.Lock()
        self._emitting = 0  # emits waiting for the lock or the bridge (_emit_now waits too)
        self.errors = 0
        self.reconnects = 0
        self.last_error = ""

    # -- bookkeeping ------------------------------------------------------------------

    def _set(self, status: str, detail: str = "", *, level: int = logging.INFO) -> None:
        if status != self.status or detail != self.detail:
            if status != self.status:
                self.since = time.time()
            self.status, self.detail = status, detail
            log.log(
                level,
                "%s: %s%s",
                self.host,
                status,
                f" ({detail})" if detail else "",
                extra={"context": {"instance": self.host, "status": status}},
            )

    def _fail(self, exc: BaseException, *, unexpected: bool = False) -> float:
        """Count a failure, show it (`failing`, with the reason) and return the backoff to
        wait. A failure is logged at WARNING when the worker starts failing, and each
        `unexpected` one (not an InstanceError: a bug or input nothing foresaw) always, its
        traceback at DEBUG."""
        self.errors += 1
        reason = (str(exc) or type(exc).__name__)[:500]
        if unexpected:
            reason = f"unexpected {type(exc).__name__}: {reason}"
        self.last_error = reason
        delay = self.backoff.next()
        level = logging.WARNING if self.status != Status.FAILING else logging.DEBUG
        if unexpected:
            log.warning(
                "%s: %s; the worker restarts in %.1fs",
                self.host,
                reason,
                delay,
                extra={"context": {"instance": self.host, "status": Status.FAILING}},
            )
            log.debug("%s: where the unexpected error came from", self.host, exc_info=exc)
            level = logging.DEBUG  # said just now
        self._set(Status.FAILING, f"{reason}; retry in {delay:.1f}s", level=level)
        return delay

    def health(self) -> dict[str, Any]:
        return {
            "url": self.spec.url,
            "mode": self.mode,
            "status": self.status,
            "detail": self.detail,
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds"),
            "version": self.info.version if self.info else None,
            "transport": self.transport if self.mode == Mode.STREAM else None,
            "events": self.events,
            "reached": self.reached,
            "errors": self.errors,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "cursor": self.fleet.state.cursor(self.host),
        }

    def _ack(self, status_id: str | None) -> Callable[[], None] | None:
        return partial(self.fleet.state.advance, self.host, status_id) if status_id else None

    async def _emit(self, events: list[Event]) -> None:
        if not events:
            return
        # In the order they were made: the stream reader, a backfill page and the audit may all
        # wait on a full bridge at once, and an event's ack covers every id below `contiguous`
        # at its making, so a later event must not reach the lake (and ack) first. An asyncio
        # lock is first come, first served, and taken without a pause when free.
        self._emitting += 1
        try:
            async with self._emit_lock:
                if self._cut:  # an earlier event of this connection never got in: these wait
                    raise asyncio.CancelledError()
                try:
                    await self.fleet.put(events)
                except BaseException:
                    # Cancelled while waiting (a stop, or the connection ending): the events
                    # queued behind these may ack ids above them, so none may follow them in.
                    self._cut = True
                    raise
        finally:
            self._emitting -= 1
        self._emitted(events)

    def _emit_now(self, messages: list[bytes]) -> bool:
        """The WebSocket messages of one read, made into events and handed over at once, from
        the socket's callback (no task woken, no await: 2 to 4 us less per read); False, with
        nothing made, when they must wait (an emit waits before them, or the bridge is full):
        the stream's reader then hands them over in order (`_websocket`)."""
        if self._emitting or self._cut or not self.fleet.has_room():
            return False
        events = self._ws_events(messages)
        if events:
            # (cannot fail: the bridge had room, and only this thread adds to it)
            if not self.fleet.offer(self._acked(events)):  # pragma: no cover - see above
                raise AssertionError("the bridge refused events after saying it had room")
            self._emitted(events)
        self._handed()
        return True

    def _acked(self, events: list[Event]) -> list[Event]:
        """Stream events handed over together, the last one given the ack of them all.

        `_stream_event` makes its events without acks. A stream event's ack would move the
        cursor to where it was at its making, which never goes down; so the last one's covers
        the others, and it is made once per read (a batch of the lake that holds only some of
        them acks nothing: the cursor lags, never leads). Called right after the events were
        made, with no await between: the cursor is still where the last one left it."""
        if events:
            events[-1].ack = self._ack(self._cursor())
        return events

    def _emitted(self, events: list[Event]) -> None:
        """Events in the bridge: counted, and remembered for the audit after a reconnect."""
        self.events += len(events)
        size = self.opts.audit_posts
        if size:
            recent = self._recent
            for event in events:
                status = event.status
                if status is not None:
                    status_id = status.id
                    recent[status_id] = status.edited_text
                    recent.move_to_end(status_id)
                elif event.id is not None:
                    recent.pop(event.id, None)
            while len(recent) > size:  # (trimmed once per read)
                recent.popitem(last=False)

    # -- the life of a worker ---------------------------------------------------------

    async def run(self) -> None:
        """Read the instance until cancelled. Any exception that is not an InstanceError (a
        bug, or input nothing foresaw) costs this worker one backoff and a restart, never
        the fleet; cancellation (a BaseException) still stops it."""
        while True:
            try:
                await self._run_once()
            except Exception as exc:
                await asyncio.sleep(self._fail(exc, unexpected=True))

    async def _run_once(self) -> None:
        """Probe, choose a mode and read in it until that ends; InstanceErrors are handled
        (backoff, needs token) here."""
        token = self.spec.token
        rejected = ""  # why the token was refused, when it was
        self._cut = False  # a new start: nothing of the last one is waiting
        try:
            try:
                self.info = await self._probe(token)
            except AuthRequired as exc:
                if not token:
                    raise
                rejected = f"token rejected: {exc}"
                token = None
                self.info = await self._probe(None)  # what it allows without one
        except RateLimited as exc:
            await asyncio.sleep(max(exc.retry_after, self._fail(exc)))
            return
        except AuthRequired as exc:
            await self._wait_for_token(rejected or f"the API needs a token: {exc}")
            return
        except InstanceError as exc:
            await asyncio.sleep(self._fail(exc))
            return
        mode, reason = choose_mode(self.info, self.opts.timeline, bool(token))
        if rejected:
            reason = f"{rejected}; {reason}"
        try:
            if mode == Mode.STREAM:
                self.mode = Mode.STREAM
                await self._stream_forever(self.info, reason)
            elif mode == Mode.POLL:
                self.mode = Mode.POLL
                await self._poll_forever(self.info, reason)
            else:
                await self._wait_for_token(reason)
        except AuthRequired as exc:
            if self.mode == Mode.STREAM and self.info.feed_access(self.opts.timeline) in (
                "public",
                "unknown",
            ):
                self.mode = Mode.POLL
                try:
                    await self._poll_forever(
                        self.info, f"token rejected ({exc}); polling the open timeline"
                    )
                except AuthRequired as again:
                    exc = again
            await self._wait_for_token(str(exc))
        except InstanceError as exc:
            await asyncio.sleep(self._fail(exc))

    async def _probe(self, token: str | None) -> InstanceInfo:
        async with self.fleet.probe_slots:
            return await probe(
                self.fleet.session, self.spec.url, token, max_body=self.opts.max_body
            )

    async def _wait_for_token(self, reason: str) -> None:
        self.mode = Mode.NEEDS_TOKEN
        self._needs_token(reason)
        await asyncio.sleep(self.opts.recheck)

    def _needs_token(self, reason: str) -> None:
        # (a token that was given and refused needs replacing, not giving)
        give = "Replace it" if self.spec.token else "Give one"
        self._set(
            Status.NEEDS_TOKEN,
            # (a file or the environment: --token would put it where local users read it)
            f"{reason}. {give} in --token-file FILE (a line {self.host}=TOKEN, chmod 600) "
            f"or TOOTLAKE_TOKEN_{self.host.upper().replace('.', '_').replace(':', '_')} "
            "(see docs/collect.md)",
            level=logging.WARNING,
        )

    # -- streaming ----------------------------------------------------------------------

    async def _stream_forever(self, info: InstanceInfo, reason: str) -> None:
        log.info(
            "%s: stream (%s, %s)",
            self.host,
            self.transport,
            reason,
            extra={"context": {"instance": self.host, "mode": "stream"}},
        )
        while True:
            started = time.monotonic()
            delivered = self.events
            try:
                await self._stream_once(info)
            except (AuthRequired, TokenRefused):
                raise
            except RateLimited as exc:
                self.reconnects += 1
                await asyncio.sleep(max(exc.retry_after, self._fail(exc)))
            except _NoWebSocket as exc:
                if self.opts.stream == "websocket":
                    raise InstanceDown(str(exc)) from None
                log.info("%s: %s; using SSE", self.host, exc)
                self.transport = "sse"
                continue
            except (InstanceError, OSError, TimeoutError) as exc:
                lived = time.monotonic() - started >= self.opts.healthy_after
                # a server that overflows a size limit backs off further even if it sent
                # posts first (each reconnect costs us up to that limit in memory)
                if (lived or self.events > delivered) and not isinstance(exc, TooLarge):
                    self.backoff.reset()
                error = exc if isinstance(exc, InstanceError) else InstanceDown(_describe(exc))
                self.reconnects += 1
                await asyncio.sleep(self._fail(error))

    async def _stream_once(self, info: InstanceInfo) -> None:
        """One connection: the stream read in a task of its own, the backfill beside it
        from the moment it is connected. Ends with an exception, the backfill's too: an
        unexpected one must not die silently (leaving the stream unable to move
        `contiguous`), so it ends the connection."""
        backfill: asyncio.Task[None] | None = None
        reader: asyncio.Task[None] | None = None
        broken: list[BaseException] = []  # what ended the backfill, if it failed

        def backfill_done(task: asyncio.Task[None]) -> None:
            error = None if task.cancelled() else task.exception()
            if error is not None and reader is not None:
                broken.append(error)
                reader.cancel()

        def connected() -> None:
            nonlocal backfill
            self.reached = True
            self._set(Status.STREAMING, self.transport)
            # From here until the backfill caught up, stream events must not move
            # `contiguous`: set synchronously, before any stream event is read.
            self.backfilling = True
            self._seen = {}
            self._stream_highs = {True: None, False: None}
            self._stream_ids = collections.Counter()
            self._handing = None
            self._cut = False
            backfill = asyncio.create_task(self._backfill(info))
            backfill.add_done_callback(backfill_done)

        try:
            read = self._websocket if self.transport == "websocket" else self._sse
            reader = asyncio.create_task(read(info, connected))
            try:
                await reader
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not broken or (current is not None and current.cancelling()):
                    raise  # the worker is being stopped
                raise broken[0] from None
            raise InstanceDown("the server closed the stream")
        finally:
            if reader is not None and not reader.done():
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            if backfill is not None:
                backfill.cancel()
                await asyncio.gather(backfill, return_exceptions=True)
                self.backfilling = False
                self._seen = {}

    async def _sse(self, info: InstanceInfo, connected: Callable[[], None]) -> None:
        import aiohttp

        headers = {"Accept": "text/event-stream", **_auth(self.spec.token, info)}
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.opts.connect_timeout,
            sock_read=self.opts.heartbeat_timeout,
        )
        url = sse_url(info, self.opts.timeline)
        try:
            async with self.fleet.session.get(url, headers=headers, timeout=timeout) as resp:
                if resp.status != 200:
                    body = await read_head(resp)
                    raise_for_status(resp.status, resp.headers, body, f"{self.host} SSE stream")
                    raise InstanceDown(f"{self.host} SSE stream: HTTP {resp.status}")
                if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                    raise InstanceDown(f"{self.host}: the stream answer is not text/event-stream")
                connected()
                parser = SSEParser(self.opts.max_sse_line, self.opts.max_sse_event)
                async for chunk in resp.content.iter_any():
                    events = []
                    for name, data in parser.feed(chunk):
                        event = self._stream_event(name, data)
                        if event is not None:
                            events.append(event)
                    if events:
                        await self._emit(self._acked(events))
                        self._handed()
        except TooLarge as exc:
            raise TooLarge(f"{self.host} SSE stream: {exc}; connection dropped") from None
        except TimeoutError:
            raise InstanceDown(
                f"{self.host}: no byte for {self.opts.heartbeat_timeout:g}s (heartbeat lost)"
            ) from None
        except aiohttp.ClientError as exc:
            raise InstanceDown(f"{self.host} SSE stream: {_describe(exc)}") from None

    async def _websocket(self, info: InstanceInfo, connected: Callable[[], None]) -> None:
        url = ws_url(info, self.opts.timeline)
        headers = {**_auth(self.spec.token, info), "User-Agent": USER_AGENT}
        try:
            stream = await open_stream(
                url,
                headers,
                connect_timeout=self.opts.connect_timeout,
                keepalive=self.opts.heartbeat_timeout / 2,
                max_message=self.opts.max_ws_message,
                # what arrived and was not read yet: beyond it, the socket is not read
                max_buffered=max(2 * _WS_BATCH_BYTES, 2 * self.opts.max_ws_message),
                logger=_ws_log,
            )
        except Refused as exc:
            status = exc.status
            self._ws_refusals += 1
            if status in (400, 404, 405, 426, 501) or self._ws_refusals >= 3:
                raise _NoWebSocket(f"WebSocket not offered (HTTP {status})") from None
            raise_for_status(status, exc.headers, exc.body[:ERROR_BODY], f"{self.host} WebSocket")
            raise InstanceDown(
                f"{self.host} WebSocket: HTTP {status} instead of an upgrade"
            ) from None
        except HandshakeFailed as exc:
            self._ws_refusals += 1
            if self._ws_refusals >= 3:
                raise _NoWebSocket(f"WebSocket handshake failed ({exc})") from None
            raise InstanceDown(f"{self.host} WebSocket handshake: {exc}") from None
        except InstanceDown as exc:
            raise InstanceDown(f"{self.host} WebSocket: {exc}") from None
        try:
            self._ws_refusals = 0
            connected()
            stream.deliver(self._emit_now, _WS_BATCH, _WS_BATCH_BYTES)
            while True:
                # What arrived together goes to the bridge together (a server sends in
                # bursts): handing each message over alone cost as much CPU as decoding it.
                # Mostly that happens in the socket's callback (_emit_now); here only what
                # had to wait (a full bridge, an emit before it), and the stream's end.
                try:
                    messages = await stream.receive(_WS_BATCH, _WS_BATCH_BYTES)
                except TooLarge as exc:
                    raise TooLarge(f"{self.host} WebSocket: {exc}") from None
                except InstanceDown as exc:
                    raise InstanceDown(f"{self.host} WebSocket: {exc}") from None
                if not messages:  # the server ended the stream well
                    break
                await self._emit(self._acked(self._ws_events(messages)))
                self._handed()
        finally:
            stream.close()

    def _ws_events(self, messages: list[bytes]) -> list[Event]:
        events = []
        status_event = self._status_event
        native = self.fleet.native_statuses
        for message in messages:
            # the usual update or edit: frame and status read natively in one call
            fast: Any = ws_status(message) if native else None  # (its `event`: the frame's)
            event = status_event(fast.event, fast) if fast is not None else self._ws_event(message)
            if event is not None:
                events.append(event)
        return events

    def _ws_event(self, message: str | bytes) -> Event | None:
        """The event of a message `ws_status` did not read (or was not asked to): its status
        is msgspec's to read, not the native reader's again."""
        try:
            frame = parse_ws_frame(message)
        except ValueError as exc:
            return self._stream_reject(
                Rejection(f"bad WebSocket frame: {exc}"), message, "websocket"
            )
        if frame is None:
            return None
        name, payload = frame
        if payload is None:
            return None
        return self._stream_event(name, payload, "websocket", native=False)

    def _reject(
        self, rejection: Rejection, raw: bytes | str, source: str, ack_id: str | None = None
    ) -> Event:
        """What could not become a post goes to the rejects table; its ack still moves the
        cursor, so a restart does not meet the same poison again."""
        event = self._stream_reject(rejection, raw, source)
        event.ack = self._ack(ack_id or self._cursor())
        return event

    def _stream_reject(self, rejection: Rejection, raw: bytes | str, source: str) -> Event:
        """The reject event of a stream message, without an ack: the read's last event is
        given the ack of them all (`_acked`)."""
        return reject_event(
            rejection, raw, source=source, observed_on=self.host, where=f"{self.host} {source}"
        )

    @property
    def stream_high(self) -> str | None:
        """The greatest id the stream handed out during the backfill, of the cursor's kind
        (on a first run, of the kind most of them have)."""
        if self.contiguous is not None:
            kind = self.contiguous.isdigit()
        else:
            kind = self._stream_ids[True] >= self._stream_ids[False]
        return self._stream_highs[kind]

    @stream_high.setter
    def stream_high(self, value: str | None) -> None:
        self._stream_highs = {True: None, False: None}
        self._stream_ids = collections.Counter()
        if value is not None:
            self._stream_highs[value.isdigit()] = value
            self._stream_ids[value.isdigit()] = 1

    def _cursor(self) -> str | None:
        """`contiguous` as it will be once the stream events made so far are handed out."""
        return self._handing or self.contiguous

    def _handed(self) -> None:
        """The stream events made so far are in the bridge: `contiguous` may move past them.
        (Moved only now: a connection ended while the bridge is full must not skip them.)"""
        if self._handing is not None and not self.backfilling:
            self.contiguous = advance(self.contiguous, self._handing)
        self._handing = None

    def _stream_event(
        self, name: str, data: bytes, source: str = "sse", *, native: bool = True
    ) -> Event | None:
        """The event of one stream message (None for one to skip), without an ack: the
        caller gives the read's last event the ack of them all (`_acked`)."""
        if name == DELETE:
            status_id = data.decode("utf-8", "replace").strip().strip('"')
            if not status_id or len(status_id) > 256:
                return self._stream_reject(
                    Rejection("delete event without a status id"), data, source
                )
            return Event(DELETE, self.host, id=status_id, where=self.host)
        if name not in (UPDATE, EDIT):
            return None
        native = native and self.fleet.native_statuses
        status = decode_stream_status(data) if native else decode_status(data)
        if isinstance(status, Rejection):
            if self.backfilling:  # a page showing it too must not keep it twice
                poison = _raw_id(data)
                if poison is not None:
                    self._see(poison)
            return self._stream_reject(status, data, source)
        if (
            isinstance(data, Mended)  # (so a ValidStatus: FastStatus reads exact bytes only)
            and isinstance(status, ValidStatus)
            and "surrogates" not in status.coerced
        ):
            status.coerced += ("surrogates",)  # mended in the frame, before decode_status
        return self._status_event(name, status)

    def _status_event(self, name: str, status: StreamStatus) -> Event | None:
        """The event of a stream's update or edit (`name`), validated, without an ack."""
        status_id = status.id
        if self.backfilling:
            if name == UPDATE:
                if status_id in self._seen:
                    return None
                self._see(status_id)
            kind = status_id.isdigit()
            self._stream_ids[kind] += 1
            self._stream_highs[kind] = advance(self._stream_highs[kind], status_id)
        elif name == UPDATE:
            if status_id in self._seen:  # the backfill that just caught up handed it out
                return None
            self._handing = advance(self._handing or self.contiguous, status_id)  # (_cursor)
        return Event(name, self.host, status=status, where=self.host)

    def _forget(self, seen: dict[str, None]) -> None:
        """The grace of a backfill's ids is over: free them, unless a new connection's
        backfill has its own by now."""
        if self._seen is seen:
            self._seen = {}

    def _see(self, status_id: str) -> None:
        """Remember an id handed out during the backfill (stream and pages meet there), the
        oldest forgotten beyond `SEEN_LIMIT`: a backfill that never catches up (a flood)
        must not grow memory; a forgotten id can only come twice, which the lake absorbs."""
        seen = self._seen
        seen[status_id] = None
        if len(seen) > SEEN_LIMIT:
            del seen[next(iter(seen))]

    async def _backfill(self, info: InstanceInfo) -> None:
        """Page the timeline from `contiguous` until an empty page, while the stream runs."""
        backoff = Backoff(self.opts.backoff_base, self.opts.backoff_cap)
        try:
            while True:
                try:
                    more = await self._page(info, self.spec.token)
                except RateLimited as exc:
                    self._not_before = time.monotonic() + exc.retry_after
                    continue
                except AuthRequired as exc:
                    log.warning(
                        "%s: backfill refused (%s): a reconnect may leave a gap", self.host, exc
                    )
                    break
                except InstanceDown as exc:
                    delay = backoff.next()
                    log.info("%s: backfill failed (%s); retry in %.1fs", self.host, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                if not more:
                    break
            self.contiguous = advance(self.contiguous, self.stream_high)
            self.stream_high = None
        finally:
            self.backfilling = False
            # kept a while for the stream's late copies, then freed (a quiet instance's too)
            seen = self._seen
            asyncio.get_running_loop().call_later(SEEN_GRACE, self._forget, seen)
        if self.reconnects and self._recent:
            try:
                await self._audit(info)
            except InstanceError as exc:
                log.info("%s: audit after the reconnect failed (%s)", self.host, exc)

    async def _audit(self, info: InstanceInfo) -> None:
        """Page back over the recently handed-out posts: deletes and edits missed while the
        stream was down become events."""
        known = dict(self._recent)
        ids = sorted(known, key=id_key)
        if not ids[-1].isdigit():
            return
        below = str(int(ids[-1]) + 1)
        present: dict[str, ValidStatus] = {}
        low = None
        for _ in range(len(ids) // PAGE_LIMIT + 2):
            wait = self._not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                page = await fetch_page(
                    self.fleet.session,
                    info,
                    self.opts.timeline,
                    min_id=None,
                    max_id=below,
                    token=self.spec.token,
                    max_body=self.opts.max_body,
                )
            except RateLimited as exc:
                self._not_before = time.monotonic() + exc.retry_after
                continue
            self._not_before = time.monotonic() + page.rate.min_interval()
            if not page.statuses:
                if not present:
                    return  # not one status below the newest we handed out: say nothing
                low = None  # reached the end of the timeline: everything older is gone
                break
            validated = _validated(page.statuses)
            for _, status, _ in validated:
                if isinstance(status, ValidStatus):
                    present[status.id] = status
            ids_here = [i for i, _, _ in validated if i is not None]
            if not ids_here:
                return  # a page of nothing usable: say nothing rather than guess
            below = low = min(ids_here, key=id_key)
            if id_key(low) <= id_key(ids[0]):
                break
        else:
            return  # never got down to the oldest: say nothing rather than guess
        events = []
        ack = self._ack(self.contiguous)
        for status_id in ids:
            if low is not None and id_key(status_id) < id_key(low):
                continue
            current = present.get(status_id)
            if current is None:
                events.append(Event(DELETE, self.host, id=status_id, where=self.host, ack=ack))
            elif (current.data.edited_at or "") != known[status_id]:
                events.append(Event(EDIT, self.host, status=current, where=self.host, ack=ack))
        if events:
            log.info(
                "%s: the audit after a reconnect found %d deletes or edits missed",
                self.host,
                len(events),
            )
            await self._emit(events)

    # -- polling ------------------------------------------------------------------------

    async def _page(self, info: InstanceInfo, token: str | None) -> int:
        """Fetch the page above `contiguous` (the newest page without a cursor), hand its
        statuses out oldest first, and return how many more requests are worth making now:
        0 when caught up, else the page size."""
        wait = self._not_before - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        cursor = self.contiguous
        try:
            page = await fetch_page(
                self.fleet.session,
                info,
                self.opts.timeline,
                min_id=cursor,
                token=token,
                max_body=self.opts.max_body,
            )
        finally:
            self._not_before = time.monotonic()
        self._not_before += page.rate.min_interval()
        # oldest first; what has no usable id at all (rejected) goes last
        statuses = sorted(
            _validated(page.statuses), key=lambda c: id_key(c[0]) if c[0] else (2, 0, "")
        )
        events = []
        handed: list[str] = []
        fresh: list[int] = []  # rejects not kept before
        for status_id, status, item in statuses:
            if status_id is not None:
                handed.append(status_id)  # (one the stream handed out moves the cursor too)
                if self.backfilling:
                    if status_id in self._seen:
                        continue
                    self._see(status_id)
            if isinstance(status, Rejection):
                # The newest page may show the same poison poll after poll (it has no id to
                # move past): kept once.
                key = hash(item)
                if key not in self._rejected:
                    fresh.append(key)
                    events.append(self._reject(status, item, "rest", ack_id=status_id))
                continue
            events.append(
                Event(UPDATE, self.host, status=status, where=self.host, ack=self._ack(status_id))
            )
        await self._emit(events)
        # only now: a page cut off while the bridge is full is fetched again, not skipped
        self.contiguous = advance(self.contiguous, *handed)
        for key in fresh:
            self._rejected[key] = None
            if len(self._rejected) > REJECTS_REMEMBERED:
                del self._rejected[next(iter(self._rejected))]
        if cursor is None or self.contiguous == cursor:
            return 0  # a first run starts from the newest page; a page that moved nothing
        return len(statuses)

    async def _poll_forever(self, info: InstanceInfo, reason: str) -> None:
        log.info(
            "%s: poll (%s)",
            self.host,
            reason,
            extra={"context": {"instance": self.host, "mode": "poll"}},
        )
        interval = self.opts.poll_min * 2
        while True:
            try:
                got = await self._page(info, None)
            except RateLimited as exc:
                self._not_before = time.monotonic() + exc.retry_after
                self._set(Status.POLLING, f"rate limited: waiting {exc.retry_after:.0f}s")
                continue
            except InstanceDown as exc:
                await asyncio.sleep(self._fail(exc))
                continue
            self.backoff.reset()
            self.reached = True
            self._set(Status.POLLING, reason)
            if got >= PAGE_LIMIT:
                continue  # more is waiting: next page as soon as the budget allows
            interval = poll_interval(interval, got, self.opts.poll_min, self.opts.poll_max)
            await asyncio.sleep(interval)


def _validated(items: list[Any]) -> list[tuple[str | None, ValidStatus | Rejection, bytes]]:
    """(id, status or rejection, its JSON bytes) for each item of a timeline page. The id of
    a rejected item is kept when it has a usable one, so the cursor can move past it."""
    out: list[tuple[str | None, ValidStatus | Rejection, bytes]] = []
    for item in items:
        if isinstance(item, bytes):
            raw, status = item, decode_status(item)
        else:  # an already decoded status (a library caller's page)
            status = validate_status(item)
            try:
                raw = msgspec.json.encode(item)
            except (TypeError, ValueError, RecursionError, OverflowError):
                raw = repr(item).encode("utf-8", "replace")
        if isinstance(status, ValidStatus):
            out.append((status.id, status, raw))
        else:
            out.append((_raw_id(raw), status, raw))
    return out


class _Ident(msgspec.Struct):
    id: msgspec.Raw = msgspec.Raw(b"")


def _raw_id(raw: bytes) -> str | None:
    """The usable id of a status that was rejected, if it has one."""
    try:
        found = bytes(msgspec.json.decode(raw, type=_Ident).id)
        return usable_id(msgspec.json.decode(found)) if found else None
    except (msgspec.MsgspecError, RecursionError):
        return None


def poll_interval(previous: float, got: int, low: float, high: float) -> float:
    """The next polling interval: halve it when a page brought posts, grow it by half when
    it came back empty; within [low, high]."""
    interval = previous / 2 if got else previous * 1.5
    return min(high, max(low, interval))


class _NoWebSocket(InstanceError):
    """The streaming server does not speak WebSocket here: use SSE."""


def _auth(token: str | None, info: InstanceInfo) -> dict[str, str]:
    """The Authorization header for the streaming host of `info`; TokenRefused when the
    token may not go to the announced streaming URL (`token_refusal`)."""
    if not token:
        return {}
    if info.streaming_url:
        refusal = token_refusal(info.base_url, info.streaming_url)
        if refusal:
            raise TokenRefused(refusal)
    return {"Authorization": f"Bearer {token}"}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return (str(exc) or type(exc).__name__)[:200]


# ----------------------------------------------------------------------------------------


class FleetSource:
    """Events from many instances; `events()` runs the asyncio loop in a thread of its own
    and ends, after handing out what was already received, once `stop` is set."""

    def __init__(
        self,
        instances: Sequence[InstanceSpec],
        state: CollectorState,
        *,
        options: FleetOptions | None = None,
        stop: threading.Event | None = None,
        health_every: float = 10.0,
    ) -> None:
        self.specs = list({spec.host: spec for spec in instances}.values())
        self.state = state
        self.options = options or FleetOptions()
        self.stop = stop or threading.Event()
        self.health_every = health_every
        # Streamed statuses read natively (`FastStatus`, stage 1 of
        # docs/design/fused-receive.md), for a pipeline that reads them so (into a lake's
        # rows); one that makes Post objects (Kafka, pseudonymised lakes) would decode
        # each again: False there.
        self.native_statuses = True
        self.workers: list[InstanceWorker] = []
        self.newest_created_at: datetime | None = None  # of the newest post handed out
        self.handed_out = 0
        self._bridge = _Bridge(self.options.bridge_capacity, self.options.bridge_bytes)
        self._loop_done = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: list[BaseException] = []
        self.session: Any = None
        self.probe_slots: asyncio.Semaphore

    # called from the loop
    async def put(self, events: list[Event]) -> None:
        while not self._bridge.offer(events):
            await asyncio.sleep(0.005)

    def has_room(self) -> bool:
        """An offer now would be taken (only the loop's thread offers)."""
        return self._bridge.has_room()

    def offer(self, events: list[Event]) -> bool:
        return self._bridge.offer(events)

    # called from the pipeline thread
    def events(self) -> Iterator[Event | None]:
        """Events as they arrive; None when nothing came for a moment (lets the pipeline
        send a partial batch)."""
        self._thread = threading.Thread(target=self._run_loop, name="tootlake-fleet", daemon=True)
        self._thread.start()
        bridge = self._bridge
        newest = self.newest_created_at
        try:
            while True:
                chunk = bridge.take(0.25)
                if chunk is None:
                    if self._loop_done.is_set():
                        break
                    yield None
                    continue
                for event in chunk:
                    if event.status is not None:
                        created = event.status.created_at
                        if newest is None or created > newest:
                            newest = self.newest_created_at = created
                    self.handed_out += 1
                    yield event
                if bridge.size < _FEW:
                    # Few waiting: let a few milliseconds of events gather rather than be
                    # woken for each (the lag grows by as much; a flood never waits here).
                    time.sleep(_GATHER)
        finally:
            self.stop.set()
            self._thread.join(timeout=30)
        if self._failure:
            raise self._failure[0]

    def lag(self) -> float | None:
        """Seconds between now and the creation of the newest post handed out."""
        newest = self.newest_created_at
        return (datetime.now(UTC) - newest).total_seconds() if newest else None

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(worker.status for worker in self.workers)

    def health(self) -> dict[str, dict[str, Any]]:
        return {worker.host: worker.health() for worker in self.workers}

    def _run_loop(self) -> None:
        gap = self.options.gather
        try:
            with asyncio.Runner(
                loop_factory=lambda: asyncio.SelectorEventLoop(GatheringSelector(gap))
            ) as runner:
                runner.run(self._main())
        except BaseException as exc:  # surfaced by events() in the pipeline thread
            self._failure.append(exc)
        finally:
            self._loop_done.set()
            self._bridge.wake()

    async def _main(self) -> None:
        try:
            import aiohttp
        except ImportError as exc:  # pragma: no cover - the collect extra brings it
            raise MissingDependency("aiohttp", "collect") from exc
        opts = self.options
        self.probe_slots = asyncio.Semaphore(opts.probe_concurrency)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(
            total=opts.request_timeout, sock_connect=opts.connect_timeout
        )
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        ) as session:
            self.session = session
            self.workers = [InstanceWorker(self, spec) for spec in self.specs]
            tasks: dict[InstanceWorker, asyncio.Task[None]] = {}

            def start(worker: InstanceWorker) -> None:
                if not self.stop.is_set():
                    tasks[worker] = task = asyncio.create_task(
                        worker.run(), name=f"instance {worker.host}"
                    )
                    task.add_done_callback(partial(ended, worker))

            def ended(worker: InstanceWorker, task: asyncio.Task[None]) -> None:
                # `run` handles every Exception itself; should a worker end anyway while the
                # fleet runs, it is shown, logged and started again after a backoff.
                if task.cancelled() or self.stop.is_set():
                    return
                error = task.exception() or RuntimeError("the worker ended")
                loop.call_later(worker._fail(error, unexpected=True), start, worker)

            loop = asyncio.get_running_loop()
            for worker in self.workers:
                start(worker)
            last_health = time.monotonic()
            try:
                while not self.stop.is_set():
                    await asyncio.sleep(0.1)
                    if time.monotonic() - last_health >= self.health_every:
                        self._save_health()
                        last_health = time.monotonic()
            finally:
                self.stop.set()  # no restart from here on
                for task in tasks.values():
                    task.cancel()
                await asyncio.gather(*tasks.values(), return_exceptions=True)
                self._save_health()

    def _save_health(self) -> None:
        try:
            self.state.save_health(self.health())
        except (OSError, LakeError) as exc:  # informative only: the run goes on
            log.warning("Cannot write the collector health file: %s", exc)
