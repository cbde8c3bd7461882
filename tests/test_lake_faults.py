"""Lake faults: a missing lake, a file given as the lake, a corrupt or truncated Parquet file,
a read-only lake and a full disk each give one clear line naming the path and exit 1;
`--skip-corrupt` reads the rest; the `rejects` view; the dashboard answers only its own Host
and its error pages show no paths.

Everything is real: files damaged on disk, a read-only bind mount and a small tmpfs in a
private mount namespace (`unshare --mount`: root, as here and in CI, sees a chmod'ed folder as
writable), a file size limit (RLIMIT_FSIZE), and `tootlake dashboard` over HTTP.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tootlake.analysis.dashboard import HEADERS, allowed_hosts
from tootlake.analysis.lake import check_lake, open_lake, read_lake
from tootlake.cli import main
from tootlake.errors import LakeError
from tootlake.pipeline import replay
from tootlake.record import Reject, reject_arrow_schema
from tootlake.sinks.parquet import ParquetSink, table_to_parquet
from tootlake.sinks.storage import storage_for

from . import lakes
from .conftest import REAL
from .ports import free_port

s3_lake = lakes.s3_lake  # the fixture, for this module

COUNT = "SELECT count(*) AS n FROM posts"


# ----------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of real statuses (many partitions, edits, sightings), made once."""
    lake = tmp_path_factory.mktemp("pristine") / "lake"
    replay([REAL / "mastodonsocial.json"], str(lake))
    replay([REAL / "timelines.jsonl"], str(lake))
    return lake


@pytest.fixture
def lake(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the pristine lake, for a test to damage."""
    copy = tmp_path / "lake"
    shutil.copytree(pristine, copy)
    return copy


def posts_files(lake: Path) -> list[Path]:
    return sorted(lake.glob("posts/*/*.parquet"))


def without(lake: Path, damaged: list[Path], tmp_path: Path) -> Path:
    """The lake as it would be with the damaged files moved out: the expected answers."""
    rest = tmp_path / "without"
    shutil.copytree(lake, rest)
    for path in damaged:
        (rest / path.relative_to(lake)).unlink()
    return rest


def cli(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = str(tmp_path / "none.toml")
    return env


def tootlake(
    tmp_path: Path, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """`tootlake ARGS` in a subprocess (behind `prefix`, e.g. a wrapper that limits it)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tootlake", *args],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )


def write_rejects(lake: Path) -> Path:
    """A rejects file as the Parquet sink writes it; its path."""
    at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    sink = ParquetSink(str(lake))
    sink.add(
        [
            Reject(at, "replay", "a.example", "in.jsonl:7", "no uri", "uri", '{"id": "1"}'),
            Reject(at, "stream", None, None, "created_at out of range", "created_at", "{}"),
        ]
    )
    (path,) = sink.flush()
    return Path(path)


def damage(path: Path, kind: str) -> None:
    data = path.read_bytes()
    if kind == "garbage":
        path.write_bytes(b"this is not parquet\n" * 20)
    elif kind == "truncated":  # a copy or a write cut short: no footer
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        raise AssertionError(kind)


def damage_column(path: Path, column: str) -> None:
    """Flip bytes inside one column's pages; the footer stays intact."""
    chunk = next(
        chunk
        for chunk in (pq.read_metadata(path).row_group(0).column(i) for i in range(100))
        if chunk.path_in_schema == column
    )
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    for i in range(
        start + chunk.total_compressed_size // 2, start + chunk.total_compressed_size - 4
    ):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------------------
# a missing lake, a file as the lake, an empty folder


@pytest.mark.parametrize(
    "command",
    [["report"], ["sql", "SELECT 1"], ["dashboard", "--port", "0"]],
    ids=["report", "sql", "dashboard"],
)
def test_a_missing_lake_is_an_error_naming_it_and_is_not_created(tmp_path, command):
    missing = tmp_path / "nowhere"
    result = cli(*command, "--lake", str(missing))
    assert result.exit_code == 1
    assert one_line(result.output) == (
        f"Error: No lake at {missing}: the folder does not exist. Give the lake's folder with "
        "--lake (or TOOTLAKE_LAKE), or collect into it first."
    )
    assert not missing.exists()


def test_the_default_lake_missing_is_an_error_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ./lake does not exist here
    result = cli("report")
    assert result.exit_code == 1 and "No lake at ./lake: the folder does not exist" in result.output


def test_open_lake_of_a_missing_folder_raises_lake_error(tmp_path):
    with pytest.raises(LakeError, match="No lake at .*nowhere"):
        open_lake(str(tmp_path / "nowhere"))


def test_commands_that_create_the_lake_still_do(tmp_path):
    new = tmp_path / "new" / "lake"
    result = cli("replay", str(REAL / "mastodonsocial.json"), "--lake", str(new))
    assert result.exit_code == 0, result.output
    assert posts_files(new)


@pytest.mark.parametrize(
    "command",
    [["report"], ["sql", "SELECT 1"], ["dashboard", "--port", "0"]],
    ids=["report", "sql", "dashboard"],
)
def test_a_file_given_as_the_lake_is_a_clear_error(tmp_path, command):
    readme = tmp_path / "README.md"
    readme.write_text("# not a lake\n", encoding="utf-8")
    result = cli(*command, "--lake", str(readme))
    assert result.exit_code == 1
    assert one_line(result.output) == (
        f"Error: The lake {readme} is a file, not a folder: give the lake's folder with --lake"
    )


def test_an_empty_lake_folder_reports_empty_with_a_note(tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    result = cli("report", "--lake", str(fresh), "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Note: the lake {fresh} holds no data yet.\n"
    assert json.loads(result.stdout)["summary"]["posts"] == 0
    assert list(fresh.iterdir()) == []  # reading never writes
    assert check_lake(str(fresh)) is False


# ----------------------------------------------------------------------------------------
# corrupt and truncated files


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_a_corrupt_file_is_one_line_naming_it_and_exit_1(lake, kind):
    bad = posts_files(lake)[3]
    damage(bad, kind)
    for command in (["report"], ["sql", COUNT]):
        result = cli(*command, "--lake", str(lake))
        assert result.exit_code == 1
        line = one_line(result.output)
        assert line.startswith(f"Error: Corrupt Parquet file {bad} (")
        assert line.endswith("): move it out of the lake, or read the rest with --skip-corrupt")
    with pytest.raises(LakeError, match="Corrupt Parquet file"):
        open_lake(str(lake))


def test_skip_corrupt_reads_the_rest_and_names_each_skipped_file(lake, tmp_path):
    files = posts_files(lake)
    bad = [files[0], files[7], write_rejects(lake)]
    expected = without(lake, bad, tmp_path)
    for path, kind in zip(bad, ["garbage", "truncated", "empty"], strict=True):
        damage(path, kind)

    result = cli("sql", COUNT, "--lake", str(lake), "--format", "json", "--skip-corrupt")
    assert result.exit_code == 0, result.output
    want = cli("sql", COUNT, "--lake", str(expected), "--format", "json")
    assert json.loads(result.stdout) == json.loads(want.stdout)
    warnings = [line.split(" ", 1)[1] for line in result.stderr.splitlines()]  # (after the time)
    assert sorted(warnings) == sorted(
        f"WARNING Skipped corrupt Parquet file {path}: {reason}"
        for path, reason in zip(
            bad,
            [
                "Parquet magic bytes not found in footer",
                "Parquet magic bytes not found in footer",
                "Parquet file size is 0 bytes",
            ],
            strict=True,
        )
    )

    report = cli("report", "--lake", str(lake), "--format", "json", "--skip-corrupt")
    assert report.exit_code == 0, report.output
    want = cli("report", "--lake", str(expected), "--format", "json")
    assert json.loads(report.stdout) == json.loads(want.stdout)
    assert report.stderr.count("WARNING Skipped corrupt Parquet file") == 3


def test_open_lake_skip_corrupt_logs_a_warning_per_file(lake, tmp_path, caplog):
    bad = posts_files(lake)[2]
    expected = without(lake, [bad], tmp_path)
    damage(bad, "truncated")
    with caplog.at_level(logging.WARNING, logger="tootlake.analysis.lake"):
        con = open_lake(str(lake), skip_corrupt=True)
    assert con.execute(COUNT).fetchone() == open_lake(str(expected)).execute(COUNT).fetchone()
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipped corrupt Parquet file {bad}: Parquet magic bytes not found in footer"
    ]


def test_a_corrupt_object_on_s3_is_named_then_skipped(s3_lake, caplog):
    replay([REAL / "mastodonsocial.json"], s3_lake)
    replay([REAL / "timelines.jsonl"], s3_lake)
    storage = storage_for(s3_lake)
    bad = storage.list(f"{s3_lake}/posts")[5]
    total = open_lake(s3_lake).execute("SELECT count(*) FROM posts_all").fetchone()[0]
    rows = pq.read_metadata(pa.BufferReader(storage.read(bad))).num_rows
    storage.write_atomic(bad, storage.read(bad)[:-100])  # truncated
    with pytest.raises(LakeError, match=f"^Corrupt Parquet file {bad} \\(Parquet magic bytes"):
        open_lake(s3_lake)
    with caplog.at_level(logging.WARNING, logger="tootlake.analysis.lake"):
        con = open_lake(s3_lake, skip_corrupt=True)
    assert con.execute("SELECT count(*) FROM posts_all").fetchone() == (total - rows,)
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipped corrupt Parquet file {bad}: Parquet magic bytes not found in footer"
    ]


@pytest.fixture
def unique_lake(tmp_path: Path) -> Path:
    """Two posts files with no uri in common: opening reads only their `uri` columns."""
    lake = tmp_path / "unique"
    replay([REAL / "mastodonsocial.json"], str(lake))
    (first,) = posts_files(lake)
    table = pq.read_table(first)
    uris = pa.array([f"{uri}#copy" for uri in table.column("uri").to_pylist()], pa.string())
    index = table.schema.get_field_index("uri")
    copy = table.set_column(index, table.schema.field(index), uris)
    (first.parent / "part-copy.parquet").write_bytes(table_to_parquet(copy))
    return lake


def test_a_damaged_page_found_by_a_query_is_named_then_skipped(unique_lake):
    damaged = posts_files(unique_lake)[0]
    damage_column(damaged, "text")
    query = "SELECT count(*) AS n, sum(characters) AS c FROM posts WHERE length(text) >= 0"
    open_lake(str(unique_lake)).close()  # the footers are fine: opening reads no text

    result = cli("sql", query, "--lake", str(unique_lake), "--format", "json")
    assert result.exit_code == 1
    line = one_line(result.output)
    assert line.startswith(f"Error: Corrupt Parquet file {damaged} (")
    assert "SQL error" not in line

    skipped = cli("sql", query, "--lake", str(unique_lake), "--format", "json", "--skip-corrupt")
    assert skipped.exit_code == 0, skipped.output
    assert json.loads(skipped.stdout)[0]["n"] == 48  # the other file
    message = skipped.stderr.split(" ", 1)[1]  # (after the time)
    assert message.startswith(f"WARNING Skipped corrupt Parquet file {damaged}: ")


def test_read_lake_passes_sql_errors_through_untouched(unique_lake):
    import duckdb

    with pytest.raises(duckdb.BinderException):
        read_lake(str(unique_lake), lambda con: con.sql("SELECT nope FROM posts").fetchall())
    bad = cli("sql", "SELECT nope FROM posts", "--lake", str(unique_lake), "--skip-corrupt")
    assert bad.exit_code == 1 and "SQL error" in bad.output and "WARNING" not in bad.output


# ----------------------------------------------------------------------------------------
# read-only lake, full disk


def _can_use_private_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not _can_use_private_mounts(),
    reason="needs `unshare --mount` and mount (root): a read-only bind mount, a small tmpfs",
)


def in_private_mounts(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """Run a shell script in a mount namespace of its own: its mounts vanish with it and
    nobody else on the machine sees them. $PY is this Python."""
    env = clean_env(tmp_path) | {"PY": sys.executable}
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-eu", "-c", script, "sh", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


@needs_mounts
def test_writing_to_a_read_only_lake_is_one_line_naming_the_file(lake, tmp_path):
    before = sorted(p.relative_to(lake) for p in lake.rglob("*"))
    script = """
mount --bind -o ro "$1" "$1"
set +e
"$PY" -m tootlake replay "$2" --lake "$1" 2> replay.err
echo $? > replay.rc
"$PY" -m tootlake compact --lake "$1" 2> compact.err
echo $? > compact.rc
"""
    done = in_private_mounts(tmp_path, script, str(lake), str(REAL / "mastodonsocial.json"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "replay.rc").read_text().strip() == "1"
    line = one_line((tmp_path / "replay.err").read_text())
    assert line.startswith(f"Error: Cannot write {lake}/posts/date=2022-11-21/part-")
    assert line.endswith(".parquet: Read-only file system")
    assert (tmp_path / "compact.rc").read_text().strip() == "1"
    assert one_line((tmp_path / "compact.err").read_text()) == (
        f"Error: Cannot create {lake}/_tootlake/compact.lock: Read-only file system"
    )
    assert sorted(p.relative_to(lake) for p in lake.rglob("*")) == before


@needs_mounts
def test_a_full_disk_is_one_line_and_leaves_no_half_file(tmp_path):
    lake = tmp_path / "small-disk"
    lake.mkdir()
    script = """
mount -t tmpfs -o size=64k tmpfs "$1"
set +e
"$PY" -m tootlake replay "$2" --lake "$1" 2> replay.err
echo $? > replay.rc
find "$1" -type f > files.txt
"$PY" -m tootlake sql "SELECT count(*) AS n FROM posts_all" --lake "$1" --format json > after.json
"""
    done = in_private_mounts(tmp_path, script, str(lake), str(REAL / "timelines.jsonl"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "replay.rc").read_text().strip() == "1"
    line = one_line((tmp_path / "replay.err").read_text())
    assert line.startswith(f"Error: Cannot write {lake}/")
    assert line.endswith(".parquet: No space left on device")
    written = (tmp_path / "files.txt").read_text().split()
    assert written, "some files fit before the disk was full"
    assert not [f for f in written if Path(f).name.startswith(".")]  # no temporary left
    assert json.loads((tmp_path / "after.json").read_text())[0]["n"] > 0  # the rest reads


@needs_mounts
def test_compaction_on_a_full_disk_is_one_line_and_the_lake_reads_as_before(tmp_path):
    lake = tmp_path / "lake"
    for _ in range(2):  # every post twice: compaction has work to do
        replay([REAL / "mastodonsocial.json"], str(lake))
        replay([REAL / "timelines.jsonl"], str(lake))
    before = open_lake(str(lake)).execute(COUNT).fetchone()[0]
    script = """
copy=$(mktemp -d)
cp -a "$1/." "$copy"
mount -t tmpfs -o size=64m tmpfs "$1"
cp -a "$copy/." "$1"
used=$(df -k --output=used "$1" | tail -1)
mount -o remount,size=$((used + 32))k "$1"
set +e
"$PY" -m tootlake compact --lake "$1" --grace 0 2> compact.err
echo $? > compact.rc
"$PY" -m tootlake sql "SELECT count(*) AS n FROM posts" --lake "$1" --format json > after.json
ls -a "$1/_tootlake" > state.txt
rm -rf "$copy"
"""
    done = in_private_mounts(tmp_path, script, str(lake))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "compact.rc").read_text().strip() == "1"
    line = one_line((tmp_path / "compact.err").read_text())
    assert line.startswith(f"Error: Cannot write {lake}/")
    assert line.endswith(".parquet: No space left on device")
    assert json.loads((tmp_path / "after.json").read_text()) == [{"n": before}]
    assert "compact.lock" not in (tmp_path / "state.txt").read_text().split()


def file_size_limit(limit: int) -> tuple[str, ...]:
    """A command prefix that runs the command with RLIMIT_FSIZE at `limit` bytes and SIGXFSZ
    ignored, so a write past the limit fails with EFBIG instead of killing the process."""
    wrapper = (
        "import os, resource, signal, sys; "
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return (sys.executable, "-c", wrapper)


def test_a_file_size_limit_is_one_line_naming_the_file(tmp_path):
    """EFBIG, without privileges."""
    lake = tmp_path / "limited"
    done = tootlake(
        tmp_path,
        "replay",
        str(REAL / "mastodonsocial.json"),
        "--lake",
        str(lake),
        prefix=file_size_limit(16 * 1024),
    )
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith(f"Error: Cannot write {lake}/posts/date=2022-11-21/part-")
    assert line.endswith(".parquet: File too large")
    assert not [p for p in lake.rglob("*") if p.is_file()]  # no half file, no temporary


def test_a_compaction_lock_that_cannot_be_written_is_not_left_half_written(lake, tmp_path):
    done = tootlake(tmp_path, "compact", "--lake", str(lake), prefix=file_size_limit(16))
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"Error: Cannot write {lake}/_tootlake/compact.lock: File too large"
    )
    assert not (lake / "_tootlake" / "compact.lock").exists()  # the next run is not blocked


# ----------------------------------------------------------------------------------------
# the rejects view


REJECT_COLUMNS = [
    ("rejected_at", "TIMESTAMP WITH TIME ZONE"),
    ("source", "VARCHAR"),
    ("observed_on", "VARCHAR"),
    ("where", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("field", "VARCHAR"),
    ("raw", "VARCHAR"),
]


def test_rejects_view_is_empty_and_typed_without_rejects(lake):
    con = open_lake(str(lake))
    assert [r[:2] for r in con.execute("DESCRIBE rejects").fetchall()] == REJECT_COLUMNS
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)


def test_sql_queries_the_rejects_the_sink_wrote(lake):
    path = str(write_rejects(lake))
    assert path.startswith(f"{lake}/rejects/date=2024-05-01/")
    assert pq.read_schema(path).remove_metadata() == reject_arrow_schema().remove_metadata()
    result = cli(
        "sql",
        'SELECT source, observed_on, "where", reason, field, raw FROM rejects ORDER BY source',
        "--lake",
        str(lake),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"source": "replay", "observed_on": "a.example", "where": "in.jsonl:7",
         "reason": "no uri", "field": "uri", "raw": '{"id": "1"}'},
        {"source": "stream", "observed_on": None, "where": None,
         "reason": "created_at out of range", "field": "created_at", "raw": "{}"},
    ]  # fmt: skip
    assert open_lake(str(lake)).execute(COUNT).fetchone()[0] > 0  # posts unaffected


def test_sql_help_lists_the_views():
    result = cli("sql", "--help")
    for view in ("posts", "posts_all", "deletes", "sightings", "rejects"):
        assert view in result.output
    assert "--skip-corrupt" in result.output


# ----------------------------------------------------------------------------------------
# the dashboard: Host header, error pages


class Dashboard:
    """`tootlake dashboard` as a user starts it, on a free loopback port."""

    def __init__(self, tmp_path: Path, lake: Path, *args: str) -> None:
        self.port = free_port()
        self.log = tmp_path / f"dashboard-{self.port}.log"
        self._log = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tootlake",
                "dashboard",
                "--lake",
                str(lake),
                "--port",
                str(self.port),
                *args,
            ],  # fmt: skip
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=clean_env(tmp_path),
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the dashboard did not answer: {self.log.read_text()}")

    def get(self, path: str, host: str | None = None) -> tuple[int, Any, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            default = f"127.0.0.1:{self.port}"
            conn.request("GET", path, headers={"Host": default if host is None else host})
            response = conn.getresponse()
            return response.status, response.headers, response.read().decode()
        finally:
            conn.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[object]:
    started: list[Dashboard] = []

    def start(lake: Path, *args: str) -> Dashboard:
        started.append(Dashboard(tmp_path, lake, *args))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_dashboard_answers_only_its_own_host(dashboard, pristine):
    server = dashboard(pristine, "--allow-host", "Dash.Example")
    port = server.port
    for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", f"dash.example:{port}",
                 "DASH.EXAMPLE."):  # fmt: skip
        status, _headers, body = server.get("/", host)
        assert status == 200, host
        assert "<svg" in body
    for host in (f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", "10.0.0.1", ""):
        status, headers, body = server.get("/report.json", host)
        assert status == 400, host
        assert body.startswith("Invalid Host header")
        assert "/" not in body  # no path
        for name, value in HEADERS.items():
            assert headers[name] == value


def test_allowed_hosts_of_each_bind_address():
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts("::1") == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts("192.0.2.7", ["dash.example"]) == {"192.0.2.7", "dash.example"}
    assert allowed_hosts("0.0.0.0") == {"0.0.0.0", "*"}  # any IP address; names only allowed


def test_dashboard_error_page_shows_no_path(dashboard, lake):
    bad = posts_files(lake)[0]
    server = dashboard(lake)
    damage(bad, "garbage")  # after start: the first computation meets it
    status, headers, body = server.get("/")
    assert status == 503
    assert body == "The dashboard cannot read the lake (LakeError); the reason is in its log."
    assert headers["Content-Security-Policy"] == HEADERS["Content-Security-Policy"]
    assert str(lake) not in body and bad.name not in body
    time.sleep(0.2)
    assert str(bad) in server.log.read_text()  # the operator finds it in the log


def test_compaction_of_a_lake_with_a_corrupt_file_is_one_line_and_changes_nothing(lake):
    replay([REAL / "mastodonsocial.json"], str(lake))  # a second file in each of its days
    # a file of a day that has two: compaction rewrites that day, so it must read it
    bad = next(p for p in posts_files(lake) if len(list(p.parent.glob("*.parquet"))) >= 2)
    damage(bad, "truncated")
    before = sorted(p.relative_to(lake) for p in lake.rglob("*.parquet"))
    result = cli("compact", "--lake", str(lake))
    assert result.exit_code == 1
    line = one_line(result.output)
    assert line.startswith("Error: Compaction cannot read the lake (") and str(bad) in line
    # nothing swapped in: the lake's files are the ones it had (new ones were orphans, gone)
    manifest = lake / "_tootlake" / "manifest.json"
    assert not manifest.exists() or "compact@" not in manifest.read_text()
    assert (
        sorted(p.relative_to(lake) for p in lake.rglob("*.parquet") if "compact@" not in p.name)
        == before
    )
