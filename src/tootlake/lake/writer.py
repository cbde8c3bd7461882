"""The lake writer: batches records and commits them to the lake's Delta tables (the embedded
path's `tootlake.transports.Sink`).

Batches roll by size (estimated bytes buffered) and by age (seconds since the oldest buffered
record), so a steady trickle still becomes durable and a flood still makes large files. A
flush appends each table's rows in one Delta commit (`tootlake.lake.tables.append`): when it
returns, the rows are durable and visible, and the caller may commit the batch upstream.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter

import pyarrow as pa

from tootlake.lake.layout import DELETES, POSTS_ALL, REJECTS, SIGHTINGS
from tootlake.lake.tables import RECORD_SCHEMAS, append, with_date
from tootlake.record import Delete, Post, Reject, Sighting

__all__ = ["LakeWriter", "SinkStats", "records_to_table"]

# Rough bytes a post takes beyond its text: enough to size batches, not an exact count.
_POST_OVERHEAD = 400


def records_to_table(
    records: Sequence[Post | Delete | Sighting | Reject], schema: pa.Schema
) -> pa.Table:
    """Columns of records as an Arrow table of `schema`."""
    columns = [pa.array(list(map(attrgetter(f.name), records)), type=f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


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
        self._records: dict[str, list[Post | Delete | Sighting | Reject]] = {
            POSTS_ALL: [],
            SIGHTINGS: [],
            REJECTS: [],
            DELETES: [],
        }
        self._bytes = 0
        self._oldest: float | None = None

    @property
    def buffered(self) -> int:
        return sum(map(len, self._records.values()))

    def add(self, records: Iterable[Post | Delete | Sighting | Reject]) -> None:
        added = 0
        posts = self._records[POSTS_ALL]
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
                if self.sightings and record.observed_on:
                    self._records[SIGHTINGS].append(
                        Sighting(record.uri, record.observed_on, record.id, record.ingested_at)
                    )
            elif isinstance(record, Sighting):
                self._records[SIGHTINGS].append(record)
                added += 100
            elif isinstance(record, Reject):
                self._records[REJECTS].append(record)
                added += len(record.raw) + _POST_OVERHEAD
            else:
                self._records[DELETES].append(record)
                added += 100
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
        for table, records in self._records.items():
            if not records:
                continue
            data = with_date(table, records_to_table(records, RECORD_SCHEMAS[table]()))
            append(self.lake, table, data, metadata=metadata)
            self.stats.commits += 1
            written.append(table)
            count = len(records)
            if table == POSTS_ALL:
                self.stats.posts += count
            elif table == DELETES:
                self.stats.deletes += count
            elif table == SIGHTINGS:
                self.stats.sightings += count
            else:
                self.stats.rejects += count
            self._records[table] = []
        self._bytes = 0
        self._oldest = None
        return written
