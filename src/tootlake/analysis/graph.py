"""Interaction graphs of the lake as weighted edge lists that networkx, igraph and Gephi open.

    con = open_lake("lake")
    table = edges(con, "mentions", since=datetime(2026, 11, 1, tzinfo=UTC))
    write_edges(table, "mentions.graphml", "graphml")

Edge kinds, each directed from the author of a post:

  * `mentions`   author acct -> mentioned acct, a mention per post (`posts.mentions`);
  * `replies`    author acct -> replied-to acct (`posts.in_reply_to_acct`; public timelines
                 carry only threads, an author replying to themselves: see docs/lake.md);
  * `quotes`     author acct -> the quoted post's author, where the lake holds the quoted post
                 (`posts.quote_uri`; a quote of a post the lake lacks names no account and is
                 left out);
  * `instances`  the three above between the instances of both accounts (the host after the
                 @), with a column per kind.

Each edge has a `weight` (how many posts make it) and the `first_at` and `last_at` of those
posts (`created_at`); `--since`/`--until` keep posts written in [since, until).

Formats: Parquet and CSV (columns `source`, `target`, `weight`, ...: `nx.from_pandas_edgelist`,
`igraph.Graph.DataFrame`, Gephi's spreadsheet import) and GraphML (a directed graph; node ids
`n0`, `n1`... with the acct or host as the `label`, edge data for every other column). Accts
come from the fediverse and are untrusted: GraphML text is escaped, and characters XML 1.0
cannot hold (control characters, lone surrogates) become U+FFFD.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

import duckdb
import pyarrow as pa

from tootlake.errors import ConfigError

__all__ = ["EDGE_KINDS", "GRAPH_FORMATS", "edges", "graphml_lines", "write_edges"]

EDGE_KINDS = ("mentions", "replies", "quotes", "instances")
GRAPH_FORMATS = ("parquet", "csv", "graphml")

# (source, target) of each account-to-account kind, over `posts p` (and `posts q`, quoted)
_ACCOUNT_EDGES = {
    "mentions": "SELECT p.acct AS source, unnest(p.mentions) AS target, p.created_at "
    "FROM posts p WHERE len(p.mentions) > 0 {where}",
    "replies": "SELECT p.acct AS source, p.in_reply_to_acct AS target, p.created_at "
    "FROM posts p WHERE p.in_reply_to_acct IS NOT NULL {where}",
    "quotes": "SELECT p.acct AS source, q.acct AS target, p.created_at "
    "FROM posts p JOIN posts q ON q.uri = p.quote_uri WHERE p.quote_uri IS NOT NULL {where}",
}


def _window(since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    where, params = "", []
    if since is not None:
        where += " AND p.created_at >= ?"
        params.append(since)
    if until is not None:
        where += " AND p.created_at < ?"
        params.append(until)
    return where, params


def edges(
    con: duckdb.DuckDBPyConnection,
    kind: str = "mentions",
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    """The weighted edge list of one of EDGE_KINDS over the `posts` view of `con` (from
    `open_lake()`): source, target, weight, first_at, last_at (and for `instances` the
    mentions, replies and quotes behind each weight), heaviest first. A post naming no
    account (a null acct or mention of a damaged lake) makes no edge: GraphML would show a
    node named "None"."""
    if kind not in EDGE_KINDS:
        raise ConfigError(f"Invalid edge kind {kind!r}. Allowed values: {', '.join(EDGE_KINDS)}.")
    where, params = _window(since, until)
    if kind != "instances":
        sql = f"""
            SELECT source, target, count(*) AS weight,
                   min(created_at) AS first_at, max(created_at) AS last_at
            FROM ({_ACCOUNT_EDGES[kind].format(where=where)})
            WHERE source IS NOT NULL AND target IS NOT NULL  -- (no account: no edge)
            GROUP BY source, target
            ORDER BY weight DESC, source, target
        """
        return con.sql(sql, params=params or None).to_arrow_table()
    parts = [
        f"SELECT '{name}' AS kind, * FROM ({query.format(where=where)})"
        for name, query in _ACCOUNT_EDGES.items()
    ]
    sql = f"""
        SELECT lower(split_part(source, '@', -1)) AS source,
               lower(split_part(target, '@', -1)) AS target,
               count(*) AS weight,
               count(*) FILTER (WHERE kind = 'mentions') AS mentions,
               count(*) FILTER (WHERE kind = 'replies') AS replies,
               count(*) FILTER (WHERE kind = 'quotes') AS quotes,
               min(created_at) AS first_at, max(created_at) AS last_at
        FROM ({" UNION ALL ".join(parts)})
        WHERE source IS NOT NULL AND target IS NOT NULL
        GROUP BY 1, 2
        ORDER BY weight DESC, source, target
    """
    return con.sql(sql, params=params * len(parts) or None).to_arrow_table()


# ----------------------------------------------------------------------------------------
# writing

# What XML 1.0 cannot hold: C0 controls but tab, newline and CR; lone surrogates; U+FFFE/F.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(value: object) -> str:
    """Text safe as XML character data and inside a double-quoted attribute."""
    text = _NOT_XML.sub("\ufffd", str(value))
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\r", "&#13;")  # (a parser would turn a bare CR into a newline)
    )


def _graphml_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "long"
    if pa.types.is_floating(arrow_type):
        return "double"
    return "string"


def _graphml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _values(column: Any) -> list[Any]:
    """A column's values; times as ISO text in UTC (read without their zone: pyarrow would
    import pandas to convert one)."""
    if pa.types.is_timestamp(column.type):
        naive = column.cast(pa.timestamp(column.type.unit))
        return [None if v is None else v.isoformat() + "Z" for v in naive.to_pylist()]
    return column.to_pylist()  # type: ignore[no-any-return]


def graphml_lines(table: pa.Table) -> Iterator[str]:
    """An edge list (`source`, `target`, then edge data) as GraphML text, line by line."""
    data = [f for f in table.schema if f.name not in ("source", "target")]
    yield '<?xml version="1.0" encoding="UTF-8"?>\n'
    yield (
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
        'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
    )
    yield '  <key id="label" for="node" attr.name="label" attr.type="string"/>\n'
    for i, f in enumerate(data):
        yield (
            f'  <key id="e{i}" for="edge" attr.name="{_xml(f.name)}" '
            f'attr.type="{_graphml_type(f.type)}"/>\n'
        )
    yield '  <graph id="G" edgedefault="directed">\n'
    nodes: dict[str, str] = {}
    sources = table.column("source").to_pylist()
    targets = table.column("target").to_pylist()
    for name in (*sources, *targets):
        if name not in nodes:
            node = nodes[name] = f"n{len(nodes)}"
            yield f'    <node id="{node}"><data key="label">{_xml(name)}</data></node>\n'
    columns = [_values(table.column(f.name)) for f in data]
    for row, (source, target) in enumerate(zip(sources, targets, strict=True)):
        values = "".join(
            f'<data key="e{i}">{_xml(_graphml_value(column[row]))}</data>'
            for i, column in enumerate(columns)
            if column[row] is not None
        )
        yield f'    <edge source="{nodes[source]}" target="{nodes[target]}">{values}</edge>\n'
    yield "  </graph>\n</graphml>\n"


def write_edges(table: pa.Table, out: str | IO[bytes], fmt: str) -> None:
    """Write an edge list to a path or a binary file as one of GRAPH_FORMATS."""
    if fmt not in GRAPH_FORMATS:
        raise ConfigError(f"Invalid format {fmt!r}. Allowed values: {', '.join(GRAPH_FORMATS)}.")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out, compression="zstd")
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, out)
    elif isinstance(out, str):
        with open(out, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(graphml_lines(table))
    else:
        for line in graphml_lines(table):
            out.write(line.encode("utf-8"))
