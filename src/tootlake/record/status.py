"""A status becomes a post here: validated once, at the edge, then built.

Every status that reaches tootlake, from a stream, a timeline page or a recorded file, comes
through `decode_status` (JSON bytes) or `validate_status` (an already decoded value). Either
gives a `ValidStatus` or a `Rejection`, never an exception, so nothing downstream sees an
unchecked value:

  * invalid: no usable identity, author or time (`uri` not a non-empty string, `id` not 1-64
    ASCII letters, digits, `-` or `_` (or a non-negative integer), a numeric id beyond what
    a snowflake of tomorrow can be, `account` not an object or without `acct`/`username`,
    `created_at` missing, unparseable or outside [2000-01-01, now + 1 day]), or JSON nested
    too deeply to decode (real statuses nest 6 levels; about 1,000 is an attack). Rejected,
    never stored.
  * tolerable: any other field of the wrong type (`tags: 5`, `language: 7`, a negative count,
    `edited_at: "soon"` or out of range...). That field takes its default and its name is
    listed in `coerced`, so runs can count it. A lone UTF-16 surrogate escape (a JavaScript
    server cutting an emoji in half) becomes U+FFFD, counted as `surrogates`.

Fields that decide consent are never coerced towards collecting: a wrong-typed or missing
`visibility` means not public, a wrong-typed `noindex` or `note` means opted out, a
wrong-typed `reblog` a reblog, a wrong-typed `locked` locked (the opt-in gate skips locked
accounts).

The fast path decodes JSON bytes straight into msgspec Structs that hold only the fields kept
(unknown keys are skipped in C). When a field has the wrong type, the slow path drops the
field msgspec names (the first optional field on its path) and tries again. See
docs/collect.md (Rejects) for the reasoning.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol

import msgspec

from tootlake._native import native as _native
from tootlake.errors import BadStatus
from tootlake.record.model import Post
from tootlake.text import count_words, has_opt_out_tag, html_to_text

__all__ = [
    "FIRST_DATETIME_SECOND",
    "LAST_DATETIME_SECOND",
    "MAX_URI",
    "Account",
    "Mention",
    "MovedTo",
    "Quote",
    "QuotedStatus",
    "Rejection",
    "Status",
    "StatusData",
    "ValidStatus",
    "decode_status",
    "decode_stream_status",
    "from_status",
    "host_of",
    "consent_level",
    "is_opted_out",
    "mend_surrogates",
    "parse_time",
    "to_post",
    "append_post",
    "usable_id",
    "validate_status",
    "valid",
]

INT64_MAX = 2**63 - 1
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no fediverse post is older
# The first and last second Python's datetime can hold (years 1 and 9999, UTC), from the epoch
FIRST_DATETIME_SECOND = -62_135_596_800
LAST_DATETIME_SECOND = 253_402_300_799
FUTURE_SLACK = timedelta(days=1)  # clocks drift; a day ahead is a lie, not a drift
# A post's key: ActivityPub ids are a few dozen to a few hundred characters (bridges' the
# longest); 2,048, the common limit of URLs, is far beyond any real one. A longer uri would be
# held in every memory, table and join that keys by it (the native check: the same bound).
MAX_URI = 2_048

# Status ids: Mastodon snowflakes (digits), Pleroma/Akkoma flake ids (base62), GoToSocial
# ULIDs, Misskey aids; never more than 64 characters. Anything else would become a cursor.
_ID = re.compile(r"[0-9A-Za-z_-]{1,64}", re.ASCII)
# A Mastodon snowflake is (milliseconds since 1970 << 16) | sequence: a larger number claims
# a post from after tomorrow. Sequential ids of other servers are far below it.
_SNOWFLAKE_SHIFT = 16
# a count the lake can hold (int64, not negative)
Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
StatusId = str | int  # snowflake strings (Mastodon), flake ids (Pleroma), integers (some forks)


# The status Structs are not tracked by the garbage collector (gc=False): made from JSON,
# they never hold a cycle, and each tracked object made per status brings the next
# collection nearer (about 1 us a status where many objects live: bench/README.md).


class Present(msgspec.Struct, gc=False):
    """Any JSON object whose content tootlake does not keep (only that it is there)."""


class Application(msgspec.Struct, gc=False):
    name: str | None = None
    website: str | None = None


class Tag(msgspec.Struct, gc=False):
    name: str
    url: str | None = None  # the observing instance's /tags/ page (replay infers it from it)


class Mention(msgspec.Struct, gc=False):
    """A mentioned account: `acct` is relative to the observing instance (bare when local)."""

    id: StatusId | None = None
    url: str | None = None
    acct: str | None = None


class MovedTo(msgspec.Struct, gc=False):
    """The account an account moved to (only what names it)."""

    acct: str | None = None
    url: str | None = None


class QuotedStatus(msgspec.Struct, gc=False):
    uri: str | None = None


class Quote(msgspec.Struct, gc=False):
    """Mastodon 4.4+ `quote`: a Quote (`quoted_status`, null unless visible) or a
    ShallowQuote (`quoted_status_id`, not kept: an id is the observer's, not a uri)."""

    state: str | None = None
    quoted_status: QuotedStatus | None = None


class ProfileField(msgspec.Struct, gc=False):
    """A profile field (`fields`: name and value, HTML): read for opt-out tags only."""

    name: str | None = None
    value: str | None = None


class Account(msgspec.Struct, gc=False):
    # In the order Mastodon serialises them: msgspec looks each key up from where the last
    # one matched, so the wire's order costs the fewest comparisons.
    id: StatusId | None = None
    username: str | None = None
    acct: str | None = None
    display_name: str | None = None
    locked: bool | None = None
    bot: bool | None = None
    discoverable: bool | None = None
    indexable: bool | None = None
    group: bool | None = None
    created_at: str | None = None
    note: str | None = None
    url: str | None = None
    followers_count: Count | None = None
    noindex: bool | None = None
    moved: MovedTo | None = None
    fields: list[ProfileField] | None = None


class StatusData(msgspec.Struct, gc=False):
    """The fields of a Mastodon status that tootlake keeps, typed: the required ones first
    (a status missing several is rejected for the first of them), then the others in the
    order Mastodon serialises them (msgspec looks each key up from where the last matched)."""

    uri: str
    id: StatusId
    account: Account
    created_at: str
    in_reply_to_id: StatusId | None = None
    in_reply_to_account_id: StatusId | None = None
    sensitive: bool | None = None
    spoiler_text: str | None = None
    visibility: str | None = None
    language: str | None = None
    url: str | None = None
    replies_count: Count | None = None
    reblogs_count: Count | None = None
    favourites_count: Count | None = None
    quotes_count: Count | None = None
    edited_at: str | None = None
    content: str | None = None
    reblog: Present | None = None
    application: Application | None = None
    media_attachments: list[Present] | None = None
    mentions: list[Mention] | None = None
    tags: list[Tag] | None = None
    emojis: list[Present] | None = None
    quote: Quote | None = None
    card: Present | None = None
    poll: Present | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a status cannot become a post: a reason, and the field at fault when one is."""

    reason: str
    field: str | None = None


class ValidStatus(msgspec.Struct, gc=False):
    """A status that passed validation: its typed fields, its id as text, its times parsed,
    and the fields that had to be dropped (`coerced`). (A Struct: made per status, it costs
    a quarter of a dataclass to build; it holds no cycle for the GC to look for.)"""

    data: StatusData
    id: str
    created_at: datetime
    edited_at: datetime | None
    coerced: tuple[str, ...] = ()
    size: int = 0  # bytes of the status as received (estimated for a decoded one): buffers

    @property
    def uri(self) -> str:
        return self.data.uri

    @property
    def version(self) -> str:
        """The version of the post, as text that sorts: its edit time to the second ("" when
        never edited). A remote copy of an edit carries the same second, not the same ms."""
        edited = self.data.edited_at
        return edited[:19] if self.edited_at is not None and edited else ""

    @property
    def edited_text(self) -> str:
        """`edited_at` as the server wrote it ("" when never edited)."""
        return self.data.edited_at or ""

    @property
    def author(self) -> str:
        """The author's acct as the server wrote it (bare when local; "" when it has none)."""
        account = self.data.account
        return account.acct or account.username or ""


class Status(Protocol):
    """What the collector reads of a validated status, whichever form it takes: a
    ValidStatus, or the native `FastStatus` of a usual streamed status
    (`decode_stream_status`; native/src/fast.rs), which holds no Python object per field.
    Anything else of it: `valid(status)`."""

    @property
    def id(self) -> str: ...
    @property
    def uri(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def edited_at(self) -> datetime | None: ...
    @property
    def coerced(self) -> tuple[str, ...]: ...
    @property
    def size(self) -> int: ...
    @property
    def edited_text(self) -> str: ...
    @property
    def author(self) -> str: ...


_DECODER = msgspec.json.Decoder(StatusData)
_ENCODER = msgspec.json.Encoder()
_PACKER = msgspec.msgpack.Encoder()
_ANY = msgspec.json.Decoder()
# Fields whose wrong type must not be read as "collect it": (struct, name) -> safe value
_CONSENT = {
    (StatusData, "visibility"): "unknown",  # not public
    (StatusData, "reblog"): Present(),  # a reblog
    (Account, "noindex"): True,  # opted out
    (Account, "locked"): True,  # a locked account is skipped by the opt-in consent gate
    # a bio that cannot be read may hold an opt-out tag (it is read for nothing else)
    (Account, "note"): "#noindex",
    (Account, "fields"): [ProfileField(value="#noindex")],  # so may profile fields
}
_MAX_REPAIRS = 64  # wrong fields mended in one status before giving up on it


def decode_status(data: bytes | str, now: datetime | None = None) -> ValidStatus | Rejection:
    """Validate a status given as JSON text: a ValidStatus or a Rejection, never an error."""
    try:
        status = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        # A field of the wrong type is met before any lone surrogate escape after it: mend
        # those first, or the slow path's json.loads would keep them (Arrow refuses them)
        fixed = mend_surrogates(data)
        if fixed is not None:
            checked = decode_status(fixed, now)
            if isinstance(checked, ValidStatus):
                if "surrogates" not in checked.coerced:
                    checked.coerced += ("surrogates",)
                checked.size = len(data)
            return checked
        value = _loose(data)
        if value is _UNREADABLE:
            return Rejection(f"not a JSON status ({exc})")
        repaired = _repair(value, exc, now)
        if isinstance(repaired, ValidStatus):
            repaired.size = len(data)
        return repaired
    except msgspec.DecodeError as exc:
        fixed = mend_surrogates(data)
        if fixed is None:
            return Rejection(f"not valid JSON ({exc})")
        checked = decode_status(fixed, now)
        if isinstance(checked, ValidStatus):
            checked.coerced += ("surrogates",)
            checked.size = len(data)
        return checked
    except RecursionError:
        return Rejection(_TOO_DEEP)
    except UnicodeEncodeError:  # a str holding lone surrogates themselves (not escapes)
        assert isinstance(data, str)
        checked = decode_status(_without_surrogates(data), now)
        if isinstance(checked, ValidStatus) and "surrogates" not in checked.coerced:
            checked.coerced += ("surrogates",)
        return checked
    return _check(status, (), now, len(data))


def decode_stream_status(data: bytes) -> Status | Rejection:
    """`decode_status` for a collector's streams: the usual status as a native `FastStatus`
    (its fields equal `decode_status`'s: tests/test_native_fast.py), read in one pass with
    no Python object per field, so that its consent gate and its row are read natively too
    (`Consent.gate`, `append_post`); any other status as `decode_status` reads it."""
    if _native is not None and _NATIVE_FAST:
        fast = _native.fast_status(data)
        if fast is not None:
            return fast  # type: ignore[no-any-return]
    return decode_status(data)


def valid(status: Status) -> ValidStatus:
    """The ValidStatus of a status in either form (a FastStatus's is decoded from its bytes
    once, when something reads more of it than `Status` offers)."""
    if type(status) is ValidStatus:
        return status
    checked = status.valid(decode_status)  # type: ignore[attr-defined]
    if not isinstance(checked, ValidStatus):  # (never: the two are held equal by tests)
        raise AssertionError(f"a native status that decode_status rejects: {checked!r}")
    return checked


def _without_surrogates(text: str) -> str:
    """`text` with each lone surrogate character replaced by U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


_UNREADABLE = object()


def _loose(data: bytes | str) -> Any:
    """`data` decoded without a schema, for the slow path: numbers msgspec cannot hold
    (1e999, 10**30) are read as Python does, so the field holding them is dropped rather than
    the status; `_UNREADABLE` when even that fails (too deep, too many digits)."""
    try:
        return _ANY.decode(data)
    except RecursionError:
        return _UNREADABLE
    except msgspec.MsgspecError:
        pass
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return _UNREADABLE


_TOO_DEEP = "JSON nested too deeply"
# An escaped backslash (kept), a surrogate pair (kept), or a lone surrogate (replaced).
_SURROGATE = re.compile(
    rb"\\\\"
    rb"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)


def mend_surrogates(data: bytes | str) -> bytes | None:
    """JSON text with each lone UTF-16 surrogate escape (`\\ud83d` without its pair, as a
    JavaScript server cutting an emoji in half writes it) replaced by U+FFFD; None when it
    has none (then it is not valid JSON for another reason)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if b"\\u" not in raw:
        return None
    lone = 0

    def mend(match: re.Match[bytes]) -> bytes:
        nonlocal lone
        token = match.group()
        if len(token) != 6:  # an escaped backslash or a proper pair
            return token
        lone += 1
        return b"\\ufffd"

    fixed = _SURROGATE.sub(mend, raw)
    return fixed if lone else None


def validate_status(value: Any, now: datetime | None = None) -> ValidStatus | Rejection:
    """Validate a status already decoded from JSON (a dict): as `decode_status`."""
    try:
        try:
            status = msgspec.convert(value, StatusData)
        except msgspec.ValidationError as exc:
            checked = _repair(value, exc, now)
        else:
            checked = _check(status, (), now)
        if isinstance(checked, ValidStatus):
            # a dict may hold what JSON bytes cannot: lone surrogates (Arrow refuses them).
            # Encoding raises UnicodeEncodeError on them; MessagePack is the cheaper
            # encoding, and the JSON one decides where MessagePack cannot hold a value
            # (integers beyond 64 bits).
            try:
                _PACKER.encode(checked.data)
            except (OverflowError, ValueError):
                try:
                    _ENCODER.encode(checked.data)
                except UnicodeEncodeError:
                    raise  # (lone surrogates: mended below)
                except ValueError:  # (str() of an int of more than 4,300 digits)
                    return Rejection("a number with more than 4,300 digits")
    except RecursionError:
        return Rejection(_TOO_DEEP)
    except UnicodeEncodeError:  # (in a value, or a key msgspec.convert reads)
        try:
            return decode_status(json.dumps(value, ensure_ascii=True), now)
        except (TypeError, ValueError, RecursionError):
            return Rejection("a status that cannot be JSON")
    return checked


def _repair(
    value: Any, error: msgspec.ValidationError, now: datetime | None
) -> ValidStatus | Rejection:
    """The slow path: drop the field each validation error names, while it is optional."""
    if not isinstance(value, dict):
        return Rejection(f"a status must be a JSON object, not {_json_type(value)}")
    value = dict(value)
    coerced: list[str] = []
    for _ in range(_MAX_REPAIRS):
        message, path = _error_path(str(error))
        fault = _optional_prefix(path)
        if fault is None:
            return Rejection(message, ".".join(str(p) for p in path) or None)
        names, safe = fault
        value = _without(value, names, safe)
        coerced.append(".".join(names))
        try:
            status = msgspec.convert(value, StatusData)
        except msgspec.ValidationError as exc:
            error = exc
            continue
        return _check(status, tuple(coerced), now)
    return Rejection(f"more than {_MAX_REPAIRS} fields of the wrong type")


def _error_path(text: str) -> tuple[str, list[str | int]]:
    """msgspec's "Expected `int`, got `str` - at `$.account.bot[0]`" -> (message, path)."""
    message, _, where = text.partition(" - at `")
    path: list[str | int] = []
    for part in where.rstrip("`").removeprefix("$").replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            inner = part[1:-1]
            path.append(int(inner) if inner.isdigit() else inner)
        else:
            path.append(part)
    if message.startswith("Object missing required field `"):
        path.append(message.split("`")[1])
    return message, path


def _optional_prefix(path: list[str | int]) -> tuple[list[str], Any] | None:
    """The first field on `path` that may be dropped (the keys to it, and the value that
    replaces it: None, or the safe value of a consent field); None when every field on the
    path is required, so the status is invalid."""
    struct: Any = StatusData
    keys: list[str] = []
    for part in path:
        if not isinstance(part, str) or struct is None:
            return None
        info = _struct_fields(struct).get(part)
        if info is None:
            return None
        keys.append(part)
        required, inner = info
        if not required:
            return keys, _CONSENT.get((struct, part))
        struct = inner
    return None


_FIELDS: dict[Any, dict[str, tuple[bool, Any]]] = {}


def _struct_fields(struct: Any) -> dict[str, tuple[bool, Any]]:
    """name -> (required, the Struct it holds or None), memoised per Struct."""
    known = _FIELDS.get(struct)
    if known is None:
        known = {}
        for f in msgspec.structs.fields(struct):
            inner = (
                f.type if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct) else None
            )
            known[f.encode_name] = (f.required, inner)
        _FIELDS[struct] = known
    return known


def _without(value: dict[str, Any], keys: list[str], replacement: Any) -> dict[str, Any]:
    """A copy of `value` with the field at `keys` set to `replacement` (None drops it)."""
    head, rest = keys[0], keys[1:]
    out = dict(value)
    if rest:
        inner = out.get(head)
        out[head] = _without(inner if isinstance(inner, dict) else {}, rest, replacement)
    elif replacement is None:
        out.pop(head, None)
    else:
        out[head] = msgspec.to_builtins(replacement)
    return out


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _check(
    status: StatusData, coerced: tuple[str, ...], now: datetime | None, size: int | None = None
) -> ValidStatus | Rejection:
    """What types cannot say: identity, author and time are usable; times parse. `size`:
    bytes of the status as received (None: estimated from what is kept)."""
    if _native is not None and now is None and size is not None and _NATIVE_CHECK:
        # (native/src/check.rs: the usual status in one call; None leaves it to the Python)
        checked = _native.check_status(status, coerced, size, ValidStatus)
        if checked is not None:
            return checked  # type: ignore[no-any-return]
    if not status.uri:
        return Rejection("empty uri", "uri")
    if len(status.uri) > MAX_URI:
        return Rejection(f"uri longer than {MAX_URI:,} characters: {status.uri[:40]!r}", "uri")
    latest = latest_time(now)
    status_id = usable_id(status.id, latest)
    if status_id is None:
        return Rejection(f"not a status id: {str(status.id)[:40]!r}", "id")
    account = status.account
    if not (account.acct or account.username):
        return Rejection("account without acct or username", "account.acct")
    created_at = parse_time(status.created_at)
    if created_at is None:
        return Rejection(f"created_at is not a time: {status.created_at[:40]!r}", "created_at")
    if not EARLIEST <= created_at <= latest:
        return Rejection(f"created_at out of range: {status.created_at[:40]!r}", "created_at")
    edited_at = None
    if status.edited_at:
        edited_at = parse_time(status.edited_at)
        # an edit dated after tomorrow would pin the post's latest version for ever
        if edited_at is None or not EARLIEST <= edited_at <= latest:
            edited_at = None
            coerced += ("edited_at",)
    if size is None:  # the size of what is kept, for a status not received as bytes
        size = 1024 + len(status.content or "") + len(status.spoiler_text or "")
        size += len(account.display_name or "") + len(account.note or "")
    return ValidStatus(status, status_id, created_at, edited_at, coerced, size)


def usable_id(value: Any, latest: datetime | None = None) -> str | None:
    """A status id as text, when it can be one (and so serve as a cursor): 1-64 ASCII
    letters, digits, `-` or `_`, not starting with `-`; a number no larger than a snowflake
    made at `latest` (tomorrow by default). None otherwise."""
    if type(value) is int:
        if not 0 <= value <= INT64_MAX:  # (and str() of 5,000 digits raises)
            return None
        value = str(value)
    elif type(value) is not str:
        return None
    if value.isdigit() and value.isascii():  # the common case: a snowflake or a count
        # (the length first: int() of more than 4,300 digits raises)
        if len(value) > 64 or (len(value) >= 17 and int(value) > _snowflake_limit(latest)):
            return None
        return value
    if not _ID.fullmatch(value) or value[0] == "-":
        return None
    return value


# (wall-clock second, tomorrow then, the largest snowflake made by then): per-status checks
# need them, datetime.now() costs more than the check itself, and a second is precise enough
_LIMITS: list[Any] = [0, EARLIEST, 0]


def _snowflake_limit(latest: datetime | None) -> int:
    if latest is _LIMITS[1]:  # tomorrow as latest_time() made it: its limit is made too
        return int(_LIMITS[2])
    if latest is not None:
        return (int(latest.timestamp() * 1000) << _SNOWFLAKE_SHIFT) | 0xFFFF
    latest_time()
    return int(_LIMITS[2])


def latest_time(now: datetime | None = None) -> datetime:
    """The latest time a status may claim: tomorrow (clocks drift; further ahead is a lie)."""
    if now is not None:
        return now + FUTURE_SLACK
    second = int(time.time())
    if second != _LIMITS[0]:
        latest = datetime.fromtimestamp(second + 1, UTC) + FUTURE_SLACK
        _LIMITS[:] = [second, latest, (int(latest.timestamp() * 1000) << _SNOWFLAKE_SHIFT) | 0xFFFF]
    return _LIMITS[1]  # type: ignore[no-any-return]


def parse_time(value: str | None) -> datetime | None:
    """Mastodon's ISO-8601 times (`...Z`, ms or s precision, or a bare date) in UTC; None for
    anything else (never an error: an hour offset on year 1 cannot be UTC)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if value[-1] == "Z":  # Mastodon's usual form: already UTC
            return parsed
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def host_of(url: str | None) -> str | None:
    """Lower-case host (with port, when not the default) of a URL."""
    if not url:
        return None
    # Plain string work: urlsplit costs more than the rest of a post (this runs per post).
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    # up to the first `/`, `?` or `#`: a path nearly always comes first
    rest = url[scheme_end + 3 :].partition("/")[0]
    if "?" in rest:
        rest = rest.partition("?")[0]
    if "#" in rest:
        rest = rest.partition("#")[0]
    if "\\" in rest:  # a backslash ends the host as a `/` does in browsers (WHATWG URL):
        rest = rest.partition("\\")[0]  # (`https://x` then a backslash and `@alice`: x)
    return rest.rpartition("@")[2].lower() or None


def is_opted_out(account: Account | dict[str, Any]) -> bool:
    """True when an account asked not to be indexed: `noindex`, or an opt-out tag in its bio
    or one of its profile fields."""
    if isinstance(account, dict):
        noindex, note, fields = account.get("noindex"), account.get("note"), account.get("fields")
        if noindex or (note is not None and not isinstance(note, str)):
            return True  # as validation reads them: a bio that cannot be read may hold a tag
        if has_opt_out_tag(note):
            return True
        if fields is None:
            return False
        try:  # as validation reads them: fields that cannot be read may hold a tag
            account = Account(fields=msgspec.convert(fields, list[ProfileField]))
        except (msgspec.ValidationError, RecursionError):
            return True
        return has_opt_out_tag_field(account)
    return bool(account.noindex) or has_opt_out_tag(account.note) or has_opt_out_tag_field(account)


def has_opt_out_tag_field(account: Account) -> bool:
    """True when one of the account's profile fields carries an opt-out tag."""
    fields = account.fields
    if not fields:
        return False
    # (every field in full, as a bio: `&num;nobot` and `＃ｎｏｂｏｔ` have no `#` and are tags;
    # has_opt_out_tag's pre-check rules out the rest at string speed)
    return any(has_opt_out_tag(item.value) or has_opt_out_tag(item.name) for item in fields)


def consent_level(account: Account, opted_out: bool | None = None) -> str:
    """The strongest consent the account shows: "opt-in" (indexable, not locked, no opt-out),
    "opt-out" (no opt-out), "none" (opted out). `opted_out`: when the caller knows it."""
    if opted_out is None:
        opted_out = is_opted_out(account)
    if opted_out:
        return "none"
    if account.indexable is True and not account.locked:
        return "opt-in"
    return "opt-out"


def to_post(
    status: Status,
    observed_on: str | None,
    ingested_at: datetime | None = None,
    *,
    opted_out: bool | None = None,
    consent: str | None = None,
) -> Post:
    """Build the post of a validated status as received from `observed_on`.

    `opted_out`: `is_opted_out(account)` when the caller knows it already (None: work it out);
    `consent`: the author's consent level likewise (`tootlake.record.consent.consent_level`).

    The native helpers build it when installed (`to_post` in native/src/post.rs, equal to
    `to_post_python` on any validated status: tests/test_native_post.py).
    """
    ingested_at = ingested_at or datetime.now(UTC)
    status = valid(status)
    if _native is not None:
        post = _native.to_post(status, observed_on, ingested_at, opted_out, consent, _HELPERS)
        if post is not None:
            return post  # type: ignore[no-any-return]
    return to_post_python(status, observed_on, ingested_at, opted_out=opted_out, consent=consent)


def append_post(
    rows: Any,
    status: Status,
    observed_on: str | None,
    ingested_at: datetime | None = None,
    *,
    opted_out: bool | None = None,
    consent: str | None = None,
) -> str | None:
    """Append the post `to_post` would make to `rows`, a native accumulator of posts as Arrow
    columns (`tootlake.lake.writer.post_rows`), without making the Post: the fused path.
    Gives the post's consent level (`post.consent or ""`); None when nothing was appended
    (a status the native helpers leave to the Python): make the Post with `to_post` then.
    Its rows equal `records_to_batch` of `to_post`'s Posts: tests/test_native_rows.py."""
    append = rows.append if type(status) is ValidStatus else rows.append_fast
    return append(  # type: ignore[no-any-return]
        status, observed_on, ingested_at or datetime.now(UTC), opted_out, consent, _HELPERS
    )


def to_post_python(
    status: ValidStatus,
    observed_on: str | None,
    ingested_at: datetime | None = None,
    *,
    opted_out: bool | None = None,
    consent: str | None = None,
) -> Post:
    """`to_post` in Python: the reference the native one equals."""
    data = status.data
    account = data.account
    uri = data.uri
    origin = host_of(uri) or ""
    acct = account.acct or account.username or ""
    local_host = None  # the host of the observing instance's own accounts, once known
    if "@" not in acct:
        # Local accounts are unqualified; their host is the one serving their profile.
        local_host = host_of(account.url) or observed_on or origin
        acct = f"{acct}@{local_host}"
    observed = observed_on or None
    application = data.application
    content = data.content
    if content and "quote-inline" in content:  # the fallback of a quote post (4.4+)
        content = _without_quote_fallback(content)
    text = html_to_text(content)
    if opted_out is None:
        opted_out = (
            bool(account.noindex)
            or has_opt_out_tag(account.note)
            or (account.fields is not None and has_opt_out_tag_field(account))
        )
    if consent is None:  # consent_level(), inlined: this runs per post
        consent = (
            "none"
            if opted_out
            else "opt-in"
            if account.indexable is True and not account.locked
            else "opt-out"
        )
    home = observed or origin  # where bare accts of mentions and moves live
    mentions = data.mentions
    named: list[str] | None = None
    if mentions is not None:
        named = []
        for m in mentions:
            name = m.acct
            if name and "@" not in name:
                # A bare acct is an account of the observing instance, like a bare author:
                # one host look-up a post (a third of a post's added cost when per mention).
                if local_host is None:
                    local_host = host_of(m.url) or home
                name = f"{name}@{local_host}"
            if name:
                named.append(name)
    reply_to = data.in_reply_to_account_id
    reply_acct = None
    if reply_to is not None:
        author_id = account.id
        if author_id is not None and (
            reply_to == author_id
            or (type(reply_to) is not type(author_id) and str(reply_to) == str(author_id))
        ):
            reply_acct = acct  # a self-reply: a thread
        elif mentions:
            reply_to = str(reply_to)
            for m in mentions:
                if m.id == reply_to or (type(m.id) is int and str(m.id) == reply_to):
                    reply_acct = _qualified(m.acct, m.url, local_host or home)
                    break
    quote = data.quote
    quote_uri = quote_state = None
    if quote is not None:
        quote_state = quote.state
        quoted = quote.quoted_status
        if quoted is not None:
            quote_uri = quoted.uri or None
    moved = account.moved
    # Positional, in Post's field order (checked by _POST_FIELDS below): a call with 37
    # keywords costs ~2.5 us more per post than one with 37 positional arguments.
    return Post(
        uri,  # uri
        status.id,  # id
        observed,  # observed_on
        origin,  # origin
        data.url,  # url
        status.created_at,  # created_at
        status.edited_at,  # edited_at
        ingested_at or datetime.now(UTC),  # ingested_at
        data.language or None,  # language
        (application.name or None) if application is not None else None,  # app
        acct,  # acct
        account.username or acct.split("@", 1)[0],  # username
        account.display_name or "",  # display_name
        bool(account.bot),  # bot
        text,  # text
        len(text),  # characters
        count_words(text),  # words
        [t.name.lower() for t in data.tags] if data.tags else [],  # tags
        len(data.mentions) if data.mentions else 0,  # mentions_count
        len(data.media_attachments) if data.media_attachments else 0,  # media_count
        data.favourites_count or 0,  # favourites_count
        data.reblogs_count or 0,  # reblogs_count
        data.replies_count or 0,  # replies_count
        bool(data.sensitive),  # sensitive
        data.spoiler_text or "",  # spoiler_text
        data.visibility or "unknown",  # visibility
        None if data.in_reply_to_id is None else str(data.in_reply_to_id),  # in_reply_to_id
        observed is not None and observed == origin,  # local
        "" if account.id is None else str(account.id),  # account_id
        parse_time(account.created_at),  # account_created_at
        account.followers_count or 0,  # followers_count
        _text(data.in_reply_to_account_id),  # in_reply_to_account_id
        (application.website or None) if application is not None else None,  # app_website
        data.poll is not None,  # has_poll
        data.card is not None,  # has_card
        len(data.emojis) if data.emojis else 0,  # emojis_count
        opted_out,  # opted_out
        named,  # mentions
        reply_acct,  # in_reply_to_acct
        quote_uri,  # quote_uri
        quote_state,  # quote_state
        data.quotes_count,  # quotes_count
        account.indexable,  # indexable
        account.discoverable,  # discoverable
        # locked; one of the wrong type was read as locked for the gates, but is not known
        None if status.coerced and "account.locked" in status.coerced else account.locked,
        account.group,  # group
        None if moved is None else _qualified(moved.acct, moved.url, home),  # moved_to
        consent,  # consent
    )


# The order to_post() passes Post's fields in: a field added to, moved in or removed from
# Post fails here, at import, rather than shifting every later column.
_POST_FIELDS = (
    "uri", "id", "observed_on", "origin", "url", "created_at", "edited_at", "ingested_at",
    "language", "app", "acct", "username", "display_name", "bot", "text", "characters",
    "words", "tags", "mentions_count", "media_count", "favourites_count", "reblogs_count",
    "replies_count", "sensitive", "spoiler_text", "visibility", "in_reply_to_id", "local",
    "account_id", "account_created_at", "followers_count", "in_reply_to_account_id",
    "app_website", "has_poll", "has_card", "emojis_count", "opted_out", "mentions",
    "in_reply_to_acct", "quote_uri", "quote_state", "quotes_count", "indexable",
    "discoverable", "locked", "group", "moved_to", "consent",
)  # fmt: skip
if Post.__struct_fields__ != _POST_FIELDS:  # pragma: no cover - a change to Post
    raise ImportError("to_post() passes Post's fields by position: update it with Post")


def _text(value: str | int | None) -> str | None:
    return None if value is None else str(value)


# Mastodon's quote fallback for older clients: `<p class="quote-inline">RE: <a ...>...</a></p>`
# (no nested paragraphs: the sanitiser allows none), not the author's words.
_QUOTE_INLINE = re.compile(r"<p class=[\"']?quote-inline[\"']?>", re.IGNORECASE)
_END_P = re.compile("</p>", re.IGNORECASE)


def _qualified(acct: str | None, url: str | None, home: str) -> str | None:
    """An acct as user@host: a bare one lives on the host of its profile url, else `home`
    (the observing instance, as for the author). None for no acct."""
    if not acct:
        return None
    if "@" in acct:
        return acct
    return f"{acct}@{host_of(url) or home}"


_QUOTE_INLINE_P = '<p class="quote-inline">'


def _without_quote_fallback(content: str) -> str:
    """`content` without its quote fallback paragraph: by string work in Mastodon's exact
    form, by a regular expression for another server's spelling."""
    start = content.find(_QUOTE_INLINE_P)
    if start >= 0:
        end = content.find("</p>", start)
        if end >= 0:
            return content[:start] + content[end + 4 :]
    # Each paragraph up to its first </p>. Not `<p ...>.*?</p>`: thousands of openings with
    # no </p> (a hostile server's) made that regex scan to the end from each, quadratic.
    kept, at = [], 0
    while (opening := _QUOTE_INLINE.search(content, at)) is not None:
        closing = _END_P.search(content, opening.end())
        if closing is None:
            break
        kept.append(content[at : opening.start()])
        at = closing.end()
    kept.append(content[at:])
    return "".join(kept)


# What the native to_post falls back on (native/src/post.rs reads them in this order), and
# whether it passes Post's fields in Post's order: a native module built for another Post
# is not used.
_HELPERS = (
    Post,
    html_to_text,
    has_opt_out_tag,
    _without_quote_fallback,
    parse_time,
    msgspec.structs.astuple,
)
if _native is not None and [
    tuple(getattr(_native, name, ()))
    for name in ("POST_FIELDS", "VALID_STATUS_FIELDS", "STATUS_FIELDS", "ACCOUNT_FIELDS")
] != [
    _POST_FIELDS,
    ValidStatus.__struct_fields__,
    StatusData.__struct_fields__,
    Account.__struct_fields__,
]:
    _native = None  # pragma: no cover - a stale build: `make install` rebuilds it
# (a build from before check_status keeps its other helpers)
_NATIVE_CHECK = hasattr(_native, "check_status")
_NATIVE_FAST = hasattr(_native, "fast_status")


def from_status(
    status: Any,
    observed_on: str | None,
    ingested_at: datetime | None = None,
    *,
    opted_out: bool | None = None,
) -> Post:
    """Build the post of one Mastodon status (a dict, or its JSON bytes) as received from
    `observed_on`. Raises BadStatus (only) when the status is invalid; whether to keep it
    (reblogs, visibility, opt-outs) is `skip_reason()`'s business."""
    if isinstance(status, (bytes, str)):  # (a tuple: a union type checks slower)
        checked = decode_status(status, ingested_at)
    else:
        checked = validate_status(status, ingested_at)
    if isinstance(checked, Rejection):
        raise BadStatus(checked.reason)
    return to_post(checked, observed_on, ingested_at, opted_out=opted_out)
