"""The live dashboard over HTTP (Starlette's test client): the page and its security headers,
the cache, refreshing while the lake grows, and never writing anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tootlake.analysis.dashboard import HEADERS, DashboardState, create_app
from tootlake.errors import LakeError
from tootlake.pipeline import replay

from . import hostile
from .conftest import REAL
from .smalllake import write_inputs

starlette_testclient = pytest.importorskip("starlette.testclient")


@pytest.fixture
def small_lake(tmp_path, lake):
    jsonl, sse = write_inputs(tmp_path / "input")
    replay([jsonl], lake)
    replay([sse], lake, observed_on="a.example")
    return lake


def client(app):
    # the Host header a browser sends for http://127.0.0.1/: the dashboard answers no other
    return starlette_testclient.TestClient(app, base_url="http://127.0.0.1")


def tree(folder: str) -> dict[str, tuple[int, int]]:
    """Every file under a folder, with its size and mtime."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            out[os.path.join(root, name)] = (stat.st_size, stat.st_mtime_ns)
    return out


def test_page_has_the_figures_a_refresh_and_the_security_headers(small_lake):
    with client(create_app(small_lake, refresh=7)) as http:
        response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in HEADERS.items():
        assert response.headers[name] == value
    assert "script-src" not in HEADERS["Content-Security-Policy"]  # default-src 'none' holds
    html = response.text
    assert '<meta http-equiv="refresh" content="7">' in html
    assert '<span class="label">Posts</span><span class="value">6</span>' in html
    assert html.count('<svg class="chart"') == 17  # the report's 8 charts and issue 13's 9


def test_results_are_cached_then_recomputed_with_the_new_files(small_lake):
    state = DashboardState(small_lake, refresh=10, cache_seconds=3600)
    app = create_app(small_lake, state=state)
    with client(app) as http:
        assert '<span class="value">6</span>' in http.get("/").text
        replay([REAL / "mastodonsocial.json"], small_lake)  # collect writes meanwhile
        assert '<span class="value">6</span>' in http.get("/").text  # cached
        assert state.computations == 1
        state.cache_seconds = state.busy_factor = 0
        page = http.get("/").text
    assert state.computations == 2
    assert '<span class="label">Posts</span><span class="value">6</span>' not in page
    assert http.get("/report.json").json()["report"]["summary"]["posts"] > 6


def test_report_json(small_lake):
    with client(create_app(small_lake)) as http:
        response = http.get("/report.json")
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["lake"] == small_lake
    assert body["report"]["summary"]["posts"] == 6
    assert [row["origin"] for row in body["report"]["instances"]] == ["a.example", "c.example"]


def test_a_slow_computation_is_kept_longer(small_lake):
    state = DashboardState(small_lake, cache_seconds=0)
    with client(create_app(small_lake, state=state)) as http:
        http.get("/")
        state._snapshot.seconds = 3600  # as if it had taken an hour
        http.get("/")
    assert state.computations == 1


def test_the_dashboard_never_writes(small_lake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before_lake, before_cwd = tree(small_lake), sorted(os.listdir(tmp_path))
    state = DashboardState(small_lake, cache_seconds=0)
    state.busy_factor = 0
    with client(create_app(small_lake, state=state)) as http:
        for _ in range(2):
            assert http.get("/").status_code == 200
            assert http.get("/report.json").status_code == 200
    assert tree(small_lake) == before_lake
    assert sorted(os.listdir(tmp_path)) == before_cwd  # no DuckDB file, no .tmp folder


def test_an_empty_lake_folder_is_shown_empty(tmp_path):
    lake = tmp_path / "fresh"
    lake.mkdir()
    with client(create_app(str(lake))) as http:
        response = http.get("/")
    assert response.status_code == 200
    assert "The lake has no posts yet" in response.text
    assert list(lake.iterdir()) == []


def test_a_lake_that_does_not_exist_is_an_error_naming_it_and_not_created(tmp_path):
    lake = str(tmp_path / "not-yet")
    with pytest.raises(LakeError, match=f"No lake at {lake}"):
        create_app(lake)
    assert not Path(lake).exists()


def test_hostile_posts_are_escaped(tmp_path, lake):
    replay([hostile.write_hostile_inputs(tmp_path / "input")], lake)
    with client(create_app(lake)) as http:
        html = http.get("/").text
    for raw in ("<script", "<img", "<svg onload", "<b onmouseover"):
        assert raw not in html
    assert "&lt;img src=x onerror=alert(3)&gt;" in html


def test_a_failed_refresh_keeps_the_last_page_and_says_so(small_lake, monkeypatch):
    state = DashboardState(small_lake, cache_seconds=0)
    state.busy_factor = 0
    with client(create_app(small_lake, state=state)) as http:
        assert http.get("/").status_code == 200

        def broken():
            raise OSError("disk on fire <b>")

        monkeypatch.setattr(state, "_compute", broken)
        response = http.get("/")
    assert response.status_code == 200
    assert "the last refresh failed (OSError; the reason is in the dashboard" in response.text
    assert "disk on fire" not in response.text  # the reason (paths) only in the log


def test_unknown_paths_are_404_with_the_headers(small_lake):
    with client(create_app(small_lake)) as http:
        response = http.get("/nope")
    assert response.status_code == 404
    assert response.headers["Content-Security-Policy"] == HEADERS["Content-Security-Policy"]


def test_dashboard_command_is_registered_with_its_options():
    from click.testing import CliRunner

    from tootlake.cli import main

    result = CliRunner().invoke(main, ["dashboard", "--help"])
    assert result.exit_code == 0
    for option in ("--lake", "--host", "--port", "--refresh"):
        assert option in result.output
    assert "127.0.0.1" in result.output  # the default host: loopback only
