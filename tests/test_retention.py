"""Retention (`compact --retain`, `retain()`): posts older than the cutoff (by created_at),
sightings and rejects (by their own time) are removed physically from every table, the
boundary day row by row, and with them the languages `tootlake enrich` detected for the posts
removed; the views agree, and after VACUUM no file of the lake holds them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tootlake.cli import main
from tootlake.lake.layout import LANGUAGES, POSTS, POSTS_ALL, REJECTS, SIGHTINGS
from tootlake.lake.maintenance import compact, retain
from tootlake.lake.reader import open_lake
from tootlake.lake.writer import LakeWriter
from tootlake.pipeline import replay

from .smalllake import write_inputs


def small_lake(tmp_path: Path) -> str:
    lake = str(tmp_path / "lake")
    jsonl, sse = write_inputs(tmp_path / "in")
    replay([jsonl], lake, sink=LakeWriter(lake, sightings=True))
    replay([sse], lake, observed_on="a.example")
    return lake


def uris(lake: str, view: str) -> set[str]:
    con = open_lake(lake)
    try:
        return {row[0] for row in con.execute(f"SELECT uri FROM {view}").fetchall()}
    finally:
        con.close()


def test_retain_removes_older_posts_by_created_at_to_the_second(tmp_path):
    lake = small_lake(tmp_path)
    before = uris(lake, "posts")
    assert "https://c.example/users/newsbot/statuses/4" in before  # 2023-02-04T09:00
    # the cutoff falls on 2023-02-04 09:02: the day before goes whole, the boundary day in part
    stats = retain(lake, 1, now=datetime(2023, 2, 5, 9, 2, tzinfo=UTC))
    kept = {
        "https://c.example/users/newsbot/statuses/5",  # 09:05
        "https://a.example/users/carol/statuses/6",
        "https://a.example/users/dave/statuses/7",
    }
    assert uris(lake, "posts") == kept
    assert uris(lake, "posts_all") == kept
    assert stats.removed[POSTS_ALL] >= 4 and stats.removed[POSTS] >= 3
    assert stats.removed[SIGHTINGS] == 0 and stats.removed[REJECTS] == 0  # seen today
    con = open_lake(lake)
    try:
        (old,) = con.execute(
            "SELECT count(*) FROM posts_all WHERE created_at < TIMESTAMPTZ '2023-02-04 09:02Z'"
        ).fetchone()
    finally:
        con.close()
    assert old == 0


def test_compact_retain_leaves_no_file_holding_an_expired_row(tmp_path):
    lake = small_lake(tmp_path)
    result = CliRunner().invoke(
        main, ["compact", "--lake", lake, "--retain", "0", "--retain-files", "0", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "Retention" in result.output
    for view in ("posts", "posts_all", "sightings"):
        assert uris(lake, view) == set(), view
    # every Parquet file left in the lake, listed by a commit or not, holds no row of them
    for path in Path(lake).rglob("*.parquet"):
        if "_delta_log" in path.parts:
            continue
        table = path.relative_to(lake).parts[0]
        assert table not in (POSTS, POSTS_ALL, SIGHTINGS, REJECTS) or (
            pq.read_table(path).num_rows == 0
        ), path


def test_compact_retain_keeps_what_is_younger(tmp_path):
    lake = small_lake(tmp_path)
    compact(lake)  # deleted posts' sightings go: what retention must keep is what is left
    before = {v: uris(lake, v) for v in ("posts", "sightings")}
    stats = compact(lake, retain_days=36500)
    assert stats.retention is not None and stats.retention.total == 0
    assert {v: uris(lake, v) for v in ("posts", "sightings")} == before


def test_retain_comes_from_the_config_file_and_is_checked(tmp_path, monkeypatch):
    lake = small_lake(tmp_path)
    config = tmp_path / "tootlake.toml"
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(config))
    monkeypatch.delenv("TOOTLAKE_RETAIN", raising=False)
    config.write_text('retain = "soon"\n', encoding="utf-8")
    bad = CliRunner().invoke(main, ["compact", "--lake", lake, "-q"])
    assert bad.exit_code == 1 and "Invalid retention 'soon'" in bad.output
    config.write_text("retain = 0\n", encoding="utf-8")
    done = CliRunner().invoke(main, ["compact", "--lake", lake, "-q", "--format", "json"])
    assert done.exit_code == 0, done.output
    assert '"retention": {' in done.output and uris(lake, "posts") == set()


BOB = "https://b.example/users/bob/statuses/3"  # deleted by the small lake's SSE capture


def enriched_small_lake(tmp_path: Path) -> str:
    """The small lake with a detected language for every post with text, bob's included:
    enriched before the capture that deletes his post is replayed."""
    pytest.importorskip("lingua")  # the `lang` extra
    from tootlake.lake.enrich import enrich

    lake = str(tmp_path / "lake")
    jsonl, sse = write_inputs(tmp_path / "in")
    replay([jsonl], lake, sink=LakeWriter(lake, sightings=True))
    # every post with a letter gets a row (low accuracy: models load in a second)
    assert enrich(lake, min_letters=1, low_accuracy=True).examined == 6
    replay([sse], lake, observed_on="a.example")
    return lake


def test_retain_removes_the_detected_language_of_expired_posts(tmp_path):
    lake = enriched_small_lake(tmp_path)
    detected = uris(lake, LANGUAGES)
    assert BOB in detected and len(detected) == 6
    stats = retain(lake, 1, now=datetime(2023, 2, 5, 9, 2, tzinfo=UTC))
    kept = uris(lake, "posts_all")  # newsbot's 09:05 post, carol's and dave's (no text)
    assert len(kept) == 3
    assert uris(lake, LANGUAGES) == detected & kept
    assert stats.removed[LANGUAGES] == len(detected - kept) == 4
    # a second run has nothing left to remove
    assert retain(lake, 1, now=datetime(2023, 2, 5, 9, 2, tzinfo=UTC)).removed[LANGUAGES] == 0


def test_compaction_and_retention_leave_no_file_holding_a_removed_language(tmp_path):
    """Compaction removes a deleted post's language, retention the expired ones'; after
    VACUUM no Parquet file of `languages` (listed by a commit or not) holds a row."""
    lake = enriched_small_lake(tmp_path)
    detected = uris(lake, LANGUAGES)
    stats = compact(lake)
    assert stats.languages_removed == 1
    assert uris(lake, LANGUAGES) == detected - {BOB}
    result = CliRunner().invoke(
        main, ["compact", "--lake", lake, "--retain", "0", "--retain-files", "0", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert uris(lake, LANGUAGES) == set()
    files = [p for p in (Path(lake) / LANGUAGES).rglob("*.parquet") if "_delta_log" not in p.parts]
    assert all(pq.read_table(path).num_rows == 0 for path in files), files
