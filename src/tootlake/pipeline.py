"""The pipeline: source -> record -> transport -> sink, and the order of commits.

A producer thread reads the source and builds records; the calling thread drains the
transport into the sink (`tootlake.transports.drain`, the loop the Kafka sink worker shares).
The sink makes a batch durable first, then the transport commits it (acknowledging upstream:
cursors, offsets). So an acknowledged post is always in the lake. `produce` sends to Kafka
instead (`tootlake.kafka.producer`), whose acks fire once Kafka has a batch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tootlake._arrow import skip_pandas_probe
from tootlake._gc import fewer_collections
from tootlake.errors import BadInput, LakeError, TootlakeError
from tootlake.lake.layout import join
from tootlake.lake.storage import storage_for
from tootlake.lake.writer import LakeWriter
from tootlake.record import (
    Consent,
    Delete,
    Post,
    Reject,
    Sighting,
    Status,
    append_post,
    to_post,
)
from tootlake.record.consent import AUTHOR_GATES, NOINDEX
from tootlake.redact import redact_json
from tootlake.sources import DELETE, REJECT, Event, Source
from tootlake.transports import Batch, KeepWriting, Transport, drain
from tootlake.transports.memory import MemoryTransport

if TYPE_CHECKING:
    from tootlake.kafka.producer import KafkaTransport
    from tootlake.lake.maintenance import MergeStats
    from tootlake.record.pseudonymize import Pseudonymizer

__all__ = [
    "RUNS_DIR",
    "Recorder",
    "RunStats",
    "produce",
    "replay",
    "replay_to_kafka",
    "audit_run",
    "run",
    "save_run",
]

log = logging.getLogger(__name__)

# A batch is cut at this many bytes of statuses too: the transport holds a few batches, and a
# hostile server's statuses may be 1 MiB each.
BATCH_BYTES = 8 * 1024 * 1024
BAD_LINE_EXAMPLES = 3  # bad lines of each replayed file kept for the summary
RUNS_DIR = ("_tootlake", "runs")  # one JSON file a run: what it did (the report adds them up)


@dataclass
class RunStats:
    """What a run did. `bad_examples` keeps the first few messages for the final report.

    `rejected`: statuses (or lines, or events) that could not become posts, each kept in the
    lake's rejects table; `coerced`: fields of kept posts that had the wrong type and were
    stored as null or their default, by field name."""

    events: int = 0
    posts: int = 0
    edits: int = 0
    deletes: int = 0
    sightings: int = 0  # a post already written, seen again on another instance
    duplicates: int = 0  # the same version seen again on the same instance
    # a version written already, or an older one, written again (only without dedupe:
    # replay writes every copy, and the merge keeps one)
    repeats: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # by the gate that failed
    # posts written, then removed when a later copy failed an author's gate, by the gate
    withdrawn: Counter[str] = field(default_factory=Counter)
    consent: Counter[str] = field(default_factory=Counter)  # posts by consent level passed
    bad: int = 0
    bad_examples: list[str] = field(default_factory=list)
    # a replay's bad lines per file, and each file's first few ("in.jsonl:12: not valid
    # JSON (...)"): the summary at its end
    bad_lines: Counter[str] = field(default_factory=Counter)
    bad_line_examples: dict[str, list[str]] = field(default_factory=dict)
    rejected: int = 0
    coerced: Counter[str] = field(default_factory=Counter)
    commits: int = 0
    # flushes that failed and were tried again (a collector rides out a lake it cannot write)
    write_failures: int = 0
    transport: str = ""  # the transport's state for a progress line, e.g. "kafka: buffering ..."
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0

    def add(self, other: RunStats) -> None:
        """Add another run's counts to these (the pieces of a parallel replay)."""
        for name, value in vars(other).items():
            if name in ("started", "elapsed", "transport"):
                continue
            mine = getattr(self, name)
            if isinstance(value, Counter):
                mine.update(value)
            elif isinstance(value, list):
                mine.extend(value[: max(0, 20 - len(mine))])
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, list):  # a file's first bad lines: pieces come in order
                        kept = mine.setdefault(key, [])
                        kept.extend(item[: max(0, BAD_LINE_EXAMPLES - len(kept))])
                        continue
                    mine[key] = mine.get(key, 0) + item if isinstance(item, int) else item
            elif isinstance(value, int | float) and not isinstance(value, bool):
                setattr(self, name, mine + value)

    @property
    def written(self) -> int:
        """Versions of posts written: posts, edits and repeats."""
        return self.posts + self.edits + self.repeats

    @property
    def posts_per_second(self) -> float:
        return self.written / self.elapsed if self.elapsed else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "posts": self.posts,
            "edits": self.edits,
            "deletes": self.deletes,
            "sightings": self.sightings,
            "duplicates": self.duplicates,
            "repeats": self.repeats,
            "skipped": dict(self.skipped),
            "consent": dict(self.consent),
            "withdrawn": dict(self.withdrawn),
            "bad": self.bad,
            "bad_examples": self.bad_examples,
            "rejected": self.rejected,
            "coerced": dict(self.coerced),
            "commits": self.commits,
            "write_failures": self.write_failures,
            "seconds": round(self.elapsed, 3),
            "posts_per_second": round(self.posts_per_second, 1),
        }


# what a run file keeps of an instance's health: no URL (it may carry credentials), no cursor
_RUN_INSTANCE_KEYS = ("mode", "status", "detail", "version", "events", "errors", "reconnects")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")  # user:password@ in a URL of a message


def _run_instance(entry: dict[str, Any]) -> dict[str, Any]:
    kept = {key: entry.get(key) for key in _RUN_INSTANCE_KEYS}
    if isinstance(kept["detail"], str):
        kept["detail"] = _USERINFO.sub("***@", kept["detail"])
    return kept


def save_run(
    lake: str,
    kind: str,
    stats: RunStats,
    started_at: datetime,
    *,
    instances: dict[str, dict[str, Any]] | None = None,
) -> str | None:
    """Write what a run did to `LAKE/_tootlake/runs/<start>-<random>.json` (the report's
    collection section adds these up): `stats.as_dict()`, start and end times (UTC) and, for a
    collect, each instance's final state. Secrets are masked (tootlake.redact). A failure to
    write is logged as one WARNING and returns None: the run's data is in the lake already."""
    record: dict[str, Any] = {
        "kind": kind,
        "started_at": started_at.isoformat(timespec="seconds"),
        "ended_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stats": stats.as_dict(),
    }
    if instances is not None:
        record["instances"] = {host: _run_instance(entry) for host, entry in instances.items()}
    name = f"{started_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}.json"
    path = join(lake, *RUNS_DIR, name)
    try:
        data = json.dumps(redact_json(record), indent=1, sort_keys=True).encode()
        storage_for(lake).write_atomic(path, data)
    except Exception as exc:  # noqa: BLE001 - any storage failure: the run itself succeeded
        log.warning("Cannot write the run's stats to %s (the run succeeded): %s", path, exc)
        return None
    return path


def audit_run(
    lake: str,
    kind: str,
    stats: RunStats,
    started_at: datetime,
    *,
    include_opted_out: bool = False,
    consent: Consent | None = None,
    instances: dict[str, dict[str, Any]] | None = None,
    policy_sha256: str | None = None,
    refused: dict[str, str] | None = None,
    rules: dict[str, str | None] | None = None,
    retain_days: float | None = None,
    retention_removed: int = 0,
    key_id: str | None = None,
) -> bool:
    """Append a row for this run to the lake's `audit` table (`tootlake.lake.audit`): the
    consent policy the Recorder applied (`consent`; without it, the default or, with
    `include_opted_out`, the "none" mode), the skips by gate, deletes, and for a collect each
    instance's mode and version (and the hash of its rules, `rules`: host -> SHA-256, when read) and
    those the policy refused; `key_id`: the pseudonymisation key's id, when the run's records
    were pseudonymised. False (and a warning) if it could not."""
    from tootlake.lake.audit import AuditEntry, record_run

    if consent is None:
        consent = Consent.of(include_opted_out=include_opted_out)

    details: dict[str, dict[str, Any]] = {
        host: _run_instance(entry) for host, entry in (instances or {}).items()
    }
    for host, digest in (rules or {}).items():  # the hash of its rules, when read
        details.setdefault(host, {})["rules_sha256"] = digest
    for host, why in (refused or {}).items():
        details[host] = {"status": "refused by the policy", "detail": why}
    entry = AuditEntry(
        command=kind,
        started_at=started_at,
        policy_sha256=policy_sha256,
        consent=consent.describe(),
        instances=sorted(instances or {}),
        refused=sorted(refused or {}),
        instance_details=details,
        posts=stats.posts,
        edits=stats.edits,
        deletes_received=stats.deletes,
        rejected=stats.rejected,
        skipped=dict(stats.skipped),
        retain_days=retain_days,
        retention_removed=retention_removed,
        stats=stats.as_dict(),
        pseudonymised=key_id is not None,
        key_id=key_id,
    )
    return record_run(lake, entry)


class Recorder:
    """Turns events into lake records: posts, edits (new versions) and deletes.

    A delete names only the observing instance's id; the uri comes from a bounded map of
    recently seen (instance, id) pairs (`remember`, about 350 bytes an entry). Deletes of
    older posts keep their (instance, id), and the lake's views resolve them against every
    version ever written: the map only saves them that work.

    With `dedupe=True` (the collector) a post is written once however many instances show
    it: the first time a version (uri, edited_at) is seen it becomes a Post; the same version
    on another instance becomes a Sighting; seen again on the same instance, nothing. The
    written versions live in two generations of `remember_uris // 2` hashed uris each
    (about 100 bytes an entry): a post seen again after both rotated out is written again,
    which the lake's `posts` view folds away.
    """

    def __init__(
        self,
        stats: RunStats,
        *,
        include_opted_out: bool = False,
        consent: Consent | None = None,
        remember: int = 100_000,
        dedupe: bool = False,
        remember_uris: int = 600_000,
        pseudonymizer: Pseudonymizer | None = None,
        remember_accounts: int = 100_000,
    ) -> None:
        self.stats = stats
        # records leave pseudonymised, as do the messages of bad input (issue 12)
        self.pseudonymizer = pseudonymizer
        self.consent = Consent.given(consent, include_opted_out)
        self.include_opted_out = self.consent.include_opted_out
        self.remember = remember
        self.dedupe = dedupe
        self.remember_uris = remember_uris
        self._uris: OrderedDict[tuple[str | None, str], str] = OrderedDict()
        self._written: dict[int, str] = {}  # hash(uri) -> version, the newer generation
        self._written_old: dict[int, str] = {}
        # authors seen opted out by `noindex` (qualified acct), most recent last
        self._quiet: OrderedDict[str, None] = OrderedDict()
        self.remember_accounts = remember_accounts
        # The fused path (`use_rows`): posts go into a native accumulator of Arrow columns,
        # `rows`, instead of Post objects; `record` then gives `rows` itself for a post.
        self.new_rows: Callable[[], Any] | None = None
        self.rows: Any = None

    def use_rows(self, new_rows: Callable[[], Any | None]) -> None:
        """Posts as rows of `new_rows()` accumulators (`tootlake.lake.writer.post_rows`),
        one per batch (`batches`), when it makes them (the native helpers) and records need
        not be pseudonymised: no Post object per post."""
        if self.pseudonymizer is None and new_rows() is not None:
            self.new_rows = new_rows

    def bad(self, exc: BadInput | str, *, file: str | None = None, example: str = "") -> None:
        """Count a bad input; the first 20 are kept as examples.

        A bad line of a replayed `file` is also counted per file, with the file's first
        `BAD_LINE_EXAMPLES` (`example`: the line and why), for the summary a replay ends
        with. That summary is its report, so the line itself is logged at DEBUG: a folder of
        non-JSON files made thousands of WARNING lines. Other bad input (a live source, whose
        run may last days) has its first 20 logged at WARNING."""
        self.stats.bad += 1
        if self.pseudonymizer is not None:  # reasons may quote ids and uris
            exc, example = self.pseudonymizer.message(str(exc)), self.pseudonymizer.message(example)
        kept = len(self.stats.bad_examples) < 20
        if kept:
            self.stats.bad_examples.append(str(exc))
        if file is not None:
            self.stats.bad_lines[file] += 1
            examples = self.stats.bad_line_examples.setdefault(file, [])
            if len(examples) < BAD_LINE_EXAMPLES:
                examples.append(example or str(exc))
        log.log(logging.WARNING if kept and file is None else logging.DEBUG, "%s", exc)

    def record(self, event: Event) -> Post | Delete | Sighting | Reject | None:
        self.stats.events += 1
        kind = event.kind
        if kind == DELETE:
            assert event.id is not None
            self.stats.deletes += 1
            uri = self._uris.pop((event.observed_on, event.id), None)
            delete = Delete(event.observed_on, event.id, uri, datetime.now(UTC))
            return delete if self.pseudonymizer is None else self.pseudonymizer.delete(delete)
        if kind == REJECT:
            reject = event.reject
            assert reject is not None
            self.stats.rejected += 1
            where = reject.where or reject.observed_on or reject.source
            at_fault = f" [{reject.field}]" if reject.field else ""
            message = f"{where}: {reject.reason}{at_fault}; rejected"
            if reject.source == "replay" and reject.where:  # where: "FILE:LINE"
                file = reject.where.rpartition(":")[0]
                self.bad(message, file=file, example=f"{where}: {reject.reason}{at_fault}")
            else:
                self.bad(message)
            return reject if self.pseudonymizer is None else self.pseudonymizer.reject(reject)
        status = event.status
        assert status is not None
        if status.coerced:
            self.stats.coerced.update(status.coerced)
        reason = self.consent.gate(status)
        if reason is None and self._quiet and self._author(status, event) in self._quiet:
            reason = NOINDEX  # said on its home instance; this copy cannot tell
        if reason is not None:
            self.stats.skipped[reason] += 1
            if reason in AUTHOR_GATES:
                return self._withdraw(status, event, reason)
            return None
        key = hash(status.uri)
        version = status.version
        written = self._written_version(key)
        if self.dedupe and written is not None and version <= written:
            return self._sighting(event, status)  # this version, or a newer one, is written
        # the gates just found the author not opted out, unless opt-outs are kept
        known = False if not self.include_opted_out else None
        rows = self.rows
        consent = (
            None if rows is None else append_post(rows, status, event.observed_on, opted_out=known)
        )
        if consent is not None:
            post = None  # a row of `rows`: as to_post would have made it
            observed_on = event.observed_on or None
        else:
            post = to_post(status, event.observed_on, opted_out=known)
            consent, observed_on = post.consent or "", post.observed_on
        # The first version of a post this run sees is a post, edited or not (a status first
        # seen after its edit is one more post in the lake); a newer version is an edit; the
        # same or an older one again (only without dedupe: replay) is a repeat, written for
        # the merge to fold. As far as the bounded memory knows: a post forgotten counts again.
        if written is None:
            self.stats.posts += 1
            self.stats.consent[consent] += 1  # posts, not versions
        elif version > written:
            self.stats.edits += 1
        else:
            self.stats.repeats += 1
            version = written
        self._remember(observed_on, status.id, status.uri)  # (the post's id and uri)
        # (without dedupe too: a later copy failing an author's gate withdraws the post)
        self._written[key] = version
        if len(self._written) * 2 >= self.remember_uris:
            self._written_old, self._written = self._written, {}
        if post is None:
            return rows  # type: ignore[no-any-return]
        return post if self.pseudonymizer is None else self.pseudonymizer.post(post)

    def _author(self, status: Status, event: Event) -> str:
        """The author's qualified acct, as the memory of `noindex` accounts keys it."""
        acct = status.author.lower()
        return acct if "@" in acct else f"{acct}@{event.observed_on or ''}"

    def _withdraw(self, status: Status, event: Event, gate: str) -> Delete | None:
        """A copy failed an author's gate: remember a `noindex` (Mastodon says it on the
        author's home instance only, so later copies from elsewhere are skipped too), and
        when this post was written from a copy that could not tell, or before its author
        opted out, remove it: a Delete naming the uri, with the gate as its reason."""
        if gate == NOINDEX and not self.include_opted_out:
            author = self._author(status, event)
            self._quiet[author] = None
            self._quiet.move_to_end(author)
            if len(self._quiet) > self.remember_accounts:
                self._quiet.popitem(last=False)
        key = hash(status.uri)
        if self._written.pop(key, None) is None and self._written_old.pop(key, None) is None:
            return None  # not written (as far as the bounded memory knows)
        self.stats.withdrawn[gate] += 1
        delete = Delete(event.observed_on, status.id, status.uri, datetime.now(UTC), gate)
        return delete if self.pseudonymizer is None else self.pseudonymizer.delete(delete)

    def _remember(self, observed_on: str | None, status_id: str, uri: str) -> None:
        key = (observed_on, status_id)
        self._uris[key] = uri
        if len(self._uris) > self.remember:
            self._uris.popitem(last=False)

    def _written_version(self, key: int) -> str | None:
        """The version of the post (its hashed uri) written last, as far as memory knows."""
        written = self._written.get(key)
        return self._written_old.get(key) if written is None else written

    def _sighting(self, event: Event, status: Status) -> Sighting | None:
        """A post written already, seen on another instance; None when seen here before."""
        uri = status.uri
        if self._uris.get((event.observed_on, status.id)) == uri:
            self.stats.duplicates += 1
            return None
        self._remember(event.observed_on, status.id, uri)
        self.stats.sightings += 1
        sighting = Sighting(uri, event.observed_on, status.id, datetime.now(UTC))
        return sighting if self.pseudonymizer is None else self.pseudonymizer.sighting(sighting)


def merge_lake(lake: str, *, isolated: bool = False) -> None:
    """Bring the lake's `posts` table up to date (`tootlake.lake.maintenance.merge_posts`)
    after a run wrote to it. A failure is logged, not raised: the run's rows are committed,
    the views resolve what is not merged yet, and the next merge or compaction catches up.

    `isolated`: merge in a fresh child process (spawned, never forked: see `replay`). A
    long-running collector uses it so that the merge's transient memory (DuckDB's window and
    delta-rs' writer: about 300 MB for 200k posts) goes back to the system when it is done,
    and a crash inside delta-rs cannot take the collector down."""
    try:
        if isolated:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                stats = pool.submit(_merge_posts, lake).result()
        else:
            stats = _merge_posts(lake)
    except TootlakeError as exc:
        log.warning("Could not merge the posts table of %s (the next run will): %s", lake, exc)
        return
    except Exception as exc:  # a child that died: the lake is as it was
        log.warning("Could not merge the posts table of %s (the next run will): %r", lake, exc)
        return
    if stats.commits:
        log.info(
            "posts merged: %d rows read, %d upserted, %d deleted in %.2f s",
            stats.tail_rows,
            stats.upserted,
            stats.deleted,
            stats.seconds,
        )


def _merge_posts(lake: str) -> MergeStats:
    # (imported here: a collector that merges in a child need not load DuckDB itself)
    from tootlake.lake.maintenance import merge_posts

    return merge_posts(lake)


class PeriodicMerge:
    """An `on_commit` hook that merges `posts` at most every `every` seconds, so a long
    collection keeps the table that other engines read fresh."""

    def __init__(self, lake: str, every: float | None, then: Callable[[], None] | None = None):
        self.lake = lake
        self.every = every
        self.then = then
        self._last = time.monotonic()

    def __call__(self) -> None:
        if self.then is not None:
            self.then()
        if self.every is not None and time.monotonic() - self._last >= self.every:
            merge_lake(self.lake, isolated=True)
            self._last = time.monotonic()


def batches(
    events: Iterable[Event | None],
    recorder: Recorder,
    *,
    batch_size: int,
    linger: float | None = None,
    stop: threading.Event | None = None,
    batch_bytes: int = BATCH_BYTES,
) -> Iterator[Batch]:
    """Records of `events` in batches of `batch_size` records or `batch_bytes` bytes of
    statuses, each with the acks of its events; the last batch may be partial (or empty). A
    live source yields None when it has nothing for a moment: with `linger`, a partial batch is
    then sent once its first event is that old."""
    records: list[Post | Delete | Sighting | Reject] = []
    acks: list[Callable[[], None]] = []
    first = 0.0  # when the pending batch got its first event
    size = 0
    new_rows = recorder.new_rows
    # the fused path: the batch's posts as one accumulator of columns (`Recorder.use_rows`)
    rows = recorder.rows = None if new_rows is None else new_rows()
    count = 0  # records and rows
    for event in events:
        if event is not None:
            if not count and not acks:
                first = time.monotonic()
            record = recorder.record(event)
            if record is not None:
                if record is not rows:
                    records.append(record)
                count += 1
                size += event.size
            if event.ack is not None:
                acks.append(event.ack)
        if (
            count >= batch_size
            or size >= batch_bytes
            or (linger is not None and (count or acks) and time.monotonic() - first >= linger)
        ):
            batch = Batch(_with_rows(records, rows), acks)
            if rows is not None and len(rows):  # (decided before it is handed over: the
                assert new_rows is not None  # sink may be emptying it once it is)
                rows = recorder.rows = new_rows()
            yield batch
            records, acks, size, count = [], [], 0, 0
        if stop is not None and stop.is_set():
            break
    yield Batch(_with_rows(records, rows), acks)
    recorder.rows = None


def _with_rows(records: list[Any], rows: Any) -> list[Any]:
    """A batch's records, its posts' accumulator of rows last (when it holds any)."""
    if rows is not None and len(rows):
        records.append(rows)
    return records


def run(
    events: Iterable[Event | None],
    sink: LakeWriter,
    *,
    recorder: Recorder,
    transport: Transport | None = None,
    batch_size: int = 2000,
    stop: threading.Event | None = None,
    on_progress: Callable[[RunStats], None] | None = None,
    linger: float | None = None,
    on_commit: Callable[[], None] | None = None,
    keep_writing: threading.Event | None = None,
) -> RunStats:
    """Move events into the lake until the source ends (or `stop` is set); return the stats.

    A live source yields None when it has nothing for a moment; with `linger` a partial batch
    waits at most that many seconds before it goes to the sink. `on_commit` runs after each
    commit (the collector saves its cursors there). `keep_writing`: the event that ends the
    source (the collector's stop); with it, a lake that cannot be written for a while (a full
    disk, S3 refusing) does not end the run: the batches wait, uncommitted, the source waits
    once the sink holds `max_bytes`, and the flush is tried again
    (`tootlake.transports.KeepWriting`; `write_failures` counts the failed tries). Once the
    event is set the source may end, and the run's last flush is tried once.
    """
    stats = recorder.stats
    queue = transport or MemoryTransport()
    failure: list[BaseException] = []
    new_rows = getattr(sink, "new_rows", None)
    if new_rows is not None:  # the fused path: posts as rows of Arrow columns, no Post objects
        recorder.use_rows(new_rows)

    def produce() -> None:
        try:
            for batch in batches(events, recorder, batch_size=batch_size, linger=linger, stop=stop):
                queue.send(batch)
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)
        finally:
            queue.close()

    producer = threading.Thread(target=produce, name="tootlake-source", daemon=True)
    producer.start()
    keep = None
    if keep_writing is not None:
        keep = KeepWriting(
            (LakeError, OSError), lambda: sink.held_bytes, sink.max_bytes, keep_writing.is_set
        )
    last_progress = 0.0

    def progress() -> None:
        nonlocal last_progress
        if on_progress is not None and time.monotonic() - last_progress > 0.5:
            stats.elapsed = time.monotonic() - stats.started
            stats.commits = sink.stats.commits
            stats.write_failures = keep.failures if keep is not None else 0
            on_progress(stats)
            last_progress = time.monotonic()

    try:
        drain(
            queue,
            sink,
            finished=lambda records: records is None and not producer.is_alive(),
            on_commit=on_commit,
            on_tick=progress,
            keep=keep,
        )
    finally:
        stats.write_failures = keep.failures if keep is not None else 0
    producer.join()
    stats.commits = sink.stats.commits
    stats.elapsed = time.monotonic() - stats.started
    if failure:
        raise failure[0]
    return stats


def _replay_events(
    paths: Iterable[str | Path],
    observed_on: str | None,
    consent: Consent,
    pseudonymizer: Pseudonymizer | None = None,
) -> tuple[Iterator[Event], Recorder]:
    """The events of recorded files, and the recorder that counts their bad lines."""
    from tootlake.sources.replay import ReplaySource

    recorder = Recorder(RunStats(), consent=consent, pseudonymizer=pseudonymizer)
    source: Source = ReplaySource(paths, observed_on=observed_on, on_bad=recorder.bad)
    return source.events(), recorder


def replay(
    paths: Iterable[str | Path],
    lake: str,
    *,
    observed_on: str | None = None,
    include_opted_out: bool = False,
    consent: Consent | None = None,
    on_progress: Callable[[RunStats], None] | None = None,
    sink: LakeWriter | None = None,
    workers: int | None = 1,
    merge: bool = True,
    pseudonymizer: Pseudonymizer | None = None,
) -> RunStats:
    """Replay recorded statuses (JSON lines or SSE captures) into the lake.

    `workers`: processes replaying pieces of the input side by side (None: one per core; the
    input is cut only where pieces get at least `sources.replay.MIN_PIECE` bytes). Each
    writes files of its own; a post whose versions or delete land in two pieces is folded by
    the lake's views like any other (docs/lake.md); each piece counts the first version it
    sees of a post as a post, so such a post counts in each. The workers are started by a fresh
    server process (multiprocessing's forkserver), never forked from the caller, whose
    threads (Kafka clients, DuckDB, a notebook's) a fork would break.

    `merge`: bring the `posts` table up to date at the end (`merge_lake`).
    `consent`: the consent gates (`tootlake.record.Consent`; `include_opted_out` is the
    "none" mode).
    `pseudonymizer`: pseudonymise every record (`tootlake.record.pseudonymize`); the lake
    must be pseudonymised with the same key, or new (`tootlake.lake.pseudonyms.claim`)."""
    from tootlake.lake.pseudonyms import claim

    started_at = datetime.now(UTC)
    paths = list(paths)
    key_id = None if pseudonymizer is None else pseudonymizer.key_id
    claim(lake, key_id)  # before anything is written: never a mix of raw and pseudonyms
    consent = Consent.given(consent, include_opted_out)
    events, recorder = _replay_events(paths, observed_on, consent, pseudonymizer)
    stats: RunStats | None = None
    if sink is None and workers != 1:
        from tootlake.sources.replay import cut

        pieces = cut(paths, workers or os.cpu_count() or 1)
        if len(pieces) > 1:
            stats = _replay_pieces(
                pieces, lake, observed_on, consent, on_progress, workers, pseudonymizer
            )
    if stats is None:
        with fewer_collections():  # posts live until their file is written: see tootlake._gc
            stats = run(
                events,
                sink or LakeWriter(lake),
                recorder=recorder,
                on_progress=on_progress,
            )
    if merge:
        merge_lake(lake)
    save_run(lake, "replay", stats, started_at)
    audit_run(lake, "replay", stats, started_at, consent=consent, key_id=key_id)
    return stats


# per piece: events, posts, edits, repeats, rejected (the parent's progress line adds them up)
_PROGRESS_FIELDS = 5
_progress: Any = None  # the shared counters, in a worker process


def _replay_pieces(
    pieces: list[Any],
    lake: str,
    observed_on: str | None,
    consent: Consent,
    on_progress: Callable[[RunStats], None] | None,
    workers: int | None,
    pseudonymizer: Pseudonymizer | None = None,
) -> RunStats:
    """Replay pieces of files in worker processes, then add their stats up."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("forkserver")
    # the server imports these once; each worker forked from it starts with them
    context.set_forkserver_preload(["tootlake.pipeline", "tootlake.sources.replay"])
    counters = context.Array("q", _PROGRESS_FIELDS * len(pieces), lock=False)
    total = RunStats()
    with ProcessPoolExecutor(
        max_workers=min(len(pieces), workers or os.cpu_count() or 1),
        mp_context=context,
        initializer=_init_piece_worker,
        initargs=(counters,),
    ) as pool:
        futures = [
            pool.submit(_replay_piece, i, piece, lake, observed_on, consent, pseudonymizer)
            for i, piece in enumerate(pieces)
        ]
        pending: set[Any] = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                for future in pending:
                    future.cancel()
                break
            if on_progress is not None:
                now = list(counters)
                total.events, total.posts, total.edits, total.repeats, total.rejected = (
                    sum(now[k::_PROGRESS_FIELDS]) for k in range(_PROGRESS_FIELDS)
                )
                total.elapsed = time.monotonic() - total.started
                on_progress(total)
        results = [future.result() for future in futures]  # the first failure is raised
    merged = RunStats(started=total.started)
    for stats in results:
        merged.add(stats)
    merged.elapsed = time.monotonic() - merged.started
    return merged


def _init_piece_worker(counters: Any) -> None:
    global _progress
    _progress = counters
    skip_pandas_probe()  # a worker never hands pyarrow a pandas object (see tootlake._arrow)


def _replay_piece(
    index: int,
    piece: Any,
    lake: str,
    observed_on: str | None,
    consent: Consent,
    pseudonymizer: Pseudonymizer | None = None,
) -> RunStats:
    from tootlake.sources.replay import ReplaySource

    recorder = Recorder(RunStats(), consent=consent, pseudonymizer=pseudonymizer)
    source = ReplaySource([piece.path], observed_on=observed_on, on_bad=recorder.bad)
    base = index * _PROGRESS_FIELDS

    def progress(stats: RunStats) -> None:
        if _progress is not None:
            counts = [stats.events, stats.posts, stats.edits, stats.repeats, stats.rejected]
            _progress[base : base + _PROGRESS_FIELDS] = counts

    with fewer_collections():
        stats = run(
            source.piece_events(piece), LakeWriter(lake), recorder=recorder, on_progress=progress
        )
    progress(stats)
    return stats


def produce(
    events: Iterable[Event | None],
    *,
    kafka: str,
    recorder: Recorder,
    topic: str | None = None,
    schema_registry: Any = None,
    batch_size: int = 2000,
    stop: threading.Event | None = None,
    on_progress: Callable[[RunStats], None] | None = None,
    config: dict[str, Any] | None = None,
    transport: KafkaTransport | None = None,
    linger: float | None = None,
) -> RunStats:
    """Send events to a Kafka topic as Avro envelopes (`tootlake sink` writes them to the lake).

    `kafka` is the bootstrap servers (HOST:PORT[,HOST:PORT...]); `topic` defaults to
    mastodon-posts; `schema_registry` (a URL, `mock://...`, or a SchemaRegistryClient) switches
    from Avro single-object encoding to the Confluent wire format; `config` overrides librdkafka
    producer settings. Events are acknowledged (their `ack` called) once delivered. The source
    is read on a thread that blocks while the broker is unreachable and the buffer is full;
    `stats.transport` says so for a progress line. Returns when every record is delivered.
    With `linger`, a partial batch is sent once its first event is that many seconds old (live
    sources, whose events may yield None as idle ticks).
    """
    from tootlake.kafka.producer import DEFAULT_TOPIC, KafkaTransport

    stats = recorder.stats
    stop = stop or threading.Event()
    owned = transport is None
    # a pseudonymising recorder's key id rides on every message: the sink refuses a mix
    key_id = None if recorder.pseudonymizer is None else recorder.pseudonymizer.key_id
    sender = transport or KafkaTransport(
        kafka,
        topic or DEFAULT_TOPIC,
        schema_registry=schema_registry,
        config=config,
        stop=stop,
        key_id=key_id,
    )
    failure: list[BaseException] = []

    def read_source() -> None:
        try:
            for batch in batches(events, recorder, batch_size=batch_size, linger=linger, stop=stop):
                sender.send(batch)
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    def progress() -> None:
        stats.elapsed = time.monotonic() - stats.started
        stats.transport = sender.describe()
        if on_progress is not None:
            on_progress(stats)

    reader = threading.Thread(target=read_source, name="tootlake-source", daemon=True)
    reader.start()
    try:
        while reader.is_alive():
            reader.join(0.5)
            progress()
        while not failure and sender.flush(0.5):  # deliver the rest, still showing progress
            sender.raise_if_failed()
            progress()
    except BaseException:
        stop.set()  # Ctrl-C: stop reading; what is not delivered is not acknowledged
        reader.join(5)
        if owned:
            sender.close(timeout=5)
        raise
    if owned:
        sender.close()
    progress()
    if failure:
        raise failure[0]
    return stats


def replay_to_kafka(
    paths: Iterable[str | Path],
    *,
    kafka: str,
    topic: str | None = None,
    schema_registry: Any = None,
    observed_on: str | None = None,
    include_opted_out: bool = False,
    consent: Consent | None = None,
    on_progress: Callable[[RunStats], None] | None = None,
    config: dict[str, Any] | None = None,
    pseudonymizer: Pseudonymizer | None = None,
) -> RunStats:
    """Replay recorded statuses into a Kafka topic (see `produce`); with `pseudonymizer`,
    pseudonymised records only."""
    consent = Consent.given(consent, include_opted_out)
    events, recorder = _replay_events(paths, observed_on, consent, pseudonymizer)
    return produce(
        events,
        kafka=kafka,
        topic=topic,
        schema_registry=schema_registry,
        recorder=recorder,
        on_progress=on_progress,
        config=config,
    )
