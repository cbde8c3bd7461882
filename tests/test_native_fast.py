"""The native status of stage 1 (`FastStatus`, native/src/fast.rs) is `decode_status`'s, or
nothing: whenever `fast_status(payload)` answers, `decode_status(payload)` gives a
ValidStatus with nothing coerced and the same id, uri, version, times and size; its consent
gate is `Consent.gate`'s under every policy; the row `PostRows.append_fast` appends is the
one `to_post_python` builds (or it appends nothing and says so); `ws_fast_status(frame)` is
`parse_ws_frame` then `fast_status`, in one call. Where it declines, the Python reads the
status as before: counted, and never for a real status.

The statuses are those of tests/test_native_post.py (the real recordings and the modern
ones, mutated by Hypothesis in every field `to_post` reads), written as JSON in several
ways, and then broken at the byte level (a character dropped, doubled or replaced; a key
given twice; numbers serde and msgspec read otherwise), so that each side's refusals are
compared too."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tootlake._native import python_only
from tootlake.lake.tables import RECORD_SCHEMAS
from tootlake.lake.writer import post_rows, records_to_batch, rows_to_batch
from tootlake.record import ValidStatus
from tootlake.record.consent import NONE, OPT_IN, OPT_OUT, Consent
from tootlake.record.status import (
    _HELPERS,
    decode_status,
    decode_stream_status,
    to_post,
    to_post_python,
    valid,
)
from tootlake.sources.mastodon import parse_ws_frame, ws_status
from tootlake.text import has_opt_out_tag

from .conftest import all_real_statuses, native
from .test_native_post import (
    CONSENTS,
    INGESTED,
    OPTED_OUT,
    SETTINGS,
    cases,
    event,
    ingested_times,
    minimal,
)

SCHEMA = RECORD_SCHEMAS["posts_all"]()
POLICIES = [
    Consent(OPT_OUT),
    Consent(OPT_OUT, skip_locked=True),
    Consent(OPT_OUT, skip_bots=True),
    Consent(OPT_OUT, skip_locked=True, skip_bots=True),
    Consent(OPT_IN),
    Consent(NONE),
]
FIELDS = ("id", "uri", "version", "created_at", "edited_at", "coerced", "size")
ANSWERS: Counter[str] = Counter()


def dumped(status: dict[str, Any], style: int) -> bytes:
    """The status as JSON text, in one of the ways servers write it."""
    if style == 0:
        try:
            return orjson.dumps(status)
        except TypeError:  # lone surrogates, integers beyond 64 bits
            style = 1
    if style == 1:
        return json.dumps(status, ensure_ascii=True).encode()
    if style == 2:
        return json.dumps(status, ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass")
    return json.dumps(status, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def compare(payload: bytes) -> Any:
    """fast_status(payload) against decode_status(payload): equal, or declined (None)."""
    fast = native().fast_status(payload)
    reference = decode_status(payload)
    if fast is None:
        ANSWERS["declined"] += 1
        if isinstance(reference, ValidStatus):
            event("declined: " + ("coerced" if reference.coerced else "a valid status"))
        else:
            event("declined: rejected by decode_status too")
        return None
    ANSWERS["answered"] += 1
    event("answered")
    assert isinstance(reference, ValidStatus), f"native answers, Python says {reference!r}"
    assert reference.coerced == ()
    for name in FIELDS:
        assert getattr(fast, name) == getattr(reference, name), name
        assert type(getattr(fast, name)) is type(getattr(reference, name)), name
    assert fast.created_at.tzinfo is reference.created_at.tzinfo
    assert fast.edited_text == (reference.data.edited_at or "")
    account = reference.data.account
    assert fast.author == (account.acct or account.username or "")
    assert fast.payload == payload
    assert fast.event is None
    for policy in POLICIES:
        gate = fast.gate(policy.mode, policy.skip_locked, policy.skip_bots, has_opt_out_tag)
        assert gate == policy.gate(reference), policy
        assert policy.gate(fast) == gate  # (through Consent, as the Recorder calls it)
    made = fast.valid(decode_status)
    assert made == reference and fast.valid(decode_status) is made  # decoded once
    assert valid(fast) is made
    return fast, reference


def rows_equal(
    items: list[tuple[Any, ValidStatus, str | None, datetime, bool | None, str | None]],
) -> int:
    """Appends each FastStatus's row and checks the batch against the Posts'; how many it
    left to the ValidStatus path."""
    rows = post_rows()
    assert rows is not None
    posts = []
    left = 0
    for fast, reference, observed_on, ingested_at, opted_out, consent in items:
        post = to_post_python(
            reference, observed_on, ingested_at, opted_out=opted_out, consent=consent
        )
        given_level = rows.append_fast(fast, observed_on, ingested_at, opted_out, consent, _HELPERS)
        if given_level is None:
            left += 1
            event("row: left to the ValidStatus path")
            continue
        assert given_level == (post.consent or "")
        posts.append(post)
        # ...and the Post path of a FastStatus is the ValidStatus's
        assert to_post(fast, observed_on, ingested_at, opted_out=opted_out, consent=consent) == (
            post
        )
    assert len(rows) == len(posts)
    got = rows_to_batch(rows, SCHEMA)
    if not posts:
        assert got.num_rows == 0 and got.schema == SCHEMA
        return left
    want = records_to_batch(posts, SCHEMA)
    assert got.schema == want.schema and got.num_rows == want.num_rows
    for name in SCHEMA.names:  # column by column: a failure names the column
        assert got.column(name).equals(want.column(name)), (
            f"{name}: rows {got.column(name).to_pylist()!r}, "
            f"Posts {want.column(name).to_pylist()!r}"
        )
    return left


# ----------------------------------------------------------------------------------------
# byte-level changes: JSON that is broken, or read otherwise by serde and msgspec


@st.composite
def broken(draw: st.DrawFn, payload: bytes) -> bytes:
    """`payload` with one change at the byte level."""
    kind = draw(st.sampled_from(["drop", "double", "replace", "insert", "key twice", "number"]))
    if kind == "key twice":
        text = payload.decode("utf-8", "surrogatepass")
        key = draw(
            st.sampled_from(['"id"', '"uri"', '"acct"', '"visibility"', '"note"', '"reblog"'])
        )
        at = text.find(key + ":")
        if at >= 0:
            value = draw(st.sampled_from(['"x"', "null", "1", "true", "{}", "[]"]))
            text = text[:at] + f"{key}:{value}," + text[at:]
            event(f"bytes: {key} given twice")
        return text.encode("utf-8", "surrogatepass")
    if kind == "number":
        text = payload.decode("utf-8", "surrogatepass")
        key = draw(
            st.sampled_from(['"replies_count"', '"favourites_count"', '"followers_count"', '"id"'])
        )
        at = text.find(key + ":")
        if at < 0:
            return payload
        end = at + len(key) + 1
        stop = min((i for i in (text.find(",", end), text.find("}", end)) if i >= 0), default=-1)
        if stop < 0:
            return payload
        number = draw(
            st.sampled_from(
                ["-0", "0", "1.0", "1e2", "-1", str(2**63 - 1), str(2**63), str(2**64), "1E400"]
            )
        )
        event(f"bytes: {key} {number}")
        return (text[:end] + number + text[stop:]).encode("utf-8", "surrogatepass")
    if not payload:
        return payload
    at = draw(st.integers(0, len(payload) - 1))
    if kind == "drop":
        return payload[:at] + payload[at + 1 :]
    if kind == "double":
        return payload[:at] + payload[at : at + 1] + payload[at:]
    byte = draw(st.sampled_from(b'"\\{}[],:0-9eE \x00\x1f\x80\xc3\xed\xff'))
    if kind == "replace":
        return payload[:at] + bytes([byte]) + payload[at + 1 :]
    return payload[:at] + bytes([byte]) + payload[at:]


# ----------------------------------------------------------------------------------------
# the tests


def test_every_real_status_is_answered_and_equal():
    """Not vacuous: every real recorded status (as JSON, the usual way) is read natively,
    equal to decode_status, and its rows equal the Posts' (none left to the Python)."""
    native()
    items = []
    for where, observed_on, status in all_real_statuses():
        payload = dumped(status, 0)
        compared = compare(payload)
        assert compared is not None, f"{where}: declined"
        fast, reference = compared
        for opted_out in OPTED_OUT:
            items.append((fast, reference, observed_on, INGESTED, opted_out, None))
    assert len(items) > 1000
    assert rows_equal(items) == 0


@settings(max_examples=400, **SETTINGS)
@given(
    items=st.lists(
        st.tuples(
            cases(),
            st.integers(0, 3),
            ingested_times,
            st.sampled_from(OPTED_OUT),
            st.sampled_from(CONSENTS),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_fast_status_equals_decode_status_on_mutated_real_statuses(items):
    kept = []
    for (status, observed_on), style, ingested_at, opted_out, consent in items:
        compared = compare(dumped(status, style))
        if compared is not None:
            kept.append((*compared, observed_on, ingested_at, opted_out, consent))
    if kept:
        rows_equal(kept)


@settings(max_examples=400, **SETTINGS)
@given(data=st.data(), case=cases(account_changes=2, status_changes=2), style=st.integers(0, 3))
def test_fast_status_declines_or_equals_on_broken_bytes(data, case, style):
    status, _ = case
    payload = data.draw(broken(dumped(status, style)))
    compare(payload)


@settings(max_examples=300, **SETTINGS)
@given(
    case=cases(account_changes=3, status_changes=3),
    style=st.integers(0, 3),
    name=st.sampled_from(["update", "status.update", "delete", "notification", "filters_changed"]),
)
def test_ws_fast_status_is_the_frame_then_the_status(case, style, name):
    status, _ = case
    payload = dumped(status, style)
    frame = json.dumps(
        {"stream": ["public"], "event": name, "payload": payload.decode("utf-8", "surrogatepass")}
    ).encode("utf-8", "surrogatepass")
    fast = native().ws_fast_status(frame)
    parsed = parse_ws_frame(frame)
    alone = None
    if parsed is not None and parsed[0] in ("update", "status.update") and parsed[1] is not None:
        alone = native().fast_status(parsed[1])
    if alone is None:
        assert fast is None
        return
    event("ws: answered")
    assert fast is not None
    assert fast.event == parsed[0]
    for field in (*FIELDS, "edited_text", "author", "payload"):
        assert getattr(fast, field) == getattr(alone, field), field
    for policy in POLICIES:
        args = (policy.mode, policy.skip_locked, policy.skip_bots, has_opt_out_tag)
        assert fast.gate(*args) == alone.gate(*args)


def test_what_the_collector_reads_natively_and_without():
    """`decode_stream_status` and `ws_status`, the collector's entries, give a FastStatus
    for the usual status and what decode_status gives for any other; with the native
    helpers switched off (`TOOTLAKE_NATIVE=0`'s way), ValidStatus and None."""
    payload = orjson.dumps(minimal(visibility="public"))
    frame = orjson.dumps({"event": "update", "payload": payload.decode()})
    assert type(decode_stream_status(payload)).__name__ == "FastStatus"
    assert type(ws_status(frame)).__name__ == "FastStatus"
    odd = orjson.dumps(minimal(replies_count="many"))  # coerced: the Python's
    assert type(decode_stream_status(odd)) is ValidStatus
    assert decode_stream_status(odd).coerced == ("replies_count",)  # type: ignore[union-attr]
    assert ws_status(orjson.dumps({"event": "update", "payload": odd.decode()})) is None
    with python_only():
        assert type(decode_stream_status(payload)) is ValidStatus
        assert ws_status(frame) is None


@pytest.mark.parametrize(
    "payload",
    [
        b'{"uri":"u","uri":"v"}',
        b"",
        b"null",
        b"[]",
        b"\xef\xbb\xbf{}",
        "\ud800".encode("utf-8", "surrogatepass"),
    ],
)
def test_what_is_no_status_is_declined(payload):
    assert native().fast_status(payload) is None
    assert native().ws_fast_status(payload) is None
    assert native().fast_status(bytearray(payload)) is None  # (exact bytes only)
