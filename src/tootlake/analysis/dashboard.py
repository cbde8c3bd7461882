"""The live dashboard: the report page (`tootlake.analysis.html`) served over HTTP and
recomputed while `collect` writes the lake.

    app = create_app("./lake", refresh=10)       # a Starlette app
    serve("./lake", host="127.0.0.1", port=8000) # run it with uvicorn

Each computation opens a fresh in-memory DuckDB over the lake's Parquet files (new files
appear, compacted ones go), renders the page, and closes it. Results are cached for a few
seconds (and twice as long as they took, so a big lake is not recomputed back to back): viewers
share one computation and a reload storm costs one query run. The dashboard never writes: not
the lake, not a DuckDB file.

The page reloads itself with `<meta http-equiv="refresh">`: no script at all, so the
Content-Security-Policy forbids every script. Text from the fediverse is escaped exactly as
in the report (same template, same charts).

    GET /             the page
    GET /report.json  the same figures as JSON (`tootlake report --format json`)
    GET /healthz      "ok"

A request whose `Host` header is not the address the dashboard is bound to (or `localhost`
when that is loopback, or a name given with `allow_hosts`) is answered 400: a page on another
site cannot reach the dashboard by pointing its own name at 127.0.0.1 (DNS rebinding). When
bound to every address (0.0.0.0, ::), an IP address is accepted, a name only when allowed.
Error pages say what failed, never a path: the reason goes to the log.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tootlake.analysis import queries
from tootlake.errors import ConfigError, MissingDependency, TootlakeError
from tootlake.lake.reader import check_lake

__all__ = ["HEADERS", "DashboardState", "allowed_hosts", "create_app", "serve"]

log = logging.getLogger(__name__)

# The page's own policy (also in its <meta>), plus what only a header can say.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_STATUS_MARK = "<!-- tootlake:status -->"
DAILY_ROWS = 31  # the dashboard's daily table shows the latest days only


@dataclass
class _Snapshot:
    page: str
    report: dict[str, Any]
    computed_at: datetime
    seconds: float


class DashboardState:
    """Computes the page and keeps it for `cache_seconds`, and at least `busy_factor` times as
    long as it took to compute (a big lake is not recomputed back to back); one computation
    at a time."""

    def __init__(
        self,
        lake: str,
        *,
        refresh: int = 10,
        cache_seconds: float | None = None,
        terms: Sequence[str] = queries.DEFAULT_TERMS,
        top: int = 20,
        memory_limit: str | None = None,
        threads: int | None = None,
        tz: str = "UTC",
    ) -> None:
        self.lake = lake
        self.tz = queries.check_tz(tz)
        self.refresh = refresh
        self.cache_seconds = min(refresh, 5.0) if cache_seconds is None else cache_seconds
        self.terms = tuple(terms)
        self.top = top
        self.memory_limit = memory_limit
        self.threads = threads
        self.busy_factor = 2.0
        self.computations = 0
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._taken = 0.0
        self._error: str | None = None

    def snapshot(self) -> _Snapshot:
        """The current page: cached, or computed now (keeping the last good one on failure)."""
        with self._lock:
            keep = self.cache_seconds
            if self._snapshot is not None:
                keep = max(keep, self.busy_factor * self._snapshot.seconds)
            fresh = self._snapshot is not None and time.monotonic() - self._taken < keep
            if fresh:
                assert self._snapshot is not None
                return self._snapshot
            try:
                self._snapshot = self._compute()
                self._error = None
            except Exception as exc:  # a file compacted away mid-query, a bad file...
                if self._snapshot is None:
                    raise
                # The page names the kind of failure only: the reason (paths) goes to the log.
                self._error = type(exc).__name__
                log.warning(
                    "Dashboard refresh of %s failed, showing the last result: %s: %s",
                    self.lake,
                    self._error,
                    exc,
                )
            self._taken = time.monotonic()
            return self._snapshot

    def page(self) -> str:
        snapshot = self.snapshot()
        if self._error is None:
            return snapshot.page
        from markupsafe import escape

        notice = (
            f'<p class="stale" role="status">Showing the figures of '
            f"{snapshot.computed_at:%H:%M:%S} UTC: the last refresh failed "
            f"({escape(self._error)}; the reason is in the dashboard's log).</p>"
        )
        return snapshot.page.replace(_STATUS_MARK, notice, 1)

    def _compute(self) -> _Snapshot:
        from tootlake.analysis.html import open_private, render_html_report
        from tootlake.analysis.report import build_report, report_as_dict

        started = time.perf_counter()
        for attempt in (1, 2):
            # a fresh in-memory DuckDB each time: the views see the files there are now
            con = open_private(self.lake, memory_limit=self.memory_limit, threads=self.threads)
            try:
                report = build_report(con=con, terms=self.terms, top=self.top, tz=self.tz)
                report["instances"] = queries.instances(con, limit=self.top)
                now = datetime.now(UTC)
                page = render_html_report(
                    self.lake,
                    report=report,
                    con=con,
                    terms=self.terms,
                    top=self.top,
                    refresh=self.refresh,
                    daily_rows=DAILY_ROWS,
                    now=now,
                    tz=self.tz,
                )
                break
            except TootlakeError:
                raise
            except Exception:
                # The lake changed under the query (a file listed, then compacted away):
                # once more with a fresh listing.
                if attempt == 2:
                    raise
                log.info("Lake %s changed during a refresh; retrying", self.lake)
            finally:
                con.close()
        self.computations += 1
        seconds = time.perf_counter() - started
        log.info("Dashboard of %s computed in %.2f s", self.lake, seconds)
        return _Snapshot(page, report_as_dict(report), now, seconds)


def create_app(
    lake: str,
    *,
    refresh: int = 10,
    cache_seconds: float | None = None,
    terms: Sequence[str] = queries.DEFAULT_TERMS,
    top: int = 20,
    state: DashboardState | None = None,
    host: str = "127.0.0.1",
    allow_hosts: Sequence[str] = (),
    tz: str = "UTC",
) -> Any:
    """The dashboard as a Starlette app (ASGI), to be served on `host`; requests naming
    another host than `allowed_hosts(host, allow_hosts)` get 400. A lake that does not exist
    is a LakeError (an empty folder is an empty lake). `tz`: the IANA time zone of the page's
    days and hours."""
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.middleware import Middleware
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, PlainTextResponse, Response
        from starlette.routing import Route
    except ImportError as exc:
        raise MissingDependency("starlette", "report") from exc

    check_lake(lake)

    state = state or DashboardState(
        lake, refresh=refresh, cache_seconds=cache_seconds, terms=terms, top=top, tz=tz
    )

    async def page(request: Request) -> Response:
        return HTMLResponse(await run_in_threadpool(state.page), headers=HEADERS)

    async def report_json(request: Request) -> Response:
        snapshot = await run_in_threadpool(state.snapshot)
        body = {
            "lake": state.lake,
            "computed_at": snapshot.computed_at.isoformat(),
            "report": snapshot.report,
        }
        text = json.dumps(body, ensure_ascii=False, default=str)
        return Response(text, media_type="application/json", headers=HEADERS)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok", headers=HEADERS)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("Not found", status_code=404, headers=HEADERS)

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("Dashboard of %s failed: %s", state.lake, exc, exc_info=exc)
        return PlainTextResponse(  # no paths: the reason is in the log
            f"The dashboard cannot read the lake ({type(exc).__name__}); the reason is in its log.",
            status_code=503,
            headers=HEADERS,
        )

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET", "HEAD"]),
            Route("/report.json", report_json, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
        ],
        exception_handlers={404: not_found, 500: failed},
        middleware=[Middleware(_HostCheck, allowed=allowed_hosts(host, allow_hosts))],
    )
    app.state.dashboard = state
    return app


def serve(
    lake: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    refresh: int = 10,
    cache_seconds: float | None = None,
    log_level: str = "warning",
    allow_hosts: Sequence[str] = (),
    on_listening: Callable[[int], None] | None = None,
    tz: str = "UTC",
) -> None:
    """Run the dashboard with uvicorn until interrupted. `on_listening` is given the port
    once it is bound (with `port=0`, the free one the system chose)."""
    app = create_app(
        lake,
        refresh=refresh,
        cache_seconds=cache_seconds,
        host=host,
        allow_hosts=allow_hosts,
        tz=tz,
    )
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependency("uvicorn", "report") from exc
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        access_log=log_level in {"debug", "info"},
    )
    sock = _listen(host, port)
    if on_listening is not None:
        on_listening(sock.getsockname()[1])
    uvicorn.Server(config).run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening before uvicorn starts, so that its port can be told (port 0: the
    system chooses) and a browser sent there at once waits in the backlog, not refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"Cannot listen on {host} port {port}: {exc.strerror or exc}. "
            "Choose another port (0: any free one)."
        ) from exc
    return sock


# ----------------------------------------------------------------------------------------
# the Host header


def _host_name(value: str) -> str:
    """The host of a `Host` header or bind address, as compared: lower case, no port, no
    trailing dot, IPv6 in brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    if value.count(":") > 1:  # a bare IPv6 address (a bind address)
        return f"[{value}]"
    return value.split(":", 1)[0].rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def allowed_hosts(host: str, allow_hosts: Sequence[str] = ()) -> frozenset[str]:
    """The `Host` names a dashboard bound to `host` answers: that address, `localhost` and
    the loopback addresses when it is loopback, and `allow_hosts`. "*" stands for any IP
    address (for a dashboard bound to every address, 0.0.0.0 or ::)."""
    names = {_host_name(host)} | {_host_name(name) for name in allow_hosts}
    address = _ip(_host_name(host))
    if host == "localhost" or (address is not None and address.is_loopback):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    if address is not None and address.is_unspecified:
        names.add("*")
    return frozenset(names)


class _HostCheck:
    """ASGI middleware: 400 for a request whose `Host` is not allowed (DNS rebinding); the
    security HEADERS on every response."""

    def __init__(self, app: Any, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    def ok(self, host: str | None) -> bool:
        if not host:
            return False
        name = _host_name(host)
        return name in self.allowed or ("*" in self.allowed and _ip(name) is not None)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            if not self.ok(host):
                from starlette.responses import PlainTextResponse

                log.info("Dashboard refused a request for host %r", host)
                response = PlainTextResponse(
                    "Invalid Host header: this dashboard answers only to its own address "
                    "(see --allow-host).",
                    status_code=400,
                    headers=HEADERS,
                )
                await response(scope, receive, send)
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            # every answer carries them: Starlette's own (405, the 307 of a trailing slash) too
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode())
                    for k, v in HEADERS.items()
                    if k.lower().encode() not in have
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
