"""A hostile fediverse on demand: mutated statuses and misbehaving instances.

`Fediverse(hostile=0.1)` serves that share of the public statuses it publishes in a shape a
collector must survive, chosen from the seed, the same on every copy of a post (each instance
that has it serves it mutated the same way). Each hostile status gets one verdict, which the
ground truth (`Truth.invalid`, `Truth.coerced`, `Truth.shaped`, `Truth.verdict()`) reports:

  * INVALID: no usable identity, author or time. `uri` missing, not a string or empty; `id`
    missing, neither a string nor an integer, empty, not ASCII, longer than 64 characters or
    a snowflake from the future; `account` missing or not an object;
    an account with neither a non-empty string `acct` nor `username`; `created_at` missing,
    not a string, not ISO 8601 or outside [2000-01-01, now + 1 day]; a payload that is not a
    JSON object. A collector rejects it (the lake's `rejects` table), never stores it. Each one
    carries its marker (`hostile_marker`, the first key; or the marker as a string in a payload
    that is not an object), so a test finds it in a reject's raw payload.
  * GOOD, coerced: a known field of the wrong type (`tags: 5`, `language: 7`, counts as
    strings, negative, floats or beyond 2**63, `content: 5`, `edited_at: "garbage"`, account
    `bot: "no"`...). A collector stores the post once, with that field null or its default.
    The fields are in `Truth.coerced`; the status carries its marker too.
  * GOOD, shaped like another server: Pleroma and Akkoma extras, GoToSocial without
    `application`, a Misskey bridge's odd `acct`, optional keys missing, nulls in every
    optional field. Not mutated as such: the post must be stored as usual (`Truth.shaped`).

Fields that decide consent (`visibility`, `reblog`, the account's `noindex` and `note`) are
never touched: their handling is a consent decision, not a coercion. Only posts that public
feeds show and whose author did not opt out are candidates, and the publisher never edits or
deletes a hostile post, so the truth stays exact.

Misbehaving instances (`Fediverse(hostile_instances=INSTANCE_KINDS)`, `InstanceSettings.
misbehave`) come on top of the ordinary ones; no ordinary post federates to them:

  * "flood": publishes its own valid public posts as fast as its streaming clients read them
    (or up to `InstanceSettings.flood_rate`), while the publisher runs and a client listens:
    they count as GOOD like any other post.
  * "stall": answers its instance documents, then sends nothing: streams get their headers
    (SSE 200, WebSocket 101) and not one byte more (no `:)`, heartbeat or ping), the REST
    timeline no answer at all.
  * "huge": streams an SSE `update` whose `data:` never ends (one endless line, or `data:`
    lines without the blank line that ends an event, on alternate connections), a WebSocket
    frame announcing 2**40 bytes, and a REST timeline body of `huge_bytes`, all written lazily
    in 64 KiB chunks as the client reads (never built in memory).
  * "huge_document": its instance documents (v1 and v2) are bodies of `huge_bytes`.
  * "bad_document": `/api/v2/instance` has `"configuration": "x"`, `/api/v1/instance`
    `"urls": 5`.

Only the flood publishes: the others have nothing a collector could be required to get.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "GOOD",
    "INSTANCE_KINDS",
    "INVALID",
    "MUTATIONS",
    "SKIPPED",
    "Hostility",
    "HostilePicker",
    "Mutation",
]

GOOD = "good"
INVALID = "invalid"
SKIPPED = "skipped"

INSTANCE_KINDS = ("flood", "stall", "huge", "huge_document", "bad_document")

# What a hostile status is, by share of the hostile ones: (kind, share).
_KIND_SHARES = (("invalid", 0.35), ("coerced", 0.40), ("shape", 0.25))

Change = Callable[[dict[str, Any], "Hostility", bool], Any]


@dataclass(frozen=True, slots=True)
class Mutation:
    """One way to break or reshape a status.

    `kind`: "invalid" (must be rejected), "coerced" (stored with `field` null or its default)
    or "shape" (another server's shape, stored as usual). `field`: the field at fault, as
    the collector names it ("tags", "account.bot"), None for shapes and whole payloads.
    """

    name: str
    kind: str
    field: str | None
    change: Change

    @property
    def verdict(self) -> str:
        return INVALID if self.kind == "invalid" else GOOD


@dataclass(frozen=True, slots=True)
class Hostility:
    """The mutations of one post, applied to every copy of it as it is served."""

    marker: str  # unique per hostile post: "tootlake-hostile-<seed>-<n>"
    mutations: tuple[Mutation, ...]
    created: float  # the post's creation time, for times relative to it

    @property
    def verdict(self) -> str:
        return INVALID if any(m.kind == "invalid" for m in self.mutations) else GOOD

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.mutations)

    @property
    def coerced(self) -> tuple[str, ...]:
        """The fields a collector must coerce (empty for shapes and invalid statuses)."""
        if self.verdict == INVALID:
            return ()
        return tuple(m.field for m in self.mutations if m.kind == "coerced" and m.field)

    @property
    def shape(self) -> str | None:
        return next((m.name for m in self.mutations if m.kind == "shape"), None)

    @property
    def keeps_edited_at(self) -> bool:
        """False when the served `edited_at` is garbage or gone (a collector stores null)."""
        return not any(m.name in _EDITED_AT_LOST for m in self.mutations)

    def apply(self, status: dict[str, Any], local: bool) -> Any:
        """The payload served for `status` (a fresh dict: changed in place where it can be).
        `local`: the copy is the one of the author's home instance."""
        payload: Any = status
        ordered = sorted(self.mutations, key=lambda m: m.kind == "invalid")  # invalid last
        for mutation in ordered:
            if not isinstance(payload, dict):
                break
            payload = mutation.change(payload, self, local)
        if isinstance(payload, dict) and self.shape is None:
            payload = {"hostile_marker": self.marker, **payload}  # first: in any truncation
        return payload


class HostilePicker:
    """Decides, from the seed, which posts are hostile and how (in publication order)."""

    def __init__(self, rate: float, seed: int) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"Invalid hostile rate: {rate!r}. Use a share from 0 to 1.")
        self.rate = rate
        self.seed = seed
        self.rng = random.Random(f"tootlake-hostile/{seed}")
        self.count = 0
        self._kinds = [kind for kind, _ in _KIND_SHARES]
        self._kind_weights = [share for _, share in _KIND_SHARES]

    def _marker(self) -> str:
        self.count += 1
        return f"tootlake-hostile-{self.seed}-{self.count}"

    def pick(self, created: float) -> Hostility | None:
        """The hostility of the next candidate post, or None (it is served as it is)."""
        rng = self.rng
        if not self.rate or rng.random() >= self.rate:
            return None
        kind = rng.choices(self._kinds, self._kind_weights)[0]
        if kind == "invalid":
            chosen = [rng.choice(_INVALID)]
            if rng.random() < 0.3:  # broken twice: invalid still wins
                chosen.insert(0, rng.choice(_COERCED))
        elif kind == "coerced":
            chosen = []
            for mutation in rng.sample(_COERCED, 6):
                if mutation.field not in {m.field for m in chosen}:
                    chosen.append(mutation)
            chosen = chosen[: rng.choice((1, 1, 2, 3))]
        else:
            chosen = [rng.choice(_SHAPES)]
        return Hostility(self._marker(), tuple(chosen), created)

    def make(self, names: Sequence[str], created: float) -> Hostility:
        """The hostility made of the named mutations (see `MUTATIONS`), for tests."""
        unknown = [n for n in names if n not in MUTATIONS]
        if unknown:
            raise ValueError(
                f"Unknown mutation {unknown[0]!r}. Known: {', '.join(sorted(MUTATIONS))}."
            )
        return Hostility(self._marker(), tuple(MUTATIONS[n] for n in names), created)


# ----------------------------------------------------------------------------------------
# the mutations


def _set(key: str, value: Any) -> Change:
    def change(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
        status[key] = value
        return status

    return change


def _drop(key: str) -> Change:
    def change(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
        status.pop(key, None)
        return status

    return change


def _account_set(**values: Any) -> Change:
    def change(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
        account = status.get("account")
        if isinstance(account, dict):
            account.update(values)
        return status

    return change


def _account_drop(*keys: str) -> Change:
    def change(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
        account = status.get("account")
        if isinstance(account, dict):
            for key in keys:
                account.pop(key, None)
        return status

    return change


def _created_in_days(days: int) -> Change:
    def change(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
        moment = datetime.fromtimestamp(hostility.created + days * 86400, UTC)
        status["created_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return status

    return change


def _not_object_list(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
    return [hostility.marker, status.get("uri"), status.get("id")]


def _not_object_string(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
    return hostility.marker


def _wrap(key: str) -> Change:
    def change(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
        status[key] = [status.get(key)]
        return status

    return change


_INVALID: list[Mutation] = [
    Mutation("uri_missing", "invalid", "uri", _drop("uri")),
    Mutation("uri_number", "invalid", "uri", _set("uri", 1234567)),
    Mutation("uri_empty", "invalid", "uri", _set("uri", "")),
    Mutation("uri_list", "invalid", "uri", _wrap("uri")),
    Mutation("id_missing", "invalid", "id", _drop("id")),
    Mutation("id_null", "invalid", "id", _set("id", None)),
    Mutation("id_float", "invalid", "id", _set("id", 1.5)),
    Mutation("id_empty", "invalid", "id", _set("id", "")),
    Mutation("id_list", "invalid", "id", _wrap("id")),
    # ids that would become a cursor the timeline has nothing above (isdigit() says yes)
    Mutation("id_superscript", "invalid", "id", _set("id", "\u00b2")),
    Mutation("id_too_long", "invalid", "id", _set("id", "9" * 65)),
    Mutation("id_from_2100", "invalid", "id", _set("id", str(4102444800000 << 16))),
    Mutation("account_missing", "invalid", "account", _drop("account")),
    Mutation("account_string", "invalid", "account", _set("account", "bob")),
    Mutation("account_null", "invalid", "account", _set("account", None)),
    Mutation("account_list", "invalid", "account", _wrap("account")),
    Mutation("account_nameless", "invalid", "account.acct", _account_drop("acct", "username")),
    Mutation("account_empty_names", "invalid", "account.acct", _account_set(acct="", username="")),
    Mutation("account_names_not_strings", "invalid", "account.acct",
             _account_set(acct=5, username=["bob"])),
    Mutation("created_at_missing", "invalid", "created_at", _drop("created_at")),
    Mutation("created_at_number", "invalid", "created_at", _set("created_at", 1700000000)),
    Mutation("created_at_word", "invalid", "created_at", _set("created_at", "yesterday")),
    Mutation("created_at_empty", "invalid", "created_at", _set("created_at", "")),
    Mutation("created_at_year_one", "invalid", "created_at",
             _set("created_at", "0001-01-01T00:00:00+01:00")),
    Mutation("created_at_year_9999", "invalid", "created_at",
             _set("created_at", "9999-12-31T23:59:59Z")),
    Mutation("created_at_1999", "invalid", "created_at",
             _set("created_at", "1999-12-31T23:59:59.000Z")),
    Mutation("created_at_next_week", "invalid", "created_at", _created_in_days(8)),
    Mutation("not_an_object_list", "invalid", None, _not_object_list),
    Mutation("not_an_object_string", "invalid", None, _not_object_string),
]  # fmt: skip

_COERCED: list[Mutation] = [
    Mutation("tags_number", "coerced", "tags", _set("tags", 5)),
    Mutation("tags_object", "coerced", "tags", _set("tags", {"name": "caturday"})),
    Mutation("tags_unnamed", "coerced", "tags",
             _set("tags", [{"name": 5}, {"url": "https://x.example/tags/x"}, "caturday", None])),
    Mutation("language_number", "coerced", "language", _set("language", 7)),
    Mutation("language_list", "coerced", "language", _set("language", ["en"])),
    Mutation("favourites_count_string", "coerced", "favourites_count",
             _set("favourites_count", "12")),
    Mutation("reblogs_count_word", "coerced", "reblogs_count", _set("reblogs_count", "many")),
    Mutation("replies_count_negative", "coerced", "replies_count", _set("replies_count", -3)),
    Mutation("favourites_count_huge", "coerced", "favourites_count",
             _set("favourites_count", 2**64 - 1)),
    Mutation("reblogs_count_float", "coerced", "reblogs_count", _set("reblogs_count", 1.5)),
    Mutation("replies_count_huge_float", "coerced", "replies_count",
             _set("replies_count", 1e300)),
    Mutation("media_attachments_string", "coerced", "media_attachments",
             _set("media_attachments", "x")),
    Mutation("emojis_object", "coerced", "emojis", _set("emojis", {})),
    Mutation("content_number", "coerced", "content", _set("content", 5)),
    Mutation("content_list", "coerced", "content", _set("content", ["<p>hi</p>"])),
    Mutation("edited_at_garbage", "coerced", "edited_at", _set("edited_at", "garbage")),
    Mutation("application_string", "coerced", "application", _set("application", "x")),
    Mutation("application_unnamed", "coerced", "application",
             _set("application", {"name": 5, "website": []})),
    Mutation("sensitive_string", "coerced", "sensitive", _set("sensitive", "yes")),
    Mutation("spoiler_text_list", "coerced", "spoiler_text", _set("spoiler_text", [])),
    Mutation("mentions_number", "coerced", "mentions", _set("mentions", 3)),
    Mutation("url_number", "coerced", "url", _set("url", 5)),
    Mutation("in_reply_to_id_object", "coerced", "in_reply_to_id",
             _set("in_reply_to_id", {"id": "1"})),
    Mutation("poll_string", "coerced", "poll", _set("poll", "x")),
    Mutation("card_number", "coerced", "card", _set("card", 7)),
    Mutation("account_bot_string", "coerced", "account.bot", _account_set(bot="no")),
    Mutation("account_display_name_number", "coerced", "account.display_name",
             _account_set(display_name=5)),
    Mutation("account_followers_count_word", "coerced", "account.followers_count",
             _account_set(followers_count="many")),
    Mutation("account_created_at_garbage", "coerced", "account.created_at",
             _account_set(created_at="garbage")),
    Mutation("account_id_list", "coerced", "account.id", _account_set(id=["1"])),
    Mutation("account_url_number", "coerced", "account.url", _account_set(url=5)),
]  # fmt: skip

# Optional keys of a status and of its account: servers leave them out or send null. Not
# here: the identity (uri, id, account, acct, username, created_at) and consent (visibility,
# reblog, noindex, note).
OPTIONAL_KEYS = (
    "in_reply_to_id", "in_reply_to_account_id", "sensitive", "spoiler_text", "language", "url",
    "replies_count", "reblogs_count", "favourites_count", "edited_at", "content",
    "media_attachments", "mentions", "tags", "emojis", "card", "poll", "quote", "application",
    "filtered",
)  # fmt: skip
OPTIONAL_ACCOUNT_KEYS = (
    "id", "display_name", "locked", "bot", "discoverable", "indexable", "group", "created_at",
    "url", "uri", "avatar", "avatar_static", "header", "header_static", "followers_count",
    "following_count", "statuses_count", "last_status_at", "hide_collections", "emojis",
    "fields", "roles",
)  # fmt: skip


def _optional_missing(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
    for key in OPTIONAL_KEYS:
        status.pop(key, None)
    account = status["account"]
    for key in OPTIONAL_ACCOUNT_KEYS:
        account.pop(key, None)
    return status


def _nulls_everywhere(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
    for key in OPTIONAL_KEYS:
        status[key] = None
    account = status["account"]
    for key in OPTIONAL_ACCOUNT_KEYS:
        account[key] = None
    return status


def _number(status: dict[str, Any]) -> int:
    return zlib.crc32(str(status.get("uri")).encode())


def _pleroma_status(status: dict[str, Any], local: bool) -> dict[str, Any]:
    return {
        "local": local,
        "conversation_id": _number(status) & 0xFFFFFF,
        "direct_conversation_id": None,
        "in_reply_to_account_acct": None,
        "content": {"text/plain": "(plain text of the post)"},
        "content_type": "text/markdown",
        "spoiler_text": {"text/plain": status.get("spoiler_text") or ""},
        "expires_at": None,
        "thread_muted": False,
        "emoji_reactions": [{"name": "🔥", "count": 2, "me": False, "account_ids": []}],
        "parent_visible": False,
        "pinned_at": None,
        "quotes_count": 0,
        "bookmark_folder": None,
        "context": f"{status.get('uri')}/context",
    }


def _pleroma_account(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "ap_id": status["account"].get("uri"),
        "also_known_as": [],
        "background_image": None,
        "favicon": None,
        "hide_favorites": True,
        "hide_followers": False,
        "hide_followers_count": False,
        "hide_follows": False,
        "hide_follows_count": False,
        "is_admin": False,
        "is_confirmed": True,
        "is_moderator": False,
        "is_suggested": False,
        "relationship": {},
        "skip_thread_containment": False,
        "tags": [],
    }


def _pleroma(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
    status["text"] = None
    status["pleroma"] = _pleroma_status(status, local)
    status["account"]["pleroma"] = _pleroma_account(status)
    return status


def _akkoma(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
    status = _pleroma(status, hostility, local)
    status["pleroma"]["emoji_reactions"].append(
        {"name": "blobcat", "count": 1, "me": False,
         "url": "https://fe.disroot.org/emoji/blobcat.png", "account_ids": []}
    )  # fmt: skip
    status["akkoma"] = {
        "source": {"content": "plain *markdown* source", "mediaType": "text/x.misskeymarkdown"}
    }
    status["content_type"] = "text/x.misskeymarkdown"
    return status


def _gotosocial(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
    status.pop("application", None)  # GoToSocial does not serialize the client app
    status["interaction_policy"] = {
        "can_favourite": {"always": ["public", "me"], "with_approval": []},
        "can_reply": {"always": ["public", "me"], "with_approval": []},
        "can_reblog": {"always": ["public", "me"], "with_approval": []},
    }
    status["local_only"] = False
    return status


_ODD_USERNAMES = (
    "ｍｉｓｓｋｅｙ_ｆａｎ",
    "syuilo.2",
    "__a__",
    "名前のないユーザー",
    "x",
    "Tea-Time.Bot_99",
    "a" * 64,
)


def _misskey_bridge(status: dict[str, Any], hostility: Hostility, local: bool) -> Any:
    username = _ODD_USERNAMES[_number(status) % len(_ODD_USERNAMES)]
    account = status["account"]
    account["username"] = username
    account["acct"] = f"{username}@misskey.example"
    account["display_name"] = f":blobcat: {username} :ablobcatrainbow:"
    account["url"] = f"https://misskey.example/@{username}"
    return status


_SHAPES: list[Mutation] = [
    Mutation("pleroma", "shape", None, _pleroma),
    Mutation("akkoma", "shape", None, _akkoma),
    Mutation("gotosocial", "shape", None, _gotosocial),
    Mutation("misskey_bridge", "shape", None, _misskey_bridge),
    Mutation("optional_missing", "shape", None, _optional_missing),
    Mutation("nulls_everywhere", "shape", None, _nulls_everywhere),
]

_EDITED_AT_LOST = frozenset({"edited_at_garbage", "optional_missing", "nulls_everywhere"})

MUTATIONS: dict[str, Mutation] = {m.name: m for m in (*_INVALID, *_COERCED, *_SHAPES)}
