"""tootlake_native (native/, Rust) gives what the pure Python functions of tootlake.text give,
exactly, on any input: `simple_text` is `_simple_text(_with_newlines(html))` (None for ""),
`count_words` is `len(text.split())`, `may_hold_tag` is `_may_hold_tag`; for a str with lone
surrogates (which cannot be UTF-8) the last two answer None, and `simple_text` the Python
answer, which is None too unless the surrogates went with a paragraph break's attributes.

Compared on documents strung from the pieces that matter to the regular expressions of
tootlake.text (Mastodon's tags and entities, breaks in every case and spacing, number signs
and what may follow them, every character `str.isspace()` knows, characters that fold or case
fold to ASCII), on any text, on the real recordings' contents and bios as they are and
mutated, and character by character over all of Unicode."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tootlake.text import _may_hold_tag, _simple_text, _with_newlines

from .conftest import all_real_statuses, native
from .test_text_fastpath import ODD_PIECE, TEXT, mastodon_html


def _has_surrogates(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


# The Python answers, as the native functions must give them.
def python_simple_text(html: str) -> str | None:
    # None for a str with lone surrogates: the native code has no UTF-8 to read there, and
    # html_to_text then asks the parser, which agrees with the fast path wherever that
    # answers (tests/test_text_fastpath.py; test_lone_surrogates_give_none checks the text)
    if not html or _has_surrogates(html):
        return None
    return _simple_text(_with_newlines(html))


def python_count_words(text: str) -> int | None:
    return None if _has_surrogates(text) else len(text.split())


def python_may_hold_tag(html: str) -> bool | None:
    return None if _has_surrogates(html) else _may_hold_tag(html)


def check_simple_text(html: str) -> None:
    got = native().simple_text(html)
    want = python_simple_text(html)
    assert got == want and type(got) is type(want), (
        f"simple_text({html!r}): native {got!r}, Python {want!r}"
    )


def check_count_words(text: str) -> None:
    got = native().count_words(text)
    want = python_count_words(text)
    assert got == want and type(got) is type(want), (
        f"count_words({text!r}): native {got!r}, Python {want!r}"
    )


def check_may_hold_tag(html: str) -> None:
    got = native().may_hold_tag(html)
    want = python_may_hold_tag(html)
    assert got is want, f"may_hold_tag({html!r}): native {got!r}, Python {want!r}"


SETTINGS = settings(
    max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

# Every character Python's str.split() and the `\s` of `re` split on (\x1c-\x1f too, which
# Unicode's White_Space does not have).
WHITESPACE = [chr(c) for c in range(0x110000) if chr(c).isspace()]
# (character by character: lone surrogates have their own test)
NOT_SURROGATE = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]

FRAGMENTS = [
    # Mastodon's markup, breaks in every spelling, tags that are not simple
    "<p>", "</p>", "<br>", "<br/>", "<br />", "<BR>", "<Br/>", "<br/ >", '<br class="x">',
    '<P class="x">', "<P>", "</P>", "</p>\n<p>", "</p> <p>", "</p><p>", '</p>\u3000<p class="x">',
    '<p class="x">', "<p\tclass=x>", "<p\x1c>", "<pre>", "</pre>", '<span class="invisible">',
    '<span class="ellipsis">', '<a href="https://x/?a=1&b=2" rel="nofollow">',
    '<a href="x" class="mention hashtag">', "<a>", "</a>", "<blockquote>", "</blockquote>",
    "<b>", "</b>", "<B>", "<bx>", "<span>", "</span>", "<span/>", '<span  class="x">',
    '<a href="a\rb">', '<a href="\x00">', "<a href='x'>", "<code>", "<li>", "</ul>",
    # entities, Mastodon's and others
    "&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&apos;", "&nbsp;", "&amp;lt;", "&amp;amp;",
    "&#35;", "&#x23;", "&#X23", "&num;", "&#035nobot", "&#350;", "&foo;", "&AMP;", "&nbsp",
    "&#039;", "&#110;",
    # number signs and what may follow them
    "#", "#<span>", "#nobot", "#news", "#NixOS", "#n", "#no", "#N", "#nO", "#N0", "#n_",
    "#<b>", "#<span>n", "#<", "n", "N", "o", "O", "no", "bot", "s", "index",
    # what the parser drops or reads otherwise
    "<!-- c -->", "<!--", "-->", "<?pi?>", "<!", "<?", '<b x=a"b>', '<b x="a>b">', "<b x='a>",
    '"', "'", "<", ">", "&", "</", "/", "=", ";", "\x00", "\r", "\r\n", "\n", "\t", "\x0c",
    "\x0b", "\ufeff", "\uff03", "\ufe5f", "\uff4e", "\u00ad", "\u200b", "\u2060", "\U000e0020",
    # letters beyond ASCII, some of which (case) fold to ASCII ones
    "\u017f", "\u212a", "\u0130", "\u0131", "\xe9", "\xdf", "\u0416", "\u4e2d", "\U0001f600",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "\x7f", "\x85", "\x9f", "\ufffd", "\uffff",
    # lone surrogates, and a paragraph break's attributes (which `_with_newlines` removes)
    "\ud800", "\udfff", "</p><p ", "</p> <p\n", " x=",
]  # fmt: skip
FRAGMENT = st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(WHITESPACE), st.text(max_size=3))
SOUP = st.lists(FRAGMENT, max_size=30).map("".join)
# Mastodon-like documents (mostly answered by the fast path), some with odd pieces (these
# take a few milliseconds each to draw: fewer of them)
MASTODON = mastodon_html(TEXT) | st.builds(
    lambda html, piece, where: html[:where] + piece + html[where:],
    mastodon_html(TEXT),
    ODD_PIECE | FRAGMENT,
    st.integers(0, 400),
)


def _real_texts() -> tuple[list[str], list[str]]:
    contents: set[str] = set()
    notes: set[str] = set()
    for _, _, status in all_real_statuses():
        for each in (status, status.get("reblog") or {}):
            if each.get("content"):
                contents.add(each["content"])
            if (each.get("account") or {}).get("note"):
                notes.add(each["account"]["note"])
    return sorted(contents), sorted(notes)


REAL_CONTENTS, REAL_NOTES = _real_texts()
REAL = REAL_CONTENTS + REAL_NOTES


@st.composite
def mutated_real(draw: st.DrawFn) -> str:
    """A real content or bio with a few changes: a piece put in (anywhere, or where markup,
    an entity or a number sign is), a span cut out, kept alone or put in capitals."""
    text = draw(st.sampled_from(REAL))
    for _ in range(draw(st.integers(0, 4))):
        marks = [i for i, c in enumerate(text) if c in "<>&#;\n "]
        if marks and draw(st.booleans()):
            at = draw(st.sampled_from(marks)) + draw(st.integers(0, 1))
        else:
            at = draw(st.integers(0, len(text)))
        end = min(len(text), at + draw(st.integers(0, 40)))
        kind = draw(st.sampled_from(["insert", "delete", "keep", "upper"]))
        if kind == "insert":
            text = text[:at] + draw(FRAGMENT | ODD_PIECE) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[end:]
        elif kind == "keep":
            text = text[at:] if draw(st.booleans()) else text[:at]
        else:
            text = text[:at] + text[at:end].upper() + text[end:]
    return text


# --- simple_text ---------------------------------------------------------------------------


@SETTINGS
@given(SOUP)
# before the first node: HTML whitespace and a BOM (skipped by libxml2), other spaces (not)
@example(" <p>a</p>")
@example("\n<p>a</p>")
@example("\ufeff<p>a</p>")
@example("\x0c<p>a</p>")
@example("\r<p>a</p>")
@example("\x0b<p>a</p>")
@example("\x1c<p>a</p>")
@example("\xa0<p>a</p>")
@example("\u3000<p>a</p>")
@example("<br>a")  # (a newline first)
@example("</p><p>a</p>")
# an end tag first
@example("</p>a")
@example("</")
@example("<")
@example("</span> <p>a</p>")
# the tag count
@example("<span>" * 250 + "a")
@example("<span>" * 251 + "a")
@example("<p>" + "<span></span>" * 124 + "a</p>")  # 250
@example("<p>" + "<span></span>" * 125 + "a</p>")  # 252
@example("<b>" + "<br>" * 300 + "a")  # (breaks are no tags)
@example("<p>" + "</p><p>" * 300 + "a</p>")
# `&` in an attribute: looked at only when the text holds an `&` too
@example('<p><a href="https://x/?a=1&b=2" rel="nofollow">x</a> &amp; y</p>')
@example('<p><a href="https://x/?a=1&b=2" rel="nofollow">x</a> y</p>')
@example('<p><a href="https://x/?a=1&amp;b=2">x</a> &amp;</p>')
@example('<p><a href="&foo;">x</a> &lt;</p>')
# capitals: breaks in any case, other tags only in lower case
@example("<P>a</P>")
@example("<p>a<BR>b</p>")
@example("<p>a<Br/>b<bR />c</p>")
@example("<p>a</P><P>b</p>")
@example("<p>a</p><P CLASS=x>b</p>")
@example("<B>x</B>")
@example('<p>x</p><SPAN class="x">y</SPAN>')
# a paragraph break: any spaces between, attributes after
@example('<p>a</p> \n\t <p class="x">b</p>')
@example("<p>a</p>\u3000\u2028<p>b</p>")
@example("<p>a</p>\x1c\x1d\x1e\x1f<p>b</p>")  # (`\s` of `re`; not Unicode's White_Space)
@example("<p>a</p>\x85<p>b</p>")
@example("<p>a</p>\r<p>b</p>")
@example("<p>a</p>\r\n<p\x0cclass=x>b</p>")
@example('a</p><p x=">">b')  # (the break ends at the first `>`)
@example("a</p><p\x1cclass>b")
@example("a</p><p/>b")
@example("a</p><pre>b</pre>")
@example("a</p><br><p>b")  # (breaks first, then `<br>`)
@example("a</p><p>b</p><p>c")
@example("a<br\x1c>b<br\u3000/>c<br\x85>d")
# what a paragraph break's attributes hold is gone before the fast path looks
@example("a&amp;b</p><p &x>c")
@example('a</p><p \r\x00 x="<">b')
@example("a</p><p <b>c")
@example("a</p><p \ud800>b")  # (a lone surrogate, gone with the break: see python_simple_text)
@example("a</p>\ud800<p>b")
@example("a<br/ >b")
@example("a<br//>b")
@example("a<brx>b")
# attributes as the sanitiser writes them, and not
@example('<span class="a" rel="b">x</span>')
@example('<span class="a"  rel="b">x</span>')
@example('<span class="a"rel="b">x</span>')
@example('<span Class="a">x</span>')
@example('<span data-x1="">x</span>')
@example("<span class='a'>x</span>")
@example('<span class="a>b">x</span>')
@example('<a href="x\ry">a</a>')  # (CR and NUL in an attribute are not in the text)
@example('<a href="x\x00y">a</a>')
# entities
@example("<p>&amp;amp;&amp;lt;&lt;&gt;&quot;&#39;&apos;&nbsp;</p>")
@example("<p>&am<b>p;</b></p>")
@example("<p>&AMP;</p>")
@example("<p>&#039;</p>")
@example("<p>&nbsp</p>")
@example("<p>&</p>")
@example("<p>a&</p>")
@example("&amp;")
# NUL, CR, a bare `<`
@example("<p>a\rb</p>")
@example("<p>a\x00b</p>")
@example("<p>x<3</p>")
@example("<p>a<!-- c -->b</p>")
@example("a")
@example("\x00")
@example("\r")
def test_simple_text(html):
    check_simple_text(html)


@settings(SETTINGS, max_examples=1500)
@given(MASTODON)
def test_simple_text_mastodon_like(html):
    check_simple_text(html)


@SETTINGS
@given(st.text())
def test_simple_text_any_text(html):
    check_simple_text(html)


@SETTINGS
@given(mutated_real())
def test_simple_text_real_mutated(html):
    check_simple_text(html)


# --- count_words ---------------------------------------------------------------------------


@SETTINGS
@given(SOUP)
@example("")
@example(" ")
@example("a\x1cb\x1dc\x1ed\x1ff")  # (Python's whitespace, not Unicode's White_Space)
@example("a\x85b\xa0c\u1680d\u2000e\u200af\u2028g\u2029h\u202fi\u205fj\u3000k")
@example("a\u180eb\u200bc\u2060d\ufeffe")  # (no whitespace)
@example("a\x00b\x01c")
@example("\t\n\x0b\x0c\r")
@example(" one  two\nthree\n\n")
def test_count_words(text):
    check_count_words(text)


@SETTINGS
@given(st.text())
def test_count_words_any_text(text):
    check_count_words(text)


@SETTINGS
@given(mutated_real())
def test_count_words_real_mutated(text):
    check_count_words(text)


# --- may_hold_tag --------------------------------------------------------------------------


@SETTINGS
@given(SOUP)
# the number of looks past tags (`_TAG_LOOKS`)
@example("#<b>a" * 4)
@example("#<b>a" * 5)
@example("#<b>a" * 6)
@example("#<b>a" * 4 + "#<b>n")
@example("#<b>a " * 3 + "#<span>news " * 5 + "#<b>a")
@example("#<span>a" * 10)
@example("#<span><b>a" * 5)
@example("#<b" * 2000)
@example("#<" * 1000 + ">n")
@example("#<b" * 1000 + "#nobot")
# unterminated and unbalanced quotes
@example('#<b x="a>b">nobot')
@example('#<b x="a>nobot')
@example("#<b x='a>nobot")
@example('#<b x=a"b>nobot')
@example('#<b x=a"b>nobot">')
@example("#<b x=\"'>n")
@example("#<b x='\"'>\"n")
@example('#<a title=">">bot')
@example('#<a title=">">nobot')
# what follows a number sign
@example("#n")
@example("#N")
@example("#no")
@example("#nO")
@example("#N0")
@example("#nx")
@example("#nz")
@example("#n_")
@example("#n-")
@example("#n\xe9")
@example("#ne")
@example("#\x00")
@example("#\x7f")
@example("#\x80")
@example("#\xe9")
@example("#\uff4e")
@example("#&")
@example("#<span>")
@example("#<span>n")
@example("#<span>news")
@example("#<span>NixOS #<span>nobot")
@example("#<span><span>n")
@example("#<SPAN>news")
@example("#<!")
@example("#<?")
@example("#<<!")
@example("#<b><!-- -->")
@example("#<b>" + "<i>" * 10 + "n")
@example("#")
@example("##n")
# number signs as entities and compatibility forms
@example("&#35;nobot")
@example("&#35nobot")
@example("&#035nobot")
@example("&#350;")
@example("&#x23nobot")
@example("&#X0023;")
@example("&#x2")
@example("&num;")
@example("&numero")
@example("&NUM;")
@example("&#3 5")
@example("&#0000035")
@example("&#x00023")
@example("\uff03")
@example("\ufe5f")
@example("")
def test_may_hold_tag(html):
    check_may_hold_tag(html)


@SETTINGS
@given(st.text())
def test_may_hold_tag_any_text(html):
    check_may_hold_tag(html)


@SETTINGS
@given(mutated_real())
def test_may_hold_tag_real_mutated(html):
    check_may_hold_tag(html)


# --- every character, the real recordings, lone surrogates ---------------------------------


def _first_mismatch(check, make, characters):
    """Check `make(c)` for each character c, a few thousand to a call (on a mismatch, one by
    one, so that the message names the character)."""
    for start in range(0, len(characters), 4096):
        chunk = characters[start : start + 4096]
        try:
            check(make("".join(chunk)))
        except AssertionError:
            for character in chunk:
                check(make(character))
            raise


def test_every_character():
    native()
    # Words: each character between letters (one word, or two around a space).
    _first_mismatch(check_count_words, lambda s: "a".join(s) + "a", NOT_SURROGATE)
    # Text: each character in a paragraph, in an attribute (but those the fast path refuses).
    plain = [c for c in NOT_SURROGATE if c not in "<&\x00\r"]
    _first_mismatch(check_simple_text, lambda s: f"<p>{'|'.join(s)}</p>", plain)
    value = [c for c in plain if c not in '">']
    _first_mismatch(check_simple_text, lambda s: f'<a href="{s}">x</a>', value)
    # One by one where a single character decides: first, after a break or a number sign.
    for character in NOT_SURROGATE[:0x3100] + WHITESPACE + NOT_SURROGATE[-64:]:
        for html in (
            f"{character}<p>a</p>",
            f"a</p>{character}<p>b",
            f"a<br{character}>b",
            f'<a href="{character}">{character}</a>',
        ):
            check_simple_text(html)
        for html in (f"#{character}", f"#n{character}", f"#<b>{character}", f"#<span>{character}"):
            check_may_hold_tag(html)
        check_count_words(character)


def test_real_contents_and_bios():
    native()
    assert len(REAL_CONTENTS) > 400 and len(REAL_NOTES) > 200
    for html in REAL:
        check_simple_text(html)
        check_count_words(html)
        check_may_hold_tag(html)
        text = native().simple_text(html)
        if text is not None:
            check_count_words(text)


def test_real_contents_take_the_fast_path():
    """The fast path is not vacuous: native answers itself for (measured) every real content
    with markup, all 515 of them."""
    with_markup = [html for html in REAL_CONTENTS if "<" in html or "&" in html]
    answered = [html for html in with_markup if native().simple_text(html) is not None]
    assert len(with_markup) > 500
    assert len(answered) >= 0.99 * len(with_markup), (len(answered), len(with_markup))


SURROGATE = st.characters(categories=["Cs"])


@settings(SETTINGS, max_examples=1000)
@given(SOUP | st.text(), st.lists(st.tuples(SURROGATE, st.integers(0, 400)), min_size=1))
@example("", [("\ud800", 0)])
@example("<p>a</p>", [("\udfff", 3)])
@example("#n", [("\ud83d", 2)])
@example("a b", [("\udc80", 1)])
@example("&#35;nobot", [("\ud800", 10)])
@example("a</p><p >b", [("\ud800", 7)])  # gone with the paragraph break
def test_lone_surrogates_give_none(text, surrogates):
    for surrogate, where in surrogates:
        text = text[:where] + surrogate + text[where:]
    assert native().count_words(text) is None, repr(text)
    assert native().may_hold_tag(text) is None, repr(text)
    assert native().simple_text(text) is None, repr(text)
    # html_to_text's answer is the Python's all the same (the parser's, where the fast path
    # would have answered: one in a paragraph break's attributes is gone before it looks)
    assert _html_to_text_with(native(), text) == _html_to_text_with(None, text), repr(text)


def _html_to_text_with(helpers, html: str) -> str:
    import tootlake.text

    kept, tootlake.text._native = tootlake.text._native, helpers
    try:
        return tootlake.text.html_to_text(html)
    finally:
        tootlake.text._native = kept


def test_the_empty_string():
    assert native().simple_text("") is None
    assert native().count_words("") == 0
    assert native().may_hold_tag("") is False
