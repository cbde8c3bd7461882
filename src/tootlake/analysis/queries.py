"""One function per question of the talk, each done right. All read the `posts` view
(one row per post) of a connection from `open_lake()` and return a pyarrow Table, so a
notebook can call `.to_pandas()` or `.to_pylist()` and the report can render it.

Ties are broken by name so that results are the same on every run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pyarrow as pa

from tootlake.errors import ConfigError

__all__ = [
    "DEFAULT_TERMS",
    "TALK_TERMS",
    "TERMS_FROM_KEY",
    "TERMS_KEY",
    "TZ_KEY",
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
    "check_tz",
]

# The words the talk followed through its ten days (February 2023): news of that week, found
# in few other lakes. `terms()` still defaults to them, so that a notebook can retrace the talk.
TALK_TERMS = ("balloon", "earthquake", "superbowl", "chatgpt")
# No words chosen: the report follows the lake's own most used hashtags instead
# (`report.build_report()`), so that a lake of any week shows lines that move.
DEFAULT_TERMS: tuple[str, ...] = ()
# Schema metadata of a terms() table: the words asked for, as JSON (a word never mentioned has
# no row, and its chart still draws a flat line for it), and where they came from, when
# `build_report()` chose them ("hashtags": the lake's most used; "chosen": the caller's).
TERMS_KEY = b"tootlake.terms"
TERMS_FROM_KEY = b"tootlake.terms_from"
# Schema metadata of the tables bucketed by day or hour (daily, hourly, terms): the IANA time
# zone of their days and hours, so that a chart can say it.
TZ_KEY = b"tootlake.tz"


def check_tz(tz: str) -> str:
    """`tz` if it is an IANA time zone name (UTC, Europe/Berlin...), else a ConfigError."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"Unknown time zone {tz!r}: give an IANA name such as UTC, Europe/Berlin or "
            "America/New_York."
        ) from None
    return tz


def _zoned(table: pa.Table, tz: str) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), TZ_KEY: tz.encode()})


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


def daily(con: duckdb.DuckDBPyConnection, tz: str = "UTC") -> pa.Table:
    """Per day in time zone `tz` (an IANA name): posts, users, instances, and the most
    frequent user, bot and observer."""
    # Posts and users per day come from the per-user counts, not from another pass over posts.
    table = _table(
        con,
        """
        WITH p AS (
            SELECT CAST(timezone(?, created_at) AS DATE) AS day, acct, origin, bot, observed_on
            FROM posts
        ),
        per_user AS (
            SELECT day, acct, bot, count(*) AS n FROM p GROUP BY ALL
        ),
        per_origin AS (
            SELECT day, count(DISTINCT origin) AS instances FROM p GROUP BY day
        ),
        per_observer AS (
            SELECT day, observed_on, count(*) AS n FROM p WHERE observed_on IS NOT NULL GROUP BY ALL
        ),
        per_day AS (
            SELECT day,
                   CAST(sum(n) AS BIGINT) AS posts,
                   count(DISTINCT acct) AS users,
                   first(acct ORDER BY n DESC, acct) FILTER (WHERE NOT bot) AS top_user,
                   first(acct ORDER BY n DESC, acct) FILTER (WHERE bot) AS top_bot
            FROM per_user GROUP BY day
        ),
        top_observer AS (
            SELECT day, first(observed_on ORDER BY n DESC, observed_on) AS top_observed_on
            FROM per_observer GROUP BY day
        )
        SELECT strftime(d.day, '%Y-%m-%d') AS day, d.posts, d.users, i.instances,
               d.top_user, d.top_bot, o.top_observed_on
        FROM per_day d
        JOIN per_origin i USING (day)
        LEFT JOIN top_observer o USING (day)
        ORDER BY d.day
        """,
        [check_tz(tz)],
    )
    return _zoned(table, tz)


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


def hourly(con: duckdb.DuckDBPyConnection, tz: str = "UTC") -> pa.Table:
    """Posts per day and hour of day in time zone `tz` (an IANA name)."""
    # Count per hour first: the text of the day is made once per hour, not once per post.
    table = _table(
        con,
        """
        SELECT strftime(hour_start, '%Y-%m-%d') AS day,
               CAST(hour(hour_start) AS INTEGER) AS hour,
               posts
        FROM (
            SELECT date_trunc('hour', timezone(?, created_at)) AS hour_start, count(*) AS posts
            FROM posts
            GROUP BY ALL
        )
        ORDER BY day, hour
        """,
        [check_tz(tz)],
    )
    return _zoned(table, tz)


@cache
def _language_names() -> dict[str, str]:
    codes: dict[str, str] = {}
    for lang in _iso639_3():
        name = lang["name"]
        for attr in ("alpha_3", "alpha_2"):
            code = lang.get(attr)
            if code:
                codes[code] = name
    return codes


def _iso639_3() -> list[dict[str, str]]:
    """pycountry's ISO 639-3 table, read as the JSON it ships: importing pycountry and
    building its objects takes 5x as long, in every report."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.find_spec("pycountry")
    for folder in (spec and spec.submodule_search_locations) or ():
        path = Path(folder) / "databases" / "iso639-3.json"
        if path.is_file():
            return list(json.loads(path.read_bytes())["639-3"])
    import pycountry  # its layout changed: the slow way

    return [dict(lang._fields) for lang in pycountry.languages]


def language_name(code: str | None) -> str:
    """English name of an ISO 639-1/-3 code ('en' -> 'English'); 'Unknown' for None."""
    if not code:
        return "Unknown"
    return _language_names().get(code.split("-")[0].lower(), code)


def _with_language_names(con: duckdb.DuckDBPyConnection) -> None:
    # Made in DuckDB from two lists: an Arrow table made from Python lists would import
    # pandas (pyarrow checks for it), a second's start-up for a report that never uses it.
    names = _language_names()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _language_names AS "
        "SELECT unnest($codes::VARCHAR[]) AS code, unnest($names::VARCHAR[]) AS name",
        {"codes": list(names), "names": list(names.values())},
    )


def languages(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Posts per language, with its English name; posts without a language as 'Unknown'."""
    _with_language_names(con)
    # Count per language first, then name the few languages (not every post).
    return _table(
        con,
        """
        SELECT language,
               CASE WHEN language IS NULL THEN 'Unknown'
                    ELSE coalesce(n.name, language) END AS language_name,
               posts
        FROM (SELECT language, count(*) AS posts FROM posts GROUP BY language) p
        LEFT JOIN _language_names n ON n.code = lower(split_part(p.language, '-', 1))
        ORDER BY posts DESC, language NULLS LAST
        """,
    )


def length_by_language(
    con: duckdb.DuckDBPyConnection, top: int = 20, *, percentiles: bool = False
) -> pa.Table:
    """Box-plot figures of post length (characters) for the `top` languages by posts.

    Quartiles are interpolated (as pandas, numpy and seaborn compute them). With
    `percentiles`, also the 5th and 95th percentiles (`p5`, `p95`: the chart's whiskers) and
    `all_languages`, how many languages the lake has in all (the same on every row), so that a
    chart of the top ones can say how many it leaves out.
    """
    _with_language_names(con)
    extra, shown = "", "p.qs[2] AS q1, p.qs[3] AS median, p.qs[4] AS q3, p.max"
    if percentiles:
        # the window counts the groups before the LIMIT: every language of the lake
        extra = "count(*) OVER () AS all_languages,"
        shown = (
            "p.qs[1] AS p5, p.qs[2] AS q1, p.qs[3] AS median, p.qs[4] AS q3, p.qs[5] AS p95, "
            "p.max, p.all_languages"
        )
    # One pass: the figures of every language, then the top ones (the tail's are cheap).
    return _table(
        con,
        f"""
        WITH per_language AS (
            SELECT language,
                   count(*) AS posts,
                   min(characters) AS min,
                   -- one sorted state for every percentile: five separate aggregates
                   -- each kept their own (the 16M-post report ran out of 700 MB here)
                   quantile_cont(characters, [0.05, 0.25, 0.5, 0.75, 0.95]) AS qs,
                   {extra}
                   max(characters) AS max
            FROM posts
            WHERE language IS NOT NULL
            GROUP BY language
            ORDER BY posts DESC, language
            LIMIT ?
        )
        SELECT p.language,
               coalesce(n.name, p.language) AS language_name,
               p.posts, p.min, {shown}
        FROM per_language p
        LEFT JOIN _language_names n ON n.code = lower(split_part(p.language, '-', 1))
        ORDER BY p.posts DESC, p.language
        """,
        [top],
    )


def longest(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The longest post: who wrote it, how long it is, where to read it."""
    # The length first, then the text of that post only (not of every post).
    return _table(
        con,
        """
        SELECT acct, characters, url, uri, created_at, left(text, 280) AS preview
        FROM posts
        WHERE characters = (SELECT max(characters) FROM posts)
        ORDER BY uri
        LIMIT 1
        """,
    )


def terms(
    con: duckdb.DuckDBPyConnection, words: Sequence[str] = TALK_TERMS, tz: str = "UTC"
) -> pa.Table:
    """Posts per day (in time zone `tz`) that mention each word (case-insensitive, as a word
    or hashtag). The words, as matched, are the table's `TERMS_KEY` metadata."""
    words = list(dict.fromkeys(w.lower().lstrip("#") for w in words if w.strip()))
    asked = {TERMS_KEY: json.dumps(words).encode(), TZ_KEY: check_tz(tz).encode()}
    if not words:
        return pa.table(
            {
                "day": pa.array([], pa.string()),
                "term": pa.array([], pa.string()),
                "posts": pa.array([], pa.int64()),
            }
        ).replace_schema_metadata(asked)
    # One pass over the posts. A cheap pattern first (no lower(), no word boundaries: one
    # automaton for all the words over the raw text) keeps the posts that may mention a word;
    # only those are lowered and checked exactly, one CASE per word with its pattern as a
    # constant (RE2 compiles it once; a pattern joined in per row is compiled per row: 10x
    # slower). The word is a literal in its pattern (escaped), so the word-boundary match
    # implies contains(), which is checked first.
    cases: list[str] = []
    params: list[object] = [tz]
    for word in words:
        found = "(contains(lower_text, ?) AND regexp_matches(lower_text, ?))"
        cases.append(f"CASE WHEN {found} OR list_contains(tags, ?) THEN ? END")
        params += [word, rf"\b{re.escape(word)}\b", word, word]
    params += [_may_mention(words), list(words)]
    return _table(
        con,
        f"""
        SELECT day, term, count(*) AS posts
        FROM (
            SELECT strftime(timezone(?, created_at), '%Y-%m-%d') AS day,
                   unnest([{", ".join(cases)}]) AS term
            FROM (
                SELECT created_at, tags, lower(text) AS lower_text
                FROM posts
                WHERE regexp_matches(text, ?) OR list_has_any(tags, ?::VARCHAR[])
            )
        )
        WHERE term IS NOT NULL
        GROUP BY ALL
        ORDER BY day, term
        """,
        params,
    ).replace_schema_metadata(asked)


def _may_mention(words: Sequence[str]) -> str:
    """An RE2 pattern that matches every text whose lower() contains one of `words`: each
    character of a word becomes the class of the characters DuckDB lowers to it ('i' also
    matches 'I' and 'İ'). A superset of the exact test, never a substitute for it."""
    upper = _uppercase_of()
    return "|".join(
        "".join(
            "[" + "".join(f"\\x{{{ord(c):x}}}" for c in (ch, *upper.get(ch, ()))) + "]"
            for ch in word
        )
        for word in words
    )


@cache
def _uppercase_of() -> dict[str, tuple[str, ...]]:
    """For each character, the others that DuckDB's lower() maps to it (lower() maps one
    code point to one). Cased letters all lie below U+1F000 (the last cased script, Adlam,
    ends at U+1E95F); surrogates are not characters."""
    with duckdb.connect() as con:
        rows = con.sql(
            "SELECT lower(chr(r::INTEGER)) AS l, list(chr(r::INTEGER) ORDER BY r) "
            "FROM range(1, 126976) t(r) "
            "WHERE (r < 55296 OR r > 57343) AND lower(chr(r::INTEGER)) <> chr(r::INTEGER) "
            "GROUP BY l"
        ).fetchall()
    return {lowered: tuple(chars) for lowered, chars in rows}


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
    """How the lake was collected: per observing instance, the versions written there
    (`posts_all` rows: first sightings, relayed copies and edits), how many were edits and
    how many local to it (the author's own server), and when the first and last arrived."""
    return _table(
        con,
        """
        SELECT observed_on,
               count(*) AS versions,
               count(*) FILTER (WHERE edited_at IS NOT NULL) AS edits,
               count(*) FILTER (WHERE local) AS local_versions,
               min(ingested_at) AS first_ingested_at,
               max(ingested_at) AS last_ingested_at
        FROM posts_all
        GROUP BY observed_on
        ORDER BY versions DESC, observed_on NULLS LAST
        """,
    )
