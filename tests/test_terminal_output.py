"""Text from the fediverse reaches people safely: no escape sequence, control character or
bidi override in what a terminal prints (report formats, `sql`, `instances check`, log
lines); Markdown rows never split; CSV to a file stays lossless."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tootlake.analysis.report import render_report, render_table
from tootlake.cli import main
from tootlake.text import for_terminal, json_for_terminal

from .conftest import REAL

# A post as a hostile user writes it: a window-title OSC, a hyperlink OSC, colours (7-bit and
# 8-bit CSI), a bell, a bare CR that rewrites the line, a right-to-left override, C1 NEL, a
# table pipe, HTML, rich markup, a backslash and a quoted comma for CSV.
HOSTILE = (
    "calm\x1b]0;owned\x07 \x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ "
    "\x1b[31mred\x1b[0m \x9b32mgreen \x07bell\rBACK \u202eevil.exe\u202c \u2066iso\u2069 "
    "\x85nel | pipe <script>alert(1)</script> & [bold]markup[/bold] back\\slash "
    '"quoted, comma"\r\nsecond line\nthird\ttab\x7f'
)
# What a terminal must never receive: C0 but tab and newline, DEL, C1, bidi controls.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
SETTINGS = settings(max_examples=300, deadline=None, database=None)


def hostile_table() -> pa.Table:
    return pa.table({"text": [HOSTILE, "plain", None], "n": [1, 2, 3]})


# Any text: every control and format character, lone surrogates (JSON can carry them) too,
# and runs of ESC sequences.
ANY_TEXT = st.text(st.characters(exclude_categories=())) | st.lists(
    st.sampled_from(["\x1b", "[", "]", "0;", "31m", "\x07", "\\", "\x9b", "\x9d", "\x9c", "a"])
).map("".join)


@SETTINGS
@given(ANY_TEXT)
def test_for_terminal_leaves_no_control_or_bidi_character(text):
    safe = for_terminal(text)
    assert not UNSAFE.search(safe), repr(safe)
    assert for_terminal(safe) == safe
    safe.encode("utf-8")  # no lone surrogate: printable to any UTF-8 terminal


@SETTINGS
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_for_terminal_keeps_ordinary_text_tabs_and_newlines(text):
    plain = "".join(c for c in text if not UNSAFE.match(c) and c not in "\u2028\u2029")
    assert for_terminal(plain) == plain


def test_escape_sequences_go_whole_and_visible_text_stays():
    assert for_terminal("a\x1b]0;title\x07b\x1b[1;31mc\x1b[0m\x9b2Jd") == "abcd"
    assert for_terminal("x\u202eexe.txt\u202c") == "xexe.txt"
    assert for_terminal("tab\tnew\nline\r") == "tab\tnew\nline"


@SETTINGS
@given(st.recursive(st.none() | ANY_TEXT | st.integers(), lambda c: st.lists(c, max_size=4)))
def test_json_for_terminal_is_the_same_value_and_safe_to_print(value):
    text = json_for_terminal(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert not UNSAFE.search(text)
    text.encode("utf-8")


def _unescaped_pipes(line: str) -> int:
    """Cell separators of a GFM table row: `|` not escaped by a backslash (`\\\\` is one
    escaped backslash)."""
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def _markdown_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


@SETTINGS
@given(st.lists(st.text(), min_size=1, max_size=5))
def test_markdown_rows_never_split(values):
    table = pa.table({"a": values, "b": [f"{v}|\r\n|" for v in values]})
    text = render_table(table, "markdown")
    rows = _markdown_rows(text)
    assert len(rows) == 2 + len(values)  # header, rule, one line per row
    assert len(text.splitlines()) == len(rows)
    for row in rows:
        assert _unescaped_pipes(row) == 3, row
        assert not UNSAFE.search(row)


def test_markdown_escapes_pipes_line_breaks_and_html():
    text = render_table(hostile_table(), "markdown", title="Posts")
    rows = _markdown_rows(text)
    assert rows[0] == "| text | n |"
    assert len(rows) == 5
    row = rows[2]
    assert r"\| pipe" in row and r"back\\slash" in row
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in row
    assert "<script>" not in text
    assert "comma&quot;" not in row and '"quoted, comma"<br>second line<br>third' in row
    assert "bell<br>BACK" in row  # a bare CR breaks a line in Markdown: written as one


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_every_format_for_a_terminal_is_safe(fmt):
    text = render_table(hostile_table(), fmt, terminal=True)
    assert not UNSAFE.search(text), repr(text)
    assert "\x1b" not in text and "\r" not in text
    if fmt == "json":
        assert json.loads(text)[0]["text"] == HOSTILE  # escaped, still the same value
    elif fmt != "table":  # (a table folds long cells)
        assert "evil.exe" in text and "second line" in text


def test_csv_to_a_file_is_lossless_and_for_a_terminal_is_not():
    lossless = render_table(hostile_table(), "csv")
    assert list(csv.reader(io.StringIO(lossless, newline=""))) == [
        ["text", "n"],
        [HOSTILE, "1"],
        ["plain", "2"],
        ["", "3"],
    ]
    shown = render_table(hostile_table(), "csv", terminal=True)
    rows = list(csv.reader(io.StringIO(shown, newline="")))
    assert rows[1][0] == for_terminal(HOSTILE)


def test_report_sections_render_safely_for_a_terminal(tmp_path):
    """The whole report of a real lake, every format; the terminal flag reaches each table."""
    lake = str(tmp_path / "lake")
    result = CliRunner().invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake])
    assert result.exit_code == 0, result.output
    from tootlake.analysis.report import build_report

    tables = build_report(lake)
    tables["apps"] = pa.table({"app": [HOSTILE], "posts": [1]})
    for fmt in ("table", "json", "csv", "markdown"):
        text = render_report(tables, fmt, terminal=True)
        assert not UNSAFE.search(text), fmt
    # to a file: lossless (in quotes, its quotes doubled)
    assert '"' + HOSTILE.replace('"', '""') + '"' in render_report(tables, "csv")


def test_one_row_sections_show_shares_as_percentages():
    """The one-row sections (edits, deletes) list their figures; a share reads 3.7%, as in the
    other sections, not 0.0."""
    tables = {
        "edits": pa.table({"posts": [1234], "edited": [45], "edited_share": [0.0367]}),
        "deletes": pa.table({"posts": [1234], "deleted": [17], "deleted_share": [0.0138]}),
    }
    text = render_report(tables, "table")
    assert re.search(r"edited_share\s*│\s*3\.7%", text), text
    assert re.search(r"deleted_share\s*│\s*1\.4%", text), text
    assert re.search(r"posts\s*│\s*1,234", text), text


# -- the CLI, as a person runs it ---------------------------------------------------------


@pytest.fixture
def hostile_lake(tmp_path: Path) -> tuple[str, Path]:
    """A real lake, and a JSON file whose one value is the hostile text (DuckDB reads it)."""
    lake = str(tmp_path / "lake")
    result = CliRunner().invoke(main, ["replay", str(REAL / "mastodonsocial.json"), "--lake", lake])
    assert result.exit_code == 0, result.output
    data = tmp_path / "hostile.json"
    data.write_text(json.dumps([{"v": HOSTILE}]), encoding="utf-8")
    return lake, data


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull
    return env


def test_sql_csv_to_a_file_round_trips_a_hostile_string_exactly(hostile_lake, tmp_path):
    lake, data = hostile_lake
    out = tmp_path / "out.csv"
    with open(out, "wb") as handle:
        subprocess.run(
            [sys.executable, "-m", "tootlake", "sql", f"SELECT v FROM read_json('{data}')",
             "--lake", lake, "--format", "csv"],
            stdout=handle, env=_env(tmp_path), check=True, timeout=120,
        )  # fmt: skip
    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["v"], [HOSTILE]]


def _run_in_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """Run a command with stdout and stderr on a pseudo-terminal; everything it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 120)
            if not ready:
                raise AssertionError("no output from the command in 120 s")
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
        assert proc.wait(60) == 0, out.decode(errors="replace")
    return out


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_sql_on_a_terminal_prints_no_control_sequence(hostile_lake, tmp_path, fmt):
    lake, data = hostile_lake
    out = _run_in_terminal(
        [sys.executable, "-m", "tootlake", "sql", f"SELECT v FROM read_json('{data}')",
         "--lake", lake, "--format", fmt],
        _env(tmp_path),
    )  # fmt: skip
    text = out.decode("utf-8").replace("\r\n", "\n")  # the terminal writes LF as CR LF
    assert not UNSAFE.search(text), repr(text)
    assert "green" in text


def test_sql_error_with_remote_text_prints_no_control_sequence(hostile_lake, tmp_path):
    lake, data = hostile_lake
    result = CliRunner().invoke(
        main, ["sql", f"SELECT v::INTEGER FROM read_json('{data}')", "--lake", lake]
    )
    assert result.exit_code == 1 and "SQL error" in result.output
    assert not UNSAFE.search(result.output), repr(result.output)


def test_instances_check_shows_remote_version_text_safely():
    """An instance whose version carries escape sequences, rich markup and a newline: the
    table, the JSON and `instances discover`'s file show it defanged."""
    from tootlake.simulate import FediverseThread, InstanceSettings

    version = "4.5.0\x1b]0;owned\x07\x1b[31m[bold red]x[/]\u202e\n127.0.0.1:1"
    with FediverseThread(instances=1, seed=1, settings=InstanceSettings(version=version)) as sim:
        url = sim.fed.urls[0]
        runner = CliRunner()
        # --no-rules: the rules' columns would make rich wrap the version cell
        table = runner.invoke(main, ["instances", "check", "--instance", url, "--no-rules"])
        as_json = runner.invoke(main, ["instances", "check", "--instance", url, "--format", "json"])
    assert table.exit_code == 0, table.output
    assert not UNSAFE.search(table.output), repr(table.output)
    assert "[bold red]x[/]" in table.output  # shown as text, not read as markup
    assert as_json.exit_code == 0, as_json.output
    assert not UNSAFE.search(as_json.output)
    [report] = json.loads(as_json.output)
    assert "[bold red]x[/]" in report["version"]  # JSON escapes: the value stays whole


def test_log_lines_neutralise_remote_text(capsys):
    from tootlake.cli.logs import setup_logging

    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, sys.excepthook
    try:
        setup_logging("info", "text")
        logging.getLogger("tootlake.test").warning("%s: failing (%s)", "host", HOSTILE)
        setup_logging("info", "json")
        logging.getLogger("tootlake.test").warning(
            "%s", HOSTILE, extra={"context": {"instance": HOSTILE}}
        )
    finally:
        root.handlers[:], sys.excepthook = handlers, hook
        root.setLevel(level)
    err = capsys.readouterr().err
    text_line, json_line = err.rstrip("\n").split("\n")  # one line each: no forged lines
    # (a text line starts with its UTC time)
    assert text_line.split(" ", 1)[1].startswith("WARNING host: failing (calm click red green bell")
    assert "\\nsecond line\\nthird\ttab" in text_line
    assert not UNSAFE.search(err), repr(err)
    assert json.loads(json_line)["instance"] == for_terminal(HOSTILE)


def test_compact_on_a_terminal_shows_its_steps_then_only_the_result(hostile_lake, tmp_path):
    lake, _ = hostile_lake
    out = _run_in_terminal(
        [sys.executable, "-m", "tootlake", "compact", "--lake", lake], _env(tmp_path)
    )
    text = out.decode("utf-8")
    steps = [line for line in text.split("\r") if "Compacting" in line]  # the progress line
    assert any("merging posts" in line for line in steps), steps
    assert any("OPTIMIZE posts_all" in line for line in steps), steps
    assert f"Compacted {lake}:" in text.rstrip().splitlines()[-1]  # after the line is cleared
    quiet = _run_in_terminal(
        [sys.executable, "-m", "tootlake", "compact", "--lake", lake, "-q"], _env(tmp_path)
    )
    assert b"Compacting" not in quiet and b"Compacted" in quiet


def test_list_and_struct_values_are_json_in_csv_and_markdown():
    """`sql "select * from audit" --format csv` wrote list columns as Python's repr
    (['a', 'b']): JSON is what a spreadsheet or a script reads back."""
    table = pa.table({"hosts": [["a.example", 'b"c'], []], "s": [{"k": 1}, None]})
    rows = list(csv.reader(io.StringIO(render_table(table, "csv"), newline="")))
    assert [json.loads(v) for v in (rows[1][0], rows[1][1], rows[2][0])] == [
        ["a.example", 'b"c'], {"k": 1}, []
    ]
    assert rows[2][1] == ""
    assert '| ["a.example", "b' in render_table(table, "markdown")
    # standard JSON at any depth: NaN as null, times as the top-level columns show them
    from datetime import UTC, datetime

    odd = pa.table({"s": [{"t": datetime(2024, 1, 2, tzinfo=UTC), "n": float("nan")}],
                    "l": [[1.5, float("inf"), None]], "b": [[b"\x00\xff"]]})  # fmt: skip
    cells = next(csv.DictReader(io.StringIO(render_table(odd, "csv"), newline="")))
    assert json.loads(cells["s"]) == {"t": "2024-01-02T00:00:00Z", "n": None}
    assert json.loads(cells["l"]) == [1.5, None, None]
    assert json.loads(cells["b"]) == ["00ff"]
    assert "NaN" not in cells["s"] and "Infinity" not in cells["l"]

    def strict(text: str) -> object:  # what JavaScript's JSON.parse accepts
        def refuse(name: str) -> object:
            raise ValueError(name)

        return json.loads(text, parse_constant=refuse)

    whole = strict(render_table(odd, "json"))
    lines = [strict(line) for line in render_table(odd, "jsonl").splitlines()]
    assert whole == lines == [{"s": {"t": "2024-01-02T00:00:00Z", "n": None},
                               "l": [1.5, None, None], "b": ["00ff"]}]  # fmt: skip
