"""Plain text from Mastodon's status HTML: pure functions, no I/O.

Mastodon sends `content` as sanitized HTML: `<p>` paragraphs, `<br>` line breaks, links whose
long URLs are split into `<span class="invisible">` and `<span class="ellipsis">` parts, and
hashtags/mentions as `<a>#<span>tag</span></a>`. The text a person reads is what we keep:
paragraphs joined by a blank line, `<br>` as a newline, entities decoded, and the invisible
parts of links kept so that URLs stay whole.
"""

from __future__ import annotations

import html as html_lib
import re
import threading
import unicodedata

from lxml import etree

from tootlake._native import native

# The C-speed versions of `_simple_text(_with_newlines(...))`, `count_words` and
# `_may_hold_tag` (tootlake._native), equal to the Python below on any input
# (tests/test_native.py); None without them, and then the Python runs.
_native = native

# Break tags become newlines before parsing, so the parser's text() has them already; one
# regex pass is far cheaper than walking the tree in Python.
_PARAGRAPH_BREAK = re.compile(r"</p>\s*<p(?:\s[^>]*)?>", re.IGNORECASE)
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# The tags people put in a bio or a profile field to keep bots, indexes and archives away
# (docs/research.md says where each comes from).
OPT_OUT_TAGS = ("nobot", "nobots", "noindex", "nosearch", "noarchive")
_OPT_OUT_TAG = re.compile(r"#(?:nobots?|noindex|nosearch|noarchive)\b", re.IGNORECASE)
# A necessary condition for an opt-out tag, on the raw HTML (`_may_hold_tag`): a number sign
# (also as ＃ or ﹟, which NFKC folds to #, or an entity) followed, past any tags, by what can
# become an `n`: n or N (unless an ASCII letter or digit other than o follows it: every tag
# starts with `no`, and such a pair is text that no markup, entity or folding changes), an
# entity, a character beyond ASCII (ｎ, a format character), or NUL (libxml2 drops it), or a
# comment or processing instruction (`<!`, `<?`: the parser drops them, and what they hide).
# (possessive: Mastodon's `#<span>` then a letter other than n is not looked at again)
# (the plain # only, so that the scan runs at string speed; ＃ and ﹟ are rare: full check)
# (`#<span>news`, `#<span>NixOS`: about one bio in thirty went to the full check for them)
_MAY_BE_N = "(?:[nN](?![0-9A-NP-Za-np-z])|[&\x00\x80-\U0010ffff])"
_NUMBER_SIGN_THEN = re.compile(f"#(?:<span>)?+(?:{_MAY_BE_N}|<)")
_ANY_TAG = r"""<(?:[^>"']|"[^"]*"|'[^']*')*>"""
_AFTER_NUMBER_SIGN = re.compile(rf"(?:{_ANY_TAG})*(?:{_MAY_BE_N}|<[!?])")
# ...and as a tag that ends at its first `>`: libxml2 ends an unquoted attribute value there,
# quote characters and all (`<b x=a"b>nobot`), where `_ANY_TAG` reads a quoted value on
_AFTER_NUMBER_SIGN_PLAIN = re.compile(rf"(?:<[^>]*>)*(?:{_MAY_BE_N}|<[!?])")
_TAG_LOOKS = 4  # number signs followed by a tag looked past, at most (see `_may_hold_tag`)
# (no `;` needed: libxml2 and html.unescape read `&#35nobot` as #nobot)
_NUMBER_SIGN_ENTITY = re.compile(r"&(?:#0*35|#[xX]0*23|num)")
# Unicode's format characters (category Cf, Unicode 14), which a reader does not see
_FORMAT_CHARS = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)
_TAGS = re.compile(r"<[^>]*>")
# One lxml parser per thread: parser objects must not be shared between threads.
_local = threading.local()

# The fast path. Mastodon's sanitiser writes a small, regular HTML: these tags, attributes as
# ` name="value"`, and `&amp; &lt; &gt; &quot; &#39; &apos; &nbsp;` as the only entities. For
# such a document libxml2's text is the document without its tags, entities decoded, so string
# work gives it for a fraction of a parse; anything else goes to the parser.
# tests/test_text_fastpath.py checks, on any input, that the two agree.
# (the most frequent first: a regex alternation tries its names in order, and at most one
# name can be followed by ` ` or `>` at a given place, so the order changes no match)
_SIMPLE_TAG_NAMES = "span|a|p|br|b|blockquote|code|del|em|i|li|ol|pre|s|strong|u|ul"
_SIMPLE_TAG = re.compile(
    rf'<(?:/(?:{_SIMPLE_TAG_NAMES})|(?:{_SIMPLE_TAG_NAMES})(?: [a-z0-9-]++="[^"<>]*+")*+)>'
)
_ENTITY_CHARS = {
    "amp": "&",
    "lt": "<",
    "gt": ">",
    "quot": '"',
    "#39": "'",
    "apos": "'",
    "nbsp": "\xa0",
}
_ENTITY = re.compile(f"&({'|'.join(_ENTITY_CHARS)});")
_ODD_ENTITY = re.compile(f"&(?!(?:{'|'.join(_ENTITY_CHARS)});)")
# What libxml2 skips before a document's first node: HTML whitespace and a byte order mark.
_SKIPPED_AT_START = " \t\n\x0c\r\ufeff"
# libxml2 stops reading at 255 open elements: a document with fewer tags cannot get there.
_MAX_TAGS = 250


def _parser() -> etree.HTMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.HTMLParser(
            remove_comments=True, remove_pis=True, no_network=True, recover=True
        )
    return parser


def html_to_text(html: str | None) -> str:
    """Return the plain text of a status' HTML `content`."""
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return html
    if _native is not None:
        text = _native.simple_text(html)
        return _parsed_text(_with_newlines(html)) if text is None else text
    html = _with_newlines(html)
    text = _simple_text(html)
    return _parsed_text(html) if text is None else text


def _with_newlines(html: str) -> str:
    """`html` with its paragraph breaks and `<br>` as newlines, for either path."""
    return _LINE_BREAK.sub("\n", _PARAGRAPH_BREAK.sub("\n\n", html))


def _simple_text(html: str) -> str | None:
    """The text of `html` (breaks already newlines) when it holds only what Mastodon's
    sanitiser writes, by string work; None for anything else."""
    # What comes before the first node (whitespace, also after an end tag) libxml2 may skip.
    if html[0] in _SKIPPED_AT_START or html.startswith("</"):
        return None
    text, tags = _SIMPLE_TAG.subn("", html)
    # Another tag, a comment or a bare `<`; too many tags; NUL and CR, which libxml2 drops or
    # turns into LF (other control characters it keeps as they are).
    if "<" in text or tags > _MAX_TAGS or "\x00" in text or "\r" in text:
        return None
    if not html.isascii():
        try:
            html.encode()
        except UnicodeEncodeError:  # lone surrogates (from JSON): libxml2 stops there
            return None
    if "&" in text:
        if _ODD_ENTITY.search(html):
            return None
        text = _ENTITY.sub(lambda entity: _ENTITY_CHARS[entity[1]], text)
    return text


def _parsed_text(html: str) -> str:
    """The text of `html` (breaks already newlines) by a real HTML parser: any input."""
    while html.startswith("<?"):
        # A processing instruction first, which the parser drops up to its `>`: dropped here,
        # as lxml checks a str for an XML encoding declaration with a regex that is quadratic
        # in what follows `<?xml` (40 KB of spaces took 2 s; the same text either way)
        end = html.find(">")
        html = html[end + 1 :] if end >= 0 else ""
    if not html:
        return ""
    try:
        # lxml (libxml2): a real HTML parser, and the fastest per small document we measured
        # (~9 us; lexbor pays ~20 us to set up each document, BeautifulSoup ~20x more).
        root = etree.fromstring(html, _parser())
        if root is None:
            return ""
        return str(etree.tostring(root, method="text", encoding="unicode"))
    except (etree.ParserError, ValueError):
        # Input libxml2 refuses (e.g. only a comment, control characters): text between tags.
        # (No tag ends after the last `>`: searched only up to it, so that each of many `<`
        # without a `>` is not a scan to the end of the text.)
        end = html.rfind(">") + 1
        return html_lib.unescape(_TAGS.sub("", html[:end]) + html[end:])


def count_words(text: str) -> int:
    """Words as a reader counts them: runs of non-space characters."""
    if _native is not None:
        words = _native.count_words(text)
        if words is not None:  # (None: lone surrogates)
            return words
    return len(text.split())


def has_opt_out_tag(note_html: str | None) -> bool:
    """True when a bio (or a profile field) carries #nobot, #nobots, #noindex, #nosearch or
    #noarchive, in any case: the fediverse's opt-out tags.

    Read as a person reads the bio: the text of its HTML (tags dropped, entities decoded, as
    `html_to_text` gives it), compatibility forms folded (NFKC: `＃ｎｏｂｏｔ` is #nobot, as
    Mastodon folds hashtags) and invisible format characters (Unicode Cf: soft hyphens,
    zero-width spaces) removed, so that no markup, entity or invisible character inside the
    tag hides it. `_may_hold_tag` first rules out, on the raw HTML, bios where no `#` can be
    followed by an `n`: most bios, whose hashtags start with another letter."""
    if not note_html:
        return False
    held = None if _native is None else _native.may_hold_tag(note_html)
    if not (_may_hold_tag(note_html) if held is None else held):  # (None: lone surrogates)
        return False
    text = html_to_text(note_html)
    if not text.isascii():
        text = _FORMAT_CHARS.sub("", unicodedata.normalize("NFKC", text))
    return _OPT_OUT_TAG.search(text) is not None


def _may_hold_tag(html: str) -> bool:
    """False when no opt-out tag can be in `html` (see `_AFTER_NUMBER_SIGN`): one scan for
    number signs by `_NUMBER_SIGN_THEN`, which passes over Mastodon's `#<span>` of hashtags
    and stops only where what follows may become an `n`; a tag there is checked in full."""
    if "&" in html and _NUMBER_SIGN_ENTITY.search(html) is not None:
        return True
    if "\uff03" in html or "\ufe5f" in html:
        return True
    for looked, found in enumerate(_NUMBER_SIGN_THEN.finditer(html)):
        at = found.end() - 1
        if html[at] != "<":
            return True
        # Each look past tags may scan to the end of a bio with no `>` where one is hoped
        # for: a look at each of a hostile bio's thousands of `#<` took seconds (quadratic).
        if looked >= _TAG_LOOKS:  # (every earlier number sign was a look)
            return True  # (the full check is linear)
        if (
            _AFTER_NUMBER_SIGN.match(html, at) is not None
            or _AFTER_NUMBER_SIGN_PLAIN.match(html, at) is not None
        ):
            return True
    return False


# ----------------------------------------------------------------------------------------
# Text for people: what reaches a terminal

# An escape sequence as a whole, in its 7-bit (ESC ...) and 8-bit (C1) forms: CSI with its
# parameters; OSC, DCS, SOS, PM and APC strings up to their terminator (BEL or ST), or to the
# end when unterminated, as a terminal would swallow them; any other ESC with its bytes.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
# Control characters (C0 but tab and newline, DEL, C1), bidirectional overrides, embeddings,
# isolates and marks (text that reads in another order than it is stored), and the Unicode
# line and paragraph separators.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_CHARS = re.compile(f"[{_UNSAFE}]")
_SURROGATES = re.compile("[\ud800-\udfff]")  # lone ones (from JSON): they cannot be printed
_JSON_UNSAFE = re.compile(f"[{_UNSAFE}\ud800-\udfff]")


def for_terminal(text: str) -> str:
    """`text` safe to print: without escape sequences (colours, titles, hyperlinks, cursor
    moves), control characters but tab and newline, and bidi controls. Untrusted text, from
    the fediverse or from a lake, goes through this before it reaches a terminal."""
    if text.isascii() and text.isprintable():
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _UNSAFE_CHARS.sub("", text)
    return _SURROGATES.sub("\ufffd", text)


def json_for_terminal(text: str) -> str:
    """JSON text (from `json.dumps(..., ensure_ascii=False)`) with the characters
    `for_terminal` removes written as `\\uXXXX` escapes: the same JSON value, safe to print.
    (json.dumps escapes C0 controls itself, but not DEL, C1, bidi controls or lone
    surrogates.)"""
    if text.isascii():
        return text.replace("\x7f", "\\u007f")
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def shorten(text: object, most: int) -> str:
    """`text` on one line (each run of white space one space), cut to at most `most`
    characters: its first `most - 1` and "…" when longer. For labels, and values an error
    quotes (None is "")."""
    value = "" if text is None else " ".join(str(text).split())
    return value if len(value) <= most else value[: most - 1].rstrip() + "…"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` with its noun, in the singular for one: "1 instance", "1,204 instances" (`plural`
    when adding an s will not do: "2 tries")."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
