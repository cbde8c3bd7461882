"""Redaction of secrets from text that leaves the process: log lines, error messages, the
collector's state and health files.

    from tootlake.redact import redact, register_secret
    register_secret(token)          # load_settings() registers every token it loads
    redact("401 for Authorization: Bearer SECRÉT☃")  # -> '401 for Authorization: Bearer ***'

Three rules, all applied by `redact()`:

* whatever follows the word `Bearer` (any case, any characters up to the next whitespace) is
  a token, known or not; so is the value of an `access_token=` URL parameter;
* every registered secret is masked wherever it appears, also spelled as Python's `repr`,
  JSON, UTF-8 bytes or a percent-encoded URL would spell it. Values shorter than
  `MIN_SECRET_LENGTH` are not registered: masking them would mangle ordinary words.

A leaf module (only the standard library), so every stage may use it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "redact",
    "redact_json",
    "register_secret",
]

MASK = "***"
MIN_SECRET_LENGTH = 8
# `Bearer` then the token: everything up to the next whitespace. A token that is itself
# `Bearer` ("Bearer Bearer x") does not hide the one after it.
_BEARER = re.compile(r"(bearer)(\s+)(?:bearer\s+)*\S+", re.IGNORECASE)
_QUERY = re.compile(r"(access_token=)()[^&#\s]+", re.IGNORECASE)

_lock = threading.Lock()
_secrets: set[str] = set()
_known: re.Pattern[str] | None = None


def _spellings(secret: str) -> set[str]:
    """The ways a secret shows up in text: as is, escaped by repr/ascii/JSON, as bytes, in a
    URL."""
    forms = {
        secret,
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe="", errors="surrogatepass"),
        repr(secret.encode("utf-8", "surrogatepass"))[2:-1],
    }
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def register_secret(*secrets: str | None) -> None:
    """Mask these values (tokens) in everything `redact()` sees from now on."""
    global _known
    new = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
    with _lock:
        if new <= _secrets:
            return
        _secrets.update(new)
        forms = set().union(*(_spellings(s) for s in _secrets))
        # Longest first, so a secret containing another is masked whole.
        _known = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def redact(text: str) -> str:
    """`text` without bearer tokens and registered secrets (each replaced by `***`)."""
    known = _known
    if known is not None:
        text = known.sub(MASK, text)
    text = _BEARER.sub(_mask_bearer, text)
    if "access_token=" in text.lower():
        text = _QUERY.sub(_mask_bearer, text)
    return text


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
