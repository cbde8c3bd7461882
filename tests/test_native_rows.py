"""The fused path's accumulator of posts (`PostRows` in native/src/post.rs, used through
`tootlake.record.status.append_post` and `tootlake.lake.writer.post_rows`) gives, for any
validated statuses appended to it, exactly the Arrow batch that `records_to_batch` makes of
the Posts `to_post_python` builds of them, and each post's consent level; or it appends
nothing (None) and the caller builds that Post itself. A row one of its columns cannot hold
is taken back from every column, leaving the rows before and after it intact.

The statuses are those of tests/test_native_post.py: the real recordings and the modern
ones, mutated by Hypothesis in every field `to_post` reads, several to a batch (so nulls,
booleans and lists fall at every position of their buffers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tootlake.lake.tables import RECORD_SCHEMAS
from tootlake.lake.writer import LakeWriter, post_rows, records_to_batch, rows_to_batch
from tootlake.pipeline import Recorder, RunStats, batches
from tootlake.record import Post, ValidStatus
from tootlake.record.status import append_post, to_post_python
from tootlake.sources import UPDATE, Event

from .conftest import all_real_statuses, native
from .test_native_post import (
    CONSENTS,
    INGESTED,
    OPTED_OUT,
    SETTINGS,
    cases,
    event,
    ingested_times,
    minimal,
    validated,
)

SCHEMA = RECORD_SCHEMAS["posts_all"]()


def _same(got: pa.RecordBatch, want: pa.RecordBatch) -> None:
    assert got.schema == want.schema
    assert got.num_rows == want.num_rows
    for name in SCHEMA.names:  # column by column: a failure names the column
        g, w = got.column(name), want.column(name)
        assert g.equals(w), f"{name}: rows {g.to_pylist()!r}, Posts {w.to_pylist()!r}"
        assert g.null_count == w.null_count, name
    assert got.equals(want)


def _appended(
    items: list[tuple[ValidStatus, str | None, datetime, bool | None, str | None]],
) -> int:
    """Appends the items' posts to one accumulator and checks its batch against the Posts';
    how many the native path left to the Python."""
    native()
    rows = post_rows()
    assert rows is not None
    posts: list[Post] = []
    left = 0
    for status, observed_on, ingested_at, opted_out, consent in items:
        post = to_post_python(
            status, observed_on, ingested_at, opted_out=opted_out, consent=consent
        )
        given = append_post(
            rows, status, observed_on, ingested_at, opted_out=opted_out, consent=consent
        )
        if given is None:
            left += 1
            event("rows: left to the Python")
            continue
        assert given == (post.consent or "")
        posts.append(post)
    assert len(rows) == len(posts)
    got = rows_to_batch(rows, SCHEMA)
    assert len(rows) == 0  # taken
    if posts:
        _same(got, records_to_batch(posts, SCHEMA))
    else:
        assert got.num_rows == 0 and got.schema == SCHEMA
    return left


@settings(max_examples=400, **SETTINGS)
@given(
    items=st.lists(
        st.tuples(
            cases(),
            ingested_times,
            st.sampled_from(OPTED_OUT),
            st.sampled_from(CONSENTS),
            st.sampled_from(["validate", "decode"]),
        ),
        min_size=1,
        max_size=19,
    )
)
def test_rows_equal_the_posts_batch_on_mutated_real_statuses(items):
    kept = []
    for (status, observed_on), ingested_at, opted_out, consent, route in items:
        checked = validated(status, route)
        if isinstance(checked, ValidStatus):
            kept.append((checked, observed_on, ingested_at, opted_out, consent))
    if kept:
        _appended(kept)


def test_rows_answer_for_every_real_status():
    """Not vacuous: every real recorded status becomes a row (none left to the Python), and
    the batch equals the Posts'."""
    items = []
    for _, observed_on, status in all_real_statuses():
        checked = validated(status, "decode")
        assert isinstance(checked, ValidStatus)
        items.append((checked, observed_on, INGESTED, None, None))
    assert len(items) > 100
    assert _appended(items) == 0


def _valid(**fields: Any) -> ValidStatus:
    checked = validated(minimal(**{"visibility": "public", **fields}), "decode")
    assert isinstance(checked, ValidStatus)
    return checked


def test_a_row_a_column_cannot_hold_is_taken_back_from_every_column():
    """`opted_out` and `consent` are kept as the caller gives them: an int or a number where
    the column wants a bool or a str is a value the native column refuses. That row is taken
    back (None: the caller's Post then goes to pyarrow, which decides), and the rows around
    it are whole: every offset, null and bit in place."""
    native()
    rows = post_rows()
    statuses = [_valid(id=str(n), uri=f"https://example.social/s/{n}") for n in range(20)]
    posts = []
    for n, status in enumerate(statuses):
        odd = n % 3 == 1
        opted_out: Any = 1 if odd and n % 2 else (None if n % 4 else True)
        consent: Any = 7 if odd and not n % 2 else None
        given = append_post(
            rows, status, "example.social", INGESTED, opted_out=opted_out, consent=consent
        )
        if odd:
            assert given is None, n
        else:
            assert given is not None, n
            posts.append(
                to_post_python(
                    status, "example.social", INGESTED, opted_out=opted_out, consent=consent
                )
            )
    assert len(rows) == len(posts) == 13
    _same(rows_to_batch(rows, SCHEMA), records_to_batch(posts, SCHEMA))


def test_an_accumulator_is_empty_after_finish_and_can_be_filled_again():
    native()
    rows = post_rows()
    first, second = _valid(id="1"), _valid(id="2", uri="https://example.social/s/2")
    assert append_post(rows, first, "example.social", INGESTED) is not None
    size = rows.size
    assert size > 400  # its strings, and the per-row overhead
    _same(
        rows_to_batch(rows, SCHEMA),
        records_to_batch([to_post_python(first, "example.social", INGESTED)], SCHEMA),
    )
    assert len(rows) == 0 and rows.size == 0
    assert append_post(rows, second, "example.social", INGESTED) is not None
    _same(
        rows_to_batch(rows, SCHEMA),
        records_to_batch([to_post_python(second, "example.social", INGESTED)], SCHEMA),
    )
    assert rows_to_batch(rows, SCHEMA).num_rows == 0


def test_the_native_accumulator_refuses_kinds_it_cannot_build():
    with pytest.raises(ValueError, match="48 kinds"):
        native().PostRows([0] * 47, 400)
    with pytest.raises(ValueError, match="48 kinds"):
        native().PostRows([0] * 47 + [255], 400)


def test_batches_carry_the_posts_as_rows_and_the_writer_writes_them(tmp_path):
    """Through the Recorder and `batches` as the collector runs them: posts become rows of
    one accumulator per batch (the last record), other records stay records, and the lake
    holds what the Post path wrote, own sightings included."""
    native()
    statuses = [_valid(id=str(n), uri=f"https://example.social/s/{n}") for n in range(5)]
    events = [Event(UPDATE, "example.social", status=s, where="example.social") for s in statuses]
    events.append(events[0])  # the same post again on the same instance: nothing
    events.append(Event(UPDATE, "other.example", status=statuses[1], where="other.example"))

    def written(fused: bool) -> dict[str, list[dict[str, Any]]]:
        recorder = Recorder(RunStats(), dedupe=True)
        writer = LakeWriter(str(tmp_path / f"lake-{fused}"), sightings=True)
        if fused:
            recorder.use_rows(writer.new_rows)
        made = list(batches(iter(events), recorder, batch_size=3))
        kinds = [[type(r).__name__ for r in b.records] for b in made]
        # batches of 3 records (the duplicate is none): 3 posts; 2 posts and the sighting
        if fused:  # (the posts of a batch: one accumulator, its last record)
            assert kinds == [["PostRows"], ["Sighting", "PostRows"], []], kinds
        else:
            assert kinds == [["Post"] * 3, ["Post", "Post", "Sighting"], []], kinds
        assert recorder.stats.posts == 5 and recorder.stats.sightings == 1
        assert sum(recorder.stats.consent.values()) == 5
        for batch in made:
            writer.add(batch.records)
        writer.flush()
        import deltalake

        out = {}
        for table in ("posts_all", "sightings"):
            rows = deltalake.DeltaTable(str(tmp_path / f"lake-{fused}" / table)).to_pyarrow_table()
            out[table] = sorted(
                (
                    {k: v for k, v in r.items() if k not in ("ingested_at", "seen_at")}
                    for r in rows.to_pylist()
                ),
                key=str,
            )
        return out

    assert written(True) == written(False)


def test_without_the_native_helpers_the_recorder_makes_posts(monkeypatch):
    import tootlake.lake.writer as writer_module

    monkeypatch.setattr(writer_module, "_native", None)  # (as TOOTLAKE_NATIVE=0 leaves it)
    assert post_rows() is None
    recorder = Recorder(RunStats())
    recorder.use_rows(post_rows)
    assert recorder.new_rows is None
    status = _valid()
    made = list(
        batches(iter([Event(UPDATE, "example.social", status=status)]), recorder, batch_size=10)
    )
    assert [type(r) for r in made[0].records] == [Post]


def test_a_pseudonymising_recorder_keeps_post_objects():
    from tootlake.record.pseudonymize import Pseudonymizer

    recorder = Recorder(RunStats(), pseudonymizer=Pseudonymizer(bytes(range(32))))
    recorder.use_rows(post_rows)
    assert recorder.new_rows is None


def test_small_accumulators_are_combined_and_big_ones_kept_as_they_are(tmp_path):
    """The writer's buffer combines small batches of rows (a live source at a low rate) and
    keeps a big one as it is, with no copy; every post and its own sighting is there."""
    from tootlake.lake.writer import SMALL_ROWS

    native()
    writer = LakeWriter(str(tmp_path / "lake"), sightings=True)
    statuses = [_valid(id=str(n), uri=f"https://example.social/s/{n}") for n in range(400)]
    sizes = [10, 10, 10, SMALL_ROWS + 44, 10]
    at = 0
    for size in sizes:
        rows = post_rows()
        for status in statuses[at : at + size]:
            assert append_post(rows, status, "example.social", INGESTED) is not None
        at += size
        writer.add([rows])
    buffer = writer._buffers["posts_all"]
    # the big one came: the three small ones before it combined into one, it kept whole
    assert sorted(b.num_rows for b in buffer.batches) == [30, SMALL_ROWS + 44]
    assert [b.num_rows for b in buffer.fresh] == [10]
    assert len(writer._buffers["sightings"]) == 30 + SMALL_ROWS + 44
    writer.flush()
    import deltalake

    posts = deltalake.DeltaTable(str(tmp_path / "lake" / "posts_all")).to_pyarrow_table()
    assert sorted(posts.column("id").to_pylist(), key=int) == [str(n) for n in range(at)]
    sightings = deltalake.DeltaTable(str(tmp_path / "lake" / "sightings")).to_pyarrow_table()
    assert sightings.num_rows == at
