"""The report: every analysis of the lake at once, rendered as terminal tables, JSON, CSV or
Markdown. (`tootlake.analysis.html` renders the same report as one HTML page.)

Text in the lake comes from the fediverse and is untrusted. Every format is safe to print:
tables and Markdown never carry control characters, escape sequences or bidi controls
(`tootlake.text.for_terminal`); Markdown escapes `|`, `\\`, `](` (no links, no images), HTML
and line breaks (`<br>`), so a row stays one row; JSON writes those characters as
`\\uXXXX` escapes (the same value). CSV is lossless, unless `terminal=True` (stdout is a
terminal): then its text goes through `for_terminal` too.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tootlake.analysis import queries
from tootlake.errors import ConfigError
from tootlake.lake.reader import open_lake
from tootlake.record import FIRST_DATETIME_SECOND, LAST_DATETIME_SECOND
from tootlake.text import for_terminal, json_for_terminal

__all__ = ["FORMATS", "SECTIONS", "TOP_TERMS", "build_report", "render_report", "render_table"]

FORMATS = ("table", "json", "csv", "markdown")
# Sections that are one row, shown as an object rather than a list.
_SINGLE = {"summary", "longest", "edits", "deletes"}
# Line breaks as Markdown and HTML parsers see them (and the ones some editors add).
_LINE_BREAKS = re.compile("\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]")
SECTIONS = (
    "summary",
    "daily",
    "apps",
    "hourly",
    "languages",
    "length_by_language",
    "longest",
    "terms",
    "hashtags",
    "instances",
    "language_tags",
    "language_confusions",
    "untagged_languages",
    "reach_by_origin",
    "reach_daily",
    "reach_delay",
    "content_warnings_by_language",
    "content_warnings_by_origin",
    "edits",
    "deletes",
    "bots_daily",
    "account_age",
    "mentioned_accounts",
    "interaction_pairs",
    "cross_server",
)
TITLES = {
    "summary": "Headline statistics",
    "daily": "Daily activity (UTC)",
    "apps": "Client apps (people, local posts)",
    "hourly": "Posts per hour of day (UTC)",
    "languages": "Languages",
    "length_by_language": "Post length by language (characters)",
    "longest": "The longest post",
    "terms": "Terms per day",
    "hashtags": "Top hashtags",
    "instances": "Instances sharing the most posts (authors' home servers)",
    "language_tags": "Language tags versus text: posts whose text is in another language",
    "language_confusions": "Language tags versus text: the most frequent confusions",
    "untagged_languages": "Posts without a language tag, by detected language",
    "reach_by_origin": "Federation reach by origin instance (collected instances that saw a post)",
    "reach_daily": "Federation reach per day (UTC)",
    "reach_delay": "How long until a post is seen on another server",
    "content_warnings_by_language": "Content warnings by language (as tagged)",
    "content_warnings_by_origin": "Content warnings by instance (authors' home servers)",
    "edits": "Edits",
    "deletes": "Deletes",
    "bots_daily": "Bots' share of posts per day (UTC)",
    "account_age": "Accounts' age at posting",
    "mentioned_accounts": "The most mentioned accounts",
    "interaction_pairs": "Mentions and replies between instances (the busiest instances)",
    "cross_server": "Interactions that cross servers",
}
# What an empty section means, said under its title (table and Markdown formats).
EMPTY_NOTES = (
    {
        name: "No languages detected yet: run `tootlake enrich` (needs the `lang` extra)."
        for name in ("language_tags", "language_confusions", "untagged_languages")
    }
    | {
        name: "No sightings in the lake: `collect` and `sink` record them, `replay` does not."
        for name in ("reach_by_origin", "reach_daily", "reach_delay")
    }
    | {
        name: "No mentions or replies in the lake (posts collected before tootlake recorded them "
        "hold none)."
        for name in ("mentioned_accounts", "interaction_pairs", "cross_server")
    }
)


TOP_TERMS = 5  # hashtags followed per day when no terms are given: five lines stay apart


def build_report(
    lake: str | None = None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    terms: Sequence[str] | None = queries.DEFAULT_TERMS,
    top: int = 20,
    tz: str = "UTC",
) -> dict[str, pa.Table]:
    """Run every analysis over a lake (or an open connection); section name -> table.

    `terms` are the words followed per day; none (the default) follows the lake's own
    `TOP_TERMS` most used hashtags. `queries.TALK_TERMS` are the 2023 talk's words. `tz` (an
    IANA name such as Europe/Berlin) is the time zone of the days and hours.
    """
    queries.check_tz(tz)  # before opening the lake: a typo fails fast
    if con is None:
        if lake is None:
            raise ConfigError("build_report needs a lake or a connection")
        con = open_lake(lake)
    hashtags = queries.hashtags(con, limit=max(top, TOP_TERMS))
    words, source = [w for w in terms or () if w.strip()], b"chosen"
    if not words:
        words, source = hashtags.column("tag").to_pylist()[:TOP_TERMS], b"hashtags"
    followed = queries.terms(con, words, tz)
    followed = followed.replace_schema_metadata(
        {**(followed.schema.metadata or {}), queries.TERMS_FROM_KEY: source}
    )
    pairs = queries.with_language_pairs(con)  # each read once for its three sections
    reach = queries.with_reach(con)
    behaviour = queries.with_behaviour(con)
    interactions = queries.with_interactions(con)
    return {
        "summary": queries.summary(con),
        "daily": queries.daily(con, tz),
        "apps": queries.apps(con),
        "hourly": queries.hourly(con, tz),
        "languages": queries.languages(con),
        "length_by_language": queries.length_by_language(con, top=top, percentiles=True),
        "longest": queries.longest(con),
        "terms": followed,
        "hashtags": hashtags.slice(0, top),
        "instances": queries.instances(con, limit=top),
        "language_tags": queries.language_tags(con, pairs=pairs),
        "language_confusions": queries.language_confusions(con, limit=top, pairs=pairs),
        "untagged_languages": queries.untagged_languages(con, pairs=pairs),
        "reach_by_origin": queries.reach_by_origin(con, limit=top, reach=reach),
        "reach_daily": queries.reach_daily(con, tz, reach=reach),
        "reach_delay": queries.reach_delay(con, reach=reach),
        "content_warnings_by_language": queries.content_warnings(
            con, "language", limit=top, behaviour=behaviour
        ),
        "content_warnings_by_origin": queries.content_warnings(
            con, "origin", limit=top, behaviour=behaviour
        ),
        "edits": queries.edits(con, behaviour=behaviour),
        "deletes": queries.deletes(con),
        "bots_daily": queries.bots_daily(con, tz, behaviour=behaviour),
        "account_age": queries.account_age(con, behaviour=behaviour),
        "mentioned_accounts": queries.mentioned_accounts(con, limit=top, interactions=interactions),
        "interaction_pairs": queries.interaction_pairs(con, interactions=interactions),
        "cross_server": queries.cross_server(con, interactions=interactions),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in as_pylist(table)]


def as_pylist(table: pa.Table) -> list[dict[str, Any]]:
    """`table.to_pylist()`, with times in UTC as aware datetimes. pyarrow imports pandas to
    convert a time zone (a third of a second of every report); the lake's times are UTC, so
    they are read without one and marked UTC here. A time with nanoseconds (a user's query
    in `tootlake sql`) cannot be a datetime: it becomes its ISO text, every digit kept."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns" and _has_nanoseconds(table[i]):
            iso = "%Y-%m-%dT%H:%M:%S" + ("%z" if f.type.tz is not None else "")
            table = table.set_column(i, f.name, pc.strftime(table[i], format=iso))
        elif (text := _beyond_python_as_text(table[i])) is not None:
            table = table.set_column(i, f.name, text)
    aware = [
        f.name for f in table.schema if pa.types.is_timestamp(f.type) and f.type.tz is not None
    ]
    for name in aware:
        i = table.schema.get_field_index(name)
        table = table.set_column(
            i, name, table.column(i).cast(pa.timestamp(table.schema.field(i).type.unit))
        )
    rows = table.to_pylist()
    for row in rows:
        for name in aware:
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=UTC)
    return rows


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000}


def _beyond_python_as_text(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A time or date column holding a value no datetime can (DuckDB's `infinity`, the year
    10000: a user's query in `tootlake sql`) as text, `infinity` and `-infinity` named; None
    when every value fits (as_py raised OverflowError on them)."""
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        return None  # (an int64 of nanoseconds is always within 1677-2262)
    if pa.types.is_timestamp(kind):
        per = _PER_SECOND[kind.unit]
        values, top = column.cast(pa.int64()), 2**63 - 1
        low, high = FIRST_DATETIME_SECOND * per, LAST_DATETIME_SECOND * per + per - 1
    elif pa.types.is_date32(kind):
        values, top = column.cast(pa.int32()).cast(pa.int64()), 2**31 - 1
        low, high = FIRST_DATETIME_SECOND // 86_400, LAST_DATETIME_SECOND // 86_400
    else:
        return None
    beyond = pc.or_(pc.less(values, low), pc.greater(values, high))
    if not pc.any(beyond).as_py():
        return None
    text = column.cast(pa.string())
    text = pc.if_else(pc.greater_equal(values, top), "infinity", text)
    return pc.if_else(pc.less_equal(values, -top), "-infinity", text)


def _has_nanoseconds(column: pa.ChunkedArray) -> bool:
    """True when a time in `column` (of unit ns) is not a whole microsecond."""
    try:
        column.cast(pa.timestamp("us", column.type.tz))  # (a safe cast refuses to truncate)
    except pa.ArrowInvalid:
        return True
    return False


def report_as_dict(report: dict[str, pa.Table]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, table in report.items():
        rows = _rows(table)
        out[name] = (rows[0] if rows else None) if name in _SINGLE else rows
    return out


def _json(value: Any) -> str:
    return json_for_terminal(_dumps(value, indent=2))


def _dumps(value: Any, indent: int | None = None) -> str:
    """`value` as standard JSON (`_json_value`), for every format that writes JSON."""
    return json.dumps(
        _json_value(value), indent=indent, ensure_ascii=False, allow_nan=False, default=str
    )


def _title(name: str, table: pa.Table) -> str:
    """The section's title, naming the time zone of its days and hours."""
    title = TITLES.get(name, name)
    tz = (table.schema.metadata or {}).get(queries.TZ_KEY)
    return title.replace("(UTC)", f"({tz.decode()})") if tz else title


def render_report(
    report: dict[str, pa.Table], fmt: str = "table", *, terminal: bool = False
) -> str:
    """The report as text in one of FORMATS (`terminal`: for a terminal, see the module's
    docstring)."""
    if fmt == "json":
        return _json(report_as_dict(report))
    if fmt not in FORMATS:
        raise ConfigError(f"Invalid format {fmt!r}. Allowed values: {', '.join(FORMATS)}.")
    parts = []
    for name, table in report.items():
        if fmt == "table" and name in _SINGLE:
            # One row reads better as a list of figures than as a very wide table.
            rows = _rows(table)
            pairs = list(rows[0].items()) if rows else []
            table = (
                pa.table(
                    {
                        "figure": [k for k, _ in pairs],
                        "value": [
                            v if isinstance(v, str) else _cell(v, share=_is_share(k))
                            for k, v in pairs
                        ],
                    }
                )
                if pairs
                else table
            )
        rendered = render_table(
            table, fmt, title=_title(name, table), section=name, terminal=terminal
        )
        if not table.num_rows and name in EMPTY_NOTES and fmt in {"table", "markdown"}:
            note = EMPTY_NOTES[name]
            reach = report.get("reach_by_origin")
            if name == "reach_delay" and reach is not None and reach.num_rows:
                note = "No post was seen on an instance other than its origin."
            rendered += note + "\n"
        parts.append(rendered)
    return "\n".join(parts)


def render_table(
    table: pa.Table, fmt: str, *, title: str = "", section: str = "", terminal: bool = False
) -> str:
    """One table as text in one of FORMATS (`terminal`: for a terminal, see the module's
    docstring)."""
    rows = _rows(table)
    columns = table.column_names
    if fmt == "json":
        return _json(rows)
    if fmt == "jsonl":  # one object a line (`sql --format jsonl`), escaped as JSON is
        dumps = (_dumps(row) for row in rows)
        return "".join(json_for_terminal(line) + "\n" for line in dumps)
    if fmt == "csv":
        buffer = io.StringIO()
        if section:
            buffer.write(f"# {section}\n")
        clean = _for_terminal if terminal else _same
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([clean(c) for c in columns])
        writer.writerows([clean(_flat(row[c])) for c in columns] for row in rows)
        return buffer.getvalue()
    if fmt == "markdown":
        lines = [f"## {_md_cell(title)}", ""] if title else []
        lines.append("| " + " | ".join(_md_cell(c) for c in columns) + " |")
        lines.append("|" + "---|" * len(columns))
        for row in rows:
            cells = [_md_cell(_flat(row[c])) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    return _rich_table(rows, columns, title)


def _flat(value: Any) -> Any:
    """A list, struct or map value (an Arrow list, struct or map column) as standard JSON
    text, which other tools read back, not as Python's repr."""
    return _dumps(value) if isinstance(value, list | dict) else value


def _json_value(value: Any) -> Any:
    """`value` with what JSON cannot hold made plain, at any depth: times as the top-level
    columns show them, NaN and infinities (a float's, a Decimal's) as null, bytes as hex."""
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    value = _plain(value)
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _for_terminal(value: Any) -> Any:
    return for_terminal(value) if isinstance(value, str) else value


def _same(value: Any) -> Any:
    return value


def _md_cell(value: Any) -> str:
    """A Markdown table cell: one line, no control characters, no raw HTML, no link or
    image, no `|` that would end the cell."""
    text = for_terminal(_LINE_BREAKS.sub("\n", "" if value is None else str(value)))
    text = html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|")
    # no inline link or image (a post's ![](https://...) made every viewer fetch that URL);
    # a reference one needs a definition, which a table row cannot hold
    text = text.replace("](", "]\\(")
    return text.replace("\n", "<br>")


def _rich_table(rows: list[dict[str, Any]], columns: list[str], title: str) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=_cell(title) if title else None, title_justify="left", title_style="bold")
    for column in columns:
        numeric = rows and isinstance(rows[0].get(column), int | float)
        table.add_column(_cell(column), justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row[c], share=_is_share(c)) for c in columns))
    console = Console(file=io.StringIO(), width=120, force_terminal=False, color_system=None)
    console.print(table)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return str(out)


def _is_share(column: str) -> bool:
    return column == "share" or column.endswith("_share")


def _cell(value: Any, *, share: bool = False) -> Any:
    from rich.text import Text

    if value is None:
        return ""
    if share and isinstance(value, float):
        return f"{value:.1%}"  # a share of 0.0123 reads 1.2%, not 0.0
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    # Text from the fediverse is untrusted: no rich markup, no terminal control sequences.
    return Text(for_terminal(str(value)))
