import json
import sys
from pathlib import Path

from click.testing import CliRunner

from tootlake.cli import main

from .conftest import REAL

ROOT = Path(__file__).resolve().parent.parent


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
                "longest", "hashtags"):  # fmt: skip
        assert key in report
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
