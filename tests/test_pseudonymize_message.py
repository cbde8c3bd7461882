"""`Pseudonymizer.message` (log lines, reject reasons and audit messages of pseudonymised
runs) on long hostile text: the URL pattern is tried only where a URL can start, so a long
word costs time linear in its length, and it finds the URLs the plain pattern found."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tootlake.record import pseudonymize
from tootlake.record.pseudonymize import Pseudonymizer, is_pseudonym_url

# The pattern before (quadratic: tried at every letter of a run of scheme characters)
_PLAIN_URL = re.compile(r"(?P<origin>[a-z][a-z0-9+.-]*://[^/\s'\"]+)[^\s'\"]*", re.IGNORECASE)
_HASH = "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"  # (no run of 8 digits, which `message` masks)

_pieces = st.sampled_from(
    [*"aZh1+.-:/'\"@é\\?# \n", "//", "://", "http", "https://", "x.example", "/p/"]
    + [_HASH, "/p/" + _HASH]
)
texts = st.lists(_pieces, max_size=40).map("".join) | st.text(max_size=60)


def _plain(text: str) -> str:
    def origin(m: re.Match[str]) -> str:
        return m[0] if is_pseudonym_url(m[0]) else m["origin"] + "/…"

    return _PLAIN_URL.sub(origin, text)


@settings(max_examples=2_000, deadline=None)
@given(texts)
def test_urls_are_found_and_cut_as_the_plain_pattern_cut_them(text: str) -> None:
    assert pseudonymize._URL.sub(pseudonymize._url_origin, text) == _plain(text)


_LONG = 200_000  # characters: the plain pattern took about 4 minutes on the first of these


@pytest.mark.timeout(60)  # (a guard against a hang, not a speed target: about 0.1 s here)
@pytest.mark.parametrize(
    "text",
    [
        "a" * _LONG,
        "a." * (_LONG // 2),
        "a-" * (_LONG // 2),
        "a+" * (_LONG // 2),
        "'" + "a" * _LONG,
        "@a@" + "a." * (_LONG // 2) + "!",
        "a@" + "a." * (_LONG // 2),
        "https://" + "a." * (_LONG // 2) + "/users/",
    ],
    ids=["letters", "dots", "dashes", "pluses", "quoted", "mention", "bare", "profile"],
)
def test_a_long_hostile_message_is_read_in_linear_time(text: str) -> None:
    out = Pseudonymizer(b"k" * 16).message(text)
    assert len(out) <= len(text) + 64


def test_a_url_keeps_only_its_origin_and_what_came_before_it() -> None:
    message = Pseudonymizer(b"k" * 16).message
    assert message("failed: 1.https://x.example/@zoe/1?a=b, then") == (
        "failed: 1.https://x.example/… then"
    )
    assert message("see +http://x.example/a/b and -ftp://y.example/c") == (
        "see +http://x.example/… and -ftp://y.example/…"
    )
    kept = "https://x.example/p/" + _HASH
    assert message(f"gone: {kept}") == f"gone: {kept}"
