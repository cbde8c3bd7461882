"""What `tootlake replay` prints: a progress line on a terminal, the final line, and bad lines
summarised per file (count and first few) instead of one log line each."""

from __future__ import annotations

import logging
import re
from collections import Counter

from click.testing import CliRunner

from tootlake.cli import main
from tootlake.pipeline import BAD_LINE_EXAMPLES, Recorder, RunStats
from tootlake.record import Rejection
from tootlake.sources import reject_event

from .conftest import REAL
from .test_cli import _restore_logging  # noqa: F401  (autouse: main's logging put back)


def not_json(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(f"not json, line {n}\n" for n in range(1, lines + 1)))
    return str(path)


def replay(*args):
    return CliRunner().invoke(main, ["replay", *args])


def test_bad_lines_are_summarised_per_file_not_logged_one_by_one(tmp_path):
    files = [not_json(tmp_path, f"f{i}.txt", 30 + i) for i in range(3)]
    result = replay(*files, str(REAL / "mastodonsocial.json"), "--lake", str(tmp_path / "lake"))
    assert result.exit_code == 0, result.output
    assert "WARNING" not in result.stderr
    assert "93 rejected" in result.stdout  # the final line, as before
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Bad lines, by file")
    for i, name in enumerate(files):
        at = lines.index(f"  {name}: {30 + i} bad lines")
        examples = lines[at + 1 : at + 1 + BAD_LINE_EXAMPLES]
        # FILE:LINE, as compilers write it: terminals and editors open it there
        assert [e.split(": ")[0] for e in examples] == [f"    {name}:{n}" for n in (1, 2, 3)]
        assert all(": not valid JSON (JSON is malformed" in e for e in examples)
        after = lines[at + 1 + BAD_LINE_EXAMPLES : at + 2 + BAD_LINE_EXAMPLES]
        assert not any(line.startswith(f"    {name}:") for line in after)  # no fourth example
    assert "mastodonsocial.json" not in result.stderr  # no bad line there


def test_the_summary_names_ten_files_and_counts_the_rest(tmp_path):
    files = [not_json(tmp_path, f"f{i:02}.txt", 2) for i in range(13)]
    result = replay(*files, "--lake", str(tmp_path / "lake"))
    assert result.exit_code == 0, result.output
    named = [line for line in result.stderr.splitlines() if line.endswith(": 2 bad lines")]
    assert named == [f"  {name}: 2 bad lines" for name in files[:10]]
    assert "  ... and 3 more files with 6 bad lines." in result.stderr


def test_one_bad_line_is_singular(tmp_path):
    result = replay(str(REAL / "malformed.json"), "--lake", str(tmp_path / "lake"))
    name = REAL / "malformed.json"
    assert f"  {name}: 1 bad line\n    {name}:50: not valid JSON" in result.stderr


def test_quiet_prints_only_the_final_line(tmp_path, monkeypatch):
    monkeypatch.setattr("tootlake.cli.replay.stderr_is_terminal", lambda: True)
    bad = not_json(tmp_path, "bad.txt", 5)
    result = replay(bad, str(REAL / "mastodonsocial.json"), "-q", "--lake", str(tmp_path / "l"))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("Replayed 53 events")


def test_a_terminal_gets_a_progress_line_with_posts_per_second(tmp_path, monkeypatch):
    monkeypatch.setattr("tootlake.cli.replay.stderr_is_terminal", lambda: True)
    result = replay(str(REAL / "mastodonsocial.json"), "--lake", str(tmp_path / "lake"))
    assert result.exit_code == 0, result.output
    size = (REAL / "mastodonsocial.json").stat().st_size
    assert re.search(rf"Replaying 1 file \({size / 1000:.1f} kB\)", result.stderr), result.stderr
    assert "posts/s" in result.stderr and "bad lines" in result.stderr
    assert result.stdout.startswith("Replayed 48 events")  # the summary stays on stdout


def test_no_progress_line_off_a_terminal(tmp_path):
    result = replay(str(REAL / "mastodonsocial.json"), "--lake", str(tmp_path / "lake"))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def rejected_line(where):
    return reject_event(
        Rejection("not valid JSON (x)"), b"nope", source="replay", observed_on=None, where=where
    )


def test_the_recorder_counts_bad_lines_per_file_and_logs_them_at_debug(caplog):
    stats = RunStats()
    recorder = Recorder(stats)
    with caplog.at_level(logging.DEBUG, logger="tootlake.pipeline"):
        for n in range(1, 6):
            recorder.record(rejected_line(f"a:b.jsonl:{n}"))  # a colon in the file's name
        recorder.record(rejected_line("other.jsonl:7"))
    assert stats.bad_lines == Counter({"a:b.jsonl": 5, "other.jsonl": 1})
    assert stats.bad_line_examples == {
        "a:b.jsonl": [f"a:b.jsonl:{n}: not valid JSON (x)" for n in (1, 2, 3)],
        "other.jsonl": ["other.jsonl:7: not valid JSON (x)"],
    }
    assert stats.bad == stats.rejected == 6
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}


def test_other_bad_input_still_warns_for_the_first_twenty(caplog):
    recorder = Recorder(RunStats())
    with caplog.at_level(logging.DEBUG, logger="tootlake.pipeline"):
        for n in range(25):
            recorder.bad(f"a.example: bad status {n}")
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING] * 20 + [logging.DEBUG] * 5
    assert not recorder.stats.bad_lines


def test_pieces_of_one_file_keep_its_first_bad_lines_when_added_up():
    first, second = RunStats(), RunStats()
    Recorder(first).record(rejected_line("big.jsonl:2"))
    for n in (900, 901, 902):
        Recorder(second).record(rejected_line(f"big.jsonl:{n}"))
    total = RunStats()
    total.add(first)
    total.add(second)
    assert total.bad_lines == Counter({"big.jsonl": 4})
    assert [e.split(": ")[0] for e in total.bad_line_examples["big.jsonl"]] == [
        "big.jsonl:2", "big.jsonl:900", "big.jsonl:901"
    ]  # fmt: skip
