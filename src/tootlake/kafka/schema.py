"""Avro on Kafka, the schema side: the envelope every message carries and its two framings.

`tootlake.kafka.encode` writes envelopes (the producer), `tootlake.kafka.decode` reads them
(the sink worker); both take their schemas from here.

Every message value is one `org.tootlake.Envelope` (`envelope_schema()`, derived from `Post`,
`Delete`, `Sighting` and `Reject` in tootlake.record, so the wire never disagrees with the code):

    record Envelope {
        string kind;                      "post" (a version of a post), "delete", "sighting"
                                          or "reject"
        union {null, Post} post;          set when kind == "post"
        union {null, Delete} delete;      set when kind == "delete"
        union {null, Sighting} sighting;  set when kind == "sighting"
        union {null, Reject} reject;      set when kind == "reject" (added in envelope-v2)
    }

One schema for every kind keeps a topic readable by tools that want one schema per topic
(Kafka Connect, ksqlDB, Flink's avro-confluent format), and lets a post, its sightings and
its delete share a key, a partition and an order. Nullable unions of records are the one
kind of union all of them read. A new kind would be a new field at the end, with a null
default; readers that do not know it see an envelope without a known record (a dead letter).
`reject` was added that way: a v2 reader reads v1 messages (no reject field: null), a v1 reader
given a v2 schema (through a registry) dead-letters the rejects and reads the rest.

Framings (the first byte tells them apart):

    single object (default)  C3 01 | CRC-64-AVRO fingerprint of the schema's parsing canonical
                             form, 8 bytes little-endian | Avro binary body. No registry: the
                             reader finds the writer's schema by fingerprint among every schema
                             tootlake has shipped (tootlake/kafka/schemas/envelope-vN.avsc).
    Confluent                00 | schema id, 4 bytes big-endian | Avro binary body, written by
                             confluent-kafka's AvroSerializer (subject "<topic>-value").

Evolution rule: fields are only ever added, at the end, with a default, so a reader with a
newer schema resolves every older message (Avro schema resolution). `scripts/gen_avro_schema.py`
writes a new envelope-vN.avsc whenever the code's schema changes; a test fails until it has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from tootlake.errors import ConfigError, MissingDependency
from tootlake.record import Delete, Post, Reject, Sighting, avro_schema

__all__ = [
    "CONFLUENT_MAGIC",
    "KINDS",
    "NAMESPACE",
    "SINGLE_OBJECT_MAGIC",
    "Record",
    "ShippedSchema",
    "canonical_form",
    "delete_avro_schema",
    "envelope_schema",
    "fastavro_module",
    "fingerprint",
    "lake_schema",
    "post_avro_schema",
    "reject_avro_schema",
    "schema_file_text",
    "schema_registry_client",
    "shipped_schemas",
    "sighting_avro_schema",
    "single_object_header",
    "writer_schemas",
    "zigzag_varint",
]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
NAMESPACE = "org.tootlake"
SCHEMA_FILE_PREFIX = "envelope-v"

Record = Post | Delete | Sighting | Reject
# kind -> record class: the envelope field named like the kind holds the record (in the
# envelope's field order)
KINDS: dict[str, type] = {"post": Post, "delete": Delete, "sighting": Sighting, "reject": Reject}


def fastavro_module() -> Any:
    """fastavro, or MissingDependency naming the extra that brings it."""
    try:
        import fastavro
    except ImportError:
        raise MissingDependency("fastavro", "kafka") from None
    return fastavro


@cache
def post_avro_schema() -> dict[str, Any]:
    """`record.avro_schema()`: the Avro record of a post."""
    return avro_schema()


def _record_schema(cls: type) -> dict[str, Any]:
    from tootlake.record import avro_record_schema  # the one derivation, shared

    return avro_record_schema(cls)


@cache
def delete_avro_schema() -> dict[str, Any]:
    """The Avro record of a delete, derived from `Delete`."""
    return _record_schema(Delete)


@cache
def sighting_avro_schema() -> dict[str, Any]:
    """The Avro record of a sighting, derived from `Sighting`."""
    return _record_schema(Sighting)


@cache
def reject_avro_schema() -> dict[str, Any]:
    """The Avro record of a rejected status, derived from `Reject`."""
    return _record_schema(Reject)


@cache
def envelope_schema() -> dict[str, Any]:
    """The schema of every message value: a post, a delete, a sighting or a reject (module
    docstring). New kinds go at the end, nullable with a null default."""
    return {
        "type": "record",
        "name": "Envelope",
        "namespace": NAMESPACE,
        "doc": "One tootlake event: a version of a post, a delete, a sighting of a post, or a "
        "status that was rejected. Exactly one record field is set, the one kind names.",
        "fields": [
            {"name": "kind", "type": "string", "doc": "post, delete, sighting or reject"},
            {"name": "post", "type": ["null", post_avro_schema()], "default": None,
             "doc": "the post version, when kind is post"},
            {"name": "delete", "type": ["null", delete_avro_schema()], "default": None,
             "doc": "the delete, when kind is delete"},
            {"name": "sighting", "type": ["null", sighting_avro_schema()], "default": None,
             "doc": "the sighting, when kind is sighting"},
            {"name": "reject", "type": ["null", reject_avro_schema()], "default": None,
             "doc": "the rejected status, when kind is reject"},
        ],
    }  # fmt: skip


def canonical_form(schema: dict[str, Any]) -> str:
    """The Parsing Canonical Form of a schema (Avro spec): what its fingerprint is taken of."""
    return str(fastavro_module().schema.to_parsing_canonical_form(schema))


_EMPTY64 = 0xC15D213AA4D7A795


@cache
def _rabin_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp)
    return tuple(table)


def fingerprint(schema: dict[str, Any] | str) -> int:
    """CRC-64-AVRO (Rabin) fingerprint of a schema's parsing canonical form, as an int."""
    text = schema if isinstance(schema, str) else canonical_form(schema)
    table = _rabin_table()
    fp = _EMPTY64
    for byte in text.encode("utf-8"):
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def single_object_header(schema: dict[str, Any]) -> bytes:
    return SINGLE_OBJECT_MAGIC + fingerprint(schema).to_bytes(8, "little")


@dataclass(frozen=True)
class ShippedSchema:
    version: int
    name: str  # file name
    schema: dict[str, Any]
    fingerprint: int


def _schema_dir() -> Any:
    return resources.files("tootlake.kafka") / "schemas"


def shipped_schemas() -> list[ShippedSchema]:
    """Every envelope schema tootlake has shipped, oldest first (kafka/schemas/envelope-vN.avsc)."""
    found = []
    folder = _schema_dir()
    if not folder.is_dir():
        return []
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith(SCHEMA_FILE_PREFIX) and name.endswith(".avsc"):
            version = int(name[len(SCHEMA_FILE_PREFIX) : -len(".avsc")])
            schema = json.loads(entry.read_text(encoding="utf-8"))
            found.append(ShippedSchema(version, name, schema, fingerprint(schema)))
    return sorted(found, key=lambda s: s.version)


@cache
def writer_schemas() -> dict[int, dict[str, Any]]:
    """fingerprint -> schema of every envelope version a reader may meet: the shipped ones and
    the code's own (which equals the newest shipped one, unless a schema change is in progress)."""
    known = {s.fingerprint: s.schema for s in shipped_schemas()}
    known[fingerprint(envelope_schema())] = envelope_schema()
    return known


def schema_file_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def lake_schema(kind: str) -> Any:
    """The Arrow schema of a kind's lake table."""
    from tootlake.record import (
        arrow_schema,
        delete_arrow_schema,
        reject_arrow_schema,
        sighting_arrow_schema,
    )

    return {
        "post": arrow_schema,
        "delete": delete_arrow_schema,
        "sighting": sighting_arrow_schema,
        "reject": reject_arrow_schema,
    }[kind]()


REGISTRY_TIMEOUT = 5.0  # seconds per connect or read of a request
# A sink worker's client tries a request twice: the worker tries again at its own pace
# (KeepWriting), and a stop during a stall must not wait for four tries. A producer keeps
# the client's default (4), its registration being its one request.
SINK_RETRIES = 1


def _usable_url(url: str) -> bool:
    """An http(s) URL with a host, or confluent-kafka's `mock://` (the client checks only
    that a URL starts with "http": `http//host` reached httpx as a scheme it cannot speak)."""
    if url.startswith("mock://"):
        return True
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # (a port that is no number, a bracket left open)
        return False


def schema_registry_client(registry: Any, *, retries: int | None = None) -> Any:
    """A confluent-kafka SchemaRegistryClient from a URL (`mock://...` gives the in-process
    mock; several URLs, comma-separated, are tried in turn), or the client itself when one is
    passed. `retries`: the client's own tries of a request after the first."""
    if not isinstance(registry, str):
        return registry
    if not all(_usable_url(url.strip()) for url in registry.split(",")):
        # (not quoted: the URL may hold a login)
        raise ConfigError(
            "The schema registry URL cannot be used: it needs http:// or https:// and a "
            "host (--schema-registry, TOOTLAKE_SCHEMA_REGISTRY)"
        )
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:
        missing = (exc.name or "confluent_kafka").split(".")[0]
        raise MissingDependency(missing, "kafka") from None
    # A request that never ends (the client's default: no timeout) would hold a sink's flush
    # or a producer's start for good: a registry that stalls is an outage like one that fails.
    conf: dict[str, Any] = {"url": registry, "timeout": REGISTRY_TIMEOUT}
    if retries is not None:
        conf["max.retries"] = retries
    try:
        return SchemaRegistryClient.new_client(conf)
    except ValueError as exc:  # "Invalid url <the URL>": the URL may hold a login, not quoted
        raise ConfigError(
            "The schema registry URL cannot be used: it needs http:// or https:// and a "
            "host (--schema-registry, TOOTLAKE_SCHEMA_REGISTRY)"
        ) from exc
    except OSError as exc:  # the certificates to trust cannot be read (SSL_CERT_FILE)
        raise ConfigError(f"Cannot set up TLS for the schema registry: {exc}") from exc


def zigzag_varint(value: int) -> bytes:
    """An Avro long: zigzag, then a varint."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
