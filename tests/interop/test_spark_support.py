"""spark_support itself: Spark reads a Delta table that deltalake (delta-rs) wrote, on a local
folder and on the test S3 server, and counts what pyarrow counts in the same rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake

from tests import lakes

from .spark_support import spark_summary

s3_lake, s3_endpoint = lakes.s3_lake, lakes.s3_endpoint  # the fixtures, for this module

SCHEMA = pa.schema(
    [
        ("uri", pa.string()),
        ("acct", pa.string()),
        ("instance", pa.string()),
        ("language", pa.string()),
        ("characters", pa.int32()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("tags", pa.list_(pa.string())),
        ("date", pa.date32()),
    ]
)


def _post(n: int, acct: str, language: str | None, characters: int, at: datetime, tags: list[str]):
    user, instance = acct.split("@")
    return {
        "uri": f"https://{instance}/users/{user}/statuses/{n}",
        "acct": acct,
        "instance": instance,
        "language": language,
        "characters": characters,
        "created_at": at,
        "tags": tags,
        "date": at.date(),
    }


# Two days, one append each (two commits, two partitions); alice posts on both days, one
# post has no language, the microseconds and the last one before midnight UTC are kept.
DAY_1 = [
    _post(1, "alice@a.example", "en", 120, datetime(2025, 3, 1, 10, 0, 0, 123456, UTC), ["x", "y"]),
    _post(2, "bob@b.example", "de", 45, datetime(2025, 3, 1, 23, 59, 59, 999999, UTC), []),
]
DAY_2 = [
    _post(3, "alice@a.example", None, 300, datetime(2025, 3, 2, 0, 0, 0, 0, UTC), ["z"]),
    _post(4, "carol@a.example", "en", 7, datetime(2025, 3, 2, 8, 30, 0, 1, UTC), ["x"]),
    _post(5, "dave@c.example", "ja", 0, datetime(2025, 3, 2, 12, 0, 0, 500000, UTC), []),
]


def _batches() -> list[pa.Table]:
    return [pa.Table.from_pylist(rows, schema=SCHEMA) for rows in (DAY_1, DAY_2)]


def _arrow_summary(table: pa.Table) -> dict[str, Any]:
    """What spark_summary should say, counted by pyarrow."""
    return {
        "posts": table.num_rows,
        "users": pc.count_distinct(table["acct"]).as_py(),
        "instances": pc.count_distinct(table["instance"]).as_py(),
        "languages": pc.count_distinct(table["language"], mode="only_valid").as_py(),
        "characters": pc.sum(table["characters"]).as_py(),
        "uris": sorted(table["uri"].to_pylist()),
    }


def _write(table_uri: str, storage_options: dict[str, str] | None = None) -> pa.Table:
    batches = _batches()
    for batch in batches:
        write_deltalake(
            table_uri,
            batch,
            mode="append",
            partition_by=["date"],
            storage_options=storage_options,
        )
    return pa.concat_tables(batches)


def test_the_input_is_what_the_tests_mean():
    expected = _arrow_summary(pa.concat_tables(_batches()))
    assert expected == {
        "posts": 5,
        "users": 4,
        "instances": 3,
        "languages": 3,
        "characters": 472,
        "uris": sorted(expected["uris"]),
    }
    assert len(set(expected["uris"])) == 5


@pytest.mark.slow
def test_spark_reads_a_local_delta_table(spark, tmp_path: Path):
    table_path = tmp_path / "lake" / "posts"
    written = _write(str(table_path))

    assert spark_summary(spark, table_path) == _arrow_summary(written)

    # The types Spark sees, and the instants: UTC to the microsecond, partitions as dates.
    posts = spark.read.format("delta").load(str(table_path))
    types = dict(posts.dtypes)
    assert types["created_at"] == "timestamp"
    assert types["tags"] == "array<string>"
    assert types["date"] == "date"
    assert types["characters"] == "int"
    rows = posts.selectExpr(
        "uri",
        "date_format(created_at, \"yyyy-MM-dd'T'HH:mm:ss.SSSSSS\") AS at",
        "cast(date AS string) AS day",
        "tags",
    ).collect()
    seen = {row["uri"]: (row["at"], row["day"], list(row["tags"])) for row in rows}
    assert seen == {
        post["uri"]: (
            post["created_at"].strftime("%Y-%m-%dT%H:%M:%S.%f"),
            post["date"].isoformat(),
            post["tags"],
        )
        for post in DAY_1 + DAY_2
    }


@pytest.mark.slow
@pytest.mark.s3
def test_spark_reads_a_delta_table_on_s3(spark, s3_lake: str, s3_endpoint: str):
    options = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": lakes.S3_ENV["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": lakes.S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": lakes.S3_ENV["AWS_REGION"],
    }
    table_uri = f"{s3_lake}/posts"  # s3://<fresh bucket>/lake/posts
    written = _write(table_uri, options)

    assert table_uri.startswith("s3://")
    assert spark_summary(spark, "s3a://" + table_uri[len("s3://") :]) == _arrow_summary(written)
