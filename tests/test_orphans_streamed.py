"""Retention's removal of orphans (rows of `checks` and `languages` whose post is gone from
`posts_all`) streams them: the query that finds them was fetched whole (`fetchall`) and all
its DELETE predicates built before the first ran, millions of tuples in memory after a
retention run that expired millions of posts. Now it is read a few rows at a time, a
partition after another, and deleted as it comes with a bounded number of DELETEs pending;
what is removed, and the counts, are as before (NULL date, instance and id included)."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

import tootlake.lake.maintenance as maintenance
from tootlake.errors import LakeError
from tootlake.lake import tables
from tootlake.lake.checks import CHECKS_SCHEMA
from tootlake.lake.enrich import LANGUAGES_SCHEMA
from tootlake.lake.layout import CHECKS, LANGUAGES, POSTS_ALL
from tootlake.lake.maintenance import retain

from .test_audit_lake_hostile_nulls import NOW, another_tools_table, nullable, post_rows

DAYS: list[dt.date | None] = [dt.date(2024, 5, d) for d in (1, 2, 3)] + [None]
HOSTS: list[str | None] = ["a.example", "b.example", None]
KEEP_DAYS = 36500  # a cutoff a century back: retention expires nothing, orphans go all the same


def uri_of(host: str | None, status_id: str) -> str:
    return f"https://{host or 'nowhere'}/statuses/{status_id}"


def checks_of(host: str | None) -> tuple[list[str | None], list[str | None]]:
    """The ids of one partition's checks: (kept, orphans). An orphan twice (two rows); an id
    whose post is on another instance; a quote; a check without id."""
    kept: list[str | None] = ["k0", "k1"]
    orphans: list[str | None] = [*(f"o{i}" for i in range(5)), "o0", "it's", None]
    if host == "b.example":
        orphans.append("only-a")  # a.example's post, not b's
    return kept, orphans


def lake_with_orphans(tmp_path: Path) -> tuple[str, Counter[tuple[Any, ...]], int, set[Any], int]:
    """A lake whose posts_all holds k0 and k1 on every instance (and only-a on a.example),
    with checks and languages rows over three dates and the NULL date, each partition with
    kept rows and orphans. (kept checks, orphan checks, kept languages, orphan languages.)"""
    lake = str(tmp_path / "lake")
    posts = [(host, i) for host in HOSTS for i in ("k0", "k1")] + [("a.example", "only-a")]
    specs = [
        dict(uri=uri_of(host, i), id=i, observed_on=host, date=dt.date(2024, 5, 1 + n % 3))
        for n, (host, i) in enumerate(posts)
    ]
    tables.append(lake, POSTS_ALL, post_rows(specs))

    check_rows, kept_checks, orphan_checks = [], Counter[tuple[Any, ...]](), 0
    for day in DAYS:
        for host in HOSTS:
            kept, orphans = checks_of(host)
            for status_id in kept + orphans:
                check_rows.append(
                    dict(
                        observed_on=host,
                        id=status_id,
                        checked_at=NOW,
                        outcome="present",
                        http_status=200,
                        date=day,
                    )
                )
            kept_checks.update((day, host, i) for i in kept)
            orphan_checks += len(orphans)
    check_schema = nullable(CHECKS_SCHEMA.append(tables.DATE_FIELD), "date")
    another_tools_table(lake, CHECKS, pa.Table.from_pylist(check_rows, schema=check_schema))

    language_rows, orphan_languages = [], 0
    kept_languages: set[tuple[Any, ...]] = set()
    for day in DAYS:
        kept_uris: list[str | None] = [uri_of("a.example", "k0"), uri_of(None, "k1")]
        gone = [f"https://gone.example/{day}/{i}" for i in range(6)]
        orphan_uris: list[str | None] = [*gone, gone[0], "https://gone.example/it's", None]
        for uri in kept_uris + orphan_uris:
            language_rows.append(
                dict(
                    uri=uri,
                    language_detected="en",
                    language_confidence=0.9,
                    detected_at=NOW,
                    detector="test",
                    date=day,
                )
            )
        kept_languages.update((day, u) for u in kept_uris)
        orphan_languages += len(orphan_uris)
    language_schema = nullable(LANGUAGES_SCHEMA.append(tables.DATE_FIELD), "uri", "date")
    another_tools_table(
        lake, LANGUAGES, pa.Table.from_pylist(language_rows, schema=language_schema)
    )
    return lake, kept_checks, orphan_checks, kept_languages, orphan_languages


def left_checks(lake: str) -> Counter[tuple[Any, ...]]:
    rows = DeltaTable(tables.table_uri(lake, CHECKS)).to_pyarrow_table().to_pylist()
    return Counter((r["date"], r["observed_on"], r["id"]) for r in rows)


def left_languages(lake: str) -> list[tuple[Any, ...]]:
    rows = DeltaTable(tables.table_uri(lake, LANGUAGES)).to_pyarrow_table().to_pylist()
    return sorted(((r["date"], r["uri"]) for r in rows), key=str)


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three rows fetched at a time, two ids per DELETE: many pieces and predicates."""
    monkeypatch.setattr(maintenance, "ORPHAN_ROWS_AT_A_TIME", 3)
    monkeypatch.setattr(maintenance, "DELETE_URIS_AT_MOST", 2)


def test_every_orphan_goes_in_small_pieces_and_the_rest_stays(
    tmp_path: Path, small_pieces: None
) -> None:
    lake, kept_checks, orphan_checks, kept_languages, orphan_languages = lake_with_orphans(tmp_path)
    assert orphan_checks == 4 * (3 * 8 + 1) and orphan_languages == 4 * 9  # (many pieces)

    stats = retain(lake, KEEP_DAYS)
    assert stats.removed[POSTS_ALL] == 0
    assert stats.removed[CHECKS] == orphan_checks  # rows: the orphan twice counts twice
    assert stats.removed[LANGUAGES] == orphan_languages
    assert left_checks(lake) == kept_checks
    assert left_languages(lake) == sorted(kept_languages, key=str)
    again = retain(lake, KEEP_DAYS)  # nothing left to remove
    assert again.removed[CHECKS] == 0 and again.removed[LANGUAGES] == 0


class Spy:
    """A DuckDB connection (or what its `execute`/`sql` return), counting the rows each fetch
    of a query returned: (query, rows); a fetch of a whole result counts as all of them."""

    MEASURED = {"fetchall", "fetchmany", "fetchone"}

    def __init__(self, wrapped: Any, fetches: list[tuple[str, float]], sql: str = "") -> None:
        self._wrapped = wrapped
        self._fetches = fetches
        self._sql = sql

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Spy:
        return Spy(self._wrapped.execute(sql, *args, **kwargs), self._fetches, sql)

    def sql(self, sql: str, *args: Any, **kwargs: Any) -> Spy:
        return Spy(self._wrapped.sql(sql, *args, **kwargs), self._fetches, sql)

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._wrapped, name)
        if not callable(real) or not name.startswith(("fetch", "to_", "arrow", "df", "pl")):
            return real

        def fetch(*args: Any, **kwargs: Any) -> Any:
            got = real(*args, **kwargs)
            rows: float
            if name in self.MEASURED:
                rows = len(got) if isinstance(got, list) else int(got is not None)
            else:
                rows = float("inf")  # an Arrow table, a reader, a frame: taken as whole
            self._fetches.append((self._sql, rows))
            return got

        return fetch


def spying(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    fetches: list[tuple[str, float]] = []
    connect = maintenance._connect
    monkeypatch.setattr(
        maintenance, "_connect", lambda *args, **kwargs: Spy(connect(*args, **kwargs), fetches)
    )
    return fetches


def orphan_queries(fetches: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(sql, rows) for sql, rows in fetches if sql.lstrip().upper().startswith("SELECT")]


def fetched_of(fetches: list[tuple[str, float]], table: str) -> float:
    """The rows fetched so far of the query for `table`'s orphans."""
    return sum(rows for sql, rows in orphan_queries(fetches) if f" FROM {table} " in sql)


def test_the_orphans_are_never_fetched_whole(
    tmp_path: Path, small_pieces: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No fetch of the orphan queries returns more than ORPHAN_ROWS_AT_A_TIME rows (the old
    code fetched all of them at once), and every orphan came through those fetches."""
    lake, _, orphan_checks, _, orphan_languages = lake_with_orphans(tmp_path)
    fetches = spying(monkeypatch)

    stats = retain(lake, KEEP_DAYS)
    queries = orphan_queries(fetches)
    assert {sql.split(" FROM ")[1].split()[0] for sql, _ in queries} == {CHECKS, LANGUAGES}
    assert max(rows for _, rows in queries) <= 3, queries
    # distinct keys: the orphan twice in a partition is one row of the query
    distinct = (orphan_checks - 4 * 3) + (orphan_languages - 4)
    assert sum(rows for _, rows in queries) == distinct
    assert stats.removed[CHECKS] == orphan_checks
    assert stats.removed[LANGUAGES] == orphan_languages


def test_deletes_run_while_the_orphans_are_fetched_with_few_pending(
    tmp_path: Path, small_pieces: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first DELETE runs before the last orphans are fetched, and the predicates built
    and not yet done never exceed DELETES_PENDING_AT_MOST (the old code built them all,
    then ran them)."""
    lake, _, orphan_checks, _, orphan_languages = lake_with_orphans(tmp_path)
    fetches = spying(monkeypatch)
    lock = threading.Lock()
    built = {"n": 0, "done": 0, "most": 0}
    fetched_at_deletes: list[tuple[str, float]] = []

    def counting(make: Any) -> Any:
        def predicates(*args: Any) -> Iterator[str]:
            for predicate in make(*args):
                with lock:
                    built["n"] += 1
                    built["most"] = max(built["most"], built["n"] - built["done"])
                yield predicate

        return predicates

    delete_rows = maintenance._delete_rows

    def deleting(lake: str, table: str, *args: Any) -> int:
        if table in (CHECKS, LANGUAGES):
            fetched_at_deletes.append((table, fetched_of(fetches, table)))
        try:
            return delete_rows(lake, table, *args)
        finally:
            if table in (CHECKS, LANGUAGES):
                with lock:
                    built["done"] += 1

    monkeypatch.setattr(maintenance, "_check_deletes", counting(maintenance._check_deletes))
    monkeypatch.setattr(maintenance, "_uri_deletes", counting(maintenance._uri_deletes))
    monkeypatch.setattr(maintenance, "_delete_rows", deleting)

    stats = retain(lake, KEEP_DAYS)
    assert stats.removed[CHECKS] == orphan_checks
    assert stats.removed[LANGUAGES] == orphan_languages
    assert built["n"] == built["done"] == len(fetched_at_deletes) > 20
    for table in (CHECKS, LANGUAGES):
        first = next(rows for name, rows in fetched_at_deletes if name == table)
        assert first < fetched_of(fetches, table) / 2, (table, fetched_at_deletes)
    assert 0 < built["most"] <= maintenance.DELETES_PENDING_AT_MOST


def test_a_failed_delete_stops_the_removal(
    tmp_path: Path, small_pieces: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DELETE that fails stops the removal with its error: the predicates not started
    are not run (at most the few pending), and a rerun removes the rest."""
    lake, kept_checks, orphan_checks, _, _ = lake_with_orphans(tmp_path)
    delete_rows = maintenance._delete_rows
    calls = []

    def failing(lake: str, table: str, *args: Any) -> int:
        if table == CHECKS:
            calls.append(1)
            if len(calls) == 3:
                raise LakeError("Cannot remove checks of gone posts from checks: disk full")
        return delete_rows(lake, table, *args)

    monkeypatch.setattr(maintenance, "_delete_rows", failing)
    metadata = tables.commit_metadata(operation="retain", run="test")
    with pytest.raises(LakeError, match="disk full"):
        maintenance._remove_orphan_checks(lake, metadata)
    assert len(calls) <= 3 + maintenance.DELETES_PENDING_AT_MOST
    monkeypatch.setattr(maintenance, "_delete_rows", delete_rows)
    removed = maintenance._remove_orphan_checks(lake, metadata)
    assert 0 < removed < orphan_checks
    assert left_checks(lake) == kept_checks


def test_the_rows_of_deleted_posts_are_removed_in_small_pieces(
    tmp_path: Path, small_pieces: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compaction's removal of deleted posts (from posts_all, sightings and languages)
    fetched every (date, uri) of them at once, for the three tables before the first DELETE:
    now streamed as the orphans are, and what goes is exactly the deleted posts' rows."""
    from tootlake.lake.layout import DELETES
    from tootlake.lake.maintenance import compact

    lake = str(tmp_path / "lake")
    day_rows = []
    for n, day in enumerate(d for d in DAYS if d is not None):
        at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        for i in range(7):
            uri = f"https://a.example/{n}/{i}"
            day_rows.append(
                dict(
                    uri=uri,
                    id=f"{n}{i}",
                    observed_on="a.example",
                    created_at=at,
                    ingested_at=at,
                    date=day,
                )
            )
    tables.append(lake, POSTS_ALL, post_rows(day_rows))
    gone = {row["uri"] for row in day_rows if int(row["id"]) % 2}  # (ids ending odd)
    deletes = [
        dict(
            observed_on="a.example",
            id="x" + uri[-3:],
            uri=uri,
            deleted_at=NOW,
            reason=None,
            date=NOW.date(),
        )
        for uri in sorted(gone)
    ]
    tables.append(lake, DELETES, pa.Table.from_pylist(deletes, schema=tables.table_schema(DELETES)))
    fetches = spying(monkeypatch)

    stats = compact(lake)
    removal = [(sql, rows) for sql, rows in fetches if sql.startswith("SELECT DISTINCT date, uri")]
    assert removal and max(rows for _, rows in removal) <= 3, removal
    assert sum(rows for sql, rows in removal if "FROM posts_all" in sql) == len(gone)
    assert stats.posts_removed == len(gone)
    left = DeltaTable(tables.table_uri(lake, POSTS_ALL)).to_pyarrow_table().column("uri")
    assert sorted(left.to_pylist()) == sorted({row["uri"] for row in day_rows} - gone)
