"""The lake writer: batches records and commits them to the lake's Delta tables (the embedded
path's `tootlake.transports.Sink`).

Batches roll by size (estimated bytes buffered) and by age (seconds since the oldest buffered
record), so a steady trickle still becomes durable and a flood still makes large files. A
flush appends each table's rows in one Delta commit (`tootlake.lake.tables.append`): when it
returns, the rows are durable and visible, and the caller may commit the batch upstream.

Records become Arrow record batches `CONVERT_ROWS` at a time as they arrive: the buffer then
holds a post in a fraction of its Python object's memory (a replay's peak before its merge
went from 705 to 465 MB), and the conversion is spread over the run instead of stalling the
flush (100,000 posts at once took about 0.9 s). 2,048 cost the collector less CPU than 256 or
8,192. The native helpers build the columns (`column`): pyarrow's conversion cost 4-9 us a
post in a replay, its price for generality per Python value.

Posts may also arrive as rows already (`post_rows`, `LakeWriter.new_rows`: the fused path of
the collector and `replay`, docs/design/fused-receive.md): the Recorder appends each post to
native Arrow columns, so no `Post` object is made. A batch of such rows is kept as it comes
when it holds `SMALL_ROWS` posts or more; smaller ones (a trickle) are combined, so each does
not hold its columns' spare room until the flush.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from tootlake._native import native as _native
from tootlake.lake.layout import DELETES, POSTS_ALL, REJECTS, SIGHTINGS
from tootlake.lake.tables import RECORD_SCHEMAS, append, with_date
from tootlake.record import Delete, Post, Reject, Sighting
from tootlake.record import status as _status

__all__ = [
    "CONVERT_ROWS",
    "LakeWriter",
    "SinkStats",
    "post_rows",
    "records_to_batch",
    "records_to_table",
    "rows_to_batch",
]

# Rough bytes a post takes beyond its text: enough to size batches, not an exact count.
_POST_OVERHEAD = 400
CONVERT_ROWS = 2048  # records per Arrow batch (see above)
_ORDER = (POSTS_ALL, SIGHTINGS, REJECTS, DELETES)  # the commit order: deletes last


def records_to_batch(
    records: Sequence[Post | Delete | Sighting | Reject], schema: pa.Schema
) -> pa.RecordBatch:
    """Columns of records as an Arrow record batch of `schema`."""
    if _native is not None and records:
        batch = _native_batch(records, schema)
        if batch is not None:
            return batch
    columns = [column(list(map(attrgetter(f.name), records)), f.type) for f in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


# The lake's column types the native helpers build (`Column` in native/src/lib.rs); another
# type is pyarrow's to convert
_KINDS = {
    pa.string(): 0,
    pa.int64(): 1,
    pa.bool_(): 2,
    pa.timestamp("us", tz="UTC"): 3,
    pa.list_(pa.string()): 4,
}
_LIST_OF_STRING = 4
_OTHER = 255


def _native_batch(
    records: Sequence[Post | Delete | Sighting | Reject], schema: pa.Schema
) -> pa.RecordBatch | None:
    """The batch by the native helpers, every record read once (`arrow_batch`): records of
    one Struct type whose fields are the schema's columns, in order; None otherwise."""
    kind = type(records[0])
    if getattr(kind, "__struct_fields__", None) != tuple(schema.names) or not all(
        type(record) is kind for record in records
    ):
        return None
    assert _native is not None
    built = _native.arrow_batch(
        list(records), [_KINDS.get(f.type, _OTHER) for f in schema], msgspec.structs.astuple
    )
    if built is None:
        return None
    n = len(records)
    columns = [
        pa.array(list(map(attrgetter(f.name), records)), type=f.type)
        if buffers is None  # a value the native code leaves to pyarrow
        else _from_buffers(buffers, f.type, n)
        for buffers, f in zip(built, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


# The native accumulator's type (`post_rows`), to know one among records
_ROWS: Any = getattr(_native, "PostRows", None)
# Small accumulators (a live source's batches at a low rate: a few posts each) wait as Arrow
# batches until they make CONVERT_ROWS rows or this many, then become one: each small batch
# alone held about 40 KB (48 arrays over Python bytes, and its own sightings' batch).
SMALL_BATCHES_AT_MOST = 64
SMALL_ROWS = 256  # a batch of fewer rows is small; a bigger one is kept as it is (no copy)


@functools.cache
def _post_kinds() -> list[int]:
    return [_KINDS.get(f.type, _OTHER) for f in RECORD_SCHEMAS[POSTS_ALL]()]


def post_rows() -> Any | None:
    """An empty accumulator of posts as `posts_all`'s Arrow columns (native `PostRows`), or
    None without the native helpers. The fused path: `tootlake.record.status.append_post`
    appends the post of a status to it as one row, and no Post object is made, converted
    and freed per post; `LakeWriter.add` takes the accumulator as one record of a batch
    (docs/design/fused-receive.md)."""
    # Only where `to_post` itself would run natively: not under `python_only()`, with
    # TOOTLAKE_NATIVE=0, or with a build for other Structs (`record.status` said so).
    rows = getattr(_status._native, "PostRows", None) if _native is not None else None
    if rows is None:
        return None
    try:
        return rows(_post_kinds(), _POST_OVERHEAD)
    except ValueError:  # a build for another posts_all (another number of columns)
        return None


def rows_to_batch(rows: Any, schema: pa.Schema) -> pa.RecordBatch:
    """The rows of a `post_rows` accumulator as a record batch of `schema`; the accumulator
    is empty after."""
    n = len(rows)
    built = rows.finish()
    if any(b is None for b in built):  # pragma: no cover - a row a column refused is not kept
        raise AssertionError("a native column of posts could not be built")
    columns = [_from_buffers(b, f.type, n) for b, f in zip(built, schema, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def column(values: list[Any], type_: pa.DataType, *, native: Any = None) -> pa.Array:
    """`pa.array(values, type=type_)`, by the native helpers when installed (a few times
    faster: pyarrow's conversion pays for generality per value); pyarrow itself for a
    value of another type than the column's, which it converts or refuses as ever.
    `native`: the helpers to use (tests; default tootlake._native's)."""
    helpers = _native if native is None else native
    kind = _KINDS.get(type_)
    if helpers is None or kind is None:
        return pa.array(values, type=type_)
    built = helpers.arrow_column(values, kind)
    if built is None:
        return pa.array(values, type=type_)
    return _from_buffers(built, type_, len(values))


def _from_buffers(built: tuple[int, list[bytes | None]], type_: pa.DataType, n: int) -> pa.Array:
    """The array of the native helpers' buffers (zero copy)."""
    nulls, buffers = built
    wrapped = [None if b is None else pa.py_buffer(b) for b in buffers]
    if _KINDS[type_] != _LIST_OF_STRING:
        return pa.Array.from_buffers(type_, n, wrapped, null_count=nulls)
    offsets = buffers[1]
    assert offsets is not None
    items = int.from_bytes(offsets[-4:], "little")  # the last offset: strings in all
    strings = pa.Array.from_buffers(pa.string(), items, [None, *wrapped[2:]], null_count=0)
    return pa.Array.from_buffers(type_, n, wrapped[:2], null_count=nulls, children=[strings])


def records_to_table(
    records: Sequence[Post | Delete | Sighting | Reject], schema: pa.Schema
) -> pa.Table:
    """Columns of records as an Arrow table of `schema`."""
    return pa.Table.from_batches([records_to_batch(records, schema)], schema=schema)


class _Buffer:
    """One table's buffered rows: Arrow batches, then the records not yet converted.
    `then`: called with each batch converted (the posts' own sightings are made from it)."""

    __slots__ = ("batches", "fresh", "records", "rows", "schema", "then")

    def __init__(
        self, schema: pa.Schema, then: Callable[[pa.RecordBatch], None] | None = None
    ) -> None:
        self.schema = schema
        self.then = then
        self.batches: list[pa.RecordBatch] = []
        self.records: list[Post | Delete | Sighting | Reject] = []
        self.rows = 0
        # batches of the fused path's accumulators, not yet `then`'s nor combined
        self.fresh: list[pa.RecordBatch] = []

    def convert(self) -> None:
        self._combine()
        if self.records:
            batch = records_to_batch(self.records, self.schema)
            if self.then is not None:  # first: should it fail, the records wait as they were
                self.then(batch)
            self.add_batch(batch)
            self.records = []

    def add_rows(self, rows: Any) -> None:
        """The posts of a `post_rows` accumulator (which it empties). Small ones wait to be
        combined into one batch (`SMALL_BATCHES_AT_MOST`)."""
        if len(rows):
            batch = rows_to_batch(rows, self.schema)
            self.fresh.append(batch)
            if (
                batch.num_rows >= SMALL_ROWS
                or self._fresh_rows() >= CONVERT_ROWS
                or len(self.fresh) >= SMALL_BATCHES_AT_MOST
            ):
                self._combine()

    def _combine(self) -> None:
        """The fresh batches kept: the small ones combined into one, each given to `then`
        first; should it fail, the rest wait as they were (a later flush tries again), as
        records do in `convert`. (posts_all's rows have no order.)"""
        small = [b for b in self.fresh if b.num_rows < SMALL_ROWS]
        if len(small) > 1:
            combined = pa.Table.from_batches(small, schema=self.schema).combine_chunks()
            self.fresh = [b for b in self.fresh if b.num_rows >= SMALL_ROWS]
            self.fresh += combined.to_batches()
        while self.fresh:
            batch = self.fresh[0]
            if self.then is not None:
                self.then(batch)
            del self.fresh[0]
            self.add_batch(batch)

    def _fresh_rows(self) -> int:
        return sum(batch.num_rows for batch in self.fresh)  # (at most SMALL_BATCHES_AT_MOST)

    def add_batch(self, batch: pa.RecordBatch) -> None:
        self.batches.append(batch)
        self.rows += batch.num_rows

    def table(self) -> pa.Table:
        self.convert()
        return pa.Table.from_batches(self.batches, schema=self.schema)

    def __len__(self) -> int:
        return self.rows + self._fresh_rows() + len(self.records)


@dataclass
class SinkStats:
    commits: int = 0
    posts: int = 0
    deletes: int = 0
    sightings: int = 0
    rejects: int = 0


class LakeWriter:
    """Buffers records and commits them to the lake's tables: posts to `posts_all`, Delete
    records to `deletes`, Sighting records to `sightings`, Reject records to `rejects`.

    With `sightings=True` every post written also records its own sighting (its instance,
    local id and ingest time), so `sightings` lists every (instance, id) a post was seen as,
    even when the collector wrote the post once.
    """

    def __init__(
        self,
        lake: str,
        *,
        max_bytes: int = 128 * 1024 * 1024,
        max_age: float = 300.0,
        sightings: bool = False,
    ) -> None:
        self.lake = lake
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.sightings = sightings
        self.stats = SinkStats()
        self._buffers = {table: self._buffer(table) for table in _ORDER}
        self._bytes = 0
        self._oldest: float | None = None

    @property
    def buffered(self) -> int:
        """Rows waiting in every table (a post's own sighting counts once the post is
        converted to Arrow: `CONVERT_ROWS` at a time, and at the flush)."""
        return sum(map(len, self._buffers.values()))

    @property
    def held_bytes(self) -> int:
        """Bytes of the records added since the last flush that wrote everything (what a
        failing flush keeps counts until one succeeds)."""
        return self._bytes

    def _buffer(self, table: str) -> _Buffer:
        then = self._own_sightings if table == POSTS_ALL and self.sightings else None
        return _Buffer(RECORD_SCHEMAS[table](), then)

    @staticmethod
    def new_rows() -> Any | None:
        """An accumulator of posts this writer takes as one record (`post_rows`)."""
        return post_rows()

    def _own_sightings(self, posts: pa.RecordBatch) -> None:
        """A post's own sighting (`sightings=True`), made from its converted batch's columns
        (uri, observed_on, id, ingested_at): no Sighting object per post (about 0.4 us a
        post less, bench/stages_bench.py). A post with no instance (null or "") has none."""
        observed = posts.column("observed_on")
        # not "" and not null (null stays null: filter drops it); no Python scalar, whose
        # conversion would have pyarrow import pandas to ask about it
        seen = pc.cast(pc.binary_length(observed), pa.bool_())
        if observed.null_count or not pc.all(seen).as_py():
            posts = posts.filter(seen)
        if posts.num_rows:
            buffer = self._buffers[SIGHTINGS]
            columns = [posts.column(name) for name in ("uri", "observed_on", "id", "ingested_at")]
            buffer.add_batch(pa.RecordBatch.from_arrays(columns, schema=buffer.schema))

    def add(self, records: Iterable[Post | Delete | Sighting | Reject]) -> None:
        """Buffer records; a `post_rows` accumulator among them is a batch of posts."""
        added = 0
        buffers = self._buffers
        posts = buffers[POSTS_ALL].records
        sightings = buffers[SIGHTINGS].records
        for record in records:
            if isinstance(record, Post):
                posts.append(record)
                # every field a hostile status can make long counts (a 1 MiB tag list too)
                added += (
                    record.characters
                    + len(record.spoiler_text)
                    + len(record.display_name)
                    + len(record.uri)
                    + len(record.url or "")
                    + sum(map(len, record.tags))
                    + _POST_OVERHEAD
                )
            elif isinstance(record, Sighting):
                sightings.append(record)
                added += 100
            elif isinstance(record, Reject):
                buffers[REJECTS].records.append(record)
                added += len(record.raw) + _POST_OVERHEAD
            elif type(record) is _ROWS:
                rows: Any = record  # (a native PostRows: `post_rows`)
                added += rows.size  # (before: add_rows empties it)
                buffers[POSTS_ALL].add_rows(rows)
            else:
                buffers[DELETES].records.append(record)
                added += 100
        for buffer in buffers.values():
            if len(buffer.records) >= CONVERT_ROWS:
                buffer.convert()
        if added and self._oldest is None:
            self._oldest = time.monotonic()
        self._bytes += added

    def due(self) -> bool:
        """True when the buffer should be written: big enough, or old enough."""
        if self._oldest is None:
            return False
        return self._bytes >= self.max_bytes or time.monotonic() - self._oldest >= self.max_age

    def flush(self, *, wait: bool = True, metadata: Mapping[str, str] | None = None) -> list[str]:
        """Commit everything buffered, one Delta commit per table; return the tables written.

        Posts go first and deletes last, so a delete is never visible before a post it names
        that came in the same batch. When this returns, every row is durable: the caller may
        commit the batch upstream (`tootlake.transports.flush_then_commit`). A failure raises
        LakeError and keeps what was not committed (a retry writes only that). `wait`: the
        `Sink` protocol's; this writer always writes everything before it returns.
        """
        written = []
        for table, buffer in self._buffers.items():
            count = len(buffer)
            if not count:
                continue
            append(self.lake, table, with_date(table, buffer.table()), metadata=metadata)
            self.stats.commits += 1
            written.append(table)
            if table == POSTS_ALL:
                self.stats.posts += count
            elif table == DELETES:
                self.stats.deletes += count
            elif table == SIGHTINGS:
                self.stats.sightings += count
            else:
                self.stats.rejects += count
            self._buffers[table] = self._buffer(table)
        self._bytes = 0
        self._oldest = None
        return written
