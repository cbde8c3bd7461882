"""Each chart of a known table: its title, axis labels, and the artists that carry the data
(one bar per row, one line per day or term, one box per language)."""

from __future__ import annotations

import sys
from datetime import date, timedelta

import pyarrow as pa
import pytest

from tootlake.analysis import charts, open_lake, queries
from tootlake.errors import MissingDependency
from tootlake.pipeline import replay

from .smalllake import write_inputs


@pytest.fixture(scope="module")
def small_con(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    jsonl, sse = write_inputs(folder / "input")
    lake = str(folder / "lake")
    replay([jsonl], lake)
    replay([sse], lake, observed_on="a.example")
    return open_lake(lake)


def title(fig):
    return fig.get_label()


def only_axes(fig):
    (ax,) = fig.axes
    return ax


def bars(ax):
    from matplotlib.patches import Rectangle

    return [p for p in ax.patches if isinstance(p, Rectangle)]


def texts(fig):
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_apps_chart_has_one_bar_per_app_largest_first(small_con):
    fig = charts.plot_apps(queries.apps(small_con))
    ax = only_axes(fig)
    assert title(fig) == "Which apps people post from"
    assert ax.get_xlabel() == "Posts (count)"
    assert ax.get_ylabel() == "Client app"
    # people's apps of the small lake: Ivory 2, Web 1 (the bot's app is left out)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Ivory", "Web"]
    assert [b.get_width() for b in bars(ax)] == [2, 1]
    assert ax.yaxis_inverted()  # largest on top


def test_apps_chart_keeps_the_top_apps_and_says_how_many_are_left_out():
    table = pa.table(
        {"app": [f"app{i:02d}" for i in range(20)], "posts": list(range(2000, 0, -100))}
    )
    fig = charts.plot_apps(table, top=15)
    assert len(bars(only_axes(fig))) == 15
    assert any("Top 15 of 20 apps; the other 5 have 1,500 posts" in t for t in texts(fig))
    assert "2,000" in texts(fig)  # bar labels with thousands separators


def test_languages_chart_uses_english_names_and_greys_unknown(small_con):
    fig = charts.plot_languages(queries.languages(small_con))
    ax = only_axes(fig)
    assert title(fig) == "Languages of posts"
    assert ax.get_ylabel() == "Language"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["English", "Japanese", "Unknown"]
    assert [b.get_width() for b in bars(ax)] == [4, 1, 1]  # bob's German post was deleted
    unknown = bars(ax)[2]
    assert unknown.get_facecolor()[:3] == pytest.approx((0.6, 0.6, 0.6))
    assert "4 (66.7%)" in texts(fig)


def test_languages_chart_shows_the_top_20():
    table = pa.table(
        {
            "language": [f"l{i}" for i in range(30)],
            "language_name": [f"Language {i}" for i in range(30)],
            "posts": list(range(300, 0, -10)),
        }
    )
    assert len(bars(only_axes(charts.plot_languages(table)))) == 20


def test_length_by_language_draws_one_box_per_language_from_precomputed_figures():
    table = pa.table(
        {
            "language": ["en", "ja"],
            "language_name": ["English", "Japanese"],
            "posts": [1200, 300],
            "min": [0, 2],
            "q1": [60.0, 20.0],
            "median": [120.0, 40.0],
            "q3": [220.0, 80.0],
            "max": [68991, 900],
        }
    )
    fig = charts.plot_length_by_language(table)
    ax = only_axes(fig)
    assert title(fig) == "How long posts are, by language"
    assert ax.get_xlabel() == "Post length (characters, logarithmic scale)"
    assert ax.get_xscale() == "symlog"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["English (1,200)", "Japanese (300)"]
    from matplotlib.patches import PathPatch

    boxes = [p for p in ax.patches if isinstance(p, PathPatch)]
    assert len(boxes) == 2
    # whiskers and caps at min and max, median bars at the medians: nothing recomputed
    xs = {float(x) for line in ax.lines for x in line.get_xdata()}
    assert {0, 2, 900, 68991, 40, 120} <= xs
    assert not {1.5 * 220 - 0.5 * 60} & xs  # no 1.5 IQR whisker anywhere
    assert any("whiskers: shortest and longest post" in t for t in texts(fig))


def test_length_by_language_of_the_small_lake(small_con):
    fig = charts.plot_length_by_language(queries.length_by_language(small_con))
    labels = [t.get_text() for t in only_axes(fig).get_yticklabels()]
    assert labels == ["English (4)", "Japanese (1)"]  # longest median first


def test_daily_chart_has_a_bar_per_day(small_con):
    fig = charts.plot_daily(queries.daily(small_con))
    ax = only_axes(fig)
    assert title(fig) == "Posts per day"
    assert ax.get_xlabel() == "Day (UTC)"
    assert ax.get_ylabel() == "Posts per day"
    assert [b.get_height() for b in bars(ax)] == [2, 4]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Fri\n3 Feb", "Sat\n4 Feb"]


def test_hourly_chart_draws_one_line_per_day_over_24_hours(small_con):
    fig = charts.plot_hourly(queries.hourly(small_con))
    ax = only_axes(fig)
    assert title(fig) == "When people post: posts per hour of day"
    assert ax.get_xlabel() == "Hour of day (UTC)"
    assert ax.get_ylabel() == "Posts per hour"
    assert len(ax.lines) == 2
    first, second = (list(line.get_ydata()) for line in ax.lines)
    assert len(first) == 24
    assert first[10] == 1 and first[11] == 1 and sum(first) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "Fri 3 Feb 2023",
        "Sat 4 Feb 2023",
    ]


def test_hourly_chart_of_many_days_draws_the_mean_over_grey_days():
    start = date(2023, 2, 1)
    days = [(start + timedelta(days=d)).isoformat() for d in range(20) for _ in range(24)]
    table = pa.table({"day": days, "hour": list(range(24)) * 20, "posts": [10] * 480})
    ax = only_axes(charts.plot_hourly(table))
    # 20 day lines, the legend's stand-in for them, and the mean
    assert len(ax.lines) == 22
    assert list(ax.lines[-1].get_ydata()) == [10.0] * 24
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["one day", "mean over the days"]


def test_instances_chart(small_con):
    fig = charts.plot_instances(queries.instances(small_con))
    ax = only_axes(fig)
    assert title(fig) == "Instances sharing the most posts"
    assert ax.get_ylabel() == "Instance"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a.example", "c.example"]
    assert [b.get_width() for b in bars(ax)] == [4, 2]
    assert "4  (3 people)" in texts(fig) and "2  (1 person)" in texts(fig)


def test_hashtags_chart(small_con):
    fig = charts.plot_hashtags(queries.hashtags(small_con))
    ax = only_axes(fig)
    assert title(fig) == "Top hashtags"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["#chatgpt"]
    assert [b.get_width() for b in bars(ax)] == [1]


def test_terms_chart_draws_a_line_per_term_with_zero_days_filled(small_con):
    table = queries.terms(small_con)
    days = queries.daily(small_con).column("day").to_pylist()
    fig = charts.plot_terms(table, days=days, terms=queries.DEFAULT_TERMS)
    ax = only_axes(fig)
    assert title(fig) == "Terms in the news: posts per day"
    assert ax.get_ylabel() == "Posts mentioning the term"
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert lines == {
        "balloon": [1, 0],
        "earthquake": [0, 2],
        "superbowl": [0, 0],
        "chatgpt": [1, 0],
    }


def empty(**columns):
    return pa.table({name: pa.array([], type) for name, type in columns.items()})


@pytest.mark.parametrize(
    ("plot", "table"),
    [
        (charts.plot_apps, empty(app=pa.string(), posts=pa.int64())),
        (charts.plot_daily, empty(day=pa.string(), posts=pa.int64())),
        (charts.plot_hourly, empty(day=pa.string(), hour=pa.int32(), posts=pa.int64())),
        (charts.plot_terms, empty(day=pa.string(), term=pa.string(), posts=pa.int64())),
    ],
)
def test_an_empty_table_gives_a_titled_figure_that_says_so(plot, table):
    fig = plot(table)
    assert title(fig)
    assert any(t.startswith("No ") for t in texts(fig))
    assert charts.figure_to_svg(fig).startswith("<svg ")


def test_every_chart_of_the_empty_lake_renders(tmp_path):
    (tmp_path / "no-data-yet").mkdir()
    con = open_lake(str(tmp_path / "no-data-yet"))
    tables = {
        "daily": queries.daily(con),
        "hourly": queries.hourly(con),
        "apps": queries.apps(con),
        "languages": queries.languages(con),
        "length_by_language": queries.length_by_language(con),
        "instances": queries.instances(con),
        "hashtags": queries.hashtags(con),
        "terms": queries.terms(con),
    }
    assert set(tables) == set(charts.CHARTS)
    for name, plot in charts.CHARTS.items():
        assert charts.figure_to_svg(plot(tables[name])).startswith("<svg ")


# ----------------------------------------------------------------------------------------
# SVG for HTML


def test_figure_to_svg_is_an_inline_element_with_a_label(small_con):
    svg = charts.figure_to_svg(charts.plot_apps(queries.apps(small_con)))
    assert svg.startswith('<svg class="chart" role="img" aria-label="Which apps people post from" ')
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg
    assert "<text" in svg  # text stays text (svg.fonttype none)


def test_figure_to_svg_escapes_hostile_labels():
    hostile = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "--><!--x"]
    fig = charts.plot_apps(pa.table({"app": hostile, "posts": [3, 2, 1]}))
    svg = charts.figure_to_svg(fig, label='"><script>')
    assert "<script" not in svg and "<img" not in svg and "<!--x" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "&gt;&lt;img src=x onerror=alert(1)&gt;" in svg
    assert 'aria-label="&quot;&gt;&lt;script&gt;"' in svg


@pytest.mark.parametrize(
    "svg",
    [
        '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg"><foreignObject/></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<use xlink:href="https://evil.example/x.svg#a"/></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg"><path style="fill: url(https://evil.example/)"/></svg>',
    ],
)
def test_the_svg_check_refuses_anything_but_drawing(svg):
    with pytest.raises(charts.UnsafeSvg):
        charts._check_svg(svg)


def test_a_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependency, match=r'pip install "tootlake\[report\]"'):
        charts.plot_apps(pa.table({"app": ["Web"], "posts": [1]}))
