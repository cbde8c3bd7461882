"""The analysis package with odd data and odd requests (an audit of src/tootlake/analysis): each
test is one input that ended in a traceback, a memory blow-up, minutes of CPU, a page without
its security headers, or Markdown that fetched a URL, before its fix."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest
from lxml import etree
from markdown_it import MarkdownIt

from tootlake.analysis import charts, queries
from tootlake.analysis.datasheet import Datasheet, render_markdown
from tootlake.analysis.html import render_html_report
from tootlake.analysis.report import build_report, render_report, render_table
from tootlake.analysis.svg import plot_interactions, plot_mentioned_accounts
from tootlake.lake.writer import LakeWriter
from tootlake.record import from_status

from .smalllake import status, write_inputs

CHARTS_ON_A_PAGE = 17  # the report's 8 matplotlib charts and the 9 drawn by svg.py
CONTROL = "x\x01y\x0b\x1b[31mz\u202e"


def write_lake(path: Path, statuses, tweak=None) -> str:
    """A lake of `statuses` as a collector writes them (`tweak(i, post)` may change a post)."""
    lake = str(path)
    writer = LakeWriter(lake)
    for i, st in enumerate(statuses):
        post = from_status(st, "a.example")
        writer.add([tweak(i, post) if tweak else post])
    writer.flush()
    return lake


def chart_svgs(page: str) -> list[etree._Element]:
    """The page's charts, each parsed as the XML it must be."""
    tree = etree.HTML(page)
    svgs = tree.xpath("//figure/*[local-name()='svg']")
    return [etree.fromstring(etree.tostring(svg)) for svg in svgs]


def markdown_elements(text: str) -> set[str]:
    """The elements a Markdown renderer makes of `text` (GFM tables on)."""
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    return {element.tag for element in etree.HTML(f"<div>{rendered}</div>").iter()}


# ----------------------------------------------------------------------------------------
# control characters in names: SVG is XML


def test_a_control_character_in_an_app_or_hashtag_leaves_the_html_report_whole(tmp_path):
    # (was: xml ParseError "not well-formed (invalid token)" from charts.check_svg: no page)
    statuses = [
        status(n, "alice", "a.example", "2023-02-03T10:15:00Z", f"<p>hi {n}</p>",
               app="App" + CONTROL, tags=("tag" + CONTROL,))
        for n in range(3)
    ]  # fmt: skip
    lake = write_lake(tmp_path / "lake", statuses)
    page = render_html_report(lake)
    svgs = chart_svgs(page)
    assert len(svgs) == CHARTS_ON_A_PAGE
    assert "\x01" not in page and "\x0b" not in page
    assert "App" in page and "#tag" in page  # the names stay, the characters go


def test_svg_charts_carry_no_control_character():
    # (was: ParseError from check_svg in analysis/svg.py's charts)
    mentioned = pa.table(
        {"account": ["bad\x01@b.example"], "instance": ["b.example"], "mentions": [3],
         "mentioned_by": [2]}
    )  # fmt: skip
    svg, _ = plot_mentioned_accounts(mentioned)
    assert "\x01" not in svg and "bad\ufffd@b.example" in svg
    pairs = pa.table(
        {"source_instance": ["a\x02.example"], "target_instance": ["b.example"], "mentions": [1],
         "replies": [0], "interactions": [1]}
    )  # fmt: skip
    svg, _ = plot_interactions(pairs)
    etree.fromstring(svg.encode())


# ----------------------------------------------------------------------------------------
# the years 1 and 9999 (a lake written by a Kafka sink holds any time a datetime can)


@pytest.fixture(scope="module")
def millennia_lake(tmp_path_factory) -> str:
    when = [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    statuses = [
        status(n, "alice", "a.example", "2023-02-03T10:15:00Z", "<p>hi #bloop</p>", app="App",
               tags=("bloop",))
        for n in range(2)
    ]  # fmt: skip
    folder = tmp_path_factory.mktemp("millennia")
    return write_lake(
        folder / "lake", statuses, lambda i, p: msgspec.structs.replace(p, created_at=when[i])
    )


@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo", "America/New_York"])
def test_posts_in_the_years_1_and_9999_make_every_chart(millennia_lake, tz):
    # (was, in UTC: the daily chart raised "Matplotlib dates must be between year 0001 and
    # 9999"; the hour-of-day heatmap and the terms chart made a row or a point for each of
    # 3.6M days: MemoryError under 3 GB. In Tokyo the days are 0001-01-01 and 10000-01-01,
    # in New York 0000-12-31 and 9999-12-31: date.fromisoformat raised, and so did the
    # cards' astimezone())
    started = time.perf_counter()
    report = build_report(millennia_lake, tz=tz)
    for fmt in ("table", "markdown", "csv", "json"):
        assert render_report(report, fmt)
    page = render_html_report(millennia_lake, report=report, tz=tz)
    assert len(chart_svgs(page)) == CHARTS_ON_A_PAGE
    assert time.perf_counter() - started < 30


def test_the_heatmap_and_the_terms_chart_of_millennia_stay_small():
    hourly = pa.table({"day": ["0001-01-01", "9999-12-31"], "hour": [0, 23], "posts": [1, 1]})
    fig = charts.plot_hourly(hourly)
    assert len(fig.axes) == 1  # the bars only: no heatmap of 3.6M rows
    terms = pa.table(
        {"day": ["0001-01-01", "0001-01-05", "9999-12-31"], "term": ["a", "a", "a"],
         "posts": [1, 2, 3]}
    )  # fmt: skip
    fig = charts.plot_terms(terms, terms=["a"])
    (line,) = fig.axes[0].get_lines()
    # the days seen and their neighbours: the zeros between them are drawn all the same
    assert list(line.get_ydata()) == [1, 0, 0, 2, 0, 0, 3]
    charts.figure_to_svg(fig)


# ----------------------------------------------------------------------------------------
# long text: no step grows with the square of a length


def test_a_huge_top_hashtag_followed_as_a_term_costs_linear_time(tmp_path):
    # (was: the report follows the lake's top hashtags; the prefilter pattern of a 100,000-
    # letter one took RE2 259 s (10,000 letters: 7 s))
    tag = "é" * 30_000
    statuses = [
        status(n, "alice", "a.example", "2023-02-03T10:15:00Z", f"<p>hi #{tag}</p>",
               tags=(tag,))
        for n in range(2)
    ]  # fmt: skip
    lake = write_lake(tmp_path / "lake", statuses)
    started = time.perf_counter()
    report = build_report(lake)
    assert time.perf_counter() - started < 10
    assert report["terms"].column("posts").to_pylist() == [2]


def test_the_prefilter_of_a_long_word_is_still_a_superset():
    from tootlake.lake.reader import connect

    word = "ab" * 100
    with connect() as con:
        ((found,),) = con.execute(
            "SELECT regexp_matches(?, ?)",
            ["x " + word.upper() + " y", queries._may_mention([word])],
        ).fetchall()
    assert found


# ----------------------------------------------------------------------------------------
# Markdown: text, never a link or an image


def test_markdown_report_cells_make_no_link_and_no_image():
    # (was: ![x](https://evil.example/pixel.png) in a post's text became an <img>: every
    # viewer of the Markdown report fetched it)
    text = "![x](https://evil.example/pixel.png) [click](https://evil.example/) a|b \\| c"
    table = pa.table({"preview": [text], "n": [1]})
    markdown = render_table(table, "markdown", title="t")
    elements = markdown_elements(markdown)
    assert "img" not in elements and "a" not in elements
    assert "evil.example/pixel.png" in MarkdownIt("commonmark").enable("table").render(markdown)
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 2  # the header and one row


def test_datasheet_markdown_escapes_html_links_and_images():
    # (was: a server's version or a reject's reason went into the Markdown as raw HTML)
    hostile = "<img src=x onerror=alert(1)> ![p](https://evil.example/p.png)"
    sheet = Datasheet(
        lake="lake",
        instances={"a.example": {"runs": 1, "reconnects": 0, "errors": 0, "version": hostile}},
        rejects=Counter({f"created_at is not a time: {hostile!r}": 1}),
    )
    text = render_markdown(sheet)
    elements = markdown_elements(text)
    assert "img" not in elements and "a" not in elements
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


# ----------------------------------------------------------------------------------------
# the dashboard: every answer carries the security headers


def test_every_dashboard_answer_carries_the_security_headers(tmp_path):
    # (was: Starlette's own 405 and its 307 to drop a trailing slash went without them)
    testclient = pytest.importorskip("starlette.testclient")
    from tootlake.analysis.dashboard import HEADERS, create_app
    from tootlake.pipeline import replay

    lake = str(tmp_path / "lake")
    jsonl, _ = write_inputs(tmp_path / "input")
    replay([jsonl], lake)
    http = testclient.TestClient(create_app(lake), base_url="http://127.0.0.1")
    with http:
        answers = [
            http.post("/"),
            http.request("TRACE", "/healthz"),
            http.get("/healthz/", follow_redirects=False),
            http.get("/../../etc/passwd"),
            http.get("/" + "a" * 10_000),
        ]
    assert [a.status_code for a in answers] == [405, 405, 307, 404, 404]
    for answer in answers:
        for name, value in HEADERS.items():
            assert answer.headers.get(name) == value, (answer.status_code, name)
        assert answer.headers.get("location", "http://127.0.0.1/").startswith("http://127.0.0.1/")


# ----------------------------------------------------------------------------------------
# checked and sound: odd lakes that already gave a result


def test_a_single_post_without_language_or_app_gives_every_section(tmp_path):
    lake = write_lake(
        tmp_path / "lake",
        [status(1, "alice", "b.example", "2023-02-03T10:15:00Z", "<p></p>", language=None)],
    )
    report = build_report(lake)
    for fmt in ("table", "markdown", "csv", "json"):
        assert render_report(report, fmt)
    assert len(chart_svgs(render_html_report(lake, report=report))) == CHARTS_ON_A_PAGE
