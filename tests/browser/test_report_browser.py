"""The HTML report opened from disk in headless Chromium: the small lake, a hostile one, and
a lake of one day and one of 60 days, whose hour-of-day and length charts take different
shapes (share-per-hour bars; a day x hour heatmap above them). Screenshots go to
test-artifacts/screenshots/, the whole page and those two charts apart, to be looked at."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tootlake.analysis.html import write_html_report
from tootlake.analysis.svg import SVG_CHARTS
from tootlake.pipeline import replay

from .. import hostile
from ..conftest import REAL
from ..smalllake import status, write_inputs
from .conftest import NOTHING_INJECTED, SCREENSHOTS, chart_sizes, injected, screenshot

CHARTS = 17  # 8 drawn with matplotlib, 9 by analysis/svg.py
# (language, weight, median length): a lake's usual mix, with a tail of rare languages that
# the length chart must leave out (fewer than 20 posts each).
LANGUAGES = [
    ("en", 50, 140),
    ("de", 16, 170),
    ("ja", 10, 45),
    ("fr", 8, 160),
    ("es", 6, 120),
    ("nl", 4, 110),
    ("pt", 3, 130),
    ("eo", 0.15, 90),
    ("cy", 0.1, 100),
    ("haw", 0.05, 60),
]
TAGS = ["fediverse", "caturday", "photography", "news", "music", "python", "art"]
# The people's day (UTC): quiet at night, busiest in the European afternoon and evening.
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 9, 10, 10, 9, 9, 10, 11, 11, 9, 6, 3, 2]
WORDS = ["the", "a", "post", "today", "photo", "cat", "new", "look", "people", "time", "good"]
APPS = ["Web", "Ivory", "Tusky", "Elk", "Mastodon for iOS"]


def _text(rng: random.Random, median: int) -> str:
    if rng.random() < 0.04:
        return ""  # media only: no text at all
    length = max(1, int(rng.lognormvariate(0, 0.8) * median))
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < length:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:length]


def write_lake_inputs(
    folder: Path, *, days: int, per_day: int, spike: int | None = None, gaps: tuple[int, ...] = ()
) -> Path:
    """A recording of `days` days from 1 March 2023 (UTC), about `per_day` posts a day over
    the day's hours, none on the `gaps` days (collection was down) and ten times as many,
    within three hours, on the `spike` day (news). Deterministic: the same file every run."""
    rng = random.Random(days * 1000 + per_day)
    start = datetime(2023, 3, 1, tzinfo=UTC)
    languages, weights = zip(*[(code, w) for code, w, _ in LANGUAGES], strict=True)
    medians = {code: m for code, _, m in LANGUAGES}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{days}-days.jsonl"
    n = 0
    with open(path, "w", encoding="utf-8") as handle:
        for day in range(days):
            if day in gaps:
                continue
            stamps = [
                start + timedelta(days=day, hours=h, seconds=rng.randrange(3600))
                for h in rng.choices(range(24), HOUR_WEIGHTS, k=per_day)
            ]
            if day == spike:
                stamps += [
                    start + timedelta(days=day, hours=15, seconds=rng.randrange(3 * 3600))
                    for _ in range(per_day * 10)
                ]
            for when in sorted(stamps):
                n += 1
                language = rng.choices(languages, weights)[0]
                tags = tuple(rng.sample(TAGS, rng.choice((0, 0, 1, 2))))
                text = _text(rng, medians[language])
                hashtags = "".join(f" #{t}" for t in tags)
                created = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                origin = f"i{rng.randrange(12)}.example" if rng.random() < 0.7 else "a.example"
                st = status(n, f"user{rng.randrange(300)}", origin, created,
                            f"<p>{text}{hashtags}</p>", language=language, tags=tags,
                            app=rng.choice(APPS), observed_on="a.example")  # fmt: skip
                line = {"observed_on": "a.example", "event": "update", "status": st}
                handle.write(json.dumps(line) + "\n")
    return path


def _report_of(folder: Path, recording: Path) -> Path:
    lake = str(folder / "lake")
    replay([recording], lake)
    out = folder / "report.html"
    write_html_report(lake, out)
    return out


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    lake = str(folder / "lake")
    jsonl, sse = write_inputs(folder / "input")
    replay([jsonl, REAL / "mastodonsocial.json", REAL / "malformed.json"], lake)
    replay([sse], lake, observed_on="a.example")
    out = folder / "report.html"
    write_html_report(lake, out)
    return out


@pytest.fixture(scope="module")
def one_day_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one-day")
    return _report_of(folder, write_lake_inputs(folder, days=1, per_day=800))


@pytest.fixture(scope="module")
def sixty_day_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sixty-days")
    recording = write_lake_inputs(folder, days=60, per_day=120, spike=40, gaps=(20, 21))
    return _report_of(folder, recording)


@pytest.fixture(scope="module")
def hostile_report_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-report")
    lake = str(folder / "lake")
    replay([hostile.write_hostile_inputs(folder / "input")], lake)
    out = folder / "report.html"
    write_html_report(lake, out)
    return out


def test_report_renders_every_chart_without_errors(new_page, report_file):
    watched = new_page()
    watched.page.goto(report_file.as_uri())
    sizes = chart_sizes(watched.page)
    assert len(sizes) == CHARTS
    assert all(width > 300 and height > 200 for width, height in sizes), sizes
    assert watched.page.locator(".card").count() == 9
    assert watched.page.title() == "tootlake report"
    screenshot(watched, "report")
    # issue 13's charts (plain SVG), each apart, to be looked at
    for chart in SVG_CHARTS:
        box = watched.page.locator(f"#chart-{chart} svg").bounding_box()
        assert box is not None and box["width"] > 300, chart
        path = SCREENSHOTS / f"report-{chart}.png"
        watched.page.locator(f"#chart-{chart}").screenshot(path=str(path))
        assert path.stat().st_size > 0
    watched.assert_quiet()


def test_report_reads_well_on_a_phone(new_page, report_file):
    watched = new_page()
    watched.page.set_viewport_size({"width": 390, "height": 844})
    watched.page.goto(report_file.as_uri())
    # nothing wider than the screen but the scrollable tables: charts scale down
    assert all(width <= 390 for width, _ in chart_sizes(watched.page))
    page_width = watched.page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 390
    screenshot(watched, "report-phone")
    watched.assert_quiet()


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "csp-bypassed"])
def test_hostile_posts_run_nothing_in_the_report(new_page, hostile_report_file, bypass_csp):
    # With the CSP bypassed, only the escaping stands between the posts and the page.
    watched = new_page(bypass_csp=bypass_csp)
    watched.page.goto(hostile_report_file.as_uri())
    watched.page.wait_for_timeout(300)  # let a leaked onerror fire, if any
    assert injected(watched.page) == NOTHING_INJECTED
    text = watched.page.evaluate("document.body.textContent")
    for shown in hostile.SHOWN:
        assert shown in text, shown
    assert len(chart_sizes(watched.page)) == CHARTS
    screenshot(watched, f"report-hostile-{'bypassed' if bypass_csp else 'csp'}")
    watched.assert_quiet()


def _shoot_charts(watched, name: str) -> dict[str, Path]:
    """The hour-of-day and length charts, each as its own screenshot (the page's is small)."""
    shots = {}
    for chart in ("hourly", "length_by_language"):
        path = SCREENSHOTS / f"{name}-{chart}.png"
        watched.page.locator(f"#chart-{chart}").screenshot(path=str(path))
        shots[chart] = path
    return shots


def _caption(page, chart: str) -> str:
    return page.locator(f"#chart-{chart} figcaption .posts").inner_text()


def test_report_of_a_one_day_lake_shows_hour_shares_and_lengths(new_page, one_day_report):
    watched = new_page()
    watched.page.goto(one_day_report.as_uri())
    assert len(chart_sizes(watched.page)) == CHARTS
    assert "Time zone: UTC" in watched.page.locator("header").inner_text()
    hourly = watched.page.locator("#chart-hourly svg")
    # one day: share-per-hour bars, no heatmap image
    assert hourly.locator("image").count() == 0
    hourly_text = hourly.text_content()
    assert "Hour of day (UTC)" in hourly_text and "Share of posts" in hourly_text
    assert "Wed 1 Mar 2023" in hourly_text
    assert _caption(watched.page, "hourly") == "800 posts"
    lengths = watched.page.locator("#chart-length_by_language svg").text_content()
    assert "5th to 95th percentile" in lengths and "logarithmic scale" in lengths
    assert "English" in lengths and "Hawaiian" not in lengths  # 0 or 1 post: left out
    assert re.search(r"\d+ other languages with fewer posts left out", lengths)
    screenshot(watched, "report-1-day")
    _shoot_charts(watched, "report-1-day")
    watched.assert_quiet()


def test_report_of_a_60_day_lake_shows_a_day_by_hour_heatmap(new_page, sixty_day_report):
    watched = new_page()
    watched.page.goto(sixty_day_report.as_uri())
    assert len(chart_sizes(watched.page)) == CHARTS
    hourly = watched.page.locator("#chart-hourly svg")
    # the heatmap: one pixel a cell (24 hours x 60 days), drawn as wide as the bars below
    box = hourly.locator('image[width="24"][height="60"]').bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 150, box
    hourly_text = hourly.text_content()
    assert "60 days, Wed 1 Mar 2023 to Sat 29 Apr 2023" in hourly_text
    assert "Posts per hour" in hourly_text and "Day (UTC)" in hourly_text
    assert "colours stop at" in hourly_text  # the spike day is darker than the scale
    total = 58 * 120 + 1200
    assert _caption(watched.page, "hourly") == f"{total:,} posts"
    assert _caption(watched.page, "daily") == f"{total:,} posts"
    screenshot(watched, "report-60-days")
    _shoot_charts(watched, "report-60-days")
    watched.assert_quiet()
