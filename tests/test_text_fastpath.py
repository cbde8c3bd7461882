"""The fast path of html_to_text gives libxml2's text: on Mastodon-like HTML it answers itself,
on anything else it hands the document to the parser, and either way the text is the one the
parser alone gives (html_to_text before the fast path)."""

from __future__ import annotations

from html.entities import html5

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tootlake.text import _parsed_text, _simple_text, _with_newlines, html_to_text

from .conftest import all_real_statuses

SETTINGS = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def parser_only(html: str | None) -> str:
    """html_to_text as it was before the fast path: every document through libxml2."""
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return html
    return _parsed_text(_with_newlines(html))


def fast_path(html: str) -> str | None:
    """The fast path's answer for `html` as html_to_text gives it: None when it falls back."""
    return _simple_text(_with_newlines(html))


# Mastodon-like HTML: the tags Mastodon's sanitiser keeps (4.x adds the formatting ones),
# nested at random and sometimes not nested at all (stray and unclosed tags), attributes as
# the sanitiser writes them, text with the entities it writes, any character but `<` and `&`
# (controls, non-characters, astral planes, bidi marks and separators too), all whitespace.
TAGS = ["p", "span", "a", "del", "s", "pre", "code", "em", "strong", "b", "i", "u"]
TAGS += ["ul", "ol", "li", "blockquote"]
ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&apos;", "&nbsp;", "&amp;lt;"]
SPACES = [" ", "  ", "\n", "\t", "\n\n", "\xa0", "\u2028", "\u3000", "\x0c", "\x0b", "\x85"]
CHARS = st.characters(codec="utf-8", exclude_characters="<&\x00\r")
TEXT = st.lists(
    st.text(CHARS, max_size=8) | st.sampled_from(ENTITIES) | st.sampled_from(SPACES), max_size=5
).map("".join)
BR = st.sampled_from(["<br>", "<br/>", "<br />", '<br class="x">'])
ATTRIBUTE_NAME = st.sampled_from(["href", "class", "rel", "target", "translate", "data-x1"])
ATTRIBUTE_VALUE = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters='"<>&'), max_size=12)
    | st.sampled_from(["&amp;", "https://example.org/@a", "mention hashtag", "invisible"]),
    max_size=3,
).map("".join)
ATTRIBUTES = st.lists(
    st.tuples(ATTRIBUTE_NAME, ATTRIBUTE_VALUE).map(lambda a: f' {a[0]}="{a[1]}"'), max_size=4
).map("".join)


START_TAG = st.builds("<{}{}>".format, st.sampled_from(TAGS), ATTRIBUTES)
END_TAG = st.sampled_from(TAGS).map("</{}>".format)


def mastodon_html(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Documents as Mastodon's start, with a start tag (before the first node the parser drops
    whitespace): paragraphs of nested tags, or tags in any order, closed or not, closing what
    was never opened; `text` between the tags."""
    inline = st.recursive(
        text | BR,
        lambda inner: st.builds(
            lambda tag, attributes, children: f"<{tag}{attributes}>{''.join(children)}</{tag}>",
            st.sampled_from(TAGS),
            ATTRIBUTES,
            st.lists(inner, max_size=4),
        ),
        max_leaves=12,
    )
    soup = st.lists(st.one_of(text, BR, START_TAG, END_TAG), max_size=12).map("".join)
    paragraphs = st.lists(
        st.builds(
            lambda attributes, inline, after: f"<p{attributes}>{''.join(inline)}</p>{after}",
            ATTRIBUTES,
            st.lists(inline, max_size=4),
            st.sampled_from(["", "\n", " "]),
        ),
        min_size=1,
        max_size=4,
    ).map("".join)
    return paragraphs | st.builds(str.__add__, START_TAG, inline | soup)


@SETTINGS
@given(mastodon_html(TEXT))
def test_fast_path_answers_mastodon_like_html_with_the_parsers_text(html):
    text = fast_path(html)
    assert text is not None, "fell back"
    assert text == parser_only(html)


# Anything at all: every character (lone surrogates too), and pieces of markup that are not
# Mastodon's (comments, CDATA, doctypes, raw-text and unknown tags, capitals, odd attributes),
# entity-like strings, odd characters (NUL, CR, a byte order mark, surrogates), strung together
# or dropped into Mastodon-like HTML, where they meet the fast path's limits.
ANY_CHARACTER = st.characters(exclude_categories=())
# One strategy a kind, so that each kind is drawn as often (Hypothesis weighs the leaves of
# one_of alike).
ODD_PIECE = st.one_of(
    st.sampled_from(
        ["<", ">", "</", "/>", "<3", "< p>", "<!--", "-->", "<!-- c -->", "<?xml ?>"]
        + ["<![CDATA[x]]>", "<!DOCTYPE html>", "<html>", "</html>", "<head>"]
    ),
    st.sampled_from(
        ["<script>", "</script>", "<style>", "<textarea>", "<title>", "<xmp>"]
        + ["<plaintext>", "<div>", "</div>", "<body>", "</body>", "<table>", "<td>"]
    ),
    st.sampled_from(
        ["<P>", "</P>", "<BR>", "<Br/>", "<Span>", "<span/>", "<p/>", "<br/ >"]
        + ["</br>", "</a> ", "<a>", "<p>", "</p>", "<pre>", "<li>", "</span>"]
        + ["</p><P>", "</p> <p>", '</p>\n<p class="x">', '<p class="x">']
    ),
    st.sampled_from(
        ["<a href='x>y'>", '<a title="x>y">', '<a title="a<b">', '<a  href="x">']
        + ['<a ="x>y">', '<a href = "x">', '<a title="x"y>', '<a\rhref="x">']
        + ['<a\x0chref="x">', "<a\thref=x>"]
    ),
    st.from_regex(r"&(#[xX]?[0-9a-fA-F]{0,8}|[a-zA-Z][a-zA-Z0-9]{0,8})?;?", fullmatch=True),
    st.sampled_from(["\x00", "\r", "\r\n", "\x0c", "\x0b", "\ufeff", "\ufffe", "\ud800"]),
    st.text(ANY_CHARACTER, max_size=3),
)


@SETTINGS
@given(st.text(ANY_CHARACTER) | st.lists(ODD_PIECE | TEXT | BR, max_size=20).map("".join))
def test_html_to_text_gives_the_parsers_text_for_any_input(html):
    assert html_to_text(html) == parser_only(html)


@settings(SETTINGS, max_examples=500)
@given(mastodon_html(TEXT), st.lists(ODD_PIECE, min_size=1, max_size=4), st.data())
def test_html_to_text_gives_the_parsers_text_for_mastodon_html_with_an_odd_piece(
    html, pieces, data
):
    # Each piece alone, dropped where each text begins (first, after each tag) and somewhere
    # at random.
    places = {0, data.draw(st.integers(0, len(html)))}
    places.update(i + 1 for i, c in enumerate(html) if c == ">")
    for piece in pieces:
        for where in sorted(places):
            odd = html[:where] + piece + html[where:]
            assert html_to_text(odd) == parser_only(odd), repr(odd)


def test_every_real_status_takes_the_fast_path_and_gets_the_parsers_text():
    checked = 0
    for where, _, status in all_real_statuses():
        for content in (status.get("content"), (status.get("reblog") or {}).get("content")):
            if content and ("<" in content or "&" in content):
                text = fast_path(content)
                assert text is not None, where
                assert text == parser_only(content), where
                checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    "html",
    [
        "<p>a<!-- note -->b</p>",
        "<p>a<![CDATA[x]]>b</p>",
        "<p>a<div>b</div></p>",
        "<P>a</P>",
        "<p>a <script>x</script></p>",
        "<p>a < b</p>",
        '<p><a href="x" title="y>z">a</a></p>',
        "<p><a href='x'>a</a></p>",
        "<p><a href=x>a</a></p>",
        "<p>&copy; &#x27; &amp</p>",
        "<p>a\x00b</p>",
        "<p>a\rb</p>",
        "<p>a\ud800b</p>",
        "\ufeff<p>a</p>",
        "  <p>a</p>",
        "<br><p>a</p>",
        "</span> <p>a</p>",
        "<span>" * 300 + "a",
    ],
    ids=lambda html: repr(html[:30]),
)
def test_odd_html_falls_back_to_the_parser(html):
    assert fast_path(html) is None
    assert html_to_text(html) == parser_only(html)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            '<p><span class="h-card" translate="no"><a href="https://ex.org/@ann" '
            'class="u-url mention">@<span>ann</span></a></span> hi &amp; bye</p>',
            "@ann hi & bye",
        ),
        ("<p>a</p>\n<p>b<br />c</p>", "a\n\nb\nc"),
        ("<p>x &lt;3 &quot;y&quot; &#39;z&#39;&nbsp;</p>", "x <3 \"y\" 'z'\xa0"),
        ("<ul><li>one</li><li>two</li></ul><pre><code>a\n  b</code></pre>", "onetwoa\n  b"),
        ("<p>a\x01b\x7f\x9f</p>", "a\x01b\x7f\x9f"),  # libxml2 keeps controls but NUL and CR
    ],
)
def test_mastodon_html_takes_the_fast_path(html, text):
    assert fast_path(html) == text == parser_only(html)


def test_every_latin1_and_some_special_characters_get_the_parsers_text():
    # Before the first node (where libxml2 skips whitespace and a byte order mark), in text
    # and in an attribute.
    characters = [chr(c) for c in range(0x100)]
    characters += list("\u200b\u200e\u202e\u2028\u2029\u3000\ufeff\ufffd\ufffe\uffff\U0001f600")
    for char in characters:
        for html in (f"{char}<b>x</b>", f"<p>a{char}b</p>", f'<a title="{char}">x</a>'):
            assert html_to_text(html) == parser_only(html), repr(html)


def test_every_named_and_some_numeric_entities_get_the_parsers_text():
    references = [f"&{name}" for name in html5] + [f"&#{n};" for n in range(0x200)]
    references += ["&#x27;", "&#X27;", "&#0039;", "&#xd800;", "&#x110000;", "&#99999999999;"]
    for reference in references:
        for html in (f"<p>a{reference}b</p>", f"<p>{reference}</p>", f"<p>x</p><p>{reference}"):
            assert html_to_text(html) == parser_only(html), repr(html)
