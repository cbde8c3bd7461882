"""The `posts` view gives the same rows whichever plan open_lake() picks (the plain table,
versions resolved once in memory, or the window view) and however much of the lake the
Delta table `posts` has merged (nothing, part, all): always those of a window over every
version in `posts_all`, written here independently of the reader."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from talkshape import write_jsonl, write_sse
from tootlake.lake import reader as lake_module
from tootlake.lake.maintenance import merge_posts
from tootlake.lake.reader import POSTS_VIEW, open_lake
from tootlake.pipeline import replay

# Independent of the reader: every version ever written, the latest per uri, deleted ones out.
REFERENCE = """
SELECT * EXCLUDE (k) FROM (
    SELECT *, row_number() OVER (
        PARTITION BY uri ORDER BY date_trunc('second', edited_at) DESC NULLS LAST, local DESC,
            edited_at DESC NULLS LAST, ingested_at DESC
    ) AS k
    FROM posts_all
    WHERE uri NOT IN (
        SELECT uri FROM deletes WHERE uri IS NOT NULL
        UNION SELECT a.uri FROM posts_all a JOIN deletes d USING (observed_on, id)
        UNION SELECT s.uri FROM sightings s JOIN deletes d USING (observed_on, id)
    )
) WHERE k = 1 ORDER BY uri, ingested_at
"""


def _posts(con) -> pa.Table:  # type: ignore[no-untyped-def]
    return con.sql("SELECT * FROM posts ORDER BY uri, ingested_at").to_arrow_table()


def _by_window_view(lake: str) -> pa.Table:
    con = open_lake(lake)
    # A lake whose merged table is current opens as that table alone, without the views
    # the window reads: the merged table is then all of `_posts_base`.
    if not con.sql("SELECT 1 FROM duckdb_views() WHERE view_name = '_posts_base'").fetchall():
        con.execute("CREATE TEMP TABLE _merged AS SELECT * FROM posts")
        con.execute("CREATE VIEW _posts_base AS SELECT * FROM _merged")
    con.execute(POSTS_VIEW)
    window = _posts(con)
    assert window.equals(con.sql(REFERENCE).to_arrow_table())
    return window


def _resolved(con) -> int:  # type: ignore[no-untyped-def]
    return con.execute("SELECT count(*) FROM _posts_resolve").fetchall()[0][0]


@pytest.fixture(scope="module")
def edited_lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A lake from a stream with edits and deletes, replayed twice (every post doubled)."""
    folder = tmp_path_factory.mktemp("edited")
    capture = folder / "public.sse"
    write_sse(capture, 500, seed=21, days=0.3, edits=0.06, deletes=0.06)
    lake = str(folder / "lake")
    replay([capture], lake, observed_on="mastodon.social")  # merged at its end
    replay([capture], lake, observed_on="mastodon.social", merge=False)  # a tail to resolve
    return lake


def test_a_lake_without_versions_reads_posts_all_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "statuses.jsonl"
    write_jsonl(path, 400, seed=22, days=0.2)
    lake = str(tmp_path / "lake")
    replay([path], lake)
    con = open_lake(lake)
    assert _resolved(con) == 0
    assert _posts(con).equals(_by_window_view(lake))


def test_versions_resolved_in_memory_give_the_window_views_rows(edited_lake: str) -> None:
    con = open_lake(edited_lake)
    assert 0 < _resolved(con) <= lake_module.RESOLVE_IN_MEMORY_AT_MOST
    posts = _posts(con)
    assert posts.equals(_by_window_view(edited_lake))
    assert posts.num_rows == len(set(posts["uri"].to_pylist()))  # one row per post


def test_too_many_versions_keep_the_window_view(
    edited_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lake_module, "RESOLVE_IN_MEMORY_AT_MOST", 5)
    con = open_lake(edited_lake)
    view = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'posts'").fetchall()
    assert "row_number()" in view[0][0]
    latest = "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_posts_latest'"
    assert con.execute(latest).fetchall()[0][0] == 0
    assert _posts(con).equals(_by_window_view(edited_lake))


def test_reopening_a_connection_sees_the_new_plan(tmp_path: Path, edited_lake: str) -> None:
    con = open_lake(edited_lake)
    plain = tmp_path / "statuses.jsonl"
    write_jsonl(plain, 100, seed=23, days=0.1)
    other = str(tmp_path / "lake")
    replay([plain], other)
    open_lake(other, connection=con)
    assert _resolved(con) == 0
    assert _posts(con).equals(_by_window_view(other))


@pytest.mark.parametrize("merges", ["none", "first", "both"])
def test_posts_are_the_same_merged_or_not(tmp_path: Path, merges: str) -> None:
    """Edits and deletes spread over two replays: the view's rows do not depend on what the
    `posts` table has merged, and once merged, delta-rs alone reads the same uris."""
    first, second = tmp_path / "a.sse", tmp_path / "b.sse"
    write_sse(first, 300, seed=31, days=0.3, edits=0.1, deletes=0.1)
    write_sse(second, 300, seed=32, days=0.3, edits=0.1, deletes=0.1)
    lake = str(tmp_path / "lake")
    replay([first], lake, observed_on="a.example", merge=merges != "none")
    replay([first, second], lake, observed_on="b.example", merge=merges == "both")
    con = open_lake(lake)
    posts = _posts(con)
    assert posts.equals(con.sql(REFERENCE).to_arrow_table())
    assert posts.num_rows == len(set(posts["uri"].to_pylist()))
    if merges == "both":
        from deltalake import DeltaTable

        table = DeltaTable(str(Path(lake) / "posts")).to_pyarrow_table()
        assert sorted(table["uri"].to_pylist()) == sorted(posts["uri"].to_pylist())
        assert merge_posts(lake).commits == 0  # nothing new: no commit


@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "sliced"])
def test_the_merged_table_holds_the_reference_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sliced: bool
) -> None:
    """The `posts` table itself, as delta-rs reads it, after a first merge and then one with
    known uris (edits, copies from another instance, deletes of merged posts), holds exactly
    the reference's rows: whether the tail is ranked at once or in hash slices, committed at
    once or in several chunks, and whichever uris skip the window (seen once, not merged)."""
    from deltalake import DeltaTable

    from tootlake.lake import maintenance

    ranked_in: list[int] = []  # slices of each ranking
    winner_chunks = maintenance._winner_chunks

    def spied(con, schema, slices):  # type: ignore[no-untyped-def]
        ranked_in.append(slices)
        return winner_chunks(con, schema, slices)

    monkeypatch.setattr(maintenance, "_winner_chunks", spied)
    if sliced:
        monkeypatch.setattr(maintenance, "MERGE_SLICE_BYTES", 30_000)
        monkeypatch.setattr(maintenance, "MERGE_CHUNK_BYTES", 60_000)
    first, second = tmp_path / "a.sse", tmp_path / "b.sse"
    write_sse(first, 300, seed=41, days=0.3, edits=0.1, deletes=0.1)
    write_sse(second, 300, seed=42, days=0.3, edits=0.1, deletes=0.1)
    lake = str(tmp_path / "lake")
    replay([first], lake, observed_on="a.example")
    first_stats = merge_posts(lake)
    assert first_stats.commits == 0  # replay merged at its end
    replay([first, second], lake, observed_on="b.example", merge=False)
    stats = merge_posts(lake)
    assert stats.upserted > 0
    if sliced:
        assert min(ranked_in) > 1
        assert stats.commits > 2  # chunks: new uris appended, known ones merged, in pieces
    else:
        assert ranked_in == [1, 1]
    con = open_lake(lake)
    reference = con.sql(REFERENCE).to_arrow_table()
    merged = DeltaTable(str(Path(lake) / "posts")).to_pyarrow_table()
    columns = [name for name in reference.column_names if name != "date"]

    def rows(table: pa.Table) -> list[dict[str, object]]:
        return sorted(table.select(columns).to_pylist(), key=lambda r: str(r["uri"]))

    assert rows(merged) == rows(reference)
    assert merged.num_rows == len(set(merged["uri"].to_pylist()))
