"""Validation at the edge: any JSON value (and any bytes) gives a post or a rejection, never
an exception; the fast path (JSON bytes into typed Structs) agrees with an independent,
plain-Python statement of the rules (`reference` below) on real statuses with hostile fields.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lakes import delta_roundtrip
from tootlake.errors import BadStatus
from tootlake.record import (
    Rejection,
    ValidStatus,
    decode_status,
    from_status,
    to_post,
    validate_status,
)
from tootlake.record.status import latest_time, usable_id

from .conftest import all_real_statuses, real_status

NOW = datetime(2026, 12, 3, tzinfo=UTC)
INT64_MAX = 2**63 - 1
REAL = [status for _, _, status in all_real_statuses()]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

# -- the rules, stated independently of the implementation -------------------------------


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_id(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))


ID_CHARS = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_")


def _is_status_id(v: Any, now: datetime) -> bool:
    """1-64 ASCII letters, digits, - or _, not starting with -; a snowflake not from after
    tomorrow."""
    if not _is_id(v):
        return False
    text = str(v)
    if not 1 <= len(text) <= 64 or not set(text) <= ID_CHARS or text[0] == "-":
        return False
    if text.isdigit() and len(text) >= 17:
        return int(text) >> 16 <= (now + timedelta(days=1)).timestamp() * 1000
    return True


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= INT64_MAX


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_object(v: Any) -> bool:
    return isinstance(v, dict)


def _objects(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(i, dict) for i in v)


def _tags(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(t, dict)
        and isinstance(t.get("name"), str)
        and (t.get("url") is None or isinstance(t["url"], str))
        for t in v
    )


def _strings(v: Any, *keys: str) -> bool:
    """An object whose `keys` are each missing, null or a string."""
    return isinstance(v, dict) and all(v.get(k) is None or isinstance(v[k], str) for k in keys)


def _mentions(v: Any) -> bool:
    return isinstance(v, list) and all(
        _strings(m, "url", "acct") and (m.get("id") is None or _is_id(m["id"])) for m in v
    )


def _quote(v: Any) -> bool:
    return _strings(v, "state") and (
        v.get("quoted_status") is None or _strings(v["quoted_status"], "uri")
    )


def _application(v: Any) -> bool:
    return isinstance(v, dict) and all(
        v.get(k) is None or isinstance(v[k], str) for k in ("name", "website")
    )


STATUS_FIELDS = {
    "url": _is_str,
    "edited_at": _is_str,
    "language": _is_str,
    "content": _is_str,
    "spoiler_text": _is_str,
    "visibility": _is_str,
    "application": _application,
    "tags": _tags,
    "mentions": _mentions,
    "quote": _quote,
    "quotes_count": _is_count,
    "media_attachments": _objects,
    "emojis": _objects,
    "favourites_count": _is_count,
    "reblogs_count": _is_count,
    "replies_count": _is_count,
    "sensitive": _is_bool,
    "in_reply_to_id": _is_id,
    "in_reply_to_account_id": _is_id,
    "poll": _is_object,
    "card": _is_object,
    "reblog": _is_object,
}
ACCOUNT_FIELDS = {
    "id": _is_id,
    "acct": _is_str,
    "username": _is_str,
    "display_name": _is_str,
    "url": _is_str,
    "bot": _is_bool,
    "created_at": _is_str,
    "followers_count": _is_count,
    "note": _is_str,
    "noindex": _is_bool,
    "locked": _is_bool,
    "discoverable": _is_bool,
    "indexable": _is_bool,
    "group": _is_bool,
    "moved": lambda v: _strings(v, "acct", "url"),
    "fields": lambda v: (
        isinstance(v, list) and all(isinstance(f, dict) and _strings(f, "name", "value") for f in v)
    ),
}
SAFE = {
    "visibility": "unknown",
    "reblog": {},
    "account.noindex": True,
    "account.locked": True,
    "account.note": "#noindex",
    "account.fields": [{"value": "#noindex"}],
}


def _time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def reference(value: Any, now: datetime = NOW) -> tuple[dict[str, Any], set[str]] | None:
    """None when the status is invalid; else the status with every wrong-typed field dropped
    (or set to its safe value) and the names of those fields."""
    if not isinstance(value, dict):
        return None
    if not (isinstance(value.get("uri"), str) and 0 < len(value["uri"]) <= 2_048):
        return None
    if not _is_status_id(value.get("id"), now):
        return None
    account = value.get("account")
    if not isinstance(account, dict):
        return None
    created = value.get("created_at")
    if not isinstance(created, str):
        return None
    out, coerced = dict(value), set()
    fixed_account = dict(account)
    for name, ok in ACCOUNT_FIELDS.items():
        if fixed_account.get(name) is not None and not ok(fixed_account[name]):
            coerced.add(f"account.{name}")
            if f"account.{name}" in SAFE:
                fixed_account[name] = SAFE[f"account.{name}"]
            else:
                del fixed_account[name]
    out["account"] = fixed_account
    if not (fixed_account.get("acct") or fixed_account.get("username")):
        return None
    when = _time(created)
    if when is None or not datetime(2000, 1, 1, tzinfo=UTC) <= when <= now + timedelta(days=1):
        return None
    for name, ok in STATUS_FIELDS.items():
        if out.get(name) is not None and not ok(out[name]):
            coerced.add(name)
            if name in SAFE:
                out[name] = SAFE[name]
            else:
                del out[name]
    if out.get("edited_at"):
        edited = _time(out["edited_at"])
        if edited is None or not datetime(2000, 1, 1, tzinfo=UTC) <= edited <= now + timedelta(
            days=1
        ):
            coerced.add("edited_at")
            del out["edited_at"]
    return out, coerced


# -- hostile statuses made from real ones --------------------------------------------------

FIELD_PATHS = (
    ["uri", "id", "account", "created_at"]
    + list(STATUS_FIELDS)
    + [f"account.{name}" for name in ACCOUNT_FIELDS]
    + ["tags.0.name", "tags.0", "application.name", "mentions.0", "mentions.0.acct"]
    + ["mentions.0.id", "quote.state", "quote.quoted_status", "quote.quoted_status.uri"]
    + ["account.moved.acct"]
)


@st.composite
def hostile_statuses(draw: st.DrawFn) -> Any:
    status = copy.deepcopy(draw(st.sampled_from(REAL)))
    if draw(st.booleans()):  # the 4.4+ fields real recordings lack: a quote, a move
        status["quote"] = {"state": "accepted", "quoted_status": {"uri": "https://q.example/1"}}
        status["quotes_count"] = 2
        status["account"]["moved"] = {"acct": "new@m.example", "url": "https://m.example/@new"}
        status["account"]["indexable"] = True
    for path in draw(st.lists(st.sampled_from(FIELD_PATHS), max_size=4)):
        *parents, last = path.split(".")
        node: Any = status
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else (node or [None])[0]
            if not isinstance(node, dict | list):
                break
        else:
            if isinstance(node, list):
                if node and last.isdigit():
                    node[0] = draw(json_values)
            elif draw(st.booleans()):
                node[last] = draw(json_values)
            else:
                node.pop(last, None)
    return status


def _post_fields(status: ValidStatus) -> dict[str, Any]:
    post = to_post(status, "observer.example", NOW)
    return {k: getattr(post, k) for k in post.__slots__}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_statuses())
def test_hostile_real_status_is_what_the_rules_say(status):
    expected = reference(status)
    got = decode_status(msgspec.json.encode(status), NOW)
    if expected is None:
        assert isinstance(got, Rejection), got
        return
    assert isinstance(got, ValidStatus), (got, status)
    cleaned, coerced = expected
    assert set(got.coerced) == coerced
    clean = validate_status(cleaned, NOW)
    assert isinstance(clean, ValidStatus)
    want = _post_fields(clean)
    if "account.locked" in coerced:  # locked for the gates, stored as not known
        want["locked"] = None
    assert _post_fields(got) == want


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_is_a_post_or_a_rejection(value):
    from_bytes = decode_status(msgspec.json.encode(value), NOW)
    from_object = validate_status(value, NOW)
    assert isinstance(from_bytes, ValidStatus | Rejection)
    assert type(from_bytes) is type(from_object)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_post_or_a_rejection(data):
    assert isinstance(decode_status(data, NOW), ValidStatus | Rejection)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_statuses(), min_size=1, max_size=8))
def test_every_valid_status_writes_to_the_lake(statuses):
    posts = []
    for status in statuses:
        got = decode_status(msgspec.json.encode(status), NOW)
        if isinstance(got, ValidStatus):
            posts.append(to_post(got, "observer.example", NOW))
    if posts:
        assert delta_roundtrip(posts).num_rows == len(posts)


def test_valid_status_is_unchanged_by_the_fast_path():
    for status in REAL:
        fast = decode_status(json.dumps(status).encode(), NOW)
        slow = validate_status(status, NOW)
        assert type(fast) is type(slow)
        if isinstance(fast, ValidStatus):
            assert fast.coerced == ()
            assert _post_fields(fast) == _post_fields(slow)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"uri": 5}, "uri"),
        ({"uri": ""}, "uri"),
        ({"uri": "https://x.example/" + "s" * 2_031}, "uri"),  # (2,049 characters: a lie)
        ({"id": 1.5}, "id"),
        ({"id": True}, "id"),
        ({"id": "1" * 65}, "id"),
        ({"id": "9" * 5000}, "id"),  # (int() of more than 4,300 digits raises)
        ({"id": "0" * 4400 + "1"}, "id"),
        ({"account": "bob"}, "account"),
        ({"created_at": "0001-01-01T00:00:00+01:00"}, "created_at"),
        ({"created_at": "9999-12-31T23:59:59Z"}, "created_at"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"created_at": None}, "created_at"),
    ],
)
def test_a_status_without_identity_author_or_time_is_rejected_naming_the_field(change, field):
    status = dict(real_status("mastodonsocial.json", 3), **change)
    got = decode_status(json.dumps(status).encode(), NOW)
    assert isinstance(got, Rejection)
    assert got.field == field
    with pytest.raises(BadStatus):
        from_status(status, "mastodon.social", NOW)


@pytest.mark.parametrize(
    ("change", "coerced", "column", "value"),
    [
        ({"tags": 5}, "tags", "tags", []),
        ({"language": 7}, "language", "language", None),
        ({"favourites_count": -3}, "favourites_count", "favourites_count", 0),
        ({"reblogs_count": 2**64}, "reblogs_count", "reblogs_count", 0),
        ({"media_attachments": "x"}, "media_attachments", "media_count", 0),
        ({"content": 5}, "content", "text", ""),
        ({"edited_at": "soon"}, "edited_at", "edited_at", None),
        ({"application": "x"}, "application", "app", None),
    ],
)
def test_an_odd_field_is_stored_as_its_default_and_counted(change, coerced, column, value):
    status = dict(real_status("mastodonsocial.json", 17), **change)
    got = decode_status(json.dumps(status).encode(), NOW)
    assert isinstance(got, ValidStatus)
    assert got.coerced == (coerced,)
    assert getattr(to_post(got, "mastodon.social", NOW), column) == value


def test_wrong_typed_consent_fields_never_mean_collect():
    from tootlake.record import skip_reason

    base = real_status("mastodonsocial.json", 17)
    assert skip_reason(dict(base, visibility=1)) == "not_public"
    assert skip_reason(dict(base, reblog=True)) == "reblog"
    account = dict(base["account"], noindex="false")
    assert skip_reason(dict(base, account=account)) == "noindex"
    # profile fields that cannot be read may hold an opt-out tag
    for fields in ("#nobot", [{"name": 1, "value": "x"}], [["#nobot"]], {"a": "b"}):
        account = dict(base["account"], fields=fields)
        assert skip_reason(dict(base, account=account)) == "opt_out_tag", fields


def _snowflake_now(days: float = 0) -> int:
    return int((datetime.now(UTC) + timedelta(days=days)).timestamp() * 1000) << 16


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        # around tomorrow's limit (the fast path for 17-19 digits decides these), both ways
        st.integers(-(2**40), 2**40).map(lambda d: str(_snowflake_now(1) + d)),
        st.integers(0, 10**21).map(str),
        st.text("0123456789\u0660\u0661\u00b2", min_size=15, max_size=21),
        st.integers(-5, 30).map(lambda n: "0" * max(n, 0) + "1"),
    ),
    st.booleans(),
)
def test_a_status_id_is_checked_as_usable_id_says(status_id, given_now):
    """`_check` tests a snowflake itself, with the limit it made once; it must agree with
    `usable_id` (the reference) on every id, and the time given or taken from the clock."""
    status = real_status("mastodonsocial.json", 17)
    status["id"] = status_id
    now = datetime.now(UTC) if given_now else None
    latest = None if now is None else latest_time(now)
    want = usable_id(status_id, latest)
    got = validate_status(status, now)
    if usable_id(status_id, latest) != want:
        return  # the clock's second turned over the limit meanwhile: either answer is right
    if want is None:
        assert isinstance(got, Rejection) and got.field == "id", got
    else:
        assert isinstance(got, ValidStatus) and got.id == want, got


@pytest.mark.parametrize("given_now", [False, True])
def test_a_snowflake_at_the_limit_is_checked_as_usable_id_says(given_now):
    from tootlake.record.status import _snowflake_limit

    now = datetime.now(UTC) if given_now else None
    for _ in range(3):  # (a second may turn over between the two answers)
        latest = None if now is None else latest_time(now)
        limit = _snowflake_limit(latest)
        answers = []
        for status_id in (str(limit - 1), str(limit), str(limit + 1)):
            status = real_status("mastodonsocial.json", 17)
            status["id"] = status_id
            got = validate_status(status, now)
            answers.append(got.id if isinstance(got, ValidStatus) else None)
        if _snowflake_limit(latest) == limit:
            break
    assert answers == [str(limit - 1), str(limit), None]


def test_a_uri_of_the_longest_length_is_kept_and_one_longer_rejected():
    base = real_status("mastodonsocial.json", 3)
    for uri, kept in (("https://x.example/" + "é" * 2_030, True), ("x" * 2_049, False)):
        got = decode_status(json.dumps({**base, "uri": uri}).encode(), NOW)
        assert isinstance(got, ValidStatus) is kept, got
    got = decode_status(json.dumps({**base, "uri": "x" * 1_000_000}).encode(), NOW)
    assert isinstance(got, Rejection) and len(got.reason) < 100, got  # (the reason cuts it)
