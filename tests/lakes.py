"""Lakes for contract suites: the same test on a local folder and on S3.

    from tests.lakes import lake_url          # in a test module, or in a conftest.py

    def test_something(lake_url): ...         # runs twice: [local] and [s3]

`lake_url` yields a fresh, empty lake per test: a folder under tmp_path, or
`s3://<fresh bucket>/lake` on a real S3 server (moto) on 127.0.0.1, with the AWS_* environment
pointing at it (dummy keys, region us-east-1, AWS_ENDPOINT_URL) for the test's duration, so
subprocesses started by the test inherit it. `s3_lake` is the S3 case alone, `s3_endpoint` the
server's URL.

The server is `$TEST_S3_ENDPOINT` when set (scripts/test.sh starts one with scripts/s3.sh);
otherwise the first test that needs it starts one with scripts/s3.sh on a free port, and it is
stopped when the session ends (or when the test process dies). A server that cannot be started
fails the tests that need it: they are never skipped.

Each fixture here depends on no other fixture by name, so importing one of them is enough.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
S3_SCRIPT = ROOT / "scripts" / "s3.sh"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}
_ENDPOINT_KEY = pytest.StashKey[str]()


def _answers(endpoint: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + "/", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _start_server(config: pytest.Config) -> str:
    port = free_port()
    env = {**os.environ, "S3_PORT": str(port), "S3_WATCH_PID": str(os.getpid())}
    result = subprocess.run(
        [str(S3_SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        pytest.fail(
            f"Cannot start the test S3 server with {S3_SCRIPT} up (S3_PORT={port}):\n"
            f"{result.stdout}{result.stderr}",
            pytrace=False,
        )

    def stop() -> None:
        subprocess.run(
            [str(S3_SCRIPT), "down", "--purge"], env=env, capture_output=True, timeout=60
        )

    config.add_cleanup(stop)
    return f"http://127.0.0.1:{port}"


def s3_server(config: pytest.Config) -> str:
    """The test S3 server's endpoint, started once per session when TEST_S3_ENDPOINT is unset."""
    endpoint = config.stash.get(_ENDPOINT_KEY, None)
    if endpoint is None:
        endpoint = os.environ.get("TEST_S3_ENDPOINT") or _start_server(config)
        deadline = time.monotonic() + 15
        while not _answers(endpoint):
            if time.monotonic() > deadline:
                pytest.fail(f"The test S3 server at {endpoint} does not answer", pytrace=False)
            time.sleep(0.2)
        config.stash[_ENDPOINT_KEY] = endpoint
    return endpoint


def _client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_ENV["AWS_REGION"],
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def _empty_bucket(client, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)


def _s3_lake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    endpoint = s3_server(request.config)
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    client = _client(endpoint)
    bucket = f"tootlake-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield f"s3://{bucket}/lake"
    finally:
        _empty_bucket(client, bucket)  # the server keeps objects in memory


@pytest.fixture
def s3_endpoint(request: pytest.FixtureRequest) -> str:
    """The test S3 server's URL (no environment set; see `s3_lake`)."""
    return s3_server(request.config)


@pytest.fixture
def s3_lake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`s3://<fresh bucket>/lake`, with AWS_* set for the test server."""
    yield from _s3_lake(request, monkeypatch)


@pytest.fixture(params=["local", "s3"])
def lake_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh empty lake: a local folder, then `s3://<fresh bucket>/lake` on the test server."""
    if request.param == "local":
        yield str(tmp_path / "lake")
    else:
        yield from _s3_lake(request, monkeypatch)


def delta_roundtrip(records: list, table: str = "posts_all") -> Any:
    """Records written to a Delta table of a fresh lake the way the lake writer does it, and
    read back with delta-rs alone (an Arrow table)."""
    import tempfile

    from deltalake import DeltaTable

    from tootlake.lake import tables
    from tootlake.lake.writer import records_to_table

    with tempfile.TemporaryDirectory() as lake:
        data = records_to_table(records, tables.RECORD_SCHEMAS[table]())
        tables.append(lake, table, tables.with_date(table, data))
        return DeltaTable(tables.table_uri(lake, table)).to_pyarrow_table()
