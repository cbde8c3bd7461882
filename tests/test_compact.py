"""Compaction = Delta maintenance (`tootlake.lake.maintenance.compact`), on a local lake and on
S3 (a real moto server, see tests/lakes.py): every view and the report give the same answers
before and after, deleted posts are physically gone, OPTIMIZE cuts the files, VACUUM deletes
replaced files only past --retain-files, every log gets a checkpoint, no table ever needs
more than reader version 1 (no deletion vectors), readers opened before keep reading, and a
compaction that dies at any step leaves a lake that reads the same, which a rerun finishes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from deltalake.table import TableOptimizer

import tootlake.lake.maintenance as maintenance
from tootlake.analysis.report import build_report, report_as_dict
from tootlake.cli import main
from tootlake.errors import ConfigError
from tootlake.lake import tables
from tootlake.lake.enrich import LANGUAGES_SCHEMA
from tootlake.lake.layout import DELETES, LANGUAGES, POSTS, POSTS_ALL, REJECTS, SIGHTINGS, join
from tootlake.lake.maintenance import compact, merge_posts, parse_duration
from tootlake.lake.reader import _merged_is_current, open_lake, read_files
from tootlake.lake.storage import storage_for
from tootlake.lake.writer import LakeWriter
from tootlake.pipeline import replay
from tootlake.settings import parse_size

from . import lakes
from .conftest import REAL, real_lines
from .smalllake import status, write_inputs

lake_url = lakes.lake_url  # the fixture, for this module

BOB_URI = "https://b.example/users/bob/statuses/3"
ALICE_URI = "https://a.example/users/alice/statuses/1"
EDITED_URI = "https://a.example/users/alice/statuses/2"
TABLES = (POSTS_ALL, POSTS, DELETES, SIGHTINGS, REJECTS)


def fill(lake: str, folder: Path) -> None:
    """Many small files in every table: real statuses replayed in chunks of 8 (and once more
    whole, so every post is there twice), the small lake twice with a sighting per post, its
    delete (by local id only) twice. The second round is not merged: compaction has a tail
    of `posts_all` to merge, and a delete."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("mastodonsocial.json", "malformed.json"):
        lines = real_lines(name)
        for start in range(0, len(lines), 8):
            chunk = folder / f"{name}.{start}.jsonl"
            chunk.write_text("\n".join(lines[start : start + 8]) + "\n", encoding="utf-8")
            replay([chunk], lake, include_opted_out=True, merge=False)
    replay([REAL / "mastodonsocial.json"], lake)
    for round_ in ("one", "two"):
        jsonl, sse = write_inputs(folder / round_)
        merged = round_ == "one"
        replay([jsonl], lake, sink=LakeWriter(lake, sightings=True), merge=merged)
        replay([sse], lake, observed_on="a.example", merge=merged)


def report(lake: str) -> dict:
    return report_as_dict(build_report(lake))


def answers(lake: str) -> dict[str, Any]:
    """What a user sees: the report, every row of `posts`, every version of the posts that
    are not deleted, every delete event (its uri aside: compaction fills it in), and the
    sightings of posts that are not deleted (those of deleted posts are removed)."""
    con = open_lake(lake)

    def rows(sql: str) -> list[tuple]:
        return con.execute(sql).fetchall()

    try:
        return {
            "report": report(lake),
            "posts": rows("SELECT * FROM posts ORDER BY uri"),
            "versions": rows(
                "SELECT * FROM posts_all WHERE uri IN (SELECT uri FROM posts) "
                "ORDER BY uri, ingested_at, observed_on"
            ),
            "deletes": rows(
                "SELECT observed_on, id, deleted_at, date FROM deletes ORDER BY deleted_at, id"
            ),
            "sightings": rows(
                "SELECT * FROM sightings WHERE uri IN (SELECT uri FROM posts) "
                "ORDER BY uri, observed_on, id"
            ),
            "rejects": rows('SELECT * FROM rejects ORDER BY rejected_at, "where"'),
        }
    finally:
        con.close()


def deleted_uris(lake: str) -> set[str]:
    """The uris in posts_all that deletes remove (by uri or by a copy's (instance, id))."""
    con = open_lake(lake)
    try:
        return {
            uri
            for (uri,) in con.execute(
                "SELECT DISTINCT uri FROM posts_all EXCEPT SELECT uri FROM posts"
            ).fetchall()
        }
    finally:
        con.close()


def storage_options(lake: str) -> dict[str, str] | None:
    """delta-rs' options for the test S3 server, from the environment lakes.py sets."""
    if not lake.startswith("s3://"):
        return None
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": os.environ["AWS_REGION"],
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
    }


def delta(lake: str, table: str) -> DeltaTable:
    """The table as delta-rs alone reads it (no tootlake code)."""
    return DeltaTable(join(lake, table), storage_options=storage_options(lake))


def live_files(lake: str, table: str) -> set[str]:
    """The data files the table's current version lists."""
    return set(delta(lake, table).file_uris())


def stored_files(lake: str, table: str) -> set[str]:
    """The data files on storage (not the log's checkpoints)."""
    listed = storage_for(lake).list(join(lake, table))
    return {path for path in listed if "/_delta_log/" not in path}


def log_actions(lake: str, table: str) -> list[dict[str, Any]]:
    """Every action of every commit in the table's log (its JSON files)."""
    storage = storage_for(lake)
    actions = []
    for path in storage.list(join(lake, table, "_delta_log"), suffix=".json"):
        text = storage.read(path).decode()
        actions += [json.loads(line) for line in text.splitlines() if line.strip()]
    return actions


def assert_plain_delta(lake: str) -> None:
    """Reader version 1, no table features, no deletion vector in any commit: every Delta
    reader (Spark, Trino, polars, DuckDB, pandas) reads exactly the live rows."""
    for table in TABLES:
        protocol = delta(lake, table).protocol()
        assert protocol.min_reader_version == 1, (table, protocol)
        assert protocol.min_writer_version <= 2, (table, protocol)
        assert not protocol.reader_features and not protocol.writer_features, (table, protocol)
        for action in log_actions(lake, table):
            assert not (action.get("add") or {}).get("deletionVector"), (table, action)
            assert not (action.get("remove") or {}).get("deletionVector"), (table, action)
            if "protocol" in action:
                assert action["protocol"]["minReaderVersion"] == 1, (table, action)
            if "metaData" in action:
                configuration = action["metaData"].get("configuration") or {}
                assert "delta.enableDeletionVectors" not in configuration, (table, action)


def checkpoints(lake: str, table: str) -> list[str]:
    return storage_for(lake).list(join(lake, table, "_delta_log"), suffix=".checkpoint.parquet")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A local lake filled once, with its answers before any compaction."""
    base = tmp_path_factory.mktemp("pristine")
    fill(str(base / "lake"), base / "input")
    return base / "lake", answers(str(base / "lake"))


@pytest.fixture
def filled(pristine: tuple[Path, dict[str, Any]], tmp_path: Path) -> str:
    """A copy of the pristine lake (Delta logs name files relative to the table)."""
    shutil.copytree(pristine[0], tmp_path / "lake")
    return str(tmp_path / "lake")


@pytest.fixture
def before(pristine: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    return pristine[1]


# ----------------------------------------------------------------------------------------
# the answers, the files, the protocol: local and S3


def test_compaction_keeps_the_answers_and_cuts_the_files(lake_url, tmp_path):
    fill(lake_url, tmp_path / "input")
    want = answers(lake_url)
    deleted = deleted_uris(lake_url)
    assert BOB_URI in deleted and ALICE_URI not in deleted
    files_before = {table: live_files(lake_url, table) for table in TABLES}
    versions_before = delta(lake_url, POSTS_ALL).to_pyarrow_table().num_rows

    stats = compact(lake_url)
    assert answers(lake_url) == want
    assert stats.merge.tail_rows > 0 and stats.merge.commits >= 1  # the unmerged replay
    assert stats.deletes_resolved == 2  # both deletes named bob's post by local id only
    assert stats.posts_removed == 2 and stats.sightings_removed == 2  # bob, in each round
    # OPTIMIZE: one file per partition of each table, fewer than before
    assert stats.files_before == {t: len(f) for t, f in files_before.items()}
    assert stats.files_after == {t: len(live_files(lake_url, t)) for t in TABLES}
    assert stats.files_after[POSTS_ALL] == 4 < stats.files_before[POSTS_ALL]
    assert stats.files_after[SIGHTINGS] < stats.files_before[SIGHTINGS]
    assert stats.files_after[DELETES] == 1 < stats.files_before[DELETES]
    assert stats.files_after[POSTS] == 4 <= stats.files_before[POSTS]
    # Deleted posts are physically gone, as delta-rs alone reads the tables.
    posts_all = delta(lake_url, POSTS_ALL).to_pyarrow_table()
    assert posts_all.num_rows == versions_before - stats.posts_removed
    assert not deleted & set(posts_all["uri"].to_pylist())
    assert not deleted & set(delta(lake_url, SIGHTINGS).to_pyarrow_table()["uri"].to_pylist())
    assert sorted(delta(lake_url, POSTS).to_pyarrow_table()["uri"].to_pylist()) == sorted(
        row[0] for row in want["posts"]
    )
    resolved = delta(lake_url, DELETES).to_pyarrow_table()["uri"].to_pylist()
    assert resolved == [BOB_URI, BOB_URI]
    # The replaced files stay on storage (default retention: 7 days); each log has a
    # checkpoint; nothing needs more than a plain Delta reader.
    assert stats.files_vacuumed == 0
    for table in TABLES:
        assert files_before[table] <= stored_files(lake_url, table), table
        assert checkpoints(lake_url, table), table
    assert_plain_delta(lake_url)
    # Nothing left for the next merge: `posts` covers the compacted tables, VACUUM's commits
    # included, so readers take the merged table alone.
    assert read_files(lake_url).fresh.paths == []
    assert _merged_is_current(read_files(lake_url))

    again = compact(lake_url, retain_files=0)  # rerun: nothing to do but VACUUM
    assert answers(lake_url) == want
    assert (again.merge.upserted, again.deletes_resolved, again.posts_removed) == (0, 0, 0)
    assert again.files_before == again.files_after == stats.files_after
    replaced = sum(len(files_before[t] - live_files(lake_url, t)) for t in TABLES)
    assert replaced and again.files_vacuumed >= replaced
    assert _merged_is_current(read_files(lake_url))  # after a VACUUM that removed files
    for table in TABLES:
        assert stored_files(lake_url, table) == live_files(lake_url, table), table
    assert_plain_delta(lake_url)


# ----------------------------------------------------------------------------------------
# edits, deletes, late arrivals


def test_edits_win_and_every_delete_event_is_kept(filled, before):
    compact(filled)
    assert answers(filled) == before
    con = open_lake(filled)

    def rows(sql: str) -> list[tuple]:
        return con.execute(sql).fetchall()

    # `posts`: the edit wins; posts_all keeps every version of a post that is not deleted.
    assert rows(f"SELECT text FROM posts WHERE uri = '{EDITED_URI}'")[0][0].startswith(
        "Second post, edited"
    )
    assert rows(f"SELECT count(*) FROM posts_all WHERE uri = '{EDITED_URI}'") == [(4,)]
    # The deleted post is gone from every table; both delete events are kept, with its uri.
    for view in ("posts", "posts_all", "sightings"):
        assert rows(f"SELECT count(*) FROM {view} WHERE uri = '{BOB_URI}'") == [(0,)], view
    assert rows("SELECT observed_on, id, uri FROM deletes") == [("a.example", "1003", BOB_URI)] * 2
    # The local copy of alice's post won; the remote one is still a version and a sighting.
    assert rows(f"SELECT observed_on, app FROM posts WHERE uri = '{ALICE_URI}'") == [
        ("a.example", "Ivory")
    ]
    assert ("z.example", "9001") in rows(
        f"SELECT observed_on, id FROM sightings WHERE uri = '{ALICE_URI}'"
    )


def _replay_lines(lake: str, path: Path, observed_on: str | None, *lines: str) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    replay([path], lake, observed_on=observed_on)


def _count(lake: str, sql: str) -> int:
    con = open_lake(lake)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_a_late_copy_of_a_deleted_post_stays_deleted_and_is_removed_too(filled, tmp_path):
    compact(filled)
    # bob's post, deleted by its local id on a.example and removed from every table, arrives
    # again from another instance
    copy = status(3, "bob", "b.example", "2023-02-03T11:30:00Z", "<p>Guten Tag</p>",
                  language="de", observed_on="z.example", local_id="7777")  # fmt: skip
    late = json.dumps({"observed_on": "z.example", "status": copy})
    _replay_lines(filled, tmp_path / "late.jsonl", None, late)
    assert _count(filled, f"SELECT count(*) FROM posts_all WHERE uri = '{BOB_URI}'") == 1
    assert _count(filled, f"SELECT count(*) FROM posts WHERE uri = '{BOB_URI}'") == 0
    assert BOB_URI not in delta(filled, POSTS).to_pyarrow_table()["uri"].to_pylist()
    stats = compact(filled)
    assert stats.posts_removed == 1
    assert BOB_URI not in delta(filled, POSTS_ALL).to_pyarrow_table()["uri"].to_pylist()


def test_a_late_delete_of_a_copy_deletes_and_its_late_copies_stay_deleted(filled, tmp_path):
    """alice's post 1, as z.example knows it (id 9001), is deleted there after compaction:
    the delete names only that (instance, id); it still removes the post, the next
    compaction removes its rows from every table, and a copy that turns up later (from an
    instance that never saw the delete) is removed by the delete that now carries the uri."""
    compact(filled)
    _replay_lines(filled, tmp_path / "z.sse", "z.example", "event: delete", "data: 9001", "")
    assert _count(filled, f"SELECT count(*) FROM posts WHERE uri = '{ALICE_URI}'") == 0
    assert _count(filled, f"SELECT count(*) FROM posts_all WHERE uri = '{ALICE_URI}'") > 0
    stats = compact(filled)
    assert stats.deletes_resolved == 1 and stats.posts_removed > 0
    assert stats.sightings_removed > 0
    for table in (POSTS_ALL, SIGHTINGS, POSTS):
        assert ALICE_URI not in delta(filled, table).to_pyarrow_table()["uri"].to_pylist()
    late = status(1, "alice", "a.example", "2023-02-03T10:15:00.000Z",
                  "<p>Hello balloon world</p>", observed_on="y.example",
                  local_id="4242")  # fmt: skip
    line = json.dumps({"observed_on": "y.example", "status": late})
    _replay_lines(filled, tmp_path / "y.jsonl", None, line)
    assert _count(filled, f"SELECT count(*) FROM posts_all WHERE uri = '{ALICE_URI}'") == 1
    assert _count(filled, f"SELECT count(*) FROM posts WHERE uri = '{ALICE_URI}'") == 0


def test_appends_during_compaction_are_kept_and_merged_later(filled, tmp_path, monkeypatch):
    """A writer commits to posts_all and deletes while compaction runs (between its merge
    and its OPTIMIZE): nothing is lost, `posts` does not claim to cover the new rows, and
    the views resolve them until the next merge."""
    newcomer = status(900, "zed", "z.example", "2023-02-04T10:00:00.000Z", "<p>late</p>",
                      observed_on="z.example")  # fmt: skip
    line = json.dumps({"observed_on": "z.example", "status": newcomer})
    uri = "https://z.example/users/zed/statuses/900"
    optimize = TableOptimizer.compact
    written = []

    def write_meanwhile(self, *args, **kwargs):
        if not written:
            written.append(1)
            _replay_lines(filled, tmp_path / "meanwhile.jsonl", None, line)
            # and a delete of one of mastodon.social's posts by its local id
            path = tmp_path / "meanwhile.sse"
            path.write_text(f"event: delete\ndata: {first_id}\n\n", encoding="utf-8")
            replay([path], filled, observed_on="mastodon.social", merge=False)
        return optimize(self, *args, **kwargs)

    con = open_lake(filled)
    first_id, first_uri = con.execute(
        "SELECT id, uri FROM posts WHERE observed_on = 'mastodon.social' ORDER BY uri LIMIT 1"
    ).fetchone()
    con.close()
    monkeypatch.setattr(TableOptimizer, "compact", write_meanwhile)
    compact(filled)
    monkeypatch.setattr(TableOptimizer, "compact", optimize)
    assert written
    assert _count(filled, f"SELECT count(*) FROM posts WHERE uri = '{uri}'") == 1
    assert _count(filled, f"SELECT count(*) FROM posts WHERE uri = '{first_uri}'") == 0
    assert read_files(filled).fresh.paths  # not covered yet
    merge_posts(filled)
    merged = delta(filled, POSTS).to_pyarrow_table()["uri"].to_pylist()
    assert uri in merged and first_uri not in merged
    compact(filled)
    assert first_uri not in delta(filled, POSTS_ALL).to_pyarrow_table()["uri"].to_pylist()
    assert _count(filled, f"SELECT count(*) FROM posts WHERE uri = '{uri}'") == 1


@pytest.mark.parametrize("table", [POSTS_ALL, DELETES])
def test_a_sink_committing_during_a_merge_of_compaction_does_not_fail_it(
    filled, tmp_path, monkeypatch, table
):
    """delta-rs does not retry a MERGE or DELETE that another writer's append raced (it
    fails with "a concurrent transaction added new data"); compaction runs it again on the
    fresh table: the removal of deleted posts from posts_all (a DELETE per partition), and
    the resolving of deletes' uris (a MERGE)."""
    newcomer = status(901, "zed", "z.example", "2023-02-04T10:00:00.000Z", "<p>racing</p>",
                      observed_on="z.example")  # fmt: skip
    uri = "https://z.example/users/zed/statuses/901"
    method = "delete" if table == POSTS_ALL else "merge"
    real = getattr(DeltaTable, method)
    raced = []

    def after_an_append(self, *args, **kwargs):
        if not raced and self.table_uri.rstrip("/").endswith(f"/{table}"):
            raced.append(1)  # the table was loaded; another writer commits before the merge
            line = json.dumps({"observed_on": "z.example", "status": newcomer})
            _replay_lines(filled, tmp_path / "race.jsonl", None, line)
            path = tmp_path / "race.sse"
            path.write_text("event: delete\ndata: 1005\n\n", encoding="utf-8")  # newsbot's 4
            replay([path], filled, observed_on="a.example", merge=False)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, method, after_an_append)
    stats = compact(filled)
    monkeypatch.setattr(DeltaTable, method, real)
    assert raced
    assert stats.posts_removed >= 2  # bob's rows (and those of the post deleted meanwhile)
    assert _count(filled, f"SELECT count(*) FROM posts WHERE uri = '{uri}'") == 1
    assert BOB_URI not in delta(filled, POSTS_ALL).to_pyarrow_table()["uri"].to_pylist()
    assert _count(filled, "SELECT count(*) FROM deletes") == 3


# ----------------------------------------------------------------------------------------
# readers


def _counts(con: Any) -> tuple[int, ...]:
    return con.execute(
        "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM posts_all), "
        "(SELECT count(*) FROM deletes), (SELECT count(*) FROM sightings), "
        "(SELECT sum(characters) FROM posts)"
    ).fetchone()


def test_a_reader_opened_before_compaction_keeps_reading(filled, before):
    con = open_lake(filled)
    posts = con.execute("SELECT * FROM posts ORDER BY uri").fetchall()
    old = _counts(con)
    compact(filled)  # replaced files stay for 7 days
    assert con.execute("SELECT * FROM posts ORDER BY uri").fetchall() == posts == before["posts"]
    assert _counts(con) == old
    con.close()


def test_a_concurrent_reader_sees_each_table_whole(filled, monkeypatch):
    """A reader opening the lake over and over while compaction commits step by step sees
    the same posts and deletes each time; posts_all has bob's rows or not, never half of
    them, and so has sightings. (Each table is read at one version; two tables may be read
    on either side of a commit, as Delta has no transaction over several tables.)"""
    con = open_lake(filled)
    old = _counts(con)
    con.close()
    seen: list[tuple[int, ...]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def slowly(real):  # give the reader time to open the lake between the steps
        def step(*args, **kwargs):
            time.sleep(0.3)
            return real(*args, **kwargs)

        return step

    for name in ("_resolve_and_remove_deleted", "_advance_covers", "_file_counts"):
        monkeypatch.setattr(maintenance, name, slowly(getattr(maintenance, name)))
    monkeypatch.setattr(TableOptimizer, "compact", slowly(TableOptimizer.compact))

    def read() -> None:
        try:
            while True:
                finished = done.is_set()
                con = open_lake(filled)
                seen.append(_counts(con))
                con.close()
                if finished:  # this read started after compaction ended
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
    posts, versions, deletes, sightings, characters = old
    new = (posts, versions - stats.posts_removed, deletes, sightings - 1, characters)
    for state in seen:
        assert state[1] in (versions, new[1]) and state[3] in (sightings, new[3]), state
        assert (state[0], state[2], state[4]) == (posts, deletes, characters), state
    assert len(seen) >= 5 and seen[-1] == new


# ----------------------------------------------------------------------------------------
# crashes


class Killed(BaseException):
    """A crash: not an Exception, so nothing on the way turns it into an error message."""


def _crash_when(cls: type, name: str, table: str):  # type: ignore[no-untyped-def]
    """`cls.name`, raising Killed when called for `table` (after the calls for other tables
    went through)."""
    real = getattr(cls, name)

    def crashing(self, *args, **kwargs):
        dt = self.table if isinstance(self, TableOptimizer) else self
        if dt.table_uri.rstrip("/").endswith(f"/{table}"):
            raise Killed(f"killed in {name} of {table}")
        return real(self, *args, **kwargs)

    return crashing


CRASHES = {
    # after the merge and the resolved deletes, posts_all lost bob's rows, sightings did not
    "removing": (DeltaTable, "delete", SIGHTINGS),
    # posts_all and deletes are optimized, the rest is not; the covers are not advanced
    "optimizing": (TableOptimizer, "compact", SIGHTINGS),
    # every table optimized; posts_all checkpointed and vacuumed; the covers not advanced
    "checkpointing": (DeltaTable, "create_checkpoint", DELETES),
    "vacuuming": (DeltaTable, "vacuum", POSTS),
}


@pytest.mark.parametrize("step", [*CRASHES, "covers"])
def test_a_crash_at_any_step_leaves_the_same_answers_and_a_rerun_finishes(
    filled, before, step, monkeypatch
):
    if step == "covers":
        monkeypatch.setattr(maintenance, "_advance_covers", lambda *a: _raise(Killed("covers")))
    else:
        cls, name, table = CRASHES[step]
        monkeypatch.setattr(cls, name, _crash_when(cls, name, table))
    with pytest.raises(Killed):
        compact(filled, retain_files=0)
    monkeypatch.undo()
    assert answers(filled) == before
    assert_plain_delta(filled)

    stats = compact(filled, retain_files=0)
    assert answers(filled) == before
    assert stats.files_after[POSTS_ALL] == 4
    for table in TABLES:
        assert stored_files(filled, table) == live_files(filled, table), table
        assert checkpoints(filled, table), table
    assert read_files(filled).fresh.paths == []
    assert BOB_URI not in delta(filled, POSTS_ALL).to_pyarrow_table()["uri"].to_pylist()
    assert BOB_URI not in delta(filled, SIGHTINGS).to_pyarrow_table()["uri"].to_pylist()
    assert_plain_delta(filled)


def _raise(exc: BaseException) -> None:
    raise exc


KILL_MIDWAY = """
import os, sys
from deltalake.table import TableOptimizer
from tootlake.lake.maintenance import compact
real = TableOptimizer.compact
calls = []
def optimize_then_die(self, *args, **kwargs):
    result = real(self, *args, **kwargs)
    calls.append(1)
    if len(calls) == 2:
        os._exit(9)  # SIGKILL-like: no finally, no cleanup
    return result
TableOptimizer.compact = optimize_then_die
compact(sys.argv[1], retain_files=0)
"""


def test_a_killed_compaction_leaves_the_same_answers_and_the_next_one_finishes(
    filled, before, tmp_path
):
    killed = subprocess.run(
        [sys.executable, "-c", KILL_MIDWAY, filled],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(), cwd=tmp_path,
    )  # fmt: skip
    assert killed.returncode == 9, killed.stderr
    assert answers(filled) == before
    compact(filled, retain_files=0)
    assert answers(filled) == before
    for table in TABLES:
        assert stored_files(filled, table) == live_files(filled, table), table


# ----------------------------------------------------------------------------------------
# VACUUM, options, the command


def test_vacuum_keeps_replaced_files_for_the_retention_and_deletes_them_after(filled, before):
    originals = {table: live_files(filled, table) for table in TABLES}
    first = compact(filled)  # default: 7 days
    assert first.files_vacuumed == 0
    replaced = {table: originals[table] - live_files(filled, table) for table in TABLES}
    assert replaced[POSTS_ALL] and replaced[DELETES] and replaced[POSTS]
    for table in TABLES:
        assert originals[table] <= stored_files(filled, table), table
    # Less than an hour is still a retention: files replaced a moment ago are kept.
    assert compact(filled, retain_files="30m").files_vacuumed == 0
    for table in TABLES:
        assert originals[table] <= stored_files(filled, table), table
    result = CliRunner().invoke(main, ["compact", "--lake", filled, "--retain-files", "0"])
    assert result.exit_code == 0, result.output
    for table in TABLES:
        assert stored_files(filled, table) == live_files(filled, table), table
        assert not replaced[table] & stored_files(filled, table), table
    assert answers(filled) == before


def test_after_compaction_and_vacuum_no_file_holds_a_deleted_post(filled):
    """Issue 12: deletes honoured physically. Once VACUUM has run past the file retention,
    no Parquet file of the lake, listed by a commit or not, holds a row of a deleted post."""
    import pyarrow.parquet as pq

    con = open_lake(filled)
    deleted = {
        uri
        for (uri,) in con.execute(
            "SELECT DISTINCT uri FROM posts_all WHERE uri NOT IN (SELECT uri FROM posts)"
        ).fetchall()
    }
    con.close()
    assert deleted  # the lake has deleted posts, their rows in posts_all files before
    result = CliRunner().invoke(main, ["compact", "--lake", filled, "--retain-files", "0", "-q"])
    assert result.exit_code == 0, result.output
    checked = 0
    for table in (POSTS_ALL, POSTS, SIGHTINGS):
        for path in (Path(filled) / table).rglob("*.parquet"):
            if "_delta_log" in path.parts:
                continue
            left = set(pq.read_table(path, columns=["uri"]).column("uri").to_pylist())
            assert not left & deleted, (path, sorted(left & deleted)[:3])
            checked += 1
    assert checked


def test_compaction_removes_the_checks_of_posts_no_longer_in_the_lake(filled):
    """`checks` (revalidate's) names a post by instance and id: once its post is deleted and
    compacted away, its row goes too, and after VACUUM no file holds it."""
    import pyarrow.parquet as pq

    from tootlake.lake.checks import Check, append_checks

    con = open_lake(filled)
    kept = con.execute("SELECT observed_on, id FROM posts LIMIT 1").fetchone()
    gone = con.execute(
        "SELECT observed_on, id FROM posts_all WHERE uri NOT IN (SELECT uri FROM posts) LIMIT 1"
    ).fetchone()
    con.close()
    now = datetime.now(UTC)
    append_checks(filled, [Check(*kept, now, "present", 200), Check(*gone, now, "present", 200)])
    stats = compact(filled, retain_files="0s")
    assert stats.checks_removed == 1
    con = open_lake(filled)
    assert con.execute("SELECT observed_on, id FROM checks").fetchall() == [kept]
    files = [p for p in (Path(filled) / "checks").rglob("*.parquet") if "_delta_log" not in p.parts]
    left = {
        tuple(r.values())
        for p in files
        for r in pq.read_table(p, columns=["observed_on", "id"]).to_pylist()
    }
    assert left == {kept}


def test_compaction_removes_the_detected_language_of_deleted_posts(filled):
    """`tootlake enrich`'s rows name posts by uri: a deleted post's row goes with it, the
    others stay, and the table is compacted like the others."""
    at = datetime(2024, 5, 6, 7, 8, tzinfo=UTC)
    for uris in ([BOB_URI, ALICE_URI], [ALICE_URI + "#not-collected"]):
        rows = pa.table(
            {
                "uri": uris,
                "language_detected": ["en"] * len(uris),
                "language_confidence": [0.9] * len(uris),
                "detected_at": [at] * len(uris),
                "detector": ["lingua test"] * len(uris),
                "date": [at.date()] * len(uris),
            },
            schema=LANGUAGES_SCHEMA.append(tables.DATE_FIELD),
        )
        tables.append(filled, LANGUAGES, rows)
    stats = compact(filled, retain_files=0)
    assert stats.languages_removed == 1
    assert stats.files_before[LANGUAGES] == 2 and stats.files_after[LANGUAGES] == 1
    left = delta(filled, LANGUAGES).to_pyarrow_table()["uri"].to_pylist()
    assert sorted(left) == sorted([ALICE_URI, ALICE_URI + "#not-collected"])


def test_vacuum_removes_files_no_commit_lists_once_a_day_old(filled, before):
    """A write killed between its files and its commit leaves Parquet files no version lists:
    VACUUM removes them after a day (younger ones may be a running sink's, about to be
    committed), whatever --retain-files says."""
    folder = Path(filled) / POSTS_ALL / "date=2023-02-03"
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh = folder / "part-killed-write-old.parquet", folder / "part-in-flight.parquet"
    for path in (stale, fresh):
        path.write_bytes(b"PAR1 not committed PAR1")
    day_and_more = time.time() - 25 * 3600
    os.utime(stale, (day_and_more, day_and_more))
    stats = compact(filled, retain_files=0)
    assert not stale.exists() and fresh.exists()
    assert stats.files_vacuumed >= 1
    assert answers(filled) == before


def test_compacting_a_compact_lake_commits_nothing(tmp_path):
    """A lake with no deletes and no sightings yet, one file a day: nothing to merge, remove
    or bin-pack, so no table gets a commit (the tables that do not exist keep the version
    `posts` covers: -1)."""
    lake = str(tmp_path / "lake")
    replay([REAL / "mastodonsocial.json"], lake)
    versions = {table: delta(lake, table).version() for table in (POSTS_ALL, POSTS)}
    stats = compact(lake)
    assert stats.merge.commits == 0 and stats.files_before == stats.files_after
    assert {table: delta(lake, table).version() for table in versions} == versions
    assert checkpoints(lake, POSTS_ALL) and checkpoints(lake, POSTS)


def test_target_size_limits_the_files(filled, before):
    stats = compact(filled, target_bytes=parse_size("1KB"))
    assert answers(filled) == before
    small = stats.files_after[POSTS_ALL]
    filled_again = compact(filled)  # files as large as they can be again
    assert filled_again.files_after[POSTS_ALL] == 4 < small


def test_parse_size_and_duration():
    assert parse_size("128MB") == 128 * 1024**2 == parse_size("128 MiB")
    assert parse_size("1.5g") == int(1.5 * 1024**3) and parse_size("4096") == 4096
    with pytest.raises(ConfigError, match="Invalid size 'lots'"):
        parse_size("lots")
    assert parse_duration("7d").total_seconds() == 7 * 86400
    assert parse_duration("12h").total_seconds() == 12 * 3600
    assert parse_duration("30m").total_seconds() == 1800
    assert parse_duration("0").total_seconds() == 0 == parse_duration(0).total_seconds()
    with pytest.raises(ConfigError, match="Invalid duration 'soon'"):
        parse_duration("soon")
    with pytest.raises(ConfigError, match="cannot be negative"):
        parse_duration("-1d")


def test_cli_compact(filled, before, tmp_path):
    runner = CliRunner()
    done = runner.invoke(main, ["compact", "--lake", filled, "--format", "json"])
    assert done.exit_code == 0, done.output
    stats = json.loads(done.output)
    assert set(stats) == {
        "merge", "deletes_resolved", "posts_removed", "sightings_removed",
        "languages_removed", "checks_removed", "files_before", "files_after",
        "files_vacuumed", "retention", "seconds",
    }  # fmt: skip
    assert stats["retention"] is None  # no --retain
    assert set(stats["merge"]) == {
        "tail_rows", "upserted", "deleted", "commits", "covers", "seconds",
    }  # fmt: skip
    assert stats["files_after"] == {t: len(live_files(filled, t)) for t in TABLES}
    assert stats["files_after"][POSTS_ALL] == 4 < stats["files_before"][POSTS_ALL]
    assert stats["posts_removed"] == 2 and stats["deletes_resolved"] == 2
    assert stats["files_vacuumed"] == 0
    covers = stats["merge"]["covers"]  # the versions of the source tables merged
    assert set(covers) == {POSTS_ALL, DELETES, SIGHTINGS} and min(covers.values()) >= 0
    assert answers(filled) == before

    text = runner.invoke(main, ["compact", "--lake", filled])
    assert text.exit_code == 0, text.output
    (line,) = text.output.splitlines()
    assert line.startswith(f"Compacted {filled}: ") and "replaced files deleted" in line

    bad = runner.invoke(main, ["compact", "--lake", filled, "--target-size", "huge"])
    assert bad.exit_code == 1 and "Invalid size 'huge'" in bad.output
    bad = runner.invoke(main, ["compact", "--lake", filled, "--retain-files", "soon"])
    assert bad.exit_code == 1 and "Invalid duration 'soon'" in bad.output
    missing = runner.invoke(main, ["compact", "--lake", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "No lake at" in missing.output
    assert not (tmp_path / "nowhere").exists()
