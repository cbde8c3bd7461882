"""The talk's notebook procedure, as the baseline of the analysis benchmark.

The 2023 talk's notebook (jupysql `%%sql` cells over an in-memory DuckDB, with
`SqlMagic.autopandas = True`, so every cell's result became a pandas DataFrame):

  1. the language table from language.csv, then
     `create table mastodon_toot_raw as select m_id, created_at, <created_tz>, app, url,
     <from_instance>, base_url, language, favourites, username, bot, tags, characters,
     mastodon_text from read_parquet('.../partition=0/*')` and `mastodon_toot` as its join
     to the language table;
  2. daily usage: posts, users, instances per day with mode() of the top user, bot and host;
  3. the app landscape: `mastodon_app_df << select * from mastodon_toot where app is not
     null and app <> '' and bot='False'` (a pandas frame, for seaborn's countplot);
  4. hour of day: `mastodon_usage_df << select strftime(created_tz, ...), date_part('hour',
     created_tz), count(*) ... group by 1,2` (for a lineplot);
  5. toot length by language: `mastodon_lang_df << select * from mastodon_toot where
     language not in ('unknown')` (for a boxplot);
  6. the longest toot, with a window over every row;
  7. the "surprising statistics" of the last slide, in one query.

The charts (seaborn) are left out here: charts are a later issue, benchmarked with them.
Differences in the baseline's favour: DuckDB's Python API and `.df()` instead of jupysql's
SQLAlchemy round trip, and local files where the talk read S3 (MinIO) over httpfs.

    python bench/talk_notebook.py --topics DIR --language-csv FILE
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import duckdb

DAILY = """
select strftime(created_tz, '%Y/%m/%d %a') as "Created day"
, count(*) as "Num toots"
, count(distinct(username)) as "Num users"
, count(distinct(from_instance)) as "Num urls"
, mode(case when bot='False' then username end) as "Most freq non-bot"
, mode(case when bot='True' then username end) as "Most freq bot"
, mode(base_url) as "Most freq host"
from mastodon_toot
group by 1
order by 1
"""
APPS = """
select *
from mastodon_toot
where app is not null
and app <> ''
and bot='False'
"""
HOURS = """
select strftime(created_tz, '%Y/%m/%d %a') as created_day
, date_part('hour', created_tz) as created_hour
, count(*) as num
from mastodon_toot
group by 1,2
order by 1,2
"""
LANGUAGES = """
select *
from mastodon_toot
where language not in ('unknown')
"""
LONGEST = """
with cte as
(
    select username
    , mastodon_text
    , len(mastodon_text) as len_toot
    , max(len(mastodon_text)) over () as max_len_toot
    from mastodon_toot
)
select username, mastodon_text
from cte
where len_toot = max_len_toot
"""
STATISTICS = """
select count(*) as toots
, count(distinct username) as users
, count(distinct from_instance) as instances
, count(distinct language) as languages
, min(characters) as shortest
, avg(characters) as average
, max(characters) as longest
, sum(characters) as all_characters
from mastodon_toot
"""


def load_tables(con: Any, topics: str, language_csv: str) -> None:
    """The notebook's first cells: the language table, then `mastodon_toot` from the
    Connect sink's Parquet files in `topics` (the partition=0 folder)."""
    con.execute("CREATE TABLE language(lang_iso VARCHAR PRIMARY KEY, language_name VARCHAR)")
    con.execute(
        "insert into language select * from read_csv(?, AUTO_DETECT=TRUE, header=True)",
        [language_csv],
    )
    pattern = f"{topics.rstrip('/')}/*.parquet".replace("'", "''")
    con.execute(
        f"""
        create table mastodon_toot_raw as
        select m_id
        , created_at, ('EPOCH'::TIMESTAMP + INTERVAL (created_at::INT) seconds)::TIMESTAMPTZ as created_tz
        , app
        , url
        , regexp_replace(regexp_replace(url, '^http[s]://', ''), '/.*$', '') as from_instance
        , base_url
        , language
        , favourites
        , username
        , bot
        , tags
        , characters
        , mastodon_text
        from read_parquet('{pattern}')
        """  # noqa: E501 - the talk's SQL, as it was
    )
    con.execute(
        "create table mastodon_toot as select mr.*, ln.language_name "
        "from mastodon_toot_raw mr left outer join language ln on (mr.language = ln.lang_iso)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", required=True, help="the partition=0 folder of the files")
    parser.add_argument("--language-csv", required=True)
    args = parser.parse_args(argv)

    steps: dict[str, float] = {}
    rows: dict[str, int] = {}
    started = time.perf_counter()

    def step(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        steps[name] = round(now - started, 3)
        started = now

    con = duckdb.connect()  # %sql duckdb:///:memory:
    load_tables(con, args.topics, args.language_csv)
    step("load")
    frames: dict[str, Any] = {}
    for name, sql in (
        ("daily", DAILY),
        ("apps", APPS),
        ("hours", HOURS),
        ("languages", LANGUAGES),
        ("longest", LONGEST),
        ("statistics", STATISTICS),
    ):
        frames[name] = con.sql(sql).df()  # autopandas: every cell's result is a DataFrame
        rows[name] = len(frames[name])
        step(name)
    memory = con.execute("PRAGMA database_size").fetchall()[0]  # the talk's "745.5MB"
    stats = frames["statistics"].iloc[0]
    print(
        json.dumps(
            {
                "steps": steps,
                "rows": rows,
                "duckdb_memory_usage": memory[-2] if memory else None,
                "statistics": {
                    k: (float(v) if k == "average" else int(v)) for k, v in stats.items()
                },
                "longest_characters": int(len(frames["longest"]["mastodon_text"].iloc[0])),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
