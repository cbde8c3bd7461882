"""One instance's trouble stays with its worker: an odd or bad instance document, an
unexpected exception (a bug, or input nothing foresaw) or a failing backfill cost that worker
a backoff, are shown and logged, and never stop it for good nor touch the other workers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web

from tootlake.sources import fleet as fleet_module
from tootlake.sources.fleet import InstanceSpec, InstanceWorker

from ..conftest import real_status
from .conftest import wait_for
from .servers import DOC_V2, TOKEN, json_answer, running_fleet, serve

LOGGER = "tootlake.sources.fleet"


def _timeline(statuses: list[dict[str, Any]]) -> Any:
    """The public timeline: newest first, above `min_id` when given."""

    async def page(request: web.Request) -> web.StreamResponse:
        above = int(request.query.get("min_id") or 0)
        newer = [s for s in statuses if int(s["id"]) > above]
        return web.json_response(sorted(newer, key=lambda s: -int(s["id"])))

    return page


def _statuses(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        status = real_status("mastodonsocial.json", 17)
        status["id"] = str(110_000_000_000_000_000 + i)
        status["uri"] = f"https://mastodon.social/users/x/statuses/{status['id']}"
        out.append(status)
    return out


@pytest.mark.parametrize(
    "document",
    [
        {**DOC_V2, "configuration": "x"},  # the worker died on this, silently
        {**DOC_V2, "configuration": {"urls": 5, "timelines_access": []}},
        {**DOC_V2, "configuration": {"urls": {"streaming": ["wss://x"]}}},
        {**DOC_V2, "configuration": {"timelines_access": {"live_feeds": []}}},
        {**DOC_V2, "configuration": {"timelines_access": {"live_feeds": {"local": {}}}}},
        {**DOC_V2, "version": 4.3, "title": ["t"], "registrations": "open"},
    ],
)
def test_an_instance_document_with_odd_parts_is_read_with_them_ignored(tmp_path, document):
    routes = {"/api/v2/instance": json_answer(document), "/api/v1/timelines/public": _timeline([])}
    with serve(routes) as server, running_fleet([InstanceSpec(server.url)], tmp_path) as fleet:
        fleet.wait_status(server.host, "polling")
        assert fleet.worker(server.host).errors == 0


def test_a_bad_instance_document_makes_the_worker_fail_with_a_reason_and_retry(tmp_path, caplog):
    routes = {"/api/v2/instance": json_answer("x"), "/api/v1/instance": json_answer([1, 2])}
    caplog.set_level(logging.INFO, LOGGER)
    with serve(routes) as server, running_fleet([InstanceSpec(server.url)], tmp_path) as fleet:
        fleet.wait_status(server.host, "failing", "/api/v1/instance is not")
        wait_for(lambda: server.paths("/api/v1/instance") >= 3, 20, "retries")
        worker = fleet.worker(server.host)
        assert worker.errors >= 2
        assert "/api/v1/instance is not a Mastodon instance document" in worker.last_error
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(server.host in m and "failing" in m for m in warnings), warnings


def test_an_unexpected_error_in_one_worker_costs_it_a_backoff_not_the_fleet(
    tmp_path, caplog, monkeypatch
):
    """The bug is planted in one worker (choose_mode fails for its instance only); it shows
    `failing` with the error, logs it once per occurrence (the traceback at debug level),
    counts it and restarts, while the other instance is collected as usual."""
    caplog.set_level(logging.DEBUG, LOGGER)
    statuses = _statuses(3)
    routes = {"/api/v2/instance": json_answer(DOC_V2), "/api/v1/timelines/public": _timeline([])}
    good_routes = {**routes, "/api/v1/timelines/public": _timeline(statuses)}
    with serve(routes) as bad, serve(good_routes) as good:
        choose_mode = fleet_module.choose_mode

        def planted(info: Any, timeline: str, has_token: bool) -> Any:
            if info.base_url == bad.url:
                raise AttributeError("'str' object has no attribute 'get'")
            return choose_mode(info, timeline, has_token)

        monkeypatch.setattr(fleet_module, "choose_mode", planted)
        specs = [InstanceSpec(bad.url), InstanceSpec(good.url)]
        with running_fleet(specs, tmp_path) as fleet:
            fleet.wait_status(bad.host, "failing", "unexpected AttributeError: 'str' object")
            wait_for(lambda: bad.paths("/api/v2/instance") >= 3, 20, "restarts")
            wait_for(lambda: len(fleet.events) >= 3, 20, "the good instance's posts")
            failed = fleet.worker(bad.host).errors
            assert failed >= 2
            assert fleet.worker(good.host).status == "polling"
            assert fleet.worker(good.host).errors == 0
        # stopping cancelled both workers (running_fleet checks the fleet stopped)
    assert {e.observed_on for e in fleet.events} == {good.host}
    mine = [r for r in caplog.records if bad.host in r.getMessage()]
    warned = [r for r in mine if r.levelno == logging.WARNING]
    assert failed <= len(warned) <= failed + 1  # one per failure (one may come as we stop)
    assert all("AttributeError" in r.getMessage() for r in warned)
    traced = [r for r in mine if r.levelno == logging.DEBUG and r.exc_info]
    assert traced and traced[0].exc_info[0] is AttributeError


def test_a_failing_backfill_ends_the_connection_instead_of_dying_silently(tmp_path, monkeypatch):
    async def heartbeats(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            await resp.write(b":)\n")
            while True:
                await resp.write(b":thump\n")
                await asyncio.sleep(0.05)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def broken_backfill(self: InstanceWorker, info: Any) -> None:
        raise RuntimeError("a bug in the backfill")

    monkeypatch.setattr(InstanceWorker, "_backfill", broken_backfill)
    routes = {
        "/api/v2/instance": json_answer(DOC_V2),
        "/api/v1/timelines/public": _timeline([]),
        "/api/v1/streaming/public": heartbeats,
    }
    with (
        serve(routes) as server,
        running_fleet([InstanceSpec(server.url, TOKEN)], tmp_path, stream="sse") as fleet,
    ):
        fleet.wait_status(server.host, "failing", "unexpected RuntimeError: a bug in the")
        wait_for(lambda: server.paths("/api/v1/streaming/public") >= 3, 20, "reconnects")


def test_a_worker_that_ends_anyway_is_logged_and_started_again(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, LOGGER)
    run = InstanceWorker.run
    calls: list[str] = []

    async def ends_once(self: InstanceWorker) -> None:
        calls.append(self.host)
        if len(calls) == 1:
            return  # what `run` never does: end while the fleet runs
        await run(self)

    monkeypatch.setattr(InstanceWorker, "run", ends_once)
    routes = {"/api/v2/instance": json_answer(DOC_V2), "/api/v1/timelines/public": _timeline([])}
    with serve(routes) as server, running_fleet([InstanceSpec(server.url)], tmp_path) as fleet:
        fleet.wait_status(server.host, "polling")
    assert len(calls) == 2
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert warned[0].startswith(
        f"{server.host}: unexpected RuntimeError: the worker ended; the worker restarts in "
    )
