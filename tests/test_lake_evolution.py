"""A lake written before the interaction and account-flag columns (issues 13 and 12) was
added, then appended to and merged after: old rows read the new columns as null, new rows
carry them, through open_lake() (DuckDB) and through deltalake alone."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from tootlake.lake import tables
from tootlake.lake.layout import POSTS, POSTS_ALL
from tootlake.lake.maintenance import merge_posts
from tootlake.lake.reader import open_lake
from tootlake.lake.writer import LakeWriter
from tootlake.record import arrow_schema, from_status

from .conftest import all_real_statuses

NEW = ["mentions", "in_reply_to_acct", "quote_uri", "quote_state", "quotes_count",
       "indexable", "discoverable", "locked", "group", "moved_to"]  # fmt: skip


def _old_schema() -> pa.Schema:
    schema = arrow_schema()
    return pa.schema([f for f in schema if f.name not in NEW])


def _posts() -> list:
    out = []
    for _, host, status in all_real_statuses():
        if status.get("reblog") is None and status.get("visibility") == "public":
            out.append(from_status(status, host))
    return out


def test_a_lake_from_before_the_new_columns_reads_them_as_null(tmp_path, monkeypatch):
    lake = str(tmp_path / "lake")
    posts = _posts()
    old, new = posts[: len(posts) // 2], posts[len(posts) // 2 :]
    assert any(p.mentions for p in new) and any(p.locked is not None for p in new)
    with monkeypatch.context() as patch:  # the code as it was: the old columns only
        patch.setitem(tables.RECORD_SCHEMAS, POSTS_ALL, _old_schema)  # type: ignore[index]
        patch.setitem(tables.RECORD_SCHEMAS, POSTS, _old_schema)  # type: ignore[index]
        writer = LakeWriter(lake)
        writer.add(old)
        writer.flush()
        merge_posts(lake)
    fields = DeltaTable(tables.table_uri(lake, POSTS)).schema().to_arrow()
    assert "mentions" not in [f.name for f in fields]  # (truly an old table)

    writer = LakeWriter(lake)
    writer.add(new)
    writer.flush()
    expected = {p.uri: p for p in new} | {p.uri: None for p in old}

    def check(con_rows: list[tuple]) -> None:
        assert {r[0] for r in con_rows} == set(expected)
        for uri, *values in con_rows:
            post = expected[uri]
            want = [None] * len(NEW) if post is None else [getattr(post, n) for n in NEW]
            assert [list(v) if isinstance(v, list | tuple) else v for v in values] == want

    columns = ", ".join(f'"{n}"' for n in NEW)
    for merged in (False, True):
        if merged:
            merge_posts(lake)
        con = open_lake(lake)
        check(con.execute(f"SELECT uri, {columns} FROM posts").fetchall())
        check(con.execute(f"SELECT uri, {columns} FROM posts_all").fetchall())
        con.close()
    # delta-rs alone, no tootlake reader: the merged table has evolved its schema
    table = DeltaTable(tables.table_uri(lake, POSTS)).to_pyarrow_table(columns=["uri", *NEW])
    check([tuple(row.values()) for row in table.to_pylist()])


@pytest.mark.parametrize("column", ["group", "locked"])
def test_new_flag_columns_are_plain_sql(tmp_path, column):
    """`group` is an SQL keyword: quoted, it reads like any column."""
    lake = str(tmp_path / "lake")
    writer = LakeWriter(lake)
    writer.add(_posts())
    writer.flush()
    con = open_lake(lake)
    assert con.execute(f'SELECT count("{column}") FROM posts').fetchone()[0] >= 0
