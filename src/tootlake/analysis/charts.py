"""Charts of the report: one function per chart, each taking the pyarrow Table of its query
(`tootlake.analysis.queries`) and returning a matplotlib Figure; `figure_to_svg()` turns one
into an SVG element to inline in a page.

    plot_daily(daily(con))                      posts per day
    plot_hourly(hourly(con))                    posts per hour of day, one line per day
    plot_apps(apps(con))                        client apps of people's local posts
    plot_languages(languages(con))              posts per language (English names)
    plot_length_by_language(length_by_language(con))   box plot of post length per language
    plot_instances(instances(con))              instances whose people posted the most
    plot_hashtags(hashtags(con))                most used hashtags
    plot_terms(terms(con))                      posts per day mentioning each term

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
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from tootlake.errors import MissingDependency

if TYPE_CHECKING:
    import pyarrow as pa
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "CHARTS",
    "PALETTE",
    "figure_to_svg",
    "plot_apps",
    "plot_daily",
    "plot_hashtags",
    "plot_hourly",
    "plot_instances",
    "plot_languages",
    "plot_length_by_language",
    "plot_terms",
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

    axis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
    axis.set_major_formatter(FuncFormatter(_thousands))


def _cut(text: object, limit: int = _LABEL_CHARS) -> str:
    value = "" if text is None else " ".join(str(text).split())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


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
    """Horizontal bars, largest on top, each labelled with its count."""
    with _styled():
        n = len(labels)
        fig = _new_figure(height=max(3.2, 1.7 + 0.34 * n))
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
        ax.grid(axis="x")
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
    return _barh(
        apps[:top],
        posts[:top],
        title="Which apps people post from",
        subtitle=subtitle,
        xlabel="Posts (count)",
        ylabel="Client app",
        empty="No local posts by people: no app is known",
    )


def plot_languages(table: pa.Table, *, top: int = 20) -> Figure:
    """Posts per language (`queries.languages`), by English name; 'Unknown' in grey."""
    names, posts = _columns(table, "language_name", "posts")
    total = sum(posts)
    subtitle = "As tagged by each post's client (often its default language); Unknown: no tag"
    if len(names) > top:
        subtitle += f"\nTop {top} of {len(names):,} languages"
    notes = [f"{p:,} ({p / total:.1%})" for p in posts[:top]] if total else None
    colors = [_MUTED if name == "Unknown" else _BAR for name in names[:top]]
    return _barh(
        names[:top],
        posts[:top],
        title="Languages of posts",
        subtitle=subtitle,
        xlabel="Posts (count)",
        ylabel="Language",
        notes=notes,
        colors=colors,
    )


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
    return _barh(
        [f"#{tag}" for tag in tags[:top]],
        posts[:top],
        title="Top hashtags",
        subtitle="Posts using each hashtag (authors in brackets)",
        xlabel="Posts (count)",
        ylabel="Hashtag",
        notes=notes[:top],
        empty="No hashtags yet",
    )


# ----------------------------------------------------------------------------------------
# box plot


def plot_length_by_language(table: pa.Table, *, top: int = 20) -> Figure:
    """Post length per language (`queries.length_by_language`) as a box plot drawn from the
    precomputed quartiles (`bxp`): no post is loaded. Whiskers reach the shortest and the
    longest post (no outliers are computed: that needs every value). Longest median on top."""
    names, posts, lows, q1s, medians, q3s, highs = _columns(
        table, "language_name", "posts", "min", "q1", "median", "q3", "max"
    )
    rows = sorted(
        zip(names, posts, lows, q1s, medians, q3s, highs, strict=True),
        key=lambda r: (-(r[4] or 0), -r[1], str(r[0])),
    )[:top]
    with _styled():
        fig = _new_figure(height=max(3.4, 1.9 + 0.36 * len(rows)))
        ax = fig.subplots()
        _titled(
            fig,
            ax,
            "How long posts are, by language",
            f"Top {len(rows)} languages by posts, longest median first. Box: middle half of the "
            "posts; bar: median;\nwhiskers: shortest and longest post. Posts per language in "
            "brackets.",
        )
        if not rows:
            _empty(fig, ax, "No posts with a language yet")
            return fig
        stats = [
            {
                "label": f"{_cut(name, 28)} ({n:,})",
                "whislo": lo,
                "q1": q1,
                "med": med,
                "q3": q3,
                "whishi": hi,
                "fliers": [],
            }
            for name, n, lo, q1, med, q3, hi in rows
        ]
        ax.bxp(
            stats,
            orientation="horizontal",
            widths=0.6,
            patch_artist=True,
            showfliers=False,
            boxprops={"facecolor": "#BFE0F5", "edgecolor": _BAR, "linewidth": 1.2},
            medianprops={"color": PALETTE[5], "linewidth": 2.2},
            whiskerprops={"color": _BAR, "linewidth": 1},
            capprops={"color": _BAR, "linewidth": 1},
        )
        ax.invert_yaxis()
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        # Lengths run from 0 to tens of thousands around a median near 100: a log scale
        # (linear below 10 so that empty posts fit) keeps every box readable.
        longest = max(10.0, max(float(r[6] or 0) for r in rows))
        ax.set_xscale("symlog", linthresh=10, linscale=0.5)
        ax.set_xlim(0, longest * 1.5)
        ax.xaxis.set_major_locator(
            FixedLocator([0] + [10**k for k in range(1, len(f"{longest:.0f}") + 1)])
        )
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.grid(axis="x")
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel("Post length (characters, logarithmic scale)")
        ax.set_ylabel("Language (posts)")
        return fig


# ----------------------------------------------------------------------------------------
# time series


def _to_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _date_numbers(days: Sequence[date]) -> list[float]:
    import matplotlib.dates as mdates

    return [float(mdates.date2num(day)) for day in days]


def _date_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=True))


def plot_daily(table: pa.Table) -> Figure:
    """Posts per UTC day (`queries.daily`) as bars on a calendar axis: gaps stay visible."""
    days, posts = _columns(table, "day", "posts")
    with _styled():
        fig = _new_figure(height=4.4)
        ax = fig.subplots()
        subtitle = "Posts by the day they were written (UTC); the first and last day may be partial"
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
        if len(dates) <= 16 and span <= 16:
            ax.set_xticks(x, [d.strftime("%a\n%-d %b") for d in dates])
        else:
            _date_axis(ax)
        if span < 7:  # a few days: bars of a sensible width, not one slab across the plot
            pad = (7 - span) / 2
            ax.set_xlim(min(x) - 0.5 - pad, max(x) + 0.5 + pad)
        ax.set_ylim(0, max(max(posts), 1) * 1.12)
        _count_axis(ax.yaxis)
        ax.grid(axis="y")
        ax.set_xlabel("Day (UTC)")
        ax.set_ylabel("Posts per day")
        return fig


def plot_hourly(table: pa.Table, *, max_days: int = 14) -> Figure:
    """Posts per hour of the UTC day (`queries.hourly`), one line per day. With more than
    `max_days` days, every day is a thin grey line and the mean over the days is drawn on top."""
    days, hours, posts = _columns(table, "day", "hour", "posts")
    per_day: dict[str, list[int]] = {}
    for day, hour, n in zip(days, hours, posts, strict=True):
        per_day.setdefault(str(day), [0] * 24)[int(hour)] += n
    with _styled():
        fig = _new_figure(height=4.8)
        ax = fig.subplots()
        subtitle = "Posts written in each hour, one line per day (UTC)"
        if len(per_day) > max_days:
            subtitle = (
                f"Posts written in each hour of {len(per_day):,} days (UTC): a grey line a day"
            )
        _titled(fig, ax, "When people post: posts per hour of day", subtitle)
        if not per_day:
            _empty(fig, ax, "No posts yet")
            return fig
        x = list(range(24))
        if len(per_day) <= max_days:
            colors = PALETTE[:7]  # no yellow for lines
            for i, (day, counts) in enumerate(sorted(per_day.items())):
                style = "-" if i < len(colors) else "--"
                label = _to_date(day).strftime("%a %-d %b %Y")
                ax.plot(x, counts, style, color=colors[i % len(colors)], linewidth=2, label=label)
            ax.legend(
                loc="upper left", bbox_to_anchor=(1.01, 1.0), title="Day (UTC)", alignment="left"
            )
        else:
            for counts in per_day.values():
                ax.plot(x, counts, color=_MUTED, linewidth=0.7, alpha=0.5)
            mean = [sum(c[h] for c in per_day.values()) / len(per_day) for h in x]
            ax.plot([], [], color=_MUTED, linewidth=1, label="one day")
            ax.plot(x, mean, color=_BAR, linewidth=2.8, label="mean over the days")
            ax.legend(loc="upper left")
        ax.set_xticks(range(0, 24, 3), [f"{h:02d}:00" for h in range(0, 24, 3)])
        ax.set_xlim(0, 23)
        ax.set_ylim(0, max(1, max(max(c) for c in per_day.values())) * 1.08)
        _count_axis(ax.yaxis)
        ax.grid(axis="both")
        ax.set_xlabel("Hour of day (UTC)")
        ax.set_ylabel("Posts per hour")
        return fig


def plot_terms(
    table: pa.Table, *, days: Sequence[Any] | None = None, terms: Sequence[str] | None = None
) -> Figure:
    """Posts per day mentioning each term (`queries.terms`), a line per term. Days without a
    mention count as zero, over `days` (e.g. the daily table's) or the table's own range;
    `terms` adds lines for terms never mentioned."""
    rows_days, rows_terms, posts = _columns(table, "day", "term", "posts")
    counts: dict[str, dict[date, int]] = {t: {} for t in terms or ()}
    for day, term, n in zip(rows_days, rows_terms, posts, strict=True):
        counts.setdefault(str(term), {})[_to_date(day)] = n
    seen = sorted({_to_date(d) for d in list(rows_days) + list(days or ())})
    axis: list[date] = []
    if seen:
        axis = [seen[0] + timedelta(days=i) for i in range((seen[-1] - seen[0]).days + 1)]
    with _styled():
        fig = _new_figure(height=4.6)
        ax = fig.subplots()
        names = ", ".join(counts) or "the terms"
        _titled(
            fig,
            ax,
            "Terms in the news: posts per day",
            f"Posts mentioning {_cut(names, 80)} (word or hashtag, any case)",
        )
        if not rows_days:
            _empty(fig, ax, f"No post mentions {_cut(names, 80)}")
            return fig
        colors = PALETTE[:7]
        for i, (term, by_day) in enumerate(counts.items()):
            values = [by_day.get(d, 0) for d in axis]
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
                label=_cut(term, 30),
            )
        if len(axis) <= 16:
            ax.set_xticks(_date_numbers(axis), [d.strftime("%a\n%-d %b") for d in axis])
        else:
            _date_axis(ax)
        ax.set_ylim(0, max(1, max(posts)) * 1.12)
        _count_axis(ax.yaxis)
        ax.grid(axis="y")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="Term", alignment="left")
        ax.set_xlabel("Day (UTC)")
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


class UnsafeSvg(ValueError):
    """An SVG carries markup that is not plain drawing: it is never inlined."""


def _check_svg(svg: str) -> None:
    root = ElementTree.fromstring(svg)
    for element in root.iter():
        if element.tag not in _ALLOWED_ELEMENTS:
            raise UnsafeSvg(f"unexpected element {element.tag!r} in a chart")
        for name, value in element.attrib.items():
            if name not in _ALLOWED_ATTRIBUTES:
                raise UnsafeSvg(f"unexpected attribute {name!r} in a chart")
            if name == _XLINK_HREF and not value.startswith("#"):
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
    _check_svg(svg)
    if label is None:
        label = str(fig.get_label() or "") or fig.get_suptitle().strip()
    attrs = f'class="chart" role="img" aria-label="{html.escape(label, quote=True)}"'
    return svg.replace("<svg ", f"<svg {attrs} ", 1)
