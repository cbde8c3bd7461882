"""The HTML report: one self-contained file, its figures, and text from the fediverse shown as
text only (hostile posts in hostile.py). Structure and numbers are asserted, not bytes."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tootlake.analysis.html import (
    CSP,
    _duration,
    render_html_report,
    safe_url,
    write_html_report,
)
from tootlake.analysis.report import build_report
from tootlake.pipeline import replay

from . import hostile
from .smalllake import status, write_inputs

# What the page is made of: anything else (script, img, iframe, object, link...) is a leak.
PAGE_ELEMENTS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "link",
    "body",
    "main",
    "header",
    "footer",
    "section",
    "h1",
    "h2",
    "p",
    "span",
    "code",
    "ul",
    "li",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "bdi",
    "figure",
    "figcaption",
    "blockquote",
    "a",
    "dl",
    "dt",
    "dd",
    "strong",
}
# image: the hour-of-day heatmap, an inline PNG (charts.check_svg allows no other); title,
# line, polyline, circle: the charts drawn by analysis/svg.py
SVG_ELEMENTS = {
    "svg", "g", "defs", "path", "clippath", "use", "text", "tspan", "rect", "image",
    "title", "line", "polyline", "circle",
}  # fmt: skip


class Page(HTMLParser):
    """Every element, attribute and piece of text of a page (the browser's reading of it)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._style = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._style = tag == "style"

    def handle_endtag(self, tag):
        self._style = False

    def handle_data(self, data):
        if not self._style:
            self.text.append(data)

    def tags(self, name):
        return [attrs for tag, attrs in self.elements if tag == name]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


@pytest.fixture
def small_lake(tmp_path, lake):
    jsonl, sse = write_inputs(tmp_path / "input")
    replay([jsonl], lake)
    replay([sse], lake, observed_on="a.example")
    return lake


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    lake = str(folder / "lake")
    replay([hostile.write_hostile_inputs(folder / "input")], lake)
    out = folder / "report.html"
    write_html_report(lake, out)
    return out.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------
# escaping


def test_hostile_text_is_shown_as_text_and_makes_no_element(hostile_page):
    page = Page(hostile_page)
    tags = {tag for tag, _ in page.elements}
    assert tags <= PAGE_ELEMENTS | SVG_ELEMENTS, tags - PAGE_ELEMENTS - SVG_ELEMENTS
    assert not page.tags("script") and not page.tags("img") and not page.tags("iframe")
    handlers = [
        (tag, name) for tag, attrs in page.elements for name in attrs if name.startswith("on")
    ]
    assert handlers == []
    for text in (*hostile.SHOWN, hostile.USERNAME + "@mastodon.social", "#" + hostile.TAG):
        assert text in page.all_text, text


def test_hostile_strings_are_escaped_in_the_file(hostile_page):
    for raw in ("<script", "<img", "<svg onload", "<b onmouseover"):
        assert raw not in hostile_page
    # by Jinja: the acct in the daily table, the display name of the longest post
    assert "<bdi>x&#34;&gt;&lt;svg onload=alert(4)&gt;@mastodon.social</bdi>" in hostile_page
    assert "<bdi>&lt;img src=x onerror=alert(3)&gt;</bdi>" in hostile_page
    # by matplotlib: an app name in a chart's SVG text
    assert '&lt;script&gt;alert("app")&lt;/script&gt;</text>' in hostile_page


def test_only_http_urls_are_links_and_links_do_not_leak(hostile_page):
    page = Page(hostile_page)
    for attrs in page.tags("a"):
        assert re.match(r"https?://", attrs["href"] or "")
        assert attrs["rel"] == "noopener noreferrer nofollow"
    assert "javascript:alert(9)" in page.all_text  # shown, not linked
    assert not [a for a in page.tags("a") if "javascript" in (a["href"] or "")]


def test_the_page_is_self_contained_with_a_strict_csp(hostile_page):
    page = Page(hostile_page)
    (csp,) = [m for m in page.tags("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp["content"] == CSP
    assert "default-src 'none'" in CSP and "script" not in CSP
    # nothing to fetch: no src attribute, and the only link is the empty data: icon
    assert not [attrs for _, attrs in page.elements if "src" in attrs]
    assert page.tags("link") == [{"rel": "icon", "href": "data:,"}]
    assert not re.search(r"url\((?!#)", hostile_page)  # CSS and SVG reference nothing outside


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://mastodon.social/@a/1", "https://mastodon.social/@a/1"),
        ("http://example.org/x?y=1", "http://example.org/x?y=1"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("data:text/html,<script>", None),
        ("//evil.example/x", None),
        ("/relative", None),
        ("https://", None),
        ("https://a.example/\nx", None),
        (" https://a.example/", None),
        (None, None),
    ],
)
def test_safe_url(url, expected):
    assert safe_url(url) == expected


# ----------------------------------------------------------------------------------------
# structure and numbers


def test_report_of_the_small_lake(small_lake, tmp_path):
    out = tmp_path / "out" / "report.html"
    write_html_report(small_lake, out)
    html = out.read_text(encoding="utf-8")
    found = dict(
        re.findall(r'<span class="label">(.*?)</span><span class="value">(.*?)</span>', html)
    )
    assert found == {
        "Posts": "6",
        "Users": "4",
        "Instances": "2",
        "Languages": "2",
        "Shortest post": "0",
        "Average post": "14.0",
        "Longest post": "28",
        "All posts": "84",
        "Time span": "1 day 13 h",
    }
    page = Page(html)
    figures = [f["id"] for f in page.tags("figure")]
    assert figures == [
        "chart-daily",
        "chart-hourly",
        "chart-apps",
        "chart-languages",
        "chart-length_by_language",
        "chart-instances",
        "chart-hashtags",
        "chart-terms",
        "chart-language_tags",
        "chart-reach_by_origin",
        "chart-reach_delay",
        "chart-content_warnings",
        "chart-edits_deletes",
        "chart-bots_daily",
        "chart-account_age",
        "chart-mentioned_accounts",
        "chart-interactions",
    ]
    assert len([s for s in page.tags("svg") if s.get("class") == "chart"]) == 17
    # not enriched, not collected: the new charts say what is missing
    assert "No languages detected yet: run tootlake enrich" in page.all_text
    assert "No sightings in the lake" in page.all_text
    # the daily table: two days
    assert "2023-02-03" in page.all_text and "2023-02-04" in page.all_text
    # how the data was collected: one delete, two observers; each replay left its counts in
    # _tootlake/runs/, and the report adds the two up (no "unknown")
    assert re.search(r"<dt>Delete events</dt><dd>1</dd>", html)
    assert "<dt>Skipped as opted out</dt><dd>0</dd>" in html and "unknown" not in page.all_text
    assert "recorded by the collecting runs in _tootlake/ (2 files)" in page.all_text
    observed = re.findall(
        r'<tr><td><bdi>([a-z.]+)</bdi></td><td class="num">(\d+)</td>\s*<td class="num">(\d+)</td>',
        html,
    )
    assert observed == [("a.example", "8", "1"), ("z.example", "1", "0")]  # versions, edits


def captions(html: str) -> dict[str, str]:
    """Chart name -> the number of posts its caption gives."""
    return dict(
        re.findall(
            r'<figure id="chart-(\w+)">.*?<figcaption><strong class="posts">(.*?)</strong>',
            html,
            re.S,
        )
    )


def test_each_chart_says_how_many_posts_it_is_drawn_from(small_lake):
    found = captions(render_html_report(small_lake))
    assert found == {
        "daily": "6 posts",
        "hourly": "6 posts",
        "apps": "3 posts",  # people's local posts with an app: Ivory 2, Web 1
        "languages": "6 posts",
        "length_by_language": "0 posts",  # no language has 20 posts
        "instances": "6 posts",
        "hashtags": "1 post (a post with two of these hashtags counts twice)",
        "terms": "1 post (a post mentioning two terms counts twice)",  # #chatgpt once
        "language_tags": "0 posts with a tag and a detected language",  # not enriched
        "reach_by_origin": "0 posts",  # replayed: no sightings
        "reach_delay": "0 posts seen elsewhere",
        "content_warnings": "6 posts",
        "edits_deletes": "7 posts",  # the 6 posts and bob's, deleted
        "bots_daily": "6 posts",
        "account_age": "6 posts",
        "mentioned_accounts": "0 mentions",  # the small lake's posts mention no one
        "interactions": "0 interactions",
    }


def test_the_page_states_its_time_zone_at_the_top(small_lake):
    html = render_html_report(small_lake)
    header = html[html.index("<header>") : html.index("</header>")]
    assert re.search(r'<p class="meta" id="timezone">Time zone: <strong>UTC</strong>', header)
    assert "When people post: hour of day (UTC)" in html  # and the charts name it


def test_the_terms_follow_the_lakes_hashtags_unless_chosen(small_lake):
    html = render_html_report(small_lake)
    assert "Posts mentioning the lake's most used hashtag (as word or hashtag" in html
    assert "balloon" not in html.split('id="chart-terms"')[1].split("</svg>")[0]
    # the talk's words stay one option away, and the caption names them
    assert "the 2023 talk followed balloon, earthquake, superbowl, chatgpt" in html
    talk = render_html_report(small_lake, terms=["balloon", "superbowl"])
    assert "Posts mentioning balloon, superbowl" in talk


def test_the_report_passed_in_is_used_as_is(small_lake, tmp_path):
    report = build_report(small_lake, terms=["hello"])
    html = render_html_report(small_lake, report=report)
    assert "Posts mentioning hello" in html


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "under a second"),
        (0.4, "under a second"),
        (20.7, "20 s"),
        (59, "59 s"),
        (125, "2 min 5 s"),
        (900, "15 min"),
        (3700, "1 h 1 min"),
        (2 * 86400 + 7200, "2 days 2 h"),
        (155 * 86400, "155.0 days"),
    ],
)
def test_a_duration_shows_seconds_when_they_matter(seconds, shown):
    assert _duration(seconds) == shown


def test_a_lake_of_seconds_has_a_time_span_in_seconds(tmp_path, lake):

    recording = tmp_path / "short.jsonl"
    lines = [
        {"observed_on": "a.example", "event": "update",
         "status": status(n, "alice", "a.example", f"2025-12-03T14:03:{10 + n:02d}.000Z",
                          "<p>hi</p>")}
        for n in range(21)
    ]  # fmt: skip
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    replay([recording], lake)
    html = render_html_report(lake)
    assert '<span class="label">Time span</span><span class="value">20 s</span>' in html
    assert "(20 s)" in html  # the posts' span in the collection section too


def test_collection_stats_from_the_lake_are_added_up(small_lake):
    state = Path(small_lake) / "_tootlake"
    for made in (state / "runs").glob("*.json"):  # the fixture's replays (0 skipped)
        made.unlink()
    for n, opted_out in enumerate((5, 7)):
        run = {"events": 10, "posts": 8, "skipped": {"opted_out": opted_out, "reblog": 2}, "bad": 1}
        (state / "runs" / f"run-{n}.json").write_text(json.dumps(run), encoding="utf-8")
    (state / "state").mkdir()
    cursors = {"instances": {"a.example": {"cursor": "1"}}}
    (state / "state" / "cursors.json").write_text(
        json.dumps(cursors), encoding="utf-8"
    )  # not stats
    html = render_html_report(small_lake)
    assert "<dt>Skipped as opted out</dt><dd>12</dd>" in html
    assert "<dt>Skipped as boosts</dt><dd>4</dd>" in html
    assert "<dt>Unreadable events</dt><dd>2</dd>" in html
    assert "(2 files)" in html


def test_collection_stats_passed_in_win(small_lake):
    html = render_html_report(small_lake, collection={"skipped": {"opted_out": 3}})
    assert "<dt>Skipped as opted out</dt><dd>3</dd>" in html
    assert "as passed to the report" in html


def test_collector_health_is_shown_per_observer(small_lake):
    state = Path(small_lake) / "_tootlake" / "state"
    state.mkdir(parents=True)
    health = {"a.example": {"mode": "stream", "status": "live"}, "z.example": {"mode": "poll"}}
    (state / "health.json").write_text(json.dumps(health), encoding="utf-8")
    html = render_html_report(small_lake)
    assert "<th>Collector</th>" in html
    assert "<td><bdi>stream, live</bdi></td>" in html and "<td><bdi>poll</bdi></td>" in html


def test_an_empty_lake_still_makes_a_page(tmp_path):
    out = tmp_path / "report.html"
    (tmp_path / "nothing-yet").mkdir()
    write_html_report(str(tmp_path / "nothing-yet"), out)
    page = Page(out.read_text(encoding="utf-8"))
    assert "The lake has no posts yet" in page.all_text
    assert len(page.tags("svg")) == 17  # 8 matplotlib charts, 9 of analysis/svg.py
    assert list((tmp_path / "nothing-yet").iterdir()) == []  # reading never writes the lake


def test_write_replaces_the_file_whole(small_lake, tmp_path):
    out = tmp_path / "site" / "report.html"
    out.parent.mkdir()
    out.write_text("old", encoding="utf-8")
    write_html_report(small_lake, out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary left


def test_report_command_writes_html(small_lake, tmp_path):
    from click.testing import CliRunner

    from tootlake.cli import main

    out = tmp_path / "cli.html"
    result = CliRunner().invoke(
        main, ["report", "--lake", small_lake, "--html", str(out), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert Page(out.read_text(encoding="utf-8")).tags("figure")


def test_the_report_connection_would_spill_to_a_private_folder(small_lake):
    import tempfile

    from tootlake.analysis.html import open_private

    con = open_private(small_lake)
    ((folder,),) = con.sql("SELECT current_setting('temp_directory')").fetchall()
    assert folder.startswith(tempfile.gettempdir()) and "tootlake-report-" in folder
    assert not folder.startswith(small_lake)


def test_no_record_of_the_runs_says_where_the_skips_are(small_lake):
    shutil.rmtree(Path(small_lake) / "_tootlake" / "runs")
    page = Page(render_html_report(small_lake))
    assert "Skipped as opted out" not in page.all_text and "unknown" not in page.all_text
    assert "No record of the collecting runs in the lake (_tootlake/)" in page.all_text
    assert "tootlake collect --stats FILE" in page.all_text


def _midnight_lake(tmp_path: Path) -> str:
    """Posts at 12:30, 22:30 and 23:30 UTC on 3 December: the last is on 4 December in
    Berlin (UTC+1 in winter)."""
    lake, recording = str(tmp_path / "lake"), tmp_path / "midnight.jsonl"
    lines = [
        {"observed_on": "a.example", "event": "update",
         "status": status(n, "alice", "a.example", f"2025-12-03T{hour}:30:00.000Z", "<p>hi</p>")}
        for n, hour in enumerate(("12", "22", "23"))
    ]  # fmt: skip
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    replay([recording], lake)
    return lake


def test_days_and_hours_follow_the_time_zone_asked_for(tmp_path):
    from tootlake.analysis import open_lake, queries

    con = open_lake(_midnight_lake(tmp_path))
    utc = queries.daily(con).select(["day", "posts"]).to_pylist()
    berlin = queries.daily(con, "Europe/Berlin").select(["day", "posts"]).to_pylist()
    assert utc == [{"day": "2025-12-03", "posts": 3}]
    assert berlin == [{"day": "2025-12-03", "posts": 2}, {"day": "2025-12-04", "posts": 1}]
    hours = queries.hourly(con, "Europe/Berlin").select(["day", "hour"]).to_pylist()
    assert hours == [
        {"day": "2025-12-03", "hour": 13},
        {"day": "2025-12-03", "hour": 23},
        {"day": "2025-12-04", "hour": 0},
    ]
    report = build_report(con=con, tz="Europe/Berlin", terms=["hi"])
    assert report["terms"].select(["day", "posts"]).to_pylist() == berlin


def test_the_page_names_its_time_zone_and_shows_times_in_it(tmp_path):
    lake = _midnight_lake(tmp_path)
    html = render_html_report(lake, tz="Europe/Berlin")
    page = Page(html)
    assert "Time zone: Europe/Berlin" in page.all_text
    assert "Daily activity (Europe/Berlin)" in page.all_text
    assert "Hour of day (Europe/Berlin)" in html and "Day (Europe/Berlin)" in html
    assert "2025-12-04 00:30:00 to" not in page.all_text  # the span starts at 13:30 Berlin
    assert "2025-12-03 13:30:00 to 2025-12-04 00:30:00 Europe/Berlin" in page.all_text
    assert "Time zone: UTC" in Page(render_html_report(lake)).all_text


def test_an_unknown_time_zone_is_a_clear_error(small_lake):
    from tootlake.errors import ConfigError

    for bad in ("Europe/Berlln", "../etc/passwd", ""):
        with pytest.raises(ConfigError, match="Unknown time zone"):
            build_report(small_lake, tz=bad)
    with pytest.raises(ConfigError, match="'Mars/Olympus'"):
        render_html_report(small_lake, tz="Mars/Olympus")
