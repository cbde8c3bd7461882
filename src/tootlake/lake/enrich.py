"""Language identification of posts' text, on demand (`tootlake enrich`), into the lake's
`languages` table.

Mastodon does not detect languages; the `language` of a post is whatever its client tagged
(often the user's default). `enrich()` detects the language of the `text` of every post of
the `posts` view that the `languages` table has no row for yet, with lingua
(`lingua-language-detector`, made for short text: the extra `lang`), and appends

    uri                  the post
    language_detected    ISO 639-1 code of the most likely language; NULL when the text has
                         fewer than `min_letters` letters once links, @mentions, #hashtags and
                         :emoji: are taken out (too little to tell)
    language_confidence  lingua's confidence in it, 0..1 (NULL with no detection)
    detected_at          when it was detected (UTC)
    detector             what detected it ("lingua 2.1.1")
    date                 partition: the day of detected_at

one Delta commit per batch (`tables.append`; a batch is at most `batch_posts` posts and about
BATCH_TEXT_BYTES of their uris and texts, and at least one post), so an interrupted run keeps
what it did and the next one goes on where it stopped. A run that wrote rows appends one to
the `audit` table (command `enrich`: the posts looked at and the run's statistics), even when
interrupted. Every post looked at gets a row (NULL when its text is too short), so that it is
not read again. The detection is of the text at the time it ran: a later edit is not detected
again.

Where it runs, by measurement (bench/results/languages.md): lingua loads about 1 GB of models
and takes seconds per thousand posts, so neither the collector nor the report pays for it; it
runs when asked, over the posts not yet detected.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from tootlake.errors import MissingDependency
from tootlake.lake.audit import AuditEntry, record_run
from tootlake.lake.layout import LANGUAGES

__all__ = [
    "BATCH_POSTS",
    "BATCH_TEXT_BYTES",
    "LANGUAGES_SCHEMA",
    "MAX_TEXT",
    "MIN_LETTERS",
    "EnrichStats",
    "detect_languages",
    "detector",
    "detector_name",
    "enrich",
    "letters",
    "plain_words",
]

# The columns of the `languages` table (without `date`, its partition column).
LANGUAGES_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string(), nullable=False),
        pa.field("language_detected", pa.string()),
        pa.field("language_confidence", pa.float64()),
        pa.field("detected_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("detector", pa.string()),
    ]
)
# Fewer letters than this (links, mentions, hashtags and emoji codes left out) are too little
# to tell a language by: lingua's accuracy on the labelled real posts falls below it
# (bench/results/languages.md).
MIN_LETTERS = 20
BATCH_POSTS = 20_000  # posts detected and committed at a time
# Characters of a text looked at: a language shows in far fewer (Mastodon's limit is 500), and
# a server can send posts of megabytes (lingua: about 1 s and 10 MB of memory per MB of text)
MAX_TEXT = 10_000
# Bytes (UTF-8) of uris and texts detected and committed at a time, whatever BATCH_POSTS: real
# posts have about 220 bytes of text and 64 of uri (tests/fixtures/real), so 20,000 of them
# are some 6 MB and are cut by BATCH_POSTS alone; 20,000 hostile posts of MAX_TEXT 4-byte
# characters would be 800 MB of Arrow and as much again of Python strings (a str takes at most
# as many bytes as its UTF-8), then their cleaned copies. 16 MiB keeps a batch of any posts at
# a few tens of MB, and a lake of long posts costs only more commits (one per ~400 such posts).
BATCH_TEXT_BYTES = 16 * 1024 * 1024

_NOT_WORDS = re.compile(
    r"https?://\S+"  # links
    r"|(?<!\w)@[\w.-]+(?:@[\w.-]+)?"  # @user, @user@host
    r"|(?<!\w)#\w+"  # hashtags: often English, or names, whatever the post's language
    r"|:[\w+-]+:"  # custom emoji codes
)


def plain_words(text: str | None) -> str:
    """`text` without links, @mentions, #hashtags and :emoji: codes: what is left to tell a
    language by."""
    return " ".join(_NOT_WORDS.sub(" ", text or "").split())


def letters(text: str) -> int:
    """How many letters `text` has (any script)."""
    return sum(1 for ch in text if ch.isalpha())


def _lingua() -> Any:
    try:
        import lingua
    except ImportError as exc:
        raise MissingDependency("lingua-language-detector", "lang") from exc
    return lingua


def detector(*, low_accuracy: bool = False) -> Any:
    """A lingua detector of all the languages it knows (75). Models load on first use
    (about 1 GB and 15 s in high accuracy mode; `low_accuracy` loads trigrams only)."""
    lingua = _lingua()
    builder = lingua.LanguageDetectorBuilder.from_all_languages()
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    return builder.build()


def detector_name(*, low_accuracy: bool = False) -> str:
    from importlib.metadata import version

    mode = " low-accuracy" if low_accuracy else ""
    return f"lingua {version('lingua-language-detector')}{mode}"


def detect_languages(
    texts: Sequence[str | None],
    *,
    detect: Any = None,
    min_letters: int = MIN_LETTERS,
) -> list[tuple[str | None, float | None]]:
    """(ISO 639-1 code, confidence) of each text (of its first MAX_TEXT characters); (None,
    None) for a text with fewer than `min_letters` letters once links, mentions, hashtags and
    emoji codes are out, or one lingua cannot place. `detect` is a `detector()` (one is built
    when None)."""
    detect = detect or detector()
    cleaned = [plain_words(None if text is None else text[:MAX_TEXT]) for text in texts]
    enough = [i for i, text in enumerate(cleaned) if letters(text) >= min_letters]
    out: list[tuple[str | None, float | None]] = [(None, None)] * len(texts)
    if not enough:
        return out
    values = detect.compute_language_confidence_values_in_parallel([cleaned[i] for i in enough])
    for i, ranked in zip(enough, values, strict=True):
        if ranked and ranked[0].value > 0:
            best = ranked[0]
            out[i] = (best.language.iso_code_639_1.name.lower(), float(best.value))
    return out


@dataclass
class EnrichStats:
    """What one `enrich()` run did."""

    examined: int = 0  # posts looked at (each got a row)
    detected: int = 0  # of them, with a language
    too_short: int = 0  # of them, with too little text (no language)
    skipped_short: int = 0  # posts with fewer characters than min_letters: no row, not read
    seconds: float = 0.0
    detect_seconds: float = 0.0  # of which in lingua
    detector: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The posts to look at: not in `languages` yet, and with at least as many characters as the
# letters asked for (characters >= letters: a cheap first cut in DuckDB).
# `bytes`: of the uri and text (strlen counts bytes), to cut batches by.
_TODO = f"""
SELECT uri, text, strlen(uri) + coalesce(strlen(text), 0) AS bytes
FROM (
    SELECT p.uri, substr(p.text, 1, {MAX_TEXT}) AS text  -- (a post of megabytes: bounded)
    FROM posts p
    ANTI JOIN languages l ON l.uri = p.uri
    WHERE p.characters >= ?
)
"""


def enrich(
    lake: str,
    *,
    min_letters: int = MIN_LETTERS,
    limit: int | None = None,
    low_accuracy: bool = False,
    batch_posts: int = BATCH_POSTS,
    on_batch: Callable[[EnrichStats], None] | None = None,
    now: Callable[[], datetime] | None = None,
) -> EnrichStats:
    """Detect the language of every post of `lake` not detected yet (at most `limit`) and
    append the results to its `languages` table, a commit per `batch_posts` posts (fewer when
    they have more than BATCH_TEXT_BYTES of uris and texts). `on_batch` is called with the
    running totals after each commit."""
    from tootlake.lake import tables
    from tootlake.lake.reader import open_lake

    started = time.perf_counter()
    started_at = datetime.now(UTC)
    clock = now or (lambda: datetime.now(UTC))
    detect = detector(low_accuracy=low_accuracy)
    stats = EnrichStats(detector=detector_name(low_accuracy=low_accuracy))
    con = open_lake(lake)
    try:
        (stats.skipped_short,) = con.execute(
            "SELECT count(*) FROM posts p ANTI JOIN languages l ON l.uri = p.uri "
            "WHERE coalesce(p.characters, 0) < ?",
            [min_letters],
        ).fetchall()[0]
        sql = _TODO + (f" LIMIT {int(limit)}" if limit is not None else "")
        max_bytes = max(1, BATCH_TEXT_BYTES)
        # DuckDB's Arrow batches are of rows: few enough that one holds no more than a batch's
        # bytes of texts (MAX_TEXT characters of at most 4 bytes each) besides its uris
        read_rows = max(1, min(batch_posts, max_bytes // (4 * MAX_TEXT)))
        reader = con.sql(sql, params=[min_letters]).to_arrow_reader(read_rows)
        for batch in _batches(reader, max_rows=max(1, batch_posts), max_bytes=max_bytes):
            uris = batch.column("uri").to_pylist()
            texts = batch.column("text").to_pylist()
            t = time.perf_counter()
            found = detect_languages(texts, detect=detect, min_letters=min_letters)
            stats.detect_seconds += time.perf_counter() - t
            at = clock()
            data = pa.table(
                {
                    "uri": pa.array(uris, pa.string()),
                    "language_detected": pa.array([f[0] for f in found], pa.string()),
                    "language_confidence": pa.array([f[1] for f in found], pa.float64()),
                    "detected_at": pa.array([at] * len(uris), pa.timestamp("us", tz="UTC")),
                    "detector": pa.array([stats.detector] * len(uris), pa.string()),
                    "date": pa.array([at.date()] * len(uris), pa.date32()),
                },
                schema=LANGUAGES_SCHEMA.append(tables.DATE_FIELD),
            )
            tables.append(
                lake, LANGUAGES, data, metadata=tables.commit_metadata(operation="enrich")
            )
            stats.examined += len(uris)
            stats.detected += sum(1 for f in found if f[0] is not None)
            stats.too_short = stats.examined - stats.detected
            if on_batch is not None:
                on_batch(stats)
    finally:
        con.close()
        stats.seconds = time.perf_counter() - started
        if stats.examined:  # what it committed is in the lake, finished or not
            record_run(
                lake,
                AuditEntry("enrich", started_at, posts=stats.examined, stats=stats.as_dict()),
            )
    return stats


def _batches(reader: Any, *, max_rows: int, max_bytes: int) -> Iterator[pa.Table]:
    """The rows of `reader` (Arrow batches with a `bytes` column) in tables of at most
    `max_rows` rows and at most `max_bytes` bytes (at least one row each, however big)."""
    # The table being gathered: `pending` slices, then the current batch's rows from `start`
    # on; `rows` and `size` count both. (A slice keeps its whole batch: a table holds at most
    # its own bytes and those of two reader batches.)
    pending: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in reader:
        start = 0
        for i, n in enumerate(batch.column("bytes").to_pylist()):
            if rows and (rows >= max_rows or size + (n or 0) > max_bytes):
                if i > start:
                    pending.append(batch.slice(start, i - start))
                yield pa.Table.from_batches(pending, schema=reader.schema)
                pending, rows, size, start = [], 0, 0, i
            rows += 1
            size += n or 0
        if start < batch.num_rows:
            pending.append(batch.slice(start))
    if rows:
        yield pa.Table.from_batches(pending, schema=reader.schema)
