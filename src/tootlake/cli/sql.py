"""`tootlake sql`: DuckDB SQL over the lake's views."""

from __future__ import annotations

import re
from typing import Any

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import Count, format_option, lake_option, skip_corrupt_option
from tootlake.cli.output import clean, echo_output, stdout_is_terminal
from tootlake.settings import load_settings

SQL_TERMINAL_LIMIT = 1_000  # rows `sql` prints to a terminal unless --limit says otherwise
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@click.command()
@click.argument("query")
@lake_option
@format_option(
    ["table", "json", "jsonl", "csv", "markdown"],
    default="table",
    help="Output format (jsonl: one JSON object a row). Text is made safe to print (no "
    "control characters); csv to a file or pipe stays lossless.",
)
@click.option(
    "--limit",
    type=Count(0),
    metavar="N",
    help=f"Print at most N rows, 0 for all. Default: {SQL_TERMINAL_LIMIT:,} when the output "
    "is a terminal (a note says when rows were left out), all otherwise.",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A value for $NAME in the query (repeatable), bound by DuckDB, never pasted into "
    "the SQL. It is text: DuckDB casts it where the query compares it with a number, or "
    "write $NAME::INT.",
)
@skip_corrupt_option
@run_command
def sql(
    query: str,
    lake: str | None,
    fmt: str,
    limit: int | None,
    params: tuple[str, ...],
    skip_corrupt: bool,
) -> None:
    """Run SQL (DuckDB) over the lake's views.

    \b
      posts          one row per post: its latest version, deleted posts left out
      posts_all      every version of every post as written
      deletes        every delete event
      sightings      every instance a post was seen on (uri, observed_on, id, seen_at)
      sightings_all  the sightings as written (a replayed file may repeat one)
      languages      the language `tootlake enrich` detected in each post's text
      rejects        every status, line or event that could not become a post, and why
      audit          one row per run of collect, replay or compact: how the lake was made
      checks         one row per post `tootlake revalidate` asked its instance about

    Their columns are in docs/lake.md. Values go in as parameters:

    \b
      tootlake sql 'SELECT count(*) FROM posts WHERE language = $lang' -p lang=de
    """
    import duckdb

    from tootlake.analysis.report import render_table
    from tootlake.lake.reader import read_lake

    values = _sql_params(params)
    terminal = stdout_is_terminal()
    if limit is None:
        limit = SQL_TERMINAL_LIMIT if terminal else 0

    def run(con: duckdb.DuckDBPyConnection) -> Any:
        # None for a statement without a result (SET, CREATE ...)
        relation = con.sql(query, params=values or None)
        if relation is not None and limit:
            relation = relation.limit(limit + 1)  # one more: were rows left out?
        return None if relation is None else relation.to_arrow_table()

    settings = load_settings(lake=lake)
    try:
        table = read_lake(settings.lake, run, skip_corrupt=skip_corrupt)
    except duckdb.Error as exc:
        raise click.ClickException(clean(f"SQL error: {exc}")) from exc
    if table is None:
        return
    cut = bool(limit) and table.num_rows > limit
    if cut:
        table = table.slice(0, limit)
    echo_output(render_table(table, fmt, terminal=terminal))
    if cut:
        click.echo(
            f"Showing the first {limit:,} rows; there are more. --limit 0 shows them all.",
            err=True,
        )


def _sql_params(pairs: tuple[str, ...]) -> dict[str, str]:
    """`-p NAME=VALUE` values -> {NAME: VALUE}, for DuckDB's `$NAME` (a `$` before NAME is
    allowed)."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().removeprefix("$")
        if not sep or not _PARAM_NAME.fullmatch(name):
            raise click.BadParameter(
                f"{clean(pair)!r}: use NAME=VALUE, NAME made of letters, digits and _ "
                "(e.g. -p lang=de for $lang).",
                param_hint="'-p' / '--param'",
            )
        values[name] = value
    return values
