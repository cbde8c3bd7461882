"""The command line with odd values: "every error names what is wrong". Each test is one input
that ended in a Python traceback, a hang or a misleading message instead of a one-line
`Error: ...` (found by an audit on 2026-12-05; each failed before its fix). Nothing here talks
to anything but 127.0.0.1 (port 9 refuses connections)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tootlake.cli import main
from tootlake.errors import ConfigError

from .conftest import REAL

# (an autouse fixture: `main` points the root logger at the runner's stderr; it puts it back)
from .test_cli import _restore_logging  # noqa: F401

BIG = str(10**30)
EXE = str(Path(sys.executable).with_name("tootlake"))


@pytest.fixture
def lake(tmp_path):
    path = str(tmp_path / "lake")
    result = CliRunner().invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", path])
    assert result.exit_code == 0, result.output
    return path


def clean_error(result, *words):
    """A one-line `Error: ...` (exit status 1 or 2), no exception escaping, naming `words`."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert "Error:" in result.output
    for word in words:
        assert word in result.output, result.output


def run(args, *, env=None, timeout=20):
    """The real program in a process of its own (threads print their tracebacks there)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TOOTLAKE_")}
    full.update({"TOOTLAKE_CONFIG": os.devnull, **(env or {})})
    return subprocess.run(
        [EXE, *args], env=full, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


# -- report / sql / enrich: integers DuckDB cannot take -----------------------------------


@pytest.mark.parametrize("top", ["-1", BIG])
def test_report_top_out_of_range(lake, top):
    # -1: duckdb BinderException "LIMIT/OFFSET cannot be negative" (analysis/queries.py:97)
    # 10**30: duckdb ConversionException INT128 -> INT64 (analysis/queries.py:97)
    clean_error(CliRunner().invoke(main, ["report", "--lake", lake, "--top", top]), "--top")


def test_sql_limit_too_large_names_the_option(lake):
    # (was: "Error: SQL error: Conversion Error: ... LIMIT 10000...1", blaming the SQL)
    result = CliRunner().invoke(main, ["sql", "SELECT 1", "--lake", lake, "--limit", BIG])
    clean_error(result, "--limit")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 'infinity'::TIMESTAMP",
        "SELECT '-infinity'::DATE",
        "SELECT '10000-01-01'::TIMESTAMP",
        "SELECT '1-01-01'::DATE - 1",
    ],
)
@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_sql_times_python_cannot_hold(lake, query, fmt):
    # OverflowError from pyarrow's as_py, via analysis/report.py:211 (as_pylist)
    result = CliRunner().invoke(main, ["sql", query, "--lake", lake, "--format", fmt])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 1), result.output


def test_sql_does_not_download_duckdb_extensions(lake):
    # `tootlake sql "SELECT * FROM read_csv('http://127.0.0.1:9/x')"` makes DuckDB fetch
    # httpfs from extensions.duckdb.org: traffic beyond this machine (s3.md says it is not
    # used). Shown here without any network: the setting is on.
    result = CliRunner().invoke(
        main,
        ["sql", "SELECT current_setting('autoinstall_known_extensions') AS a", "--lake", lake,
         "--format", "csv"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.split()[-1].lower() == "false", result.output


def test_enrich_limit_too_large(lake):
    # duckdb ConversionException INT128 -> INT64 (lake/enrich.py:195)
    clean_error(
        CliRunner().invoke(main, ["enrich", "--lake", lake, "--limit", BIG, "-q"]), "--limit"
    )


# -- compact / revalidate: durations and retention ----------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", BIG])
def test_compact_retain_files_not_finite_or_huge(lake, value):
    # OverflowError / ValueError in lake/maintenance.py:168 (parse_duration)
    result = CliRunner().invoke(main, ["compact", "--lake", lake, "--retain-files", value, "-q"])
    clean_error(result, value)


def test_compact_target_size_huge(lake):
    # OverflowError "int too big to convert" while processing 'target_size' (maintenance.py:666)
    result = CliRunner().invoke(main, ["compact", "--lake", lake, "--target-size", BIG, "-q"])
    clean_error(result)


@pytest.mark.parametrize("value", ["inf", "nan", BIG])
def test_revalidate_older_than_not_finite_or_huge(lake, value):
    # OverflowError / ValueError in lake/maintenance.py:168 (parse_duration)
    result = CliRunner().invoke(
        main, ["revalidate", lake, "--older-than", value, "--max-requests", "0", "-q"]
    )
    clean_error(result, value)


def test_compact_retain_huge_flag(lake):
    # OverflowError "Python int too large to convert to C int" (maintenance.py:941)
    clean_error(CliRunner().invoke(main, ["compact", "--lake", lake, "--retain", BIG, "-q"]))


def test_compact_retain_huge_in_config(lake, tmp_path, monkeypatch):
    config = tmp_path / "tootlake.toml"
    config.write_text("retain = 1e300\n")
    config.chmod(0o600)
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(config))
    clean_error(CliRunner().invoke(main, ["compact", "--lake", lake, "-q"]), "retain")


def test_compact_retain_huge_in_environment(lake, monkeypatch):
    monkeypatch.setenv("TOOTLAKE_RETAIN", "1e300")
    clean_error(CliRunner().invoke(main, ["compact", "--lake", lake, "-q"]), "TOOTLAKE_RETAIN")


# -- files that are not what they should be ------------------------------------------------


@pytest.mark.parametrize("content", [bytes(range(128, 256)), 'lake = "x"\n'.encode("utf-16")])
def test_config_file_not_utf8(tmp_path, monkeypatch, content):
    # UnicodeDecodeError from tomllib.load, not caught (settings.py:120 _read_config)
    config = tmp_path / "tootlake.toml"
    config.write_bytes(content)
    config.chmod(0o600)
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(config))
    clean_error(CliRunner().invoke(main, ["report", "--lake", str(tmp_path)]), str(config))


@pytest.mark.parametrize(
    "args",
    [
        ["instances", "check", "{f}", "--no-rules"],
        ["collect", "--instances-file", "{f}", "--duration", "1", "--lake", "{lake}", "-q"],
        ["revalidate", "{lake}", "--instances-file", "{f}", "--max-requests", "0", "-q"],
    ],
)
def test_instances_file_not_utf8(tmp_path, lake, args):
    # UnicodeDecodeError in collector.py:71 (read_instances_file)
    bad = tmp_path / "instances.txt"
    bad.write_bytes(bytes(range(128, 256)))
    args = [a.format(f=bad, lake=lake) for a in args]
    clean_error(CliRunner().invoke(main, args), str(bad))


def test_datasheet_output_in_missing_folder(lake, tmp_path):
    # FileNotFoundError in analysis/datasheet.py:364 (write_datasheet)
    out = tmp_path / "no" / "such" / "datasheet.md"
    clean_error(CliRunner().invoke(main, ["datasheet", "--lake", lake, "-o", str(out)]), str(out))


@pytest.mark.parametrize("option", ["--write-instances", "--tokens-file", "--truth-file"])
def test_simulate_output_in_missing_folder(tmp_path, option):
    # FileNotFoundError in simulate/service.py:143 (_serve)
    out = tmp_path / "no" / "such" / "file"
    result = run(["simulate", "--duration", "1", "--rate", "1", option, str(out)])
    assert "Traceback" not in result.stderr, result.stderr[-400:]
    assert result.returncode == 1 and "Error:" in result.stderr


# -- rates and shares that are not numbers -------------------------------------------------


@pytest.mark.parametrize("rate", ["inf", "nan"])
def test_demo_rate_not_finite(tmp_path, rate):
    # a thread dies: OverflowError / ValueError in simulate/fediverse.py:602 (_run), and the
    # demo then exits with status 0 as if all went well
    result = run(["demo", "--duration", "1", "--lake", str(tmp_path / "demo"), "-q",
                  "--rate", rate], timeout=60)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr[-600:]
    assert result.returncode == 2 and "--rate" in result.stderr


def test_demo_hostile_nan(tmp_path):
    # FloatRange(0, 1) lets nan through: ValueError "Invalid hostile rate: nan" escapes
    result = run(["demo", "--duration", "1", "--lake", str(tmp_path / "demo"), "-q",
                  "--hostile", "nan"], timeout=60)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr[-600:]
    assert result.returncode == 2 and "--hostile" in result.stderr


def test_simulate_rate_inf():
    # OverflowError in simulate/fediverse.py:602 (_run)
    result = run(["simulate", "--duration", "1", "--rate", "inf"])
    assert "Traceback" not in result.stderr, result.stderr[-600:]
    assert result.returncode == 2 and "--rate" in result.stderr


def test_collect_duration_too_large(tmp_path):
    # Seconds() accepts 1e30: a timer thread dies (OverflowError: timestamp out of range for
    # platform time_t, threading.py) and collect then runs on, never stopping
    try:
        result = run(["collect", "--instance", "http://127.0.0.1:9", "--lake",
                      str(tmp_path / "lake"), "-q", "--duration", BIG], timeout=15)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"collect --duration {BIG} hangs; stderr: {exc.stderr!r}"[:800])
    assert "Traceback" not in result.stderr, result.stderr[-600:]


# -- misleading messages -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag-empty", "flag-blank", "env-blank"])
def test_blank_lake_is_not_blamed_on_the_config_file(tmp_path, monkeypatch, how):
    # (was: "Error: The config file /dev/null: lake must be ...", blaming the config file)
    args = ["report"]
    if how == "env-blank":
        monkeypatch.setenv("TOOTLAKE_LAKE", " ")
        where = "TOOTLAKE_LAKE"
    else:
        args += ["--lake", "" if how == "flag-empty" else " "]
        where = "--lake"
    result = CliRunner().invoke(main, args)
    clean_error(result, where)
    assert "config file" not in result.output


def test_an_instances_file_naming_no_instance_says_so(tmp_path):
    """(was: "Give an instances FILE or --instance", with a file given)"""
    empty = tmp_path / "instances.txt"
    empty.write_text("# nothing yet\n\n")
    result = CliRunner().invoke(main, ["instances", "check", str(empty), "--no-rules"])
    clean_error(result, "names no instance")


@pytest.mark.parametrize(
    ("name", "says"),
    [("", "is no file name"), (" ", "is no file name"), ("{tmp}", "is a directory")],
)
def test_keygen_without_a_file_name_says_so(tmp_path, name, says):
    """(was: "The key file . exists" for an empty name)"""
    result = CliRunner().invoke(main, ["keygen", name.format(tmp=tmp_path)])
    clean_error(result, says)


def test_keygen_force_does_not_replace_a_special_file(tmp_path):
    """(as root, `keygen --force /dev/full` made the device a regular file)"""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = CliRunner().invoke(main, ["keygen", "--force", str(fifo)])
    clean_error(result, "not a regular file")
    assert fifo.is_fifo()


def test_the_simulators_tokens_file_is_private_from_its_making(tmp_path):
    """The output files are made before the run, to fail early; the tokens file is made
    readable by its owner only at once (not 0644 until the tokens are written)."""
    from tootlake.simulate.service import _check_writable

    tokens = tmp_path / "tokens.txt"
    _check_writable(tokens, 0o600)
    assert tokens.exists() and tokens.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("host", ["[::1]", "::1"])
def test_dashboard_shows_an_ipv6_host_in_one_pair_of_brackets(lake, host, monkeypatch):
    """(was: http://[[::1]]:8000/ for `--host [::1]`) No server: `serve` only says where."""
    import tootlake.analysis.dashboard

    def serve(lake, *, on_listening, **options):
        on_listening(8123)

    monkeypatch.setattr(tootlake.analysis.dashboard, "serve", serve)
    result = CliRunner().invoke(main, ["dashboard", "--lake", lake, "--host", host])
    assert result.exit_code == 0, result.output
    assert "http://[::1]:8123/" in result.output
    assert "[[" not in result.output


def test_a_failed_simulation_leaves_no_empty_output_files(tmp_path):
    """The output files are made before the run, to fail early; a run that then fails (its
    port taken) removes those it made, still empty, and leaves a file that was there."""
    import socket

    from tootlake.simulate.service import run_simulation

    kept = tmp_path / "truth.json"
    kept.write_text("")
    made = [tmp_path / "instances.txt", tmp_path / "tokens.txt"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as failure:
            run_simulation(
                instances=1,
                rate=0,
                duration=1,
                port_base=port,
                write_instances=made[0],
                tokens_file=made[1],
                truth_file=kept,
                echo=lambda line: None,
                status=lambda line: None,
            )
    assert f"127.0.0.1:{port}" in str(failure.value) and "in use" in str(failure.value)
    assert [path.exists() for path in made] == [False, False]
    assert kept.exists()


def test_simulate_on_a_port_in_use_says_so_in_one_line(tmp_path):
    """(was: a traceback ending in OSError: [Errno 98] Address already in use)"""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main, ["simulate", "-n", "1", "--port-base", str(port), "--duration", "1"]
        )
    clean_error(result, f"Cannot serve on 127.0.0.1:{port}: Address already in use")


@pytest.mark.parametrize("command", ["compact", "migrate", "report"])
def test_a_bad_memory_limit_is_refused_when_the_command_line_is_read(lake, command):
    """(was: taken as any text, refused when first used: in `migrate`, after the copy)"""
    result = CliRunner().invoke(main, [command, "--lake", lake, "--memory-limit", "lots"])
    clean_error(result, "--memory-limit", "Invalid memory limit 'lots'", "2GB")


def test_a_memory_limit_duckdb_takes_is_taken(lake):
    result = CliRunner().invoke(main, ["report", "--lake", lake, "--memory-limit", "700MB"])
    assert result.exit_code == 0, result.output


def test_report_html_does_not_replace_what_is_not_a_regular_file(lake, tmp_path):
    """(the report is written to a temporary file then renamed over the target: as root,
    over /dev/null it made the device a regular file)"""
    target = tmp_path / "out"
    os.mkfifo(target)
    result = CliRunner().invoke(main, ["report", "--lake", lake, "--html", str(target)])
    clean_error(result, f"Cannot write the report to {target}: it is not a regular file")
    assert target.is_fifo()
