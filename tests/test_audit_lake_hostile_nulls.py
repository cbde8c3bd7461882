"""Hostile lakes (review of src/tootlake/lake/): NULLs where tootlake never writes them, in
tables another tool made (with a nullable column) or in a column tootlake's schema leaves
nullable. The merge, the `posts` view, compaction and retention must cope: no post lost, no
traceback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import deltalake
import pyarrow as pa
import pytest

from tootlake.lake import tables
from tootlake.lake.checks import CHECKS_SCHEMA
from tootlake.lake.enrich import LANGUAGES_SCHEMA
from tootlake.lake.layout import CHECKS, DELETES, LANGUAGES, POSTS_ALL
from tootlake.lake.maintenance import compact, merge_posts, retain
from tootlake.lake.reader import open_lake

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def post_rows(specs: list[dict[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    """Rows of `posts_all` (with `date`): fillers for the required columns, NULL for the
    others, then each spec's values."""
    schema = schema or tables.table_schema(POSTS_ALL)
    fillers = {pa.int64(): 0, pa.bool_(): False, pa.string(): "x"}
    rows = []
    for spec in specs:
        row: dict[str, Any] = {}
        for f in schema:
            if f.nullable:
                row[f.name] = None
            elif pa.types.is_list(f.type):
                row[f.name] = []
            else:
                row[f.name] = fillers.get(f.type)
        row.update(created_at=NOW, ingested_at=NOW, date=NOW.date())
        row.update(spec)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def nullable(schema: pa.Schema, *names: str) -> pa.Schema:
    for name in names:
        schema = schema.set(schema.get_field_index(name), schema.field(name).with_nullable(True))
    return schema


def another_tools_table(lake: str, table: str, data: pa.Table) -> None:
    """A table made by another Delta writer, whose schema lets a column be NULL."""
    deltalake.write_deltalake(
        tables.table_uri(lake, table), data, mode="append", partition_by=["date"]
    )


def uris(lake: str) -> list[str]:
    con = open_lake(lake)
    try:
        return [row[0] for row in con.sql("SELECT uri FROM posts ORDER BY uri").fetchall()]
    finally:
        con.close()


GOOD = [f"https://a.example/{i}" for i in range(3)]


@pytest.mark.parametrize("deleted", [True, False])
def test_a_row_without_uri_neither_empties_nor_blocks_posts(tmp_path: Path, deleted: bool) -> None:
    """A row of posts_all without a uri (another tool's) that a delete names by its
    (instance, id) put NULL among the deleted uris: `uri NOT IN (... NULL ...)` is never
    true, so the merge dropped every post of the tail (posts came out empty). Not deleted,
    the merge took it as a post and failed on every run (uri is not nullable in `posts`)."""
    lake = str(tmp_path / "lake")
    schema = nullable(tables.table_schema(POSTS_ALL), "uri")
    another_tools_table(
        lake, POSTS_ALL, post_rows([dict(uri=None, id="99", observed_on="a")], schema)
    )
    tables.append(
        lake, POSTS_ALL, post_rows([dict(uri=u, id=u[-1], observed_on="a") for u in GOOD])
    )
    if deleted:
        delete = dict(
            observed_on="a", id="99", uri=None, deleted_at=NOW, reason=None, date=NOW.date()
        )
        tables.append(
            lake, DELETES, pa.Table.from_pylist([delete], schema=tables.table_schema(DELETES))
        )

    # the tail, resolved by the reader (the row without uri is no post)
    assert uris(lake) == GOOD
    stats = merge_posts(lake)
    assert stats.upserted == 3
    assert uris(lake) == GOOD  # the merged table
    assert merge_posts(lake).commits == 0


def test_a_row_lacking_a_required_value_no_longer_blocks_every_merge(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another tool's posts_all with NULLs where `posts` wants values: every merge failed
    ("Column 'created_at' is declared as non-nullable"), until the row was mended by hand.
    A row without its time is no post (left out, said); a missing count is 0."""
    lake = str(tmp_path / "lake")
    schema = nullable(tables.table_schema(POSTS_ALL), "created_at", "favourites_count")
    rows = [dict(uri=u, id=u[-1], observed_on="a") for u in GOOD]
    rows[1]["favourites_count"] = None
    rows.append(dict(uri="https://a.example/undated", id="9", observed_on="a", created_at=None))
    another_tools_table(lake, POSTS_ALL, post_rows(rows, schema))

    # the tail, resolved by the reader: the undated row is no post there either (it was
    # shown until a merge left it out)
    assert uris(lake) == GOOD
    stats = merge_posts(lake)
    assert stats.upserted == 3
    assert "1 rows of posts_all lack" in caplog.text
    assert uris(lake) == GOOD  # the merged table
    con = open_lake(lake)
    try:
        count = con.sql(f"SELECT favourites_count FROM posts WHERE uri = '{GOOD[1]}'").fetchall()
    finally:
        con.close()
    assert count == [(0,)]


def test_rows_left_out_across_batches_are_said_once_with_their_total(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows lacking a required value were said once per batch of the tail (32,768 rows):
    a big hostile tail logged a line per batch. One line per merge, with the total."""
    import tootlake.lake.maintenance as maintenance

    lake = str(tmp_path / "lake")
    schema = nullable(tables.table_schema(POSTS_ALL), "created_at", "id")
    rows: list[dict[str, Any]] = [dict(uri=u, id=u[-1], observed_on="a") for u in GOOD]
    for i in range(8):  # spread over the batches, lacking one value or another
        rows.append(dict(uri=f"https://a.example/bad{i}", id=str(i), observed_on="a"))
        rows[-1]["created_at" if i % 2 else "id"] = None
    another_tools_table(lake, POSTS_ALL, post_rows(rows, schema))
    monkeypatch.setattr(maintenance, "MERGE_BATCH_ROWS", 2)
    original = maintenance._conform
    batches_left_out = []

    def counting(batch: pa.RecordBatch, schema: pa.Schema) -> tuple[pa.RecordBatch, int]:
        conformed, left_out = original(batch, schema)
        if left_out:
            batches_left_out.append(left_out)
        return conformed, left_out

    monkeypatch.setattr(maintenance, "_conform", counting)

    with caplog.at_level("WARNING", logger=maintenance.__name__):
        stats = merge_posts(lake)
    assert len(batches_left_out) >= 2 and sum(batches_left_out) == 8  # (more than one batch)
    said = [r.getMessage() for r in caplog.records if "lack a uri" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith("posts merge: 8 rows of posts_all lack a uri"), said
    assert stats.upserted == 3
    assert uris(lake) == GOOD
    caplog.clear()
    assert merge_posts(lake).commits == 0  # nothing new: nothing said
    assert "lack a uri" not in caplog.text


def test_nulls_in_a_list_and_a_boolean_column_become_their_empty_values(tmp_path: Path) -> None:
    """Another tool's posts_all with NULL `tags` (a list) and NULL `sensitive` (a boolean),
    both required in `posts`: the merge fills them with [] and false, as it fills a count."""
    lake = str(tmp_path / "lake")
    schema = nullable(tables.table_schema(POSTS_ALL), "tags", "sensitive", "bot")
    rows = [dict(uri=u, id=u[-1], observed_on="a", tags=["kept"], sensitive=True) for u in GOOD]
    rows[0]["tags"] = None
    rows[1]["sensitive"] = None
    rows[2].update(tags=None, sensitive=None, bot=None)
    another_tools_table(lake, POSTS_ALL, post_rows(rows, schema))

    assert uris(lake) == GOOD  # the tail, resolved by the reader (NULLs as they are)
    stats = merge_posts(lake)
    assert stats.upserted == 3
    assert uris(lake) == GOOD  # the merged table
    con = open_lake(lake)
    try:
        read = con.sql("SELECT uri, tags, sensitive, bot FROM posts ORDER BY uri").fetchall()
    finally:
        con.close()
    assert read == [
        (GOOD[0], [], True, False),
        (GOOD[1], ["kept"], False, False),
        (GOOD[2], [], False, False),
    ]
    from deltalake import DeltaTable

    merged = DeltaTable(tables.table_uri(lake, "posts")).to_pyarrow_table()
    for name in ("tags", "sensitive", "bot"):
        assert merged.column(name).null_count == 0, name
        assert not merged.schema.field(name).nullable, name


def test_a_check_without_id_is_removed_by_compact(tmp_path: Path) -> None:
    """`checks` allows a NULL id (its schema is nullable): compaction's removal of the checks
    of gone posts built its predicate with None.replace: AttributeError."""
    lake = str(tmp_path / "lake")
    tables.append(
        lake, POSTS_ALL, post_rows([dict(uri=u, id=u[-1], observed_on="a") for u in GOOD])
    )
    check = dict(observed_on="a", id=None, checked_at=NOW, outcome="present", http_status=200)
    keep = dict(check, id="1")
    schema = CHECKS_SCHEMA.append(tables.DATE_FIELD)
    rows = [dict(c, date=NOW.date()) for c in (check, keep)]
    tables.append(lake, CHECKS, pa.Table.from_pylist(rows, schema=schema))

    stats = compact(lake)
    assert stats.checks_removed == 1  # it names no post: an orphan
    con = open_lake(lake)
    assert con.sql("SELECT id FROM checks").fetchall() == [("1",)]
    assert uris(lake) == GOOD


def test_retention_removes_a_language_row_without_uri(tmp_path: Path) -> None:
    """A `languages` row without a uri (another tool's table) is of no post: retention's
    removal of orphan languages built its predicate with None.replace: AttributeError."""
    lake = str(tmp_path / "lake")
    tables.append(
        lake, POSTS_ALL, post_rows([dict(uri=u, id=u[-1], observed_on="a") for u in GOOD])
    )
    schema = nullable(LANGUAGES_SCHEMA.append(tables.DATE_FIELD), "uri")
    row = dict(language_detected="en", language_confidence=1.0, detected_at=NOW, detector="x")
    rows = [dict(row, uri=None, date=NOW.date()), dict(row, uri=GOOD[0], date=NOW.date())]
    another_tools_table(lake, LANGUAGES, pa.Table.from_pylist(rows, schema=schema))

    stats = retain(lake, 30)
    assert stats.removed[LANGUAGES] == 1
    con = open_lake(lake)
    assert con.sql("SELECT uri FROM languages").fetchall() == [(GOOD[0],)]
    assert uris(lake) == GOOD


# ----------------------------------------------------------------------------------------
# two merges at once (a `tootlake compact` from cron while `collect` merges)


@pytest.mark.parametrize("first_merge", [True, False])
def test_two_merges_racing_do_not_double_posts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_merge: bool
) -> None:
    """Merge A ranks the tail, then merge B commits the same new uris before A writes: A's
    plain append of "new" uris landed on B's table (appends never conflict in Delta), and
    `posts` held every post twice, for good. A must see the race and merge again."""
    import tootlake.lake.maintenance as maintenance

    lake = str(tmp_path / "lake")
    tables.append(
        lake, POSTS_ALL, post_rows([dict(uri=u, id=u[-1], observed_on="a") for u in GOOD])
    )
    if not first_merge:  # `posts` exists: the new uris of a later tail
        merge_posts(lake)
        more = [f"https://a.example/new{i}" for i in range(3)]
        tables.append(
            lake, POSTS_ALL, post_rows([dict(uri=u, id=u, observed_on="a") for u in more])
        )
    original = maintenance._append_posts
    raced = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(True)
            merge_posts(lake)  # merge B, whole, between A's ranking and A's commit
        return original(*args, **kwargs)

    monkeypatch.setattr(maintenance, "_append_posts", racing)
    merge_posts(lake)  # merge A
    monkeypatch.undo()
    assert raced
    con = open_lake(lake)
    rows, distinct = con.sql("SELECT count(*), count(DISTINCT uri) FROM posts").fetchall()[0]
    assert rows == distinct == (3 if first_merge else 6)
    from deltalake import DeltaTable

    merged = DeltaTable(tables.table_uri(lake, "posts")).to_pyarrow_table(columns=["uri"])
    assert merged.num_rows == len(set(merged.column("uri").to_pylist()))


def test_a_retention_beyond_year_one_is_a_config_error(tmp_path: Path) -> None:
    """retain(lake, 1e6) subtracted a million days from now: OverflowError, a traceback."""
    from tootlake.errors import ConfigError

    lake = str(tmp_path / "lake")
    tables.append(lake, POSTS_ALL, post_rows([dict(uri=GOOD[0], id="0", observed_on="a")]))
    with pytest.raises(ConfigError, match="Invalid retention"):
        retain(lake, 1e6)
    assert uris(lake) == GOOD[:1]
