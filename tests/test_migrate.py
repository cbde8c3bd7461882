"""`tootlake migrate`: a lake written by the tootlake before Delta tables (commit 144ae0a,
tests/fixtures/old-lake, see its README) becomes Delta tables whose report is the one the old
code made (tests/fixtures/old-lake-report.json), byte for byte, and whose views hold the very
rows the old reader read (tests/fixtures/old-lake-tables.json); on a local folder and on S3
(moto); a migration that dies at any step leaves the old lake to a rerun, which finishes with
the same lake."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import tootlake.lake.migrate as migrate_module
from tootlake.analysis import open_lake
from tootlake.analysis.report import _json as report_json
from tootlake.cli import main
from tootlake.errors import LakeError
from tootlake.lake import tables
from tootlake.lake.layout import POSTS_ALL
from tootlake.lake.migrate import migrate
from tootlake.lake.reader import old_layout

from . import lakes
from .conftest import FIXTURES

GROUP_BYTES = migrate_module.GROUP_BYTES

s3_lake = lakes.s3_lake  # the fixture, for this module

OLD_LAKE = FIXTURES / "old-lake"
OLD_REPORT = (FIXTURES / "old-lake-report.json").read_text(encoding="utf-8")
OLD_TABLES = json.loads((FIXTURES / "old-lake-tables.json").read_text(encoding="utf-8"))

# What the old code's views held, as rows and a digest of them (the old code answered this
# same SQL to make tests/fixtures/old-lake-tables.json; both set TimeZone to UTC).
POST_COLUMNS = [
    "uri", "id", "observed_on", "origin", "url", "created_at", "edited_at", "ingested_at",
    "language", "app", "acct", "username", "display_name", "bot", "text", "characters",
    "words", "tags", "mentions_count", "media_count", "favourites_count", "reblogs_count",
    "replies_count", "sensitive", "spoiler_text", "visibility", "in_reply_to_id", "local",
    "account_id", "account_created_at", "followers_count", "in_reply_to_account_id",
    "app_website", "has_poll", "has_card", "emojis_count", "opted_out",
]  # fmt: skip
# Columns added after the old layout (issues 12 and 13): the old files lack them, so
# migrate fills them with NULL
NEWER_COLUMNS = sorted([
    "mentions", "in_reply_to_acct", "quote_uri", "quote_state", "quotes_count", "indexable",
    "discoverable", "locked", "group", "moved_to", "consent",
])  # fmt: skip
VIEW_COLUMNS = {
    "posts_all": POST_COLUMNS,
    "posts": POST_COLUMNS,
    "deletes": ["observed_on", "id", "uri", "deleted_at"],
    "sightings_all": ["uri", "observed_on", "id", "seen_at"],
    "sightings": ["uri", "observed_on", "id", "seen_at"],
    "rejects": ["rejected_at", "source", "observed_on", "where", "reason", "field", "raw"],
}
DIGEST_SQL = "\nUNION ALL\n".join(
    f"SELECT '{view}' AS view, count(*) AS rows, "
    f"md5(coalesce(string_agg(r, chr(10) ORDER BY r), '')) AS md5 FROM "
    f"(SELECT CAST(ROW({', '.join(chr(34) + c + chr(34) for c in cols)}) AS VARCHAR) AS r "
    f"FROM {view})"
    for view, cols in VIEW_COLUMNS.items()
)
OLD_TABLE_FOLDERS = ("posts", "deletes", "sightings", "rejects")


def digests(lake: str) -> dict[str, dict[str, Any]]:
    con = open_lake(lake)
    try:
        rows = con.execute(DIGEST_SQL).fetchall()
    finally:
        con.close()
    return {view: {"rows": n, "md5": md5} for view, n, md5 in rows}


def report_text(lake: str) -> str:
    """The report's JSON, of the sections the old code's report had, as the CLI prints them
    (a newer tootlake adds sections after those: issue 13's)."""
    result = CliRunner().invoke(main, ["report", "--lake", lake, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    return report_json({name: report[name] for name in json.loads(OLD_REPORT)}) + "\n"


def restore_mtimes(lake: Path) -> int:
    """Give each file that the old manifest marks as replaced (and that is still on disk) the
    mtime the manifest knows it by. The old reader matched replaced files by path AND version
    (mtime in ns), and git keeps no mtimes: without this, a checkout of the fixture is a lake
    whose replaced files the old code would read again (`mtimes_lost` in old-lake-tables.json)."""
    manifest = json.loads((lake / "_tootlake" / "manifest.json").read_text(encoding="utf-8"))
    restored = 0
    for rel, entry in manifest["superseded"].items():
        path = lake / rel
        if entry["deleted_at"] is None and path.exists():
            assert path.stat().st_size == entry["size"]
            os.utime(path, ns=(int(entry["version"]), int(entry["version"])))
            restored += 1
    return restored


def copy_old_lake(target: Path, *, keep_mtimes: bool = True) -> str:
    shutil.copytree(OLD_LAKE, target)
    (target / "README.md").unlink()
    if keep_mtimes:
        assert restore_mtimes(target) == 14  # the 14 files the one compaction replaced
    else:
        for path in target.rglob("*.parquet"):
            os.utime(path)
    return str(target)


@pytest.fixture
def old_lake(tmp_path: Path) -> str:
    return copy_old_lake(tmp_path / "lake")


def assert_migrated(lake: str, *, local: bool = True) -> None:
    """The lake is the old one in Delta tables: same report, same rows, nothing left over."""
    assert not old_layout(lake)
    assert report_text(lake) == OLD_REPORT
    assert digests(lake) == OLD_TABLES["as_written"]
    if local:
        meta = Path(lake) / "_tootlake"
        assert sorted(p.name for p in meta.iterdir()) == ["runs", "state"]
        for table in ("posts_all", "posts", "deletes", "sightings", "rejects"):
            assert (Path(lake) / table / "_delta_log").is_dir(), table


# ----------------------------------------------------------------------------------------
# the report and the rows


def test_report_and_rows_are_the_old_codes_after_migration(old_lake):
    assert old_layout(old_lake)
    result = CliRunner().invoke(main, ["migrate", old_lake])
    assert result.exit_code == 0, result.output
    assert f"Migrated {old_lake} to Delta tables: 17 old files converted" in result.output
    assert "15 files that compaction had replaced left out" in result.output
    assert_migrated(old_lake)
    # each table is a plain Delta table: every reader sees these rows, with `date`
    posts_all = tables.load(old_lake, POSTS_ALL).to_pyarrow_table()
    assert posts_all.num_rows == OLD_TABLES["as_written"]["posts_all"]["rows"]
    assert posts_all.schema == tables.table_schema(POSTS_ALL)
    # a second run has nothing to do, and says so
    again = CliRunner().invoke(main, ["migrate", "--lake", old_lake])
    assert again.exit_code == 0, again.output
    assert again.output == f"Nothing to migrate: the lake {old_lake} is not in the old layout.\n"


def test_the_old_layout_is_refused_by_the_reading_commands(old_lake):
    for command in (["report"], ["sql", "SELECT count(*) FROM posts"]):
        result = CliRunner().invoke(main, [*command, "--lake", old_lake])
        assert result.exit_code == 1
        assert result.output.startswith(
            f"Error: The lake {old_lake} has the layout before Delta tables"
        )
        assert f"tootlake migrate {old_lake}" in result.output
        assert "Traceback" not in result.output


def test_library_stats_and_keep_old(old_lake):
    seen: list[str] = []
    stats = migrate(old_lake, keep_old=True, on_progress=lambda p: seen.append(p.step))
    assert stats.migrated and not stats.resumed
    assert stats.files == {"deletes": 4, "sightings": 5, "rejects": 1, "posts_all": 7}
    expected = OLD_TABLES["as_written"]
    assert stats.rows == {
        "posts_all": expected["posts_all"]["rows"],
        "posts": expected["posts"]["rows"],
        "deletes": expected["deletes"]["rows"],
        "sightings": expected["sightings_all"]["rows"],
        "rejects": expected["rejects"]["rows"],
    }
    assert stats.files_left_out == 15 and stats.replaced_but_changed == 0
    assert stats.columns_filled == {"posts_all": NEWER_COLUMNS, "deletes": ["reason"]}
    assert stats.columns_dropped == {}
    assert sorted(set(seen)) == ["cleanup", "convert", "merge", "swap"]
    # the old files, every one, under _tootlake/old-layout
    kept = Path(old_lake) / "_tootlake" / "old-layout"
    assert stats.old_files == str(kept)
    for folder in OLD_TABLE_FOLDERS:
        before = sorted(p.relative_to(OLD_LAKE) for p in (OLD_LAKE / folder).rglob("*"))
        assert sorted(p.relative_to(kept) for p in (kept / folder).rglob("*")) == before
    assert (kept / "manifest.json").is_file()
    assert report_text(old_lake) == OLD_REPORT
    assert not migrate(old_lake).migrated  # old-layout/ is not an old layout


def test_a_copy_that_lost_mtimes_is_migrated_as_the_old_code_read_it(tmp_path, caplog):
    """Copied without times, the files the manifest replaced are read again by the old code
    (it matched them by mtime): migrate converts what the old code read, and says so."""
    lake = copy_old_lake(tmp_path / "lake", keep_mtimes=False)
    stats = migrate(lake)
    assert stats.replaced_but_changed == 14 and stats.files_left_out == 1
    assert caplog.text.count("rewritten since") == 1  # (once, not at each listing)
    assert digests(lake) == OLD_TABLES["mtimes_lost"]
    assert report_text(lake) == OLD_REPORT


def test_old_files_without_newer_columns_get_nulls_and_defaults(old_lake):
    # a post file of an older tootlake: without the columns added since
    path = next((Path(old_lake) / "posts" / "date=2022-11-06").glob("*.parquet"))
    old = pq.read_table(path)
    gone = ["app_website", "emojis_count", "opted_out"]
    pq.write_table(old.drop_columns(gone), path, compression="zstd")
    stats = migrate(old_lake)
    assert stats.columns_filled == {
        "posts_all": sorted(gone + NEWER_COLUMNS),
        "deletes": ["reason"],
    }
    con = open_lake(old_lake)
    rows = con.execute(
        "SELECT count(*), count(app_website), sum(emojis_count), count(*) FILTER (opted_out), "
        "count(opted_out) FROM posts_all WHERE date = DATE '2022-11-06'"
    ).fetchall()[0]
    assert rows == (old.num_rows, 0, 0, 0, old.num_rows)  # NULL where it may be, else defaults
    result = CliRunner().invoke(main, ["migrate", old_lake])
    assert "Nothing to migrate" in result.output


def test_nothing_to_migrate_and_no_lake(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["migrate", str(empty)])
    assert result.exit_code == 0
    assert "Nothing to migrate" in result.output
    result = CliRunner().invoke(main, ["migrate", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "No lake at" in result.output
    result = CliRunner().invoke(main, ["migrate", str(empty), "--lake", str(tmp_path / "other")])
    assert result.exit_code == 2 and "Two lakes given" in result.output
    json_out = CliRunner().invoke(main, ["migrate", str(empty), "--format", "json"])
    assert json.loads(json_out.output)["migrated"] is False


def test_old_files_without_posts_are_migrated_too(tmp_path):
    """A lake of the old layout that holds only rejects (a replay of nothing but bad lines):
    the reading commands do not see an old layout there, migrate does."""
    lake = tmp_path / "lake"
    shutil.copytree(OLD_LAKE / "rejects", lake / "rejects")
    stats = migrate(str(lake))
    assert stats.migrated and stats.rows == {"rejects": 1}
    assert digests(str(lake))["rejects"] == OLD_TABLES["as_written"]["rejects"]


def test_a_migration_leaves_a_row_in_the_audit_table(old_lake):
    """The run that migrates says so in the new lake's audit table (the rows of posts_all it
    converted, and its statistics); a run with nothing to migrate wrote nothing, no row."""
    stats = migrate(old_lake)
    assert not migrate(old_lake).migrated
    con = open_lake(old_lake)
    try:
        rows = con.execute(
            "SELECT command, posts, stats_json, tootlake_version FROM audit"
        ).fetchall()
    finally:
        con.close()
    assert len(rows) == 1
    command, posts, stats_json, version = rows[0]
    assert command == "migrate" and version
    assert posts == stats.rows["posts_all"] == OLD_TABLES["as_written"]["posts_all"]["rows"]
    recorded = json.loads(stats_json)
    assert recorded["files"] == stats.files and recorded["rows"] == stats.rows
    assert recorded["migrated"] is True and recorded["files_left_out"] == 15


def test_a_lake_with_both_layouts_is_refused(old_lake):
    empty = tables.table_schema(POSTS_ALL).empty_table()
    tables.append(old_lake, POSTS_ALL, empty, transactions=[("a new writer", 1)])
    with pytest.raises(LakeError, match="is a Delta table already"):
        migrate(old_lake)
    assert old_layout(old_lake)


# ----------------------------------------------------------------------------------------
# crashes


class Crash(Exception):
    pass


def crash_at(monkeypatch: pytest.MonkeyPatch, name: str, nth: int = 1) -> None:
    """The next run dies the `nth` time it reaches the step `name`."""
    seen = {"n": 0}

    def step(reached: str) -> None:
        if reached == name:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Crash(name)

    monkeypatch.setattr(migrate_module, "_step", step)


def no_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps as they are, commits as large as they are (not `monkeypatch.undo()`: that would
    undo the clean environment of conftest.py and the S3 settings too)."""
    monkeypatch.setattr(migrate_module, "_step", lambda name: None)
    monkeypatch.setattr(migrate_module, "GROUP_BYTES", GROUP_BYTES)


CRASH_STEPS = [
    "started",
    "converted deletes 1/4",
    "converted sightings 3/5",
    "converted rejects 1/1",
    "converted posts_all 1/7",
    "converted posts_all 4/7",
    "converted posts_all 7/7",
    "converted",
    "moved old deletes",
    "installed deletes",
    "installed sightings",
    "moved old rejects",
    "moved old posts",
    "moved manifest",
    "swapped",
    "merged",
    "deleted old files",
]


@pytest.mark.parametrize("step", CRASH_STEPS)
def test_a_crash_at_any_step_leaves_the_old_lake_to_a_rerun(old_lake, monkeypatch, step):
    monkeypatch.setattr(migrate_module, "GROUP_BYTES", 1)  # one old file per commit
    crash_at(monkeypatch, step)
    with pytest.raises(Crash):
        migrate(old_lake)
    no_crash(monkeypatch)
    before_manifest = CRASH_STEPS.index(step) < CRASH_STEPS.index("moved manifest")
    # until the old files are out of the way, readers still say to migrate: none sees a
    # half-converted lake; after, the lake reads whole
    assert old_layout(old_lake) == before_manifest
    if before_manifest:
        refused = CliRunner().invoke(main, ["report", "--lake", old_lake])
        assert refused.exit_code == 1 and "tootlake migrate" in refused.output
    else:
        assert report_text(old_lake) == OLD_REPORT
    stats = migrate(old_lake)
    assert stats.migrated and stats.resumed
    assert_migrated(old_lake)


def test_a_crash_at_every_step_in_turn(old_lake, monkeypatch):
    """Each run dies at the first step no run died at before: one run per step of the whole
    migration, each carrying on where the last one stopped."""
    monkeypatch.setattr(migrate_module, "GROUP_BYTES", 1)
    crashed: list[str] = []

    def step(name: str) -> None:
        if name not in crashed:
            crashed.append(name)
            raise Crash(name)

    monkeypatch.setattr(migrate_module, "_step", step)
    for _run in range(100):
        try:
            stats = migrate(old_lake)
            break
        except Crash:
            # readers refuse the lake until its old files are out of the way, then read it
            assert old_layout(old_lake) == ("moved manifest" not in crashed)
    # the last crash was after the last step: the run after it finds nothing to do
    assert crashed[-1] == "done" and not stats.migrated
    assert len(crashed) == 31, crashed  # started, 17 commits, converted, 7 moves and the
    # manifest's, swapped, merged, deleted old files, done
    no_crash(monkeypatch)
    assert_migrated(old_lake)


def test_a_file_of_many_row_groups_is_converted_in_several_commits(old_lake, monkeypatch):
    # the compacted posts file, rewritten in row groups of 10 rows (its mtime stays: the
    # manifest lists it as live by name)
    path = next((Path(old_lake) / "posts" / "date=2026-12-04").glob("compact@*e836ea*.parquet"))
    data = pq.read_table(path)
    pq.write_table(data, path, compression="zstd", row_group_size=10)
    groups = -(-data.num_rows // 10)
    monkeypatch.setattr(migrate_module, "GROUP_BYTES", 1)
    # the file is the third of posts: its first commits are "2/7" too (two files done)
    crash_at(monkeypatch, "converted posts_all 2/7", nth=4)  # after 3 of its row groups
    with pytest.raises(Crash):
        migrate(old_lake)
    no_crash(monkeypatch)
    monkeypatch.setattr(migrate_module, "GROUP_BYTES", 1)
    assert migrate(old_lake).resumed
    history = tables.load(old_lake, POSTS_ALL).history()
    assert len(history) == 7 - 1 + groups
    assert_migrated(old_lake)


def test_crashes_in_a_row_and_a_failed_commit(old_lake, monkeypatch):
    """A read that fails inside a commit (files written, no commit), then a crash in the next
    run, then a run that finishes: every row once."""
    monkeypatch.setattr(migrate_module, "GROUP_BYTES", 1)
    real_read = migrate_module._Run._read
    calls = {"n": 0}

    def failing_read(self: Any, rel: str, groups: Any, metadata: Any) -> Any:
        calls["n"] += 1
        yield from real_read(self, rel, groups, metadata)
        if calls["n"] == 13:  # posts_all's third file, after its rows went to the writer
            raise OSError("disk on fire")

    monkeypatch.setattr(migrate_module._Run, "_read", failing_read)
    with pytest.raises(LakeError, match="disk on fire"):
        migrate(old_lake)
    monkeypatch.setattr(migrate_module._Run, "_read", real_read)
    crash_at(monkeypatch, "installed sightings")
    with pytest.raises(Crash):
        migrate(old_lake)
    no_crash(monkeypatch)
    assert migrate(old_lake).resumed
    assert_migrated(old_lake)


def test_a_lake_that_changes_meanwhile_is_converted_again(old_lake, monkeypatch):
    monkeypatch.setattr(migrate_module, "GROUP_BYTES", 1)
    crash_at(monkeypatch, "converted posts_all 3/7")
    with pytest.raises(Crash):
        migrate(old_lake)
    no_crash(monkeypatch)
    # an old writer still running: one more posts file
    day = Path(old_lake) / "posts" / "date=2025-07-17"
    source = next(day.glob("part-*.parquet"))
    shutil.copy(source, day / "part-20261204T040000000000Z-late0000.parquet")
    added = pq.read_metadata(source).num_rows
    steps: list[str] = []
    monkeypatch.setattr(migrate_module, "_step", steps.append)
    stats = migrate(old_lake)
    assert stats.resumed and "restarted" in steps
    expected = OLD_TABLES["as_written"]["posts_all"]["rows"] + added
    assert stats.rows["posts_all"] == expected
    assert digests(old_lake)["posts_all"]["rows"] == expected
    assert report_text(old_lake) == OLD_REPORT  # the same posts, twice: folded away


def test_a_writer_during_the_conversion_stops_the_migration_before_anything_moves(
    old_lake, monkeypatch
):
    day = Path(old_lake) / "posts" / "date=2025-07-17"
    source = next(day.glob("part-*.parquet"))
    added = pq.read_metadata(source).num_rows

    def write_meanwhile(name: str) -> None:
        if name == "converted posts_all 7/7":  # an old writer still running
            shutil.copy(source, day / "part-20261204T040000000000Z-late0000.parquet")

    monkeypatch.setattr(migrate_module, "_step", write_meanwhile)
    with pytest.raises(LakeError, match="changed while it was being converted: stop every"):
        migrate(old_lake)
    assert old_layout(old_lake)
    assert not (Path(old_lake) / "_tootlake" / "old-layout").exists()
    no_crash(monkeypatch)
    stats = migrate(old_lake)  # converts again, from the start
    assert stats.rows["posts_all"] == OLD_TABLES["as_written"]["posts_all"]["rows"] + added
    assert report_text(old_lake) == OLD_REPORT


# ----------------------------------------------------------------------------------------
# S3


def upload_old_lake(s3_url: str) -> None:
    """The fixture put on S3 as the old code would have left it there: every file, and a
    manifest that knows the replaced files by their ETags (as the old S3 storage did)."""
    from tootlake.lake.s3 import S3Storage, split_url

    storage = S3Storage(s3_url)
    bucket, prefix = split_url(s3_url)
    manifest = json.loads((OLD_LAKE / "_tootlake" / "manifest.json").read_text(encoding="utf-8"))
    for path in sorted(OLD_LAKE.rglob("*")):
        rel = path.relative_to(OLD_LAKE).as_posix()
        if path.is_file() and rel not in ("README.md", "_tootlake/manifest.json"):
            storage.client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=path.read_bytes())
    etags = {
        info.path.removeprefix(s3_url + "/"): info.version
        for folder in OLD_TABLE_FOLDERS
        for info in storage.list_info(f"{s3_url}/{folder}")
    }
    for rel, entry in manifest["superseded"].items():
        if rel in etags:
            entry["version"] = etags[rel]
    body = json.dumps(manifest, indent=1).encode()
    storage.client.put_object(Bucket=bucket, Key=f"{prefix}/_tootlake/manifest.json", Body=body)


def s3_keys(s3_url: str, folder: str) -> list[str]:
    from tootlake.lake.s3 import S3Storage, split_url

    storage = S3Storage(s3_url)
    bucket, prefix = split_url(s3_url)
    pages = storage.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/{folder}/"
    )
    return [obj["Key"] for page in pages for obj in page.get("Contents", ())]


def test_s3_lake_is_migrated_with_the_same_report_and_rows(s3_lake):
    upload_old_lake(s3_lake)
    assert old_layout(s3_lake)
    refused = CliRunner().invoke(main, ["report", "--lake", s3_lake])
    assert refused.exit_code == 1 and f"tootlake migrate {s3_lake}" in refused.output
    result = CliRunner().invoke(main, ["migrate", s3_lake, "--format", "json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["files"] == {"deletes": 4, "sightings": 5, "rejects": 1, "posts_all": 7}
    assert stats["files_left_out"] == 15 and stats["replaced_but_changed"] == 0
    assert_migrated(s3_lake, local=False)
    assert s3_keys(s3_lake, "_tootlake/migrate") == []
    assert s3_keys(s3_lake, "_tootlake/old-layout") == []
    assert s3_keys(s3_lake, "_tootlake/manifest.json") == []
    again = CliRunner().invoke(main, ["migrate", s3_lake])
    assert again.exit_code == 0 and "Nothing to migrate" in again.output


@pytest.mark.parametrize("step", ["converted posts_all 7/7", "installed sightings", "merged"])
def test_s3_crash_and_rerun(s3_lake, monkeypatch, step):
    upload_old_lake(s3_lake)
    crash_at(monkeypatch, step)
    with pytest.raises(Crash):
        migrate(s3_lake, keep_old=True)
    no_crash(monkeypatch)
    assert old_layout(s3_lake) == (step != "merged")
    stats = migrate(s3_lake, keep_old=True)
    assert stats.resumed
    assert_migrated(s3_lake, local=False)
    kept = s3_keys(s3_lake, "_tootlake/old-layout")
    assert len([key for key in kept if key.endswith(".parquet")]) == len(
        list(OLD_LAKE.glob("*/date=*/*.parquet"))
    )


def test_s3_crash_in_the_middle_of_moving_objects(s3_lake, monkeypatch):
    """S3 has no rename: a folder moves object by object, and a crash can leave it half
    moved (here: halfway through installing the staged sightings)."""
    upload_old_lake(s3_lake)
    real_move = migrate_module._Run._move_file
    calls = {"n": 0}

    def move_file(self: Any, src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 22:
            raise Crash(src)
        real_move(self, src, dst)

    monkeypatch.setattr(migrate_module._Run, "_move_file", move_file)
    with pytest.raises(Crash, match="_tootlake/migrate/sightings/"):
        migrate(s3_lake)
    monkeypatch.setattr(migrate_module._Run, "_move_file", real_move)
    assert old_layout(s3_lake)
    assert migrate(s3_lake).resumed
    assert_migrated(s3_lake, local=False)
