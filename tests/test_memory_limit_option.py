"""`--memory-limit` with a huge value: the usage error quoted the whole value (and DuckDB's
reason, for an unknown unit, quoted it again): a 100,000-character line. It is cut, and the
line still says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tootlake.cli import main

HUGE = {
    "letters": "x" * 100_000,  # "Memory must have a number"
    "digits": "9" * 5_000,  # "Unknown unit for memory: ''"
    "unit": "1" + "Q" * 5_000,  # "Unknown unit for memory: 'qqq...'" (DuckDB quotes it)
}


@pytest.mark.parametrize("command", ["compact", "report", "migrate"])
@pytest.mark.parametrize("value", HUGE.values(), ids=HUGE.keys())
def test_a_huge_memory_limit_is_a_short_usage_error(
    tmp_path: Path, command: str, value: str
) -> None:
    lake = str(tmp_path / "lake")
    result = CliRunner().invoke(
        main, [command, "--lake", lake, "--memory-limit", value], prog_name="tootlake"
    )
    assert result.exit_code == 2, result.output  # a usage error, read with the command line
    assert "Traceback" not in result.output
    assert len(result.output) < 300, result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "'--memory-limit'" in error
    assert f"Invalid memory limit '{value[:39]}…': use a size such as 700MB or 2GB" in error
    assert value[:40] not in error  # (neither the limit nor DuckDB's reason quotes it whole)


def test_a_short_bad_memory_limit_is_quoted_whole(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    value = "1" + "Q" * 39  # 40 characters: not cut
    result = CliRunner().invoke(main, ["report", "--lake", lake, "--memory-limit", value])
    assert result.exit_code == 2, result.output
    assert f"Invalid memory limit '{value}': use a size such as" in result.output
    assert "Unknown unit for memory" in result.output  # DuckDB's reason, kept
