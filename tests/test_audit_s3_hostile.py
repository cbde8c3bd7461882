"""A hostile review of the lake on S3 (docs/s3.md), against the real test server (moto on
127.0.0.1, tests/lakes.py) through the command line: odd prefixes, a URL holding credentials,
and requests that must never leave for the instance-metadata service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from tootlake.errors import LakeError
from tootlake.lake.storage import storage_for

from . import lakes
from .conftest import REAL

s3_lake = lakes.s3_lake  # the fixture, for this module

CAPTURE = str(REAL / "mastodonsocial.json")  # 48 posts


def _tootlake(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tootlake", *args],
        capture_output=True, text=True, timeout=300, env=env or os.environ.copy(),
    )  # fmt: skip


def _keys(bucket: str) -> list[str]:
    client = lakes._client(os.environ["AWS_ENDPOINT_URL"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [obj["Key"] for page in pages for obj in page.get("Contents", ())]


def _bucket(s3_lake: str) -> str:
    return s3_lake.removeprefix("s3://").split("/", 1)[0]


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "panicked" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


# Prefixes tootlake and delta-rs read as the same keys: the lake stays under them.
ODD_PREFIXES = ["a b", "ünï/☃ é", "L" * 300, "x+y=z,@'!~/(1)"]


@pytest.mark.parametrize("prefix", ODD_PREFIXES, ids=["space", "unicode", "long", "punct"])
def test_an_odd_prefix_keeps_every_object_under_it(s3_lake, prefix):
    lake = f"s3://{_bucket(s3_lake)}/{prefix}"
    done = _tootlake("replay", CAPTURE, "--lake", lake, "-q")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    keys = _keys(_bucket(s3_lake))
    assert keys and all(key.startswith(f"{prefix}/") for key in keys), keys
    sql = _tootlake("sql", "SELECT count(*) AS n FROM posts", "--lake", lake, "--format", "csv")
    assert sql.returncode == 0 and sql.stdout.split() == ["n", "48"], sql.stderr


# Prefixes a URL parser reads another way than S3 keys are: delta-rs' Url wrote the tables of
# `x/../y` under `y/` (outside the prefix) and tootlake's files under `x/../y/`; `q?x=1` and
# `h#f` put every table into one (`q`, `h`); `a%20b`, a tab or a newline split the lake in
# two; a backslash made delta-rs panic (a Rust backtrace and a Python traceback).
TWO_WAY_PREFIXES = {
    "dotdot": "x/../y",
    "dot": "dot/./x",
    "percent": "a%20b",
    "query": "q?x=1",
    "fragment": "h#f",
    "newline": "new\nline",
    "tab": "tab\tx",
    "backslash": "back\\slash",
    "empty-segment": "/double//slash",
}


@pytest.mark.parametrize("prefix", TWO_WAY_PREFIXES.values(), ids=TWO_WAY_PREFIXES.keys())
def test_a_prefix_read_two_ways_is_refused_in_one_line_before_any_write(s3_lake, prefix):
    lake = f"s3://{_bucket(s3_lake)}/{prefix}"
    for command in (["replay", CAPTURE], ["report"], ["compact"]):
        line = _one_line_error(_tootlake(*command, "--lake", lake))
        assert "Invalid S3 lake prefix" in line, line
    assert _keys(_bucket(s3_lake)) == []
    with pytest.raises(LakeError, match="Invalid S3 lake prefix"):
        storage_for(lake)


def test_credentials_in_the_lake_url_are_refused_and_never_printed(s3_lake):
    lake = f"s3://AKIAHOSTILE:hostile-secret-in-the-url@{_bucket(s3_lake)}/lake"
    for command in (["replay", CAPTURE], ["report"], ["sql", "SELECT 1"]):
        done = _tootlake(*command, "--lake", lake)
        line = _one_line_error(done)
        assert "hostile-secret" not in done.stderr + done.stdout
        assert "cannot hold credentials" in line, line
    with pytest.raises(LakeError) as error:
        storage_for(lake)
    assert "hostile-secret" not in str(error.value)
    assert _keys(_bucket(s3_lake)) == []


def test_a_port_in_the_bucket_is_one_line_that_names_the_endpoint_setting(s3_lake):
    line = _one_line_error(_tootlake("report", "--lake", f"s3://{_bucket(s3_lake)}:9000/lake"))
    assert "Invalid S3 bucket" in line and "AWS_ENDPOINT_URL" in line, line


class _Listener:
    """A socket on 127.0.0.1 standing in for the instance-metadata service
    (169.254.169.254): counts the connections that reach it, answers none."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture
def metadata_service():
    listener = _Listener()
    yield listener
    listener.sock.close()


def _metadata_env(listener: _Listener) -> dict[str, str]:
    # boto3 and delta-rs (object_store) each take the metadata address from the environment
    return {
        **os.environ,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": listener.url,
        "AWS_METADATA_ENDPOINT": listener.url,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
    }


def test_no_credentials_with_an_endpoint_never_asks_the_metadata_service(s3_lake, metadata_service):
    env = _metadata_env(metadata_service)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    for command in (["replay", CAPTURE], ["report"], ["compact"]):
        line = _one_line_error(_tootlake(*command, "--lake", s3_lake, env=env))
        assert "no AWS credentials" in line, line
    # instance roles are AWS's: MinIO or moto has no use for them
    assert metadata_service.connections == 0


def test_credentials_from_a_profile_reach_every_reader_and_writer(
    s3_lake, metadata_service, tmp_path
):
    profile = tmp_path / "credentials"
    profile.write_text(
        "[default]\naws_access_key_id = testing\naws_secret_access_key = profile-secret-1\n"
    )
    profile.chmod(0o600)
    env = _metadata_env(metadata_service)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(profile)
    done = _tootlake("replay", CAPTURE, "--lake", s3_lake, "-q", env=env)
    assert done.returncode == 0, done.stderr
    sql = _tootlake(
        "sql", "SELECT count(*) AS n FROM posts", "--lake", s3_lake, "--format", "csv", env=env
    )  # fmt: skip
    assert sql.returncode == 0 and sql.stdout.split() == ["n", "48"], sql.stderr
    assert metadata_service.connections == 0
