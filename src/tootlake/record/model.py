"""The records tootlake writes: a post, a delete, a sighting and a rejected status.

`Post` is the one field list of a post. The Arrow schema of the lake (`arrow_schema()`) and
the Avro schema of the Kafka topic (`avro_schema()`) are derived from its annotations and
their descriptions, so the code, the lake and the wire never disagree. Records are frozen
msgspec Structs without GC tracking: made per post on the hot path, they cost a fifth of a
dataclass to build, and the collector holds a batch of them without the collector's GC
walking them. Columns are never renamed; new ones are added
at the end, nullable (Avro: with a null default) so old files and messages still read.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from functools import cache
from typing import Annotated, Any

import msgspec

__all__ = [
    "RAW_LIMIT",
    "Delete",
    "Post",
    "Reject",
    "Sighting",
    "arrow_schema",
    "avro_record_schema",
    "avro_schema",
    "delete_arrow_schema",
    "reject_arrow_schema",
    "sighting_arrow_schema",
]

RAW_LIMIT = 64 * 1024  # characters of a rejected payload kept in the rejects table


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class Post(msgspec.Struct, frozen=True, gc=False):
    """One version of one public post, as seen on one instance."""

    uri: Annotated[str, _doc("ActivityPub id of the post: its unique key across servers")]
    id: Annotated[str, _doc("status id on the observing instance (ids are per server)")]
    observed_on: Annotated[str | None, _doc("host of the instance it was collected from")]
    origin: Annotated[str, _doc("host of the author's home server, from uri")]
    url: Annotated[str | None, _doc("HTML permalink")]
    created_at: Annotated[datetime, _doc("when the author posted it (UTC)")]
    edited_at: Annotated[datetime | None, _doc("when this version was edited (UTC)")]
    ingested_at: Annotated[datetime, _doc("when tootlake received this version (UTC)")]
    language: Annotated[str | None, _doc("ISO 639 code given by the author's client")]
    app: Annotated[str | None, _doc("client app name; only local posts carry it")]
    acct: Annotated[str, _doc("author, always qualified: user@host")]
    username: Annotated[str, _doc("author's user name")]
    display_name: Annotated[str, _doc("author's display name")]
    bot: Annotated[bool, _doc("the author's account is marked as a bot")]
    text: Annotated[str, _doc("plain text of the content HTML")]
    characters: Annotated[int, _doc("code points of text")]
    words: Annotated[int, _doc("whitespace-separated words of text")]
    tags: Annotated[list[str], _doc("hashtags, lower case")]
    mentions_count: Annotated[int, _doc("accounts mentioned")]
    media_count: Annotated[int, _doc("media attachments")]
    favourites_count: Annotated[int, _doc("favourites known to the observing instance")]
    reblogs_count: Annotated[int, _doc("boosts known to the observing instance")]
    replies_count: Annotated[int, _doc("replies known to the observing instance")]
    sensitive: Annotated[bool, _doc("marked sensitive")]
    spoiler_text: Annotated[str, _doc("content warning, empty when none")]
    visibility: Annotated[str, _doc("public (the only visibility collected)")]
    in_reply_to_id: Annotated[str | None, _doc("status id it replies to (observer's id)")]
    # Added beyond the talk's columns: what analysts asked for next.
    local: Annotated[bool, _doc("observed on the author's home server (origin)")]
    account_id: Annotated[str, _doc("author's account id on the observing instance")]
    account_created_at: Annotated[datetime | None, _doc("when the account was made")]
    followers_count: Annotated[int, _doc("author's followers known to the observer")]
    in_reply_to_account_id: Annotated[str | None, _doc("account id it replies to")]
    app_website: Annotated[str | None, _doc("client app website, when given")]
    has_poll: Annotated[bool, _doc("carries a poll")]
    has_card: Annotated[bool, _doc("carries a link preview card")]
    emojis_count: Annotated[int, _doc("custom emojis used")]
    opted_out: Annotated[
        bool, _doc("author opted out of indexing (kept only with --include-opted-out)")
    ] = False
    # Issue 13 (interactions) and issue 12 (account flags, quotes): from the status as sent;
    # null in files and messages written before them.
    mentions: Annotated[
        list[str] | None, _doc("accounts mentioned, qualified user@host, in the status' order")
    ] = None
    in_reply_to_acct: Annotated[
        str | None, _doc("account it replies to, qualified, when the status names it")
    ] = None
    quote_uri: Annotated[str | None, _doc("uri of the post it quotes (Mastodon 4.4+)")] = None
    quote_state: Annotated[
        str | None, _doc("state of its quote: accepted, pending, revoked... (4.4+)")
    ] = None
    quotes_count: Annotated[int | None, _doc("quotes known to the observing instance (4.5+)")] = (
        None
    )
    indexable: Annotated[bool | None, _doc("the author opted in to full-text search (4.2+)")] = None
    discoverable: Annotated[bool | None, _doc("the author is listed in discovery features")] = None
    locked: Annotated[bool | None, _doc("the author approves followers by hand")] = None
    group: Annotated[bool | None, _doc("the author is a group account (quote it in SQL)")] = None
    moved_to: Annotated[str | None, _doc("account the author moved to, qualified user@host")] = None
    consent: Annotated[
        str | None,
        _doc("strongest consent its author showed: opt-in (indexable), opt-out, none (opted out)"),
    ] = None


class Delete(msgspec.Struct, frozen=True, gc=False):
    """A delete event: the observing instance's local id, and the uri when it is known."""

    observed_on: Annotated[str | None, _doc("host the delete was received from")]
    id: Annotated[str, _doc("status id on that instance")]
    uri: Annotated[str | None, _doc("uri of the deleted post, when known")]
    deleted_at: Annotated[datetime, _doc("when tootlake received the delete (UTC)")]
    reason: Annotated[
        str | None,
        _doc(
            "null: the server sent the delete; otherwise why tootlake removed the post: "
            "deleted, account_gone or gone_from_observer (found by revalidate), not_public, "
            "or the consent gate "
            "a later copy failed (noindex, opt_out_tag, not_indexable, locked, bot)"
        ),
    ] = None


class Sighting(msgspec.Struct, frozen=True, gc=False):
    """A post seen on an instance: one row per (instance, local id), for federation reach."""

    uri: Annotated[str, _doc("ActivityPub id of the post")]
    observed_on: Annotated[str | None, _doc("host of the instance it was seen on")]
    id: Annotated[str, _doc("status id on that instance")]
    seen_at: Annotated[datetime, _doc("when tootlake first received it there (UTC)")]


class Reject(msgspec.Struct, frozen=True, gc=False):
    """A status (or line, or event) that could not become a post, kept so nothing is lost
    silently: the rejects table says what came, from where, and why."""

    rejected_at: Annotated[datetime, _doc("when tootlake rejected it (UTC)")]
    source: Annotated[str, _doc("what it came through: sse, websocket, rest or replay")]
    observed_on: Annotated[str | None, _doc("host of the instance it came from")]
    where: Annotated[str | None, _doc("file:line, or instance and transport")]
    reason: Annotated[str, _doc("why it was rejected")]
    field: Annotated[str | None, _doc("the field at fault (dotted path), when one is")]
    raw: Annotated[str, _doc("the payload as received, cut to 64 KiB")]


# ----------------------------------------------------------------------------------------
# schemas derived from the records


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(inner type, nullable) of an annotation such as `str | None`."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _fields(cls: type) -> list[tuple[str, Any, bool, str]]:
    """(name, type, nullable, doc) of each field of a record, in order."""
    out = []
    for f in msgspec.structs.fields(cls):
        tp, meta = typing.get_args(f.type)  # Annotated[type, Meta(description=...)]
        inner, nullable = _unwrap(tp)
        out.append((f.name, inner, nullable, meta.description or ""))
    return out


def _arrow_type(tp: Any) -> Any:
    import pyarrow as pa

    if tp is str:
        return pa.string()
    if tp is bool:
        return pa.bool_()
    if tp is int:
        return pa.int64()
    if tp is datetime:
        return pa.timestamp("us", tz="UTC")
    if typing.get_origin(tp) is list:
        return pa.list_(_arrow_type(typing.get_args(tp)[0]))
    raise TypeError(f"no Arrow type for {tp!r}")


def _schema_of(cls: type) -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field(name, _arrow_type(tp), nullable=nullable, metadata={"doc": doc})
            for name, tp, nullable, doc in _fields(cls)
        ]
    )


@cache
def arrow_schema() -> Any:
    """The Arrow schema of the lake's posts, derived from `Post`."""
    return _schema_of(Post)


@cache
def delete_arrow_schema() -> Any:
    """The Arrow schema of the lake's deletes, derived from `Delete`."""
    return _schema_of(Delete)


@cache
def reject_arrow_schema() -> Any:
    """The Arrow schema of the lake's rejects, derived from `Reject`."""
    return _schema_of(Reject)


@cache
def sighting_arrow_schema() -> Any:
    """The Arrow schema of the lake's sightings, derived from `Sighting`."""
    return _schema_of(Sighting)


def _avro_type(tp: Any) -> Any:
    if tp is str:
        return "string"
    if tp is bool:
        return "boolean"
    if tp is int:
        return "long"
    if tp is datetime:
        return {"type": "long", "logicalType": "timestamp-micros"}
    if typing.get_origin(tp) is list:
        return {"type": "array", "items": _avro_type(typing.get_args(tp)[0])}
    raise TypeError(f"no Avro type for {tp!r}")


def avro_record_schema(cls: type) -> dict[str, Any]:
    """The Avro record of one of the records here: nullable fields default to null, and a
    field with a default has it in Avro too, so readers can resolve old messages."""
    defaults = {f.name: f.default for f in msgspec.structs.fields(cls)}
    fields = []
    for name, tp, nullable, doc in _fields(cls):
        avro: dict[str, Any] = {"name": name, "doc": doc}
        if nullable:
            avro["type"] = ["null", _avro_type(tp)]
            avro["default"] = None
        else:
            avro["type"] = _avro_type(tp)
            if defaults[name] is not msgspec.NODEFAULT:
                avro["default"] = defaults[name]
        fields.append(avro)
    return {"type": "record", "name": cls.__name__, "namespace": "org.tootlake", "fields": fields}


@cache
def avro_schema() -> dict[str, Any]:
    """The Avro record schema of a post, derived from `Post`."""
    return avro_record_schema(Post)
