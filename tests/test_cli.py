import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import tomllib
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from tootlake.cli import main

from .conftest import REAL

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _restore_logging():
    """`main` points the root logger at the runner's stderr: put it back afterwards."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, sys.excepthook
    thread_hook = threading.excepthook
    yield
    root.handlers[:], sys.excepthook = handlers, hook
    threading.excepthook = thread_hook
    root.setLevel(level)


def test_every_command_has_help_and_is_documented():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_cli_docs
    finally:
        sys.path.pop(0)
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert docs == gen_cli_docs.render(), "docs/cli.md is stale: run scripts/gen_cli_docs.py"
    for path, command in gen_cli_docs.commands(main, "tootlake"):
        assert command.help, f"{path} has no help"


def test_report_json_has_every_section(tmp_path):
    runner = CliRunner()
    lake = str(tmp_path / "lake")
    result = runner.invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["report", "--lake", lake, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in ("summary", "daily", "apps", "hourly", "languages", "length_by_language",
                "longest", "hashtags", "instances"):  # fmt: skip
        assert key in report
    assert report["instances"][:2] == [
        {"origin": "mastodon.social", "posts": 10, "users": 6},
        {"origin": "mastodon.lol", "posts": 2, "users": 2},
    ]
    assert report["summary"]["posts"] == 48
    assert report["daily"] == [
        {"day": "2022-11-21", "posts": 48, "users": 44, "instances": 34,
         "top_user": "patentbuddy@mastodon.social", "top_bot": "covid_stats@mastodon.cloud",
         "top_observed_on": "mastodon.social"}
    ]  # fmt: skip
    assert {"app": "Web", "posts": 1} in report["apps"]


def test_report_formats_and_lake_from_environment(tmp_path, monkeypatch):
    runner = CliRunner()
    lake = str(tmp_path / "lake")
    runner.invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake])
    monkeypatch.setenv("TOOTLAKE_LAKE", lake)
    table = runner.invoke(main, ["report"]).output
    assert "Headline statistics" in table and "Mastodon Twitter Crossposter" in table
    markdown = runner.invoke(main, ["report", "--format", "markdown"]).output
    assert "| app | posts |" in markdown
    csv = runner.invoke(main, ["report", "--format", "csv"]).output
    assert "# apps\napp,posts\nMastodon Twitter Crossposter,6\n" in csv


def test_sql_command(tmp_path):
    runner = CliRunner()
    lake = str(tmp_path / "lake")
    runner.invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake])
    result = runner.invoke(
        main,
        ["sql", "SELECT count(*) AS n FROM posts WHERE local", "--lake", lake, "--format", "json"],
    )
    assert json.loads(result.output) == [{"n": 10}]
    bad = runner.invoke(main, ["sql", "SELECT nope FROM posts", "--lake", lake])
    assert bad.exit_code == 1 and "SQL error" in bad.output


def test_a_bad_lake_url_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(main, ["report", "--lake", "ftp://example/lake"])
    assert result.exit_code == 1
    assert "Unsupported lake URL" in result.output
    assert "Traceback" not in result.output


def test_report_json_and_csv_have_the_instances_section_the_html_has(tmp_path):
    runner = CliRunner()
    lake = str(tmp_path / "lake")
    runner.invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake])
    report = json.loads(runner.invoke(main, ["report", "--lake", lake, "--format", "json",
                                             "--top", "3"]).output)  # fmt: skip
    assert [row["origin"] for row in report["instances"]] == [
        "mastodon.social", "mastodon.lol", "mastodon.nl"
    ]  # fmt: skip
    csv = runner.invoke(main, ["report", "--lake", lake, "--format", "csv"]).output
    assert "# instances\norigin,posts,users\nmastodon.social,10,6\nmastodon.lol,2,2\n" in csv
    table = runner.invoke(main, ["report", "--lake", lake]).output
    assert "Instances sharing the most posts" in table


def _log_lines(fmt, capsys):
    from tootlake.cli.logs import setup_logging

    setup_logging("info", fmt)
    logging.getLogger("tootlake.test").warning("a.example: failing (%s)", "timed out")
    return capsys.readouterr().err.splitlines()


def test_text_log_lines_start_with_an_iso_8601_utc_time(capsys):
    before = datetime.now(UTC).replace(microsecond=0)
    [line] = _log_lines("text", capsys)
    time = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    found = re.fullmatch(rf"({time}) WARNING a.example: failing \(timed out\)", line)
    assert found, line
    at = datetime.fromisoformat(found.group(1))
    assert at.tzinfo is not None and before <= at <= datetime.now(UTC)


def test_json_log_lines_have_a_time_with_its_zone(capsys):
    before = datetime.now(UTC).replace(microsecond=0)
    [line] = _log_lines("json", capsys)
    entry = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["time"]), entry
    at = datetime.fromisoformat(entry["time"])
    assert at.utcoffset() is not None and before <= at <= datetime.now(UTC)
    assert entry["level"] == "warning" and entry["message"] == "a.example: failing (timed out)"


@pytest.mark.parametrize(
    "command",
    [["collect", "--duration", "1"], ["instances", "check"]],
    ids=["collect", "instances check"],
)
def test_an_empty_token_is_said_to_be_empty_not_malformed(command, tmp_path):
    # `--token host=$TOKEN` with TOKEN unset
    args = [*command, "--instance", "mastodon.social", "--token", "mastodon.social="]
    result = CliRunner().invoke(main, [*args, *(["--lake", str(tmp_path)] if command[0] ==
                                                "collect" else [])])  # fmt: skip
    assert result.exit_code == 1
    assert "The token for mastodon.social given with --token is empty" in result.output
    assert "Invalid --token" not in result.output


def test_a_missing_dashboard_dependency_names_an_extra_that_exists(tmp_path, monkeypatch):
    pytest.importorskip("starlette")
    from tootlake.analysis.dashboard import serve
    from tootlake.errors import MissingDependency

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    runner = CliRunner()
    lake = str(tmp_path / "lake")
    runner.invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake])
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(MissingDependency) as caught:
        serve(lake, port=0)
    assert caught.value.extra in extras and "uvicorn" in extras[caught.value.extra][-1]
    assert f'pip install -e ".[{caught.value.extra}]"' in str(caught.value)


def test_dashboard_on_port_0_prints_the_port_it_listens_on(tmp_path):
    pytest.importorskip("uvicorn")
    lake = str(tmp_path / "lake")
    CliRunner().invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull
    proc = subprocess.Popen(
        [sys.executable, "-m", "tootlake", "dashboard", "--lake", lake, "--port", "0"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"on http://127\.0\.0\.1:(\d+)/ ", line)
        assert found, line
        port = int(found.group(1))
        assert port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
            assert answer.status == 200 and answer.read() == b"ok"
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_dashboard_on_a_busy_port_is_a_clean_error(tmp_path):
    pytest.importorskip("uvicorn")
    lake = str(tmp_path / "lake")
    runner = CliRunner()
    runner.invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(main, ["dashboard", "--lake", lake, "--port", str(port)])
    assert result.exit_code == 1
    assert f"Cannot listen on 127.0.0.1 port {port}" in result.output
    assert "Traceback" not in result.output and f":{port}/" not in result.output


def _fleet_record(host, status="failing", level=logging.WARNING):
    record = logging.LogRecord("tootlake.sources.fleet", level, __file__, 1, "%s: %s",
                               (host, status), None)  # fmt: skip
    record.context = {"instance": host, "status": status}
    return record


def test_the_demo_shows_its_announced_cut_at_info_once():
    from tootlake.demo import AnnouncedCut

    cut = AnnouncedCut("a.example")
    early = _fleet_record("a.example")
    assert cut.filter(early) and early.levelname == "WARNING"  # not announced yet
    cut.armed = True
    other = _fleet_record("b.example")
    assert cut.filter(other) and other.levelname == "WARNING"
    expected = _fleet_record("a.example")
    assert cut.filter(expected) and (expected.levelno, expected.levelname) == (logging.INFO,
                                                                               "INFO")  # fmt: skip
    again = _fleet_record("a.example")
    assert cut.filter(again) and again.levelname == "WARNING"  # a real failure later


@pytest.mark.slow
def test_the_demo_announces_its_stream_cut_instead_of_warning(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull
    proc = subprocess.run(
        [sys.executable, "-m", "tootlake", "demo", "--duration", "6", "--rate", "200",
         "--lake", str(tmp_path / "lake"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = re.search(r"Demo: cutting the stream of (\S+) mid-event, on purpose", proc.stderr)
    assert found, proc.stderr
    host = found.group(1)
    assert re.search(rf"Z INFO {re.escape(host)}: failing", proc.stderr), proc.stderr
    assert not re.search(rf"WARNING {re.escape(host)}: failing", proc.stderr), proc.stderr
    reconnected = re.search(
        rf"The stream of {re.escape(host)} was cut on purpose and reconnected \((\d+) ",
        proc.stdout,
    )
    assert reconnected and int(reconnected.group(1)) >= 1, proc.stdout[:3000]
    # what the cut stream missed was backfilled; the authors who opted out where the
    # collector sees it (`noindex` on the polled instance) are not counted as missing
    truth = re.search(r"Ground truth of the streamed instances: ([\d,]+) posts expected, "
                      r"([\d,]+) missing, ([\d,]+) deleted posts still in the lake, "
                      r"([\d,]+) posts of authors who opted out", proc.stdout)  # fmt: skip
    assert truth, proc.stdout[:3000]
    assert int(truth.group(1).replace(",", "")) > 100
    # (not the deletes: one sent while the stream was cut is not sent again, only
    # `tootlake revalidate` finds it)
    assert truth.group(2) == "0", truth.group(0)
    assert truth.group(4) == "0", truth.group(0)  # no consent leak


def test_the_demo_lake_is_its_own(tmp_path):
    """`make run` twice gave twice the posts, and `make run` then `make replay-real` mixed
    simulated posts with real ones: the demo makes its lake afresh and refuses any other."""
    from tootlake.demo import prepare_demo_lake
    from tootlake.errors import ConfigError

    demo = tmp_path / "demo-lake"
    prepare_demo_lake(str(demo))
    (demo / "posts").mkdir()
    (demo / "posts" / "old.parquet").write_bytes(b"x")
    prepare_demo_lake(str(demo), keep=True)
    assert (demo / "posts" / "old.parquet").exists()
    prepare_demo_lake(str(demo))  # a new run: afresh
    assert not (demo / "posts").exists()
    real = tmp_path / "lake"
    (real / "posts").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a demo lake"):
        prepare_demo_lake(str(real))
    assert (real / "posts").exists()
    afile = tmp_path / "a-file"
    afile.write_text("not a folder")
    with pytest.raises(ConfigError, match="not a demo lake"):
        prepare_demo_lake(str(afile))
    empty = tmp_path / "empty"  # an empty folder holds nothing to mix with: taken as it is
    empty.mkdir(mode=0o2770)
    empty.chmod(0o2770)
    link = tmp_path / "link"  # also through a link to one
    link.symlink_to(empty, target_is_directory=True)
    prepare_demo_lake(str(link))
    assert (empty / "_tootlake" / "demo").exists() and link.is_symlink()
    assert empty.stat().st_mode & 0o7777 == 0o2770  # not removed and made again
    (empty / "posts").mkdir()
    prepare_demo_lake(str(link))  # now the demo's own: emptied through the link
    assert not (empty / "posts").exists() and (empty / "_tootlake" / "demo").exists()
    assert link.is_symlink() and empty.stat().st_mode & 0o7777 == 0o2770


def test_report_days_and_hours_in_a_named_time_zone(tmp_path):
    lake = tmp_path / "lake"
    runner = CliRunner()
    assert runner.invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", str(lake),
                                "--quiet"]).exit_code == 0  # fmt: skip
    utc = runner.invoke(main, ["report", "--lake", str(lake), "--format", "json"])
    tokyo = runner.invoke(main, ["report", "--lake", str(lake), "--format", "json", "--tz",
                                 "Asia/Tokyo"])  # fmt: skip
    assert utc.exit_code == 0 and tokyo.exit_code == 0, tokyo.output
    assert json.loads(utc.stdout)["hourly"] != json.loads(tokyo.stdout)["hourly"]
    bad = runner.invoke(main, ["report", "--lake", str(lake), "--tz", "Mars/Olympus"])
    assert bad.exit_code == 2 and "Unknown time zone 'Mars/Olympus'" in bad.output


def test_report_with_a_memory_limit_spills_and_gives_the_same_answers(tmp_path):
    lake, spill = str(tmp_path / "lake"), tmp_path / "spill"
    runner = CliRunner()
    assert (
        runner.invoke(main, ["replay", str(REAL / "timelines.jsonl"), "--lake", lake]).exit_code
        == 0
    )
    plain = runner.invoke(main, ["report", "--lake", lake, "--format", "json"])
    limited = runner.invoke(
        main,
        ["report", "--lake", lake, "--format", "json", "--memory-limit", "64MB",
         "--temp-directory", str(spill)],
    )  # fmt: skip
    assert limited.exit_code == 0, limited.output
    assert json.loads(limited.output) == json.loads(plain.output)
    bad = runner.invoke(main, ["report", "--lake", lake, "--memory-limit", "lots"])
    assert bad.exit_code == 2  # (a usage error: checked when the command line is read)
    assert "'--memory-limit': Invalid memory limit 'lots': use a size such as" in bad.output


def test_report_out_of_memory_is_one_line_that_says_what_to_change(tmp_path):
    lake = str(tmp_path / "lake")
    runner = CliRunner()
    assert (
        runner.invoke(main, ["replay", str(REAL / "timelines.jsonl"), "--lake", lake]).exit_code
        == 0
    )
    result = runner.invoke(main, ["report", "--lake", lake, "--memory-limit", "1KB"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: DuckDB ran out of the limit 1KB reading"), result.output
    assert "--memory-limit" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["collect", "--duration", "nan"], "nan is not a number of seconds"),
        (["collect", "--duration", "0"], "not in the range x>0"),
        (["collect", "--heartbeat-timeout", "inf"], "inf is not a number of seconds"),
        (["collect", "--flush-seconds", "-1"], "not in the range x>=0"),
        (["demo", "--duration", "inf"], "inf is not a number of seconds"),
        (["sink", "--until-idle", "nan"], "nan is not a number of seconds"),
        (["simulate", "--duration", "-3"], "not in the range x>=0"),
    ],
)
def test_a_time_in_seconds_is_finite_and_not_negative(args, said):
    """nan passes a range check (a `collect --duration nan` stopped at once) and inf
    overflows the timers: every option in seconds refuses both, with its name."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and said in result.output, result.output


def test_the_collect_summary_says_how_many_posts_were_withdrawn(capsys):
    """A post written, then removed when a later copy showed its author opted out, is in
    "Collected" but not in the lake: the summary says so, or its figures do not add up."""
    from collections import Counter

    from tootlake.cli.output import print_collect_summary
    from tootlake.collector import CollectResult
    from tootlake.pipeline import RunStats

    stats = RunStats(posts=12, skipped=Counter({"noindex": 3}))
    print_collect_summary(CollectResult(stats, state_dir="/s"), "./lake")
    assert "withdrawn" not in capsys.readouterr().out
    stats.withdrawn.update({"noindex": 2, "bot": 1})
    print_collect_summary(CollectResult(stats, state_dir="/s", refused={"a.example": "x"}), "./l")
    out = capsys.readouterr().out
    assert "skipped 3 noindex; 3 posts withdrawn when a later copy failed a consent gate " in out
    assert "(1 bot, 2 noindex)" in out
    assert "Refused by the policy: 1 instance (not read)" in out


def test_the_logging_options_are_taken_after_the_command_too(tmp_path):
    """docs/collect.md says `--log-level info`; people put it after the command, where click
    said "No such option". Before or after, it sets the same thing; after `--` it is an
    argument."""
    import logging

    lake = str(tmp_path / "lake")
    runner = CliRunner()
    assert runner.invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake,
                                "--quiet"]).exit_code == 0  # fmt: skip
    root = logging.getLogger()
    saved = root.level, root.handlers[:]
    try:
        for args in (
            ["sql", "SELECT 1 AS x", "--lake", lake, "--log-level", "debug", "--log-format=json"],
            ["--log-level", "debug", "sql", "SELECT 1 AS x", "--lake", lake],
        ):
            root.setLevel(logging.WARNING)
            result = runner.invoke(main, args)
            assert result.exit_code == 0, result.output
            assert root.level == logging.DEBUG, args
        bad = runner.invoke(main, ["sql", "SELECT 1", "--lake", lake, "--log-level", "loud"])
        assert bad.exit_code == 2 and "Invalid value for '--log-level'" in bad.output
        bare = runner.invoke(main, ["sql", "SELECT 1", "--lake", lake, "--log-level"])
        assert bare.exit_code == 2 and "'--log-level' requires an argument" in bare.output
        after = runner.invoke(main, ["sql", "--lake", lake, "--format", "csv", "--",
                                     "SELECT '--log-level' AS x"])  # fmt: skip
        assert after.exit_code == 0 and "--log-level" in after.output, after.output
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


def test_the_replay_summary_says_how_many_posts_were_withdrawn(tmp_path):
    """A later copy of a post whose author has since opted out (noindex) withdraws it: the
    replay counted it among its posts, so its summary says so, as collect's does."""
    from .conftest import real_status

    status = real_status("mastodonsocial.json", 1)
    if status["account"].get("noindex"):  # (the recording's first author did not opt out)
        pytest.skip("the first recorded author opted out")
    later = json.loads(json.dumps(status))
    later["account"]["noindex"] = True
    lines = tmp_path / "two.jsonl"
    lines.write_text(json.dumps(status) + "\n" + json.dumps(later) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["replay", str(lines), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    assert "1 post withdrawn when a later copy failed a consent gate (1 noindex)" in result.output
    assert "Replayed 2 events" in result.output
    assert re.search(r"; (1 commit|[02-9]\d* commits|1\d+ commits);", result.output)
