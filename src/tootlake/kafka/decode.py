"""Avro on Kafka, the reading side: message values (either framing, any shipped schema version)
-> Arrow tables of the lake's schemas, per kind, and the dead-letter lines of those that are
not envelopes. The sink worker (`tootlake.kafka.sink`) decodes each flush's batch here.
"""

from __future__ import annotations

import base64
import importlib
import io
import itertools
import json
import logging
import os
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from tootlake.errors import RegistryUnavailable, TransportError
from tootlake.kafka.encode import single_object_encoder
from tootlake.kafka.schema import (
    CONFLUENT_MAGIC,
    KINDS,
    SINGLE_OBJECT_MAGIC,
    SINK_RETRIES,
    canonical_form,
    envelope_schema,
    fastavro_module,
    fingerprint,
    lake_schema,
    schema_registry_client,
    single_object_header,
    writer_schemas,
    zigzag_varint,
)
from tootlake.record import FIRST_DATETIME_SECOND, LAST_DATETIME_SECOND, Sighting
from tootlake.text import shorten

__all__ = ["DecodedBatch", "EnvelopeDecoder", "dead_letter_line"]

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OBJECT_REPR = re.compile(r" (from|of) <[^>]*>")
# characters of a dead letter's reason: fastavro's resolution errors spell out both
# schemas (40 KB for a 9-byte message), in every dead-letter line and in the log
_REASON_LIMIT = 500
# A registry's answers: "schema not found" (40403; 40400 from confluent-kafka's mock) is the
# message's fault; 408, 429 and 5xx (and no answer) are the registry's, for a while.
_SCHEMA_NOT_FOUND = (40403, 40400)
_TRANSIENT = (408, 429)
# s an unknown id is not asked again: a batch of them makes one request, and a registry
# replica that lags its leader (an id registered a moment ago) costs a few seconds at most
_UNKNOWN_FOR = 2.0
_MAX_SCHEMA_ID = 2**31 - 1
# TLS failures that come from how the client is set up, not from a moment (OpenSSL's names;
# https to a plain port reads an HTTP reply as a TLS record)
_TLS_REFUSED = frozenset({
    "WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
    "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
})  # fmt: skip
_DOWN_FOR = 0.5  # s after a failure the registry is not asked again (less than a retry)


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
        fastavro = fastavro_module()
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
        self._unusable: dict[int, str] = {}  # schema id -> why its messages cannot be read
        self._unknown: dict[int, float] = {}  # schema id the registry did not know -> until
        self._registry_checked: bool | None = None  # the URL answers as a registry does
        self._down: tuple[float, str] | None = None  # the registry failed: until, and why
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
        if schema_id in self._unusable:
            raise ValueError(self._unusable[schema_id])
        if schema_id in self._registry_schemas:
            return self._registry_schemas[schema_id]
        if schema_id > _MAX_SCHEMA_ID:  # (registries number them with a signed 32-bit int)
            raise KeyError(schema_id)
        now = time.monotonic()
        if now < self._unknown.get(schema_id, 0.0):
            raise KeyError(schema_id)
        down = self._down  # (once: the other flush thread may clear it)
        if down is not None and now < down[0]:
            # (it failed a moment ago: the other partitions' flushes and a stop's last try
            # fail at once instead of each waiting for the client's timeouts)
            raise RegistryUnavailable(down[1])
        if self._registry is None:  # (a URL it cannot use: a ConfigError, not dead letters)
            self._registry = schema_registry_client(self._registry_arg, retries=SINK_RETRIES)
        registered = self._ask(
            lambda: self._registry.get_schema(schema_id), f"schema id {schema_id}"
        )
        if registered is None:  # not found, and the registry is one (it lists its subjects)
            self._unknown[schema_id] = now + _UNKNOWN_FOR
            raise KeyError(schema_id)
        if getattr(registered, "schema_str", None) is None:  # a 200 that holds no schema
            raise TransportError(
                f"The schema registry's answer for schema id {schema_id} holds no schema: is "
                "the URL a registry's? Check --schema-registry."
            )
        # A shared registry also holds other teams' schemas: one that is not Avro, or not a
        # schema fastavro can read, makes its messages dead letters, not a stopped worker
        kind = getattr(registered, "schema_type", None) or "AVRO"
        try:
            if kind != "AVRO":
                raise ValueError(f"a {kind} schema, not Avro")
            schema = json.loads(registered.schema_str)
            current = canonical_form(schema) == self._canonical
            result = (current, self._fastavro.parse_schema(schema))
        except Exception as exc:
            reason = shorten(
                f"schema id {schema_id} in the schema registry is unusable: {exc}", _REASON_LIMIT
            )
            self._unusable[schema_id] = reason
            raise ValueError(reason) from exc
        self._registry_schemas[schema_id] = result
        return result

    def _ask(self, request: Callable[[], Any], what: str) -> Any:
        """A registry request's answer, sorted: None for "not found" (the message's fault:
        a dead letter); `RegistryUnavailable` when it cannot answer now (no answer, 408, 429,
        5xx: the worker tries again); a `TransportError` saying what to check when trying
        again would not help (a login refused, a URL that is no registry's, TLS refused)."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            answer = request()
        except SchemaRegistryError as exc:
            status = getattr(exc, "http_status_code", None)
            if status == 404 and getattr(exc, "error_code", None) in _SCHEMA_NOT_FOUND:
                return None
            if status in _TRANSIENT or (isinstance(status, int) and status >= 500):
                raise self._unavailable(f"Schema registry error for {what}: {exc}") from exc
            if status == 404 and self._is_registry():
                return None  # (an id it cannot parse, or a registry that says 404 plainly)
            raise TransportError(
                f"The schema registry refused the request for {what} "
                f"(HTTP {status}): {shorten(str(exc), _REASON_LIMIT)}. Check --schema-registry "
                "(its URL and its login)."
            ) from exc
        except _unreachable() as exc:
            if _misconfigured(exc):
                raise TransportError(
                    f"Cannot talk to the schema registry: {shorten(str(exc), _REASON_LIMIT)} "
                    f"({type(exc).__name__}). Check --schema-registry (its scheme and port), "
                    "the proxy and the certificates trusted (SSL_CERT_FILE)."
                ) from exc
            raise self._unavailable(f"Cannot reach the schema registry: {exc}") from exc
        except Exception as exc:  # (a reply that is no registry's: an HTML page)
            raise TransportError(
                f"The schema registry's answer for {what} cannot be read: "
                f"{shorten(str(exc), _REASON_LIMIT)}. Check --schema-registry."
            ) from exc
        self._down = None
        return answer

    def _is_registry(self) -> bool:
        """Whether the URL answers as a registry does (it lists its subjects): a plain 404
        for an id is then the id's fault, else the URL's. Asked until it answers; a registry
        that cannot answer now raises `RegistryUnavailable` (`_ask`)."""
        if self._registry_checked is None:
            self._registry_checked = False  # (while asking: a 404 there is not asked about)
            try:
                subjects = self._ask(self._registry.get_subjects, "the list of subjects")
            except RegistryUnavailable:
                self._registry_checked = None
                raise
            except TransportError:  # (a 404 there too, a page that is no registry's)
                subjects = None
            self._registry_checked = isinstance(subjects, list)
        return self._registry_checked

    def _unavailable(self, why: str) -> RegistryUnavailable:
        why = shorten(why, _REASON_LIMIT)  # (an error quotes the reply's body: any size)
        self._down = (time.monotonic() + _DOWN_FOR, why)  # (from its end: a try can be long)
        return RegistryUnavailable(why)

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
            except ValueError as exc:
                errors.append((i, str(exc)))
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
        head = [b"Obj\x01", zigzag_varint(len(meta))]
        for key, val in meta.items():
            head += [zigzag_varint(len(key)), key.encode(), zigzag_varint(len(val)), val]
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
            [self._container_header(header_size), sync, zigzag_varint(n), zigzag_varint(size)]
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
                reason = f"invalid Avro body: {type(exc).__name__}: {reason}".rstrip(": ")
                errors.append((i, shorten(reason, _REASON_LIMIT)))
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
    for k in KINDS:
        masks[k] = _without_impossible_times(column(k), masks[k], index, lake_schema(k), errors)
    errors.sort()
    tables = {k: _rows_of(column(k), masks[k], index, lake_schema(k)) for k in KINDS}
    return tables, errors


# Microseconds of 0001-01-01 and of the last of 9999-12-31: a datetime holds nothing beyond
_EARLIEST_US = FIRST_DATETIME_SECOND * 1_000_000
_LATEST_US = LAST_DATETIME_SECOND * 1_000_000 + 999_999


def _without_impossible_times(
    struct: Any, mask: Any, index: Any, schema: Any, errors: list[tuple[int, str]]
) -> Any:
    """`mask` less the rows holding a time no datetime can (year 148108: the lake's every
    Python reader raised on it); each is an error, as fastavro makes it one by one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    struct = _one_chunk(struct)
    impossible = None
    for column in schema:
        if not pa.types.is_timestamp(column.type):
            continue
        micros = struct.field(column.name).cast(pa.int64())
        out = pc.or_(pc.less(micros, _EARLIEST_US), pc.greater(micros, _LATEST_US))
        out = pc.fill_null(out, False)  # (a null time is no impossible one)
        impossible = out if impossible is None else pc.or_(impossible, out)
    if impossible is None:
        return mask
    impossible = pc.and_(mask, impossible)
    if not pc.any(impossible).as_py():
        return mask
    for i in pc.filter(index, impossible).to_pylist():
        errors.append((i, "invalid Avro body: a time outside the years 1-9999"))
    return pc.and_(mask, pc.invert(impossible))


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
def _unreachable() -> tuple[type[BaseException], ...]:
    """The errors of a registry request that got no answer (refused, reset, timed out):
    httpx's TransportError, from httpx2 or httpx, whichever confluent-kafka's client uses."""
    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _misconfigured(exc: BaseException) -> bool:
    """A request that got no answer because of how it was set up, which trying again will
    not mend: a scheme the client cannot speak, a proxy that refused, TLS refused (a
    certificate not trusted, https to a plain port)."""
    if type(exc).__name__ in ("UnsupportedProtocol", "ProxyError", "InvalidURL"):
        return True
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError) or (
            isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None) in _TLS_REFUSED
        ):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


@cache
def _polars_available() -> bool:
    try:
        import polars  # noqa: F401
    except ImportError:
        log.info(
            "polars is not installed: decoding Avro message by message (about 5x slower for a "
            'sink catching up; pip install -e ".[fast-sink]" brings it)'
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
