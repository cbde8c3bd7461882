"""Lake faults: a missing lake, a file given as the lake, a corrupt or truncated Parquet file of
a Delta table, a read-only lake and a full disk each give one clear line naming the path and
exit 1, when reading, writing and compacting; `--skip-corrupt` reads the rest; the `rejects`
view; the dashboard answers only its own Host and its error pages show no paths.

Everything is real: files the Delta logs list damaged on disk, a read-only bind mount and a
small tmpfs in a private mount namespace (`unshare --mount`: root, as here and in CI, sees a
chmod'ed folder as writable), a file size limit (RLIMIT_FSIZE), and `tootlake dashboard` over
HTTP.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from tootlake.analysis.dashboard import HEADERS, allowed_hosts
from tootlake.cli import main
from tootlake.errors import LakeError
from tootlake.lake.maintenance import merge_posts
from tootlake.lake.reader import check_lake, open_lake, read_lake
from tootlake.lake.storage import storage_for
from tootlake.lake.writer import LakeWriter
from tootlake.pipeline import replay
from tootlake.record import Reject, reject_arrow_schema

from . import lakes
from .conftest import REAL
from .ports import printed_port

s3_lake = lakes.s3_lake  # the fixture, for this module

COUNT = "SELECT count(*) AS n FROM posts"
TABLES = ("posts_all", "posts", "deletes", "sightings", "rejects")


# ----------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of real statuses (many partitions, edits), made once: `posts_all` and the
    merged `posts` hold a file per day."""
    lake = tmp_path_factory.mktemp("pristine") / "lake"
    replay([REAL / "mastodonsocial.json"], str(lake))
    replay([REAL / "timelines.jsonl"], str(lake))
    return lake


@pytest.fixture
def lake(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the pristine lake, for a test to damage (Delta logs name files relative to
    their table, so a copy is the same lake)."""
    copy = tmp_path / "lake"
    shutil.copytree(pristine, copy)
    return copy


def data_files(lake: Path, table: str = "posts_all") -> list[Path]:
    """The data files the table's Delta log lists (its current version), sorted."""
    return sorted(Path(uri) for uri in DeltaTable(str(lake / table)).file_uris())


def delta_state(lake: Path) -> dict[str, tuple[int, list[Path]]]:
    """Each table's version and live files: what a reader reads."""
    return {
        table: (DeltaTable(str(lake / table)).version(), data_files(lake, table))
        for table in TABLES
        if (lake / table / "_delta_log").is_dir()
    }


def without(lake: Path, damaged: list[Path], tmp_path: Path) -> Path:
    """The lake as it would be with the damaged files taken out of their tables (a Delta
    commit removing them, as Delta's own tools do): the expected answers."""
    rest = tmp_path / "without"
    shutil.copytree(lake, rest)
    for path in damaged:
        table = path.relative_to(lake).parts[0]
        dt = DeltaTable(str(rest / table))
        listed = dt.get_add_actions(flatten=True).column("path").to_pylist()
        target = rest / path.relative_to(lake)
        (relative,) = [p for p in listed if rest / table / p == target]
        now = int(time.time() * 1000)
        actions = [
            {"commitInfo": {"timestamp": now, "operation": "DELETE", "operationParameters": {}}},
            {"remove": {"path": relative, "deletionTimestamp": now, "dataChange": True}},
        ]
        log = rest / table / "_delta_log" / f"{dt.version() + 1:020d}.json"
        log.write_text("".join(json.dumps(a) + "\n" for a in actions), encoding="utf-8")
    return rest


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# When a write fails (read-only, full disk, EFBIG), object_store's buffered writer panics in
# delta-rs' worker threads ("Already shut down", apache/arrow-rs-object-store#810), and Rust
# prints the report on stderr itself, past tootlake: a full disk gives one per file being
# written. Those reports aside, the command's output is one line.
RUST_PANIC = re.compile(
    r"^thread '[^']*' \(\d+\) panicked at .*/object_store-[\d.]+/src/buffered\.rs:\d+:\d+:$"
    r"|^Already shut down$"
    r"|^note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace$"
)


def error_line(stderr: str) -> str:
    """The one line a failed write prints (see RUST_PANIC)."""
    return one_line("\n".join(line for line in stderr.splitlines() if not RUST_PANIC.match(line)))


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TOOTLAKE_", "AWS_")) and k != "RUST_BACKTRACE"
    }
    env["TOOTLAKE_CONFIG"] = os.devnull
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
    """A rejects file as the lake writer writes it; its path (the one file of `rejects`)."""
    at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    sink = LakeWriter(str(lake))
    sink.add(
        [
            Reject(at, "replay", "a.example", "in.jsonl:7", "no uri", "uri", '{"id": "1"}'),
            Reject(at, "stream", None, None, "created_at out of range", "created_at", "{}"),
        ]
    )
    assert sink.flush() == ["rejects"]
    (path,) = data_files(lake, "rejects")
    return path


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
    metadata = pq.read_metadata(path).row_group(0)
    chunk = next(
        chunk
        for chunk in (metadata.column(i) for i in range(metadata.num_columns))
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
    [["report"], ["sql", "SELECT 1"], ["dashboard", "--port", "0"], ["compact"]],
    ids=["report", "sql", "dashboard", "compact"],
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
    assert data_files(new) and data_files(new, "posts")


@pytest.mark.parametrize(
    "command",
    [["report"], ["sql", "SELECT 1"], ["dashboard", "--port", "0"], ["compact"]],
    ids=["report", "sql", "dashboard", "compact"],
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


@pytest.mark.parametrize("table", ["posts_all", "posts"])
@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_a_corrupt_file_is_one_line_naming_it_and_exit_1(lake, kind, table):
    bad = data_files(lake, table)[3]
    damage(bad, kind)
    for command in (["report"], ["sql", COUNT]):
        result = cli(*command, "--lake", str(lake))
        assert result.exit_code == 1
        line = one_line(result.output)
        assert line.startswith(f"Error: Corrupt Parquet file {bad} (")
        assert line.endswith("): move it out of the lake, or read the rest with --skip-corrupt")
    with pytest.raises(LakeError, match="Corrupt Parquet file"):
        open_lake(str(lake))


@pytest.mark.parametrize("table", ["posts_all", "posts"])
def test_a_listed_file_that_is_gone_is_one_line_naming_it(lake, table):
    gone = data_files(lake, table)[2]
    gone.unlink()
    for command in (["report"], ["sql", COUNT]):
        result = cli(*command, "--lake", str(lake))
        assert result.exit_code == 1
        line = one_line(result.output)
        assert line.startswith(f"Error: The Delta log lists {gone}, but the file is gone: ")


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_damaged_delta_log_is_one_line_naming_the_table(lake, how):
    """A commit file cut short or overwritten (a disk fault, a hand edit): delta-rs' error
    in one line, without the Rust backtrace it carries."""
    commit = sorted((lake / "posts_all" / "_delta_log").glob("*.json"))[-1]
    commit.write_text('{"add": {"path": "x' if how == "truncated" else "garbage\n")
    for command in (["report"], ["sql", COUNT]):
        result = cli(*command, "--lake", str(lake))
        assert result.exit_code == 1
        line = one_line(result.output)
        assert line.startswith(f"Error: Cannot read the Delta table {lake / 'posts_all'}: Json ")
        assert "<unknown>" not in line and "pthread" not in line


def test_skip_corrupt_reads_the_rest_and_names_each_skipped_file(lake, tmp_path):
    bad = [data_files(lake)[0], data_files(lake, "posts")[7], write_rejects(lake)]
    expected = without(lake, bad, tmp_path)
    intact = open_lake(str(lake)).execute(COUNT).fetchone()[0]
    for path, kind in zip(bad, ["garbage", "truncated", "empty"], strict=True):
        damage(path, kind)

    result = cli("sql", COUNT, "--lake", str(lake), "--format", "json", "--skip-corrupt")
    assert result.exit_code == 0, result.output
    want = cli("sql", COUNT, "--lake", str(expected), "--format", "json")
    assert json.loads(result.stdout) == json.loads(want.stdout)
    assert json.loads(result.stdout)[0]["n"] < intact  # the skipped file of posts held some
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
    bad = data_files(lake, "posts")[2]
    rows = pq.read_metadata(bad).num_rows
    total = open_lake(str(lake)).execute(COUNT).fetchone()[0]
    expected = without(lake, [bad], tmp_path)
    damage(bad, "truncated")
    with caplog.at_level(logging.WARNING, logger="tootlake.lake.reader"):
        con = open_lake(str(lake), skip_corrupt=True)
    assert con.execute(COUNT).fetchone() == open_lake(str(expected)).execute(COUNT).fetchone()
    assert con.execute(COUNT).fetchone() == (total - rows,)
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipped corrupt Parquet file {bad}: Parquet magic bytes not found in footer"
    ]


def test_a_corrupt_object_on_s3_is_named_then_skipped(s3_lake, caplog):
    """On S3 the views read objects lazily (a registered pyarrow dataset): the damage is found
    by the first query that reads the object, which `read_lake` (what the commands use) names
    or skips."""
    replay([REAL / "mastodonsocial.json"], s3_lake)
    replay([REAL / "timelines.jsonl"], s3_lake)
    storage = storage_for(s3_lake)
    options = {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": os.environ["AWS_REGION"],
    }
    bad = sorted(DeltaTable(f"{s3_lake}/posts_all", storage_options=options).file_uris())[5]

    def count(con: Any) -> int:
        return con.execute("SELECT count(*) FROM posts_all").fetchone()[0]

    total = read_lake(s3_lake, count)
    rows = pq.read_metadata(pa.BufferReader(storage.read(bad))).num_rows
    storage.write_atomic(bad, storage.read(bad)[:-100])  # truncated
    with pytest.raises(LakeError, match=f"^Corrupt Parquet file {bad} \\(Parquet magic bytes"):
        read_lake(s3_lake, count)
    with caplog.at_level(logging.WARNING, logger="tootlake.lake.reader"):
        assert read_lake(s3_lake, count, skip_corrupt=True) == total - rows
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipped corrupt Parquet file {bad}: Parquet magic bytes not found in footer"
    ]
    result = cli("sql", "SELECT count(*) AS n FROM posts_all", "--lake", s3_lake)
    assert result.exit_code == 1
    assert one_line(result.output).startswith(f"Error: Corrupt Parquet file {bad} (")


@pytest.fixture
def unique_lake(tmp_path: Path) -> Path:
    """The merged `posts` (one file) and a tail of `posts_all` (one file) with no uri in
    common: opening reads only their `uri` columns."""
    lake = tmp_path / "unique"
    replay([REAL / "mastodonsocial.json"], str(lake))
    table = DeltaTable(str(lake / "posts_all")).to_pyarrow_table()
    uris = pc.binary_join_element_wise(table.column("uri"), "#copy", "")
    index = table.schema.get_field_index("uri")
    copy = table.set_column(index, table.schema.field(index), uris)
    write_deltalake(str(lake / "posts_all"), copy, mode="append", partition_by=["date"])
    assert len(data_files(lake, "posts")) == 1 and len(data_files(lake)) == 2
    return lake


def test_a_damaged_page_found_by_a_query_is_named_then_skipped(unique_lake):
    (damaged,) = data_files(unique_lake, "posts")
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
    assert json.loads(skipped.stdout)[0]["n"] == 48  # the tail's copies
    message = skipped.stderr.split(" ", 1)[1]  # (after the time)
    assert message.startswith(f"WARNING Skipped corrupt Parquet file {damaged}: ")


def test_read_lake_passes_sql_errors_through_untouched(unique_lake):
    import duckdb

    with pytest.raises(duckdb.BinderException):
        read_lake(str(unique_lake), lambda con: con.sql("SELECT nope FROM posts").fetchall())
    bad = cli("sql", "SELECT nope FROM posts", "--lake", str(unique_lake), "--skip-corrupt")
    assert bad.exit_code == 1 and "SQL error" in bad.output and "WARNING" not in bad.output


@pytest.mark.parametrize("merged", [True, False], ids=["optimize", "merge"])
def test_compaction_of_a_lake_with_a_corrupt_file_is_one_line_and_changes_nothing(lake, merged):
    """The corrupt file is one OPTIMIZE rewrites (a day with two files), or one of the tail
    that the merge of `posts` reads first."""
    replay([REAL / "mastodonsocial.json"], str(lake), merge=merged)  # a 2nd file in its days
    days = {}
    for path in data_files(lake):
        days.setdefault(path.parent, []).append(path)
    bad = next(files for files in days.values() if len(files) >= 2)[-1]
    damage(bad, "truncated")
    before = delta_state(lake)
    result = cli("compact", "--lake", str(lake))
    assert result.exit_code == 1
    assert one_line(result.output) == (
        f"Error: Cannot compact {lake}: corrupt Parquet file {bad} (Parquet magic bytes not "
        "found in footer): move it out of the lake (`tootlake sql --skip-corrupt` reads the "
        "rest meanwhile)"
    )
    assert delta_state(lake) == before  # nothing committed
    if not merged:  # what a replay's merge at its end meets too (it warns and goes on)
        with pytest.raises(LakeError, match=f"^Cannot merge the posts table of {lake}: corrupt"):
            merge_posts(str(lake))


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


def with_a_tail(lake: Path) -> int:
    """Give the lake work for compaction (a second, unmerged file in each day of
    mastodonsocial.json); the number of posts it reads."""
    replay([REAL / "mastodonsocial.json"], str(lake), merge=False)
    return open_lake(str(lake)).execute(COUNT).fetchone()[0]


@needs_mounts
def test_writing_to_or_compacting_a_read_only_lake_is_one_line_naming_the_file(lake, tmp_path):
    posts = with_a_tail(lake)
    before = delta_state(lake)
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
    line = error_line((tmp_path / "replay.err").read_text())
    assert line.startswith(
        f"Error: Cannot write to the Delta table {lake}/posts_all: Unable to open file "
        f"{lake}/posts_all/date=2022-11-21/part-"
    )
    assert line.endswith(".parquet: Read-only file system")
    assert (tmp_path / "compact.rc").read_text().strip() == "1"
    line = error_line((tmp_path / "compact.err").read_text())
    assert line.startswith(
        f"Error: Cannot merge into the posts table of {lake}: Unable to open file {lake}/posts/"
    )
    assert line.endswith(".parquet: Read-only file system")
    assert delta_state(lake) == before
    assert open_lake(str(lake)).execute(COUNT).fetchone()[0] == posts


@needs_mounts
def test_a_full_disk_is_one_line_and_the_lake_reads_as_before(lake, tmp_path):
    posts, versions = (
        open_lake(str(lake))
        .execute("SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM posts_all)")
        .fetchone()
    )
    before = delta_state(lake)
    script = """
copy=$(mktemp -d)
cp -a "$1/." "$copy"
mount -t tmpfs -o size=64m tmpfs "$1"
cp -a "$copy/." "$1"
used=$(df -k --output=used "$1" | tail -1)
mount -o remount,size=$((used + 32))k "$1"
set +e
"$PY" -m tootlake replay "$2" --lake "$1" 2> replay.err
echo $? > replay.rc
"$PY" -m tootlake sql "SELECT (SELECT count(*) FROM posts) AS posts,
    (SELECT count(*) FROM posts_all) AS versions" --lake "$1" --format json > after.json
find "$1" -name '.*' > hidden.txt
rm -rf "$copy"
"""
    done = in_private_mounts(tmp_path, script, str(lake), str(REAL / "timelines.jsonl"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "replay.rc").read_text().strip() == "1"
    assert error_line((tmp_path / "replay.err").read_text()) == (
        f"Error: Cannot write to the Delta table {lake}/posts_all: Unable to copy data to "
        "file: No space left on device"
    )
    # nothing committed: the lake (on the tmpfs) reads as it did; no temporary is left
    after = json.loads((tmp_path / "after.json").read_text())
    assert after == [{"posts": posts, "versions": versions}]
    assert (tmp_path / "hidden.txt").read_text() == ""
    assert delta_state(lake) == before  # (the folder under the tmpfs, untouched)


@needs_mounts
def test_compaction_on_a_full_disk_is_one_line_and_the_lake_reads_as_before(tmp_path):
    lake = tmp_path / "lake"
    for _ in range(2):  # every post twice, two files a day: compaction has work to do
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
"$PY" -m tootlake compact --lake "$1" --retain-files 0 2> compact.err
echo $? > compact.rc
"$PY" -m tootlake sql "SELECT count(*) AS n FROM posts" --lake "$1" --format json > after.json
rm -rf "$copy"
"""
    done = in_private_mounts(tmp_path, script, str(lake))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "compact.rc").read_text().strip() == "1"
    assert error_line((tmp_path / "compact.err").read_text()) == (
        f"Error: Cannot optimize {lake}/posts_all: Unable to copy data to file: No space left "
        "on device"
    )
    assert json.loads((tmp_path / "after.json").read_text()) == [{"n": before}]


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


def test_a_file_size_limit_is_one_line_naming_the_table(tmp_path):
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
    assert error_line(done.stderr) == (
        f"Error: Cannot write to the Delta table {lake}/posts_all: Unable to copy data to "
        "file: File too large"
    )
    assert not [p for p in lake.rglob("*") if p.is_file()]  # no half file, no log entry


def test_compaction_past_a_file_size_limit_is_one_line_and_changes_nothing(lake, tmp_path):
    posts = with_a_tail(lake)
    before = delta_state(lake)
    done = tootlake(tmp_path, "compact", "--lake", str(lake), prefix=file_size_limit(1024))
    assert done.returncode == 1
    line = error_line(done.stderr)
    assert line.startswith(f"Error: Cannot merge into the posts table of {lake}: ")
    assert line.endswith("File too large")
    assert delta_state(lake) == before
    assert open_lake(str(lake)).execute(COUNT).fetchone()[0] == posts
    assert cli("compact", "--lake", str(lake)).exit_code == 0  # without the limit: done
    assert open_lake(str(lake)).execute(COUNT).fetchone()[0] == posts


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
    ("date", "DATE"),  # the Delta partition: the day of rejected_at
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
        # Port 0: the server takes a free port itself and prints it (one picked here was
        # free when picked, not necessarily when the server bound it seconds later).
        self.port = 0
        self.log = tmp_path / f"dashboard-{uuid.uuid4().hex[:8]}.log"
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
                "0",
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
            self.port = self.port or printed_port(self.log.read_text())
            if not self.port:
                time.sleep(0.2)
                continue
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
    bad = data_files(lake, "posts")[0]
    server = dashboard(lake)
    damage(bad, "garbage")  # after start: the first computation meets it
    status, headers, body = server.get("/")
    assert status == 503
    assert body == "The dashboard cannot read the lake (LakeError); the reason is in its log."
    assert headers["Content-Security-Policy"] == HEADERS["Content-Security-Policy"]
    assert str(lake) not in body and bad.name not in body
    time.sleep(0.2)
    assert str(bad) in server.log.read_text()  # the operator finds it in the log
