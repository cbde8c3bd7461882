"""`tootlake datasheet`: the lake's account of itself, from its views and its audit table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from tootlake.analysis.datasheet import build_datasheet, render_html, render_markdown
from tootlake.cli import main
from tootlake.lake.audit import AuditEntry, record_run
from tootlake.lake.maintenance import compact
from tootlake.lake.reader import open_lake
from tootlake.lake.writer import LakeWriter
from tootlake.pipeline import replay

from .smalllake import write_inputs

HOSTILE = '<script>alert("x")</script>|evil\n## forged heading'


def small_lake(tmp_path: Path) -> str:
    lake = str(tmp_path / "lake")
    jsonl, sse = write_inputs(tmp_path / "in")
    replay([jsonl], lake, sink=LakeWriter(lake, sightings=True))
    replay([sse], lake, observed_on="a.example")
    compact(lake, retain_days=36500)
    record_run(  # a collect from an instance whose name and version are hostile
        lake,
        AuditEntry(
            "collect",
            datetime(2026, 12, 1, tzinfo=UTC),
            policy_sha256="ab" * 32,
            consent="opt-out+skip-bots",
            instances=[HOSTILE],
            refused=["denied.example"],
            instance_details={
                HOSTILE: {"mode": "stream", "version": HOSTILE, "reconnects": 2, "errors": 1},
                "denied.example": {"status": "refused by the policy", "detail": "rules: no bots"},
            },
            skipped={"opted_out": 3, "not_public": 1},
            deletes_received=4,
        ),
    )
    return lake


def test_every_run_leaves_a_row_in_the_audit_view(tmp_path):
    lake = small_lake(tmp_path)
    con = open_lake(lake)
    try:
        rows = con.execute(
            "SELECT command, consent, pseudonymised, retain_days FROM audit ORDER BY started_at"
        ).fetchall()
    finally:
        con.close()
    commands = [r[0] for r in rows]
    assert commands.count("replay") == 2 and commands.count("compact") == 1
    # compaction applies no consent policy: its row says none (null)
    assert ("compact", None, False, 36500.0) in rows
    assert ("collect", "opt-out+skip-bots", False, None) in rows


def test_the_datasheet_says_how_the_lake_was_made(tmp_path):
    lake = small_lake(tmp_path)
    sheet = build_datasheet(lake)
    assert sheet.posts == 6 and sheet.first_post.startswith("2023-02-03")
    assert sheet.runs == {"replay": 2, "compact": 1, "collect": 1}
    assert sheet.instances[HOSTILE]["mode"] == "stream" and sheet.reconnects == 2
    assert sheet.refused == {"denied.example": "rules: no bots"}
    assert sheet.skipped["opted_out"] == 3 and sheet.deletes_received >= 5
    assert sheet.deleted_rows_removed >= 1 and sheet.retain_days == [36500.0]
    assert sheet.policies == ["ab" * 32] and sheet.pseudonymised is False
    assert sheet.columns[0][:2] == ("uri", "string") and sheet.columns[0][2]
    text = render_markdown(sheet)
    for heading in ("Collection process", "Consent and preprocessing", "Deletes and retention",
                    "Known gaps", "Columns of posts"):  # fmt: skip
        assert f"## {heading}" in text
    assert "\n## forged heading" not in text  # remote text stays on its line
    page = render_html(sheet)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_datasheet_command_writes_markdown_or_html(tmp_path):
    lake = small_lake(tmp_path)
    runner = CliRunner()
    shown = runner.invoke(main, ["datasheet", "--lake", lake])
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("# Datasheet")
    out = tmp_path / "sheet.html"
    written = runner.invoke(main, ["datasheet", "--lake", lake, "--html", "-o", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    missing = runner.invoke(main, ["datasheet", "--lake", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "No lake at" in missing.output


def test_an_empty_table_of_the_datasheet_says_what_is_none(tmp_path):
    lake = str(tmp_path / "lake")
    jsonl, _ = write_inputs(tmp_path / "in")
    replay([jsonl], lake)  # no runs with reconnects, rejects or gates: empty tables
    sheet = build_datasheet(lake)
    text = render_markdown(sheet)
    assert "(none)" not in text
    assert "\nRejected because: none.\n" in text and "\nInstance: none.\n" in text
    page = render_html(sheet)
    assert "<p>(none)</p>" not in page and "<p>Removed because: none.</p>" in page
    assert "(1 run)" in text  # (one replay: a count of one is singular)
