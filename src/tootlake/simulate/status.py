"""Mastodon JSON of simulated posts, as each instance of the simulated fediverse serves it.

A post (`SimPost`) keeps its draft; each observing instance's copy is rendered from it with
the few fields that differ per server, serialized once (orjson) and shared by every connection
of that instance.

What differs between the copies, as on real servers:
  * `id`: the observer's own snowflake-like id; `account.id` too;
  * local copy: `application` present (maybe null), `account.acct` unqualified, `noindex` and
    `roles` on the account, `created_at`/`edited_at` with milliseconds;
  * remote copies: no `application` key, `acct` is `user@origin`, times at second precision,
    media `remote_url` set;
  * `tags[].url` and the reply ids point at the observing instance.
Key order follows the recorded mastodon.social and fosstodon.org payloads of 2025-07.
"""

from __future__ import annotations

import functools
import time
import zlib
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson

from tootlake.simulate.hostile import Hostility
from tootlake.simulate.workload import Author, Draft

__all__ = ["Observer", "Renderer", "SimPost", "Snowflake", "iso_ms", "iso_s"]


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _seconds(t: float) -> tuple[int, str]:
    # strftime is slow next to the rest of publishing a post: format each second once.
    global _second
    whole = int(t)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return _second


def iso_ms(t: float) -> str:
    """UTC time with milliseconds, as Mastodon writes local times: 2025-07-17T20:03:41.742Z."""
    whole, text = _seconds(t)
    return f"{text}.{int((t - whole) * 1000):03d}Z"


def iso_s(t: float) -> str:
    """UTC time at second precision, as remote posts carry their ActivityPub `published`."""
    return _seconds(t)[1] + ".000Z"


class Snowflake:
    """Mastodon-like ids: milliseconds << 16 plus a sequence, strictly increasing per server.

    Strictly increasing in arrival order is what makes `min_id` paging gap-free, as on a real
    server that assigns ids as statuses arrive.
    """

    __slots__ = ("last", "seq")

    def __init__(self, salt: int) -> None:
        self.last = 0
        self.seq = salt & 0xFFFF

    def next(self, t: float) -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        self.last = max(self.last + 1, (int(t * 1000) << 16) | self.seq)
        return self.last


class Observer:
    """What rendering needs to know of an instance: its index, host and base URL."""

    __slots__ = ("base_url", "host", "index")

    def __init__(self, index: int, host: str, base_url: str) -> None:
        self.index = index
        self.host = host
        self.base_url = base_url


class SimPost:
    """One published status: its identity, its current version and where copies of it live.

    `copies` maps instance index -> that instance's local id. After the fediverse's retention
    is exceeded `draft` is dropped (the post stays in the ground truth, not in timelines).
    """

    __slots__ = (
        "author",
        "copies",
        "created",
        "created_ms",
        "created_s",
        "deleted",
        "draft",
        "edited_at",
        "edited_s",
        "hostile",
        "local",
        "media",
        "opted_out",
        "origin",
        "origin_index",
        "parent",
        "quote_state",
        "quoted",
        "streamable",
        "tags",
        "uri",
        "url",
    )

    def __init__(self, draft: Draft, uri: str, url: str, created: float) -> None:
        self.draft: Draft | None = draft
        self.uri = uri
        self.url = url
        self.origin = draft.author.home
        self.origin_index = draft.author.home_index
        self.created = created
        self.created_ms = iso_ms(created)
        self.created_s = iso_s(created)
        self.edited_at: str | None = None
        self.edited_s: str | None = None
        self.copies: dict[int, int] = {}
        self.deleted = False
        self.streamable = draft.streamable
        self.opted_out = draft.author.opted_out
        self.author = draft.author  # its flags decide consent (the draft is freed later)
        self.media = bool(draft.media)
        self.tags = frozenset(t.lower() for t in draft.tags)
        self.parent: SimPost | None = None  # the post a self-reply continues
        self.quoted: SimPost | None = None  # the post it quotes (Mastodon 4.4+ quote posts)
        self.quote_state: str | None = None  # accepted, pending, revoked...
        self.hostile: Hostility | None = None  # how it is served mutated (simulate.hostile)

    def __repr__(self) -> str:
        return f"SimPost({self.uri!r}, copies={self.copies})"

    @property
    def quote_uri(self) -> str | None:
        """The quoted post's uri as its copies carry it (`quote.quoted_status.uri`)."""
        quoted = self.quoted
        if quoted is None or self.quote_state != "accepted" or quoted.hostile is not None:
            return None
        return quoted.uri if quoted.draft is not None else None


def _uri_of(author: Author, origin_id: int, scheme: str) -> tuple[str, str]:
    """(uri, url) of a post in its origin software's style."""
    home, user = author.home, author.username
    if author.software == "misskey":
        note = _base36(origin_id)
        return f"https://{home}/notes/{note}", f"https://{home}/notes/{note}"
    if author.software == "akkoma":
        return (
            f"https://{home}/objects/{_uuid(origin_id)}",
            f"https://{home}/notice/{_base36(origin_id)}",
        )
    if author.software == "bridgy":
        tid = _base36(origin_id)
        did = f"did:plc:{_base36(author.key)}"
        return (
            f"https://bsky.brid.gy/convert/ap/at://{did}/app.bsky.feed.post/{tid}",
            f"https://bsky.app/profile/{user}/post/{tid}",
        )
    if author.software == "threads":
        return (
            f"https://www.threads.net/ap/users/{author.key}/post/{origin_id}/",
            f"https://www.threads.net/@{user}/post/{_base36(origin_id)}",
        )
    return (
        f"{scheme}://{home}/users/{user}/statuses/{origin_id}",
        f"{scheme}://{home}/@{user}/{origin_id}",
    )


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def _uuid(n: int) -> str:
    h = f"{n:032x}"[-32:]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _scheme(host: str) -> str:
    return "http" if host.startswith(("127.", "localhost", "[::1]")) else "https"


class Renderer:
    """Builds the origin view of posts and each instance's copy. Caches account dicts per author."""

    def __init__(self) -> None:
        self._accounts: dict[tuple[int, bool], dict[str, Any]] = {}
        self._virtual_ids: dict[str, Snowflake] = {}
        self._account_ids: dict[int, int] = {}

    # -- identity ----------------------------------------------------------------------------

    def new_post(self, draft: Draft, created: float, origin_id: int | None) -> SimPost:
        """A post with its uri: `origin_id` is the local id on a simulated origin, else None."""
        author = draft.author
        if origin_id is None:  # a virtual server numbers its own posts
            flake = self._virtual_ids.setdefault(
                author.home, Snowflake(zlib.crc32(author.home.encode()))
            )
            origin_id = flake.next(created)
        uri, url = _uri_of(author, origin_id, _scheme(author.home))
        if draft.reblog:  # a boost's uri is the Announce activity
            uri, url = f"{uri}/activity", f"{uri}/activity"
        return SimPost(draft, uri, url, created)

    def account_id(self, author: Author, observer_index: int | None) -> int:
        """The author's account id on an instance (their home one when observer is home)."""
        base = self._account_ids.get(author.key)
        if base is None:
            created = datetime.fromisoformat(author.created_at).timestamp()
            base = self._account_ids[author.key] = (int(created * 1000) << 16) | (
                author.key & 0xFFFF
            )
        if observer_index is None or observer_index == author.home_index:
            return base
        # Remote accounts are created when first seen: a later id on each observer.
        return base + ((observer_index + 1) * 7919 << 16) * 1000

    def _account(self, author: Author, local: bool) -> dict[str, Any]:
        key = (author.key, local)
        cached = self._accounts.get(key)
        if cached is not None:
            return cached
        scheme = _scheme(author.home)
        home = f"{scheme}://{author.home}"
        avatar = f"{home}/system/accounts/avatars/{author.key:09d}/original/{author.key:016x}.png"
        account: dict[str, Any] = {
            "id": "",
            "username": author.username,
            "acct": author.username if local else f"{author.username}@{author.home}",
            "display_name": author.display_name,
            "locked": author.locked,
            "bot": author.bot,
            "discoverable": author.discoverable,
            "indexable": author.indexable,
            "group": author.group,
            "created_at": author.created_at,
            "note": author.note,
            "url": f"{home}/@{author.username}",
            "uri": f"{home}/users/{author.username}",
            "avatar": avatar,
            "avatar_static": avatar,
            "header": f"{home}/headers/original/missing.png",
            "header_static": f"{home}/headers/original/missing.png",
            "followers_count": author.followers_count,
            "following_count": author.following_count,
            "statuses_count": author.statuses_count,
            "last_status_at": "",
            "hide_collections": False,
            "emojis": [],
            "fields": [
                {"name": name, "value": value, "verified_at": None} for name, value in author.fields
            ],
        }
        moved = author.moved_to
        if moved is not None:  # Mastodon serializes the target account, after `hide_collections`
            user, host = moved
            account = _insert_after(account, "hide_collections", {"moved": {
                "id": str(zlib.crc32(f"{user}@{host}".encode()) << 20 | 3),
                "username": user,
                "acct": f"{user}@{host}",
                "display_name": author.display_name,
                "url": f"{_scheme(host)}://{host}/@{user}",
            }})  # fmt: skip
        if local:  # noindex and roles are serialized for local accounts only
            account = _insert_after(account, "hide_collections", {"noindex": author.noindex})
            account = _insert_after(account, "emojis", {"roles": []})
        self._accounts[key] = account
        return account

    def account(self, author: Author, observer_index: int, *, suspended: bool = False) -> Any:
        """The author's account as instance `observer_index` serves it (`GET
        /api/v1/accounts/:id`); a suspended one as Mastodon shows it: emptied, `suspended`."""
        account = self._account(author, observer_index == author.home_index).copy()
        account["id"] = str(self.account_id(author, observer_index))
        if suspended:
            account.update(display_name="", note="", fields=[], emojis=[], suspended=True)
            account.update(followers_count=0, following_count=0, statuses_count=0)
        return account

    def update(self, post: SimPost, draft: Draft, edited: float) -> None:
        """A new version of the post (an edit)."""
        post.draft = draft
        post.edited_at = iso_ms(edited)
        post.edited_s = iso_s(edited)
        post.tags = frozenset(t.lower() for t in draft.tags)
        post.media = bool(draft.media)

    # -- copies ------------------------------------------------------------------------------

    def copy(
        self,
        post: SimPost,
        observer: Observer,
        local_id: int,
        *,
        user: bool = False,
        stream: bool = False,
        nested: bool = False,
    ) -> Any:
        """The status as `observer` serves it under `local_id`: a dict, unless the post is
        hostile (`post.hostile`), whose payload may be any JSON value.

        `nested`: as the quoted status inside a quote post (its own quote shallow).

        `stream`: as the streaming server sends it to an authenticated connection (it adds
        `filtered: []`); `user`: as the REST API answers a user token (viewer flags).
        Built from the draft each time: a dict kept per post would cost the garbage collector
        more than building it costs.
        """
        draft = post.draft
        assert draft is not None, "post evicted from the simulator's memory"
        author = draft.author
        local = observer.index == author.home_index
        account = self._account(author, local).copy()
        account["id"] = str(self.account_id(author, observer.index))
        account["last_status_at"] = post.created_ms[:10]
        reply_id = reply_account = None
        if draft.reply is not None:
            parent = post.parent.copies.get(observer.index) if post.parent else None
            reply_id = str(parent or local_id - 0x5F5E1000)
            if draft.reply == "self":
                reply_account = account["id"]
            elif draft.mentions:  # a reply to another account mentions it first
                reply_account = _mention_id(*draft.mentions[0])
            else:
                reply_account = str(local_id - 0x1D4D0000)
        replies, reblogs, favourites = draft.counts
        status: dict[str, Any] = {
            "id": str(local_id),
            "created_at": post.created_ms if local else post.created_s,
            "in_reply_to_id": reply_id,
            "in_reply_to_account_id": reply_account,
            "sensitive": draft.sensitive,
            "spoiler_text": draft.spoiler_text,
            "visibility": draft.visibility,
            "language": draft.language,
            "uri": post.uri,
            "url": post.url,
            "replies_count": replies,
            "reblogs_count": reblogs,
            "favourites_count": favourites,
            "edited_at": post.edited_at if local else post.edited_s,
            "content": _quote_fallback(post.quoted, post.quote_state) + draft.content,
            "reblog": None,
            "application": None,
            "account": account,
            "media_attachments": _media(draft, observer, local, local_id) if draft.media else [],
            "mentions": [_mention(u, h, observer.host) for u, h in draft.mentions],
            "tags": [
                {"name": t, "url": f"{observer.base_url}/tags/{_quoted(t)}"} for t in draft.tags
            ],
            "emojis": list(draft.emojis),
            "quote": self._quote(post, observer, nested),
            "card": draft.card,
            "poll": draft.poll,
        }
        if local:  # only the origin serializes the client app (null when hidden)
            app = draft.application
            status["application"] = {"name": app[0], "website": app[1]} if app else None
        else:
            del status["application"]
        if draft.reblog:
            # The boosted status itself; a boost has no content or language of its own.
            inner = dict(status, uri=post.uri.removesuffix("/activity") + "0", id=str(local_id - 1))
            inner.pop("application", None)
            status.update(content="", language=None, reblog=inner, card=None, poll=None)
        if user:
            status = _viewer(status)
        if stream:
            status["filtered"] = []
        if post.hostile is not None:
            return post.hostile.apply(status, local)
        return status

    def _quote(self, post: SimPost, observer: Observer, nested: bool) -> dict[str, Any] | None:
        """Mastodon 4.4+'s `quote`: the quoted status in full as the observer has it (a
        server fetches what it lacks: any id will do), null for no quote, `quoted_status`
        null in a state other than accepted; a ShallowQuote inside a quoted status and for a
        quoted post no longer in memory (`SimPost.quote_uri` says what a collector reads)."""
        quoted = post.quoted
        if quoted is None:
            return None
        if post.quote_state != "accepted":
            return {"state": post.quote_state, "quoted_status": None}
        local_id = quoted.copies.get(observer.index) or next(iter(quoted.copies.values()), 1)
        if nested or quoted.draft is None or quoted.hostile is not None:
            return {"state": "accepted", "quoted_status_id": str(local_id)}
        inner = self.copy(quoted, observer, local_id, nested=True)
        return {"state": "accepted", "quoted_status": inner}

    def render(
        self,
        post: SimPost,
        observer: Observer,
        local_id: int,
        *,
        stream: bool = False,
        user: bool = False,
    ) -> bytes:
        """`copy()` as JSON bytes: one line, UTF-8, as the streaming server sends it."""
        return orjson.dumps(self.copy(post, observer, local_id, stream=stream, user=user))


@functools.lru_cache(maxsize=65536)
def _quoted(tag: str) -> str:
    return quote(tag, safe="")


def _insert_after(d: dict[str, Any], key: str, extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out[k] = v
        if k == key:
            out.update(extra)
    return out


def _viewer(status: dict[str, Any]) -> dict[str, Any]:
    """Fields the REST API adds for a user token, where Mastodon puts them."""
    status = _insert_after(
        status,
        "edited_at",
        {"favourited": False, "reblogged": False, "muted": False, "bookmarked": False},
    )
    return _insert_after(status, "content", {"filtered": []})


def _mention_id(username: str, host: str) -> str:
    """The mentioned account's id (the same on every observer, for simplicity)."""
    return str((zlib.crc32(f"{username}@{host}".encode()) << 20) | 1)


def _quote_fallback(quoted: SimPost | None, state: str | None) -> str:
    """The paragraph Mastodon puts before a quote post's content for older clients."""
    if quoted is None or state != "accepted":
        return ""
    link = quoted.url.split("://", 1)[1]
    return (
        f'<p class="quote-inline">RE: <a href="{quoted.url}" target="_blank" '
        f'rel="nofollow noopener">{link}</a></p>'
    )


def _mention(username: str, host: str, observer_host: str) -> dict[str, Any]:
    return {
        "id": _mention_id(username, host),
        "username": username,
        "url": f"{_scheme(host)}://{host}/@{username}",
        "acct": username if host == observer_host else f"{username}@{host}",
    }


def _media(draft: Draft, observer: Observer, local: bool, local_id: int) -> list[dict[str, Any]]:
    if "url" in draft.media[0]:  # borrowed from a real status: already complete
        return [dict(m) for m in draft.media]
    out = []
    origin = f"{_scheme(draft.author.home)}://{draft.author.home}"
    for number, media in enumerate(draft.media):
        media_id = local_id + number + 1
        path = f"media_attachments/files/{media_id:018d}/original/{media_id:016x}"
        ext = (
            "mp4"
            if media["type"] in ("video", "gifv")
            else "mp3"
            if media["type"] == "audio"
            else "jpg"
        )
        origin_url = f"{origin}/system/{path}.{ext}"
        url = origin_url if local else f"{observer.base_url}/system/cache/{path}.{ext}"
        out.append({
            "id": str(media_id),
            "type": media["type"],
            "url": url,
            "preview_url": url.replace("/original/", "/small/").rsplit(".", 1)[0] + ".jpg",
            "remote_url": None if local else origin_url,
            "preview_remote_url": None,
            "text_url": None,
            "meta": media["meta"],
            "description": media["description"],
            "blurhash": media["blurhash"],
        })  # fmt: skip
    return out
