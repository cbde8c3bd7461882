"""The analyses of a small lake, computed by hand (see smalllake.py for the posts)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tootlake.analysis import open_lake, queries
from tootlake.analysis.report import build_report, report_as_dict
from tootlake.pipeline import replay

from .smalllake import write_inputs


@pytest.fixture
def small_lake(tmp_path, lake):
    jsonl, sse = write_inputs(tmp_path / "input")
    replay([jsonl], lake)
    replay([sse], lake, observed_on="a.example")
    return lake


@pytest.fixture
def con(small_lake):
    return open_lake(small_lake)


def rows(table):
    return table.to_pylist()


def test_posts_view_has_one_row_per_uri_latest_version_no_deleted(con):
    uris = [r[0] for r in con.execute("SELECT uri FROM posts ORDER BY uri").fetchall()]
    assert uris == [
        "https://a.example/users/alice/statuses/1",
        "https://a.example/users/alice/statuses/2",
        "https://a.example/users/carol/statuses/6",
        "https://a.example/users/dave/statuses/7",
        "https://c.example/users/newsbot/statuses/4",
        "https://c.example/users/newsbot/statuses/5",
    ]
    # posts_all keeps every version and sighting: 9 rows written
    assert con.execute("SELECT count(*) FROM posts_all").fetchone() == (9,)
    assert con.execute("SELECT text FROM posts WHERE uri LIKE '%alice/statuses/2'").fetchone() == (
        "Second post, edited\n#ChatGPT",
    )
    # the relayed copy of post 1 lost its app; the view keeps the author's server's copy
    assert con.execute(
        "SELECT app, observed_on FROM posts WHERE uri LIKE '%alice/statuses/1'"
    ).fetchone() == ("Ivory", "a.example")


def test_summary(con):
    assert rows(queries.summary(con)) == [
        {
            "posts": 6,
            "users": 4,
            "instances": 2,
            "languages": 2,
            "shortest": 0,
            "average": 14.0,
            "longest": 28,
            "total_characters": 84,
            "first_post_at": datetime(2023, 2, 3, 10, 15, tzinfo=UTC),
            "last_post_at": datetime(2023, 2, 4, 23, 59, 59, tzinfo=UTC),
        }
    ]


def test_daily(con):
    assert rows(queries.daily(con)) == [
        {"day": "2023-02-03", "posts": 2, "users": 1, "instances": 1,
         "top_user": "alice@a.example", "top_bot": None, "top_observed_on": "a.example"},
        {"day": "2023-02-04", "posts": 4, "users": 3, "instances": 2,
         "top_user": "carol@a.example", "top_bot": "newsbot@c.example",
         "top_observed_on": "a.example"},
    ]  # fmt: skip


def test_apps_counts_people_on_local_posts_only(con):
    assert rows(queries.apps(con)) == [{"app": "Ivory", "posts": 2}, {"app": "Web", "posts": 1}]


def test_hourly(con):
    assert rows(queries.hourly(con)) == [
        {"day": "2023-02-03", "hour": 10, "posts": 1},
        {"day": "2023-02-03", "hour": 11, "posts": 1},
        {"day": "2023-02-04", "hour": 9, "posts": 2},
        {"day": "2023-02-04", "hour": 12, "posts": 1},
        {"day": "2023-02-04", "hour": 23, "posts": 1},
    ]


def test_languages_with_english_names(con):
    assert rows(queries.languages(con)) == [
        {"language": "en", "language_name": "English", "posts": 4},
        {"language": "ja", "language_name": "Japanese", "posts": 1},
        {"language": None, "language_name": "Unknown", "posts": 1},
    ]


def test_length_by_language_quartiles(con):
    # en: 16, 16, 19, 28 -> interpolated quartiles 16, 17.5, 21.25
    assert rows(queries.length_by_language(con)) == [
        {"language": "en", "language_name": "English", "posts": 4,
         "min": 16, "q1": 16.0, "median": 17.5, "q3": 21.25, "max": 28},
        {"language": "ja", "language_name": "Japanese", "posts": 1,
         "min": 5, "q1": 5.0, "median": 5.0, "q3": 5.0, "max": 5},
    ]  # fmt: skip


def test_longest(con):
    (row,) = rows(queries.longest(con))
    assert (row["acct"], row["characters"], row["url"]) == (
        "alice@a.example",
        28,
        "https://a.example/@alice/2",
    )


def test_terms_per_day(con):
    assert rows(queries.terms(con)) == [
        {"day": "2023-02-03", "term": "balloon", "posts": 1},
        {"day": "2023-02-03", "term": "chatgpt", "posts": 1},
        {"day": "2023-02-04", "term": "earthquake", "posts": 2},
    ]
    assert rows(queries.terms(con, ["Guten"])) == []  # bob's post was deleted


def test_a_term_of_hashes_alone_is_no_term(con):
    """(a top hashtag "##" became the term "", which every post mentions)"""
    for words in (["##"], ["#", " "]):
        table = queries.terms(con, words)
        assert rows(table) == []
        assert table.schema.metadata[queries.TERMS_KEY] == b"[]"
    assert {r["term"] for r in rows(queries.terms(con, ["##", "balloon"]))} == {"balloon"}


def test_terms_prefilter_keeps_every_post_lower_would_match():
    """terms() looks at the raw text first; it must find what lower() + word boundaries find,
    even where lowering is not ASCII (Turkish İ lowers to i, the Kelvin sign to k)."""
    import duckdb

    texts = [
        "İSTANBUL depremi",  # İ -> i
        "Ein \u212aIWI am Morgen",  # Kelvin sign -> k
        "BALLOON!",
        "balloons over the sea",  # not the word
        "superbowl2023",  # not the word either
        "ＳＵＰＥＲＢＯＷＬ",  # fullwidth: lower() keeps it fullwidth, so no match
        "chatGPT, again",
        None,
        "nothing here",
    ]
    con = duckdb.connect()
    con.execute("CREATE TABLE posts (created_at TIMESTAMPTZ, tags VARCHAR[], text VARCHAR)")
    for i, text in enumerate(texts):
        tags = ["superbowl"] if i == len(texts) - 1 else []
        con.execute(
            "INSERT INTO posts VALUES (TIMESTAMPTZ '2023-02-03 10:00:00+00', ?, ?)", [tags, text]
        )
    words = ["istanbul", "kiwi", "balloon", "superbowl", "chatgpt"]
    expected = {
        word: con.execute(
            "SELECT count(*) FROM posts WHERE regexp_matches(lower(text), ?) "
            "OR list_contains(tags, ?)",
            [rf"\b{word}\b", word],
        ).fetchall()[0][0]
        for word in words
    }
    found = {r["term"]: r["posts"] for r in rows(queries.terms(con, words))}
    assert found == {w: n for w, n in expected.items() if n}
    assert found == {"istanbul": 1, "kiwi": 1, "balloon": 1, "superbowl": 1, "chatgpt": 1}


def test_hashtags(con):
    assert rows(queries.hashtags(con)) == [{"tag": "chatgpt", "posts": 1, "users": 1}]


def test_replaying_twice_changes_no_analysis(tmp_path, small_lake):
    before = report_as_dict(build_report(small_lake))
    jsonl, sse = write_inputs(tmp_path / "again")
    replay([jsonl], small_lake)
    replay([sse], small_lake, observed_on="a.example")
    assert report_as_dict(build_report(small_lake)) == before
    con = open_lake(small_lake)
    assert con.execute("SELECT count(*) FROM posts_all").fetchone() == (18,)


def test_delete_before_its_post_still_removes_it(tmp_path, lake):
    jsonl, sse = write_inputs(tmp_path / "input")
    replay([sse], lake, observed_on="a.example")
    replay([jsonl], lake)
    assert open_lake(lake).execute("SELECT count(*) FROM posts").fetchone() == (6,)


def test_empty_lake_answers_with_no_rows(lake):
    Path(lake).mkdir()  # a folder with nothing collected yet
    report = report_as_dict(build_report(lake))
    assert report["summary"]["posts"] == 0
    assert report["daily"] == [] and report["longest"] is None
