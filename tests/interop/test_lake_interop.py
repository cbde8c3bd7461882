"""Other engines read the lake with no tootlake code: delta-rs alone, polars and Apache Spark
see exactly the `posts` that tootlake's views give, on a local folder and on S3 (moto), for a
lake with edits, deletes, copies from several instances, one compaction and writes after it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from talkshape import write_sse
from tests.lakes import lake_url  # noqa: F401  (fixture)
from tootlake.lake import tables
from tootlake.lake.maintenance import compact
from tootlake.lake.reader import open_lake
from tootlake.pipeline import replay

from .spark_support import spark_summary


def _build(lake: str, folder: Path) -> None:
    first, second = folder / "a.sse", folder / "b.sse"
    write_sse(first, 400, seed=41, days=0.5, edits=0.08, deletes=0.08)
    write_sse(second, 300, seed=42, days=0.5, edits=0.08, deletes=0.08)
    replay([first], lake, observed_on="a.example")
    compact(lake, retain_files=0)
    # after the compaction: the same posts seen on another instance, and new ones
    replay([first, second], lake, observed_on="b.example")


@pytest.fixture
def interop_lake(lake_url: str, tmp_path: Path) -> str:  # noqa: F811
    _build(lake_url, tmp_path)
    return lake_url


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("uri", "ascending")])


def _tootlake_posts(lake: str) -> pa.Table:
    con = open_lake(lake)
    return _sorted(con.sql("SELECT * FROM posts").to_arrow_table())


def test_delta_rs_and_polars_read_the_posts_tootlake_gives(interop_lake: str) -> None:
    import polars as pl
    from deltalake import DeltaTable

    ours = _tootlake_posts(interop_lake)
    assert ours.num_rows > 300
    uri, options = tables.table_uri(interop_lake, "posts"), tables.storage_options(interop_lake)
    theirs = _sorted(DeltaTable(uri, storage_options=options).to_pyarrow_table())
    assert theirs.num_rows == ours.num_rows
    for name in ours.column_names:  # every column, every row (delta-rs names list items
        # "element" where DuckDB says "item": compare values)
        assert theirs.column(name).to_pylist() == ours.column(name).to_pylist(), name
    frame = pl.scan_delta(uri, storage_options=options).collect().sort("uri")
    assert frame["uri"].to_list() == ours.column("uri").to_pylist()
    assert frame["characters"].to_list() == ours.column("characters").to_pylist()
    assert frame["edited_at"].to_list() == ours.column("edited_at").to_pylist()


def _report(lake: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tootlake", "report", "--lake", lake, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.slow
def test_spark_reads_the_report_figures(interop_lake: str, spark: Any) -> None:
    summary = _report(interop_lake)["summary"]
    summary = summary[0] if isinstance(summary, list) else summary
    seen = spark_summary(spark, tables.table_uri(interop_lake, "posts"), instance_column="origin")
    assert seen["posts"] == summary["posts"]
    assert seen["users"] == summary["users"]
    assert seen["instances"] == summary["instances"]
    assert seen["languages"] == summary["languages"]
    assert seen["characters"] == summary["total_characters"]
    assert seen["uris"] == _tootlake_posts(interop_lake).column("uri").to_pylist()
