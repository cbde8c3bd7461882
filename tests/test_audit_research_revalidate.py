"""Hostile review of `tootlake revalidate` (audit): an instance on loopback (real sockets, the
server of tests/collect/test_revalidate_hostile.py) answering each post with something else
that is wrong: a body beyond the size limit, JSON of the wrong shape or types, a 500, a 410.
Nothing may crash; only the confirmed 410 removes a post; the rest stays due."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.collect.test_revalidate_hostile import (  # noqa: F401 - `servers` is a fixture
    FAST,
    JSON,
    lake_of,
    local,
    servers,
    status_of,
    uris,
)
from tootlake.lake.reader import open_lake
from tootlake.revalidate import revalidate
from tootlake.sources.fleet import InstanceSpec


def test_hostile_answers_remove_only_the_confirmed_gone_post_and_never_crash(
    servers,  # noqa: F811 - the hostile revalidate suite's fixture, imported above
    tmp_path,
):
    statuses = local(7)
    answers = {
        statuses[0]["id"]: (200, JSON, b'{"uri": "' + b"x" * (12 * 1024 * 1024) + b'"}'),
        statuses[1]["id"]: (200, JSON, b"[]"),
        statuses[2]["id"]: (200, JSON, b'{"uri": 5, "id": [], "account": "alice"}'),
        statuses[3]["id"]: (500, JSON, b'{"error": "boom"}'),
        statuses[4]["id"]: (410, JSON, b'{"error": "Record not found"}'),
        statuses[5]["id"]: (200, JSON, json.dumps({**statuses[5], "id": 7, "uri": ["x"]}).encode()),
    }

    def answer(path: str) -> tuple[int, dict[str, str], bytes]:
        found = status_of(statuses, path)
        assert found is not None
        return answers.get(found["id"], (200, JSON, json.dumps(found).encode()))

    server = servers(answer)
    lake = lake_of(tmp_path, server.host, statuses)
    before = uris(lake)
    options = replace(FAST, max_errors_in_a_row=10)
    result = revalidate(lake, instances=[InstanceSpec(server.url)], older_than=0, options=options)
    assert uris(lake) == before - {statuses[4]["uri"]}
    assert result.stats.removed == {"gone_from_observer": 1}
    assert result.stats.errors == 5 and result.stats.present == 1
    # the errors stay due: the next run asks them again (and only them)
    again = revalidate(lake, instances=[InstanceSpec(server.url)], older_than="1d", options=options)
    assert again.stats.due == 5
    outcomes = dict(
        open_lake(lake).execute("SELECT outcome, count(*) FROM checks GROUP BY outcome").fetchall()
    )
    assert outcomes == {"error": 10, "gone_from_observer": 1, "present": 1}


def test_an_answer_that_says_no_budget_for_an_hour_does_not_stall_the_run(
    servers,  # noqa: F811 - the hostile revalidate suite's fixture, imported above
    tmp_path,
):
    """A 200 saying `X-RateLimit-Remaining: 0` until a reset an hour away (a lie, or a
    misconfigured proxy) made the run wait that hour before the next post, and again after
    it: a daily cron job never ends. A 429 asking as much ends the instance's share
    (`max_wait`); the same budget said on a 200 should too."""
    statuses = local(3)
    reset = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    limits = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}

    def answer(path: str) -> tuple[int, dict[str, str], bytes]:
        return 200, {**JSON, **limits}, json.dumps(status_of(statuses, path)).encode()

    server = servers(answer)
    lake = lake_of(tmp_path, server.host, statuses)
    options = replace(FAST, lookups=replace(FAST.lookups, max_wait=2.0))
    stop = threading.Event()
    threading.Timer(8.0, stop.set).start()  # (the test's own bound)
    started = time.monotonic()
    revalidate(lake, instances=[InstanceSpec(server.url)], older_than=0, options=options, stop=stop)
    assert time.monotonic() - started < 6.0
