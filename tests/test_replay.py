import json
import subprocess
import sys
from pathlib import Path

import pytest

from tootlake.analysis import open_lake
from tootlake.errors import SourceError
from tootlake.pipeline import replay
from tootlake.sources.replay import ReplaySource

from .conftest import REAL, real_lines, real_status


def count(lake, sql="SELECT count(*) FROM posts"):
    return open_lake(lake).execute(sql).fetchone()[0]


def test_truncated_line_of_malformed_json_is_counted_not_fatal(lake):
    stats = replay([REAL / "malformed.json"], lake, include_opted_out=True)
    assert stats.bad == 1
    assert stats.bad_examples[0].startswith(f"{REAL / 'malformed.json'}:50: not valid JSON")
    assert stats.posts + stats.edits == 49
    # lines 5 and 37 are one post and its edit: 48 posts, the edited text wins
    assert count(lake) == 48
    assert count(lake, "SELECT count(*) FROM posts WHERE edited_at IS NOT NULL") == 1


def test_opted_out_posts_are_skipped_and_counted(lake):
    stats = replay([REAL / "malformed.json"], lake)
    assert stats.skipped["opted_out"] == 5  # noindex accounts, hansfbaier's edit among them
    assert count(lake) == 44


def test_bad_lines_are_reported_with_file_and_line(tmp_path, lake):
    good = real_lines("mastodonsocial.json")[:3]
    no_uri = real_status("mastodonsocial.json", 4)
    del no_uri["uri"]
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(
            [good[0], "not json at all", good[1][:200], json.dumps(no_uri), "[1, 2]", good[2]]
        )
        + "\n",
        encoding="utf-8",
    )
    stats = replay([path], lake)
    assert stats.bad == 4
    assert [e.split(": ", 1)[0] for e in stats.bad_examples] == [
        f"{path}:2", f"{path}:3", f"{path}:4", f"{path}:5",
    ]  # fmt: skip
    assert count(lake) == 2  # lines 1 and 6


def test_sse_capture_with_update_edit_delete_and_heartbeats(tmp_path, lake):
    first, second = real_lines("mastodonsocial.json")[:2]
    edited = real_status("mastodonsocial.json", 1)
    edited["content"] = "<p>edited text</p>"
    edited["edited_at"] = "2022-11-21T13:20:00.000Z"
    capture = tmp_path / "stream.sse"
    capture.write_text(
        ":)\n"
        f"event: update\ndata: {first}\n\n"
        ":thump\n"
        f"event: update\ndata: {second}\n\n"
        ":thump\n\n"
        f"event: status.update\ndata: {json.dumps(edited)}\n\n"
        "event: delete\ndata: 109381827277220624\n\n"
        "event: notification\ndata: {}\n\n",
        encoding="utf-8",
    )
    stats = replay([capture], lake, observed_on="mastodon.social")
    # line 2 is a status already edited (edited_at set): a version of an edited post
    assert (stats.posts, stats.edits, stats.deletes, stats.bad) == (1, 2, 1, 0)
    con = open_lake(lake)
    assert con.execute("SELECT text FROM posts").fetchall() == [("edited text",)]


def test_websocket_frames_and_wrapped_statuses(tmp_path, lake):
    status = real_status("mastodonsocial.json", 1)
    path = tmp_path / "frames.jsonl"
    path.write_text(
        json.dumps({"stream": ["public"], "event": "update", "payload": json.dumps(status)})
        + "\n"
        + json.dumps({"observed_on": "example.social", "status": real_status("malformed.json", 1)})
        + "\n",
        encoding="utf-8",
    )
    replay([path], lake)
    assert sorted(open_lake(lake).execute("SELECT observed_on FROM posts").fetchall()) == [
        ("example.social",),
        ("mastodon.social",),  # inferred: a local account's profile is on the observing server
    ]


def test_gzip_input(tmp_path, lake):
    import gzip

    path = tmp_path / "s.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write((REAL / "mastodonsocial.json").read_bytes())
    stats = replay([path], lake)
    assert stats.posts + stats.edits == 48


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="No such file"):
        ReplaySource([tmp_path / "nope.jsonl"])


def test_lake_layout_is_hive_partitioned_zstd_with_no_temporary_files(lake):
    import pyarrow.parquet as pq

    replay([REAL / "mastodonsocial.json"], lake)
    files = sorted(Path(lake).rglob("*"))
    assert not [f for f in files if f.name.startswith(".")]
    parquet = [f for f in files if f.suffix == ".parquet"]
    assert {f.parent.name for f in parquet} == {"date=2022-11-21"}
    assert all(f.parent.parent.name == "posts" for f in parquet)
    meta = pq.ParquetFile(parquet[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_replay_command_in_a_real_process(tmp_path):
    lake = tmp_path / "lake"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tootlake",
            "replay",
            str(REAL / "malformed.json"),
            "--lake",
            str(lake),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "44 posts" in result.stdout and "1 bad lines" in result.stdout
    assert "malformed.json:50" in result.stderr


def test_deletes_in_a_capture_belong_to_the_instance_its_statuses_came_from(tmp_path, lake):
    # no --observed-on: the host is inferred from the statuses (a local account's profile)
    status = real_status("mastodonsocial.json", 1)
    capture = tmp_path / "stream.sse"
    capture.write_text(
        f":)\nevent: update\ndata: {json.dumps(status)}\n\nevent: delete\ndata: {status['id']}\n\n",
        encoding="utf-8",
    )
    replay([capture], lake)
    assert count(lake) == 0
