"""The live dashboard: a real `tootlake dashboard` server on a loopback port, in headless
Chromium, while the lake grows."""

from __future__ import annotations

import os

from playwright.sync_api import expect

from tootlake.analysis.dashboard import HEADERS
from tootlake.pipeline import replay

from .. import hostile
from ..conftest import REAL
from ..smalllake import write_inputs
from .conftest import NOTHING_INJECTED, chart_sizes, injected, screenshot

CHARTS = 17  # 8 drawn with matplotlib, 9 by analysis/svg.py


def posts_card(page):
    return page.locator(".card", has_text="Posts").first.locator(".value")


def test_dashboard_shows_every_chart_and_refreshes_while_the_lake_grows(
    new_page, dashboard_server, tmp_path, lake
):
    jsonl, sse = write_inputs(tmp_path / "input")
    replay([jsonl], lake)
    replay([sse], lake, observed_on="a.example")
    server = dashboard_server(lake, refresh=2)

    watched = new_page()
    response = watched.page.goto(server.url)
    assert response.status == 200
    for name, value in HEADERS.items():
        assert response.headers[name.lower()] == value
    assert watched.page.title() == "tootlake dashboard"
    sizes = chart_sizes(watched.page)
    assert len(sizes) == CHARTS and all(w > 300 and h > 200 for w, h in sizes), sizes
    expect(posts_card(watched.page)).to_have_text("6")
    screenshot(watched, "dashboard")

    # collect writes more posts: the page reloads itself and shows them
    replay([REAL / "mastodonsocial.json"], lake)
    expect(posts_card(watched.page)).not_to_have_text("6", timeout=20_000)
    assert len(chart_sizes(watched.page)) == CHARTS
    screenshot(watched, "dashboard-refreshed")
    watched.assert_quiet()


def test_hostile_posts_run_nothing_in_the_dashboard(new_page, dashboard_server, tmp_path, lake):
    replay([hostile.write_hostile_inputs(tmp_path / "input")], lake)
    server = dashboard_server(lake, refresh=60)
    for bypass_csp in (False, True):
        watched = new_page(bypass_csp=bypass_csp)
        watched.page.goto(server.url)
        watched.page.wait_for_timeout(300)
        assert injected(watched.page) == NOTHING_INJECTED
        text = watched.page.evaluate("document.body.textContent")
        for shown in hostile.SHOWN:
            assert shown in text, shown
        watched.assert_quiet()
    screenshot(watched, "dashboard-hostile")


def test_dashboard_json_and_health_answer_on_loopback(new_page, dashboard_server, lake):
    os.makedirs(lake)
    server = dashboard_server(lake)  # an empty lake: nothing collected yet
    watched = new_page()
    body = watched.page.goto(server.url + "report.json").json()
    assert body["report"]["summary"]["posts"] == 0
    assert watched.page.goto(server.url + "healthz").text() == "ok"
    watched.page.goto(server.url)
    assert len(chart_sizes(watched.page)) == CHARTS
    watched.assert_quiet()
