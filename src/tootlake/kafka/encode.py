"""Avro on Kafka, the writing side: records -> envelopes, in either framing (module docstring
of `tootlake.kafka.schema`), and the message key.

`batch_encoder()` is what the producer uses: byte for byte `single_object_encoder()`'s output,
a column at a time. `confluent_encoder()` goes through confluent-kafka's AvroSerializer and a
schema registry.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import msgspec

from tootlake.errors import MissingDependency, TransportError
from tootlake.kafka.schema import (
    KINDS,
    NAMESPACE,
    Record,
    envelope_schema,
    fastavro_module,
    lake_schema,
    schema_registry_client,
    single_object_header,
    zigzag_varint,
)
from tootlake.record import Reject

__all__ = [
    "Encoder",
    "batch_encoder",
    "confluent_encoder",
    "envelope_of",
    "key_of",
    "single_object_encoder",
]

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
    fastavro = fastavro_module()
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
        head = zigzag_varint(len(kind.encode())) + kind.encode()
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
            base = _base(avro_type[1])
            filler = pa.scalar([], column.type) if base == "array" else _FILLERS[base]
            filled = column.fill_null(filler)
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
