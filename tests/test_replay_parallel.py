"""Replay in pieces, side by side (`replay(..., workers=N)`): a file is cut where an SSE event
or a line ends, each piece replayed by its own process, and the lake reads exactly as after a
replay in one process: same posts (latest versions, deletes applied), same counts, and bad
lines named by their line number in the file."""

from __future__ import annotations

import json

import pytest

from talkshape import write_sse
from tootlake.analysis import open_lake
from tootlake.pipeline import replay
from tootlake.sources.replay import cut

from .conftest import all_real_statuses

SMALL = 64 * 1024  # pieces this small make many of them out of a test-sized file


def _posts(lake) -> list[tuple]:
    con = open_lake(str(lake))
    return con.execute(
        "SELECT uri, observed_on, id, edited_at, text FROM posts ORDER BY uri"
    ).fetchall()


def _counts(stats) -> dict:
    # (not posts and edits apart: each piece counts the first version it sees as a post, so
    # a post whose versions fall in two pieces is a post in each; see replay_files)
    wanted = ("events", "written", "deletes", "rejected", "bad")
    return {**{k: getattr(stats, k) for k in wanted}, "skipped": dict(stats.skipped)}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("capture") / "public.sse"
    # many edits and deletes, so that versions and deletes of one post fall in two pieces
    write_sse(path, 3000, seed=7, days=1, edits=0.1, deletes=0.05)
    return path


def test_an_sse_capture_is_cut_between_events(capture):
    data = capture.read_bytes()
    pieces = cut([capture], 4, min_piece=SMALL)
    assert len(pieces) == 4
    assert pieces[0].start == 0 and pieces[-1].end == len(data)
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert before.end == after.start
        assert data[: after.start].endswith(b"\n\n")  # a whole event on each side
    assert {p.host for p in pieces} == {"mastodon.social"}


def test_json_lines_are_cut_between_lines(tmp_path):
    path = tmp_path / "statuses.jsonl"
    lines = [json.dumps(status) for _, _, status in all_real_statuses()]
    path.write_text("\n".join(lines * 20) + "\n")
    data = path.read_bytes()
    pieces = cut([path], 3, min_piece=SMALL)
    assert len(pieces) == 3
    for piece in pieces[1:]:
        assert data[piece.start - 1 : piece.start] == b"\n"


def test_small_and_gzip_files_are_one_piece_each(tmp_path, capture):
    small = tmp_path / "small.jsonl"
    small.write_text('{"a": 1}\n')
    gz = tmp_path / "big.sse.gz"
    gz.write_bytes(capture.read_bytes())  # (the name is what decides)
    assert len(cut([small, gz], 4, min_piece=SMALL)) == 2


def test_pieces_replayed_side_by_side_give_the_lake_of_one_process(tmp_path, capture, monkeypatch):
    monkeypatch.setattr("tootlake.sources.replay.MIN_PIECE", SMALL)
    one = replay([capture], str(tmp_path / "one"), workers=1)
    four = replay([capture], str(tmp_path / "four"), workers=4)
    assert len(cut([capture], 4)) == 4  # the run above really was in pieces
    assert _counts(four) == _counts(one)
    assert one.deletes > 100 and one.edits > 100
    # the first version in each piece is a post there: never fewer posts than in one piece
    assert one.posts <= four.posts <= one.posts + one.edits
    assert _posts(tmp_path / "four") == _posts(tmp_path / "one")


def test_a_bad_line_in_a_later_piece_is_named_by_its_line_in_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr("tootlake.sources.replay.MIN_PIECE", SMALL)
    path = tmp_path / "statuses.jsonl"
    lines = [json.dumps(status) for _, _, status in all_real_statuses()] * 10
    bad_at = len(lines) - 5  # near the end: in the last piece
    lines[bad_at] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    stats = replay([path], str(tmp_path / "lake"), workers=3)
    assert len(cut([path], 3)) == 3
    assert stats.rejected == 1
    assert stats.bad_examples == [
        f"{path}:{bad_at + 1}: " + stats.bad_examples[0].split(": ", 1)[1]
    ]
    con = open_lake(str(tmp_path / "lake"))
    (where,) = con.execute('SELECT "where" FROM rejects').fetchone()
    assert where == f"{path}:{bad_at + 1}"
