"""Avro on Kafka: the envelope every message carries, its two framings, and the sink's decoder.

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
                             tootlake has shipped (tootlake/data/avro/envelope-vN.avsc).
    Confluent                00 | schema id, 4 bytes big-endian | Avro binary body, written by
                             confluent-kafka's AvroSerializer (subject "<topic>-value").

Evolution rule: fields are only ever added, at the end, with a default, so a reader with a
newer schema resolves every older message (Avro schema resolution). `scripts/gen_avro_schema.py`
writes a new envelope-vN.avsc whenever the code's schema changes; a test fails until it has.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from operator import attrgetter
from typing import Any

import msgspec

from tootlake.errors import MissingDependency, TransportError
from tootlake.record import Delete, Post, Reject, Sighting, avro_schema

__all__ = [
    "CONFLUENT_MAGIC",
    "DecodedBatch",
    "batch_encoder",
    "KINDS",
    "EnvelopeDecoder",
    "SINGLE_OBJECT_MAGIC",
    "canonical_form",
    "confluent_encoder",
    "delete_avro_schema",
    "envelope_of",
    "envelope_schema",
    "fingerprint",
    "key_of",
    "post_avro_schema",
    "reject_avro_schema",
    "sighting_avro_schema",
    "shipped_schemas",
    "single_object_encoder",
]

log = logging.getLogger(__name__)

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
NAMESPACE = "org.tootlake"
SCHEMA_FILE_PREFIX = "envelope-v"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OBJECT_REPR = re.compile(r" (from|of) <[^>]*>")


def _fastavro() -> Any:
    try:
        import fastavro
    except ImportError:
        raise MissingDependency("fastavro", "kafka") from None
    return fastavro


# ----------------------------------------------------------------------------------------
# schemas


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
    return str(_fastavro().schema.to_parsing_canonical_form(schema))


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
    return resources.files("tootlake") / "data" / "avro"


def shipped_schemas() -> list[ShippedSchema]:
    """Every envelope schema tootlake has shipped, oldest first (data/avro/envelope-vN.avsc)."""
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


# ----------------------------------------------------------------------------------------
# encoding

Record = Post | Delete | Sighting | Reject
# kind -> record class: the envelope field named like the kind holds the record (in the
# envelope's field order)
KINDS: dict[str, type] = {"post": Post, "delete": Delete, "sighting": Sighting, "reject": Reject}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}
_NAMES = {cls: tuple(f.name for f in msgspec.structs.fields(cls)) for cls in KINDS.values()}
_VALUES = {cls: attrgetter(*names) for cls, names in _NAMES.items()}


def envelope_of(record: Record) -> dict[str, Any]:
    """The envelope datum of a record, in fastavro's (name, value) notation for union branches:
    naming the branch saves fastavro from validating the record against every branch."""
    cls = type(record)
    kind = _KIND_OF[cls]
    datum: dict[str, Any] = dict.fromkeys(KINDS)
    datum["kind"] = kind
    datum[kind] = (
        f"{NAMESPACE}.{cls.__name__}",
        dict(zip(_NAMES[cls], _VALUES[cls](record), strict=True)),
    )
    return datum


def key_of(record: Record) -> bytes | None:
    """The message key: the post's uri, so every version of a post, its sightings and its
    delete land on one partition, in order. A delete whose uri is unknown (the post was seen
    too long ago, or never) is keyed by where it was seen, `<observed_on>/<id>`; it cannot share
    a partition with its post, and the lake's views resolve it by (observed_on, id) anyway.
    A reject has no key (None): it belongs to no post, nothing depends on its order, and
    keyless messages spread over the partitions, so an instance sending floods of bad statuses
    cannot load one partition (and one sink worker) alone."""
    if isinstance(record, Reject):
        return None
    if record.uri:
        return record.uri.encode("utf-8")
    return f"{record.observed_on or ''}/{record.id}".encode()


Encoder = Callable[[Record], bytes]


def single_object_encoder(schema: dict[str, Any] | None = None) -> Encoder:
    """A function record -> Avro single-object encoded envelope (magic, fingerprint, body)."""
    fastavro = _fastavro()
    schema = schema or envelope_schema()
    header = single_object_header(schema)
    parsed = fastavro.parse_schema(schema)
    write = fastavro.schemaless_writer

    def encode(record: Record) -> bytes:
        buffer = io.BytesIO()
        buffer.write(header)
        write(buffer, parsed, envelope_of(record))
        return buffer.getvalue()

    return encode


def batch_encoder(
    schema: dict[str, Any] | None = None,
) -> Callable[[Sequence[Record]], list[bytes]]:
    """A function records -> their single-object encodings, byte for byte what
    `single_object_encoder()` gives, computed a column at a time.

    fastavro spends about 25 us on one envelope, visiting its fields one by one in Python. Here
    a batch becomes Arrow columns, each field's Avro encoding is computed for the whole column
    (varints with numpy; strings, union branches and arrays with Arrow kernels), and the fields
    are joined row by row in C++: a few microseconds a record.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = schema or envelope_schema()
    header = pa.scalar(single_object_header(schema), pa.binary())
    lake = {kind: lake_schema(kind) for kind in KINDS}
    records_of = {f["name"]: f["type"][1] for f in schema["fields"][1:]}  # kind -> record schema
    # The envelope around a record of each kind: its kind string, then for every union field
    # the branch (1: this kind's record follows; 0: null). Fields of the record go in between.
    before: dict[str, bytes] = {}
    after: dict[str, bytes] = {}
    for kind in KINDS:
        head = _zigzag_varint(len(kind.encode())) + kind.encode()
        tail = b""
        seen = False
        for f in schema["fields"][1:]:
            if f["name"] == kind:
                head += b"\x02"
                seen = True
            elif seen:
                tail += b"\x00"
            else:
                head += b"\x00"
        before[kind], after[kind] = head, tail

    def varints(values: Any) -> Any:
        """Zigzag varints of an int64 numpy array, as an Arrow binary array."""
        z = ((values << 1) ^ (values >> 63)).astype(np.uint64)
        nbytes = np.ones(len(z), dtype=np.int32)
        rest = z >> np.uint64(7)
        while rest.any():
            nbytes += rest > 0
            rest >>= np.uint64(7)
        offsets = np.zeros(len(z) + 1, dtype=np.int32)
        np.cumsum(nbytes, out=offsets[1:])
        data = np.empty(int(offsets[-1]), dtype=np.uint8)
        starts = offsets[:-1]
        for k in range(int(nbytes.max()) if len(z) else 0):
            rows = nbytes > k
            byte = (z[rows] >> np.uint64(7 * k)) & np.uint64(0x7F)
            byte |= (nbytes[rows] - 1 > k).astype(np.uint64) << np.uint64(7)
            data[starts[rows] + k] = byte.astype(np.uint8)
        return pa.Array.from_buffers(
            pa.binary(), len(z), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )

    def strings(column: Any) -> Any:
        binary = column.cast(pa.binary())
        lengths = pc.binary_length(binary).to_numpy(zero_copy_only=False).astype(np.int64)
        return pc.binary_join_element_wise(varints(lengths), binary, b"")

    def encode_column(avro_type: Any, column: Any) -> Any:
        if isinstance(avro_type, list):  # ["null", T]
            valid = pc.is_valid(column)
            filled = column.fill_null(_FILLERS[_base(avro_type[1])])
            value = pc.binary_join_element_wise(
                pa.scalar(b"\x02"), encode_column(avro_type[1], filled), b""
            )
            return pc.if_else(valid, value, pa.scalar(b"\x00"))
        base = _base(avro_type)
        if base == "string":
            return strings(column)
        if base == "long":
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            return varints(column.to_numpy(zero_copy_only=False).astype(np.int64))
        if base == "boolean":
            data = column.to_numpy(zero_copy_only=False).astype(np.uint8)
            offsets = np.arange(len(data) + 1, dtype=np.int32)
            return pa.Array.from_buffers(
                pa.binary(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
            )
        if base == "array" and _base(avro_type["items"]) == "string":
            counts = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
            items = strings(column.flatten())
            joined = pc.binary_join(
                pa.ListArray.from_arrays(column.offsets, items), pa.scalar(b"", pa.binary())
            )
            block = pc.binary_join_element_wise(varints(counts), joined, pa.scalar(b"\x00"), b"")
            return pc.if_else(pc.greater(pa.array(counts), 0), block, pa.scalar(b"\x00"))
        raise TypeError(f"no batch encoding for Avro type {avro_type!r}")

    def encode_kind(kind: str, records: list[Any]) -> list[bytes]:
        cls = KINDS[kind]
        columns = [encode_column(f["type"], pa.array(list(map(attrgetter(f["name"]), records)),
                                                     type=lake[kind].field(f["name"]).type))
                   for f in records_of[kind]["fields"]]  # fmt: skip
        assert all(f["name"] in _NAMES[cls] for f in records_of[kind]["fields"])
        parts = [header, pa.scalar(before[kind], pa.binary()), *columns]
        if after[kind]:
            parts.append(pa.scalar(after[kind], pa.binary()))
        return pc.binary_join_element_wise(*parts, b"").to_pylist()  # type: ignore[no-any-return]

    def encode(records: Sequence[Record]) -> list[bytes]:
        if not records:
            return []
        kinds = [_KIND_OF[type(r)] for r in records]
        if all(k == kinds[0] for k in kinds):
            return encode_kind(kinds[0], list(records))
        out: list[bytes] = [b""] * len(records)
        for kind in KINDS:
            positions = [i for i, k in enumerate(kinds) if k == kind]
            if positions:
                for i, value in zip(
                    positions, encode_kind(kind, [records[i] for i in positions]), strict=True
                ):
                    out[i] = value
        return out

    return encode


_FILLERS: dict[str, Any] = {"string": "", "long": 0, "boolean": False}


def _base(avro_type: Any) -> str:
    return avro_type if isinstance(avro_type, str) else str(avro_type["type"])


def schema_registry_client(registry: Any) -> Any:
    """A confluent-kafka SchemaRegistryClient from a URL (`mock://...` gives the in-process
    mock), or the client itself when one is passed."""
    if not isinstance(registry, str):
        return registry
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:
        missing = (exc.name or "confluent_kafka").split(".")[0]
        raise MissingDependency(missing, "kafka") from None
    return SchemaRegistryClient.new_client({"url": registry})


def confluent_encoder(registry: Any, topic: str) -> Encoder:
    """A function record -> Confluent wire format (magic 0, schema id, body), via confluent-kafka's
    own AvroSerializer: the envelope schema is registered under the subject "<topic>-value"."""
    try:
        from confluent_kafka.schema_registry.avro import AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext
    except ImportError as exc:
        missing = (exc.name or "confluent_kafka").split(".")[0]
        raise MissingDependency(missing, "kafka") from None
    serializer = AvroSerializer(
        schema_registry_client(registry),
        json.dumps(envelope_schema()),
        to_dict=lambda record, ctx: envelope_of(record),
        conf={"auto.register.schemas": True},
    )
    context = SerializationContext(topic, MessageField.VALUE)

    def encode(record: Record) -> bytes:
        try:
            return serializer(record, context)  # type: ignore[no-any-return]
        except Exception as exc:  # SchemaRegistryError, connection errors
            raise TransportError(f"Cannot serialize for the schema registry: {exc}") from exc

    return encode


# ----------------------------------------------------------------------------------------
# decoding


@dataclass
class DecodedBatch:
    """Decoded messages as Arrow tables of the lake's schemas, per kind ("post", "delete",
    "sighting", "reject"): `tables[kind]` is (table, index), index giving per row the position
    of its message in the decoded sequence. `errors`: position and reason of every message
    that is not a valid envelope."""

    tables: dict[str, tuple[Any, Any]]
    errors: list[tuple[int, str]] = field(default_factory=list)

    def table(self, kind: str) -> Any:
        return self.tables[kind][0]

    def index(self, kind: str) -> Any:
        return self.tables[kind][1]


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


def _zigzag_varint(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class EnvelopeDecoder:
    """Decodes message values (either framing, any shipped schema version) into lake tables.

    Messages in the code's own schema, the common case, are decoded in bulk when polars is
    installed: the values are laid end to end, whole, in one in-memory Avro container block,
    and polars' native reader turns it straight into Arrow. The block's schema reads each
    message's framing as a leading `fixed` field. Avro binary has no per-record length, so
    each value is followed by a guard, 8 random bytes drawn for the batch and read as a last
    `fixed` field: a body that is short, long or corrupt shifts what is read as the guards,
    and the batch is decoded again message by message. fastavro does that slow path, every
    older schema version (with Avro schema resolution), and finds the bad messages.
    """

    def __init__(self, schema_registry: Any = None, *, bulk: bool | None = None) -> None:
        fastavro = _fastavro()
        self._fastavro = fastavro
        self._reader_schema = envelope_schema()
        self._reader = fastavro.parse_schema(self._reader_schema)
        self._current = fingerprint(self._reader_schema)
        self._current_header = single_object_header(self._reader_schema)
        self._canonical = canonical_form(self._reader_schema)
        self._writers: dict[int, Any] = {}
        self._registry_arg = schema_registry
        self._registry: Any = None
        self._registry_schemas: dict[int, tuple[bool, Any]] = {}
        self._bulk = _polars_available() if bulk is None else bulk
        self._headers: dict[int, bytes] = {}
        self.bulk_fallbacks = 0

    # -- writer schemas --------------------------------------------------------------------

    def _writer_by_fingerprint(self, fp: int) -> Any:
        if fp not in self._writers:
            schema = writer_schemas().get(fp)
            self._writers[fp] = None if schema is None else self._fastavro.parse_schema(schema)
        return self._writers[fp]

    def _writer_by_id(self, schema_id: int) -> tuple[bool, Any]:
        """(is the code's own schema, parsed writer schema) of a registry schema id."""
        if schema_id in self._registry_schemas:
            return self._registry_schemas[schema_id]
        if self._registry is None:
            self._registry = schema_registry_client(self._registry_arg)
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if getattr(exc, "http_status_code", None) == 404:
                raise KeyError(schema_id) from exc
            raise TransportError(f"Schema registry error for schema id {schema_id}: {exc}") from exc
        except Exception as exc:  # connection refused, timeouts: not the message's fault
            raise TransportError(f"Cannot reach the schema registry: {exc}") from exc
        schema = json.loads(registered.schema_str)
        current = canonical_form(schema) == self._canonical
        result = (current, self._fastavro.parse_schema(schema))
        self._registry_schemas[schema_id] = result
        return result

    # -- decoding --------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Import the readers and build what the first batch needs, before it comes."""
        import pyarrow.compute  # noqa: F401

        self.decode([single_object_encoder()(Sighting("https://example/1", None, "1", _EPOCH))])

    def decode(self, values: Sequence[bytes | None]) -> DecodedBatch:
        # Optimistic: a batch of messages all in the code's own single-object schema (the
        # usual case) goes to the bulk reader whole, without a look at each message first.
        header = self._current_header
        if (
            self._bulk
            and values
            and None not in values
            and all(map(bytes.startswith, values, itertools.repeat(header)))  # type: ignore[arg-type]
        ):
            decoded = self._decode_bulk(range(len(values)), values, 10)
            if decoded is not None:
                tables, errors = decoded
                return DecodedBatch({k: _combine([tables[k]], k) for k in KINDS}, errors)
        return self._decode_sorted(values)

    def _decode_sorted(self, values: Sequence[bytes | None]) -> DecodedBatch:
        errors: list[tuple[int, str]] = []
        own: list[int] = []  # single-object messages in the code's own schema: the common case
        own_confluent: list[int] = []  # Confluent-framed, in the code's own schema
        slow: list[tuple[int, int, Any]] = []  # (position, header size, parsed writer schema)
        header = self._current_header
        for i, value in enumerate(values):
            if value is not None and value.startswith(header):
                own.append(i)
            elif value is None:
                errors.append((i, "empty value (a tombstone?)"))
            else:
                self._classify(i, value, own_confluent, slow, errors)
        parts: list[dict[str, tuple[Any, Any]]] = []
        for header_size, positions in ((10, own), (5, own_confluent)):
            if not positions:
                continue
            decoded = self._decode_bulk(positions, values, header_size) if self._bulk else None
            if decoded is None:
                self.bulk_fallbacks += self._bulk
                slow.extend((i, header_size, self._reader) for i in positions)
            else:
                parts.append(decoded[0])
                errors.extend(decoded[1])
        if slow:
            tables, bad = self._decode_each(slow, values)
            parts.append(tables)
            errors.extend(bad)
        errors.sort()
        return DecodedBatch(
            {kind: _combine([p[kind] for p in parts], kind) for kind in KINDS}, errors
        )

    def _classify(
        self,
        i: int,
        value: bytes,
        own_confluent: list[int],
        slow: list[tuple[int, int, Any]],
        errors: list[tuple[int, str]],
    ) -> None:
        if value.startswith(SINGLE_OBJECT_MAGIC) and len(value) >= 10:
            fp = int.from_bytes(value[2:10], "little")
            writer = self._writer_by_fingerprint(fp)
            if writer is None:
                errors.append(
                    (i, f"unknown schema fingerprint {value[2:10].hex()} (single object)")
                )
            else:
                slow.append((i, 10, writer))
        elif value.startswith(CONFLUENT_MAGIC) and len(value) >= 5:
            schema_id = int.from_bytes(value[1:5], "big")
            if self._registry_arg is None:
                errors.append(
                    (i, f"Confluent framing (schema id {schema_id}) but no schema registry given")
                )
                return
            try:
                current, writer = self._writer_by_id(schema_id)
            except KeyError:
                errors.append((i, f"schema id {schema_id} is not in the schema registry"))
                return
            if current:
                own_confluent.append(i)
            else:
                slow.append((i, 5, writer))
        else:
            errors.append((i, "not Avro: neither single-object (C3 01) nor Confluent (00) framing"))

    def _container_header(self, header_size: int) -> bytes:
        if header_size not in self._headers:
            self._headers[header_size] = self._make_container_header(header_size)
        return self._headers[header_size]

    def _make_container_header(self, header_size: int) -> bytes:
        # The reader schema between the message's framing (read as a `fixed` field) and a guard
        # (another `fixed`), so each message value is laid into the block whole. Without docs
        # and defaults: they do not change the binary encoding, and polars' schema parser
        # rejects a boolean default in a record nested in a union (OutOfSpec).
        framed = _strip(self._reader_schema, ("doc", "default"))
        framed["name"] = "GuardedEnvelope"
        framed["fields"] = [
            {"name": "_framing", "type": {"type": "fixed", "name": "Framing", "size": header_size}},
            *framed["fields"],
            {"name": "_guard", "type": {"type": "fixed", "name": "Guard", "size": 8}},
        ]
        meta = {"avro.schema": json.dumps(framed).encode(), "avro.codec": b"null"}
        head = [b"Obj\x01", _zigzag_varint(len(meta))]
        for key, val in meta.items():
            head += [_zigzag_varint(len(key)), key.encode(), _zigzag_varint(len(val)), val]
        head.append(b"\x00")
        return b"".join(head)

    def _decode_bulk(
        self, positions: Sequence[int], values: Sequence[Any], header_size: int
    ) -> tuple[dict[str, tuple[Any, Any]], list[tuple[int, str]]] | None:
        """Decode whole messages in the code's own schema with polars; None when they must be
        decoded one by one (a bad body, or a reader error)."""
        import polars as pl
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(positions)
        chosen = values if n == len(values) else [values[i] for i in positions]
        if n and min(map(len, chosen)) < header_size:
            return None  # too short to be framed at all
        guard = os.urandom(8)  # new for every batch: no message can know it
        sync = b"tootlake-guard16"
        size = sum(map(len, chosen)) + 8 * n
        head = b"".join(
            [self._container_header(header_size), sync, _zigzag_varint(n), _zigzag_varint(size)]
        )
        parts: list[Any] = [guard] * (2 * n + 2)
        parts[0] = head
        parts[1 : 2 * n : 2] = chosen  # head, v0, guard, v1, guard, ..., v(n-1), guard, sync
        parts[-1] = sync
        try:
            table = pl.read_avro(io.BytesIO(b"".join(parts))).to_arrow()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a corrupt body: polars errors, or a Rust panic (pyo3's
            # PanicException is a BaseException)
            log.debug("bulk Avro decode failed, decoding one by one: %s", exc)
            return None
        if table.num_rows != n or not pc.all(pc.equal(table.column("_guard"), guard)).as_py():
            return None
        return _split_envelopes(table, pa.array(positions, type=pa.int64()))

    def _decode_each(
        self, items: list[tuple[int, int, Any]], values: Sequence[Any]
    ) -> tuple[dict[str, tuple[Any, Any]], list[tuple[int, str]]]:
        import pyarrow as pa

        read = self._fastavro.schemaless_reader
        rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        index: dict[str, list[int]] = {kind: [] for kind in KINDS}
        errors: list[tuple[int, str]] = []
        for i, header_size, writer in sorted(items, key=lambda item: item[0]):
            data = values[i][header_size:]
            buffer = io.BytesIO(data)
            try:
                # the same schema needs no resolution, which fastavro does slowly
                envelope = read(buffer, writer, None if writer is self._reader else self._reader)
            except Exception as exc:  # fastavro raises many kinds on bad bytes
                reason = _OBJECT_REPR.sub("", str(exc))
                errors.append(
                    (i, f"invalid Avro body: {type(exc).__name__}: {reason}".rstrip(": "))
                )
                continue
            if buffer.tell() != len(data):
                errors.append((i, f"{len(data) - buffer.tell()} bytes after the Avro record"))
                continue
            kind = envelope.get("kind")
            if kind in KINDS and envelope.get(kind) is not None:
                rows[kind].append(envelope[kind])
                index[kind].append(i)
            else:
                errors.append((i, f"envelope of kind {kind!r} without its record"))
        tables = {}
        for kind in KINDS:
            try:
                table = pa.Table.from_pylist(rows[kind], schema=lake_schema(kind))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # pragma: no cover
                raise TransportError(f"Decoded records do not fit the lake schema: {exc}") from exc
            tables[kind] = (table, pa.array(index[kind], type=pa.int64()))
        return tables, errors


def _split_envelopes(
    table: Any, index: Any
) -> tuple[dict[str, tuple[Any, Any]], list[tuple[int, str]]]:
    """A table of decoded envelopes -> {kind: (rows, index)}, errors."""
    import pyarrow.compute as pc

    def column(name: str) -> Any:
        return _one_chunk(table.column(name))

    kind = column("kind")
    masks = {k: pc.and_(pc.equal(kind, k), pc.is_valid(column(k))) for k in KINDS}
    good = masks["post"]
    for k in KINDS:
        good = pc.or_(good, masks[k])
    bad = pc.invert(good)
    errors: list[tuple[int, str]] = []
    if pc.any(bad).as_py():
        for i, k in zip(
            pc.filter(index, bad).to_pylist(), pc.filter(kind, bad).to_pylist(), strict=True
        ):
            errors.append((i, f"envelope of kind {k!r} without its record"))
    tables = {k: _rows_of(column(k), masks[k], index, lake_schema(k)) for k in KINDS}
    return tables, errors


def _rows_of(struct: Any, mask: Any, index: Any, schema: Any) -> tuple[Any, Any]:
    """(table of the struct's rows where mask, their index); no copy when all or none match."""
    import pyarrow.compute as pc

    matching = pc.sum(mask).as_py() or 0
    if matching == 0:
        return schema.empty_table(), index[:0]
    if matching < len(mask):
        struct, index = pc.filter(struct, mask), pc.filter(index, mask)
    return _struct_to_table(struct, schema), index


def _one_chunk(values: Any) -> Any:
    """An array from a chunked array, copying only when there are several chunks."""
    import pyarrow as pa

    if not isinstance(values, pa.ChunkedArray):
        return values
    return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()


def _struct_to_table(struct: Any, schema: Any) -> Any:
    import pyarrow as pa

    struct = _one_chunk(struct)
    columns = [struct.field(f.name).cast(f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _combine(parts: list[tuple[Any, Any]], kind: str) -> tuple[Any, Any]:
    """Parts of one kind's rows -> one table, rows in message order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = [p for p in parts if p[0].num_rows]
    if not parts:
        return lake_schema(kind).empty_table(), pa.array([], type=pa.int64())
    if len(parts) == 1:
        return parts[0]
    table = pa.concat_tables([p[0] for p in parts])
    index = pa.concat_arrays([p[1] for p in parts])
    order = pc.sort_indices(index)
    return table.take(order), index.take(order)


def _strip(schema: Any, keys: tuple[str, ...]) -> Any:
    """A copy of a schema without the given attributes, at every depth."""
    if isinstance(schema, dict):
        return {k: _strip(v, keys) for k, v in schema.items() if k not in keys}
    if isinstance(schema, list):
        return [_strip(v, keys) for v in schema]
    return schema


@cache
def _polars_available() -> bool:
    try:
        import polars  # noqa: F401
    except ImportError:
        log.info(
            "polars is not installed: decoding Avro message by message (about 5x slower for a "
            'sink catching up; pip install "tootlake[fast-sink]" brings it)'
        )
        return False
    return True


def dead_letter_line(
    topic: str, partition: int, offset: int, error: str, value: bytes | None
) -> dict[str, Any]:
    """One line of a dead-letter file: where the message is, why it was refused, its value."""
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "error": error,
        "value": None if value is None else base64.b64encode(value).decode("ascii"),
    }
