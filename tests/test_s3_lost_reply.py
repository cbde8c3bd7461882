"""A Delta commit whose reply the S3 server sends but the writer never gets: the server did
the PUT of the log entry, the connection broke before the answer came back. delta-rs retries
the conditional PUT, which then fails because the entry exists: its own. Nothing may be
written twice for that.

The server is the real test S3 server (moto); between it and delta-rs sits a TCP proxy on
127.0.0.1 that forwards every byte except the reply to one chosen request (tests/s3_faults.py)."""

from __future__ import annotations

import contextlib

import pyarrow as pa
import pytest

from tootlake.analysis import open_lake
from tootlake.errors import LakeError
from tootlake.lake import tables
from tootlake.lake.layout import POSTS, POSTS_ALL
from tootlake.lake.maintenance import merge_posts
from tootlake.lake.reader import read_files
from tootlake.lake.writer import records_to_table
from tootlake.record import from_status

from . import lakes
from .conftest import real_status
from .s3_faults import faulty_s3

s3_lake = lakes.s3_lake  # the fixture, for this module


@pytest.fixture
def lose_reply(s3_lake, monkeypatch):
    """Makes delta-rs reach the S3 server through a proxy losing one reply (see the module);
    returns a function taking the pattern of that request's line."""
    with contextlib.ExitStack() as stack:
        yield lambda pattern: stack.enter_context(faulty_s3(monkeypatch, lose=pattern))


def _rows(n: int) -> pa.Table:
    records = [
        from_status(real_status("mastodonsocial.json", i), "mastodon.social")
        for i in range(1, n + 1)
    ]
    data = records_to_table(records, tables.RECORD_SCHEMAS[POSTS_ALL]())
    return tables.with_date(POSTS_ALL, data)


LOG_ENTRY_1 = r"PUT \S*/posts_all/_delta_log/0{19}1\.json HTTP/1\.1"


def test_a_marked_commit_whose_reply_is_lost_is_not_appended_again(s3_lake, lose_reply):
    """The Kafka sink's commits carry marks (its offsets). delta-rs answers the retried PUT
    with a conflict against the commit holding those marks, its own; the commit is in."""
    proxy = lose_reply(LOG_ENTRY_1)
    batch = _rows(3)
    for version in range(3):
        tables.append(s3_lake, POSTS_ALL, batch, transactions=[("sink-0", version)])
    dt = tables.load(s3_lake, POSTS_ALL)
    assert dt.to_pyarrow_table().num_rows == 9
    assert dt.version() == 2 and dt.transaction_version("sink-0") == 2
    assert open_lake(s3_lake).execute("SELECT count(*) FROM posts_all").fetchone() == (9,)
    proxy.close()
    assert proxy.lost, "the proxy lost no reply: the test tested nothing"


def test_an_unmarked_commit_whose_reply_is_lost_adds_its_file_once(s3_lake, lose_reply):
    """The collector's commits carry no marks: delta-rs commits the same file again as the
    next version, and a Delta log that adds one file twice holds it once."""
    proxy = lose_reply(LOG_ENTRY_1)
    batch = _rows(3)
    for _ in range(3):
        tables.append(s3_lake, POSTS_ALL, batch)
    dt = tables.load(s3_lake, POSTS_ALL)
    assert dt.version() == 3  # the file of version 1 again as version 2
    assert dt.to_pyarrow_table().num_rows == 9
    assert open_lake(s3_lake).execute("SELECT count(*) FROM posts_all").fetchone() == (9,)
    proxy.close()
    assert proxy.lost


def test_a_merge_whose_reply_is_lost_leaves_one_row_per_uri(s3_lake, lose_reply):
    """A merge commit carries the versions of posts_all it covers and a merge mark of its own:
    the merge that lost its reply is merged again over what it committed (an upsert by uri,
    which may rewrite a file again), and `posts` still holds each uri once."""
    tables.append(s3_lake, POSTS_ALL, _rows(3))
    merge_posts(s3_lake)
    tables.append(s3_lake, POSTS_ALL, _rows(6))  # the first 3 again, 3 new
    proxy = lose_reply(r"PUT \S*/posts/_delta_log/0{19}1\.json HTTP/1\.1")
    merge_posts(s3_lake)
    posts = tables.load(s3_lake, POSTS)
    uris = posts.to_pyarrow_table(columns=["uri"]).column("uri").to_pylist()
    assert len(uris) == len(set(uris)) == 6
    assert read_files(s3_lake).fresh.paths == []  # posts covers all of posts_all
    proxy.close()
    assert proxy.lost


def test_a_marked_commit_whose_marks_cannot_be_read_is_not_tried_again(
    s3_lake, lose_reply, monkeypatch
):
    """Right after the lost reply, reading the log fails too: whether the commit is in is
    unknown, so `append` says so and commits nothing more; the sink reads its marks again
    before it retries (tests/kafka)."""
    from deltalake.exceptions import CommitFailedError

    from tootlake.errors import LakeError

    proxy = lose_reply(LOG_ENTRY_1)
    batch = _rows(3)
    tables.append(s3_lake, POSTS_ALL, batch, transactions=[("sink-0", 0)])

    def unreadable(*_args: object) -> bool:
        raise LakeError("Cannot read the Delta table: connection reset (injected)")

    landed = tables._landed
    monkeypatch.setattr(tables, "_landed", unreadable)
    with pytest.raises(LakeError, match="whether it is in is unknown") as raised:
        tables.append(s3_lake, POSTS_ALL, batch, transactions=[("sink-0", 1)])
    assert isinstance(raised.value.__cause__, CommitFailedError)  # (the sink's retry test)
    monkeypatch.setattr(tables, "_landed", landed)
    dt = tables.load(s3_lake, POSTS_ALL)
    assert dt.to_pyarrow_table().num_rows == 6 and dt.transaction_version("sink-0") == 1
    proxy.close()
    assert proxy.lost


def test_a_store_error_quoting_megabytes_is_one_line_of_at_most_2000_characters(
    s3_lake, monkeypatch
):
    """An S3 error quotes the reply's body; a store (or a proxy in front of it) may send a
    huge one. The error a commit raises, which logs and the command line print, stays short."""
    with faulty_s3(monkeypatch) as proxy:
        proxy.refuse(message=5_000_000)
        with pytest.raises(LakeError) as raised:
            tables.append(s3_lake, POSTS_ALL, _rows(1))
    text = str(raised.value)
    assert "Denied" in text  # the store's own words are kept...
    assert len(text) <= 2_300, len(text)  # ...cut (with what tootlake says around them)
    assert "\n" not in text and "\x1b" not in text
