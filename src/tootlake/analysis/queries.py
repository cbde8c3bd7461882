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
from tootlake.lake.reader import connect

__all__ = [
    "AGE_BUCKETS",
    "DELAY_BUCKETS",
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
    # beyond the talk (issue 13): docs/analyses.md
    "account_age",
    "bots_daily",
    "content_warnings",
    "deletes",
    "edits",
    "language_confusions",
    "language_pairs",
    "language_tags",
    "reach_by_origin",
    "reach_daily",
    "reach_delay",
    "untagged_languages",
    "with_behaviour",
    "with_language_pairs",
    "with_reach",
    "cross_server",
    "interaction_pairs",
    "mentioned_accounts",
    "with_interactions",
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
    made = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE temporary AND table_name = '_language_names'"
    ).fetchall()
    if made:  # once per connection: the names never change
        return
    names = _language_names()
    con.execute(
        "CREATE TEMP TABLE _language_names AS "
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
    # (a hashtag of `#` alone is no word: as "" it matched every post)
    words = list(dict.fromkeys(w for w in (w.lower().lstrip("#") for w in words) if w.strip()))
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
            # a prefix is a superset too: a whole 100,000-letter hashtag (the lake's top one
            # is followed) took RE2 minutes, growing with the square of its length
            for ch in word[:_PREFIX_CHARS]
        )
        for word in words
    )


_PREFIX_CHARS = 64


@cache
def _uppercase_of() -> dict[str, tuple[str, ...]]:
    """For each character, the others that DuckDB's lower() maps to it (lower() maps one
    code point to one). Cased letters all lie below U+1F000 (the last cased script, Adlam,
    ends at U+1E95F); surrogates are not characters."""
    with connect() as con:
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


# ----------------------------------------------------------------------------------------
# language tags versus text (the `languages` view: `tootlake enrich`)


def with_language_pairs(con: duckdb.DuckDBPyConnection) -> str:
    """Make the temp table `_language_pairs` and return its name: posts per (tagged,
    detected) language, where `tagged` is the tag's primary subtag in lower case ('en' for
    'en-GB'; NULL: no tag) and `detected` the language `tootlake enrich` detected in the
    text, for the posts it detected one in. Empty until `tootlake enrich` has run. The
    language_* tables are made from it: pass its name to them to read the lake once."""
    # One row per uri of `languages` (two enrich runs racing could write one twice: the last
    # detection wins), joined to the posts still in the lake.
    _with_language_names(con)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _language_pairs AS
        WITH detected AS (
            SELECT uri, arg_max(language_detected, detected_at) AS detected
            FROM languages
            GROUP BY uri
        )
        SELECT lower(split_part(p.language, '-', 1)) AS tagged, d.detected, count(*) AS posts
        FROM posts p
        JOIN detected d ON d.uri = p.uri
        WHERE d.detected IS NOT NULL
        GROUP BY ALL
        """
    )
    return "_language_pairs"


def language_pairs(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """`with_language_pairs()` as a table, most posts first."""
    pairs = with_language_pairs(con)
    return _table(con, f"SELECT * FROM {pairs} ORDER BY posts DESC, tagged NULLS LAST, detected")


def language_tags(con: duckdb.DuckDBPyConnection, pairs: str | None = None) -> pa.Table:
    """Per tagged language, of its posts whose text has a detected language: how many, how
    many are detected as another language (`other`, `other_share`), and the other language
    most of those are in (`top_other`)."""
    source = pairs or with_language_pairs(con)
    return _table(
        con,
        f"""
        WITH per_tag AS (
            SELECT tagged,
                   CAST(sum(posts) AS BIGINT) AS posts,
                   CAST(coalesce(sum(posts) FILTER (WHERE detected <> tagged), 0) AS BIGINT)
                       AS other,
                   first(detected ORDER BY posts DESC, detected)
                       FILTER (WHERE detected <> tagged) AS top_other
            FROM {source}
            WHERE tagged IS NOT NULL
            GROUP BY tagged
        )
        SELECT t.tagged AS language, coalesce(n.name, t.tagged) AS language_name, t.posts,
               t.other, round(t.other / t.posts, 4) AS other_share, t.top_other,
               coalesce(o.name, t.top_other) AS top_other_name
        FROM per_tag t
        LEFT JOIN _language_names n ON n.code = t.tagged
        LEFT JOIN _language_names o ON o.code = t.top_other
        ORDER BY t.posts DESC, t.tagged
        """,
    )


def language_confusions(
    con: duckdb.DuckDBPyConnection, limit: int = 20, pairs: str | None = None
) -> pa.Table:
    """The most frequent (tagged, detected) pairs that disagree: posts tagged one language
    whose text is detected as another."""
    source = pairs or with_language_pairs(con)
    return _table(
        con,
        f"""
        SELECT p.tagged, coalesce(t.name, p.tagged) AS tagged_name,
               p.detected, coalesce(d.name, p.detected) AS detected_name, p.posts
        FROM {source} p
        LEFT JOIN _language_names t ON t.code = p.tagged
        LEFT JOIN _language_names d ON d.code = p.detected
        WHERE p.tagged IS NOT NULL AND p.detected <> p.tagged
        ORDER BY p.posts DESC, p.tagged, p.detected
        LIMIT ?
        """,
        [limit],
    )


def untagged_languages(con: duckdb.DuckDBPyConnection, pairs: str | None = None) -> pa.Table:
    """Posts without a language tag, by the language detected in their text."""
    source = pairs or with_language_pairs(con)
    return _table(
        con,
        f"""
        SELECT p.detected AS language, coalesce(n.name, p.detected) AS language_name,
               CAST(sum(p.posts) AS BIGINT) AS posts
        FROM {source} p
        LEFT JOIN _language_names n ON n.code = p.detected
        WHERE p.tagged IS NULL
        GROUP BY ALL
        ORDER BY posts DESC, language
        """,
    )


# ----------------------------------------------------------------------------------------
# federation reach (the `sightings` view)

# The delay buckets of reach_delay(): (label, from seconds); the last is open-ended.
DELAY_BUCKETS = (
    ("under 1 min", 0),
    ("1-5 min", 60),
    ("5-15 min", 300),
    ("15-60 min", 900),
    ("1-6 h", 3600),
    ("6-24 h", 21600),
    ("1-7 days", 86400),
    ("7 days or more", 604800),
)


def _bucket_sql(column: str, buckets: Sequence[tuple[str, int]]) -> str:
    """A CASE that names the bucket of `column` (seconds); below the first: the first."""
    whens = " ".join(
        f"WHEN {column} >= {start} THEN {i}" for i, (_, start) in reversed(list(enumerate(buckets)))
    )
    return f"CASE {whens} ELSE 0 END"


def with_reach(con: duckdb.DuckDBPyConnection) -> str:
    """Make the temp table `_reach` and return its name: per post of `posts` with a
    sighting, its `origin`, `created_at`, `instances` (how many of the collected instances
    saw it) and `delay_seconds` (from created_at to its first sighting on an instance other
    than its origin; NULL: never seen elsewhere; below 0, clocks apart, counts as 0). The
    reach_* tables are made from it: pass its name to them to read the lake once.

    `collect` and `sink` record a sighting of every copy of a post they see (the first
    included); `replay` records none (it writes every copy as a version in `posts_all`, with
    the time of the replay, not of the sighting), so a replayed lake has no reach."""
    # sightings_all, not the sightings view: a repeated sighting changes neither the distinct
    # instances nor the first time, and the view's GROUP BY would be a second pass.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _reach AS
        SELECT origin, created_at, instances,
               -- greatest() skips a NULL: never seen elsewhere stays NULL by the CASE
               CASE WHEN reached_at IS NOT NULL
                    THEN greatest(epoch(reached_at) - epoch(created_at), 0) END AS delay_seconds
        FROM (
            SELECT any_value(p.origin) AS origin, any_value(p.created_at) AS created_at,
                   count(DISTINCT s.observed_on) AS instances,
                   min(s.seen_at) FILTER (WHERE s.observed_on <> p.origin) AS reached_at
            FROM posts p
            JOIN sightings_all s ON s.uri = p.uri
            GROUP BY p.uri
        )
        """
    )
    return "_reach"


def reach_by_origin(
    con: duckdb.DuckDBPyConnection, limit: int = 20, *, reach: str | None = None
) -> pa.Table:
    """Per origin instance (the `limit` with the most posts): posts, the average and largest
    number of collected instances that saw each, and the share of its posts seen on an
    instance other than the origin."""
    source = reach or with_reach(con)
    return _table(
        con,
        f"""
        SELECT origin, count(*) AS posts,
               round(avg(instances), 2) AS mean_instances,
               max(instances) AS max_instances,
               round(count(delay_seconds) / count(*), 4) AS seen_elsewhere_share
        FROM {source}
        GROUP BY origin
        ORDER BY posts DESC, origin
        LIMIT ?
        """,
        [limit],
    )


def reach_daily(
    con: duckdb.DuckDBPyConnection, tz: str = "UTC", *, reach: str | None = None
) -> pa.Table:
    """Per day (of created_at in `tz`): posts, the average number of collected instances
    that saw each, and the share seen on an instance other than its origin."""
    source = reach or with_reach(con)
    table = _table(
        con,
        f"""
        SELECT strftime(day, '%Y-%m-%d') AS day, posts, mean_instances, seen_elsewhere_share
        FROM (
            SELECT CAST(timezone(?, created_at) AS DATE) AS day, count(*) AS posts,
                   round(avg(instances), 2) AS mean_instances,
                   round(count(delay_seconds) / count(*), 4) AS seen_elsewhere_share
            FROM {source}
            GROUP BY day
        )
        ORDER BY day
        """,
        [check_tz(tz)],
    )
    return _zoned(table, tz)


def reach_delay(con: duckdb.DuckDBPyConnection, *, reach: str | None = None) -> pa.Table:
    """How long posts took to reach another server: of the posts seen on an instance other
    than their origin, how many were first seen there within each DELAY_BUCKETS interval of
    created_at (a delay below 0, clocks apart, counts as under a minute), with the median
    and 90th percentile in seconds (the same on every row)."""
    source = reach or with_reach(con)
    case = _bucket_sql("seconds", DELAY_BUCKETS)
    labels = [label for label, _ in DELAY_BUCKETS]
    starts = [start for _, start in DELAY_BUCKETS]
    return _table(
        con,
        f"""
        WITH delays AS (
            SELECT delay_seconds AS seconds FROM {source} WHERE delay_seconds IS NOT NULL
        ),
        figures AS (
            SELECT count(*) AS total,
                   quantile_cont(seconds, [0.5, 0.9]) AS qs
            FROM delays
        ),
        buckets AS (
            SELECT {case} AS bucket, count(*) AS posts FROM delays GROUP BY bucket
        )
        SELECT b.label AS delay, b.from_seconds, CAST(coalesce(c.posts, 0) AS BIGINT) AS posts,
               round(coalesce(c.posts, 0) / f.total, 4) AS share,
               round(f.qs[1], 1) AS median_seconds, round(f.qs[2], 1) AS p90_seconds
        FROM (
            SELECT unnest(range(?)) AS bucket, unnest(?::VARCHAR[]) AS label,
                   unnest(?::BIGINT[]) AS from_seconds
        ) b
        CROSS JOIN figures f
        LEFT JOIN buckets c ON c.bucket = b.bucket
        WHERE f.total > 0
        ORDER BY b.bucket
        """,
        [len(labels), labels, starts],
    )


# ----------------------------------------------------------------------------------------
# behaviour: content warnings, edits, deletes, bots, accounts' age


def with_behaviour(con: duckdb.DuckDBPyConnection) -> str:
    """Make the temp table `_behaviour` and return its name: the posts counted in one pass,
    grouped five ways (`grouped_by`): per tagged `language`, per `origin`, per UTC `date`,
    per whole `days` of account age (NULL: unknown), and all of them (`all`), each with
    `posts`, `with_warning` (a content warning), `bot_posts` and `edited`. The behaviour
    tables are made from it: pass its name to them to read the lake once (separate passes
    cost twice the CPU on 1.6M posts)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _behaviour AS
        SELECT CASE grouping(language, origin, date, days)
                    WHEN 7 THEN 'language' WHEN 11 THEN 'origin' WHEN 13 THEN 'date'
                    WHEN 14 THEN 'days' ELSE 'all' END AS grouped_by,
               language, origin, date, days,
               count(*) AS posts,
               count(*) FILTER (WHERE spoiler_text <> '') AS with_warning,
               count(*) FILTER (WHERE bot) AS bot_posts,
               count(edited_at) AS edited
        FROM (
            SELECT language, origin, date, bot, edited_at, spoiler_text,
                   -- greatest() skips a NULL: an unknown creation time stays NULL
                   CASE WHEN account_created_at IS NOT NULL
                        THEN greatest(epoch_us(created_at) - epoch_us(account_created_at), 0)
                             // 86400000000 END AS days
            FROM posts
        )
        GROUP BY GROUPING SETS ((language), (origin), (date), (days), ())
        """
    )
    return "_behaviour"


def content_warnings(
    con: duckdb.DuckDBPyConnection,
    by: str = "language",
    limit: int = 20,
    *,
    behaviour: str | None = None,
) -> pa.Table:
    """Content-warning use (a non-empty `spoiler_text`) per tagged language (`by="language"`,
    NULL: no tag) or per origin instance (`by="origin"`), for the `limit` with the most
    posts: posts, posts with a warning, their share."""
    if by not in {"language", "origin"}:
        raise ConfigError(f"Invalid value for by: {by!r}. Allowed values: language, origin.")
    source = behaviour or with_behaviour(con)
    return _table(
        con,
        f"""
        SELECT {by}, posts, with_warning, round(with_warning / posts, 4) AS warning_share
        FROM {source}
        WHERE grouped_by = ?
        ORDER BY posts DESC, {by} NULLS LAST
        LIMIT ?
        """,
        [by, limit],
    )


def edits(con: duckdb.DuckDBPyConnection, *, behaviour: str | None = None) -> pa.Table:
    """One row: posts, how many were edited (their latest version carries `edited_at`), the
    share, and the median and 90th percentile of the time from created_at to the first edit
    seen, in seconds (over every edited post of `posts_all`, deleted ones too)."""
    # The posts view's latest version says whether a post was edited (counted with the
    # rest of the behaviour); only the edited versions of posts_all are grouped.
    source = behaviour or with_behaviour(con)
    return _table(
        con,
        f"""
        WITH counts AS (
            SELECT posts, edited FROM {source} WHERE grouped_by = 'all'
        ),
        first_edits AS (
            SELECT uri, min(edited_at) AS first_edit_at, min(created_at) AS created_at
            FROM posts_all
            WHERE edited_at IS NOT NULL
            GROUP BY uri
        ),
        delays AS (
            SELECT quantile_cont(greatest(epoch(first_edit_at) - epoch(created_at), 0),
                                 [0.5, 0.9]) AS qs
            FROM first_edits
        )
        SELECT c.posts, c.edited,
               CASE WHEN c.posts > 0 THEN round(c.edited / c.posts, 4) END AS edited_share,
               round(d.qs[1], 1) AS median_seconds_to_edit,
               round(d.qs[2], 1) AS p90_seconds_to_edit
        FROM counts c, delays d
        """,
    )


def deletes(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row: posts collected (those in `posts` and those deleted since), how many a delete
    removed, the share, the median and 90th percentile of the time from the post's creation to
    the first delete received, in seconds, and `unmatched_deletes`: delete events that name no
    collected post (deleted before tootlake saw it, or seen on another instance).

    The creation time is the one a Mastodon status id encodes (a snowflake: milliseconds
    since 1970 above 16 bits), read from the delete's id: compaction removes a deleted post's
    rows, and the answer must not change with it. A delete whose id is not a snowflake (other
    servers' ids, and every id of a pseudonymised lake) counts, without a time. Deletes found
    by `tootlake revalidate` (reason `deleted`) count, without a time (found, not received,
    then); removals for other reasons (an account gone, a post no longer public, a consent
    gate: `deletes.reason`) are not an author deleting a post, and are left out."""
    ((events,),) = con.execute("SELECT count(*) FROM deletes").fetchall()
    if not events:  # no delete: nothing to resolve (the joins below would still read posts_all)
        return _table(
            con,
            """
            SELECT count(*) AS posts, CAST(0 AS BIGINT) AS deleted,
                   CASE WHEN count(*) > 0 THEN CAST(0 AS DOUBLE) END AS deleted_share,
                   CAST(NULL AS DOUBLE) AS median_seconds_to_delete,
                   CAST(NULL AS DOUBLE) AS p90_seconds_to_delete,
                   CAST(0 AS BIGINT) AS unmatched_deletes
            FROM posts
            """,
        )
    # The uris each delete removes, as the posts view resolves them (reader.DELETED_URIS); a
    # compaction writes them into the delete events, so either way gives the same uris.
    return _table(
        con,
        """
        WITH authored AS (  -- deletes by authors: sent by a server, or found by revalidate
            SELECT * FROM deletes WHERE reason IS NULL OR reason = 'deleted'
        ),
        named AS (
            SELECT id, uri, deleted_at, reason FROM authored WHERE uri IS NOT NULL
            UNION ALL
            SELECT d.id, a.uri, d.deleted_at, d.reason
            FROM authored d JOIN posts_all a ON a.observed_on = d.observed_on AND a.id = d.id
            WHERE d.uri IS NULL
            UNION ALL
            SELECT d.id, s.uri, d.deleted_at, d.reason
            FROM authored d JOIN sightings_all s ON s.observed_on = d.observed_on AND s.id = d.id
            WHERE d.uri IS NULL
        ),
        gone AS (
            SELECT uri, min(deleted_at) AS deleted_at,
                   -- the time to delete: of the deletes received as they happened
                   min(CASE WHEN reason IS NULL AND regexp_full_match(id, '[0-9]{17,19}')
                            THEN (CAST(id AS UBIGINT) >> 16) / 1000 END) AS created_epoch
            FROM named
            GROUP BY uri
        ),
        figures AS (
            SELECT count(*) AS deleted,
                   quantile_cont(greatest(epoch(deleted_at) - created_epoch, 0), [0.5, 0.9])
                       FILTER (WHERE created_epoch BETWEEN 1451606400 AND epoch(deleted_at))
                       AS qs
            FROM gone
        ),
        unmatched AS (
            SELECT count(*) AS n FROM authored d
            WHERE d.uri IS NULL
              AND NOT EXISTS (SELECT 1 FROM posts_all a
                              WHERE a.observed_on = d.observed_on AND a.id = d.id)
              AND NOT EXISTS (SELECT 1 FROM sightings_all s
                              WHERE s.observed_on = d.observed_on AND s.id = d.id)
        )
        SELECT k.n + f.deleted AS posts, f.deleted,
               CASE WHEN k.n + f.deleted > 0 THEN round(f.deleted / (k.n + f.deleted), 4)
               END AS deleted_share,
               round(f.qs[1], 1) AS median_seconds_to_delete,
               round(f.qs[2], 1) AS p90_seconds_to_delete,
               u.n AS unmatched_deletes
        FROM figures f, unmatched u, (SELECT count(*) AS n FROM posts) k
        """,
    )


def bots_daily(
    con: duckdb.DuckDBPyConnection, tz: str = "UTC", *, behaviour: str | None = None
) -> pa.Table:
    """Per day (of created_at in `tz`): posts, posts by accounts marked as bots, their share."""
    # In UTC the day is the `date` partition column, counted with the rest of the behaviour:
    # no time zone arithmetic per post (5x).
    if check_tz(tz) == "UTC":
        source = behaviour or with_behaviour(con)
        days = f"SELECT date AS day, posts, bot_posts FROM {source} WHERE grouped_by = 'date'"
        params: list[object] = []
    else:
        days = """
            SELECT CAST(timezone(?, created_at) AS DATE) AS day, count(*) AS posts,
                   count(*) FILTER (WHERE bot) AS bot_posts
            FROM posts
            GROUP BY day"""
        params = [tz]
    table = _table(
        con,
        f"""
        SELECT strftime(day, '%Y-%m-%d') AS day, posts, bot_posts,
               round(bot_posts / posts, 4) AS bot_share
        FROM ({days})
        ORDER BY day
        """,
        params,
    )
    return _zoned(table, tz)


# The account-age buckets of account_age(): (label, from days); the last is open-ended.
AGE_BUCKETS = (
    ("under 1 day", 0),
    ("1-7 days", 1),
    ("1-4 weeks", 7),
    ("1-3 months", 28),
    ("3-12 months", 91),
    ("1-2 years", 365),
    ("2-5 years", 730),
    ("5 years or more", 1826),
)


def account_age(con: duckdb.DuckDBPyConnection, *, behaviour: str | None = None) -> pa.Table:
    """How old accounts were when they posted: posts per AGE_BUCKETS interval of whole days
    from account_created_at to created_at (a post before its account's creation time, clocks
    apart, counts as day 0), then posts whose account's creation time is unknown, with the
    median age in whole days (the lower median; the same on every row)."""
    labels = [label for label, _ in AGE_BUCKETS]
    starts = [start for _, start in AGE_BUCKETS]
    # Posts per whole day of age first (a few thousand rows): buckets and median from those.
    source = behaviour or with_behaviour(con)
    return _table(
        con,
        f"""
        WITH ages AS (
            SELECT days, posts FROM {source} WHERE grouped_by = 'days'
        ),
        figures AS (
            SELECT sum(posts) AS total, sum(posts) FILTER (WHERE days IS NOT NULL) AS known
            FROM ages
        ),
        median AS (
            SELECT min(days) AS median_days
            FROM (SELECT days, sum(posts) OVER (ORDER BY days) AS running FROM ages
                  WHERE days IS NOT NULL) r, figures f
            WHERE r.running * 2 >= f.known
        ),
        buckets AS (
            SELECT CASE WHEN days IS NULL THEN -1 ELSE {_bucket_sql("days", AGE_BUCKETS)} END
                       AS bucket,
                   sum(posts) AS posts
            FROM ages
            GROUP BY bucket
        )
        SELECT b.label AS age, b.from_days, CAST(coalesce(c.posts, 0) AS BIGINT) AS posts,
               round(coalesce(c.posts, 0) / f.total, 4) AS share, m.median_days
        FROM (
            SELECT unnest(range(?)) AS bucket, unnest(?::VARCHAR[]) AS label,
                   unnest(?::BIGINT[]) AS from_days
            UNION ALL SELECT -1, 'unknown', NULL
        ) b
        CROSS JOIN figures f
        CROSS JOIN median m
        LEFT JOIN buckets c ON c.bucket = b.bucket
        WHERE f.total > 0 AND (b.bucket >= 0 OR c.posts > 0)
        ORDER BY b.bucket < 0, b.bucket
        """,
        [len(labels), labels, starts],
    )


# ----------------------------------------------------------------------------------------
# the interaction graph: mentions and replies between accounts and between instances


def with_interactions(con: duckdb.DuckDBPyConnection) -> str:
    """Make the temp table `_interactions` and return its name: one row per (kind, source,
    target) of the posts' interactions, `kind` 'mention' (an account the post mentions) or
    'reply' (the account it replies to, `in_reply_to_acct`), `source` the author's acct,
    `target` the other acct, both qualified (user@host), with `source_instance` and
    `target_instance` (the host after the @, lower case) and `edges` (how many). The
    interaction tables are made from it: pass its name to them to read the lake once.

    Public timelines carry no replies to other people (docs/lake.md), so a collected lake's
    replies are mostly threads (an author replying to themselves); replayed recordings of
    other endpoints may hold more. Posts from before the columns existed hold none."""
    # One scan of posts for both kinds (the posts view may be a window over versions).
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _interactions AS
        WITH raw AS (
            SELECT acct, mentions, in_reply_to_acct FROM posts
            WHERE len(mentions) > 0 OR in_reply_to_acct IS NOT NULL
        ),
        edges AS (
            SELECT 'mention' AS kind, acct AS source, unnest(mentions) AS target
            FROM raw WHERE len(mentions) > 0
            UNION ALL
            SELECT 'reply', acct, in_reply_to_acct FROM raw WHERE in_reply_to_acct IS NOT NULL
        )
        SELECT kind, source, target,
               lower(split_part(source, '@', -1)) AS source_instance,
               lower(split_part(target, '@', -1)) AS target_instance,
               count(*) AS edges
        FROM edges
        GROUP BY ALL
        """
    )
    return "_interactions"


def mentioned_accounts(
    con: duckdb.DuckDBPyConnection, limit: int = 20, *, interactions: str | None = None
) -> pa.Table:
    """The `limit` most mentioned accounts: mentions of each, how many distinct accounts
    mentioned it, and its instance."""
    source = interactions or with_interactions(con)
    return _table(
        con,
        f"""
        SELECT target AS account, target_instance AS instance,
               CAST(sum(edges) AS BIGINT) AS mentions,
               count(DISTINCT source) AS mentioned_by
        FROM {source}
        WHERE kind = 'mention'
        GROUP BY target, target_instance
        ORDER BY mentions DESC, mentioned_by DESC, account
        LIMIT ?
        """,
        [limit],
    )


def interaction_pairs(
    con: duckdb.DuckDBPyConnection, top: int = 12, *, interactions: str | None = None
) -> pa.Table:
    """Mentions and replies aggregated to instance pairs, among the `top` instances with the
    most interactions (as source or target; the rest are left out): `source_instance` (the
    author's), `target_instance` (the mentioned or replied-to account's), `mentions`,
    `replies`, `interactions` (both). A heatmap's cells."""
    source = interactions or with_interactions(con)
    return _table(
        con,
        f"""
        WITH totals AS (
            SELECT instance, sum(edges) AS n FROM (
                SELECT source_instance AS instance, edges FROM {source}
                UNION ALL
                SELECT target_instance, edges FROM {source}
            ) GROUP BY instance
        ),
        top AS (SELECT instance FROM totals ORDER BY n DESC, instance LIMIT ?)
        SELECT source_instance, target_instance,
               CAST(coalesce(sum(edges) FILTER (WHERE kind = 'mention'), 0) AS BIGINT)
                   AS mentions,
               CAST(coalesce(sum(edges) FILTER (WHERE kind = 'reply'), 0) AS BIGINT) AS replies,
               CAST(sum(edges) AS BIGINT) AS interactions
        FROM {source}
        WHERE source_instance IN (SELECT instance FROM top)
          AND target_instance IN (SELECT instance FROM top)
        GROUP BY source_instance, target_instance
        ORDER BY interactions DESC, source_instance, target_instance
        """,
        [top],
    )


def cross_server(con: duckdb.DuckDBPyConnection, *, interactions: str | None = None) -> pa.Table:
    """Per kind (mention, reply, then all): interactions, those between accounts of
    different instances, and their share. Self-replies (threads) count as same-server."""
    source = interactions or with_interactions(con)
    return _table(
        con,
        f"""
        SELECT coalesce(kind, 'all') AS kind, CAST(sum(edges) AS BIGINT) AS interactions,
               CAST(coalesce(sum(edges) FILTER (WHERE source_instance <> target_instance), 0)
                    AS BIGINT) AS cross_server,
               round(coalesce(sum(edges) FILTER (WHERE source_instance <> target_instance), 0)
                     / sum(edges), 4) AS cross_server_share
        FROM {source}
        GROUP BY ROLLUP (kind)
        HAVING sum(edges) > 0
        ORDER BY kind IS NULL, kind
        """,
    )
