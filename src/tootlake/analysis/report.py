"""The report: every analysis of the lake at once, rendered as terminal tables, JSON, CSV or
Markdown. (`tootlake.analysis.html` renders the same report as one HTML page.)"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from tootlake.analysis import queries
from tootlake.analysis.lake import open_lake
from tootlake.errors import ConfigError

__all__ = ["FORMATS", "SECTIONS", "build_report", "render_report", "render_table"]

FORMATS = ("table", "json", "csv", "markdown")
# Sections that are one row, shown as an object rather than a list.
_SINGLE = {"summary", "longest"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
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
}


def build_report(
    lake: str | None = None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    terms: Sequence[str] = queries.DEFAULT_TERMS,
    top: int = 20,
) -> dict[str, pa.Table]:
    """Run every analysis over a lake (or an open connection); section name -> table."""
    if con is None:
        if lake is None:
            raise ConfigError("build_report needs a lake or a connection")
        con = open_lake(lake)
    return {
        "summary": queries.summary(con),
        "daily": queries.daily(con),
        "apps": queries.apps(con),
        "hourly": queries.hourly(con),
        "languages": queries.languages(con),
        "length_by_language": queries.length_by_language(con, top=top),
        "longest": queries.longest(con),
        "terms": queries.terms(con, terms),
        "hashtags": queries.hashtags(con, limit=top),
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
    they are read without one and marked UTC here."""
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


def report_as_dict(report: dict[str, pa.Table]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, table in report.items():
        rows = _rows(table)
        out[name] = (rows[0] if rows else None) if name in _SINGLE else rows
    return out


def render_report(report: dict[str, pa.Table], fmt: str = "table") -> str:
    """The report as text in one of FORMATS."""
    if fmt == "json":
        return json.dumps(report_as_dict(report), indent=2, ensure_ascii=False)
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
                        "value": [_cell(v) if not isinstance(v, str) else v for _, v in pairs],
                    }
                )
                if pairs
                else table
            )
        parts.append(render_table(table, fmt, title=TITLES.get(name, name), section=name))
    return "\n".join(parts)


def render_table(table: pa.Table, fmt: str, *, title: str = "", section: str = "") -> str:
    rows = _rows(table)
    columns = table.column_names
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    if fmt == "csv":
        buffer = io.StringIO()
        if section:
            buffer.write(f"# {section}\n")
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt == "markdown":
        lines = [f"## {title}", ""] if title else []
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        for row in rows:
            cells = [_md_cell(row[c]) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    return _rich_table(rows, columns, title)


def _md_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _rich_table(rows: list[dict[str, Any]], columns: list[str], title: str) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", title_style="bold")
    for column in columns:
        numeric = rows and isinstance(rows[0].get(column), int | float)
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns))
    console = Console(file=io.StringIO(), width=120, force_terminal=False, color_system=None)
    console.print(table)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return str(out)


def _cell(value: Any) -> Any:
    from rich.text import Text

    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    # Text from the fediverse is untrusted: no rich markup, no terminal control sequences.
    return Text(_CONTROL.sub("", str(value)))
