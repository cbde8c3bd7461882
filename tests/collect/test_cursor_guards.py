"""The second hostile review: a cut timeline body is no page; the structure scan is linear; a
page of tiny items is refused before it costs memory; the durable cursor keeps its kind and
never leads (a snowflake from the future, a text id on a server of numbers, a cursor saved by
an older tootlake); the audit says nothing from an empty answer; and the functions documented
as total are."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tootlake.record import Rejection, ValidStatus, decode_status, usable_id, validate_status
from tootlake.sources.mastodon import advance, may_lead, parse_ws_frame, split_page
from tootlake.sources.state import CollectorState

from ..conftest import real_status
from .test_fleet_edges import CURSOR, ID0, INFO, FakeFleet, _json, _pages, _status, _worker, run


def _snowflake(at: datetime) -> str:
    return str(int(at.timestamp() * 1000) << 16 | 1)


# -- pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'[{"id":"5"},{"id":"4"},{"id":"3","ur',  # the connection died in the third status
        b"[\n",
        b'[{"id":"5"},',
        b'[{"id":"5"}, [[[[[',
    ],
)
def test_a_body_cut_short_is_not_a_page(body):
    # Before: the items before the cut were handed out and the cursor jumped past the rest.
    assert split_page(body) is None


def test_the_scan_of_a_hostile_body_is_linear():
    # `"\` runs once made the regex quadratic: 64 KB took 11 s on the event loop; 4 MB now
    # must finish within the test's timeout (a body that never closes is no page).
    assert split_page(b"[" + b'"\\' * 2_000_000) is None
    deep = b"[" * 4_000_000 + b"]" * 4_000_000
    assert split_page(b"[" + deep + b"]") == [deep]  # one item, whatever its depth


@pytest.mark.parametrize("item", [b"0", b"{}", b'"x"'])
def test_a_page_of_tiny_items_is_refused_before_it_costs_memory(item):
    body = b"[" + b",".join([item] * 2_000_000) + b"]"
    assert split_page(body, max_items=80) is None
    assert split_page(b"[" + b",".join([item] * 80) + b"]", max_items=80) == [item] * 80


def test_a_page_with_an_unreadable_item_still_splits():
    good = _json(_status(1))
    deep = b"[" * 3000 + b"]" * 3000
    assert split_page(b"[" + good + b"," + deep + b"," + good + b"]") == [good, deep, good]


# -- the cursor --------------------------------------------------------------------------------


def test_a_snowflake_from_the_future_is_kept_but_does_not_lead():
    soon = _snowflake(datetime.now(UTC) + timedelta(hours=23))
    assert usable_id(soon) == soon  # a post (clocks drift by hours)...
    assert not may_lead(soon)  # ...but no cursor
    assert advance(CURSOR, soon) == CURSOR
    assert advance(CURSOR, soon, str(ID0 + 1)) == str(ID0 + 1)
    assert may_lead(_snowflake(datetime.now(UTC) + timedelta(minutes=1)))


def test_the_durable_cursor_keeps_its_kind_and_never_leads(tmp_path):
    state = CollectorState(tmp_path)
    state.advance("a.example", CURSOR)
    state.advance("a.example", "zzz")  # a text id on a server of numbers
    state.advance("a.example", _snowflake(datetime.now(UTC) + timedelta(hours=23)))
    assert state.cursor("a.example") == CURSOR
    state.advance("a.example", str(ID0 + 7))
    assert state.cursor("a.example") == str(ID0 + 7)


def test_a_page_with_an_odd_id_acks_no_odd_cursor(tmp_path, monkeypatch):
    """Each page event acks its own id: one text id among snowflakes used to become the
    durable cursor, and after a restart the instance read nothing for ever."""
    _pages(monkeypatch, [_json(_status(1, id="zzz")), _json(_status(1))])

    async def main() -> None:
        fleet = FakeFleet(tmp_path)
        fleet.state.advance("127.0.0.1:1", CURSOR)
        worker = _worker(fleet)
        await worker._page(INFO, None)
        for event in fleet.out:
            if event.ack is not None:
                event.ack()
        assert worker.contiguous == str(ID0 + 1)
        assert fleet.state.cursor("127.0.0.1:1") == str(ID0 + 1)

    run(main)


@pytest.mark.parametrize("saved", ["zzz-but-ok", "\u00b2", "9" * 23, "x" * 65])
def test_a_cursor_an_older_tootlake_saved_is_checked_when_loaded(tmp_path, saved, caplog):
    (tmp_path / "cursors.json").write_text(
        json.dumps({"instances": {"a.example": {"cursor": saved}, "b.example": {"cursor": CURSOR}}})
    )
    state = CollectorState(tmp_path)
    assert state.cursor("b.example") == CURSOR
    if saved == "zzz-but-ok":  # a text id is a fine cursor (Pleroma)
        assert state.cursor("a.example") == saved
    else:
        assert state.cursor("a.example") is None
        assert "cannot be a status id" in caplog.text


def test_on_a_first_run_the_usual_kind_of_stream_ids_wins(tmp_path):
    fleet = FakeFleet(tmp_path)
    worker = _worker(fleet)
    worker.contiguous = None
    worker.backfilling = True
    for raw in [_json(_status(1, id="zzz")), _json(_status(2)), _json(_status(3))]:
        worker._stream_event("update", raw)
    assert worker.stream_high == str(ID0 + 3)


def test_the_audit_says_nothing_from_an_empty_answer(tmp_path, monkeypatch):
    """An empty first page once meant "everything older is gone": 200 deletes of live posts."""
    _pages(monkeypatch, [])

    async def main() -> None:
        fleet = FakeFleet(tmp_path)
        worker = _worker(fleet)
        for n in range(1, 50):
            worker._recent[str(ID0 + n)] = ""
        await worker._audit(INFO)
        assert fleet.out == []

    run(main)


def test_a_poison_status_met_on_the_stream_and_a_page_is_kept_once(tmp_path, monkeypatch):
    poison = _json(_status(3, created_at="soon"))
    _pages(monkeypatch, [poison])

    async def main() -> None:
        fleet = FakeFleet(tmp_path)
        worker = _worker(fleet)
        worker.backfilling = True
        event = worker._stream_event("update", poison)
        assert event is not None
        await worker._emit([event])
        await worker._page(INFO, None)
        assert [e.kind for e in fleet.out] == ["reject"]

    run(main)


def test_a_reject_cut_off_on_its_way_is_kept_when_fetched_again(tmp_path, monkeypatch):
    _pages(monkeypatch, [_json(_status(3, created_at="soon"))])

    async def main() -> None:
        fleet = FakeFleet(tmp_path, block=True)
        worker = _worker(fleet)
        page = asyncio.create_task(worker._page(INFO, None))
        await fleet.waiting.wait()
        page.cancel()
        await asyncio.gather(page, return_exceptions=True)
        fleet.open.set()
        worker._cut = False  # a new connection
        await worker._page(INFO, None)
        assert [e.kind for e in fleet.out] == ["reject"]

    run(main)


# -- total functions ---------------------------------------------------------------------------


def _text(status: dict[str, Any], content: str) -> str:
    return json.dumps(status, ensure_ascii=False)[:-1] + f', "content": "{content}"}}'


def test_a_str_holding_a_lone_surrogate_is_mended_not_raised():
    status = real_status("mastodonsocial.json", 17)
    got = decode_status(_text(status, "cut \ud83d"))
    assert isinstance(got, ValidStatus) and "surrogates" in got.coerced
    frame = json.dumps({"event": "update"})[:-1] + ', "payload": "\ud83d"}'
    assert parse_ws_frame(frame) is not None


@pytest.mark.parametrize(
    "odd", [b"bytes", object(), float("nan"), 10**5000], ids=["bytes", "object", "nan", "bigint"]
)
def test_a_dict_holding_a_surrogate_and_a_non_json_value_is_a_rejection(odd):
    status = dict(real_status("mastodonsocial.json", 17), content="x\ud800", odd=odd)
    assert isinstance(validate_status(status), Rejection | ValidStatus)


def test_an_id_of_five_thousand_digits_is_no_id():
    assert usable_id(10**5000) is None
    assert usable_id(-1) is None
