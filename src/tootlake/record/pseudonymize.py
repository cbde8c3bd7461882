"""Keyed pseudonyms for records (`--pseudonymize KEYFILE`): who wrote, which post, whom it
names, replaced by HMAC-SHA256 pseudonyms under a secret key, before a record leaves the
Recorder (so neither Kafka nor the lake ever sees a raw identifier).

The forms (docs/pseudonymisation.md): an account `user@host` becomes `<p>@host` (`p`: 20
hex digits, 80 bits, keyed on `user@host` with the host lower-cased) and its username `<p>`;
a status or account id `<p>`, keyed on (observing host, id) as ids are per server; a uri or
url `scheme://host/p/<32 hex digits>` (128 bits). Mentions and profile links in
the text become the pseudonym of the account they name. The same input always gives the same
pseudonym under one key, so dedupe, edits, deletes, replies, mentions and quotes still join.
Pure functions of the key: a Pseudonymizer can be rebuilt in a worker process from its key.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Final

import msgspec

from tootlake.pseudonym import key_id, read_key
from tootlake.record.model import Delete, Post, Reject, Sighting
from tootlake.record.status import host_of

__all__ = ["KEPT", "PSEUDONYMISED", "PSEUDONYM_URL", "Pseudonymizer", "is_pseudonym_url"]

# Hex (bytes.hex() is C; base64's base32 is pure Python, 3 us a call). 20 digits are never
# read as a snowflake id (17 to 19 digits), and collide among 2^40 values, not 2^32.
_SHORT: Final = 20  # hex digits of an account or id pseudonym: 80 bits
_LONG: Final = 32  # of a uri or url pseudonym: 128 bits (a post's key across the lake)
_CACHE: Final = 65_536  # pseudonyms kept per kind; authors and their instances repeat a lot

# A pseudonymised uri or url: the origin host kept, the rest a keyed hash.
PSEUDONYM_URL: Final = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s]+/p/[0-9a-f]{32}")

# Hosts and names as they appear in text: a host's labels (Unicode ones too), an optional
# port; a name as Mastodon's USERNAME_RE, widened to Unicode word characters.
_HOST = r"(?:[\w-]+\.)*[\w-]+(?::\d{1,5})?"
_NAME = r"\w(?:[\w.-]*\w)?"
# One pass over the text: a profile (or post) link first, then an @mention. A link's path
# after the name (a status id) goes with it; `/users/NAME` is ActivityPub's actor path.
_NAMED = re.compile(
    rf"(?P<scheme>https?)://(?P<lhost>{_HOST})/(?:@|users/)(?P<lname>{_NAME})"
    rf"(?:@(?P<lhost2>{_HOST}))?(?:[/?#]\S*)?"
    rf"|(?<![\w/])@(?P<name>{_NAME})(?:@(?P<host>{_HOST}))?",
    re.IGNORECASE,
)
# What `message()` also hides: any other URL's path, quoted values, long digit runs (ids)
# (a URL is tried only where a run of scheme characters starts, and starts at its first
# letter: tried at each letter of a run, as a plain `[a-z][a-z0-9+.-]*://` is, a long word
# without `://` cost time quadratic in its length, 2.5 s for 20,000 letters)
_URL = re.compile(
    r"(?<![a-z0-9+.-])(?P<lead>[0-9+.-]*+)"
    r"(?P<url>(?P<origin>[a-z][a-z0-9+.-]*+://[^/\s'\"]+)[^\s'\"]*)",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_DIGITS = re.compile(r"\d{8,}")
# An acct written without its @ (`alice@host`, in a server's error text): `message()` only
_BARE = re.compile(rf"(?<![\w.+@-])(?P<name>\w[\w.+-]*)@(?P<host>{_HOST})", re.IGNORECASE)
_PORT = re.compile(r":\d{1,5}$")
# A backslash before a uri's first `/`, `?` or `#` (matched just after its `://`)
_BACKSLASHED = re.compile(r"[^/?#\\]*\\")


# Every column of a post is in one of these (a test keeps them complete): a column added to
# Post must be decided on here, pseudonymised or kept, before it can reach a lake.
PSEUDONYMISED: Final = frozenset(
    {
        "uri", "id", "url", "acct", "username", "display_name", "text", "spoiler_text",
        "in_reply_to_id", "account_id", "in_reply_to_account_id", "app_website", "mentions",
        "in_reply_to_acct", "quote_uri", "moved_to",
    }
)  # fmt: skip
KEPT: Final = frozenset(
    {
        "observed_on", "origin", "created_at", "edited_at", "ingested_at", "language", "app",
        "bot", "characters", "words", "tags", "mentions_count", "media_count",
        "favourites_count", "reblogs_count", "replies_count", "sensitive", "visibility",
        "local", "account_created_at", "followers_count", "has_poll", "has_card",
        "emojis_count", "opted_out", "quote_state", "quotes_count", "indexable",
        "discoverable", "locked", "group", "consent",
    }
)  # fmt: skip


def _url_origin(match: re.Match[str]) -> str:
    """A URL `message()` met: its origin alone, unless it is a pseudonym already."""
    url = match["url"]
    return match["lead"] + (url if is_pseudonym_url(url) else match["origin"] + "/…")


def is_pseudonym_url(value: object) -> bool:
    """True for a uri or url in the pseudonymised form (`scheme://host/p/<hash>`): no page."""
    return isinstance(value, str) and PSEUDONYM_URL.fullmatch(value) is not None


class Pseudonymizer:
    """The keyed transform of records: `post`, `delete`, `sighting`, `reject`, and `message`
    for texts of logs and run statistics. `key` is the secret key (`tootlake.pseudonym`);
    `key_id` its public name, recorded in the lake."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonymisation key needs at least 16 bytes")
        self._key = key
        self.key_id = key_id(key)
        block = (key if len(key) <= 64 else hashlib.sha256(key).digest()).ljust(64, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self._accts: dict[str, str] = {}
        self._urls: dict[str | tuple[bytes, str], str] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> Pseudonymizer:
        """The Pseudonymizer of the key in `path` (`tootlake keygen`)."""
        return cls(read_key(path))

    def __repr__(self) -> str:  # never the key
        return f"Pseudonymizer(key_id={self.key_id!r})"

    def __reduce__(self) -> tuple[type[Pseudonymizer], tuple[bytes]]:
        return (Pseudonymizer, (self._key,))  # to a worker process, over a pipe only

    # -- the pseudonyms --------------------------------------------------------------------

    def _hash(self, kind: bytes, value: str, length: int) -> str:
        # HMAC-SHA256 (RFC 2104) from the key's two padded states, hashed once in __init__:
        # 0.6 us a pseudonym, where hmac.digest() pays 1.3 us deriving them every time.
        inner = self._inner.copy()
        inner.update(kind + b"\x00" + value.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:length]

    def acct(self, acct: str) -> str:
        """`user@host` -> `<p>@host` (the host lower-cased first); `user` alone -> `<p>`."""
        found = self._accts.get(acct)
        if found is not None:
            return found
        user, at, host = acct.rpartition("@")
        if not at:
            user, host = acct, ""
        host = host.lower()
        if host and ("@" in user or not _is_host(host)):
            # a server's acct with a path or a second @ (`alice@x/@alice`): what follows the
            # @ may be the name itself, so nothing of it is kept in the clear
            user, host = acct, ""
        # usernames match case-insensitively on Mastodon: @Alice and @alice are one account
        name = self._hash(b"acct", f"{user.lower()}@{host}", _SHORT)
        pseudonym = f"{name}@{host}" if host else name
        if len(self._accts) >= _CACHE:
            self._accts.clear()
        self._accts[acct] = pseudonym
        return pseudonym

    def username(self, acct: str) -> str:
        """The username part of `acct(acct)`."""
        return self.acct(acct).partition("@")[0]

    def status_id(self, observed_on: str | None, status_id: str) -> str:
        """A status id, which only means something on the instance that gave it."""
        return self._hash(b"status", f"{observed_on or ''}\x00{status_id}", _SHORT)

    def account_id(self, observed_on: str | None, account_id: str) -> str:
        """An account id on the observing instance (empty stays empty: none was given)."""
        if not account_id:
            return account_id
        return self._hash(b"account", f"{observed_on or ''}\x00{account_id}", _SHORT)

    def uri(self, uri: str, kind: bytes = b"uri") -> str:
        """`scheme://host/anything` -> `scheme://host/p/<hash>`; no host: `urn:p:<hash>`."""
        # (a tuple: a "\x00"-prefixed str key matched a uri that starts with "\x00", which
        # then got the cached pseudonym of the url: one uri, two pseudonyms by call order)
        key: str | tuple[bytes, str] = uri if kind == b"uri" else (kind, uri)
        found = self._urls.get(key)
        if found is not None:
            return found
        name = self._hash(kind, uri, _LONG)
        scheme_end = uri.find("://")
        host = _kept_host(uri, scheme_end)
        scheme = uri[:scheme_end].lower() if host else ""
        if host and scheme.isascii() and scheme.isalnum():
            pseudonym = f"{scheme}://{host}/p/{name}"
        else:
            pseudonym = f"urn:p:{name}"
        if len(self._urls) >= _CACHE:
            self._urls.clear()
        self._urls[key] = pseudonym
        return pseudonym

    def url(self, url: str) -> str:
        """A permalink: the same form as a uri, from a hash of its own."""
        return self.uri(url, b"url")

    def text(self, text: str, mentions: list[str] | None = None, home: str = "") -> str:
        """`text` with each @mention and profile link replaced by the pseudonym of the
        account it names. A bare `@name` is the mention of that name in `mentions`
        (qualified accts), else `name@home` (the author's server, where it was typed)."""
        if "@" not in text and "/users/" not in text:
            return text
        bare: dict[str, str] = {}
        for acct in mentions or ():
            user = acct.rpartition("@")[0] or acct
            bare.setdefault(user.lower(), acct)

        def replace(match: re.Match[str]) -> str:
            name = match["name"]
            if name is not None:
                host = match["host"]
                if host:
                    return "@" + self.acct(f"{name}@{host}")
                acct = bare.get(name.lower()) or (f"{name}@{home}" if home else name)
                return "@" + self.username(acct)
            name = self.username(f"{match['lname']}@{match['lhost2'] or match['lhost']}")
            return f"{match['scheme']}://{match['lhost'].lower()}/@{name}"

        return _NAMED.sub(replace, text)

    def message(self, text: str) -> str:
        """A log or statistics message with no identifier left: mentions and profile links
        pseudonymised, other URLs cut to their origin, quoted values and ids (8+ digits)
        masked."""
        text = self.text(text)
        text = _BARE.sub(lambda m: self.acct(f"{m['name']}@{m['host']}"), text)
        text = _URL.sub(_url_origin, text)
        text = _QUOTED.sub("'…'", text)
        return _DIGITS.sub("…", text)

    # -- the records -----------------------------------------------------------------------

    def post(self, post: Post) -> Post:
        """`post` with its identifiers pseudonymised and `display_name` dropped (empty).
        Counts (`characters`, `words`...) stay those of the raw post."""
        observed = post.observed_on
        mentions = post.mentions
        home = post.acct.rpartition("@")[2] or post.origin
        acct = self.acct(post.acct)
        reply_id = post.in_reply_to_id
        reply_account = post.in_reply_to_account_id
        reply_acct = post.in_reply_to_acct
        quote_uri = post.quote_uri
        moved_to = post.moved_to
        website = post.app_website
        return msgspec.structs.replace(
            post,
            # the host of a hostile uri (`https://x\\users\\alice/...`, `https://alice\\@x`)
            # may hold a name: kept only where the pseudonymised uri keeps it too
            origin=post.origin if post.origin == _kept_host(post.uri, post.uri.find("://")) else "",
            uri=self.uri(post.uri),
            id=self.status_id(observed, post.id),
            url=None if post.url is None else self.url(post.url),
            acct=acct,
            username=acct.partition("@")[0],
            display_name="",
            text=self.text(post.text, mentions, home),
            spoiler_text=self.text(post.spoiler_text, mentions, home),
            in_reply_to_id=None if reply_id is None else self.status_id(observed, reply_id),
            account_id=self.account_id(observed, post.account_id),
            in_reply_to_account_id=(
                None if reply_account is None else self.account_id(observed, reply_account)
            ),
            # a client's site may be its author's own page: only its host is kept
            app_website=None if website is None else self.url(website),
            mentions=None if mentions is None else [self.acct(m) for m in mentions],
            in_reply_to_acct=None if reply_acct is None else self.acct(reply_acct),
            quote_uri=None if quote_uri is None else self.uri(quote_uri),
            moved_to=None if moved_to is None else self.acct(moved_to),
        )

    def delete(self, delete: Delete) -> Delete:
        """A delete names the observer's id: pseudonymised as the post's id was, so the
        lake resolves it against the pseudonymised posts."""
        uri = delete.uri
        return Delete(
            delete.observed_on,
            self.status_id(delete.observed_on, delete.id),
            None if uri is None else self.uri(uri),
            delete.deleted_at,
            delete.reason,
        )

    def sighting(self, sighting: Sighting) -> Sighting:
        return Sighting(
            self.uri(sighting.uri),
            sighting.observed_on,
            self.status_id(sighting.observed_on, sighting.id),
            sighting.seen_at,
        )

    def reject(self, reject: Reject) -> Reject:
        """The raw payload is dropped (it is full of identifiers); the reason is masked.
        `where` (file:line, or instance and transport) is tootlake's own, and stays."""
        return msgspec.structs.replace(reject, reason=self.message(reject.reason), raw="")


def _kept_host(url: str, scheme_end: int) -> str:
    """The host of `url` as host_of reads it (lower case, with its port) when a pseudonym may
    keep it, else "": no scheme (`scheme_end`, url.find("://"), not above 0), no host, not
    host-like, or a backslash in the authority. Parsers read that two ways, one of which
    is a name: `https://x\\@alice` is host `x` to browsers and host_of, `alice` to urllib;
    `https://alice\\@x` is `alice` to host_of, user `alice\\` to urllib."""
    if scheme_end <= 0 or ("\\" in url and _BACKSLASHED.match(url, scheme_end + 3)):
        return ""
    host = host_of(url)  # (never a user:password@)
    return host if host and _is_host(host) else ""


@lru_cache(maxsize=4096)  # per post (its origin): hosts repeat
def _is_host(host: str) -> bool:
    """True for a host as kept in a pseudonym: labels of letters (any script, with their
    marks), digits, `-` and `_`, dotted; or an IPv6 literal; with a port or none. A server
    can put anything where a host goes (`x\\users\\alice`, `x;alice`, `x:alice`), and a
    kept host is kept in the clear."""
    name = _PORT.sub("", host)
    if name.startswith("[") and name.endswith("]"):
        return len(name) > 2 and all(c in "0123456789abcdef:." for c in name[1:-1])
    return bool(name) and all(
        c.isalnum() or c in "-_." or unicodedata.category(c)[0] == "M" for c in name
    )
