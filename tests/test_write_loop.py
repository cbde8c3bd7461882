"""The write path's one loop (`tootlake.transports.drain`): a batch is acknowledged upstream
only once the sink made it durable, and a flush that fails acknowledges nothing. Real parts:
the in-process transport and the lake writer on a real Delta lake."""

from __future__ import annotations

import threading
import time

import pytest

from tootlake.errors import LakeError
from tootlake.lake import tables
from tootlake.lake.layout import POSTS_ALL
from tootlake.lake.writer import LakeWriter
from tootlake.record import Post, from_status
from tootlake.transports import Batch, KeepWriting, drain
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


def fail_append_once(monkeypatch, table: str, failed: list[str]) -> None:  # type: ignore[no-untyped-def]
    """The writer's commit of `table` fails once ("disk full"), noted in `failed`; any other
    commit, and that one again, goes through."""
    from tootlake.lake import writer as writer_module

    real_append = writer_module.append

    def append(lake: str, name: str, data, **kwargs):  # type: ignore[no-untyped-def]
        if name == table and not failed:
            failed.append(name)
            raise LakeError("disk full (injected)")
        return real_append(lake, name, data, **kwargs)

    monkeypatch.setattr(writer_module, "append", append)


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


def test_records_cross_several_arrow_batches_and_a_failed_flush_keeps_them(tmp_path, monkeypatch):
    """The writer turns records into Arrow batches CONVERT_ROWS at a time as they come; a
    flush writes every batch and the records not yet converted, in the order added, and a
    failed flush keeps them all for the retry."""
    from tootlake.lake import writer as writer_module

    monkeypatch.setattr(writer_module, "CONVERT_ROWS", 7)
    posts = some_posts(30)
    lake = tmp_path / "lake"
    lake.write_text("a file where the lake should be: the first flush fails")
    writer = LakeWriter(str(lake))
    for i in range(0, 30, 4):  # batches of 4: some conversions happen mid-way, 2 are left
        writer.add(posts[i : i + 4])
    assert writer.buffered == 30
    with pytest.raises(LakeError):
        writer.flush()
    assert writer.buffered == 30
    lake.unlink()
    assert writer.flush() == [POSTS_ALL]
    assert writer.buffered == 0
    table = tables.load(str(lake), POSTS_ALL)
    assert table is not None
    uris = table.to_pyarrow_table(columns=["uri"]).column("uri").to_pylist()
    assert sorted(uris) == sorted(p.uri for p in posts)
    assert writer.stats.posts == 30


def test_a_flush_failing_after_posts_were_committed_retries_only_what_is_left(
    tmp_path, monkeypatch
):
    """Posts commit first, deletes last: when the deletes' commit fails, the retry writes the
    deletes alone, and no post twice."""
    from tootlake.lake import writer as writer_module
    from tootlake.lake.layout import DELETES
    from tootlake.record import Delete

    monkeypatch.setattr(writer_module, "CONVERT_ROWS", 4)
    posts = some_posts(10)
    lake = str(tmp_path / "lake")
    writer = LakeWriter(lake)
    writer.add(posts)
    writer.add([Delete(p.observed_on, p.id, p.uri, p.ingested_at) for p in posts[:3]])
    fail_append_once(monkeypatch, DELETES, [])
    with pytest.raises(LakeError):
        writer.flush()
    assert rows_in(lake) == 10 and writer.buffered == 3  # the posts are in; the deletes wait
    assert writer.flush() == [DELETES]
    assert rows_in(lake) == 10 and writer.buffered == 0
    deletes = tables.load(lake, DELETES)
    assert deletes is not None and deletes.to_pyarrow_table().num_rows == 3
    assert (writer.stats.posts, writer.stats.deletes, writer.stats.commits) == (10, 3, 2)


@pytest.mark.parametrize("failing", ["posts_all", "sightings", "own sightings"])
def test_posts_own_sightings_are_written_once_each_even_across_a_failed_flush(
    tmp_path, monkeypatch, failing
):
    """With `sightings=True` each post with an instance gets its own sighting (its uri,
    instance, local id and ingest time), made from its converted batch, beside the Sighting
    records the collector sends: none for a post without an instance (null, or "" from a
    library caller), none twice and none missing when a flush fails at either table, or
    while making the sightings, and is retried."""
    from datetime import UTC, datetime

    import msgspec

    from tootlake.lake import writer as writer_module
    from tootlake.lake.layout import SIGHTINGS
    from tootlake.record import Sighting

    monkeypatch.setattr(writer_module, "CONVERT_ROWS", 4)
    posts = some_posts(9)
    posts[2] = msgspec.structs.replace(posts[2], observed_on=None)  # replayed without one
    posts[7] = msgspec.structs.replace(posts[7], observed_on="")
    seen_elsewhere = Sighting(posts[0].uri, "elsewhere.example", "77", datetime.now(UTC))
    real_own = LakeWriter._own_sightings
    failed: list[str] = []
    made: list[int] = []
    fail_append_once(monkeypatch, failing, failed)

    def own_failing_once(self, posts_batch):  # type: ignore[no-untyped-def]
        made.append(posts_batch.num_rows)
        if failing == "own sightings" and not failed and len(made) == 2:  # the flush's
            failed.append(failing)
            raise MemoryError("injected")
        return real_own(self, posts_batch)

    monkeypatch.setattr(LakeWriter, "_own_sightings", own_failing_once)
    lake = str(tmp_path / "lake")
    writer = LakeWriter(lake, sightings=True)
    writer.add(posts[:6])  # converted here
    writer.add([seen_elsewhere, *posts[6:]])  # 3 posts: converted by the flush
    with pytest.raises((LakeError, MemoryError)):
        writer.flush()
    assert failed
    writer.flush()
    assert writer.buffered == 0
    table = tables.load(lake, SIGHTINGS)
    assert table is not None
    rows = table.to_pyarrow_table(columns=["uri", "observed_on", "id", "seen_at"]).to_pylist()
    expected = [
        {"uri": p.uri, "observed_on": p.observed_on, "id": p.id, "seen_at": p.ingested_at}
        for p in posts
        if p.observed_on
    ]
    expected.append(
        {
            "uri": posts[0].uri,
            "observed_on": "elsewhere.example",
            "id": "77",
            "seen_at": seen_elsewhere.seen_at,
        }  # fmt: skip
    )
    key = lambda row: (row["uri"], row["observed_on"])  # noqa: E731
    assert sorted(rows, key=key) == sorted(expected, key=key)
    assert writer.stats.sightings == len(expected) == 8 and writer.stats.posts == 9
    assert rows_in(lake) == 9
    assert made[:2] == [6, 3]  # (the flush converted the last three)


def fail_appends(monkeypatch, failing: threading.Event, failed: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Every commit fails ("disk full", noted in `failed`) while `failing` is set."""
    from tootlake.lake import writer as writer_module

    real_append = writer_module.append

    def append(lake: str, name: str, data, **kwargs):  # type: ignore[no-untyped-def]
        if failing.is_set():
            failed.append(name)
            raise LakeError("disk full (injected)")
        return real_append(lake, name, data, **kwargs)

    monkeypatch.setattr(writer_module, "append", append)


def _keep(writer: LakeWriter, hold: int, stop: threading.Event | None = None) -> KeepWriting:
    return KeepWriting(
        (LakeError, OSError),  # (the collector's)
        lambda: writer.held_bytes,
        hold,
        stopping=stop.is_set if stop else lambda: False,
        first=0.01,
        most=0.05,
    )


def _outage(tmp_path, monkeypatch, n: int):  # type: ignore[no-untyped-def]
    """A lake whose commits fail until `failing` is cleared, a writer that is due after every
    batch, a transport holding one batch, and `n` posts to send."""
    lake = str(tmp_path / "lake")
    failing, failed = threading.Event(), []
    failing.set()
    fail_appends(monkeypatch, failing, failed)
    writer = LakeWriter(lake, max_bytes=1)
    return lake, some_posts(n), failing, failed, writer, MemoryTransport(max_batches=1)


def test_with_keep_a_lake_that_fails_for_a_while_gets_every_batch_once(tmp_path, monkeypatch):
    """The collector's loop: flushes fail, the batches wait unacknowledged, the source waits
    once the writer holds `hold` bytes; when the lake works again, all of it is written once
    and acknowledged after."""
    lake, posts, failing, failed, writer, transport = _outage(tmp_path, monkeypatch, 60)
    keep = _keep(writer, hold=1)
    sent, acked, during = [], [], []

    def send() -> None:
        for i in range(0, 60, 10):
            transport.send(Batch(posts[i : i + 10], [lambda i=i: acked.append((i, rows_in(lake)))]))
            sent.append(i)
        transport.close()

    def heal() -> None:
        while len(failed) < 4:
            time.sleep(0.01)
        during.extend([len(sent), len(acked)])
        failing.clear()

    threads = [threading.Thread(target=send), threading.Thread(target=heal)]
    for thread in threads:
        thread.start()
    drain(transport, writer, finished=lambda r: r is None and transport.closed, keep=keep)
    for thread in threads:
        thread.join()
    # during the outage: one batch in the writer, one in the queue, the next waiting in send
    assert during == [1, 0] or during == [2, 0], during
    assert rows_in(lake) == 60
    assert [i for i, _ in acked] == [0, 10, 20, 30, 40, 50]
    assert acked[0][1] >= 10  # acknowledged once written
    assert keep.failures == len(failed) >= 4 and keep.since is None


def test_with_keep_a_stop_during_an_outage_ends_with_the_error_and_acks_nothing(
    tmp_path, monkeypatch
):
    lake, posts, _failing, _failed, writer, transport = _outage(tmp_path, monkeypatch, 30)
    stop = threading.Event()
    keep = _keep(writer, hold=1, stop=stop)
    acked: list[int] = []

    def send() -> None:
        for i in range(0, 30, 10):
            if i == 20:
                stop.set()  # (the source is held back until the stop)
            transport.send(Batch(posts[i : i + 10], [lambda i=i: acked.append(i)]))
        transport.close()

    source = threading.Thread(target=send)
    source.start()
    with pytest.raises(LakeError, match="disk full"):
        drain(transport, writer, finished=lambda r: r is None and transport.closed, keep=keep)
    source.join()
    assert acked == [] and rows_in(lake) == 0 and keep.failures >= 1


def test_with_keep_other_errors_still_end_the_loop(tmp_path, monkeypatch):
    from tootlake.lake import writer as writer_module

    def append(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(writer_module, "append", append)
    writer = LakeWriter(str(tmp_path / "lake"), max_bytes=1)
    transport = MemoryTransport()
    transport.send(Batch(some_posts(5), []))
    transport.close()
    with pytest.raises(ValueError, match="a bug"):
        drain(transport, writer, finished=lambda r: r is None, keep=_keep(writer, hold=1))


def test_with_keep_an_error_after_the_commit_is_not_an_outage(tmp_path):
    """`on_commit` (the collector saving its cursors) failing ends the loop as before: the
    rows are in and acknowledged; it is not counted as a failed write."""
    lake = str(tmp_path / "lake")
    writer = LakeWriter(lake, max_bytes=1)
    transport = MemoryTransport()
    acked: list[int] = []
    transport.send(Batch(some_posts(5), [lambda: acked.append(rows_in(lake))]))
    transport.close()

    def save() -> None:
        raise OSError(28, "No space left on device (injected)")

    keep = _keep(writer, hold=1)
    with pytest.raises(OSError, match="No space"):
        drain(transport, writer, finished=lambda r: r is None, on_commit=save, keep=keep)
    assert acked == [5] and keep.failures == 0


def test_with_keep_each_outage_says_its_own_length_and_tries(caplog):
    keep = KeepWriting((LakeError,), lambda: 0, 1, first=0.0, most=0.0)
    with caplog.at_level("WARNING", logger="tootlake.transports"):
        for tries in (3, 1):
            for _ in range(tries):
                keep.failed(LakeError("disk full (injected)"))
            keep.wrote()
        keep.wrote()  # writing all along: nothing said
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("Cannot write") and said[2].startswith("Cannot write")
    assert "and 3 failed tries" in said[1] and "and 1 failed try;" in said[3]
    assert len(said) == 4 and keep.failures == 4 and keep.since is None


def test_with_keep_a_huge_error_is_cut_in_its_log_line(caplog):
    """An S3 error quotes the server's body: a hostile or broken store's 5 MB body makes one
    line of about a thousand characters, on one line."""
    keep = KeepWriting((LakeError,), lambda: 0, 1)
    with caplog.at_level("ERROR", logger="tootlake.transports"):
        keep.failed(LakeError("Cannot write: <Error>" + "\n\x1b[31mA" * 2_500_000 + "</Error>"))
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("Cannot write the batches held") and "Cannot write: <Error>" in said
    assert len(said) < 1_200 and "\n" not in said


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_with_keep_failures_of_one_try_count_once_and_the_wait_doubles_per_try(monkeypatch):
    """The Kafka sink flushes its partitions together; their failures are one try. With 2
    flush threads and 4 partitions, the last two start only when the first two failed, and
    fail after the next try was due (a timeout rather than a 403): still the same try, so the
    wait is 1 s, not 2 (it doubled per wave)."""
    clock = _Clock()
    monkeypatch.setattr("tootlake.transports.time.monotonic", clock)
    keep = KeepWriting((LakeError,), lambda: 0, 1)
    refused = LakeError("403 (injected)")
    submitted = clock.now
    clock.now += 5  # the first wave times out
    keep.failed(refused, started=submitted)
    keep.failed(refused, started=submitted)
    assert (keep.failures, keep._wait) == (1, 1.0) and not keep.ready()
    clock.now += 5  # the second wave (waiting for a thread since `submitted`) times out
    keep.failed(refused, started=submitted)
    keep.failed(refused, started=submitted)
    assert (keep.failures, keep._wait) == (1, 1.0) and keep.ready()
    retried = clock.now  # the next try: every partition again
    clock.now += 0.5
    keep.failed(refused, started=retried)
    assert (keep.failures, keep._wait) == (2, 2.0)
    clock.now += 0.1  # (another partition of that try, before the next is due)
    keep.failed(refused, started=retried)
    assert keep.failures == 2 and not keep.ready()
    clock.now += 2
    assert keep.ready()
    keep.failed(refused)  # (no start given: counted once due, as the collector's flush)
    assert (keep.failures, keep._wait) == (3, 4.0)
    keep.wrote()
    keep.failed(refused, started=submitted)  # a new outage: counted whatever it started
    assert (keep.failures, keep._wait, keep.since) == (4, 1.0, clock.now)
