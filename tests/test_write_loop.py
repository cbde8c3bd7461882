"""The write path's one loop (`tootlake.transports.drain`): a batch is acknowledged upstream
only once the sink made it durable, and a flush that fails acknowledges nothing. Real parts:
the in-process transport and the lake writer on a real Delta lake."""

from __future__ import annotations

import threading

import pytest

from tootlake.errors import LakeError
from tootlake.lake import tables
from tootlake.lake.layout import POSTS_ALL
from tootlake.lake.writer import LakeWriter
from tootlake.record import Post, from_status
from tootlake.transports import Batch, drain
from tootlake.transports.memory import MemoryTransport

from .conftest import all_real_statuses


def some_posts(n: int) -> list[Post]:
    posts = []
    for _where, observed_on, status in all_real_statuses():
        try:
            posts.append(from_status(status, observed_on))
        except Exception:  # the few statuses a post cannot be built from
            continue
        if len(posts) == n:
            break
    return posts


def rows_in(lake: str) -> int:
    table = tables.load(lake, POSTS_ALL)
    return 0 if table is None else table.count()


def test_each_batch_is_acknowledged_only_once_its_posts_are_in_the_lake(tmp_path):
    lake = str(tmp_path / "lake")
    posts = some_posts(30)
    batches = [posts[i : i + 10] for i in range(0, 30, 10)]
    seen_at_ack: list[int] = []
    transport = MemoryTransport()
    # a tiny buffer: every batch is due at once, so the loop flushes and commits three times
    writer = LakeWriter(lake, max_bytes=1)

    def send() -> None:
        for records in batches:
            transport.send(Batch(records, [lambda: seen_at_ack.append(rows_in(lake))]))
        transport.close()

    source = threading.Thread(target=send)
    source.start()
    drain(transport, writer, finished=lambda records: records is None and transport.closed)
    source.join()
    assert seen_at_ack == [10, 20, 30]
    assert writer.stats.commits == 3


def test_a_flush_that_fails_acknowledges_nothing(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file where the lake should be")
    acked: list[int] = []
    transport = MemoryTransport()
    transport.send(Batch(some_posts(5), [lambda: acked.append(1)]))
    transport.close()
    with pytest.raises(LakeError):
        drain(
            transport,
            LakeWriter(str(not_a_folder)),
            finished=lambda records: records is None and transport.closed,
        )
    assert acked == []
