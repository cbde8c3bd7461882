"""The lake on S3: the storage contract on both storages, and tootlake over a real S3 server
(moto on 127.0.0.1, see tests/lakes.py) through the library and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tootlake.analysis import open_lake
from tootlake.analysis.report import build_report, report_as_dict
from tootlake.errors import LakeError, MissingDependency
from tootlake.lake.layout import join
from tootlake.lake.storage import file_infos, storage_for
from tootlake.pipeline import replay

from . import lakes
from .conftest import REAL
from .lakes import S3_ENV
from .ports import free_port

lake_url, s3_lake = lakes.lake_url, lakes.s3_lake  # the fixtures, for this module

REAL_FILES = [REAL / "mastodonsocial.json", REAL / "malformed.json", REAL / "timelines.jsonl"]


def test_storage_contract(lake_url):
    storage = storage_for(lake_url)
    a = join(lake_url, "posts", "date=2024-01-01", "a.parquet")
    b = join(lake_url, "posts", "date=2024-01-02", "b.parquet")
    hidden = join(lake_url, "posts", "date=2024-01-02", ".b.parquet.tmp")
    state = join(lake_url, "_tootlake", "state.json")
    assert storage.list(join(lake_url, "posts")) == []
    storage.write_atomic(a, b"one")
    storage.write_atomic(b, b"two")
    storage.write_atomic(hidden, b"half")
    storage.write_atomic(state, b"{}")
    assert storage.list(join(lake_url, "posts")) == [a, b]  # only data files, sorted
    assert storage.read(a) == b"one"
    with pytest.raises(FileNotFoundError):
        storage.read(join(lake_url, "posts", "missing.parquet"))
    before = {info.path: info for info in file_infos(storage, join(lake_url, "posts"))}
    assert before[a].size == 3 and before[a].version
    storage.write_atomic(a, b"ONE!")  # rewritten under the same name: a new version
    assert file_infos(storage, join(lake_url, "posts"))[0].version != before[a].version
    assert storage.read(a) == b"ONE!"
    storage.delete(a)
    storage.delete(a)  # deleting what is gone is fine
    assert storage.list(join(lake_url, "posts")) == [b]


def test_replayed_lake_reports_the_same_on_every_storage(lake_url, tmp_path):
    reference = str(tmp_path / "reference")
    replay(REAL_FILES, reference)
    stats = replay(REAL_FILES, lake_url)
    assert stats.posts + stats.edits > 400
    assert report_as_dict(build_report(lake_url)) == report_as_dict(build_report(reference))


def test_empty_s3_lake_answers_with_no_rows(s3_lake):
    report = report_as_dict(build_report(s3_lake))
    assert report["summary"]["posts"] == 0 and report["daily"] == []


def test_s3_settings_are_read_when_the_storage_is_built(s3_lake, monkeypatch):
    storage = storage_for(s3_lake)
    storage.write_atomic(join(s3_lake, "x.bin"), b"x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    assert storage.read(join(s3_lake, "x.bin")) == b"x"  # still the server it was built for
    assert S3_ENV["AWS_SECRET_ACCESS_KEY"] not in repr(storage)


def test_missing_bucket_is_a_lake_error_that_says_what_to_do(s3_lake):
    lake = "s3://tootlake-no-such-bucket/lake"
    with pytest.raises(LakeError, match="NoSuchBucket.*create the bucket 'tootlake-no-such-"):
        open_lake(lake)
    with pytest.raises(LakeError, match="Cannot write s3://tootlake-no-such-bucket/lake/x"):
        storage_for(lake).write_atomic(f"{lake}/x", b"x")


def test_unreachable_endpoint_is_a_lake_error_without_secrets(s3_lake, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-never-printed")
    with pytest.raises(LakeError) as error:
        open_lake(s3_lake)
    assert "cannot reach S3 at http://127.0.0.1:" in str(error.value)
    assert "AWS_ENDPOINT_URL" in str(error.value)
    assert "s3cr3t" not in str(error.value)


def test_missing_credentials_are_a_lake_error(s3_lake, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(LakeError, match="no AWS credentials; set AWS_ACCESS_KEY_ID"):
        storage_for(s3_lake).list(s3_lake)


def test_missing_boto3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingDependency, match=r'pip install -e "\.\[s3\]"'):
        storage_for("s3://bucket/lake")


def _tootlake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tootlake", *args],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip


def test_cli_replay_report_and_sql_over_s3_in_a_subprocess(s3_lake, tmp_path):
    done = _tootlake("replay", str(REAL / "mastodonsocial.json"), "--lake", s3_lake, "-q")
    assert done.returncode == 0, done.stderr
    report = _tootlake("report", "--lake", s3_lake, "--format", "json")
    assert report.returncode == 0, report.stderr
    reference = str(tmp_path / "reference")
    replay([REAL / "mastodonsocial.json"], reference)
    assert json.loads(report.stdout) == report_as_dict(build_report(reference))
    assert json.loads(report.stdout)["summary"]["posts"] == 48
    sql = _tootlake(
        "sql", "SELECT count(*) AS posts, count(DISTINCT acct) AS users FROM posts",
        "--lake", s3_lake, "--format", "json",
    )  # fmt: skip
    assert sql.returncode == 0, sql.stderr
    assert json.loads(sql.stdout) == [{"posts": 48, "users": 44}]


def test_cli_says_what_is_wrong_with_an_s3_lake(s3_lake):
    done = _tootlake("report", "--lake", "s3://tootlake-no-such-bucket/lake")
    assert done.returncode == 1
    assert "Error: " in done.stderr and "NoSuchBucket" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_files_on_s3_are_written_and_added_up_by_the_report(lake_url):
    from tootlake.analysis.html import read_collection_stats, render_html_report

    replay([REAL / "malformed.json"], lake_url)
    replay([REAL / "malformed.json"], lake_url)
    runs = storage_for(lake_url).list(join(lake_url, "_tootlake", "runs"), suffix=".json")
    assert len(runs) == 2
    stats = read_collection_stats(lake_url)
    assert stats is not None and stats["skipped"] == {"noindex": 8, "opt_out_tag": 2}
    assert "<dt>Skipped as opted out</dt><dd>10</dd>" in render_html_report(lake_url)
