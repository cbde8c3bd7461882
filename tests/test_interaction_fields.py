"""The record's interaction and account-flag columns (issues 13 and 12): mentions qualified as
the author's acct is, the replied-to account from the mention list or the author, the quoted
post's uri and state, the account's flags and move, and the quote fallback paragraph left
out of the text. Each expected value is worked out here from the status dict alone."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tootlake.record import decode_status, from_status
from tootlake.record.status import _without_quote_fallback

from .conftest import real_status

SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
OBSERVER = "mastodon.social"
HOSTS = ["mastodon.social", "fosstodon.org", "xn--bcher-kva.example", "odd.example:8443"]
NAMES = st.text(alphabet=st.sampled_from(list("abcXYZ_09.-é\"'<>&")), min_size=1, max_size=8)


@st.composite
def mentions(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(0, 4))):
        name, host = draw(NAMES), draw(st.sampled_from(HOSTS))
        local = host == OBSERVER
        out.append(
            {
                "id": draw(st.sampled_from([str(1000 + i), 1000 + i])),
                "username": name,
                "url": f"https://{host}/@{name}",
                "acct": name if local else f"{name}@{host}",
            }
        )
    return out


def expected_acct(mention: dict[str, Any]) -> str:
    """Qualified: a bare acct is local to the observer (whose host its url carries)."""
    acct = mention["acct"]
    return acct if "@" in acct else f"{acct}@{mention['url'].split('/')[2]}"


@SETTINGS
@given(
    found=mentions(),
    reply=st.sampled_from(["none", "self", "mention", "unknown"]),
    pick=st.integers(0, 3),
    quote=st.sampled_from(["none", "full", "shallow", "hidden"]),
    flags=st.fixed_dictionaries(
        {k: st.none() | st.booleans() for k in ("indexable", "discoverable", "locked", "group")}
    ),
    moved=st.sampled_from([None, "new", "new@elsewhere.example"]),
    quotes=st.none() | st.integers(0, 10**6),
)
def test_interaction_columns_are_what_the_status_says(
    found, reply, pick, quote, flags, moved, quotes
):
    status = copy.deepcopy(real_status("mastodonsocial.json", 17))
    account = status["account"]
    author = f"{account['username']}@mastodon.social"
    status["mentions"] = found
    want_reply = None
    if reply == "self":
        status["in_reply_to_account_id"] = account["id"]
        want_reply = author
    elif reply == "mention" and found:
        target = found[pick % len(found)]
        status["in_reply_to_account_id"] = str(target["id"])
        want_reply = expected_acct(next(m for m in found if str(m["id"]) == str(target["id"])))
    elif reply == "unknown":
        status["in_reply_to_account_id"] = "999999"
    else:
        status["in_reply_to_account_id"] = None
    status["quote"] = {
        "none": None,
        "full": {"state": "accepted", "quoted_status": {"uri": "https://q.example/s/1"}},
        "shallow": {"state": "accepted", "quoted_status_id": "42"},
        "hidden": {"state": "revoked", "quoted_status": None},
    }[quote]
    status["quotes_count"] = quotes
    for key, value in flags.items():
        account[key] = value
    if moved:
        account["moved"] = {"acct": moved, "url": f"https://mastodon.social/@{moved}"}
    for post in (
        from_status(status, OBSERVER),
        from_status(json.dumps(status).encode(), OBSERVER),
    ):
        assert post.mentions == [expected_acct(m) for m in found]
        assert post.in_reply_to_acct == want_reply
        assert post.quote_uri == ("https://q.example/s/1" if quote == "full" else None)
        assert post.quote_state == (None if quote == "none" else status["quote"]["state"])
        assert post.quotes_count == quotes
        names = ("indexable", "discoverable", "locked", "group")
        assert tuple(getattr(post, k) for k in names) == tuple(flags[k] for k in names)
        if moved is None:
            assert post.moved_to is None
        else:
            assert post.moved_to == (moved if "@" in moved else f"{moved}@mastodon.social")


def test_old_statuses_read_the_new_columns_as_null_or_empty():
    status = real_status("mastodonsocial.json", 17)
    for key in ("mentions", "quote", "quotes_count"):
        status.pop(key, None)
    for key in ("indexable", "discoverable", "locked", "group", "moved"):
        status["account"].pop(key, None)
    post = from_status(status, OBSERVER)
    assert post.mentions is None and post.in_reply_to_acct is None and post.quote_uri is None
    assert (post.indexable, post.locked, post.group, post.moved_to) == (None,) * 4


def test_quote_fallback_paragraph_is_not_counted_in_the_text():
    status = real_status("mastodonsocial.json", 17)
    status["content"] = (
        '<p class="quote-inline">RE: <a href="https://q.example/@a/1">'
        "q.example/@a/1</a></p><p>two words</p>"
    )
    status["quote"] = {"state": "accepted", "quoted_status": {"uri": "https://q.example/s/1"}}
    post = from_status(status, OBSERVER)
    assert post.text == "two words" and post.characters == 9 and post.words == 2


@SETTINGS
@given(
    where=st.sampled_from(
        [
            ("mentions", 5),
            ("mentions", [{"acct": 5}]),
            ("mentions", [{"id": [1]}]),
            ("quote", "yes"),
            ("quote", {"quoted_status": {"uri": 1}}),
            ("quotes_count", -1),
            ("account.indexable", "yes"),
            ("account.group", 1),
            ("account.moved", "x"),
            ("account.moved", {"acct": 3}),
        ]
    )
)
def test_a_wrong_typed_new_field_is_null_and_counted_never_a_reject(where):
    status = real_status("mastodonsocial.json", 17)
    path, value = where
    node = status
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    checked = decode_status(json.dumps(status))
    assert not hasattr(checked, "reason"), checked
    assert path in checked.coerced  # type: ignore[union-attr]
    post = from_status(status, OBSERVER)
    column = {"account.moved": "moved_to", "quote": "quote_uri"}.get(path, path.split(".")[-1])
    assert getattr(post, column) is None


def test_a_wrong_typed_locked_flag_reads_as_locked_for_the_gates_and_is_stored_as_unknown():
    """`locked` decides the opt-in consent gate: a value that cannot be read never means
    collect (the rule of visibility, noindex and the bio). The column says what was sent:
    not known (null), not the safe value the gates used."""
    from tootlake.record import Consent, validate_status

    status = real_status("mastodonsocial.json", 17)
    status["account"]["locked"] = "no"
    status["account"]["indexable"] = True
    checked = validate_status(status)
    assert Consent("opt-in").gate(checked) == "locked"
    assert Consent(skip_locked=True).gate(checked) == "locked"
    post = from_status(status, OBSERVER)
    assert post.locked is None and post.consent == "opt-out"


# The quote fallback cut, against the plain regular expression it replaces (which scanned
# to the end of the content from every opening without a closing </p>: quadratic).
_FALLBACK_REFERENCE = re.compile(
    r"<p class=[\"']?quote-inline[\"']?>.*?</p>", re.DOTALL | re.IGNORECASE
)
_PIECES = ["<p class=quote-inline>", "<P CLASS='quote-inline'>", "</p>", "</P>", "RE: ", "<p>",
           "x", "\n", "<p class=\"quote-inline\">"]  # fmt: skip


@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_the_quote_fallback_cut_agrees_with_the_regular_expression(pieces: list[str]) -> None:
    content = "".join(pieces)
    got = _without_quote_fallback(content)
    if '<p class="quote-inline">' in content and "</p>" in content[content.find('<p class="') :]:
        # Mastodon's own form: its first paragraph cut by string work
        start = content.find('<p class="quote-inline">')
        end = content.find("</p>", start)
        assert got == content[:start] + content[end + 4 :]
    else:
        assert got == _FALLBACK_REFERENCE.sub("", content)


def test_openings_without_a_closing_leave_the_content_as_it_is() -> None:
    content = "<p class=quote-inline>" * 5000 + "words " * 10000
    assert _without_quote_fallback(content) == content
