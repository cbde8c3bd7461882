"""`tootlake sql`: the row cap on a terminal, JSON lines, parameters, CSV endings and the
views its help names."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tootlake.cli import main
from tootlake.lake.reader import open_lake
from tootlake.pipeline import replay

from .conftest import REAL

RANGE = "SELECT range AS n FROM range(1500)"


@pytest.fixture(scope="module")
def real_lake(tmp_path_factory):
    lake = str(tmp_path_factory.mktemp("sql") / "lake")
    replay([REAL / "mastodonsocial.json"], lake, workers=1)
    return lake


def sql(*args, terminal=False, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr("tootlake.cli.sql.stdout_is_terminal", lambda: terminal)
    return CliRunner().invoke(main, ["sql", *args])


def test_sql_help_names_every_view_the_lake_has(real_lake):
    con = open_lake(real_lake)
    views = {
        name
        for (name,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
        if not name.startswith("_")  # the lake's own helpers
    }
    assert {"posts", "posts_all", "deletes", "sightings", "rejects"} <= views
    help_text = CliRunner().invoke(main, ["sql", "--help"]).output
    assert [view for view in sorted(views) if f"  {view} " not in help_text] == []


def test_on_a_terminal_sql_prints_1000_rows_and_says_how_to_see_all(real_lake, monkeypatch):
    result = sql(RANGE, "--lake", real_lake, "--format", "csv", terminal=True,
                 monkeypatch=monkeypatch)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    assert rows[0] == "n" and rows[1:] == [str(n) for n in range(1000)]
    assert "first 1,000 rows" in result.stderr and "--limit 0" in result.stderr


def test_to_a_pipe_sql_prints_every_row_without_a_note(real_lake, monkeypatch):
    result = sql(RANGE, "--lake", real_lake, "--format", "csv", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 + 1500
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("limit", "rows", "note"),
    [("10", 10, True), ("0", 1500, False), ("1500", 1500, False), ("1499", 1499, True)],
)
def test_limit_caps_the_rows_and_notes_only_a_real_cut(real_lake, monkeypatch, limit, rows, note):
    result = sql(RANGE, "--lake", real_lake, "--format", "csv", "--limit", limit,
                 terminal=True, monkeypatch=monkeypatch)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 + rows
    assert ("Showing the first" in result.stderr) is note


def test_the_cut_keeps_the_query_order(real_lake, monkeypatch):
    result = sql("SELECT range AS n FROM range(50) ORDER BY n DESC", "--lake", real_lake,
                 "--format", "csv", "--limit", "3", monkeypatch=monkeypatch)  # fmt: skip
    assert result.stdout.splitlines() == ["n", "49", "48", "47"]


def test_jsonl_is_one_object_a_row_with_the_values_json_has(real_lake):
    query = "SELECT id, created_at, text, tags FROM posts ORDER BY id"
    as_json = sql(query, "--lake", real_lake, "--format", "json")
    as_jsonl = sql(query, "--lake", real_lake, "--format", "jsonl")
    assert as_jsonl.exit_code == 0, as_jsonl.output
    lines = as_jsonl.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == 48 + 1  # a newline ends each row, nothing more
    assert [json.loads(line) for line in lines[:-1]] == json.loads(as_json.stdout)
    assert json.loads(lines[0])["created_at"].endswith("Z")


def test_parameters_are_bound_never_pasted_into_the_sql(real_lake):
    query = "SELECT count(*) AS n FROM posts WHERE language = $lang"
    english = sql(query, "-p", "lang=en", "--lake", real_lake, "--format", "json")
    assert english.exit_code == 0, english.output
    assert json.loads(english.stdout) == [{"n": 28}]
    injected = sql(query, "--param", "lang=en' OR '1'='1", "--lake", real_lake, "--format", "json")
    assert json.loads(injected.stdout) == [{"n": 0}]  # a value that matches no language
    dollar = sql(query, "-p", "$lang=en", "--lake", real_lake, "--format", "json")
    assert json.loads(dollar.stdout) == [{"n": 28}]


def test_a_text_parameter_compares_with_a_number_and_casts(real_lake):
    query = "SELECT count(*) AS n FROM posts WHERE favourites_count >= $least AND $least::INT > 0"
    result = sql(query, "-p", "least=1", "--lake", real_lake, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["n"] > 0


@pytest.mark.parametrize("pair", ["lang", "=en", "la-ng=en", "1x=2"])
def test_a_malformed_parameter_is_a_usage_error(real_lake, pair):
    result = sql("SELECT 1", "-p", pair, "--lake", real_lake)
    assert result.exit_code == 2
    assert "NAME=VALUE" in result.output and "-p lang=de" in result.output


def test_a_missing_parameter_is_an_sql_error_naming_it(real_lake):
    result = sql("SELECT $lang AS lang", "--lake", real_lake)
    assert result.exit_code == 1
    assert "SQL error" in result.output and "lang" in result.output


def test_csv_ends_with_the_last_row_not_an_empty_line(real_lake):
    result = sql("SELECT language, count(*) AS n FROM posts GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3",
                 "--lake", real_lake, "--format", "csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("\n") and not result.stdout.endswith("\n\n")
    assert result.stdout.split("\n") == ["language,n", "en,28", "es,4", "de,3", ""]


NANOS = (
    "SELECT '2024-01-01 00:00:00.123456789'::TIMESTAMP_NS AS t, "
    "'2024-01-01 00:00:00.5'::TIMESTAMP_NS AS whole_us, "
    "'2024-01-01 00:00:00.123456789+00'::TIMESTAMPTZ AS tz"
)


@pytest.mark.parametrize("program", [False, True], ids=["in-process", "the program"])
def test_times_with_nanoseconds_print_every_digit(real_lake, program):
    """A time that is not a whole microsecond cannot be a Python datetime: its ISO text is
    printed instead (pyarrow converts it only through pandas, which the `tootlake` program
    tells it is not there). Whole microseconds print as before."""
    if program:
        import subprocess
        import sys

        run = subprocess.run(
            [sys.executable, "-m", "tootlake", "sql", NANOS, "--lake", real_lake, "--format",
             "jsonl"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        output = run.stdout
    else:
        result = sql(NANOS, "--lake", real_lake, "--format", "jsonl")
        assert result.exit_code == 0, result.output
        output = result.output
    row = json.loads(output.splitlines()[0])
    assert row["t"] == "2024-01-01T00:00:00.123456789"
    assert row["whole_us"].startswith("2024-01-01") and "00:00:00.5" in row["whole_us"]
    assert row["tz"].startswith("2024-01-01") and "00:00:00.123456" in row["tz"]
