"""Instance policy: which instances a researcher decided to collect from, and what each
instance says about collection (its rules, terms of service and privacy policy).

The policy file (`--policy FILE`, or `policy = "FILE"` in the config file) is TOML:

    default = "deny"                 # instances not listed: "allow" or "deny"

    [instances."fosstodon.org"]
    decision = "allow"
    contact = "admin@fosstodon.org"  # whom you asked (optional)
    note = "asked the admins on 2026-11-02; yes for aggregate statistics"

    [instances."mastodon.social"]
    decision = "deny"
    note = "rules forbid scraping"

`collect` refuses the instances it denies (one log line each, with the note). The file's
SHA-256 goes into the lake's audit table, so the lake says under which policy it was made.

What instances say (`instances check`) is read with the collector's own HTTP code
(`tootlake.sources.mastodon.get_bytes`: its User-Agent, timeouts and size caps), one request
at a time per instance, slowing down when the rate-limit budget runs low and stopping at a
429. The parsers are total: any body (wrong types, HTML, a huge string) gives a result with
its problems listed, never an exception.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tootlake.errors import ConfigError
from tootlake.record import host_of
from tootlake.sources.mastodon import (
    InstanceError,
    NotFound,
    RateLimit,
    RateLimited,
    get_bytes,
    normalize_instance,
)

__all__ = [
    "ALLOW",
    "DENY",
    "TOPICS",
    "InstancePolicy",
    "Policy",
    "PolicyEntry",
    "Rule",
    "fetch_instance_policy",
    "flag_topics",
    "load_policy",
    "parse_document",
    "parse_rules",
    "rules_sha256",
]

ALLOW = "allow"
DENY = "deny"
_DECISIONS = (ALLOW, DENY)

MAX_RULES = 200  # rules kept of one instance (real servers have 3-20)
RULE_TEXT_LIMIT = 5_000  # characters of a rule's text or hint
DOCUMENT_TEXT_LIMIT = 200_000  # characters of terms or a privacy policy read for words
POLICY_BODY = 2 * 1024 * 1024  # bytes of one policy document read at most
SLOWEST_WAIT = 5.0  # a budget asking for a longer wait between requests stops the check

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_TAG = re.compile(r"<[^<>]{0,2000}>")  # (`<` ends a try: many `<` cost no rescans)


# ----------------------------------------------------------------------------------------
# the policy file


@dataclass(frozen=True)
class PolicyEntry:
    decision: str  # allow | deny
    contact: str = ""
    note: str = ""


@dataclass(frozen=True)
class Policy:
    default: str = ALLOW
    instances: dict[str, PolicyEntry] = field(default_factory=dict)
    path: str = ""
    sha256: str = ""  # of the file's bytes

    def decide(self, host: str) -> tuple[bool, str]:
        """(allowed, why) for an instance host."""
        entry = self.instances.get(host.lower())
        where = f"the policy {self.path}" if self.path else "the policy"
        if entry is None:
            return self.default == ALLOW, f"{where}: not listed, default {self.default}"
        why = f"{where}: {entry.decision}"
        if entry.note:
            why += f" ({entry.note})"
        return entry.decision == ALLOW, why


def _host_key(name: str, path: str) -> str:
    try:
        return host_of(normalize_instance(name)) or name.lower()
    except ConfigError:
        raise ConfigError(f"The policy file {path}: {name!r} is not an instance host") from None


def load_policy(path: str | Path) -> Policy:
    """Read a policy file (see the module docstring). Errors name the file and the entry."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read the policy file {path}: {exc.strerror or exc}") from exc
    try:
        doc = tomllib.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"The policy file {path} is not valid TOML: {exc}") from exc
    unknown = set(doc) - {"default", "instances"}
    if unknown:
        raise ConfigError(
            f"The policy file {path}: unknown key {sorted(unknown)[0]!r} (expected default and "
            '[instances."HOST"] tables)'
        )
    default = doc.get("default", ALLOW)
    if default not in _DECISIONS:
        raise ConfigError(
            f'The policy file {path}: default must be "allow" or "deny", not {default!r}'
        )
    table = doc.get("instances", {})
    if not isinstance(table, dict):
        raise ConfigError(f'The policy file {path}: instances must be [instances."HOST"] tables')
    entries: dict[str, PolicyEntry] = {}
    for name, value in table.items():
        where = f"The policy file {path}, instance {name}"
        if not isinstance(value, dict):
            raise ConfigError(f'{where}: expected a table with decision = "allow" or "deny"')
        decision = value.get("decision")
        if decision not in _DECISIONS:
            raise ConfigError(f'{where}: decision must be "allow" or "deny", not {decision!r}')
        extra = set(value) - {"decision", "contact", "note"}
        if extra:
            raise ConfigError(f"{where}: unknown key {sorted(extra)[0]!r}")
        texts = {k: value.get(k, "") for k in ("contact", "note")}
        for key, text in texts.items():
            if not isinstance(text, str):
                raise ConfigError(f"{where}: {key} must be a string")
        host = _host_key(name, path)
        if host in entries:
            raise ConfigError(f"{where}: a second entry for {host}")
        entries[host] = PolicyEntry(decision, texts["contact"], texts["note"])
    return Policy(default, entries, path, hashlib.sha256(data).hexdigest())


# ----------------------------------------------------------------------------------------
# what instances say: parsers (total: any JSON value in, a result and its problems out)


@dataclass(frozen=True)
class Rule:
    text: str
    hint: str = ""


def _clean(value: str, limit: int) -> str:
    return _CONTROL.sub("", value[: limit * 2])[:limit]


def parse_rules(body: Any) -> tuple[list[Rule], list[str]]:
    """The rules of `/api/v1/instance/rules` (a list of {id, text, hint}) and the problems
    found: a body that is not a list, items that are not objects or lack a text, too many."""
    if not isinstance(body, list):
        return [], [f"rules: not a list (a JSON {_kind(body)})"]
    rules: list[Rule] = []
    problems: list[str] = []
    for index, item in enumerate(body):
        # (every item counts: a body of a million non-objects made a million problems)
        if index >= MAX_RULES:
            problems.append(f"rules: more than {MAX_RULES}; the rest ignored")
            break
        if not isinstance(item, dict):
            problems.append(f"rules[{index}]: not an object (a JSON {_kind(item)})")
            continue
        text, hint = item.get("text"), item.get("hint")
        if not isinstance(text, str):
            problems.append(f"rules[{index}].text: not a string (a JSON {_kind(text)})")
            continue
        if hint is not None and not isinstance(hint, str):
            problems.append(f"rules[{index}].hint: not a string (a JSON {_kind(hint)})")
            hint = ""
        rules.append(Rule(_clean(text, RULE_TEXT_LIMIT), _clean(hint or "", RULE_TEXT_LIMIT)))
    return rules, problems


def parse_document(body: Any, what: str) -> tuple[str | None, list[str]]:
    """The text of a terms-of-service or privacy-policy document ({content: HTML, ...}),
    tags taken out, or None when the body is not such a document (its problem listed)."""
    if not isinstance(body, dict):
        return None, [f"{what}: not an object (a JSON {_kind(body)})"]
    content = body.get("content")
    if not isinstance(content, str):
        return None, [f"{what}.content: not a string (a JSON {_kind(content)})"]
    return _clean(_TAG.sub(" ", content[: DOCUMENT_TEXT_LIMIT * 2]), DOCUMENT_TEXT_LIMIT), []


def decode_json(body: bytes, what: str) -> tuple[Any, list[str]]:
    """JSON of a body, or None and the problem (HTML, a login page, garbage)."""
    try:
        return orjson.loads(body), []
    except orjson.JSONDecodeError:
        start = body[:40].decode("utf-8", "replace").strip()
        looks = "HTML" if start[:1] == "<" else "not JSON"
        return None, [f"{what}: the answer is {looks} ({_clean(start, 40)!r})"]


def _kind(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def rules_sha256(rules: Iterable[Rule]) -> str:
    """A hash of the rules as read (texts and hints, in order): whether they changed."""
    canonical = json.dumps([[r.text, r.hint] for r in rules], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Words that mark a rule or description as being about collection, by topic. Whole words,
# case-insensitive, in a few languages (en, de, fr, es, pt, it, nl); the acronyms AI, KI, IA
# and LLM only in capitals ("ai" is an Italian word); Japanese and Chinese words as they are
# (no spaces between words there).
_TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "research": (
        r"research\w*",
        r"forsch\w*",
        r"recherche\w*",
        r"investigaci[oó]n\w*",
        r"pesquisa\w*",
        r"ricerc\w+",
        r"onderzoek\w*",
        r"academic\w*",
        r"scientific",
        r"studie[sn]?",
    ),
    "scraping": (
        r"scrap(?:e|es|ed|er|ers|ing)",
        r"crawl\w*",
        r"spider\w*",
        r"harvest\w*",
        r"data[- ]?mining",
        r"moissonn\w*",
        r"raspad\w*",
        r"aspirat\w*",
    ),
    "bots": (r"bots?", r"automated", r"automat(?:ion|isiert\w*|ique\w*|izad\w*)"),
    "archiving": (r"archiv\w*", r"wayback"),
    "ai": (
        r"artificial intelligence",
        r"machine learning",
        r"training data",
        r"train(?:ing)? (?:an? )?(?:ai|model)s?",
        r"künstliche\w* intelligenz",
        r"intelligence artificielle",
        r"inteligencia artificial",
        r"intelig[eê]ncia artificial",
        r"intelligenza artificiale",
        r"genAI",
        r"chatgpt",
    ),
}
_TOPIC_ACRONYMS = {"ai": ("AI", r"A\.I\.", "KI", "IA", "LLMs?", "GPT")}
_TOPIC_CJK = {
    "research": ("研究",),
    "scraping": ("スクレイピング", "爬虫", "クローラ"),
    "bots": ("ボット", "机器人"),
    "archiving": ("アーカイブ", "存档"),
    "ai": ("人工知能", "人工智能", "生成AI", "機械学習"),
}
TOPICS = tuple(_TOPIC_WORDS)


def _topic_patterns() -> dict[str, re.Pattern[str]]:
    patterns = {}
    for topic, words in _TOPIC_WORDS.items():
        parts = [rf"(?i:\b(?:{'|'.join(words)})\b)"]
        acronyms = _TOPIC_ACRONYMS.get(topic, ())
        if acronyms:
            parts.append(rf"(?<![\w.])(?:{'|'.join(acronyms)})(?!\w)")
        parts.extend(re.escape(w) for w in _TOPIC_CJK.get(topic, ()))
        patterns[topic] = re.compile("|".join(parts))
    return patterns


_PATTERNS = _topic_patterns()


def flag_topics(texts: Iterable[str]) -> dict[str, list[str]]:
    """Topic -> the words found for it (at most 5 each, as written) in `texts`."""
    found: dict[str, list[str]] = {}
    for text in texts:
        for topic, pattern in _PATTERNS.items():
            for match in pattern.finditer(text):
                words = found.setdefault(topic, [])
                if match.group(0) not in words and len(words) < 5:
                    words.append(match.group(0))
    return {topic: found[topic] for topic in TOPICS if topic in found}


# ----------------------------------------------------------------------------------------
# fetching


NOT_PUBLISHED = "not published"


@dataclass
class InstancePolicy:
    """What one instance says about collection."""

    rules: list[Rule] = field(default_factory=list)
    rules_sha256: str | None = None  # None: the rules could not be read
    rules_status: str = ""  # "N rules", not published, or the error
    terms_url: str | None = None
    terms_status: str = ""
    privacy_url: str | None = None
    privacy_status: str = ""
    flags: dict[str, list[str]] = field(default_factory=dict)  # topic -> words
    problems: list[str] = field(default_factory=list)  # hostile or broken answers, each

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["rules"] = [r.__dict__ for r in self.rules]
        return out


async def fetch_instance_policy(
    session: Any,
    base_url: str,
    *,
    token: str | None = None,
    description: str = "",
    max_body: int = POLICY_BODY,
    only_rules: bool = False,
) -> InstancePolicy:
    """Read an instance's rules, terms of service and privacy policy, one request after the
    other, and flag the topics its rules and `description` mention. Never raises for what
    the server sends: each failure is a status or a problem of the result."""
    host = host_of(base_url) or base_url
    result = InstancePolicy()
    texts = [description]
    documents: tuple[tuple[str, str, str | None], ...] = (
        ("rules", "/api/v1/instance/rules", None),
        ("terms", "/api/v1/instance/terms_of_service", "/terms-of-service"),
        ("privacy", "/api/v1/instance/privacy_policy", "/privacy-policy"),
    )
    if only_rules:
        documents = documents[:1]
    stopped = ""
    for name, api, page in documents:
        if stopped:
            setattr(result, f"{name}_status", stopped)
            continue
        what = f"{host} {api}"
        try:
            body, headers = await get_bytes(
                session, base_url + api, token=token, what=what, max_body=max_body
            )
        except NotFound:
            setattr(result, f"{name}_status", NOT_PUBLISHED)
            continue
        except RateLimited as exc:
            stopped = f"not asked: rate limited (retry in {exc.retry_after:.0f} s)"
            setattr(result, f"{name}_status", f"rate limited (retry in {exc.retry_after:.0f} s)")
            continue
        except InstanceError as exc:
            setattr(result, f"{name}_status", f"error: {exc}")
            result.problems.append(str(exc))
            continue
        doc, problems = decode_json(body, name)
        if not problems:
            if name == "rules":
                rules, problems = parse_rules(doc)
                if not isinstance(doc, list):
                    result.rules_status = "unreadable"
                else:
                    result.rules = rules
                    result.rules_sha256 = rules_sha256(rules)
                    result.rules_status = f"{len(rules)} rules"
                    texts += [t for r in rules for t in (r.text, r.hint)]
            else:
                text, problems = parse_document(doc, name)
                if text is None:
                    setattr(result, f"{name}_status", "unreadable")
                else:
                    setattr(result, f"{name}_status", "published")
                    setattr(result, f"{name}_url", base_url + str(page))
        else:
            setattr(result, f"{name}_status", "unreadable")
        result.problems.extend(problems)
        wait = RateLimit.from_headers(headers).min_interval()
        if wait > SLOWEST_WAIT:
            stopped = "not asked: the rate-limit budget is nearly spent"
        elif wait > 0:
            await asyncio.sleep(wait)
    result.flags = flag_topics(texts)
    return result
