"""Consent gates: which statuses may become posts, and which gate each post passed.

One policy (`Consent`) is evaluated per status where records are made (the Recorder, in
`collect` and `replay`, before anything reaches Kafka or the lake). Gates run in a fixed
order and the first that fails names the skip ("reblog", "not_public", "noindex",
"opt_out_tag", "not_indexable", "locked", "bot"); a post records the strongest consent level
its author showed (`consent`: "opt-in", "opt-out" or "none"). docs/research.md says what each
gate means and where it falls short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tootlake.errors import ConfigError
from tootlake.record.status import (
    Rejection,
    Status,
    ValidStatus,
    consent_level,
    has_opt_out_tag_field,
    validate_status,
)
from tootlake.text import has_opt_out_tag

__all__ = [
    "AUTHOR_GATES",
    "GATES",
    "MODES",
    "NOINDEX",
    "NONE",
    "OPT_IN",
    "OPT_OUT",
    "Consent",
    "consent_level",
    "skip_reason",
]

OPT_OUT = "opt-out"  # public posts of accounts that did not opt out (the default)
OPT_IN = "opt-in"  # ...and only accounts that opted in to search (`indexable`), not locked
NONE = "none"  # public posts of everyone, opted out or not (--include-opted-out)
MODES = (OPT_OUT, OPT_IN, NONE)
# Every gate, in the order they are tried: the first to fail is the reason counted.
GATES = ("reblog", "not_public", "noindex", "opt_out_tag", "not_indexable", "locked", "bot")
NOINDEX = "noindex"
# The gates that judge the author, not the status: one failing removes what was written
AUTHOR_GATES = frozenset(("noindex", "opt_out_tag", "not_indexable", "locked", "bot"))


@dataclass(frozen=True, slots=True)
class Consent:
    """A consent policy: the mode, and the two extra skips of the opt-out mode."""

    mode: str = OPT_OUT
    skip_locked: bool = False
    skip_bots: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(
                f"Unknown consent mode {self.mode!r} (--consent, TOOTLAKE_CONSENT or consent in "
                f"the config file): use one of {', '.join(MODES)}."
            )

    @classmethod
    def of(
        cls,
        mode: str | None = None,
        *,
        include_opted_out: bool = False,
        skip_locked: bool = False,
        skip_bots: bool = False,
    ) -> Consent:
        """The policy of the command-line words: `--include-opted-out` is the "none" mode,
        which contradicts an explicit opt-in."""
        if include_opted_out:
            if mode == OPT_IN:
                raise ConfigError(
                    "--include-opted-out keeps accounts that opted out, --consent opt-in keeps "
                    "only accounts that opted in: choose one."
                )
            mode = NONE
        return cls(OPT_OUT if mode is None else mode, skip_locked, skip_bots)

    @classmethod
    def given(cls, consent: Consent | None, include_opted_out: bool = False) -> Consent:
        """The policy of a library call that takes both: `consent`, or the default or "none"
        mode by `include_opted_out`; both, contradicting each other, are an error."""
        if consent is None:
            return cls.of(include_opted_out=include_opted_out)
        if include_opted_out and consent.mode != NONE:
            raise ConfigError(
                f"include_opted_out=True and consent={consent.describe()!r} contradict each "
                "other: give one."
            )
        return consent

    @property
    def include_opted_out(self) -> bool:
        return self.mode == NONE

    def describe(self) -> str:
        """The policy in a few words, as the audit and the datasheet show it."""
        flags = (("skip-locked", self.skip_locked), ("skip-bots", self.skip_bots))
        return "+".join([self.mode, *(word for word, on in flags if on)])

    def gate(self, status: Status) -> str | None:
        """The first gate `status` fails (its name), or None when it may become a post."""
        if type(status) is not ValidStatus:  # a FastStatus: the same gates, natively
            return status.gate(  # type: ignore[attr-defined,no-any-return]
                self.mode, self.skip_locked, self.skip_bots, has_opt_out_tag
            )
        data = status.data
        if data.reblog is not None:
            return "reblog"
        if data.visibility != "public":  # missing is not public either: never assume consent
            return "not_public"
        account = data.account
        if self.mode != NONE:
            if account.noindex:
                return "noindex"
            if has_opt_out_tag(account.note) or has_opt_out_tag_field(account):
                return "opt_out_tag"
        if self.mode == OPT_IN:
            if account.indexable is not True:  # absent is not an opt-in
                return "not_indexable"
            if account.locked:
                return "locked"
        elif self.skip_locked and account.locked:
            return "locked"
        # a `bot` of the wrong type was dropped at the edge: it may have said true
        if self.skip_bots and (account.bot or "account.bot" in status.coerced):
            return "bot"
        return None


_DEFAULT = Consent()
_EVERYONE = Consent(NONE)


def skip_reason(
    status: ValidStatus | dict[str, Any], include_opted_out: bool = False
) -> str | None:
    """Why a status is not collected as a post under the default policy (or the "none" mode
    with `include_opted_out`): a gate's name, or None. A dict is validated first (an invalid
    one is "invalid")."""
    if isinstance(status, dict):
        checked = validate_status(status)
        if isinstance(checked, Rejection):
            return "invalid"
        status = checked
    return (_EVERYONE if include_opted_out else _DEFAULT).gate(status)
