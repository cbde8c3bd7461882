"""One function per question of the talk, each done right. All read the `posts` view
(one row per post) of a connection from `open_lake()` and return a pyarrow Table, so a
notebook can call `.to_pandas()` or `.to_pylist()` and the report can render it.

Ties are broken by name so that results are the same on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import duckdb
import pyarrow as pa

__all__ = [
    "DEFAULT_TERMS",
    "apps",
    "daily",
    "hashtags",
    "hourly",
    "instances",
    "language_name",
    "languages",
    "length_by_language",
    "longest",
    "observers",
    "summary",
    "terms",
]

# The words the talk followed through its ten days (February 2023).
DEFAULT_TERMS = ("balloon", "earthquake", "superbowl", "chatgpt")


def _table(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> pa.Table:
    return con.sql(sql, params=list(params) or None).to_arrow_table()


def summary(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The headline figures: posts, users, instances, languages, lengths, time span."""
    return _table(
        con,
        """
        SELECT count(*) AS posts,
               count(DISTINCT acct) AS users,
               count(DISTINCT origin) AS instances,
               count(DISTINCT language) AS languages,
               min(characters) AS shortest,
               round(avg(characters), 1) AS average,
               max(characters) AS longest,
               CAST(coalesce(sum(characters), 0) AS BIGINT) AS total_characters,
               min(created_at) AS first_post_at,
               max(created_at) AS last_post_at
        FROM posts
        """,
    )


def daily(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per UTC day: posts, users, instances, and the most frequent user, bot and observer."""
    return _table(
        con,
        """
        WITH p AS (
            SELECT CAST(timezone('UTC', created_at) AS DATE) AS day, acct, origin, bot, observed_on
            FROM posts
        ),
        per_user AS (
            SELECT day, acct, bot, count(*) AS n FROM p GROUP BY ALL
        ),
        per_observer AS (
            SELECT day, observed_on, count(*) AS n FROM p WHERE observed_on IS NOT NULL GROUP BY ALL
        ),
        top_user AS (
            SELECT day,
                   first(acct ORDER BY n DESC, acct) FILTER (WHERE NOT bot) AS top_user,
                   first(acct ORDER BY n DESC, acct) FILTER (WHERE bot) AS top_bot
            FROM per_user GROUP BY day
        ),
        top_observer AS (
            SELECT day, first(observed_on ORDER BY n DESC, observed_on) AS top_observed_on
            FROM per_observer GROUP BY day
        )
        SELECT strftime(p.day, '%Y-%m-%d') AS day,
               count(*) AS posts,
               count(DISTINCT acct) AS users,
               count(DISTINCT origin) AS instances,
               any_value(u.top_user) AS top_user,
               any_value(u.top_bot) AS top_bot,
               any_value(o.top_observed_on) AS top_observed_on
        FROM p
        LEFT JOIN top_user u USING (day)
        LEFT JOIN top_observer o USING (day)
        GROUP BY p.day
        ORDER BY p.day
        """,
    )


def apps(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> pa.Table:
    """Posts per client app, by people (not bots). Only local posts carry an app."""
    sql = """
        SELECT app, count(*) AS posts
        FROM posts
        WHERE app IS NOT NULL AND app <> '' AND NOT bot
        GROUP BY app
        ORDER BY posts DESC, app
    """
    if limit:
        sql += f" LIMIT {int(limit)}"
    return _table(con, sql)


def hourly(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Posts per UTC day and hour of day."""
    return _table(
        con,
        """
        SELECT strftime(timezone('UTC', created_at), '%Y-%m-%d') AS day,
               CAST(hour(timezone('UTC', created_at)) AS INTEGER) AS hour,
               count(*) AS posts
        FROM posts
        GROUP BY ALL
        ORDER BY day, hour
        """,
    )


@cache
def _language_names() -> pa.Table:
    import pycountry

    codes: dict[str, str] = {}
    for lang in pycountry.languages:
        name = lang.name
        for attr in ("alpha_3", "alpha_2"):
            code = getattr(lang, attr, None)
            if code:
                codes[code] = name
    return pa.table({"code": list(codes), "name": list(codes.values())})


def language_name(code: str | None) -> str:
    """English name of an ISO 639-1/-3 code ('en' -> 'English'); 'Unknown' for None."""
    if not code:
        return "Unknown"
    table = _language_names()
    names = dict(zip(table["code"].to_pylist(), table["name"].to_pylist(), strict=True))
    return names.get(code.split("-")[0].lower(), code)


def _with_language_names(con: duckdb.DuckDBPyConnection) -> None:
    con.register("_language_names", _language_names())


def languages(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Posts per language, with its English name; posts without a language as 'Unknown'."""
    _with_language_names(con)
    return _table(
        con,
        """
        SELECT language,
               CASE WHEN language IS NULL THEN 'Unknown'
                    ELSE coalesce(n.name, language) END AS language_name,
               count(*) AS posts
        FROM posts p
        LEFT JOIN _language_names n ON n.code = lower(split_part(p.language, '-', 1))
        GROUP BY ALL
        ORDER BY posts DESC, language NULLS LAST
        """,
    )


def length_by_language(con: duckdb.DuckDBPyConnection, top: int = 20) -> pa.Table:
    """Box-plot figures of post length (characters) for the `top` languages by posts.

    Quartiles are interpolated (as pandas, numpy and seaborn compute them).
    """
    _with_language_names(con)
    return _table(
        con,
        """
        WITH top_languages AS (
            SELECT language, count(*) AS posts FROM posts WHERE language IS NOT NULL
            GROUP BY language ORDER BY posts DESC, language LIMIT ?
        )
        SELECT p.language,
               any_value(coalesce(n.name, p.language)) AS language_name,
               count(*) AS posts,
               min(characters) AS min,
               quantile_cont(characters, 0.25) AS q1,
               quantile_cont(characters, 0.5) AS median,
               quantile_cont(characters, 0.75) AS q3,
               max(characters) AS max
        FROM posts p
        JOIN top_languages t USING (language)
        LEFT JOIN _language_names n ON n.code = lower(split_part(p.language, '-', 1))
        GROUP BY p.language
        ORDER BY posts DESC, p.language
        """,
        [top],
    )


def longest(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The longest post: who wrote it, how long it is, where to read it."""
    return _table(
        con,
        """
        SELECT acct, characters, url, uri, created_at, left(text, 280) AS preview
        FROM posts
        ORDER BY characters DESC, uri
        LIMIT 1
        """,
    )


def terms(con: duckdb.DuckDBPyConnection, words: Sequence[str] = DEFAULT_TERMS) -> pa.Table:
    """Posts per UTC day that mention each word (case-insensitive, as a word or hashtag)."""
    words = [w.lower().lstrip("#") for w in words if w.strip()]
    if not words:
        return pa.table(
            {
                "day": pa.array([], pa.string()),
                "term": pa.array([], pa.string()),
                "posts": pa.array([], pa.int64()),
            }
        )
    con.register("_terms", pa.table({"term": words}))
    return _table(
        con,
        r"""
        SELECT strftime(timezone('UTC', p.created_at), '%Y-%m-%d') AS day, t.term,
               count(*) AS posts
        FROM posts p, _terms t
        WHERE regexp_matches(lower(p.text), '\b' || t.term || '\b')
           OR list_contains(p.tags, t.term)
        GROUP BY ALL
        ORDER BY day, term
        """,
    )


def hashtags(con: duckdb.DuckDBPyConnection, limit: int = 20) -> pa.Table:
    """The most used hashtags: posts and authors per tag."""
    return _table(
        con,
        """
        SELECT tag, count(*) AS posts, count(DISTINCT acct) AS users
        FROM (SELECT unnest(tags) AS tag, acct FROM posts)
        GROUP BY tag
        ORDER BY posts DESC, tag
        LIMIT ?
        """,
        [limit],
    )


def instances(con: duckdb.DuckDBPyConnection, limit: int = 20) -> pa.Table:
    """The instances whose people wrote the most posts: posts and authors per home server
    (`origin`, from each post's uri, wherever it was collected)."""
    return _table(
        con,
        """
        SELECT origin, count(*) AS posts, count(DISTINCT acct) AS users
        FROM posts
        GROUP BY origin
        ORDER BY posts DESC, origin
        LIMIT ?
        """,
        [limit],
    )


def observers(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """How the lake was collected: per observing instance, the versions written (`posts_all`
    rows, relays and edits included), the distinct posts among them, how many were local to
    it, and when the first and last were received."""
    return _table(
        con,
        """
        SELECT observed_on,
               count(*) AS versions,
               count(DISTINCT uri) AS posts,
               count(*) FILTER (WHERE local) AS local_versions,
               min(ingested_at) AS first_ingested_at,
               max(ingested_at) AS last_ingested_at
        FROM posts_all
        GROUP BY observed_on
        ORDER BY posts DESC, observed_on NULLS LAST
        """,
    )
