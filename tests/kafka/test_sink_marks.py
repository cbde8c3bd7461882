"""The sink's exactly once without a broker. First the rule, simulated: a partition's log of
messages, each a row of one table; batches of any size committed table by table in the sink's
order (posts_all last, always), each commit carrying the batch's last offset as the table's
mark; crashes before any commit; restarts from posts_all's mark + 1 with other boundaries.
Then the worker's own flush on a real lake: a crash between its commits, a commit that loses
a race to another writer of the partition, a batch the lake already has."""

from __future__ import annotations

import random
import threading
from typing import Any

import pyarrow as pa
import pytest

from tootlake.errors import LakeError
from tootlake.kafka.encode import batch_encoder
from tootlake.kafka.sink import COMMIT_ORDER, KIND_TABLES, KafkaSinkWorker, app_id, rows_after
from tootlake.lake import tables
from tootlake.lake.layout import DELETES, POSTS_ALL, REJECTS, SIGHTINGS
from tootlake.record import Post

from .conftest import assert_each_post_once, assert_each_record_once, mixed_records, unique_posts


def _simulate(seed: int, *, filter_by_mark: bool) -> dict[str, list[int]]:
    """The rows (their offsets) each table ends with."""
    rng = random.Random(seed)
    kinds = [rng.choice(["post", "post", "delete", "sighting", "reject"]) for _ in range(300)]
    rows: dict[str, list[int]] = {table: [] for table, _ in KIND_TABLES.values()}
    marks: dict[str, int] = dict.fromkeys(rows, -1)  # -1: no mark yet
    while marks[POSTS_ALL] < len(kinds) - 1:
        start = marks[POSTS_ALL] + 1  # resume
        while start < len(kinds):
            last = min(len(kinds), start + rng.randint(1, 40)) - 1
            crashed = False
            for kind in COMMIT_ORDER:
                table = KIND_TABLES[kind][0]
                offsets = [o for o in range(start, last + 1) if kinds[o] == kind]
                if kind != "post" and not offsets:
                    continue
                if rng.random() < 0.08:
                    crashed = True  # before this commit: the batch is partly in
                    break
                mark = marks[table] if filter_by_mark and marks[table] >= 0 else None
                if mark is not None and mark >= last:
                    continue
                data = pa.table({"offset": pa.array(offsets, pa.int64())})
                new, _ = rows_after(data, data.column("offset").combine_chunks(), mark)
                if not new.num_rows and kind != "post":
                    continue
                rows[table] += new.column("offset").to_pylist()  # one atomic commit
                marks[table] = last
            if crashed:
                break
            start = last + 1
    return rows


def _expected(seed: int) -> dict[str, list[int]]:
    rng = random.Random(seed)
    kinds = [rng.choice(["post", "post", "delete", "sighting", "reject"]) for _ in range(300)]
    return {
        table: [o for o, k in enumerate(kinds) if k == kind]
        for kind, (table, _) in KIND_TABLES.items()
    }


def test_rows_past_each_tables_mark_make_every_restart_write_each_row_once():
    for seed in range(300):
        rows = _simulate(seed, filter_by_mark=True)
        assert {t: sorted(r) for t, r in rows.items()} == _expected(seed), f"seed {seed}"


def test_resuming_from_posts_all_alone_would_write_rows_twice():
    duplicated = 0
    for seed in range(300):
        rows = _simulate(seed, filter_by_mark=False)
        duplicated += any(len(r) != len(set(r)) for r in rows.values())
    assert duplicated > 0  # why each table's own mark filters the rows read again


def test_rows_after_keeps_the_rows_past_the_mark():
    table = pa.table({"x": ["a", "b", "c", "d"]})
    offsets = pa.array([3, 5, 8, 9], pa.int64())
    assert rows_after(table, offsets, None)[0] is table
    assert rows_after(table, offsets, 2)[0] is table  # nothing at or below the mark
    kept, kept_offsets = rows_after(table, offsets, 5)
    assert kept.column("x").to_pylist() == ["c", "d"] and kept_offsets.to_pylist() == [8, 9]
    assert rows_after(table, offsets, 9)[0].num_rows == 0


# ----------------------------------------------------------------------------------------
# The worker's own flush (decode, split, commit table by table), without a broker.


class _Crash(Exception):
    pass


class _CrashingWorker(KafkaSinkWorker):
    crash_before: str | None = None

    def _before_commit(self, table: str, app: str, last: int) -> None:
        if table == self.crash_before:
            raise _Crash(table)


def _worker(lake: str, cls: type[KafkaSinkWorker] = KafkaSinkWorker) -> KafkaSinkWorker:
    return cls(lake, kafka="127.0.0.1:9", topic="t")  # never connects: run() is not called


def _flush(worker: KafkaSinkWorker, values: list[bytes], offsets: list[int]) -> Any:
    known = tables.load(worker.lake, POSTS_ALL)
    mark = None if known is None else known.transaction_version(app_id("t", 0))
    return worker._flush_partition(0, values, offsets, mark, threading.Event())


def _marks(lake: str) -> dict[str, int | None]:
    out = {}
    for table, _ in KIND_TABLES.values():
        delta = tables.load(lake, table)
        out[table] = None if delta is None else delta.transaction_version(app_id("t", 0))
    return out


def test_a_batch_replayed_after_a_crash_between_its_commits_adds_each_row_once(tmp_path):
    lake = str(tmp_path / "lake")
    records = mixed_records(300, "u")
    values = batch_encoder()(records)
    offsets = list(range(1000, 1000 + len(values)))
    _flush(_worker(lake), values[:120], offsets[:120])
    crashing = _worker(lake, _CrashingWorker)
    assert isinstance(crashing, _CrashingWorker)
    crashing.crash_before = POSTS_ALL
    with pytest.raises(_Crash):
        _flush(crashing, values[120:260], offsets[120:260])
    marks = _marks(lake)
    assert marks[POSTS_ALL] == offsets[119]  # the batch is not done...
    assert {marks[t] for t in (DELETES, SIGHTINGS, REJECTS)} == {offsets[259]}  # ...but in these
    # a new worker, from posts_all's mark + 1, with other batch boundaries
    worker = _worker(lake)
    start = offsets.index(offsets[119] + 1)
    skipped = sum(
        _flush(worker, values[a:b], offsets[a:b]).skipped
        for a, b in ((start, 200), (200, 290), (290, len(values)))
    )
    assert skipped == sum(1 for r in records[120:260] if not isinstance(r, Post))
    assert_each_record_once(lake, records)
    assert set(_marks(lake).values()) == {offsets[-1]}


def test_a_commit_that_loses_a_race_is_tried_again_with_fresh_marks(tmp_path, monkeypatch):
    from deltalake.exceptions import CommitFailedError

    lake = str(tmp_path / "lake")
    records = unique_posts(30, tag="r")
    values = batch_encoder()(records)
    offsets = list(range(len(values)))
    real_append = tables.append
    raced: list[str] = []

    def append(lake_: str, table: str, data: Any, **kwargs: Any) -> None:
        if not raced:  # another writer of this partition commits the first 20 first
            raced.append(table)
            real_append(lake_, table, data.slice(0, 20), transactions=[(app_id("t", 0), 19)])
            try:
                raise CommitFailedError("Failed to commit transaction: Concurrent transaction")
            except CommitFailedError as exc:
                raise LakeError("Cannot write to the Delta table") from exc
        real_append(lake_, table, data, **kwargs)

    monkeypatch.setattr(tables, "append", append)
    flushed = _worker(lake)._flush_partition(0, values, offsets, None, threading.Event())
    assert raced == [POSTS_ALL] and (flushed.skipped, flushed.commits) == (20, 1)
    assert flushed.foreign == 19  # the worker noticed the other writer
    assert_each_post_once(lake, 30)
    assert _marks(lake)[POSTS_ALL] == 29


def test_a_batch_the_lake_has_already_commits_nothing(tmp_path):
    lake = str(tmp_path / "lake")
    records = mixed_records(60, "a")
    values = batch_encoder()(records)
    offsets = list(range(len(values)))
    _flush(_worker(lake), values, offsets)
    versions = {t: tables.load(lake, t).version() for t, _ in KIND_TABLES.values()}
    again = _worker(lake)._flush_partition(0, values[:30], offsets[:30], None, threading.Event())
    assert again.commits == 0 and again.skipped == 30 and again.foreign == offsets[-1]
    assert {t: tables.load(lake, t).version() for t, _ in KIND_TABLES.values()} == versions
    assert_each_record_once(lake, records)
