"""Small charts drawn as SVG markup directly, for the report's sections of issue 13 (language
tags versus text, federation reach, behaviour): bars and one line, no matplotlib.

Why not matplotlib like `charts`: a matplotlib figure costs about 0.2 s to lay out and save,
and the report on the talk's 1.6M posts may grow by 10% at most (about 0.4 s) with every new
section included; these charts cost about a millisecond each. They keep the look of the
others (Okabe-Ito blue, grey notes, a bold title and a grey subtitle) and their safety: all
text is escaped here, and `charts.check_svg()` checks the markup against the same allow-list.

Each function takes its query's table (`tootlake.analysis.queries`) and returns
(svg, posts), `posts` saying how many posts the chart was drawn from ("1,234 posts").
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from tootlake.analysis.charts import NOT_XML, PALETTE, _cut, _to_date, check_svg

__all__ = [
    "SVG_CHARTS",
    "bars",
    "line",
    "plot_account_age",
    "plot_bots_daily",
    "plot_content_warnings",
    "plot_edits_deletes",
    "plot_interactions",
    "plot_language_tags",
    "plot_mentioned_accounts",
    "plot_reach_by_origin",
    "plot_reach_delay",
]

WIDTH = 900
_BAR = PALETTE[0]
_MUTED = "#999999"
_TEXT = "#222222"
_SUBTLE = "#555555"
_ROW = 26  # px per bar
_LABEL = 240  # px for the category labels
_NOTE_CHAR = 6.8  # px per character of a note (12 px text), to keep room for the longest
_LABEL_CHARS = 32
_SUBTITLE_CHARS = 120
MIN_HEIGHT = 210  # px: a chart of one bar or a message still reads as a chart
ENRICH_FIRST = "No languages detected yet: run tootlake enrich"


def _e(text: object) -> str:
    # a control character from the fediverse is not XML: check_svg() refused the page
    return html.escape(NOT_XML.sub("\ufffd", "" if text is None else str(text)), quote=True)


def _wrap(subtitle: str) -> list[str]:
    import textwrap

    return [w for line in subtitle.split("\n") for w in textwrap.wrap(line, _SUBTITLE_CHARS)]


def _posts(n: int, detail: str = "") -> str:
    return f"{n:,} post{'' if n == 1 else 's'}{detail}"


def _head(title: str, subtitle: str) -> tuple[list[str], float]:
    """The title and subtitle lines, and the y below them."""
    parts = [
        f'<text x="8" y="24" font-size="18" fill="{_TEXT}" style="font-weight:bold">'
        f"{_e(title)}</text>"
    ]
    y = 24.0
    for line in _wrap(subtitle):
        y += 18
        parts.append(f'<text x="8" y="{y:.0f}" font-size="13" fill="{_SUBTLE}">{_e(line)}</text>')
    return parts, y + 14


def _svg(title: str, height: float, parts: Sequence[str]) -> str:
    height = max(height, MIN_HEIGHT)
    svg = (
        f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'aria-label="{_e(title)}" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="{WIDTH}" height="{height:.0f}"><title>{_e(title)}</title>'
        + "".join(parts)
        + "</svg>"
    )
    check_svg(svg)
    return svg


def _message(title: str, subtitle: str, message: str) -> str:
    parts, y = _head(title, subtitle)
    parts.append(
        f'<text x="{WIDTH / 2:.0f}" y="{y + 40:.0f}" font-size="15" fill="{_SUBTLE}" '
        f'text-anchor="middle">{_e(message)}</text>'
    )
    return _svg(title, y + 70, parts)


def bars(
    labels: Sequence[object],
    values: Sequence[float],
    *,
    title: str,
    subtitle: str,
    notes: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    maximum: float | None = None,
    empty: str = "No posts yet",
) -> str:
    """Horizontal bars, in the order given, each labelled on the left and noted on the right
    (its value unless `notes`); `maximum` is the value of a full-width bar."""
    if not labels:
        return _message(title, subtitle, empty)
    parts, top = _head(title, subtitle)
    notes = notes or [f"{v:,}" for v in values]
    span = WIDTH - _LABEL - 12 - _NOTE_CHAR * max(len(note) for note in notes)
    full = maximum if maximum is not None else max(max(values), 1e-12)
    for i, (label, value, note) in enumerate(zip(labels, values, notes, strict=True)):
        y = top + i * _ROW
        width = span * max(0.0, value) / full if full else 0.0
        color = colors[i] if colors else _BAR
        parts.append(
            f'<text x="{_LABEL - 8}" y="{y + _ROW / 2:.1f}" font-size="13" fill="{_TEXT}" '
            f'text-anchor="end" dominant-baseline="middle">{_e(_cut(label, _LABEL_CHARS))}</text>'
            f'<rect x="{_LABEL}" y="{y + 3:.1f}" width="{width:.1f}" height="{_ROW - 6}" '
            f'fill="{color}"/>'
            f'<text x="{_LABEL + width + 5:.1f}" y="{y + _ROW / 2:.1f}" font-size="12" '
            f'fill="{_TEXT}" dominant-baseline="middle">{_e(note)}</text>'
        )
    bottom = top + len(labels) * _ROW
    parts.append(
        f'<line x1="{_LABEL}" y1="{top:.0f}" x2="{_LABEL}" y2="{bottom:.0f}" stroke="{_MUTED}"/>'
    )
    return _svg(title, bottom + 12, parts)


def line(
    days: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    subtitle: str,
    percent: bool = True,
    empty: str = "No posts yet",
) -> str:
    """One line over days (a share, in percent, when `percent`), with its axis from 0 to the
    largest value, the first and last day labelled."""
    if not days:
        return _message(title, subtitle, empty)
    parts, top = _head(title, subtitle)
    left, right, height = 70.0, WIDTH - 20.0, 200.0
    bottom = top + height
    peak = max(max(values), 1e-12)
    shown = (lambda v: f"{v:.1%}") if percent else (lambda v: f"{v:,.0f}")
    for value in (0.0, peak / 2, peak):
        y = bottom - height * value / peak
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e4e4e4"/>'
            f'<text x="{left - 6}" y="{y:.1f}" font-size="12" fill="{_SUBTLE}" '
            f'text-anchor="end" dominant-baseline="middle">{_e(shown(value))}</text>'
        )
    # x by date, so that days without posts keep their width
    ordinals = [_to_date(day).toordinal() for day in days]  # (a year 0 or 10000 clamped)
    first, length = ordinals[0], max(1, ordinals[-1] - ordinals[0])
    points = [
        (
            left + (right - left) * (o - first) / length if len(days) > 1 else (left + right) / 2,
            bottom - height * v / peak,
        )
        for o, v in zip(ordinals, values, strict=True)
    ]
    if len(points) > 1:
        joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(
            f'<polyline points="{joined}" fill="none" stroke="{_BAR}" style="stroke-width:2"/>'
        )
    if len(points) <= 60:  # a dot per day while they stay apart
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{_BAR}"/>' for x, y in points)
    parts.append(
        f'<text x="{left}" y="{bottom + 18:.0f}" font-size="12" fill="{_SUBTLE}">'
        f"{_e(days[0])}</text>"
    )
    if len(days) > 1:
        parts.append(
            f'<text x="{right}" y="{bottom + 18:.0f}" font-size="12" fill="{_SUBTLE}" '
            f'text-anchor="end">{_e(days[-1])}</text>'
        )
    return _svg(title, bottom + 30, parts)


def _rows(table: pa.Table | None) -> list[dict[str, Any]]:
    return [] if table is None else table.to_pylist()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# ----------------------------------------------------------------------------------------
# the charts


def plot_language_tags(table: pa.Table, *, top: int = 15) -> tuple[str, str]:
    """Per tagged language (`queries.language_tags`), the share of its posts whose text is
    detected as another language, with the language most of them are in."""
    rows = _rows(table)
    title = "Language tags versus text"
    subtitle = (
        "Per language as tagged by the client: the share of its posts whose text lingua "
        "detects as another language (posts with enough text)"
    )
    if len(rows) > top:
        subtitle += f"\nThe {top} tags with the most posts of {len(rows):,}"
    shown = rows[:top]
    notes = [
        f"{r['other_share']:.1%} of {r['posts']:,}"
        + (f" · mostly {r['top_other_name']}" if r["other"] else "")
        for r in shown
    ]
    svg = bars(
        [r["language_name"] for r in shown],
        [r["other_share"] for r in shown],
        title=title,
        subtitle=subtitle,
        notes=notes,
        maximum=max([r["other_share"] for r in shown] + [0.05]),
        empty=ENRICH_FIRST,
    )
    return svg, _posts(sum(r["posts"] for r in rows), " with a tag and a detected language")


def plot_reach_delay(table: pa.Table) -> tuple[str, str]:
    """How long posts took to be seen on another server (`queries.reach_delay`)."""
    rows = _rows(table)
    subtitle = (
        "Posts first seen on a collected instance other than their origin, by the time from "
        "created_at to that first sighting"
    )
    if rows:
        subtitle += (
            f"\nMedian {_duration(rows[0]['median_seconds'])}, "
            f"90th percentile {_duration(rows[0]['p90_seconds'])}"
        )
    total = sum(r["posts"] for r in rows)
    svg = bars(
        [r["delay"] for r in rows],
        [r["posts"] for r in rows],
        title="How long until a post reaches another server",
        subtitle=subtitle,
        notes=[f"{r['posts']:,} ({r['share']:.1%})" for r in rows],
        empty="No post was seen on an instance other than its origin",
    )
    return svg, _posts(total, " seen elsewhere")


def plot_reach_by_origin(table: pa.Table, *, top: int = 15) -> tuple[str, str]:
    """Per origin instance (`queries.reach_by_origin`), the share of its posts seen on
    another collected instance, and how many instances saw each on average."""
    rows = _rows(table)[:top]
    svg = bars(
        [r["origin"] for r in rows],
        [r["seen_elsewhere_share"] for r in rows],
        title="Federation reach by origin",
        subtitle="Per author's home server (most posts first): the share of its posts seen "
        "on another collected instance; in brackets, the average number of collected "
        "instances that saw each post",
        notes=[
            f"{r['seen_elsewhere_share']:.1%} of {r['posts']:,} ({r['mean_instances']:.2f})"
            for r in rows
        ],
        maximum=1.0,
        empty="No sightings in the lake",
    )
    return svg, _posts(sum(r["posts"] for r in rows))


def plot_content_warnings(table: pa.Table, *, top: int = 15) -> tuple[str, str]:
    """Content-warning use per tagged language (`queries.content_warnings`)."""
    from tootlake.analysis.queries import language_name

    rows = _rows(table)[:top]
    svg = bars(
        [language_name(r["language"]) for r in rows],
        [r["warning_share"] for r in rows],
        title="Content warnings by language",
        subtitle="Share of posts with a content warning (spoiler text), per language as "
        "tagged (most posts first; Unknown: no tag)",
        notes=[f"{r['warning_share']:.1%} of {r['posts']:,}" for r in rows],
        maximum=max([r["warning_share"] for r in rows] + [0.01]),
    )
    return svg, _posts(sum(r["posts"] for r in rows))


def plot_bots_daily(table: pa.Table) -> tuple[str, str]:
    """Bots' share of posts per day (`queries.bots_daily`)."""
    rows = _rows(table)
    zone = (table.schema.metadata or {}).get(b"tootlake.tz", b"UTC").decode()
    svg = line(
        [r["day"] for r in rows],
        [r["bot_share"] for r in rows],
        title="Bots' share of posts per day",
        subtitle=f"Posts by accounts marked as bots, as a share of each day's posts ({zone})",
    )
    return svg, _posts(sum(r["posts"] for r in rows))


def plot_account_age(table: pa.Table) -> tuple[str, str]:
    """How old accounts were when they posted (`queries.account_age`)."""
    rows = _rows(table)
    subtitle = "Posts by the age of their account when written (created_at - account_created_at)"
    if rows and rows[0]["median_days"] is not None:
        subtitle += f"\nMedian {rows[0]['median_days']:,} days"
    svg = bars(
        [r["age"] for r in rows],
        [r["posts"] for r in rows],
        title="Accounts' age at posting",
        subtitle=subtitle,
        notes=[f"{r['posts']:,} ({r['share']:.1%})" for r in rows],
        colors=[_MUTED if r["age"] == "unknown" else _BAR for r in rows],
    )
    return svg, _posts(sum(r["posts"] for r in rows))


def plot_edits_deletes(edits: pa.Table, deletes: pa.Table | None = None) -> tuple[str, str]:
    """The share of posts edited and deleted (`queries.edits`, `queries.deletes`), with how
    soon."""
    e = (_rows(edits) or [{}])[0]
    d = (_rows(deletes) or [{}])[0]
    labels, values, notes = [], [], []
    if e.get("posts"):
        labels.append("edited")
        values.append(e["edited_share"] or 0.0)
        notes.append(
            f"{e['edited']:,} of {e['posts']:,} ({(e['edited_share'] or 0):.1%})"
            + _after(e["median_seconds_to_edit"])
        )
    if d.get("posts"):
        labels.append("deleted")
        values.append(d["deleted_share"] or 0.0)
        notes.append(
            f"{d['deleted']:,} of {d['posts']:,} ({(d['deleted_share'] or 0):.1%})"
            + _after(d["median_seconds_to_delete"])
        )
    svg = bars(
        labels,
        values,
        title="Edits and deletes",
        subtitle="Share of posts edited (their latest version is an edit) and deleted (a "
        "delete event removed them), with the median time from posting to the first edit "
        "or delete received",
        notes=notes,
        maximum=max(values + [0.05]),
    )
    return svg, _posts(int(d.get("posts") or e.get("posts") or 0))


def _after(seconds: float | None) -> str:
    return "" if seconds is None else f"; median {_duration(seconds)} after posting"


def plot_mentioned_accounts(table: pa.Table, *, top: int = 15) -> tuple[str, str]:
    """The most mentioned accounts (`queries.mentioned_accounts`)."""
    rows = _rows(table)[:top]
    svg = bars(
        [r["account"] for r in rows],
        [r["mentions"] for r in rows],
        title="The most mentioned accounts",
        subtitle="Mentions in collected posts (in brackets: how many accounts mentioned it)",
        notes=[f"{r['mentions']:,} ({r['mentioned_by']:,})" for r in rows],
        empty="No mentions in the lake",
    )
    return svg, f"{sum(r['mentions'] for r in rows):,} mentions"


def _shade(share: float) -> str:
    """A colour from white (0) to the bar blue (1)."""
    base = _BAR.lstrip("#")
    rgb = [int(base[i : i + 2], 16) for i in (0, 2, 4)]
    mixed = [round(255 + (c - 255) * max(0.0, min(1.0, share))) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def plot_interactions(pairs: pa.Table, cross: pa.Table | None = None) -> tuple[str, str]:
    """Mentions and replies between the top instances as a heatmap (`queries.
    interaction_pairs`): a row per author's instance, a column per mentioned or replied-to
    account's instance, darker for more (logarithmic); the subtitle gives the share of all
    interactions that cross servers (`queries.cross_server`)."""
    import math

    title = "Who talks to whom: mentions and replies between instances"
    rows = _rows(pairs)
    totals = {r["kind"]: r for r in _rows(cross)}
    overall = totals.get("all")
    subtitle = "Rows: the author's instance; columns: the instance of the account mentioned or "
    subtitle += "replied to (the busiest instances; darker: more, on a log scale)"
    if overall:
        subtitle += (
            f". {overall['cross_server_share']:.1%} of {overall['interactions']:,} "
            "interactions cross servers"
        )
        for kind, plural in (("mention", "mentions"), ("reply", "replies")):
            if kind in totals:
                subtitle += f" ({plural}: {totals[kind]['cross_server_share']:.1%})"
    if not rows:
        return _message(title, subtitle, "No mentions or replies in the lake"), "0 interactions"
    count: dict[str, int] = {}
    for r in rows:
        for key in ("source_instance", "target_instance"):
            count[r[key]] = count.get(r[key], 0) + r["interactions"]
    names = sorted(count, key=lambda name: (-count[name], name))
    index = {name: i for i, name in enumerate(names)}
    cells = {(r["source_instance"], r["target_instance"]): r["interactions"] for r in rows}
    parts, top = _head(title, subtitle)
    size = min(56.0, (WIDTH - _LABEL - 20) / len(names))
    header = 150.0  # room for the column labels, turned
    for name, i in index.items():
        x = _LABEL + (i + 0.5) * size
        parts.append(
            f'<text x="{x:.1f}" y="{top + header - 6:.1f}" font-size="12" fill="{_TEXT}" '
            f'transform="rotate(-45 {x:.1f} {top + header - 6:.1f})">{_e(_cut(name, 24))}</text>'
        )
        y = top + header + i * size
        parts.append(
            f'<text x="{_LABEL - 8}" y="{y + size / 2:.1f}" font-size="13" fill="{_TEXT}" '
            f'text-anchor="end" dominant-baseline="middle">{_e(_cut(name, _LABEL_CHARS))}</text>'
        )
    peak = math.log1p(max(cells.values()))
    for (source, target), n in cells.items():
        x, y = _LABEL + index[target] * size, top + header + index[source] * size
        share = math.log1p(n) / peak if peak else 0.0
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{size - 2:.1f}" height="{size - 2:.1f}" '
            f'fill="{_shade(share)}"><title>{_e(source)} → {_e(target)}: {n:,}</title></rect>'
        )
        if size >= 30:
            color = "#ffffff" if share > 0.6 else _TEXT
            parts.append(
                f'<text x="{x + (size - 2) / 2:.1f}" y="{y + (size - 2) / 2:.1f}" font-size="11" '
                f'fill="{color}" text-anchor="middle" dominant-baseline="middle">'
                f"{_e(_short(n))}</text>"
            )
    bottom = top + header + len(names) * size
    total = sum(r["interactions"] for r in rows)
    return _svg(title, bottom + 12, parts), f"{total:,} interactions"


def _short(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n // 1000}k"
    return str(n)


# The report's sections drawn here: chart name -> (the sections it reads, function).
SVG_CHARTS: Mapping[str, tuple[tuple[str, ...], Callable[..., tuple[str, str]]]] = {
    "language_tags": (("language_tags",), plot_language_tags),
    "reach_by_origin": (("reach_by_origin",), plot_reach_by_origin),
    "reach_delay": (("reach_delay",), plot_reach_delay),
    "content_warnings": (("content_warnings_by_language",), plot_content_warnings),
    "edits_deletes": (("edits", "deletes"), plot_edits_deletes),
    "bots_daily": (("bots_daily",), plot_bots_daily),
    "account_age": (("account_age",), plot_account_age),
    "mentioned_accounts": (("mentioned_accounts",), plot_mentioned_accounts),
    "interactions": (("interaction_pairs", "cross_server"), plot_interactions),
}
