"""`tootlake enrich` bounds each detection batch (and Delta commit) by bytes as well as by posts
(audit): 20,000 hostile posts of MAX_TEXT 4-byte characters were one batch of 800 MB of Arrow
and several times that of Python strings. A batch is now at most `batch_posts` posts and about
BATCH_TEXT_BYTES of uris and texts, and at least one post; normal data is one batch as before."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tootlake.lake import enrich as enrich_module
from tootlake.lake import tables
from tootlake.lake.enrich import MAX_TEXT, EnrichStats, detector, enrich
from tootlake.lake.layout import LANGUAGES
from tootlake.lake.reader import open_lake
from tootlake.pipeline import replay

from .smalllake import status

pytest.importorskip("lingua")

AT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
SENTENCES = {
    "en": "the quick brown fox jumps over the lazy dog while we watch it ",
    "de": "der schnelle braune Fuchs springt über den faulen Hund und wir sehen zu ",
    "fr": "le renard brun rapide saute par-dessus le chien paresseux pendant que ",
}


@pytest.fixture(scope="module")
def lingua() -> Any:
    return detector(low_accuracy=True)  # (trigrams only: seconds to load, not a gigabyte)


class Spy:
    """Notes the texts of each batch given to `detect_languages` (then detects them)."""

    def __init__(self) -> None:
        self.detect = enrich_module.detect_languages
        self.batches: list[list[str | None]] = []

    def __call__(self, texts: Sequence[str | None], **kwargs: Any) -> Any:
        self.batches.append(list(texts))
        return self.detect(texts, **kwargs)


def text_bytes(texts: Sequence[str | None]) -> int:
    return sum(len((text or "").encode()) for text in texts)


def build_lake(folder: Path, contents: Sequence[str]) -> str:
    """A lake on disk with a post of each content (HTML), replayed from a JSON-lines capture."""
    folder.mkdir(parents=True, exist_ok=True)
    capture = folder / "in.jsonl"
    with open(capture, "w", encoding="utf-8") as handle:
        for n, content in enumerate(contents, 1):
            st = status(n, f"user{n}", "a.example", "2025-03-01T10:00:00.000Z", content)
            handle.write(json.dumps(st) + "\n")
    lake = str(folder / "lake")
    replay([capture], lake, observed_on="a.example", workers=1)
    return lake


def run(
    lake: str, monkeypatch: pytest.MonkeyPatch, lingua: Any, bound: int | None = None, **kwargs: Any
) -> Any:
    """enrich() with the shared detector, a fixed clock, a spy and BATCH_TEXT_BYTES = `bound`
    (the default when None): (stats, batches' texts, running totals at each on_batch call,
    commits of the languages table)."""
    spy = Spy()
    calls: list[int] = []

    def on_batch(stats: EnrichStats) -> None:
        calls.append(stats.examined)

    with monkeypatch.context() as patch:
        patch.setattr(enrich_module, "detector", lambda **_: lingua)
        patch.setattr(enrich_module, "detect_languages", spy)
        if bound is not None:
            patch.setattr(enrich_module, "BATCH_TEXT_BYTES", bound)
        stats = enrich(lake, low_accuracy=True, on_batch=on_batch, now=lambda: AT, **kwargs)
    table = tables.load(lake, LANGUAGES)
    commits = 0 if table is None else table.version() + 1
    return stats, spy.batches, calls, commits


def query(lake: str, sql: str) -> list[tuple[Any, ...]]:
    con = open_lake(lake)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def languages(lake: str) -> list[tuple[Any, ...]]:
    """The rows of the languages table; confidences to 9 digits (lingua's vary in the last
    bits from one call to the next, however the texts are batched)."""
    return query(
        lake,
        "SELECT uri, language_detected, round(language_confidence, 9), detected_at, detector, "
        "date FROM languages ORDER BY uri",
    )


def long_contents() -> list[str]:
    """Posts of several KB: of three languages, of 4-byte letters (Gothic), of emoji only
    (no letters: a NULL row), and one of far more than MAX_TEXT characters."""
    out = [f"<p>{SENTENCES[lang] * (20 + 7 * n)}</p>" for n in range(9) for lang in SENTENCES]
    out.append("<p>" + "𐌰𐌱𐌲𐌳 " * 800 + "</p>")  # 4-byte letters, 13.6 KB
    out.append("<p>" + "😀" * 3_500 + "</p>")  # 4-byte non-letters, 14 KB
    out.append(f"<p>{SENTENCES['en'] * 400}</p>")  # 24,800 characters: cut to MAX_TEXT
    return out


def test_long_posts_are_detected_in_batches_of_bounded_bytes(tmp_path, monkeypatch, lingua):
    bound = 12_000
    lake = build_lake(tmp_path / "small", long_contents())
    whole = str(tmp_path / "whole")
    shutil.copytree(lake, whole)
    posts = len(long_contents())

    stats, batches, calls, commits = run(lake, monkeypatch, lingua, bound)

    assert stats.examined == posts and stats.too_short >= 1  # (the emoji post)
    assert len(batches) == len(calls) == commits > 2
    assert sum(len(batch) for batch in batches) == posts
    assert calls == [sum(len(b) for b in batches[: i + 1]) for i in range(len(batches))]
    for batch in batches:
        assert batch, "a batch has at least one post"
        assert max(len(text or "") for text in batch) <= MAX_TEXT
        # within the bound (the uris count too), but a single post above it is its own batch
        assert len(batch) == 1 or text_bytes(batch) <= bound
    assert any(len(batch) > 1 for batch in batches), "posts are gathered up to the bound"
    assert any(text_bytes(batch) > bound for batch in batches)  # 4-byte posts: one a batch
    assert all(len(b) == 1 for b in batches if text_bytes(b) > bound)
    # gathered batches are full: the next post would not have fitted
    for batch, following in zip(batches, batches[1:], strict=False):
        uris = 100 * (len(batch) + 1)  # (at most, of the batch and the next post)
        assert text_bytes(batch) + len((following[0] or "").encode()) > bound - uris

    # the byte bound only changes how the posts are cut: a run with the default one has the
    # same rows, in one batch and one commit
    default, whole_batches, whole_calls, whole_commits = run(whole, monkeypatch, lingua)
    assert len(whole_batches) == len(whole_calls) == whole_commits == 1
    assert (default.examined, default.detected, default.too_short) == (
        stats.examined,
        stats.detected,
        stats.too_short,
    )
    assert languages(lake) == languages(whole)
    assert {row[1] for row in languages(lake)} >= {"en", "de", "fr", None}
    # and a later run has nothing left to do
    assert run(lake, monkeypatch, lingua)[0].examined == 0


def test_posts_are_cut_by_count_or_bytes_whichever_comes_first(tmp_path, monkeypatch, lingua):
    contents = [f"<p>{SENTENCES['de'] * 30}</p>" for _ in range(7)]  # 2.2 KB each
    lake = build_lake(tmp_path / "de", contents)
    ((size,),) = query(lake, "SELECT max(strlen(uri) + strlen(text)) FROM posts")
    assert size > 2_000
    bound = 4 * size + size // 2
    stats, batches, calls, commits = run(lake, monkeypatch, lingua, bound, batch_posts=3)
    assert [len(batch) for batch in batches] == [3, 3, 1]  # by count: 3 posts fit the bytes
    assert calls == [3, 6, 7] and commits == 3 and stats.detected == 7

    lake = build_lake(tmp_path / "de2", contents)
    stats, batches, calls, commits = run(lake, monkeypatch, lingua, bound, batch_posts=6)
    assert [len(batch) for batch in batches] == [4, 3]  # by bytes: a fifth would not fit
    assert calls == [4, 7] and commits == 2 and stats.detected == 7


def test_a_normal_run_of_short_posts_is_one_batch(tmp_path, monkeypatch, lingua):
    contents = [f"<p>{text} #tag @someone</p>" for text in SENTENCES.values()] * 3
    lake = build_lake(tmp_path / "short", contents)
    stats, batches, calls, commits = run(lake, monkeypatch, lingua)
    assert [len(batch) for batch in batches] == [len(contents)]
    assert calls == [len(contents)] and commits == 1
    assert stats.examined == stats.detected == len(contents)
    assert enrich_module.BATCH_TEXT_BYTES >= 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("read_rows", "max_rows", "max_bytes"),
    [(5, 3, 1_000), (5, 20, 250), (4, 6, 90), (1, 2, 10**9), (7, 100, 1), (3, 3, 300)],
)
def test_batches_cut_anywhere_in_the_readers_batches(read_rows, max_rows, max_bytes):
    """The cutting itself, across and within DuckDB's Arrow batches: greedy, in order, every row
    once, at most max_rows rows and max_bytes bytes a table unless a row alone is above it."""
    sizes = [(n * 37) % 160 + (200 if n % 11 == 0 else 0) for n in range(40)]
    schema = pa.schema([("uri", pa.string()), ("text", pa.string()), ("bytes", pa.int64())])
    rows = [(f"u{n}", "x" * size, size) for n, size in enumerate(sizes)]
    reader = pa.RecordBatchReader.from_batches(
        schema,
        [
            pa.record_batch(list(zip(*rows[i : i + read_rows], strict=True)), schema=schema)
            for i in range(0, len(rows), read_rows)
        ],
    )
    got = [
        table.column("uri").to_pylist()
        for table in enrich_module._batches(reader, max_rows=max_rows, max_bytes=max_bytes)
    ]
    expected: list[list[str]] = []
    size = 0
    for uri, _, n in rows:  # greedy: a new table when this row does not fit the current one
        if not expected or len(expected[-1]) >= max_rows or size + n > max_bytes:
            expected.append([])
            size = 0
        expected[-1].append(uri)
        size += n
    assert got == expected
    assert len(got) > 1
