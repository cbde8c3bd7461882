"""Redaction of secrets from text that leaves the process: log lines, error messages, the
collector's state and health files.

    from tootlake.redact import redact, register_secret
    register_secret(token)          # load_settings() registers every token it loads
    redact("401 for Authorization: Bearer SECRÉT☃")  # -> '401 for Authorization: Bearer ***'

The rules, all applied by `redact()`:

* whatever follows the word `Bearer` (any case, any characters up to the next whitespace) is
  a token, known or not; so is the value of an `access_token=` URL parameter, and the
  password of a URL's `user:password@` (a schema registry's login, an endpoint's);
* every registered secret is masked wherever it appears, also spelled as Python's `repr`,
  JSON, UTF-8 bytes or a URL would spell it (percent-encoded all or in part, either case of
  hex, a space as `+`). Values shorter than `MIN_SECRET_LENGTH` are not registered: masking
  them would mangle ordinary words;
* a registered secret of at least `CUT_MIN_LENGTH` characters (an API token: Mastodon's are
  43) cut short (a message or body shortened to N characters before it got here) is masked
  where its first half, and at least `CUT_MIN_HEAD` characters, is left. (Less leaves most
  of it unknown; a shorter head, or a shorter secret's, masks ordinary words: the first 8
  characters of a 17-character test token, `hostile-`, ate the simulator's markers.)

A leaf module (the standard library and an Aho-Corasick automaton, `pyahocorasick`), so
every stage may use it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "MASK",
    "CUT_MIN_HEAD",
    "CUT_MIN_LENGTH",
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "redact",
    "redact_json",
    "register_secret",
]

MASK = "***"
MIN_SECRET_LENGTH = 8
CUT_MIN_LENGTH = 32  # secrets masked when cut short too (`_mask_known`)
CUT_MIN_HEAD = 16  # characters of such a secret that must be left to be masked
# `Bearer` then the token: everything up to the next whitespace. A token that is itself
# `Bearer` ("Bearer Bearer x") does not hide the one after it.
_BEARER = re.compile(r"(bearer)(\s+)(?:bearer\s+)*\S+", re.IGNORECASE)
_QUERY = re.compile(r"(access_token=)()[^&#\s]+", re.IGNORECASE)
# `scheme://user:password@host`: a URL carrying its login (`--schema-registry
# https://KEY:SECRET@...`) shows in library errors as given ("Invalid url ..."). The
# password cannot hold `/`, `@` or whitespace unencoded, so `https://host/@alice` is no match.
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/@:?#]*)(:)[^\s/@?#]+(?=@)", re.IGNORECASE)
# Characters a URL may leave as they are; any other is percent-encoded by some library
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

_lock = threading.Lock()
_secrets: set[str] = set()
# Every spelling of every secret, and the heads of the long ones (cut short), in one
# Aho-Corasick automaton: one pass over the text whatever their number. (A regex of them all
# tried each one at each character: with a fleet's thousand tokens, 7 ms per 2 KB reject
# and 0.3 s per health file.) Values: (length, the whole forms a head stands for).
_known: Any = None
_urls: re.Pattern[str] | None = None  # secrets as a URL may encode them (`_url_pattern`)


def _spellings(secret: str) -> set[str]:
    """The ways a secret shows up in text: as is, escaped by repr/ascii/JSON, as bytes.
    (In a URL: `_url_pattern`.)"""
    raw = secret.encode("utf-8", "surrogatepass")
    forms = {
        secret,
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(raw)[2:-1],
        # Inside a longer string holding both quotes, repr escapes a ' it otherwise keeps
        # (repr('said "' + secret)): the same forms with \' (the trailing '" forces it).
        repr(secret + "'\"")[1:-4],
        ascii(secret + "'\"")[1:-4],
        repr(raw + b"'\"")[2:-4],
    }
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _url_pattern(secret: str) -> str | None:
    """A regex of `secret` in a URL however it was encoded: each character that is not
    unreserved as is or percent-encoded (hex in either case; a space also as `+`), as
    urllib's quote, quote_plus and yarl (which keeps `/` but encodes `+`) each do in part."""
    if all(c in _UNRESERVED for c in secret):
        return None  # a URL shows it as is: a plain form already
    parts = []
    for char in secret:
        if char in _UNRESERVED:
            parts.append(re.escape(char))
            continue
        hexes = "".join(
            f"%(?:{b:02X}|{b:02x})" if f"{b:02X}" != f"{b:02x}" else f"%{b:02X}"
            for b in char.encode("utf-8", "surrogatepass")
        )
        plus = "|\\+" if char == " " else ""
        parts.append(f"(?:{re.escape(char)}|{hexes}{plus})")
    return "".join(parts)


def register_secret(*secrets: str | None) -> None:
    """Mask these values (tokens) in everything `redact()` sees from now on."""
    global _known, _urls
    import ahocorasick

    new = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
    with _lock:
        if new <= _secrets:
            return
        _secrets.update(new)
        forms: dict[str, list[str]] = {}  # form or head -> the whole forms it begins
        urls: dict[str, int] = {}
        for secret in _secrets:
            for form in _spellings(secret):
                forms.setdefault(form, [])
                if len(secret) >= CUT_MIN_LENGTH:
                    forms.setdefault(form[: _head_length(form)], []).append(form)
            url = _url_pattern(secret)
            if url is not None:
                urls[url] = len(secret)
        known = ahocorasick.Automaton()
        for key, whole in forms.items():
            known.add_word(key, (len(key), tuple(whole)))
        known.make_automaton()
        _known = known
        # longest first, so a secret containing another is masked whole
        order = sorted(urls, key=lambda p: urls[p], reverse=True)
        _urls = re.compile("|".join(order)) if order else None


def redact(text: str) -> str:
    """`text` without bearer tokens and registered secrets (each replaced by `***`)."""
    known = _known
    if known is not None:
        text = _mask_known(text, known)
    urls = _urls
    if urls is not None:
        text = urls.sub(MASK, text)
    text = _BEARER.sub(_mask_bearer, text)
    if "access_token=" in text.lower():
        text = _QUERY.sub(_mask_bearer, text)
    if "://" in text:
        text = _USERINFO.sub(_mask_bearer, text)
    return text


def _head_length(form: str) -> int:
    return max(CUT_MIN_HEAD, len(form) // 2)


def _mask_known(text: str, known: Any) -> str:
    """`text` with every registered form masked, the longest where several begin, and every
    long secret that was cut short masked from its head (its first half or more) as far as
    the text goes on as the secret does. Messages are shortened before they reach
    `redact()` (an error body to 200 characters...), which can cut a token in two: its whole
    is no longer there to match, and its first part would be shown."""
    out: list[str] = []
    done = 0
    searching = True
    while searching and done < len(text):  # (iter_long refuses a start at the end)
        searching = False
        for end, (length, whole) in known.iter_long(text, done):
            start = end - length + 1
            stop = end + 1
            for form in whole:
                n = length
                while n < len(form) and start + n < len(text) and text[start + n] == form[n]:
                    n += 1
                stop = max(stop, start + n)
            out += (text[done:start], MASK)
            done = stop
            if stop > end + 1:  # masked beyond the match: search again from there
                searching = True
                break
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _mask_bearer(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}{MASK}"


def redact_json(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings...) with every string, keys too, redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_json(k): redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A handler filter: the final message (arguments merged), the exception and stack text
    and string `context` fields of a record are redacted, then passed through `clean` (e.g.
    `tootlake.text.for_terminal`, so remote text cannot drive the terminal). `single_line`:
    a newline in the message is written `\\n`, so remote text cannot forge a log line."""

    def __init__(
        self, clean: Callable[[str], str] | None = None, *, single_line: bool = False
    ) -> None:
        super().__init__()
        self._clean = clean
        self._single_line = single_line

    def _text(self, text: str) -> str:
        text = redact(text)
        return self._clean(text) if self._clean is not None else text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show what there is rather than nothing
            message = f"{record.msg!r} {record.args!r}"
        message = self._text(message)
        if self._single_line:
            message = message.replace("\r", "\\r").replace("\n", "\\n")
        record.msg, record.args = message, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._text(record.exc_text)
        if record.stack_info:
            record.stack_info = self._text(record.stack_info)
        context = getattr(record, "context", None)
        if isinstance(context, dict):
            record.context = {
                k: self._text(v) if isinstance(v, str) else v for k, v in context.items()
            }
        return True
