"""The HTML report opened from disk in headless Chromium."""

from __future__ import annotations

import pytest

from tootlake.analysis.html import write_html_report
from tootlake.pipeline import replay

from .. import hostile
from ..conftest import REAL
from ..smalllake import write_inputs
from .conftest import NOTHING_INJECTED, chart_sizes, injected, screenshot

CHARTS = 8


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
