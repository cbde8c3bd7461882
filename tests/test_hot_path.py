"""What the hot path's shortcuts (issue 14) must keep: the post `to_post` builds positionally
has every field where its name says, a status given as a dict is checked for lone surrogates
whatever its integers, and the collector's bridge hands events over in order."""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tootlake.record import Post, ValidStatus, decode_status, from_status, validate_status
from tootlake.sources import UPDATE, Event
from tootlake.sources.fleet import _Bridge

from .conftest import real_status

SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_positional_post_has_each_field_under_its_name():
    status = real_status("mastodonsocial.json", 17)
    post = from_status(status, "mastodon.social")
    by_name = msgspec.structs.asdict(post)
    assert by_name["uri"] == status["uri"]
    assert by_name["id"] == str(status["id"])
    assert by_name["observed_on"] == "mastodon.social"
    assert by_name["account_id"] == str(status["account"]["id"])
    assert by_name["visibility"] == status["visibility"]
    assert by_name["characters"] == len(by_name["text"])
    assert by_name["opted_out"] is False
    # the same post built with keywords
    assert Post(**by_name) == post


BIG = st.sampled_from([2**63, 2**64 - 1, 2**64, 10**30, -(2**63) - 1, 7])
TEXT = st.sampled_from(["plain", "caf\xe9", "half \ud83d an emoji", "\udc00"])


@SETTINGS
@given(account_id=BIG, reply_to=BIG, note=TEXT, name=TEXT)
def test_dict_and_bytes_agree_with_big_integers_and_surrogates(account_id, reply_to, note, name):
    """A dict is checked for lone surrogates by encoding it (MessagePack first, JSON where
    MessagePack cannot hold an integer): the outcome is the one its JSON text gets."""
    status: dict[str, Any] = copy.deepcopy(real_status("mastodonsocial.json", 17))
    status["account"]["id"] = account_id
    status["account"]["note"] = note
    status["account"]["display_name"] = name
    status["in_reply_to_account_id"] = reply_to
    from_dict = validate_status(status)
    from_text = decode_status(json.dumps(status, ensure_ascii=True))
    assert type(from_dict) is type(from_text)
    if isinstance(from_dict, ValidStatus):
        assert isinstance(from_text, ValidStatus)
        assert from_dict.data == from_text.data
        assert set(from_dict.coerced) == set(from_text.coerced)
    else:
        assert from_dict == from_text


def _event(n: int) -> Event:
    return Event(UPDATE, "example.org", id=str(n))


def test_bridge_hands_over_everything_queued_in_order():
    bridge = _Bridge(capacity=100, max_bytes=10**6)
    assert bridge.offer([_event(1)])
    assert bridge.offer([_event(2), _event(3)])
    assert bridge.offer([_event(4)])
    assert bridge.size == 4
    taken = bridge.take(0.01)
    assert taken is not None
    assert [e.id for e in taken] == ["1", "2", "3", "4"]
    assert bridge.size == 0 and bridge.bytes == 0
    assert bridge.take(0.01) is None


def test_bridge_stays_bounded():
    bridge = _Bridge(capacity=2, max_bytes=10**6)
    assert bridge.offer([_event(1), _event(2)])
    assert not bridge.offer([_event(3)])  # full: the loop retries
    assert [e.id for e in bridge.take(0.01) or []] == ["1", "2"]
    assert bridge.offer([_event(3)])


def _opt_out_reference(note_html: str | None) -> bool:
    """has_opt_out_tag without its pre-check, spelled out: the bio's text as `html_to_text`
    gives it, NFKC, every format character (Cf, as unicodedata says) removed, the expression."""
    import unicodedata

    from tootlake.text import _OPT_OUT_TAG, html_to_text

    text = unicodedata.normalize("NFKC", html_to_text(note_html))
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return _OPT_OUT_TAG.search(text) is not None


NOTE_PARTS = st.sampled_from(
    ["#", "no", "No", "NO", "nO", "n", "o", "N", "O", "bot", "BOT", "index", "Index", "search",
     "bots", "archive", "ARCHIVE", "s", "<span>", "</span>", "<a href=\"x\">", "</a>", " ",
     "\u0130", "\u0131", "\u212a", "\u017f", "x", "#noſearch", "#noındex", "<b>", "</b>",
     "<p>", "</p>", "<br>", "&#35;", "&#x23;", "&num;", "&#110;", "&amp;", "&", ";", "\u200b",
     "\u00ad", "\U000e0020", "\uff03", "\ufe5f", "\uff4e", "\uff4f", "<!--", "-->", "<?x",
     ">", "'", '"', "<a title=\">\">", "\x00", "\u2060", "ne", "Nz", "n0", "#<span>n", "#n"]
)  # fmt: skip


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(NOTE_PARTS | st.text(max_size=4), max_size=12).map("".join))
@example("#<span>No</span><span>Bot</span>")
@example("&#35;nobot")
@example("#n&#111;bot")
@example("#no&shy;archive")
@example("#no\u200bbot")
@example("#\uff4e\uff4f\uff42\uff4f\uff54")
@example("#no<!-- > -->bot")
@example("#<span>n</span>obot")
@example('#<b x=a"b>nobot">')  # (libxml2 ends an unquoted value at `>`, quotes and all)
@example("&#35nobot")  # (an entity without its `;`)
@example("&#x23nobot")
@example("&#035nobot")
@example("#<span>news</span> #<span>nobot</span>")
def test_opt_out_pre_check_changes_no_answer(note):
    from tootlake.text import has_opt_out_tag

    assert has_opt_out_tag(note) == _opt_out_reference(note)


def test_the_opt_out_pre_check_looks_past_few_tags_in_a_hostile_bio(monkeypatch):
    """A bio of thousands of `#<b` with no `>`: each look past tags scans to its end, so
    looking at each took seconds for 48 KB (quadratic). A few looks, then the full check."""
    import tootlake.text as text

    looks = []

    class Counting:
        def __init__(self, pattern):
            self.pattern = pattern

        def match(self, html, at):
            looks.append(at)
            return self.pattern.match(html, at)

    monkeypatch.setattr(text, "_AFTER_NUMBER_SIGN", Counting(text._AFTER_NUMBER_SIGN))
    for bio in ("#<b" * 20_000, "#<" * 20_000 + ">", "#<b" * 20_000 + "#nobot"):
        looks.clear()
        assert text.has_opt_out_tag(bio) == _opt_out_reference(bio)
        assert len(looks) <= 8  # (a few, not one per `#<`)


def test_bridge_take_is_capped():
    """What a take hands over is bounded (events, bytes), so the loop refilling the bridge
    meanwhile cannot double what waits in memory."""
    from tootlake.sources.fleet import _TAKE_EVENTS

    bridge = _Bridge(capacity=10_000, max_bytes=10**9)
    for n in range(_TAKE_EVENTS + 44):
        assert bridge.offer([_event(n)])
    first = bridge.take(0.01) or []
    assert len(first) == _TAKE_EVENTS
    assert bridge.size == 44
    rest = bridge.take(0.01) or []
    assert [e.id for e in first + rest] == [str(n) for n in range(_TAKE_EVENTS + 44)]
    assert bridge.size == 0 and bridge.bytes == 0


def _host_reference(url: str | None) -> str | None:
    """host_of as it was: each of `/?#` cut in turn (and a backslash, as browsers do)."""
    if not url:
        return None
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    rest = url[scheme_end + 3 :]
    for stop in "/?#\\":
        cut = rest.find(stop)
        if cut >= 0:
            rest = rest[:cut]
    return rest.rpartition("@")[2].lower() or None


URL_PARTS = st.sampled_from(
    ["https://", "http://", "://", "/", "?", "#", "@", "Host.Example", "x", ":443", "", "\u0130",
     "\\"]
)


@SETTINGS
@given(st.lists(URL_PARTS | st.text(max_size=3), max_size=10).map("".join))
def test_host_of_is_the_cut_it_was(url):
    from tootlake.record import host_of

    assert host_of(url) == _host_reference(url)
