"""Each chart of a known table: its title, axis labels, and the artists that carry the data
(one bar per row or hour, one line per term, one box per language, one cell per day and hour),
round tick steps, and the posts each chart is drawn from."""

from __future__ import annotations

import math
import re
import sys
from datetime import date, timedelta

import pyarrow as pa
import pytest

from tootlake.analysis import charts, open_lake, queries
from tootlake.analysis.report import build_report
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


def subtitle(fig):
    return " ".join(t.get_text() for t in fig.texts).replace("\n", " ")


def gridded(axis):
    return any(line.get_visible() for line in axis.get_gridlines())


def tick_steps(axis):
    ticks = [t for t in axis.get_majorticklocs() if axis.get_view_interval()[0] <= t]
    return {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}


def is_round(step):
    """1, 2, 2.5 or 5 times a power of ten."""
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5, 10))


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
    assert charts.posts_behind(fig) == "3 posts"


@pytest.mark.parametrize("largest", [1300, 700, 60, 36, 17, 5])
def test_count_axes_step_by_round_numbers_and_bars_have_labels_not_gridlines(largest):
    # MaxNLocator's default steps gave 150, 80 and 8 for these
    fig = charts.plot_apps(pa.table({"app": ["a", "b"], "posts": [largest, largest // 3]}))
    ax = only_axes(fig)
    steps = tick_steps(ax.xaxis)
    assert steps and all(is_round(step) and step == int(step) for step in steps), steps
    assert not gridded(ax.xaxis) and not gridded(ax.yaxis)
    assert f"{largest:,}" in texts(fig)  # the bar's own label carries the number


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
    assert charts.posts_behind(fig) == "6 posts"


def test_languages_chart_shows_the_top_20():
    table = pa.table(
        {
            "language": [f"l{i}" for i in range(30)],
            "language_name": [f"Language {i}" for i in range(30)],
            "posts": list(range(300, 0, -10)),
        }
    )
    assert len(bars(only_axes(charts.plot_languages(table)))) == 20


def lengths(**columns):
    names = {"en": "English", "ja": "Japanese", "eo": "Esperanto", "cy": "Welsh"}
    codes = columns.pop("language")
    return pa.table({"language": codes, "language_name": [names[c] for c in codes], **columns})


def test_length_by_language_draws_percentile_boxes_on_a_true_log_axis():
    table = lengths(
        language=["en", "ja", "eo", "cy"],
        posts=[1200, 300, 3, 1],
        min=[0, 2, 40, 9000],
        p5=[0.0, 6.0, 41.0, 9000.0],
        q1=[60.0, 20.0, 50.0, 9000.0],
        median=[120.0, 40.0, 900.0, 9000.0],
        q3=[220.0, 80.0, 950.0, 9000.0],
        p95=[700.0, 300.0, 990.0, 9000.0],
        max=[68991, 900, 1000, 9000],
        all_languages=[7, 7, 7, 7],
    )
    fig = charts.plot_length_by_language(table)
    ax = only_axes(fig)
    assert title(fig) == "How long posts are, by language"
    assert ax.get_xscale() == "log"  # not symlog: no 0 on the axis
    assert ax.get_xlabel() == (
        "Post length (characters, logarithmic scale; posts without text at 1)"
    )
    low, high = ax.get_xlim()
    shown = [
        label.get_text()
        for tick, label in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True)
        if low <= tick <= high
    ]
    assert low == 1 and shown == ["1", "10", "100", "1,000"]  # no 0 tick
    # Esperanto (3 posts) and Welsh (1) are left out, whatever their medians; the lake's
    # 7 languages less the 2 drawn are counted
    assert [t.get_text() for t in ax.get_yticklabels()] == ["English (1,200)", "Japanese (300)"]
    assert "5 other languages with fewer posts left out." in subtitle(fig)
    assert "Languages with at least 20 posts" in subtitle(fig)
    assert "whiskers: 5th to 95th percentile" in subtitle(fig)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["middle half (25th–75th pct.)", "median", "5th to 95th percentile"]
    from matplotlib.patches import PathPatch

    assert len([p for p in ax.patches if isinstance(p, PathPatch)]) == 2
    # whiskers at p5 and p95 (an empty p5 drawn at 1), never at the shortest or longest post
    xs = {float(x) for line in ax.lines for x in line.get_xdata()}
    assert {1.0, 6.0, 700.0, 300.0, 40.0, 120.0} <= xs
    assert not {0.0, 2.0, 900.0, 68991.0} & xs
    assert charts.posts_behind(fig) == "1,500 posts"


def test_length_by_language_without_percentiles_says_its_whiskers_are_min_and_max():
    table = lengths(
        language=["en"], posts=[50], min=[3], q1=[60.0], median=[120.0], q3=[220.0], max=[5000]
    )
    fig = charts.plot_length_by_language(table)
    xs = {float(x) for line in only_axes(fig).lines for x in line.get_xdata()}
    assert {3.0, 5000.0} <= xs
    assert "whiskers: shortest to longest post" in subtitle(fig)
    assert "left out" not in subtitle(fig)


def test_length_by_language_of_the_small_lake(small_con):
    table = queries.length_by_language(small_con, percentiles=True)
    assert table.column_names == [
        "language", "language_name", "posts", "min", "p5", "q1", "median", "q3", "p95", "max",
        "all_languages",
    ]  # fmt: skip
    # en: 16, 16, 19, 28 -> p5 16, p95 26.65 (interpolated); 2 languages in the lake
    en = table.slice(0, 1).to_pylist()[0]
    assert (en["p5"], en["p95"], en["all_languages"]) == (16.0, pytest.approx(26.65), 2)
    fig = charts.plot_length_by_language(table)
    assert "No language with at least 20 posts yet" in texts(fig)
    assert "2 other languages with fewer posts left out." in subtitle(fig)
    labels = [
        t.get_text()
        for t in only_axes(charts.plot_length_by_language(table, min_posts=1)).get_yticklabels()
    ]
    assert labels == ["English (4)", "Japanese (1)"]  # longest median first


def test_daily_chart_has_a_bar_per_day(small_con):
    fig = charts.plot_daily(queries.daily(small_con))
    ax = only_axes(fig)
    assert title(fig) == "Posts per day"
    assert ax.get_xlabel() == "Day (UTC)"
    assert ax.get_ylabel() == "Posts per day"
    assert [b.get_height() for b in bars(ax)] == [2, 4]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Fri\n3 Feb", "Sat\n4 Feb"]
    assert not gridded(ax.yaxis)  # the bars are labelled
    assert charts.posts_behind(fig) == "6 posts"


def test_daily_chart_of_many_days_has_gridlines_instead_of_labels():
    days = [(date(2023, 2, 1) + timedelta(days=d)).isoformat() for d in range(40)]
    ax = only_axes(charts.plot_daily(pa.table({"day": days, "posts": [150] * 40})))
    assert gridded(ax.yaxis) and not ax.texts  # no bar labels
    assert all(is_round(step) for step in tick_steps(ax.yaxis))


def test_hourly_chart_of_two_days_shows_each_hours_share_of_the_posts(small_con):
    fig = charts.plot_hourly(queries.hourly(small_con))
    (ax,) = fig.axes  # no heatmap under three days
    assert title(fig) == "When people post: hour of day (UTC)"
    assert ax.get_xlabel() == "Hour of day (UTC)"
    assert ax.get_ylabel() == "Share of posts"
    shares = [b.get_height() for b in bars(ax)]
    assert len(shares) == 24 and sum(shares) == pytest.approx(100)
    # 6 posts: 10:00, 11:00, 9:00 twice, 12:00, 23:00
    assert shares[9] == pytest.approx(100 / 3) and shares[10] == pytest.approx(100 / 6)
    assert [b.get_x() + b.get_width() / 2 for b in bars(ax)][:2] == [0.5, 1.5]
    assert ax.get_xlim() == (0, 24)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:3] == ["00:00", "03:00", "06:00"] and labels[-1] == "24:00"
    assert all(t.get_text().endswith("%") for t in ax.get_yticklabels() if t.get_text())
    assert all(is_round(step) for step in tick_steps(ax.yaxis))
    assert gridded(ax.yaxis)  # 24 unlabelled bars
    assert "posts written from Fri 3 Feb 2023 to Sat 4 Feb 2023 (UTC)" in subtitle(fig)
    assert charts.posts_behind(fig) == "6 posts"


def test_hourly_chart_of_one_day_names_the_day():
    table = pa.table({"day": ["2025-12-03"], "hour": [14], "posts": [1903]})
    fig = charts.plot_hourly(table)
    assert [round(b.get_height()) for b in bars(only_axes(fig))][13:16] == [0, 100, 0]
    assert "Each hour's share of the 1,903 posts written on Wed 3 Dec 2025 (UTC)" in (subtitle(fig))


def test_hourly_chart_of_many_days_adds_a_day_by_hour_heatmap():
    start = date(2023, 3, 1)
    rows = [
        ((start + timedelta(days=d)).isoformat(), h, 500 if d == 40 and h == 15 else 10)
        for d in range(60)
        if d not in (20, 21)  # collection was down
        for h in range(24)
    ]
    days, hours, posts = (list(column) for column in zip(*rows, strict=True))
    fig = charts.plot_hourly(pa.table({"day": days, "hour": hours, "posts": posts}))
    heat, shares, colorbar = fig.axes
    (image,) = heat.images
    cells = image.get_array()
    assert cells.shape == (60, 24)  # a row a calendar day, a column an hour
    assert cells.mask[20].all() and cells.mask[21].all()  # no posts: grey, not 0
    assert cells[0, 0] == 10 and cells[40, 15] == 500
    assert heat.get_ylabel() == "Day (UTC)" and colorbar.get_ylabel() == "Posts per hour"
    # the spike does not set the colours: they stop at the 98th percentile, and say so
    assert image.norm.vmax == 10
    assert "colours stop at 10 posts an hour, the busiest had 500" in subtitle(fig)
    assert "60 days, Wed 1 Mar 2023 to Sat 29 Apr 2023" in subtitle(fig)
    assert [t.get_text() for t in heat.get_yticklabels()][:2] == ["1 Mar", "8 Mar"]
    # the shares below, on the same hours
    assert shares.get_xlabel() == "Hour of day (UTC)" and shares.get_xlim() == (0, 24)
    total = 58 * 24 * 10 + 490
    assert bars(shares)[15].get_height() == pytest.approx(100 * (58 * 10 + 490) / total)
    assert charts.posts_behind(fig) == f"{total:,} posts"
    svg = charts.figure_to_svg(fig)
    assert re.search(r'<image xlink:href="data:image/png;base64,[^"]+" id="\w+" width="24" '
                     r'height="60"', svg)  # fmt: skip


def test_instances_chart(small_con):
    fig = charts.plot_instances(queries.instances(small_con))
    ax = only_axes(fig)
    assert title(fig) == "Instances sharing the most posts"
    assert ax.get_ylabel() == "Instance"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a.example", "c.example"]
    assert [b.get_width() for b in bars(ax)] == [4, 2]
    assert "4  (3 people)" in texts(fig) and "2  (1 person)" in texts(fig)
    assert charts.posts_behind(fig) == "6 posts"


def test_hashtags_chart(small_con):
    fig = charts.plot_hashtags(queries.hashtags(small_con))
    ax = only_axes(fig)
    assert title(fig) == "Top hashtags"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["#chatgpt"]
    assert [b.get_width() for b in bars(ax)] == [1]
    assert charts.posts_behind(fig) == "1 post (a post with two of these hashtags counts twice)"


def test_terms_chart_draws_a_line_per_term_with_zero_days_filled(small_con):
    table = queries.terms(small_con, queries.TALK_TERMS)
    days = queries.daily(small_con).column("day").to_pylist()
    fig = charts.plot_terms(table, days=days)  # the words come with the table
    ax = only_axes(fig)
    assert title(fig) == "Terms over time: posts per day"
    assert ax.get_ylabel() == "Posts mentioning the term"
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert lines == {
        "balloon": [1, 0],
        "earthquake": [0, 2],
        "superbowl": [0, 0],
        "chatgpt": [1, 0],
    }
    assert "Posts mentioning balloon, earthquake, superbowl, chatgpt" in subtitle(fig)
    assert charts.posts_behind(fig) == "4 posts (a post mentioning two terms counts twice)"


def test_the_reports_terms_are_the_lakes_top_hashtags_unless_chosen(small_con):
    fig = charts.plot_terms(build_report(con=small_con)["terms"])
    ax = only_axes(fig)
    assert {line.get_label(): list(line.get_ydata()) for line in ax.lines} == {"#chatgpt": [1]}
    assert "Posts mentioning the lake's most used hashtag" in subtitle(fig)
    assert ax.get_legend().get_title().get_text() == "Hashtag"
    chosen = charts.plot_terms(build_report(con=small_con, terms=["Balloon", "#zeppelin"])["terms"])
    labels = [line.get_label() for line in only_axes(chosen).lines]
    assert labels == ["balloon", "zeppelin"]  # as matched; the unmentioned one drawn flat
    talk = build_report(con=small_con, terms=queries.TALK_TERMS)["terms"]
    assert sorted(set(talk.column("term").to_pylist())) == ["balloon", "chatgpt", "earthquake"]


def test_terms_chart_leaves_a_gap_on_days_without_any_post():
    days = ["2023-03-01", "2023-03-02", "2023-03-04"]  # nothing at all on 3 March
    table = pa.table({"day": ["2023-03-01", "2023-03-04"], "term": ["x", "x"], "posts": [2, 3]})
    (line,) = only_axes(charts.plot_terms(table, days=days)).lines
    values = list(line.get_ydata())
    assert values[:2] == [2, 0] and math.isnan(values[2]) and values[3] == 3


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
    assert charts.posts_behind(fig).startswith("0 posts")


def test_every_chart_of_the_empty_lake_renders(tmp_path):
    (tmp_path / "no-data-yet").mkdir()
    con = open_lake(str(tmp_path / "no-data-yet"))
    tables = {
        "daily": queries.daily(con),
        "hourly": queries.hourly(con),
        "apps": queries.apps(con),
        "languages": queries.languages(con),
        "length_by_language": queries.length_by_language(con, percentiles=True),
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
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<image xlink:href="https://evil.example/x.png"/></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<image xlink:href="data:image/svg+xml;base64,PHN2Zz4="/></svg>',
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<image xlink:href="data:image/png;base64,iVBO&quot;)"/></svg>',
    ],
)
def test_the_svg_check_refuses_anything_but_drawing(svg):
    with pytest.raises(charts.UnsafeSvg):
        charts._check_svg(svg)


def test_the_svg_check_allows_an_inline_png_image():
    charts._check_svg(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<image width="24" height="3" xlink:href="data:image/png;base64,\niVBORw0K+/="/></svg>'
    )


def test_a_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependency, match=r'pip install -e "\.\[report\]"'):
        charts.plot_apps(pa.table({"app": ["Web"], "posts": [1]}))
