"""Compaction, on a local lake and on S3 (a real moto server, see tests/lakes.py): the report is
the same before and after, edits and deletes are resolved, readers never see a half swap, and a
compaction that dies at any point leaves the lake as it was, for a rerun to finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import tootlake.sinks.compact as compact_module
from tootlake.analysis import open_lake
from tootlake.analysis.lake import POSTS_VIEW
from tootlake.analysis.report import build_report, report_as_dict
from tootlake.cli import main
from tootlake.errors import ConfigError, LakeError
from tootlake.pipeline import replay
from tootlake.sinks.compact import VERSION_ORDER, compact, parse_size
from tootlake.sinks.layout import DELETES, POSTS, SIGHTINGS, join
from tootlake.sinks.snapshot import read_snapshot
from tootlake.sinks.storage import storage_for

from . import lakes
from .conftest import REAL, real_lines
from .smalllake import status, write_inputs

lake_url = lakes.lake_url  # the fixture, for this module

BOB_URI = "https://b.example/users/bob/statuses/3"
ALICE_URI = "https://a.example/users/alice/statuses/1"
EDITED_URI = "https://a.example/users/alice/statuses/2"


def fill(lake: str, folder: Path) -> None:
    """Many small files: real statuses replayed in chunks of 8 (and once more whole, so every
    post is there twice), the small lake twice, its delete (by local id only) twice."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("mastodonsocial.json", "malformed.json"):
        lines = real_lines(name)
        for start in range(0, len(lines), 8):
            chunk = folder / f"{name}.{start}.jsonl"
            chunk.write_text("\n".join(lines[start : start + 8]) + "\n", encoding="utf-8")
            replay([chunk], lake, include_opted_out=True)
    replay([REAL / "mastodonsocial.json"], lake)
    for round_ in ("one", "two"):
        jsonl, sse = write_inputs(folder / round_)
        replay([jsonl], lake)
        replay([sse], lake, observed_on="a.example")


def report(lake: str) -> dict:
    return report_as_dict(build_report(lake))


def visible(lake: str, table: str = POSTS) -> list[str]:
    return read_snapshot(storage_for(lake), lake).paths(table)


def stored(lake: str, table: str = POSTS) -> list[str]:
    return storage_for(lake).list(join(lake, table))


def counts(lake: str) -> tuple[int, int, int]:
    con = open_lake(lake)
    row = con.execute(
        "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM posts_all), "
        "(SELECT count(*) FROM deletes)"
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def filled(lake_url, tmp_path) -> str:
    fill(lake_url, tmp_path / "input")
    return lake_url


def test_compaction_keeps_the_report_and_cuts_the_files(filled):
    before, files_before = report(filled), visible(filled)
    posts, versions, deletes = counts(filled)
    stats = compact(filled)
    assert report(filled) == before
    assert stats.partitions >= 5 and stats.files_after < stats.files_before
    assert len(visible(filled)) == 4 < len(files_before)  # one file per posts partition
    # One row per post: older versions, duplicates and deleted posts are gone; the report is
    # the same because the `posts` view did the same when reading.
    assert stats.posts_before == versions and stats.posts_after == posts
    assert counts(filled) == (posts, posts, deletes)
    # The replaced files stay on storage for readers that opened the lake before the swap,
    # until a run after their grace period deletes them.
    assert set(files_before) <= set(stored(filled))
    again = compact(filled, grace=0)
    assert again.partitions == 0 and again.deleted_files >= len(files_before)
    for table in (POSTS, DELETES, SIGHTINGS):
        assert sorted(stored(filled, table)) == sorted(visible(filled, table))
    assert report(filled) == before


def test_edits_and_deletes_are_resolved_and_deletes_are_kept(filled):
    deletes_before = counts(filled)[2]
    compact(filled, grace=0)
    con = open_lake(filled)

    def rows(sql: str) -> list[tuple]:
        return con.execute(sql).fetchall()

    # The edit wins, the original version is gone from the lake.
    edited = rows(f"SELECT text FROM posts_all WHERE uri = '{EDITED_URI}'")
    assert len(edited) == 1 and edited[0][0].startswith("Second post, edited")
    # The deleted post is gone, every delete event is kept.
    assert rows(f"SELECT count(*) FROM posts_all WHERE uri = '{BOB_URI}'") == [(0,)]
    assert counts(filled)[2] == deletes_before == 2
    # One row per post; the local copy of alice's post won, the remote one is a sighting.
    assert rows("SELECT count(*) - count(DISTINCT uri) FROM posts_all") == [(0,)]
    assert rows(f"SELECT observed_on, app FROM posts_all WHERE uri = '{ALICE_URI}'") == [
        ("a.example", "Ivory")
    ]
    assert ("z.example", "9001") in rows(
        f"SELECT observed_on, id FROM sightings WHERE uri = '{ALICE_URI}'"
    )


def test_a_late_copy_of_a_deleted_post_stays_deleted_after_compaction(filled, tmp_path):
    compact(filled, grace=0)
    # bob's post, deleted by its local id on a.example, arrives again from another instance
    late = tmp_path / "late.jsonl"
    copy = status(3, "bob", "b.example", "2023-02-03T11:30:00Z", "<p>Guten Tag</p>",
                  language="de", observed_on="z.example", local_id="7777")  # fmt: skip
    late.write_text(json.dumps({"observed_on": "z.example", "status": copy}) + "\n")
    replay([late], filled)
    con = open_lake(filled)
    assert con.execute(f"SELECT count(*) FROM posts_all WHERE uri = '{BOB_URI}'").fetchone() == (1,)
    assert con.execute(f"SELECT count(*) FROM posts WHERE uri = '{BOB_URI}'").fetchone() == (0,)


def test_a_late_delete_naming_a_compacted_away_copy_still_deletes(filled, tmp_path):
    compact(filled, grace=0)
    # alice's post 1 as z.example knows it (id 9001) is deleted there: that copy's row is gone,
    # its sighting remains, and the view resolves the delete through it.
    sse = tmp_path / "z.sse"
    sse.write_text("event: delete\ndata: 9001\n\n", encoding="utf-8")
    replay([sse], filled, observed_on="z.example")
    assert open_lake(filled).execute(
        f"SELECT count(*) FROM posts WHERE uri = '{ALICE_URI}'"
    ).fetchone() == (0,)


def test_a_concurrent_reader_sees_the_old_files_or_the_new_ones(filled, monkeypatch):
    old = counts(filled)
    posts, versions, deletes = old
    seen: list[tuple[int, int, int]] = []
    at_swap: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []
    done = threading.Event()
    write_query, commit = compact_module._write_query, compact_module._commit

    def slow_write(*args, **kwargs):  # give the reader time to read between the writes
        result = write_query(*args, **kwargs)
        time.sleep(0.2)
        return result

    def watched_commit(*args, **kwargs):  # read right before and right after the swap
        at_swap.append(counts(args[1]))
        commit(*args, **kwargs)
        at_swap.append(counts(args[1]))

    monkeypatch.setattr(compact_module, "_write_query", slow_write)
    monkeypatch.setattr(compact_module, "_commit", watched_commit)

    def read() -> None:
        try:
            while True:
                finished = done.is_set()
                seen.append(counts(filled))
                if finished:  # this read started after the swap
                    break
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        stats = compact(filled)
    finally:
        done.set()
        reader.join(timeout=300)
    assert not errors, errors
    new = (posts, stats.posts_after, deletes)
    assert versions == stats.posts_before and stats.posts_after < versions
    assert at_swap == [old, new]
    assert set(seen) <= {old, new}, set(seen)
    assert len(seen) >= 3 and seen[-1] == new == counts(filled)


def test_a_crash_before_the_swap_changes_nothing_and_a_rerun_cleans_up(filled, monkeypatch):
    before, files_before = report(filled), visible(filled)

    def crash(*args, **kwargs):
        raise RuntimeError("killed after writing the new files, before the swap")

    commit = compact_module._commit
    monkeypatch.setattr(compact_module, "_commit", crash)
    with pytest.raises(RuntimeError, match="before the swap"):
        compact(filled)
    assert visible(filled) == files_before and report(filled) == before
    orphans = [p for t in (POSTS, DELETES, SIGHTINGS) for p in stored(filled, t) if "compact@" in p]
    assert len(orphans) >= 4  # written, never listed in the manifest: invisible
    monkeypatch.setattr(compact_module, "_commit", commit)
    stats = compact(filled, grace=0)
    assert stats.orphans_deleted == len(orphans)
    assert report(filled) == before
    for table in (POSTS, DELETES, SIGHTINGS):
        assert not set(orphans) & set(stored(filled, table))
        assert sorted(stored(filled, table)) == sorted(visible(filled, table))


def test_a_crash_after_the_swap_changes_nothing_and_a_rerun_deletes_the_old_files(
    filled, monkeypatch
):
    before = report(filled)

    def crash(storage, path, version):
        raise RuntimeError("killed after the swap, before deleting the old files")

    delete = compact_module._delete_superseded
    monkeypatch.setattr(compact_module, "_delete_superseded", crash)
    with pytest.raises(RuntimeError, match="after the swap"):
        compact(filled, grace=0)
    assert report(filled) == before
    assert len(stored(filled)) > len(visible(filled))  # the old files are hidden, not gone
    monkeypatch.setattr(compact_module, "_delete_superseded", delete)
    stats = compact(filled, grace=0)
    assert stats.partitions == 0 and stats.deleted_files > 0
    assert sorted(stored(filled)) == sorted(visible(filled))
    assert report(filled) == before


KILL_MIDWAY = """
import os, sys
import tootlake.sinks.compact as c
real = c._write_query
calls = []
def write_then_die(*args, **kwargs):
    result = real(*args, **kwargs)
    calls.append(1)
    if len(calls) == 2:
        os._exit(9)  # SIGKILL-like: no finally, no lock release
    return result
c._write_query = write_then_die
c.compact(sys.argv[1])
"""


def test_a_killed_compaction_leaves_the_lake_as_it_was_and_the_next_one_takes_over(filled):
    before, files_before = report(filled), visible(filled)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_MIDWAY, filled],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert killed.returncode == 9, killed.stderr
    assert storage_for(filled).read(join(filled, "_tootlake", "compact.lock"))  # left behind
    assert visible(filled) == files_before and report(filled) == before
    stats = compact(filled, grace=0)  # the lock's process is gone: taken over
    assert stats.orphans_deleted == 2 and stats.partitions >= 5
    assert report(filled) == before
    assert sorted(stored(filled)) == sorted(visible(filled))


def test_a_running_compaction_holds_the_lock(filled):
    storage = storage_for(filled)
    holder = {"run": "x", "host": os.uname().nodename, "pid": os.getpid(),
              "started_at": "2099-01-01T00:00:00+00:00"}  # fmt: skip
    storage.write_atomic(join(filled, "_tootlake", "compact.lock"), json.dumps(holder).encode())
    with pytest.raises(LakeError, match="Another compaction holds .* --break-lock"):
        compact(filled)
    assert compact(filled, break_lock=True).partitions >= 5


def test_a_kafka_replay_after_compaction_only_adds_duplicates(lake_url, tmp_path):
    from tootlake.sinks.parquet import ParquetSink

    def write(lines: list[str], offset: int) -> None:
        path = tmp_path / f"batch{offset}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        sink = ParquetSink(lake_url, file_prefix="mastodon-topic+0")
        replay([path], lake_url, sink=sink)
        assert sink.stats.files  # flushed without an offset: rename to the offset name
        for written in sink.stats.paths:
            data = storage_for(lake_url).read(written)
            storage_for(lake_url).delete(written)
            folder = written.rsplit("/", 1)[0]
            storage_for(lake_url).write_atomic(
                f"{folder}/mastodon-topic+0+{offset:020d}.parquet", data
            )

    lines = real_lines("mastodonsocial.json")
    write(lines[:20], 0)
    first = counts(lake_url)[1]
    write(lines[20:], 20)
    before = report(lake_url)
    versions = counts(lake_url)[1]
    compact(lake_url)  # the offset files are superseded (still stored: grace)
    # The consumer restarts from offset 20 and batches differently: the file of offset 20 is
    # written again with other rows, while the old one is still stored and superseded.
    write(lines[20:30], 20)
    write(lines[30:], 30)
    assert report(lake_url) == before
    assert counts(lake_url)[1] == versions + (versions - first)  # offsets 20... twice
    compact(lake_url, grace=0)  # the rewritten file is new: merged, never deleted unread
    assert report(lake_url) == before
    posts, versions_after, _ = counts(lake_url)
    assert versions_after == posts == before["summary"]["posts"]


def test_dry_run_and_dates_choose_what_is_rewritten(filled):
    files = stored(filled)
    plan = compact(filled, dry_run=True)
    assert plan.partitions >= 5 and plan.files_after == 0 and stored(filled) == files
    one_day = compact(filled, dates=["2023-02-03"], grace=0)
    assert [p.partition for p in one_day.plans if p.table == POSTS] == ["posts/date=2023-02-03"]
    with pytest.raises(ConfigError, match="Invalid date '2023-02-30'"):
        compact(filled, dates=["2023-02-30"])


def test_target_size_splits_large_partitions(filled, monkeypatch):
    before = report(filled)
    monkeypatch.setattr(compact_module, "ROWS_PER_GROUP", 8)
    days = ["2022-11-21", "2022-11-24", "2023-02-03", "2023-02-04"]  # every file of them
    stats = compact(filled, target_bytes=parse_size("20KB"), dates=days)
    assert len(visible(filled)) > 4  # more than one file for the larger days
    assert stats.posts_after == counts(filled)[1]
    assert report(filled) == before


def test_compaction_orders_versions_as_the_posts_view():
    assert " ".join(VERSION_ORDER.split()) in " ".join(POSTS_VIEW.split())


def test_parse_size():
    assert parse_size("128MB") == 128 * 1024**2 == parse_size("128 MiB")
    assert parse_size("1.5g") == int(1.5 * 1024**3) and parse_size("4096") == 4096
    with pytest.raises(ConfigError, match="Invalid size 'lots'"):
        parse_size("lots")


def test_cli_compact(tmp_path):
    lake = str(tmp_path / "lake")
    fill(lake, tmp_path / "input")
    runner = CliRunner()
    dry = runner.invoke(main, ["compact", "--lake", lake, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would rewrite posts/date=2022-11-21:" in dry.output and "Dry run:" in dry.output
    done = runner.invoke(main, ["compact", "--lake", lake, "--grace", "0", "--format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["files_after"] >= 4
    bad = runner.invoke(main, ["compact", "--lake", lake, "--target-size", "huge"])
    assert bad.exit_code == 1 and "Invalid size 'huge'" in bad.output
    missing = runner.invoke(main, ["compact", "--lake", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "No lake at" in missing.output
    assert not (tmp_path / "nowhere").exists()


def _replay_statuses(lake: str, path: Path, observed_on: str, *statuses: dict) -> None:
    path.write_text("".join(json.dumps(s) + "\n" for s in statuses), encoding="utf-8")
    replay([path], lake, observed_on=observed_on)


def _posts_match_the_window_view(lake: str) -> list[tuple]:
    """The `posts` view of open_lake() (its shortcuts) row for row against POSTS_VIEW (the
    plain definition: a window over every row); returns the rows."""
    con = open_lake(lake)
    con.execute(POSTS_VIEW.replace("VIEW posts AS", "VIEW posts_reference AS"))
    columns = "uri, observed_on, id, edited_at, text"
    fast = con.execute(f"SELECT {columns} FROM posts ORDER BY uri").fetchall()
    reference = con.execute(f"SELECT {columns} FROM posts_reference ORDER BY uri").fetchall()
    assert fast == reference
    assert len({row[0] for row in fast}) == len(fast)
    return fast


def test_readers_trust_compaction_only_where_it_checked_that_posts_are_unique(lake_url, tmp_path):
    """Compaction records whether its files hold each uri once; readers then look for versions
    only where uncompacted files are involved. An edit after compaction, and a copy of a post
    that a lying server dated another day (so it lands in another partition), still give one
    row per post, the latest version."""
    uri = "https://z.example/users/zed/statuses/900"
    original = status(900, "zed", "z.example", "2023-02-03T10:00:00.000Z", "<p>zed v1</p>")
    other = status(901, "zed", "z.example", "2023-02-04T10:00:00.000Z", "<p>another</p>")
    _replay_statuses(lake_url, tmp_path / "a.jsonl", "z.example", original, other)
    jsonl, sse = write_inputs(tmp_path / "small")
    replay([jsonl], lake_url)
    replay([sse], lake_url, observed_on="a.example")
    compact(lake_url, grace=0)
    manifest = read_snapshot(storage_for(lake_url), lake_url).manifest
    assert manifest.unique_posts
    _posts_match_the_window_view(lake_url)

    # An edit arrives after compaction: an uncompacted file holds the uri's newer version.
    edit = {**original, "content": "<p>zed v2</p>", "edited_at": "2023-02-03T11:00:00.000Z"}
    _replay_statuses(lake_url, tmp_path / "b.jsonl", "z.example", edit)
    rows = _posts_match_the_window_view(lake_url)
    assert [r[4] for r in rows if r[0] == uri] == ["zed v2"]

    # Another server's copy, dated a day later: another partition.
    lying = {**edit, "id": "5555", "created_at": "2023-02-05T09:00:00.000Z"}
    _replay_statuses(lake_url, tmp_path / "c.jsonl", "y.example", lying)
    _posts_match_the_window_view(lake_url)
    compact(lake_url, grace=0)  # the edit's day: its two files (the 5th has one: left alone)
    assert read_snapshot(storage_for(lake_url), lake_url).manifest.unique_posts
    _posts_match_the_window_view(lake_url)
    compact(lake_url, grace=0, dates=["2023-02-05"])  # two days' files hold the uri now
    assert not read_snapshot(storage_for(lake_url), lake_url).manifest.unique_posts
    rows = _posts_match_the_window_view(lake_url)
    assert [r[4] for r in rows if r[0] == uri] == ["zed v2"]
