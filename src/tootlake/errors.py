"""Errors raised by tootlake.

    TootlakeError                 every error tootlake raises on purpose
    ├── ConfigError               a bad flag, setting or environment value
    ├── MissingDependency         an optional extra is not installed (says what to pip install)
    ├── BadInput                  one malformed event or line (counted, never fatal)
    │   └── BadStatus             a status without the fields a post needs
    ├── LakeError                 the lake cannot be read or written
    ├── SourceError               a source cannot go on (an instance that is down, a missing file)
    └── TransportError            the transport cannot go on (Kafka refused a message, a schema
        │                         registry is unreachable)
        └── RegistryUnavailable   a schema registry cannot answer now (no answer, 408, 429,
                                  5xx: not the message's fault; a sink worker tries again)

The CLI turns a TootlakeError into a one-line message; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class TootlakeError(Exception):
    """Base class of every error tootlake raises on purpose."""


class ConfigError(TootlakeError):
    """A flag, setting or environment value is invalid."""


class MissingDependency(TootlakeError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"This needs the Python package {module!r}, which is not installed. "
            # (tootlake is installed from a clone, not PyPI: README.md, "Install")
            f'Install it from tootlake\'s folder with: pip install -e ".[{extra}]"'
        )
        self.module = module
        self.extra = extra


class BadInput(TootlakeError):
    """One event or line could not be used."""


class BadStatus(BadInput):
    """A status lacks a field every post needs (uri, id, created_at, account)."""


class LakeError(TootlakeError):
    """The lake cannot be read or written."""


class SourceError(TootlakeError):
    """A source cannot go on."""


class TransportError(TootlakeError):
    """The transport cannot go on: Kafka refused a message, or a schema registry is unreachable."""


class RegistryUnavailable(TransportError):
    """A schema registry cannot answer now: out of reach, too slow, or answering 408, 429 or
    5xx. The message is not at fault, so a sink worker holds it and tries again."""
