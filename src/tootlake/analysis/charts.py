"""Charts of the report: one function per chart, each taking the pyarrow Table of its query
(`tootlake.analysis.queries`) and returning a matplotlib Figure; `figure_to_svg()` turns one
into an SVG element to inline in a page.

    plot_daily(daily(con))                      posts per day
    plot_hourly(hourly(con))                    share of posts per hour of day; over several
                                                days, a day x hour heatmap above it
    plot_apps(apps(con))                        client apps of people's local posts
    plot_languages(languages(con))              posts per language (English names)
    plot_length_by_language(length_by_language(con, percentiles=True))
                                                box plot of post length per language
    plot_instances(instances(con))              instances whose people posted the most
    plot_hashtags(hashtags(con))                most used hashtags
    plot_terms(build_report(...)["terms"])      posts per day mentioning each term

`posts_behind(fig)` says how many posts a chart was drawn from ("1,234 posts"), for a caption.
Days and hours are in the time zone their query was asked for (UTC unless `tz=` chose another,
kept as the table's `queries.TZ_KEY` metadata), and every time axis says which.

Figures are built with the object-oriented API on the Agg canvas, never pyplot: no global
figure registry, no GUI backend, nothing to close. Style (Okabe-Ito colours, which stay apart
for colour-blind readers and in greyscale print; thousands separators; sizes readable on a
laptop and on paper) is applied per figure, under a lock, so a server may draw from threads.

Text from the fediverse (app names, hashtags, instance names) reaches the SVG as text
content, which matplotlib escapes; `figure_to_svg()` also checks the markup it returns
(elements and attributes from an allow-list only), so a chart can be inlined in HTML.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from tootlake.analysis.queries import TZ_KEY
from tootlake.errors import MissingDependency
from tootlake.text import shorten

if TYPE_CHECKING:
    import pyarrow as pa
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "CHARTS",
    "PALETTE",
    "check_svg",
    "figure_to_svg",
    "plot_apps",
    "plot_daily",
    "plot_hashtags",
    "plot_hourly",
    "plot_instances",
    "plot_languages",
    "plot_length_by_language",
    "plot_terms",
    "posts_behind",
]

# Okabe & Ito (2008), "Color Universal Design": distinguishable with any colour vision.
# Yellow is last: it is hard to see as a thin line on white.
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#000000",  # black
    "#F0E442",  # yellow
)
_BAR = PALETTE[0]
_MUTED = "#999999"
_TEXT = "#222222"
_SUBTLE = "#555555"
_WIDTH = 9.0  # inches; at 100 dpi a chart is 900 px wide, scaled down to fit a page
_LABEL_CHARS = 38  # longer category labels are cut with an ellipsis (the tables keep them)
_SUBTITLE_CHARS = 104
# Round steps only: 150, 80 or 8 between ticks make a reader do sums.
_STEPS = [1, 2, 2.5, 5, 10]
HEATMAP_DAYS = 3  # from this many calendar days on, the hour-of-day chart adds a heatmap
# Days a heatmap row or a terms line is drawn for, at most: collected posts span 2000 to now,
# but a lake written otherwise (Kafka) may hold the years 1 and 9999 (3.6M days: gigabytes).
MAX_CALENDAR_DAYS = 40 * 366
LENGTH_MIN_POSTS = 20  # fewer posts than this make a box of noise: the language is left out

_STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.titlelocation": "left",
    "axes.titlecolor": _SUBTLE,
    "axes.labelsize": 11,
    "axes.labelcolor": _TEXT,
    "axes.edgecolor": "#888888",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "axes.grid": False,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.8,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "xtick.color": _TEXT,
    "ytick.color": _TEXT,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "figure.titlesize": 15,
    "figure.titleweight": "bold",
    "figure.dpi": 100,
    "figure.facecolor": "white",
    "savefig.dpi": 100,
    "savefig.facecolor": "white",
    "svg.fonttype": "none",  # text stays text: small, selectable, searchable, escaped
    "svg.hashsalt": "tootlake",  # stable ids between runs
}

# pyplot is never used, but matplotlib's global rcParams are: one figure at a time.
_LOCK = threading.RLock()


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingDependency("matplotlib", "report") from exc
    return matplotlib


@contextmanager
def _styled() -> Iterator[None]:
    matplotlib = _matplotlib()
    from cycler import cycler

    style = {**_STYLE, "axes.prop_cycle": cycler(color=PALETTE)}
    with _LOCK, matplotlib.rc_context(style), warnings.catch_warnings():
        # Post text may use scripts no installed font has (CJK, emoji): the browser draws
        # SVG text with its own fonts; only matplotlib's layout estimate suffers.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support")
        yield


def _new_figure(height: float, width: float = _WIDTH) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _titled(fig: Figure, ax: Axes, title: str, subtitle: str) -> None:
    """A bold title and a grey subtitle, both from the figure's left edge. The suptitle holds
    blank lines for the subtitle, so that the layout keeps room for both."""
    import math
    import textwrap

    from matplotlib.transforms import offset_copy

    lines = [
        wrapped for line in subtitle.split("\n") for wrapped in textwrap.wrap(line, _SUBTITLE_CHARS)
    ]
    title_size = _STYLE["figure.titlesize"]
    blank = math.ceil((len(lines) * _STYLE["font.size"] * 1.25 + 4) / (title_size * 1.2))
    # y left to the layout, which puts the title's top 3 pt (its h_pad) below the figure's
    fig.suptitle(title + "\n" * blank, x=0.01, ha="left", color=_TEXT)
    fig.set_label(title)
    if lines:
        below_title = offset_copy(
            fig.transFigure, fig=fig, y=-(title_size * 1.2 + 6), units="points"
        )
        fig.text(
            0.01,
            1.0,
            "\n".join(lines),
            transform=below_title,
            ha="left",
            va="top",
            color=_SUBTLE,
            linespacing=1.25,
        )


def _thousands(value: float, _pos: Any = None) -> str:
    return f"{value:,.0f}"


def _count_axis(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins="auto", steps=_STEPS, integer=True))
    axis.set_major_formatter(FuncFormatter(_thousands))


# How many posts each figure was drawn from: a Figure has no slot for it, and a weak key lets
# the figure go when its caller drops it.
_POSTS: weakref.WeakKeyDictionary[Figure, str] = weakref.WeakKeyDictionary()


def _behind(fig: Figure, posts: int, detail: str = "") -> None:
    _POSTS[fig] = f"{posts:,} post{'' if posts == 1 else 's'}{detail}"


def posts_behind(fig: Figure) -> str | None:
    """How many posts a chart of this module was drawn from, as a caption ("1,234 posts", with
    what they are when it is not plain); None for another figure."""
    return _POSTS.get(fig)


# What XML 1.0 cannot hold (C0 controls, lone surrogates, U+FFFE/F): matplotlib writes label
# text into the SVG as is, and one such character made the whole page fail check_svg().
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _cut(text: object, limit: int = _LABEL_CHARS) -> str:
    """A label: `shorten`ed, with what XML cannot hold replaced."""
    return shorten(None if text is None else NOT_XML.sub("\ufffd", str(text)), limit)


def _empty(fig: Figure, ax: Axes, message: str) -> None:
    ax.set_axis_off()
    ax.text(
        0.5,
        0.5,
        message,
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=12,
        color=_SUBTLE,
    )


def _columns(table: pa.Table, *names: str) -> list[list[Any]]:
    return [table.column(name).to_pylist() for name in names]


# ----------------------------------------------------------------------------------------
# bar charts of counted categories


def _barh(
    labels: Sequence[str],
    values: Sequence[int],
    *,
    title: str,
    subtitle: str,
    xlabel: str,
    ylabel: str,
    notes: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    empty: str = "No posts yet",
) -> Figure:
    """Horizontal bars, largest on top, each labelled with its count (so no gridlines: they
    would repeat the labels). The posts behind the chart are those of the bars drawn."""
    with _styled():
        n = len(labels)
        fig = _new_figure(height=max(3.2, 1.7 + 0.34 * n))
        _behind(fig, sum(values))
        ax = fig.subplots()
        _titled(fig, ax, title, subtitle)
        if not n:
            _empty(fig, ax, empty)
            return fig
        positions = list(range(n))
        bars = ax.barh(positions, values, color=colors or _BAR, height=0.7)
        ax.set_yticks(positions, [_cut(label) for label in labels])
        ax.invert_yaxis()
        notes = notes or [f"{v:,}" for v in values]
        ax.bar_label(bars, labels=notes, padding=3, fontsize=9.5, color=_TEXT)
        # room for the longest label after the longest bar
        ax.set_xlim(0, max(max(values), 1) * (1.06 + 0.012 * max(map(len, notes))))
        _count_axis(ax.xaxis)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        return fig


def plot_apps(table: pa.Table, *, top: int = 15) -> Figure:
    """Client apps of people's posts (`queries.apps`): the `top` apps as horizontal bars."""
    apps, posts = _columns(table, "app", "posts")
    rest = len(apps) - top
    subtitle = (
        "Posts by people (not bots), counted where written: only the home server knows the app"
    )
    if rest > 0:
        subtitle += (
            f"\nTop {top} of {len(apps):,} apps; the other {rest:,} have {sum(posts[top:]):,} posts"
        )
    fig = _barh(
        apps[:top],
        posts[:top],
        title="Which apps people post from",
        subtitle=subtitle,
        xlabel="Posts (count)",
        ylabel="Client app",
        empty="No local posts by people: no app is known",
    )
    _behind(fig, sum(posts))  # the apps not drawn too: the subtitle counts them
    return fig


def plot_languages(table: pa.Table, *, top: int = 20) -> Figure:
    """Posts per language (`queries.languages`), by English name; 'Unknown' in grey."""
    names, posts = _columns(table, "language_name", "posts")
    total = sum(posts)
    subtitle = "As tagged by each post's client (often its default language); Unknown: no tag"
    if len(names) > top:
        subtitle += f"\nTop {top} of {len(names):,} languages"
    notes = [f"{p:,} ({p / total:.1%})" for p in posts[:top]] if total else None
    colors = [_MUTED if name == "Unknown" else _BAR for name in names[:top]]
    fig = _barh(
        names[:top],
        posts[:top],
        title="Languages of posts",
        subtitle=subtitle,
        xlabel="Posts (count)",
        ylabel="Language",
        notes=notes,
        colors=colors,
    )
    _behind(fig, total)  # the shares are of every post
    return fig


def plot_instances(table: pa.Table, *, top: int = 20) -> Figure:
    """Instances whose people wrote the most posts (`queries.instances`)."""
    origins, posts, users = _columns(table, "origin", "posts", "users")
    notes = [
        f"{p:,}  ({u:,} {'person' if u == 1 else 'people'})"
        for p, u in zip(posts, users, strict=True)
    ]
    return _barh(
        origins[:top],
        posts[:top],
        title="Instances sharing the most posts",
        subtitle="Posts per author's home server, wherever they were collected "
        "(authors in brackets)",
        xlabel="Posts (count)",
        ylabel="Instance",
        notes=notes[:top],
    )


def plot_hashtags(table: pa.Table, *, top: int = 20) -> Figure:
    """The most used hashtags (`queries.hashtags`)."""
    tags, posts, users = _columns(table, "tag", "posts", "users")
    notes = [
        f"{p:,}  ({u:,} {'person' if u == 1 else 'people'})"
        for p, u in zip(posts, users, strict=True)
    ]
    fig = _barh(
        [f"#{tag}" for tag in tags[:top]],
        posts[:top],
        title="Top hashtags",
        subtitle="Posts using each hashtag (authors in brackets)",
        xlabel="Posts (count)",
        ylabel="Hashtag",
        notes=notes[:top],
        empty="No hashtags yet",
    )
    _behind(fig, sum(posts[:top]), " (a post with two of these hashtags counts twice)")
    return fig


# ----------------------------------------------------------------------------------------
# box plot


def plot_length_by_language(
    table: pa.Table, *, top: int = 20, min_posts: int = LENGTH_MIN_POSTS
) -> Figure:
    """Post length per language (`queries.length_by_language(con, percentiles=True)`) as a box
    plot drawn from the precomputed figures (`bxp`): no post is loaded. Box: 25th to 75th
    percentile; bar: median; whiskers: 5th to 95th percentile (a table without p5 and p95,
    from `percentiles=False`, gets whiskers from the shortest to the longest post, and says
    so). Only the `top` languages with at least `min_posts` posts are drawn, longest median on
    top; the subtitle counts the others. The axis is logarithmic from 1 character."""
    columns = set(table.column_names)
    percentiles = {"p5", "p95"} <= columns
    low, high = ("p5", "p95") if percentiles else ("min", "max")
    names, posts, lows, q1s, medians, q3s, highs = _columns(
        table, "language_name", "posts", low, "q1", "median", "q3", high
    )
    ranked = sorted(
        zip(names, posts, lows, q1s, medians, q3s, highs, strict=True),
        key=lambda r: (-r[1], str(r[0])),
    )
    rows = sorted(
        [r for r in ranked if r[1] >= min_posts][:top],
        key=lambda r: (-(r[4] or 0), -r[1], str(r[0])),
    )
    languages = len(names)
    if "all_languages" in columns and names:
        languages = max(languages, int(table.column("all_languages")[0].as_py()))
    left_out = languages - len(rows)
    whiskers = "5th to 95th percentile" if percentiles else "shortest to longest post"
    with _styled():
        fig = _new_figure(height=max(3.6, 2.3 + 0.36 * len(rows)))
        _behind(fig, sum(r[1] for r in rows))
        ax = fig.subplots()
        chosen = f" (the {top} with the most posts)" if len(rows) == top else ""
        subtitle = (
            f"Languages with at least {min_posts:,} posts{chosen}, longest median first; "
            "posts per language in brackets. Box: middle half of the posts (25th to 75th "
            f"percentile); bar: median; whiskers: {whiskers}."
        )
        if left_out:
            subtitle += (
                f"\n{left_out:,} other language{'' if left_out == 1 else 's'} with fewer posts "
                "left out."
            )
        _titled(fig, ax, "How long posts are, by language", subtitle)
        if not rows:
            _empty(fig, ax, f"No language with at least {min_posts:,} posts yet")
            return fig

        def drawn(value: Any) -> float:
            return max(1.0, float(value or 0))  # a log axis has no 0: posts without text sit at 1

        stats: list[dict[str, Any]] = [
            {
                "label": f"{_cut(name, 28)} ({n:,})",
                "whislo": drawn(lo),
                "q1": drawn(q1),
                "med": drawn(med),
                "q3": drawn(q3),
                "whishi": drawn(hi),
                "fliers": [],
            }
            for name, n, lo, q1, med, q3, hi in rows
        ]
        box_style: dict[str, Any] = {"facecolor": "#BFE0F5", "edgecolor": _BAR, "linewidth": 1.2}
        median_style: dict[str, Any] = {"color": PALETTE[5], "linewidth": 2.2}
        whisker_style: dict[str, Any] = {"color": _BAR, "linewidth": 1}
        ax.bxp(
            stats,
            orientation="horizontal",
            widths=0.6,
            patch_artist=True,
            showfliers=False,
            boxprops=box_style,
            medianprops=median_style,
            whiskerprops=whisker_style,
            capprops=whisker_style,
        )
        ax.invert_yaxis()
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        # Lengths run from a few characters to thousands around a median near 100: only a
        # log scale keeps every box readable. A true one, from 1: no 0 tick on a log axis.
        longest = max(10.0, max(s["whishi"] for s in stats))
        ax.set_xscale("log")
        ax.set_xlim(1, 10 ** math.ceil(math.log10(longest * 1.2)))
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10))))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(axis="x", which="major")  # no labels on the boxes: the grid reads them off
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel("Post length (characters, logarithmic scale; posts without text at 1)")
        ax.set_ylabel("Language (posts)")
        ax.legend(
            handles=[
                Patch(**box_style, label="middle half (25th–75th pct.)"),
                Line2D([], [], **median_style, label="median"),
                Line2D([], [], **whisker_style, marker="|", markersize=10, label=whiskers),
            ],
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            title="Length",
            alignment="left",
        )
        return fig


# ----------------------------------------------------------------------------------------
# time series


def _to_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    text = str(value)
    # a time zone moves the year 1 to 0 and 9999 to 10000 (DuckDB has them, Python not)
    if text.startswith("0000-") or text.startswith("-"):
        return date.min
    if len(text.split("-", 1)[0]) > 4:
        return date.max
    return date.fromisoformat(text[:10])


def _date_numbers(days: Sequence[date]) -> list[float]:
    import matplotlib.dates as mdates

    return [float(mdates.date2num(day)) for day in days]


def _date_axis(axis: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    axis.set_major_locator(locator)
    axis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=True))


def _dates_in_range(ax: Axes) -> None:
    """Autoscaling pads a date axis by 5%: around the years 1 or 9999 that leaves the years
    matplotlib can name, and drawing raised. Clamped only then."""
    import matplotlib.dates as mdates

    low, high = ax.get_xlim()
    first, last = mdates.date2num(date.min), mdates.date2num(date.max)
    if low < first or high > last:
        ax.set_xlim(max(low, first), min(high, last))


def _zone(table: pa.Table) -> str:
    """The time zone of a table's days and hours (`queries.TZ_KEY`), UTC when it has none."""
    tz = (table.schema.metadata or {}).get(TZ_KEY)
    return tz.decode() if tz else "UTC"


def plot_daily(table: pa.Table) -> Figure:
    """Posts per day (`queries.daily`, in its time zone) as bars on a calendar axis: gaps
    stay visible."""
    days, posts = _columns(table, "day", "posts")
    zone = _zone(table)
    with _styled():
        fig = _new_figure(height=4.4)
        _behind(fig, sum(posts))
        ax = fig.subplots()
        subtitle = (
            f"Posts by the day they were written ({zone}); the first and last day may be partial"
        )
        _titled(fig, ax, "Posts per day", subtitle)
        if not days:
            _empty(fig, ax, "No posts yet")
            return fig
        dates = [_to_date(d) for d in days]
        span = (max(dates) - min(dates)).days + 1
        # a bar a day, but never thinner than a hair on a long, sparse axis
        x = _date_numbers(dates)
        bars = ax.bar(x, posts, width=max(0.8, span / 250), color=_BAR)
        if len(dates) <= 16:
            ax.bar_label(bars, labels=[f"{p:,}" for p in posts], padding=2, fontsize=9.5)
        else:  # unlabelled bars: gridlines to read them by
            ax.grid(axis="y")
        if len(dates) <= 16 and span <= 16:
            ax.set_xticks(x, [d.strftime("%a\n%-d %b") for d in dates])
        else:
            _date_axis(ax.xaxis)
        if span < 7:  # a few days: bars of a sensible width, not one slab across the plot
            pad = (7 - span) / 2
            ax.set_xlim(min(x) - 0.5 - pad, max(x) + 0.5 + pad)
        ax.set_ylim(0, max(max(posts), 1) * 1.12)
        _dates_in_range(ax)
        _count_axis(ax.yaxis)
        ax.set_xlabel(f"Day ({zone})")
        ax.set_ylabel("Posts per day")
        return fig


def _day_label(day: date) -> str:
    return day.strftime("%a %-d %b %Y")


def _period(first: date, last: date) -> str:
    if first == last:
        return _day_label(first)
    return f"{_day_label(first)} to {_day_label(last)}"


def plot_hourly(table: pa.Table, *, heatmap_days: int = HEATMAP_DAYS) -> Figure:
    """When posts were written (`queries.hourly`): each hour of the day's share (in the
    table's time zone) of the
    period's posts, as bars. When the posts span `heatmap_days` calendar days or more, a day x
    hour heatmap above the bars (darker: more posts) shows the days the shares are made of,
    so that one busy day stands out instead of bending the shares unseen. Its colours stop at
    the 98th percentile of the hours (seaborn's "robust" scale): a spike of a few hours does
    not wash out every other day."""
    days, hours, posts = _columns(table, "day", "hour", "posts")
    zone = _zone(table)
    per_day: dict[date, list[int]] = {}
    for day, hour, n in zip(days, hours, posts, strict=True):
        per_day.setdefault(_to_date(day), [0] * 24)[int(hour)] += n
    per_hour = [sum(counts[h] for counts in per_day.values()) for h in range(24)]
    total = sum(per_hour)
    first, last = (min(per_day), max(per_day)) if per_day else (None, None)
    span = (last - first).days + 1 if first and last else 0
    heatmap = heatmap_days <= span <= MAX_CALENDAR_DAYS  # (a row a day: memory grows with it)
    with _styled():
        heat_height = min(5.5, max(1.8, 0.16 * span))
        fig = _new_figure(height=(heat_height + 3.9) if heatmap else 4.6)
        _behind(fig, total)
        title = f"When people post: hour of day ({zone})"
        if not per_day or first is None or last is None:
            ax = fig.subplots()
            _titled(fig, ax, title, f"Each hour's share of the posts ({zone})")
            _empty(fig, ax, "No posts yet")
            return fig
        period = _period(first, last)
        if heatmap:
            grid = fig.add_gridspec(2, 2, width_ratios=[1, 0.022], height_ratios=[heat_height, 2])
            heat_ax = fig.add_subplot(grid[0, 0])
            ax = fig.add_subplot(grid[1, 0], sharex=heat_ax)
            note = _plot_heatmap(
                fig, heat_ax, fig.add_subplot(grid[0, 1]), per_day, first, span, zone
            )
            subtitle = (
                f"Top: posts in each hour of {span:,} days, {period} (darker: more; grey: no "
                f"posts that day{note}). Bottom: each hour's share of all {total:,} posts. "
                "The first and last day may be partial."
            )
        else:
            ax = fig.subplots()
            subtitle = f"Each hour's share of the {total:,} posts written on {period} ({zone})"
            if first != last:
                subtitle = (
                    f"Each hour's share of the {total:,} posts written from {period} ({zone})"
                )
        _titled(fig, ax, title, subtitle)
        shares = [100 * n / total for n in per_hour]
        ax.bar([h + 0.5 for h in range(24)], shares, width=0.8, color=_BAR)
        ax.set_xlim(0, 24)
        ax.set_xticks(range(0, 25, 3), [f"{h:02d}:00" for h in range(0, 25, 3)])
        ax.set_ylim(0, max(shares) * 1.1)
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=_STEPS))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}%"))
        ax.grid(axis="y")  # 24 bars carry no labels: the grid reads them off
        ax.set_xlabel(f"Hour of day ({zone})")
        ax.set_ylabel("Share of posts")
        return fig


def _plot_heatmap(
    fig: Figure,
    ax: Axes,
    cax: Axes,
    per_day: Mapping[date, list[int]],
    first: date,
    span: int,
    zone: str = "UTC",
) -> str:
    """Days (rows, the first on top) x hours (columns) of posts, with its colour bar in `cax`;
    returns a note on the colour scale for the subtitle ("" when it is not cut)."""
    import matplotlib.dates as mdates
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    calendar = [first + timedelta(days=i) for i in range(span)]
    # NaN, not 0, for a day without posts: it is drawn grey, as not collected may be the reason
    cells = np.array([per_day.get(day, [np.nan] * 24) for day in calendar], dtype=float)
    seen = cells[~np.isnan(cells)]
    busiest = float(seen.max())
    top = max(1.0, float(np.percentile(seen, 98)))
    cut = busiest > top
    cmap = colormaps["Blues"].with_extremes(bad="#d9d9d9")
    y0 = float(mdates.date2num(first))
    # an image of one pixel per cell (the SVG keeps it crisp); rows centred on their day
    image = ax.imshow(
        np.ma.masked_invalid(cells),
        cmap=cmap,
        norm=Normalize(0, top),
        aspect="auto",
        interpolation="none",
        extent=(0, 24, y0 + span - 0.5, y0 - 0.5),
    )
    if span <= 16:
        ax.set_yticks([y0 + i for i in range(span)], [d.strftime("%a %-d %b") for d in calendar])
    else:  # day and month at every tick (the subtitle has the years): no offset to look up
        ax.yaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=12))
        ax.yaxis.set_major_formatter(mdates.DateFormatter("%-d %b"))
    ax.tick_params(axis="x", labelbottom=False)
    ax.set_ylabel(f"Day ({zone})")
    bar = fig.colorbar(image, cax=cax, extend="max" if cut else "neither")
    _count_axis(bar.ax.yaxis)
    bar.set_label("Posts per hour")
    bar.outline.set_visible(False)
    if not cut:
        return ""
    return f"; colours stop at {top:,.0f} posts an hour, the busiest had {busiest:,.0f}"


def plot_terms(
    table: pa.Table, *, days: Sequence[Any] | None = None, terms: Sequence[str] | None = None
) -> Figure:
    """Posts per day mentioning each term (`queries.terms`), a line per term. Days without a
    mention count as zero, over `days` (e.g. the daily table's) or the table's own range;
    a day between `days` that is not one of them (no post at all: collection was down, most
    likely) is a gap in the lines, not a zero.
    Terms never mentioned get a flat line too: `terms`, else the words the table was asked
    for (its metadata); when `build_report()` chose the lake's top hashtags, the subtitle
    says so."""
    from tootlake.analysis.queries import TERMS_FROM_KEY, TERMS_KEY

    rows_days, rows_terms, posts = _columns(table, "day", "term", "posts")
    metadata = table.schema.metadata or {}
    if terms is None and TERMS_KEY in metadata:
        terms = [str(term) for term in json.loads(metadata[TERMS_KEY])]
    hashtags = metadata.get(TERMS_FROM_KEY) == b"hashtags"
    counts: dict[str, dict[date, int]] = {t: {} for t in terms or ()}
    for day, term, n in zip(rows_days, rows_terms, posts, strict=True):
        counts.setdefault(str(term), {})[_to_date(day)] = n
    seen = sorted({_to_date(d) for d in list(rows_days) + list(days or ())})
    axis: list[date] = []
    if seen and (seen[-1] - seen[0]).days < MAX_CALENDAR_DAYS:
        axis = [seen[0] + timedelta(days=i) for i in range((seen[-1] - seen[0]).days + 1)]
    elif seen:  # centuries: the days seen and their neighbours draw the same zeros and gaps
        near = set(seen)
        for d in seen:
            if d > seen[0]:
                near.add(d - timedelta(days=1))
            if d < seen[-1]:
                near.add(d + timedelta(days=1))
        axis = sorted(near)
    with _styled():
        fig = _new_figure(height=4.6)
        _behind(fig, sum(posts), " (a post mentioning two terms counts twice)")
        ax = fig.subplots()
        names = ", ".join(counts) or "the terms"
        subtitle = f"Posts mentioning {_cut(names, 80)} (word or hashtag, any case)"
        if hashtags:
            which = "most used hashtag" if len(counts) == 1 else f"{len(counts)} most used hashtags"
            subtitle = f"Posts mentioning the lake's {which} (as word or hashtag, any case)"
        _titled(fig, ax, "Terms over time: posts per day", subtitle)
        if hashtags and not counts:
            _empty(fig, ax, "No hashtags in the lake yet: no terms to follow")
            return fig
        if not rows_days:
            _empty(fig, ax, f"No post mentions {_cut(names, 80)}")
            return fig
        colors = PALETTE[:7]
        posted = {_to_date(d) for d in list(rows_days) + list(days or ())} if days else None
        for i, (term, by_day) in enumerate(counts.items()):
            values = [by_day.get(d, 0) if posted is None or d in posted else math.nan for d in axis]
            marker = "o" if len(axis) <= 31 else None
            style = "-" if i < len(colors) else "--"
            ax.plot(
                _date_numbers(axis),
                values,
                style,
                color=colors[i % len(colors)],
                linewidth=2,
                marker=marker,
                markersize=4,
                label=_cut(f"#{term}" if hashtags else term, 30),
            )
        if len(axis) <= 16 and (axis[-1] - axis[0]).days < 16:
            ax.set_xticks(_date_numbers(axis), [d.strftime("%a\n%-d %b") for d in axis])
        else:
            _date_axis(ax.xaxis)
        _dates_in_range(ax)
        ax.set_ylim(0, max(1, max(posts)) * 1.12)
        _count_axis(ax.yaxis)
        ax.grid(axis="y")
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            title="Hashtag" if hashtags else "Term",
            alignment="left",
        )
        ax.set_xlabel(f"Day ({_zone(table)})")
        ax.set_ylabel("Posts mentioning the term")
        return fig


# The report's charts: section of `build_report()` (or extra query) -> chart function.
CHARTS: Mapping[str, Callable[..., Figure]] = {
    "daily": plot_daily,
    "hourly": plot_hourly,
    "apps": plot_apps,
    "languages": plot_languages,
    "length_by_language": plot_length_by_language,
    "instances": plot_instances,
    "hashtags": plot_hashtags,
    "terms": plot_terms,
}


# ----------------------------------------------------------------------------------------
# SVG for inlining in HTML

_SVG = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
# What matplotlib's SVG backend writes for the charts above; anything else is refused.
_ALLOWED_ELEMENTS = frozenset(
    _SVG + name
    for name in (
        "svg",
        "g",
        "defs",
        "style",
        "path",
        "clipPath",
        "rect",
        "use",
        "text",
        "tspan",
        "title",
        "desc",
        "circle",
        "ellipse",
        "line",
        "polyline",
        "polygon",
        "image",  # the hour-of-day heatmap: a PNG of one pixel per cell, see check_svg
    )
)
_ALLOWED_ATTRIBUTES = frozenset(
    {
        "id",
        "class",
        "style",
        "d",
        "x",
        "y",
        "width",
        "height",
        "viewBox",
        "version",
        "transform",
        "clip-path",
        "type",
        "cx",
        "cy",
        "r",
        "rx",
        "ry",
        "x1",
        "y1",
        "x2",
        "y2",
        "points",
        "fill",
        "stroke",
        "opacity",
        "font-family",
        "font-size",
        "text-anchor",
        "dominant-baseline",
        "role",
        "aria-label",
        "preserveAspectRatio",
        _XLINK_HREF,
    }
)
_PROLOGUE = re.compile(r"\A.*?(?=<svg[\s>])", re.S)
# The only href an <image> may have: an inline PNG (the page's CSP allows data: images only).
_PNG = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=\s]+")


class UnsafeSvg(ValueError):
    """An SVG carries markup that is not plain drawing: it is never inlined."""


def check_svg(svg: str) -> None:
    """An UnsafeSvg unless `svg` is plain drawing: elements and attributes from the
    allow-list, no external reference (also for the charts of `tootlake.analysis.svg`)."""
    root = ElementTree.fromstring(svg)
    for element in root.iter():
        if element.tag not in _ALLOWED_ELEMENTS:
            raise UnsafeSvg(f"unexpected element {element.tag!r} in a chart")
        for name, value in element.attrib.items():
            if name not in _ALLOWED_ATTRIBUTES:
                raise UnsafeSvg(f"unexpected attribute {name!r} in a chart")
            if name == _XLINK_HREF and element.tag == _SVG + "image":
                if not _PNG.fullmatch(value):
                    raise UnsafeSvg(
                        f"an image in a chart that is not an inline PNG: {value[:40]!r}"
                    )
            elif name == _XLINK_HREF and not value.startswith("#"):
                raise UnsafeSvg(f"external reference {value!r} in a chart")
            if "url(" in value and not re.fullmatch(r"url\(#[\w-]+\)", value.strip()):
                raise UnsafeSvg(f"unexpected url() in a chart: {value!r}")


def figure_to_svg(fig: Figure, *, label: str | None = None, salt: str | None = None) -> str:
    """The figure as one `<svg>` element to inline in HTML: no XML prologue, no metadata,
    text as escaped text, a `role="img"` with an aria-label (default: the figure's title).
    `salt` keeps clip-path ids apart when several charts share a page."""
    import html

    with _styled():
        buffer = io.StringIO()
        options: dict[str, Any] = {"svg.hashsalt": salt} if salt else {}
        matplotlib = _matplotlib()
        with matplotlib.rc_context(options):
            fig.savefig(
                buffer,
                format="svg",
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
            )
    svg = _PROLOGUE.sub("", buffer.getvalue(), count=1).strip()
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    check_svg(svg)
    if label is None:
        label = str(fig.get_label() or "") or fig.get_suptitle().strip()
    attrs = f'class="chart" role="img" aria-label="{html.escape(label, quote=True)}"'
    return svg.replace("<svg ", f"<svg {attrs} ", 1)


_check_svg = check_svg  # its former name (tests call it)
