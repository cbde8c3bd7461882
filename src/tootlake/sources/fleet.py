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

import orjson

from tootlake.errors import MissingDependency
from tootlake.record import host_of, parse_time
from tootlake.sources import DELETE, EDIT, UPDATE, Event
from tootlake.sources.mastodon import (
    PAGE_LIMIT,
    USER_AGENT,
    AuthRequired,
    Backoff,
    InstanceDown,
    InstanceError,
    InstanceInfo,
    Mode,
    RateLimited,
    SSEParser,
    choose_mode,
    fetch_page,
    id_key,
    max_id,
    parse_ws_frame,
    probe,
    raise_for_status,
    sse_url,
    ws_url,
)
from tootlake.sources.state import CollectorState

__all__ = ["FleetOptions", "FleetSource", "InstanceSpec", "InstanceWorker", "Status"]

log = logging.getLogger(__name__)


class _RedactSecrets(logging.Filter):
    """websockets logs the handshake's headers at DEBUG, Authorization among them."""

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
    probe_concurrency: int = 64
    healthy_after: float = 10.0  # a connection that lived this long resets the backoff
    audit_posts: int = 200  # recent posts per instance re-checked after a reconnect (0: off)


class _Bridge:
    """The one bounded queue between the asyncio loop and the pipeline thread. `offer`
    never blocks (the loop retries); capacity is counted in events."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._items: collections.deque[list[Event]] = collections.deque()
        self._cond = threading.Condition()

    def offer(self, events: list[Event]) -> bool:
        with self._cond:
            if self.size >= self.capacity:
                return False
            self._items.append(events)
            self.size += len(events)
            self._cond.notify()
            return True

    def take(self, timeout: float) -> list[Event] | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
                if not self._items:
                    return None
            events = self._items.popleft()
            self.size -= len(events)
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
        self.stream_high: str | None = None
        self.backfilling = False
        self._seen: set[str] = set()
        self._recent: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._ws_refusals = 0  # WebSocket handshakes refused in a row: 3 = use SSE
        self._not_before = 0.0  # monotonic time before which no REST request goes out
        self.events = 0
        self._emit_lock = asyncio.Lock()
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

    def _fail(self, exc: BaseException) -> float:
        self.errors += 1
        self.last_error = str(exc)
        delay = self.backoff.next()
        level = logging.WARNING if self.status != Status.FAILING else logging.DEBUG
        self._set(Status.FAILING, f"{exc}; retry in {delay:.1f}s", level=level)
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
        self.events += len(events)
        size = self.opts.audit_posts
        if size:
            recent = self._recent
            for event in events:
                if event.status is not None:
                    status_id = str(event.status["id"])
                    recent[status_id] = event.status.get("edited_at") or ""
                    recent.move_to_end(status_id)
                    if len(recent) > size:
                        recent.popitem(last=False)
                elif event.id is not None:
                    recent.pop(event.id, None)
        # In the order they were made: the stream reader, a backfill page and the audit may all
        # wait on a full bridge at once, and an event's ack covers every id below `contiguous`
        # at its making, so a later event must not reach the lake (and ack) first. An asyncio
        # lock is first come, first served, and taken without a pause when free.
        async with self._emit_lock:
            await self.fleet.put(events)

    # -- the life of a worker ---------------------------------------------------------

    async def run(self) -> None:
        while True:
            token = self.spec.token
            rejected = ""  # why the token was refused, when it was
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
                continue
            except AuthRequired as exc:
                await self._wait_for_token(rejected or f"the API needs a token: {exc}")
                continue
            except InstanceError as exc:
                await asyncio.sleep(self._fail(exc))
                continue
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
            return await probe(self.fleet.session, self.spec.url, token)

    async def _wait_for_token(self, reason: str) -> None:
        self.mode = Mode.NEEDS_TOKEN
        self._needs_token(reason)
        await asyncio.sleep(self.opts.recheck)

    def _needs_token(self, reason: str) -> None:
        self._set(
            Status.NEEDS_TOKEN,
            f"{reason}. Give one with --token {self.host}=TOKEN or "
            f"TOOTLAKE_TOKEN_{self.host.upper().replace('.', '_').replace(':', '_')} "
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
            backfill: asyncio.Task[None] | None = None

            def connected() -> None:
                nonlocal backfill
                self._set(Status.STREAMING, self.transport)
                # From here until the backfill caught up, stream events must not move
                # `contiguous`: set synchronously, before any stream event is read.
                self.backfilling = True
                self._seen = set()
                self.stream_high = None
                backfill = asyncio.create_task(self._backfill(info))

            try:
                if self.transport == "websocket":
                    await self._websocket(info, connected)
                else:
                    await self._sse(info, connected)
                raise InstanceDown("the server closed the stream")
            except AuthRequired:
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
                if time.monotonic() - started >= self.opts.healthy_after or self.events > delivered:
                    self.backoff.reset()
                error = exc if isinstance(exc, InstanceError) else InstanceDown(_describe(exc))
                self.reconnects += 1
                await asyncio.sleep(self._fail(error))
            finally:
                if backfill is not None:
                    backfill.cancel()
                    await asyncio.gather(backfill, return_exceptions=True)
                    self.backfilling = False
                    self._seen = set()

    async def _sse(self, info: InstanceInfo, connected: Callable[[], None]) -> None:
        import aiohttp

        headers = {"Accept": "text/event-stream", **_auth(self.spec.token)}
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.opts.connect_timeout,
            sock_read=self.opts.heartbeat_timeout,
        )
        url = sse_url(info, self.opts.timeline)
        try:
            async with self.fleet.session.get(url, headers=headers, timeout=timeout) as resp:
                if resp.status != 200:
                    body = await resp.content.read(4096)
                    raise_for_status(resp.status, resp.headers, body, f"{self.host} SSE stream")
                    raise InstanceDown(f"{self.host} SSE stream: HTTP {resp.status}")
                if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                    raise InstanceDown(f"{self.host}: the stream answer is not text/event-stream")
                connected()
                parser = SSEParser()
                async for chunk in resp.content.iter_any():
                    events = []
                    for name, data in parser.feed(chunk):
                        event = self._stream_event(name, data)
                        if event is not None:
                            events.append(event)
                    if events:
                        await self._emit(events)
        except TimeoutError:
            raise InstanceDown(
                f"{self.host}: no byte for {self.opts.heartbeat_timeout:g}s (heartbeat lost)"
            ) from None
        except aiohttp.ClientError as exc:
            raise InstanceDown(f"{self.host} SSE stream: {_describe(exc)}") from None

    async def _websocket(self, info: InstanceInfo, connected: Callable[[], None]) -> None:
        try:
            from websockets.asyncio.client import connect
            from websockets.exceptions import (
                ConnectionClosedOK,
                InvalidHandshake,
                InvalidStatus,
                WebSocketException,
            )
        except ImportError as exc:  # pragma: no cover - the collect extra brings it
            raise MissingDependency("websockets", "collect") from exc
        url = ws_url(info, self.opts.timeline)
        keepalive = self.opts.heartbeat_timeout / 2
        try:
            async with connect(
                url,
                additional_headers=_auth(self.spec.token),
                user_agent_header=USER_AGENT,
                proxy=None,
                open_timeout=self.opts.connect_timeout,
                ping_interval=keepalive,
                ping_timeout=keepalive,
                close_timeout=2,
                max_size=8 * 1024 * 1024,
                compression=None,
                logger=_ws_log,
            ) as ws:
                self._ws_refusals = 0
                connected()
                while True:
                    try:
                        # bytes: orjson reads UTF-8 itself (invalid UTF-8 is one bad frame)
                        message = await ws.recv(decode=False)
                    except ConnectionClosedOK:  # a clean close ends the stream
                        break
                    event = self._ws_event(message)
                    if event is not None:
                        await self._emit([event])
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = bytes(exc.response.body or b"")
            self._ws_refusals += 1
            if status in (400, 404, 405, 426, 501) or self._ws_refusals >= 3:
                raise _NoWebSocket(f"WebSocket not offered (HTTP {status})") from None
            raise_for_status(status, exc.response.headers, body, f"{self.host} WebSocket")
            raise InstanceDown(
                f"{self.host} WebSocket: HTTP {status} instead of an upgrade"
            ) from None
        except InvalidHandshake as exc:
            self._ws_refusals += 1
            if self._ws_refusals >= 3:
                raise _NoWebSocket(f"WebSocket handshake failed ({exc})") from None
            raise InstanceDown(f"{self.host} WebSocket handshake: {_describe(exc)}") from None
        except WebSocketException as exc:
            raise InstanceDown(f"{self.host} WebSocket: {_describe(exc)}") from None

    def _ws_event(self, message: str | bytes) -> Event | None:
        try:
            frame = parse_ws_frame(message)
        except ValueError as exc:
            self.fleet.bad(f"{self.host}: bad WebSocket frame: {exc}")
            return None
        if frame is None:
            return None
        name, payload = frame
        if isinstance(payload, dict):
            payload = orjson.dumps(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        elif name != DELETE or payload is None:
            return None
        else:
            payload = str(payload).encode()
        return self._stream_event(name, payload)

    def _stream_event(self, name: str, data: bytes) -> Event | None:
        if name == DELETE:
            status_id = data.decode("utf-8", "replace").strip().strip('"')
            if not status_id:
                return None
            return Event(
                DELETE, self.host, id=status_id, where=self.host, ack=self._ack(self.contiguous)
            )
        if name not in (UPDATE, EDIT):
            return None
        try:
            status = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.fleet.bad(f"{self.host}: {name} event is not valid JSON ({exc}); skipped")
            return None
        if not isinstance(status, dict) or "id" not in status:
            self.fleet.bad(f"{self.host}: {name} event without a status id; skipped")
            return None
        status_id = str(status["id"])
        if self.backfilling:
            if name == UPDATE:
                if status_id in self._seen:
                    return None
                self._seen.add(status_id)
            self.stream_high = max_id(self.stream_high, status_id)
        elif name == UPDATE:
            self.contiguous = max_id(self.contiguous, status_id)
        return Event(
            name, self.host, status=status, where=self.host, ack=self._ack(self.contiguous)
        )

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
            self.contiguous = max_id(self.contiguous, self.stream_high)
        finally:
            self.backfilling = False
            self._seen = set()
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
        present: dict[str, dict[str, Any]] = {}
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
                )
            except RateLimited as exc:
                self._not_before = time.monotonic() + exc.retry_after
                continue
            self._not_before = time.monotonic() + page.rate.min_interval()
            if not page.statuses:
                low = None  # reached the end of the timeline: everything older is gone
                break
            for status in page.statuses:
                present[str(status["id"])] = status
            below = low = min((str(s["id"]) for s in page.statuses), key=id_key)
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
            elif (current.get("edited_at") or "") != known[status_id]:
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
                self.fleet.session, info, self.opts.timeline, min_id=cursor, token=token
            )
        finally:
            self._not_before = time.monotonic()
        self._not_before += page.rate.min_interval()
        statuses = sorted(page.statuses, key=lambda s: id_key(s["id"]))
        events = []
        for status in statuses:
            status_id = str(status["id"])
            if self.backfilling:
                if status_id in self._seen:
                    continue
                self._seen.add(status_id)
            events.append(
                Event(UPDATE, self.host, status=status, where=self.host, ack=self._ack(status_id))
            )
        if statuses:
            self.contiguous = max_id(self.contiguous, str(statuses[-1]["id"]))
        await self._emit(events)
        if cursor is None:
            return 0  # a first run starts from the newest page, not from the beginning
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
            self._set(Status.POLLING, reason)
            if got >= PAGE_LIMIT:
                continue  # more is waiting: next page as soon as the budget allows
            interval = poll_interval(interval, got, self.opts.poll_min, self.opts.poll_max)
            await asyncio.sleep(interval)


def poll_interval(previous: float, got: int, low: float, high: float) -> float:
    """The next polling interval: halve it when a page brought posts, grow it by half when
    it came back empty; within [low, high]."""
    interval = previous / 2 if got else previous * 1.5
    return min(high, max(low, interval))


class _NoWebSocket(InstanceError):
    """The streaming server does not speak WebSocket here: use SSE."""


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


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
        self.workers: list[InstanceWorker] = []
        self.bad_count = 0
        self.bad_examples: list[str] = []
        self.newest_created_at = ""  # ISO text of the newest post handed to the pipeline
        self.handed_out = 0
        self._bridge = _Bridge(self.options.bridge_capacity)
        self._loop_done = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: list[BaseException] = []
        self.session: Any = None
        self.probe_slots: asyncio.Semaphore

    # called from the loop
    async def put(self, events: list[Event]) -> None:
        while not self._bridge.offer(events):
            await asyncio.sleep(0.005)

    def bad(self, message: str) -> None:
        self.bad_count += 1
        if len(self.bad_examples) < 20:
            self.bad_examples.append(message)
        log.warning("%s", message)

    # called from the pipeline thread
    def events(self) -> Iterator[Event | None]:
        """Events as they arrive; None when nothing came for a moment (lets the pipeline
        send a partial batch)."""
        self._thread = threading.Thread(target=self._run_loop, name="tootlake-fleet", daemon=True)
        self._thread.start()
        bridge = self._bridge
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
                        created = event.status.get("created_at")
                        if isinstance(created, str) and created > self.newest_created_at:
                            self.newest_created_at = created
                    self.handed_out += 1
                    yield event
        finally:
            self.stop.set()
            self._thread.join(timeout=30)
        if self._failure:
            raise self._failure[0]

    def lag(self) -> float | None:
        """Seconds between now and the creation of the newest post handed out."""
        try:
            newest = parse_time(self.newest_created_at)
        except Exception:
            return None
        return (datetime.now(UTC) - newest).total_seconds() if newest else None

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(worker.status for worker in self.workers)

    def health(self) -> dict[str, dict[str, Any]]:
        return {worker.host: worker.health() for worker in self.workers}

    def _run_loop(self) -> None:
        try:
            asyncio.run(self._main())
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
            tasks = [asyncio.create_task(w.run(), name=f"instance {w.host}") for w in self.workers]
            last_health = time.monotonic()
            try:
                while not self.stop.is_set():
                    await asyncio.sleep(0.1)
                    if time.monotonic() - last_health >= self.health_every:
                        self._save_health()
                        last_health = time.monotonic()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._save_health()

    def _save_health(self) -> None:
        try:
            self.state.save_health(self.health())
        except OSError as exc:
            log.warning("Cannot write the collector health file: %s", exc)
