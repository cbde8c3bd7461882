"""The lake writer: batches records and writes Parquet (zstd) files, one per date partition.

Files roll by size (estimated bytes buffered) and by age (seconds since the oldest buffered
record), so a steady trickle still becomes durable and a flood still makes large files.
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import attrgetter

import pyarrow as pa
import pyarrow.parquet as pq

from tootlake.errors import LakeError
from tootlake.record import (
    Delete,
    Post,
    Reject,
    Sighting,
    arrow_schema,
    delete_arrow_schema,
    reject_arrow_schema,
    sighting_arrow_schema,
)
from tootlake.sinks.layout import (
    DELETES,
    POSTS,
    REJECTS,
    SIGHTINGS,
    file_name,
    join,
    partition_dir,
)
from tootlake.sinks.storage import Storage, storage_for

__all__ = ["ParquetSink", "SinkStats", "records_to_table", "table_to_parquet"]

# Rough bytes a post takes beyond its text: enough to size files, not an exact count.
_POST_OVERHEAD = 400


def records_to_table(
    records: Sequence[Post] | Sequence[Delete] | Sequence[Sighting] | Sequence[Reject],
    schema: pa.Schema,
) -> pa.Table:
    """Columns of dataclass records as an Arrow table of `schema`."""
    columns = [pa.array(list(map(attrgetter(f.name), records)), type=f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def table_to_parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(
        table,
        buffer,
        compression="zstd",
        row_group_size=128 * 1024,
        write_statistics=True,
    )
    return buffer.getvalue()


@dataclass
class SinkStats:
    files: int = 0
    posts: int = 0
    deletes: int = 0
    sightings: int = 0
    rejects: int = 0
    bytes: int = 0
    paths: list[str] = field(default_factory=list)


class ParquetSink:
    """Buffers posts and deletes per date partition and writes them as Parquet files.

    Sighting records go to `sightings/`, Reject records to `rejects/`; with `sightings=True`
    every post written also records its own sighting (its instance, local id and ingest
    time), so `sightings/` lists every (instance, id) a post was seen as, even when the
    collector wrote the post once.
    """

    def __init__(
        self,
        lake: str,
        *,
        storage: Storage | None = None,
        max_bytes: int = 128 * 1024 * 1024,
        max_age: float = 300.0,
        file_prefix: str = "part",
        sightings: bool = False,
    ) -> None:
        self.lake = lake
        self.storage = storage or storage_for(lake)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.file_prefix = file_prefix
        self.sightings = sightings
        self.stats = SinkStats()
        self._posts: dict[date, list[Post]] = defaultdict(list)
        self._deletes: dict[date, list[Delete]] = defaultdict(list)
        self._sightings: dict[date, list[Sighting]] = defaultdict(list)
        self._rejects: dict[date, list[Reject]] = defaultdict(list)
        self._bytes = 0
        self._oldest: float | None = None

    @property
    def buffered(self) -> int:
        return sum(
            sum(map(len, table.values()))
            for table in (self._posts, self._deletes, self._sightings, self._rejects)
        )

    def add(self, records: Iterable[Post | Delete | Sighting | Reject]) -> None:
        added = 0
        for record in records:
            if isinstance(record, Post):
                self._posts[record.created_at.date()].append(record)
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
                if self.sightings and record.observed_on:
                    self._sightings[record.ingested_at.date()].append(
                        Sighting(record.uri, record.observed_on, record.id, record.ingested_at)
                    )
            elif isinstance(record, Sighting):
                self._sightings[record.seen_at.date()].append(record)
                added += 100
            elif isinstance(record, Reject):
                self._rejects[record.rejected_at.date()].append(record)
                added += len(record.raw) + _POST_OVERHEAD
            else:
                self._deletes[record.deleted_at.date()].append(record)
                added += 100
        if added and self._oldest is None:
            self._oldest = time.monotonic()
        self._bytes += added

    def due(self) -> bool:
        """True when the buffer should be written: big enough, or old enough."""
        if self._oldest is None:
            return False
        return self._bytes >= self.max_bytes or time.monotonic() - self._oldest >= self.max_age

    def flush(self, *, offset: int | None = None) -> list[str]:
        """Write everything buffered, one file per partition; return the paths written.

        When this returns, the files are durable: the caller may commit the batch upstream.
        """
        written = []
        for day, posts in sorted(self._posts.items()):
            written.append(self._write(POSTS, day, records_to_table(posts, arrow_schema()), offset))
            self.stats.posts += len(posts)
        for day, deletes in sorted(self._deletes.items()):
            table = records_to_table(deletes, delete_arrow_schema())
            written.append(self._write(DELETES, day, table, offset))
            self.stats.deletes += len(deletes)
        for day, sightings in sorted(self._sightings.items()):
            table = records_to_table(sightings, sighting_arrow_schema())
            written.append(self._write(SIGHTINGS, day, table, offset))
            self.stats.sightings += len(sightings)
        for day, rejects in sorted(self._rejects.items()):
            table = records_to_table(rejects, reject_arrow_schema())
            written.append(self._write(REJECTS, day, table, offset))
            self.stats.rejects += len(rejects)
        self._posts.clear()
        self._deletes.clear()
        self._sightings.clear()
        self._rejects.clear()
        self._bytes = 0
        self._oldest = None
        return written

    def _write(self, table_name: str, day: date, table: pa.Table, offset: int | None) -> str:
        data = table_to_parquet(table)
        path = join(
            partition_dir(self.lake, table_name, day), file_name(self.file_prefix, offset=offset)
        )
        try:
            self.storage.write_atomic(path, data)
        except OSError as exc:  # a storage that does not say LakeError itself
            raise LakeError(f"Cannot write {path}: {exc.strerror or exc}") from exc
        self.stats.files += 1
        self.stats.bytes += len(data)
        self.stats.paths.append(path)
        return path

    def write_table(
        self, table_name: str, day: date, table: pa.Table, offset: int | None = None
    ) -> str:
        """Write one ready Arrow table as one file (used by sinks that name files by offset)."""
        return self._write(table_name, day, table, offset)
