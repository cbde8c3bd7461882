import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tootlake.analysis import open_lake
from tootlake.errors import SourceError
from tootlake.pipeline import replay
from tootlake.record import skip_reason
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
    # noindex accounts (hansfbaier's edit among them), and one #nobot in a bio
    assert stats.skipped == {"noindex": 4, "opt_out_tag": 1}
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
    # line 2 is a status first seen already edited (edited_at set): a post, not an edit;
    # the status.update after it is the edit
    assert (stats.posts, stats.edits, stats.deletes, stats.bad) == (2, 1, 1, 0)
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


def test_lake_layout_is_delta_tables_hive_partitioned_zstd(lake):
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    replay([REAL / "mastodonsocial.json"], lake)
    assert sorted(p.name for p in Path(lake).iterdir()) == [
        "_tootlake",
        "audit",
        "posts",
        "posts_all",
    ]
    for table in ("posts_all", "posts"):
        dt = DeltaTable(str(Path(lake) / table))
        assert dt.metadata().partition_columns == ["date"]
        assert dt.protocol().min_reader_version == 1  # no table features: every reader opens it
        files = [Path(uri) for uri in dt.file_uris()]
        assert {f.parent.name for f in files} == {"date=2022-11-21"}
        assert all(f.parent.parent.name == table for f in files)
        meta = pq.ParquetFile(files[0]).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        # a dictionary only for columns with repeated values (tables.PLAIN_COLUMNS)
        encodings = {
            meta.schema.column(i).name: meta.row_group(0).column(i).encodings
            for i in range(meta.num_columns)
        }
        for name in ("uri", "id", "url", "text"):
            assert "RLE_DICTIONARY" not in encodings[name], name
        for name in ("acct", "language", "app"):
            assert "RLE_DICTIONARY" in encodings[name], name
    # no file outside the Delta logs' lists, no temporary file
    listed = {
        Path(uri)
        for t in ("posts_all", "posts", "audit")
        for uri in DeltaTable(f"{lake}/{t}").file_uris()
    }
    assert {p for p in Path(lake).rglob("*.parquet")} == listed


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
    assert "44 posts" in result.stdout and "1 rejected" in result.stdout
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


def test_replay_of_good_and_mutated_lines_keeps_every_good_line(tmp_path, lake):
    """The issue's findings, mixed into one file: a bad field never costs a good line."""
    good = [real_status("mastodonsocial.json", n) for n in range(1, 41)]
    good = [s for s in good if skip_reason(s) is None]
    invalid = [
        dict(good[0], uri=5, id="x1"),
        dict(good[1], account="bob", id="x2"),
        dict(good[2], created_at="0001-01-01T00:00:00+01:00", id="x3"),
        dict(good[3], created_at="yesterday", id="x4"),
    ]
    odd = [
        dict(good[4], tags=5, uri=good[4]["uri"] + "#odd1"),
        dict(good[5], language=7, uri=good[5]["uri"] + "#odd2"),
        dict(good[6], favourites_count="many", uri=good[6]["uri"] + "#odd3"),
    ]
    lines = [json.dumps(s) for s in good + odd]
    lines[3:3] = [json.dumps(s) for s in invalid]
    lines[10:10] = ["not json at all", "[1, 2]", '"a string"', "x" * (1024 * 1024 + 10)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    stats = replay([path], lake, observed_on="mastodon.social")

    assert stats.posts + stats.edits == len(good) + len(odd)
    assert stats.rejected == len(invalid) + 4
    assert stats.coerced == {"tags": 1, "language": 1, "favourites_count": 1}
    con = open_lake(lake)
    uris = {u for (u,) in con.execute("SELECT uri FROM posts").fetchall()}
    assert uris == {s["uri"] for s in good + odd}
    rejects = pq.read_table(lake + "/rejects").to_pylist()
    assert len(rejects) == len(invalid) + 4
    assert {r["field"] for r in rejects} >= {"uri", "account", "created_at"}
    assert all(r["source"] == "replay" and r["where"].startswith(str(path)) for r in rejects)
    assert all(len(r["raw"]) <= 64 * 1024 for r in rejects)
    assert any('"x3"' in r["raw"] for r in rejects)


# pieces a hostile file is made of: real lines, SSE framing, wrappers, broken JSON
REAL_LINE_PIECES = [
    real_lines("mastodonsocial.json")[0].encode(),
    b"event: update",
    b"event: delete",
    b"data: 123",
    b'data: {"uri": 5}',
    b":thump",
    b"",
    b'{"observed_on": "a.example", "status": {"id": 1}}',
    b'{"event": "update", "payload": "{\\"id\\": 1}"}',
    b'{"event": "delete", "payload": 77}',
    b'{"status": null}',
    b"\xff\xfe",
]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.binary(max_size=200) | st.sampled_from(REAL_LINE_PIECES), max_size=12))
def test_any_lines_give_events_or_rejects_never_an_error(tmp_path, pieces):
    path = tmp_path / "any.jsonl"
    path.write_bytes(b"\n".join(pieces))
    events = list(ReplaySource([path], max_line=150).events())
    # each physical line gives at most one event (an SSE `event:` line gives none)
    assert len(events) <= len(b"\n".join(pieces).split(b"\n"))
    for event in events:
        assert event.kind in {"update", "status.update", "delete", "reject"}
        if event.kind == "reject":
            assert event.reject is not None and len(event.reject.raw) <= 64 * 1024
        elif event.kind != "delete":
            assert event.status is not None


def test_a_replay_leaves_its_counts_in_the_lake_and_the_report_shows_them(lake):
    from tootlake.analysis.html import render_html_report

    replay([REAL / "malformed.json"], lake)
    (run_file,) = (Path(lake) / "_tootlake" / "runs").glob("*.json")
    record = json.loads(run_file.read_text(encoding="utf-8"))
    assert record["kind"] == "replay" and record["stats"]["skipped"] == {
        "noindex": 4,
        "opt_out_tag": 1,
    }
    assert record["started_at"] <= record["ended_at"]
    assert "<dt>Skipped as opted out</dt><dd>5</dd>" in render_html_report(lake)


def test_a_run_file_that_cannot_be_written_does_not_fail_the_replay(lake, caplog):
    runs = Path(lake) / "_tootlake" / "runs"
    runs.parent.mkdir(parents=True)
    runs.write_text("a file where the folder goes", encoding="utf-8")
    stats = replay([REAL / "malformed.json"], lake)
    assert sum(stats.skipped.values()) == 5 and count(lake) == 44
    warnings = [r for r in caplog.records if "Cannot write the run's stats" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
