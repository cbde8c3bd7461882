"""Hostile review of `tootlake graph` (audit): nulls where an account should be (a damaged or
foreign lake) make no edge, rather than a node named "None"."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tootlake.analysis.graph import EDGE_KINDS, edges, graphml_lines


@pytest.fixture
def con(tmp_path):
    at = datetime(2025, 1, 1, tzinfo=UTC)
    table = pa.table(
        {
            "uri": ["u1", "u2", "u3"],
            "acct": ["a@x.example", None, "c@z.example"],
            "mentions": [["b@y.example", None], ["b@y.example"], None],
            "in_reply_to_acct": [None, "c@z.example", None],
            "quote_uri": [None, "u1", "u2"],
            "created_at": pa.array([at, None, at], pa.timestamp("us", tz="UTC")),
        }
    )
    path = tmp_path / "posts.parquet"
    pq.write_table(table, path)
    connection = duckdb.connect()
    connection.execute(f"CREATE VIEW posts AS SELECT * FROM read_parquet('{path}')")
    yield connection
    connection.close()


@pytest.mark.parametrize("kind", EDGE_KINDS)
def test_a_null_account_makes_no_edge_and_no_node_named_none(con, kind):
    table = edges(con, kind)
    assert table.column("source").null_count == 0 and table.column("target").null_count == 0
    labels = [
        data.text
        for data in ET.fromstring("".join(graphml_lines(table)).encode()).iter(
            "{http://graphml.graphdrawing.org/xmlns}data"
        )
        if data.get("key") == "label"
    ]
    assert "None" not in labels
    if kind == "mentions":
        assert table.to_pylist()[0]["source"] == "a@x.example"
        assert [(r["source"], r["target"]) for r in table.to_pylist()] == [
            ("a@x.example", "b@y.example")
        ]
