"""tootlake_native.check_status (native/src/check.rs) gives exactly what the Python `_check`
gives (`tootlake.record.status`): the same ValidStatus, every field of the same type, or None
so that the Python decides (a rejection, an edit time to coerce, a time in another format).
`decode_status` is compared with and without the native helpers on real statuses whose
identity, author and times Hypothesis replaces with hostile and boundary values: ids at the
snowflake limit of the current second, with leading zeros, 64 and 65 characters long, ints
beyond int64; times out of range by a microsecond, in other ISO forms, impossible dates."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from tootlake._native import python_only
from tootlake.record import status as status_module
from tootlake.record.status import (
    _DECODER,
    EARLIEST,
    Rejection,
    ValidStatus,
    decode_status,
    latest_time,
)

from .conftest import all_real_statuses, native

REAL = [status for _, _, status in all_real_statuses()]


def snowflake_limit() -> int:
    """The largest snowflake `usable_id` takes now (a status id made by tomorrow)."""
    latest = latest_time()
    return (int(latest.timestamp() * 1000) << 16) | 0xFFFF


def both(payload: bytes) -> tuple[Any, Any, bool]:
    """decode_status natively and in Python, and whether the clock's second stayed the same
    meanwhile (the limits move with it: a comparison across two seconds proves nothing)."""
    second = int(time.time())
    got = decode_status(payload)
    with python_only():
        want = decode_status(payload)
    return got, want, int(time.time()) == second


def assert_same(got: Any, want: Any) -> None:
    assert type(got) is type(want)
    if isinstance(want, Rejection):
        assert got == want
        return
    for name in ValidStatus.__struct_fields__:
        g, w = getattr(got, name), getattr(want, name)
        assert g == w, name
        assert type(g) is type(w), name
        if isinstance(w, datetime):
            assert g.tzinfo is w.tzinfo, name


# ----------------------------------------------------------------------------------------
# values


def _times() -> st.SearchStrategy[Any]:
    """Times as statuses give them: Mastodon's usual forms, other ISO forms, out of range
    by a little, impossible, not times; and around tomorrow, the latest allowed."""
    moments = st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    )

    def usual(moment: datetime, form: int) -> str:
        base = moment.strftime("%Y-%m-%dT%H:%M:%S")
        return [
            f"{base}Z",
            f"{base}.{moment.microsecond // 1000:03d}Z",
            f"{base}.{moment.microsecond:06d}Z",
            f"{base}.{moment.microsecond // 1000:03d}+00:00",
            moment.isoformat(),
            moment.strftime("%Y-%m-%d"),
            f"{base}.{moment.microsecond // 1000:03d}",
        ][form]

    def near_tomorrow(offset_us: int, form: int) -> str:
        return usual(latest_time() + timedelta(microseconds=offset_us), form)

    return st.one_of(
        st.builds(usual, moments, st.integers(0, 6)),
        st.builds(near_tomorrow, st.integers(-3_000_000, 3_000_000), st.integers(0, 2)),
        st.sampled_from(
            [
                "2000-01-01T00:00:00.000Z",
                "1999-12-31T23:59:59.999Z",
                "1999-12-31T23:59:59.999999Z",
                "2000-01-01T00:00:00Z",
                "2023-02-30T10:00:00.000Z",
                "2023-02-28T24:00:00.000Z",
                "2023-02-28T23:59:60.000Z",
                "2023-13-01T00:00:00.000Z",
                "2023-02-28t10:00:00.000Z",
                "2023-02-28T10:00:00.000z",
                "2023-02-28T10:00:00,000Z",
                "２023-02-28T10:00:00.000Z",
                "2023-02-28T10:00:00.0000Z",
                "",
                "soon",
            ]
        ),
        st.text(max_size=30),
    )


def _ids() -> st.SearchStrategy[Any]:
    """Status ids: snowflakes about the limit (the limit itself, a second either side: the
    test retries across a second's change), with leading zeros, digits beyond any int,
    flake ids and ULIDs, 64 and 65 characters, a leading `-`, ints of any size, empty."""

    def about_limit(offset: int, zeros: int) -> str:
        return "0" * zeros + str(max(0, snowflake_limit() + offset))

    name = st.text(st.sampled_from("0123456789abcXYZ_-é٣"), min_size=0, max_size=70)
    return st.one_of(
        st.builds(
            about_limit,
            st.one_of(st.integers(-3, 3), st.integers(-(2000 << 16), 2000 << 16)),
            st.integers(0, 3),
        ),
        st.text(st.sampled_from("0123456789"), min_size=1, max_size=70),
        name,
        st.sampled_from(
            ["A" * 64, "A" * 65, "1" * 64, "1" * 65, "9" * 5000, "-abc", "0", "-1", " 1"]
        ),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, 2**63 - 1, 2**63, -1]),
    )


_names = st.one_of(st.none(), st.sampled_from(["", "alice", "alice@example.org", "@"]))


@st.composite
def statuses(draw: st.DrawFn) -> dict[str, Any]:
    status = dict(draw(st.sampled_from(REAL)))
    account = dict(status.get("account") or {})
    if draw(st.booleans()):
        status["id"] = draw(_ids())
    if draw(st.booleans()):
        status["uri"] = draw(
            st.sampled_from(["", "x", "https://a.example/s/1", "x" * 2_048, "x" * 2_049])
            | st.sampled_from(["é", "x"]).map(lambda c: c * (2_048 if c == "é" else 2_047))
        )
    if draw(st.booleans()):
        status["created_at"] = draw(_times())
    if draw(st.booleans()):
        status["edited_at"] = draw(st.one_of(st.none(), _times()))
    if draw(st.booleans()):
        account["acct"] = draw(_names)
        account["username"] = draw(_names)
    status["account"] = account
    return status


# ----------------------------------------------------------------------------------------
# the properties


@pytest.fixture(autouse=True)
def _native_in_use() -> None:
    native()  # fails, never skips, without the module
    assert status_module._native is not None, "the native helpers are not in use"
    assert status_module._NATIVE_CHECK, "the native module predates check_status"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statuses())
@example({**REAL[0], "id": 2**63 - 1})
@example({**REAL[0], "id": 2**63})
@example({**REAL[0], "id": "0" * 70})
@example({**REAL[0], "edited_at": ""})
@example({**REAL[0], "created_at": "2000-01-01T00:00:00.000Z"})
def test_native_check_equals_python(status: dict[str, Any]) -> None:
    payload = json.dumps(status, ensure_ascii=False).encode()
    got, want, steady = both(payload)
    assume(steady)
    assert_same(got, want)
    # what the native call itself said: an answer, or "the Python decides"
    data = _DECODER.decode(payload) if isinstance(want, ValidStatus) else None
    if data is not None:
        answer = native().check_status(data, (), len(payload), ValidStatus)
        event("native answered" if answer is not None else "native declined")


def test_native_check_answers_every_usual_real_status() -> None:
    module = native()
    """Not vacuous: every real status whose times have Mastodon's usual form is checked
    natively, and the answer is the Python's."""
    answered = 0
    for status in REAL:
        payload = json.dumps(status).encode()
        with python_only():
            want = decode_status(payload)
        if not isinstance(want, ValidStatus) or want.coerced:
            continue
        data = _DECODER.decode(payload)
        got = module.check_status(data, (), len(payload), ValidStatus)
        assert got is not None, status.get("uri")
        assert_same(got, want)
        answered += 1
    assert answered >= 0.9 * len(REAL), (answered, len(REAL))


def test_native_check_declines_what_python_rejects_or_coerces() -> None:
    module = native()
    """The boundaries, one by one: the Python rejects or coerces, the native says None."""
    base = dict(REAL[0])
    tomorrow = latest_time()
    cases = {
        "uri": {"uri": ""},
        "uri too long": {"uri": "x" * 2_049},
        # (2,048 characters the Python keeps, but 4,096 bytes: the native leaves it to it)
        "uri of many bytes": {"uri": "é" * 2_048},
        "id": {"id": "-1"},
        # (five seconds beyond it: the limit moves with the clock between here and the call)
        "id beyond the snowflake limit": {"id": str(snowflake_limit() + (5000 << 16))},
        "negative int id": {"id": -1},
        "author": {"account": {**base["account"], "acct": "", "username": None}},
        "created_at before 2000": {"created_at": "1999-12-31T23:59:59.999Z"},
        "created_at after tomorrow": {
            "created_at": (tomorrow + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        },
        "edited_at after tomorrow": {
            "edited_at": (tomorrow + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        },
        "edited_at not a time": {"edited_at": "soon"},
        "created_at in another form": {"created_at": "2023-02-02T23:59:55+00:00"},
    }
    for why, change in cases.items():
        payload = json.dumps({**base, **change}).encode()
        data = msgspec.json.decode(payload, type=status_module.StatusData)
        assert module.check_status(data, (), len(payload), ValidStatus) is None, why
        got, want, _ = both(payload)
        assert_same(got, want)
    # and one that passes, at the earliest time there is
    payload = json.dumps({**base, "created_at": "2000-01-01T00:00:00Z"}).encode()
    data = msgspec.json.decode(payload, type=status_module.StatusData)
    checked = module.check_status(data, (), len(payload), ValidStatus)
    assert checked is not None and checked.created_at == EARLIEST


def test_native_check_keeps_what_it_is_given() -> None:
    module = native()
    """The coerced names and size passed in are the ValidStatus' own; an int id becomes
    its decimal text, as the Python makes it."""
    payload = json.dumps({**REAL[0], "id": 109797860970725377}).encode()
    data = msgspec.json.decode(payload, type=status_module.StatusData)
    checked = module.check_status(data, ("tags",), 4321, ValidStatus)
    assert checked.coerced == ("tags",) and checked.size == 4321
    assert checked.id == "109797860970725377" and checked.data is data
