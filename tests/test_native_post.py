"""tootlake_native.to_post (native/src/post.rs) builds exactly the Post that the Python
reference `tootlake.record.status.to_post_python` builds: equal, and every field of the same
type (`1` is not `True`, a list of str is not a list of something else), for any validated
status, any `observed_on` (None and "" too), and every `opted_out` and `consent` a caller
passes. It may answer None ("let the Python do it"): counted, and never for a real status.

The statuses are the real recordings (tests/fixtures/real, and bench/datasets.py's
`modern_statuses`, which adds Mastodon 4.4+ quotes), mutated by Hypothesis in every field
to_post reads: hosts upper-case and beyond ASCII, bare and qualified accts, ids as str and
int, quote fallbacks and odd HTML, bios and profile fields with opt-out tags in every
disguise, counts, flags and the fields validation coerces. Each status is validated as a
dict (`validate_status`) or as JSON bytes (`decode_status`); a Rejection is skipped."""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, currently_in_test_context, example, given, settings
from hypothesis import event as _event
from hypothesis import strategies as st

from tootlake._native import python_only
from tootlake.record import status as status_module
from tootlake.record.model import Post
from tootlake.record.status import (
    _HELPERS,
    Rejection,
    ValidStatus,
    decode_status,
    host_of,
    parse_time,
    to_post,
    to_post_python,
    validate_status,
)

from .conftest import BENCH, all_real_statuses, native

# What the native to_post answered, over the whole run (None: it left the post to Python).
ANSWERS: Counter[str] = Counter()

INGESTED = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
OPTED_OUT = (None, True, False)
CONSENTS = (None, "opt-in", "opt-out", "none")


# ----------------------------------------------------------------------------------------
# the comparison


def event(name: str) -> None:
    """Hypothesis' statistics (--hypothesis-show-statistics), inside a property test."""
    if currently_in_test_context():
        _event(name)


def shape(value: Any) -> Any:
    """The type of a value, and of what a list holds (a datetime: its offset too)."""
    if isinstance(value, list):
        return (list, tuple(shape(item) for item in value))
    if isinstance(value, datetime):
        return (type(value), value.utcoffset())
    return type(value)


def differences(got: Any, want: Post) -> list[str]:
    if type(got) is not Post:
        return [f"native gave a {type(got).__name__}, not a Post: {got!r}"]
    out = []
    for name in Post.__struct_fields__:
        g, w = getattr(got, name), getattr(want, name)
        if g != w or shape(g) != shape(w):
            out.append(f"{name}: native {g!r} {shape(g)}, Python {w!r} {shape(w)}")
    return out


def check(
    status: ValidStatus,
    observed_on: str | None,
    ingested_at: datetime,
    opted_out: bool | None,
    consent: str | None,
) -> Post | None:
    """The native Post of `status` equals the Python one, field by field and type by type
    (None when native left it to the Python)."""
    want = to_post_python(status, observed_on, ingested_at, opted_out=opted_out, consent=consent)
    got = native().to_post(status, observed_on, ingested_at, opted_out, consent, _HELPERS)
    args = (
        f"observed_on={observed_on!r}, ingested_at={ingested_at!r}, opted_out={opted_out!r}, "
        f"consent={consent!r}, coerced={status.coerced!r}"
    )
    if got is None:
        ANSWERS["None"] += 1
        try:
            msgspec.json.encode(status.data)
        except UnicodeEncodeError:
            event("native: None (the Python builds it), a str holds lone surrogates")
        else:
            event("native: None (the Python builds it)")
    else:
        ANSWERS["Post"] += 1
        event("native: a Post")
        diff = differences(got, want)
        assert not diff, f"native to_post differs ({args}):\n  " + "\n  ".join(diff)
        assert [shape(getattr(got, f)) for f in Post.__struct_fields__] == [
            shape(getattr(want, f)) for f in Post.__struct_fields__
        ]
    # ...and the reference is itself the pure Python's (text helpers without native code)
    with python_only():
        pure = to_post_python(
            status, observed_on, ingested_at, opted_out=opted_out, consent=consent
        )
    diff = differences(pure, want)
    assert not diff, f"to_post_python differs without native text helpers ({args}):\n  " + (
        "\n  ".join(diff)
    )
    # the public to_post, whichever path it takes
    assert not differences(
        to_post(status, observed_on, ingested_at, opted_out=opted_out, consent=consent), want
    )
    return got


def validated(status: dict[str, Any], route: str) -> ValidStatus | Rejection:
    if route == "validate":
        return validate_status(status)
    try:
        data = orjson.dumps(status)
    except TypeError:  # lone surrogates, integers beyond 64 bits: as JSON text holds them
        data = json.dumps(status, ensure_ascii=True).encode()
    return decode_status(data)


# ----------------------------------------------------------------------------------------
# the statuses


def minimal(account: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A status with only what validation requires (and the author's profile url), changed."""
    status: dict[str, Any] = {
        "uri": "https://example.social/users/alice/statuses/1",
        "id": "1",
        "created_at": "2024-05-01T12:00:00.000Z",
        "account": {
            "id": "7",
            "username": "alice",
            "acct": "alice",
            "url": "https://example.social/@alice",
        },
    }
    status.update(fields)
    status["account"].update(account or {})
    return status


@cache
def modern() -> list[tuple[str, dict[str, Any]]]:
    """bench/datasets.py's modern_statuses(seed) for two seeds: the real statuses as a
    Mastodon 4.5+ server sends them (quotes with their `quote-inline` fallback)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    datasets = importlib.import_module("datasets")
    assert str(datasets.__file__).startswith(str(BENCH)), datasets.__file__
    return [*datasets.modern_statuses(0), *datasets.modern_statuses(1)]


@cache
def bases() -> list[tuple[str | None, dict[str, Any]]]:
    """(observed_on, status) to mutate: the minimal one first (what failures shrink to),
    then every real recorded status, then the modern ones."""
    real = [(observed, status) for _, observed, status in all_real_statuses()]
    return [("example.social", minimal()), *real, *modern()]


def copied(status: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(status))  # (json, not orjson: any int, any surrogate)


HOST_LIST = [
    "example.social",
    "mastodon.social",
    "Mastodon.Social",
    "BÜCHER.example",
    "bücher.example",
    "xn--bcher-kva.example",
    "İ.example",
    "ΣΑΣ.gr",
    "ǅ.example",
    "\u212a.example",  # Kelvin sign: lower() makes an ASCII k of it
    "ẞ.example",
    "ﬁ.example",
    "example.org:8443",
    "EXAMPLE.ORG:443",
    "[::1]:8080",
    "user@host.example",
    "a@B.example",
    "@",
    "",
]
HOSTS = st.sampled_from(HOST_LIST) | st.text(alphabet="aZ.:@/?#İÜσ-1 \\", max_size=10)
SCHEMES = st.sampled_from(["https://", "http://", "HTTPS://", "", "tag:", "https:/", "//", "://"])
PATHS = st.sampled_from(
    ["", "/", "/users/alice/statuses/1", "/@alice", "?q=1", "#top", "/x?y=1#z", "?a=b/c",
     "#a/b@c", "@x/y", "/@bob@other.example", "\\@alice", "\\users\\alice"]
)  # fmt: skip
URLS = st.builds(lambda s, h, p: s + h + p, SCHEMES, HOSTS, PATHS) | st.text(max_size=20)
MAYBE_URL = st.none() | URLS
NAMES = st.sampled_from(["alice", "Alice", "bob", "", "İlker", "ΣΑΣ", "x_y"]) | st.text(max_size=6)
ACCTS = (
    st.none()
    | NAMES
    | st.builds(lambda n, h: f"{n}@{h}", NAMES, HOSTS)
    | st.sampled_from(["@", "a@", "@b", "a@b@c", "bob@BÜCHER.example"])
)
IDS = (
    st.none()
    | st.sampled_from(["7", "1", "42", "9", "109", "abc", "007", "-1", ""])
    | st.sampled_from([7, 1, 42, 9, 0, -5, 2**63 - 1, 2**64, 10**30])
    | st.integers(0, 2**63 - 1)
)

QUOTE_INLINE = (
    '<p class="quote-inline">RE: <a href="https://other.example/@bob/2" target="_blank" '
    'rel="nofollow noopener" translate="no"><span class="invisible">https://</span>'
    '<span class="">other.example/@bob/2</span><span class="invisible"></span></a></p>'
)
HTML_PIECES = [
    "<p>", "</p>", "<br>", "<br />", "</p><p>", "</p>\n<p>", "<p>hello world</p>",
    QUOTE_INLINE, "<p class='quote-inline'>RE: x</p>", "<P CLASS=quote-inline>RE: y</P>",
    '<p class="quote-inline">', "quote-inline", "RE: ",
    "&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&apos;", "&nbsp;", "&nope;", "&", "&amp",
    '<span class="invisible">https://</span>', '<span class="ellipsis">x</span>',
    '<a href="https://x.example/tags/a" class="mention hashtag" rel="tag">#<span>Tag</span></a>',
    '<span class="h-card"><a href="https://x.example/@b" class="u-url mention">@<span>b</span></a>'
    "</span>",
    "<b>", "</b>", "<em>x</em>", "<div>", "<script>x</script>", "<!-- c -->", "<?pi?>", "<",
    ">", " ", "\n", "\r", "\t", "\x00", "\xa0", "\u3000", "\u200b", "word", "Wörter", "日本語",
    "\U0001f389", "\ufeff", "\ud83d",
    # opt-out tags, plain and disguised
    "#nobot", "#<span>nobot</span>", "＃ｎｏｂｏｔ", "﹟nobot", "&#35;nobot", "&num;nobot",
    "&#x23;noindex", "#no\xadbot", "#no&shy;bot", "#NoBots", "#nobody", "#news", "#n",
    '#<b x=a"b>nobot', "#<!-- -->nobot", "#noarchive", "#nosearch",
]  # fmt: skip
HTML = st.lists(st.sampled_from(HTML_PIECES) | st.text(max_size=4), max_size=10).map("".join)
MAYBE_HTML = st.none() | st.just("") | HTML
FLAGS = st.sampled_from([True, False, None])
# validation coerces the wrong types (locked/noindex: to True, others dropped)
ODD_FLAGS = FLAGS | st.sampled_from(["yes", "false", 1, 0])
COUNTS = st.none() | st.sampled_from([0, 1, 7, -1]) | st.integers(0, 2**63 - 1)
# Mastodon's usual form (which the native reads itself), with every field in and out of range
USUAL_TIMES = st.builds(
    "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from(["T", "T", " ", "t"]),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["", ".000", ".151", ".999999", ".5", ".1234", "."]),
    st.sampled_from(["Z", "Z", "z", "+00:00", ""]),
)
TIMES = (
    st.sampled_from(
        [None, "", "2020-01-01", "2020-01-01T00:00:00.000Z", "2021-06-01T12:00:00+02:00",
         "garbage", "0001-01-01T00:00:00+01:00", "2999-01-01T00:00:00Z",
         "2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00.000Z", "２０２０-01-01T00:00:00Z",
         "2020-01-01T00:00:00.000Z\n", "+020-01-01T00:00:00.000Z"]
    )
    | USUAL_TIMES
)  # fmt: skip
TAG_NAMES = st.sampled_from(
    ["İstanbul", "İ", "ΣΑΣ", "Caturday", "STRASSE", "ß", "ǅungla", "\u212a", "ﬁ", "", "python"]
) | st.text(max_size=6)
PRESENT = st.sampled_from([None, {}, {"id": "1"}])
OPTIONAL_TEXT = st.none() | st.just("") | st.text(max_size=8)

fields_lists = (
    st.none()
    | st.sampled_from(["not a list", [1]])
    | st.lists(
        st.fixed_dictionaries(
            {}, optional={"name": st.none() | HTML, "value": st.none() | HTML, "verified_at": TIMES}
        ),
        max_size=4,
    )
)
mentions_lists = st.none() | st.lists(
    st.fixed_dictionaries(
        {}, optional={"id": IDS, "acct": ACCTS, "url": MAYBE_URL, "username": NAMES}
    ),
    max_size=4,
)
tags_lists = st.none() | st.lists(
    st.fixed_dictionaries({"name": TAG_NAMES}, optional={"url": MAYBE_URL})
    | st.just({"url": "https://x.example/tags/nameless"}),
    max_size=4,
)
applications = st.none() | st.fixed_dictionaries(
    {}, optional={"name": OPTIONAL_TEXT, "website": st.none() | st.just("") | URLS}
)
QUOTE_STATES = st.sampled_from([None, "", "accepted", "pending", "revoked", "deleted"])
quotes = st.none() | st.fixed_dictionaries(
    {"state": QUOTE_STATES},
    optional={
        "quoted_status": st.none()
        | st.fixed_dictionaries({}, optional={"uri": st.none() | st.just("") | URLS}),
        "quoted_status_id": st.just("109"),
    },
)
moves = st.none() | st.fixed_dictionaries(
    {}, optional={"acct": ACCTS, "url": MAYBE_URL, "username": NAMES}
)

ACCOUNT_CHANGES: dict[str, st.SearchStrategy[Any]] = {
    "id": IDS,
    "acct": ACCTS,
    "username": st.none() | NAMES,
    "url": MAYBE_URL,
    "display_name": OPTIONAL_TEXT,
    "note": MAYBE_HTML | st.just(5),  # (not a str: read as "#noindex")
    "fields": fields_lists,
    "noindex": ODD_FLAGS,
    "indexable": ODD_FLAGS,
    "locked": ODD_FLAGS,
    "discoverable": ODD_FLAGS,
    "group": ODD_FLAGS,
    "bot": ODD_FLAGS,
    "moved": moves,
    "created_at": TIMES,
    "followers_count": COUNTS,
}
STATUS_CHANGES: dict[str, st.SearchStrategy[Any]] = {
    "content": MAYBE_HTML,
    "uri": URLS,
    "url": MAYBE_URL,
    "in_reply_to_id": IDS,
    "mentions": mentions_lists,
    "tags": tags_lists,
    "application": applications,
    "quote": quotes,
    "replies_count": COUNTS,
    "reblogs_count": COUNTS,
    "favourites_count": COUNTS,
    "quotes_count": COUNTS,
    "language": st.sampled_from(["", None, "en", "EN", "pt-BR", 7]),
    "spoiler_text": MAYBE_HTML,
    "visibility": st.sampled_from([None, "", "public", "unlisted", "PUBLIC", 5]),
    "sensitive": ODD_FLAGS,
    "poll": PRESENT,
    "card": PRESENT,
    "emojis": st.none() | st.lists(st.just({}), max_size=3),
    "media_attachments": st.none() | st.lists(st.just({"type": "image"}), max_size=3),
    "edited_at": TIMES,
}


@st.composite
def reply_targets(draw: st.DrawFn, status: dict[str, Any]) -> Any:
    """An in_reply_to_account_id: the author's id or a mention's, as str or int, or another."""
    own = [status["account"].get("id")] if isinstance(status["account"], dict) else []
    mentioned = status.get("mentions")
    if isinstance(mentioned, list):
        own += [m.get("id") for m in mentioned if isinstance(m, dict)]
    ids: list[Any] = [None]
    for value in own:
        if value is None:
            continue
        ids += [value, str(value)]
        if isinstance(value, str) and value.isascii() and value.isdigit():
            ids.append(int(value))
    return draw(st.sampled_from(ids) | IDS)


@st.composite
def cases(
    draw: st.DrawFn, account_changes: int = 6, status_changes: int = 8
) -> tuple[dict[str, Any], str | None]:
    """(status, observed_on): a base status with some of its fields changed."""
    observed_on, base = draw(st.sampled_from(bases()))
    status = copied(base)
    account = status["account"]
    for key in draw(st.sets(st.sampled_from(sorted(ACCOUNT_CHANGES)), max_size=account_changes)):
        account[key] = draw(ACCOUNT_CHANGES[key])
    for key in draw(st.sets(st.sampled_from(sorted(STATUS_CHANGES)), max_size=status_changes)):
        status[key] = draw(STATUS_CHANGES[key])
    if draw(st.booleans()):
        status["in_reply_to_account_id"] = draw(reply_targets(status))
    if draw(st.booleans()):
        status["account"] = dict(reversed(account.items()))  # another key order
    origin = host_of(status["uri"]) if isinstance(status["uri"], str) else None
    observed = draw(
        st.sampled_from([observed_on, None, "", origin, (origin or "").upper()]) | HOSTS
    )
    return status, observed


ingested_times = st.just(INGESTED) | st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]),
)

SETTINGS = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run_case(
    case: tuple[dict[str, Any], str | None],
    ingested_at: datetime,
    opted_out: bool | None,
    consent: str | None,
    route: str,
) -> None:
    status, observed_on = case
    checked = validated(status, route)
    if isinstance(checked, Rejection):
        event(f"rejected by validation ({checked.field})")
        return
    if checked.coerced:
        event("validation coerced a field")
    if "account.locked" in checked.coerced:
        event("coerced account.locked")
    check(checked, observed_on, ingested_at, opted_out, consent)


# ----------------------------------------------------------------------------------------
# the tests


def test_native_is_built_and_used():
    """The module is importable, built for this Post and these Structs, and the public
    to_post goes through it."""
    module = native()
    assert status_module._native is module, (
        "tootlake.record.status does not use tootlake_native (TOOTLAKE_NATIVE=0 in the "
        "environment, or a build for other fields): run `make install`"
    )


# The explicit cases: each a (status, observed_on) pair
EXAMPLES: list[tuple[dict[str, Any], str | None]] = [
    # a quote post: its fallback paragraph, in Mastodon's form and another server's
    (
        minimal(
            content=QUOTE_INLINE + "<p>my take &amp; more</p>",
            quote={"state": "accepted", "quoted_status": {"uri": "https://o.example/s/2"}},
        ),
        "example.social",
    ),
    (
        minimal(
            content="<p>before</p><P class='quote-inline'>RE: x<p class=quote-inline>RE: y",
            quote={"state": "pending", "quoted_status": {"uri": ""}},
        ),
        None,
    ),
    # a bare mention while no local host is known (the author is qualified): its url's host,
    # else the observing instance, else the origin
    (
        minimal(
            account={"acct": "alice@remote.example", "url": None},
            mentions=[{"id": "9", "acct": "bob", "url": None}],
            in_reply_to_account_id="9",
        ),
        None,
    ),
    (
        minimal(
            account={"acct": "alice@remote.example"},
            mentions=[
                {"id": 9, "acct": "bob", "url": "HTTPS://Mention.EXAMPLE:8443/@bob"},
                {"id": "10", "acct": "carol", "url": "no scheme"},
            ],
            in_reply_to_account_id=9,
        ),
        "",
    ),
    # self-replies: the author's id as str, the reply's as int, and the other way round
    (minimal(account={"id": "42"}, in_reply_to_account_id=42), "example.social"),
    (minimal(account={"id": 42}, in_reply_to_account_id="42"), "example.social"),
    (
        minimal(
            account={"id": "042"},
            in_reply_to_account_id=42,
            mentions=[{"id": 42, "acct": "zed"}],
        ),
        None,
    ),
    # hosts upper-case and beyond ASCII (lower() lengthens İ)
    (
        minimal(
            uri="https://BÜCHER.example/users/alice/statuses/1",
            account={"url": "https://İ.example:8443/@alice"},
        ),
        None,
    ),
    (
        minimal(
            uri="https://ΣΑΣ.example/users/alice/statuses/1",
            account={"url": None, "moved": {"acct": "alice", "url": "https://\u212a.example"}},
        ),
        None,
    ),
    # tags beyond ASCII
    (minimal(tags=[{"name": "İ"}, {"name": "İstanbul"}, {"name": "ΣΑΣ"}]), "example.social"),
    # opt-out tags as entities in profile fields (with a `#` in `&#35;`, and without one)
    (minimal(account={"fields": [{"name": "about", "value": "&#35;nobot"}]}), None),
    (minimal(account={"fields": [{"name": "&num;nobot", "value": "&num;noindex"}]}), None),
    (minimal(account={"note": "<p>＃ｎｏｂｏｔ</p>", "fields": [{"value": "＃ｎｏｂｏｔ"}]}), None),
    # observed_on ""
    (minimal(), ""),
    (minimal(account={"url": None}), ""),
    # a uri without "://": no origin (a bare author gets an empty host)
    (minimal(uri="tag:example.social,2024:objectId=1", account={"url": None}), None),
    (minimal(uri="example.social/users/alice/statuses/1"), "example.social"),
    # a wrong-typed locked, coerced (locked for consent, unknown in the post)
    (minimal(account={"locked": "yes", "indexable": True}), "example.social"),
]


def test_examples_are_valid_statuses():
    """The explicit examples below are not skipped as Rejections."""
    for status, _ in EXAMPLES:
        for route in ("validate", "decode"):
            assert isinstance(validated(status, route), ValidStatus), (status, route)


def _with_examples(test: Any) -> Any:
    for case in EXAMPLES:
        for route in ("validate", "decode"):
            test = example(
                case=case, ingested_at=INGESTED, opted_out=None, consent=None, route=route
            )(test)
    return test


@_with_examples
@settings(max_examples=2000, **SETTINGS)
@given(
    case=cases(),
    ingested_at=ingested_times,
    opted_out=st.sampled_from(OPTED_OUT),
    consent=st.sampled_from(CONSENTS),
    route=st.sampled_from(["validate", "decode"]),
)
def test_native_post_equals_python_on_mutated_real_statuses(
    case, ingested_at, opted_out, consent, route
):
    native()
    run_case(case, ingested_at, opted_out, consent, route)


@settings(max_examples=1000, **SETTINGS)
@given(
    case=cases(account_changes=12, status_changes=14),
    opted_out=st.sampled_from(OPTED_OUT),
    consent=st.sampled_from(CONSENTS),
    route=st.sampled_from(["validate", "decode"]),
)
def test_native_post_equals_python_with_many_fields_changed(case, opted_out, consent, route):
    native()
    run_case(case, INGESTED, opted_out, consent, route)


# who the post names: the author, the mentioned accounts, the account replied to, the move
_IDENTITY_ACCOUNT = ("id", "acct", "username", "url", "moved")
_IDENTITY_STATUS = ("uri", "mentions")


@st.composite
def identity_cases(draw: st.DrawFn) -> tuple[dict[str, Any], str | None]:
    status = minimal()
    for key in draw(st.sets(st.sampled_from(_IDENTITY_ACCOUNT))):
        status["account"][key] = draw(ACCOUNT_CHANGES[key])
    for key in draw(st.sets(st.sampled_from(_IDENTITY_STATUS))):
        status[key] = draw(STATUS_CHANGES[key])
    status["in_reply_to_account_id"] = draw(reply_targets(status))
    origin = host_of(status["uri"]) if isinstance(status["uri"], str) else None
    observed = draw(st.sampled_from([None, "", origin, "example.social"]) | HOSTS)
    return status, observed


@settings(max_examples=1500, **SETTINGS)
@given(
    case=identity_cases(),
    opted_out=st.sampled_from(OPTED_OUT),
    route=st.sampled_from(["validate", "decode"]),
)
def test_native_post_names_accounts_as_python_does(case, opted_out, route):
    native()
    run_case(case, INGESTED, opted_out, None, route)


@st.composite
def consent_cases(draw: st.DrawFn) -> tuple[dict[str, Any], str | None]:
    status = minimal()
    account = status["account"]
    for key in ("note", "fields", "noindex", "indexable", "locked"):
        if draw(st.booleans()):
            account[key] = draw(ACCOUNT_CHANGES[key])
    if draw(st.booleans()):
        status["content"] = draw(HTML)
    return status, "example.social"


@settings(max_examples=1500, **SETTINGS)
@given(
    case=consent_cases(),
    opted_out=st.sampled_from(OPTED_OUT),
    consent=st.sampled_from(CONSENTS),
    route=st.sampled_from(["validate", "decode"]),
)
def test_native_post_reads_opt_outs_and_text_as_python_does(case, opted_out, consent, route):
    native()
    run_case(case, INGESTED, opted_out, consent, route)


def test_coerced_locked_is_unknown_in_both():
    status = minimal(account={"locked": "yes", "indexable": True})
    for route in ("validate", "decode"):
        checked = validated(status, route)
        assert isinstance(checked, ValidStatus)
        assert "account.locked" in checked.coerced
        assert checked.data.account.locked is True  # read as locked by the gates
        post = check(checked, "example.social", INGESTED, None, None)
        assert post is not None
        assert post.locked is None and post.consent == "opt-out"


def test_native_answers_every_real_status():
    """The fast path is not vacuous: every real recorded status that validates (as a dict
    and as JSON bytes) gets a native Post, equal to the Python's: observed where it was, for
    every opted_out and consent; observed nowhere and on "", working both out."""
    native()
    answered = 0
    for observed_on, status in bases():
        for route in ("validate", "decode"):
            checked = validated(status, route)
            if isinstance(checked, Rejection):
                continue
            ways = [(observed_on, o, c) for o in OPTED_OUT for c in CONSENTS]
            ways += [(None, None, None), ("", None, None)]
            for observed, opted_out, consent in ways:
                post = check(checked, observed, INGESTED, opted_out, consent)
                assert post is not None, (
                    f"native to_post answered None for {status['uri']!r} ({route}, "
                    f"observed_on={observed!r}, opted_out={opted_out!r}, consent={consent!r})"
                )
                answered += 1
    assert answered > 20_000, answered  # ~1,050 statuses, twice, 14 ways each


def test_an_exception_in_what_native_calls_reaches_the_caller_once():
    """A KeyboardInterrupt (or any exception) raised by a Python function the native
    to_post calls was swallowed, and the Python then ran the status again from the start."""
    status = validate_status(minimal(content="<div>word</div>"))
    assert isinstance(status, ValidStatus)
    calls = []

    def interrupted(html):
        calls.append(html)
        raise KeyboardInterrupt

    helpers = (_HELPERS[0], interrupted, *_HELPERS[2:])
    with pytest.raises(KeyboardInterrupt):
        native().to_post(status, "a.example", INGESTED, None, None, helpers)
    assert len(calls) == 1


def test_an_opted_out_given_is_kept_as_given():
    status = validate_status(minimal(content="<p>x</p>"))
    assert isinstance(status, ValidStatus)
    for value in (1, 0, True, False):
        got = native().to_post(status, "a.example", INGESTED, value, None, _HELPERS)
        want = to_post_python(status, "a.example", INGESTED, opted_out=value)
        assert got == want
        assert type(got.opted_out) is type(want.opted_out) is type(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(USUAL_TIMES | TIMES)
def test_an_account_created_at_is_read_as_parse_time_does(value):
    """The native reads Mastodon's usual time itself (a call to `parse_time` cost as much as
    the rest of the field); any other form, or a date out of range, goes to `parse_time`."""
    status = validated(minimal(account={"created_at": value}), "validate")
    assert isinstance(status, ValidStatus)
    post = check(status, "observer.example", datetime(2026, 1, 1, tzinfo=UTC), None, None)
    assert post is not None  # the native answered
    want = parse_time(value)
    assert post.account_created_at == want
    assert shape(post.account_created_at) == shape(want)
    if want is not None:
        assert post.account_created_at.tzinfo is want.tzinfo
