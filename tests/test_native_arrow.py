"""The native Arrow columns (`tootlake_native.arrow_column`, through
`tootlake.lake.writer.column`) equal what `pyarrow.array` makes, on any values: the same
array, or the same refusal (the native code leaves every value it does not know to pyarrow).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from operator import attrgetter

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tootlake.errors import BadStatus
from tootlake.lake.writer import _KINDS, column, records_to_batch
from tootlake.record import from_status
from tootlake.record.model import arrow_schema

from .conftest import all_real_statuses, native

STRING, INT64, BOOL, TIMESTAMP, LIST = (
    pa.string(),
    pa.int64(),
    pa.bool_(),
    pa.timestamp("us", tz="UTC"),
    pa.list_(pa.string()),
)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

texts = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["a", "é", "\x00", "😀", "\ud800"]),
    max_size=20,
) | st.sampled_from(["", "<p>", "\ud800x"])
ints = st.integers(INT64_MIN, INT64_MAX) | st.sampled_from(
    [0, -1, INT64_MIN, INT64_MAX, INT64_MAX + 1, INT64_MIN - 1, 10**30]
)
aware = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
)
times = aware.map(lambda d: d.replace(tzinfo=UTC)) | aware.map(
    lambda d: d.replace(tzinfo=timezone(timedelta(hours=2)))
)
others = st.sampled_from([1.5, b"x", True, 3, "s", ["a"], ("a",), datetime(2024, 1, 1)])


def same(values: list, type_: pa.DataType) -> None:
    """`column` with the native helpers equals pyarrow's own answer, refusal included."""
    try:
        expected = pa.array(values, type=type_)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            column(values, type_, native=native())
        return
    got = column(values, type_, native=native())
    got.validate(full=True)
    assert got.type == expected.type
    assert got.null_count == expected.null_count
    assert got.equals(expected), (values, got, expected)


def nullable(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(st.none() | values, max_size=40)


FAST = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(nullable(texts) | nullable(texts | others))
@example([])
@example([None])
@example(["\ud800"])
def test_strings(values):
    same(values, STRING)


@FAST
@given(nullable(ints) | nullable(ints | others))
@example([INT64_MAX, INT64_MIN, None])
@example([INT64_MAX + 1])
@example([True])
def test_int64(values):
    same(values, INT64)


@FAST
@given(nullable(st.booleans()) | nullable(st.booleans() | others))
@example([True] * 9 + [None, False])
@example([1])
def test_bools(values):
    same(values, BOOL)


@FAST
@given(nullable(times) | nullable(times | others))
@example([datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)])
@example([datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None])
@example([datetime(2024, 2, 29, 12, tzinfo=UTC)])
@example([datetime(2024, 1, 1)])  # naive: pyarrow's own reading
def test_timestamps(values):
    same(values, TIMESTAMP)


@FAST
@given(nullable(st.lists(texts, max_size=5)) | nullable(st.lists(texts | st.none(), max_size=3)))
@example([[], None, ["a", "é"], []])
@example([["a", None]])
@example([("a",)])
def test_lists_of_strings(values):
    same(values, LIST)


def test_every_column_of_real_posts_is_built_natively():
    """Not vacuous: the lake's columns of real posts never fall back to pyarrow, and the
    batch equals pyarrow's."""
    posts = []
    for _, host, status in all_real_statuses():
        with contextlib.suppress(BadStatus):  # (malformed.json has a few on purpose)
            posts.append(from_status(status, host))
    assert len(posts) > 400
    schema = arrow_schema()
    for field in schema:
        values = list(map(attrgetter(field.name), posts))
        assert native().arrow_column(values, _KINDS[field.type]) is not None, field
    batch = records_to_batch(posts, schema)
    expected = pa.RecordBatch.from_arrays(
        [pa.array(list(map(attrgetter(f.name), posts)), type=f.type) for f in schema],
        schema=schema,
    )
    assert batch.equals(expected)


def _python_batch(records, schema) -> pa.RecordBatch:
    columns = [pa.array(list(map(attrgetter(f.name), records)), type=f.type) for f in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


_POSTS = None


def _real_posts() -> list:
    global _POSTS
    if _POSTS is None:
        _POSTS = []
        for _, host, status in all_real_statuses():
            with contextlib.suppress(BadStatus):
                _POSTS.append(from_status(status, host))
    return _POSTS


_VALUES = {
    "string": texts,
    "int64": ints,
    "bool": st.booleans(),
    "timestamp[us, tz=UTC]": times,
    "list<item: string>": st.lists(texts, max_size=4),
}


@st.composite
def odd_posts(draw) -> list:
    """Real posts, some fields replaced by values of their type, None or another type."""
    posts = _real_posts()
    schema = arrow_schema()
    chosen = draw(st.lists(st.sampled_from(range(len(posts))), min_size=1, max_size=12))
    out = []
    for index in chosen:
        post = posts[index]
        for _ in range(draw(st.integers(0, 3))):
            field = draw(st.sampled_from(list(schema)))
            value = draw(st.none() | _VALUES[str(field.type)] | others)
            post = msgspec.structs.replace(post, **{field.name: value})
        out.append(post)
    return out


@FAST
@given(odd_posts())
def test_a_batch_of_posts_is_pyarrow_s_batch(posts):
    """`records_to_batch` reads each record once (`arrow_batch`); a column holding a value
    it does not know is pyarrow's, which converts or refuses it."""
    schema = arrow_schema()
    try:
        expected = _python_batch(posts, schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            records_to_batch(posts, schema)
        return
    got = records_to_batch(posts, schema)
    got.validate(full=True)
    assert got.equals(expected)


@pytest.mark.parametrize("table", ["deletes", "sightings", "rejects"])
def test_the_other_tables_batches(table):
    from tootlake.lake.tables import RECORD_SCHEMAS
    from tootlake.record import Delete, Reject, Sighting

    now = datetime(2026, 12, 5, tzinfo=UTC)
    records = {
        "deletes": [
            Delete("a.example", "1", None, now),
            Delete(None, "2", "https://b/x", now, "noindex"),
        ],
        "sightings": [Sighting("https://a/1", "b.example", "9", now)] * 3,
        "rejects": [Reject(now, "replay", "a.example", "f:1", "bad", "uri", "raw")],
    }[table]
    schema = RECORD_SCHEMAS[table]()
    assert (
        native().arrow_batch(
            list(records), [_KINDS[f.type] for f in schema], msgspec.structs.astuple
        )
        is not None
    )
    assert records_to_batch(records, schema).equals(_python_batch(records, schema))
