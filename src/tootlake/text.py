"""Plain text from Mastodon's status HTML: pure functions, no I/O.

Mastodon sends `content` as sanitized HTML: `<p>` paragraphs, `<br>` line breaks, links whose
long URLs are split into `<span class="invisible">` and `<span class="ellipsis">` parts, and
hashtags/mentions as `<a>#<span>tag</span></a>`. The text a person reads is what we keep:
paragraphs joined by a blank line, `<br>` as a newline, entities decoded, and the invisible
parts of links kept so that URLs stay whole.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser

# Break tags become newlines before parsing, so the parser's text() has them already; one
# regex pass is far cheaper than walking the tree in Python.
_PARAGRAPH_BREAK = re.compile(r"</p>\s*<p(?:\s[^>]*)?>", re.IGNORECASE)
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_OPT_OUT_TAG = re.compile(r"#(?:nobot|noindex|nosearch)\b", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")


def html_to_text(html: str | None) -> str:
    """Return the plain text of a status' HTML `content`."""
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return html
    html = _LINE_BREAK.sub("\n", _PARAGRAPH_BREAK.sub("\n\n", html))
    body = LexborHTMLParser(html).body
    return body.text(deep=True) if body is not None else ""


def count_words(text: str) -> int:
    """Words as a reader counts them: runs of non-space characters."""
    return len(text.split())


def has_opt_out_tag(note_html: str | None) -> bool:
    """True when a bio carries #nobot, #noindex or #nosearch (the fediverse's opt-out tags)."""
    if not note_html or "#" not in note_html:
        return False
    # Hashtags in a bio are rendered as `#<span>nobot</span>`: drop tags before matching.
    return _OPT_OUT_TAG.search(_TAGS.sub("", note_html)) is not None
