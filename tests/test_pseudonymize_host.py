"""The host a pseudonymised uri keeps (`scheme://host/p/<hash>`) comes from host_of, the
per-post parser, then _is_host; it was a near-copy of an older host_of (`_old_host` below,
kept as the reference). The two agree on every url but one kind: a backslash before the
first `/`, `?` or `#`, then an `@`. host_of ends the host at the backslash, as browsers do;
the old parser read on to the last `@`; urllib reads `x\\` as userinfo. Two readings, one
of which is a name (`https://x\\@alice`: `alice` to the old parser, `https://alice\\@x`:
`alice` to host_of), so such a uri keeps no host at all (`urn:p:<hash>`)."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tootlake.record.pseudonymize import Pseudonymizer, _is_host, _kept_host
from tootlake.record.status import host_of

P = Pseudonymizer(bytes(range(32)))


def _old_host(url: str, scheme_end: int) -> str:
    """The pseudonymiser's own parser before it called host_of (verbatim)."""
    if scheme_end <= 0:
        return ""
    rest = url[scheme_end + 3 :]
    for stop in "/?#":
        rest = rest.partition(stop)[0]
    host = rest.rpartition("@")[2].lower()  # never a user:password@
    return host if _is_host(host) else ""


def _authority(url: str) -> str:
    """What follows `://` up to the first `/`, `?` or `#` (written apart from both parsers)."""
    return re.split(r"[/?#]", url[url.find("://") + 3 :], maxsplit=1)[0]


# characters that end, split or disguise a host, in both cases, and beyond ASCII (`İ` lowers
# to two characters, `１` is a digit to str.isalnum and \d, U+0301 a combining mark)
_CHARS = "aZx9.-_:@\\/?#[]%İßéK\u0301１ｆ\u200b \n\x00"
_SCHEMES = st.sampled_from(["https", "HTTP", "h-t+p.1", "", "ünï", "x", "://"])
_SEPARATORS = st.sampled_from(["://", "://", "://", ":///", ":/", ":", ""])
_USERINFO = st.one_of(
    st.sampled_from(["", "", "alice@", "Alice:pw@", "@", "a@b@", "x\\@", "@\\"]),
    st.text(_CHARS, max_size=6).map(lambda s: s + "@"),
)
_HOSTS = st.one_of(
    st.sampled_from(
        [
            "far.example", "FAR.Example", "[::1]", "[]", "[::G]", "İ.example", "ß.de",
            "e\u0301.example", "ｆａｒ.example", "a_b", "alice", "", "x.", ".",
        ]
    ),
    st.text(_CHARS, max_size=10),
)  # fmt: skip
_PORTS = st.sampled_from(["", "", ":443", ":8080", ":", ":99999", ":123456", ":abc", ":１２"])
_AFTER = st.sampled_from(["", "", "\\", "\\@alice", "\\users\\alice", "\\@x.example", "\\a@"])
_TAILS = st.one_of(
    st.sampled_from(["", "/", "/@alice", "/users/alice", "?q=@a", "#f@x", "/p\\@a", "?", "#"]),
    st.text(_CHARS, max_size=8),
)
URLS = st.one_of(
    st.tuples(_SCHEMES, _SEPARATORS, _USERINFO, _HOSTS, _PORTS, _AFTER, _TAILS).map("".join),
    st.text(_CHARS, max_size=24),
    st.text(max_size=24),
)


@settings(max_examples=3000)
@given(url=URLS)
@example(url="https://x\\@alice/p")  # the old parser: `alice`, a name in the path
@example(url="https://alice\\@x/p")  # host_of: `alice`, a name in the userinfo to urllib
@example(url="https://far.example\\users\\alice")  # both: "" and "far.example"
@example(url="://x/")  # no scheme: host_of finds `x`, the pseudonymiser keeps nothing
@example(url="HTTPS://Alice:pw@Far.Example:443/?q#f")
def test_the_kept_host_is_the_old_one_but_where_a_backslash_gives_two_readings(url):
    scheme_end = url.find("://")
    old, new = _old_host(url, scheme_end), _kept_host(url, scheme_end)
    if "\\" in _authority(url) or scheme_end <= 0:
        assert new == ""  # (and `old`, a host after the backslash, was a bug when not "")
        if old:
            assert "\\" in _authority(url) and "\\" not in old
    else:
        assert new == old
    # the composition: host_of then _is_host, nothing of its own but the backslash refusal
    assert new in ("", host_of(url))
    assert new == "" or _is_host(new)


def test_the_urls_where_the_old_parser_and_the_new_differ():
    """Only a backslash then an `@` in the authority: each kept a different host."""
    differ = {"https://x\\@alice/p": "alice", "https://alice\\@x/p": "x"}
    for url, old in differ.items():
        assert _old_host(url, url.find("://")) == old
        assert _kept_host(url, url.find("://")) == ""
        assert P.uri(url).startswith("urn:p:") and P.url(url).startswith("urn:p:")
    # with no `@` after it the old parser kept nothing either (a backslash is no host's)
    url = "https://far.example\\users\\alice"
    assert _old_host(url, url.find("://")) == _kept_host(url, url.find("://")) == ""
    # in the query or fragment a backslash ends nothing: both keep the host
    for url in ("https://x.example?\\@alice", "https://x.example#\\@alice"):
        assert _old_host(url, url.find("://")) == _kept_host(url, url.find("://")) == "x.example"


def test_a_uri_keeps_its_scheme_and_host_as_before():
    assert P.uri("HTTPS://Alice:pw@Far.Example:443/x").startswith("https://far.example:443/p/")
    assert P.uri("http://[::1]:8080/@alice").startswith("http://[::1]:8080/p/")
    assert P.uri("://far.example/x").startswith("urn:p:")
    assert P.uri("h-t://far.example/x").startswith("urn:p:")  # a scheme of letters only
