"""The report as one self-contained HTML page: headline cards, every chart as inline SVG with
the number of posts it is drawn from, the daily table, the longest post, and how the data was
collected; its time zone (UTC unless `tz=` names another) is stated at the top. Nothing is
fetched when the page is opened (no fonts, scripts or images from anywhere: the one bitmap,
the hour-of-day heatmap, is an inline PNG), and a Content-Security-Policy says so to the
browser.

All text from the fediverse is untrusted (post text, names, apps, URLs, hashtags, language
codes). It reaches the page only through Jinja2 with autoescape on; charts carry it as SVG
text, escaped by matplotlib and checked by `charts.figure_to_svg()`; links are made only of
http(s) URLs, with rel="noopener noreferrer nofollow".

The live dashboard (`tootlake.analysis.dashboard`) serves the same page with `refresh` set.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from tootlake._version import __version__
from tootlake.analysis import charts, queries
from tootlake.analysis.report import TOP_TERMS, as_pylist, build_report
from tootlake.analysis.svg import SVG_CHARTS
from tootlake.errors import ConfigError, LakeError, MissingDependency
from tootlake.lake.layout import is_remote, join
from tootlake.lake.reader import open_lake
from tootlake.lake.storage import storage_for
from tootlake.record.pseudonymize import is_pseudonym_url

__all__ = [
    "CSP",
    "open_private",
    "read_collection_stats",
    "read_collector_health",
    "render_html_report",
    "safe_url",
    "write_html_report",
]

log = logging.getLogger(__name__)

# No script, no network: inline styles (the page's and the charts') and nothing else.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
STATE_DIR = "_tootlake"
PREVIEW_CHARACTERS = 280  # queries.longest() returns this much of the text
TIMEZONE = "UTC"  # of every day and time on the page unless tz= names another

_CAPTIONS = {
    "daily": "Posts per UTC day, by the time they were written (not when they were collected).",
    "hourly": "When posts were written, by hour of the UTC day: each hour's share of the "
    "period's posts. When the posts span three days or more, a heatmap above shows every "
    "day's hours (darker: more posts; grey: a day without posts), so that one busy day "
    "stands out instead of bending the shares unseen.",
    "apps": "Client apps of posts by people (accounts not marked as bots). Only the author's "
    "own server knows the app, so only posts collected there count.",
    "languages": "Posts per language, as tagged by the client. Unknown: posts without a tag.",
    "length_by_language": "Post length in characters (plain text of the post) for the most "
    f"used languages with at least {charts.LENGTH_MIN_POSTS} posts (fewer make a box of "
    "noise), drawn from percentiles computed in DuckDB. The box spans the middle half of the "
    "posts (25th to 75th percentile), the bar is the median, and the whiskers reach the 5th "
    "and the 95th percentile (not the shortest and longest post; no outliers are drawn). "
    "Logarithmic axis from 1 character: posts without text are drawn at 1.",
    "instances": "Posts per home server of their authors (from each post's URI), wherever "
    "they were collected.",
    "hashtags": "The most used hashtags (lower case), with the number of people using each.",
    "language_tags": "Mastodon does not detect languages: a post's tag is what its client sent, "
    "often the author's default. Here the text of each post with enough of it (20 letters "
    "once links, mentions, hashtags and emoji codes are out) is checked with lingua, on demand "
    "(tootlake enrich): the bar is the share of each tag's posts detected as another language. "
    "Posts without a tag, by detected language, and the most frequent confusions are in the "
    "report's tables (tootlake report).",
    "reach_by_origin": "From the sightings: every collected instance a post was seen on. A "
    "collector sees only what the instances it follows receive, so reach is a lower bound "
    "and depends on which instances were collected.",
    "reach_delay": "From created_at (the author's clock) to the first sighting on a collected "
    "instance other than the post's origin (when tootlake received it there: streams within "
    "seconds, polling within its interval).",
    "content_warnings": "Posts whose author wrote a content warning (spoiler text), per "
    "tagged language.",
    "edits_deletes": "Edits as collected (a post edited before it was first seen counts, its "
    "earlier versions do not); deletes as received: only posts deleted while a collector "
    "listened to an instance that knew them.",
    "bots_daily": "Accounts marked as bots by their owners (the bot flag); unmarked automated "
    "accounts count as people.",
    "account_age": "Whole days from account_created_at to created_at. Accounts that moved "
    "servers start again at their move.",
    "mentioned_accounts": "Accounts mentioned in collected posts (qualified user@host; "
    "the count of mentions, and of distinct accounts mentioning each). A collector sees the "
    "posts of the instances it follows: accounts popular elsewhere may not show.",
    "interactions": "Mentions and replies aggregated to the instances of both accounts, for "
    "the busiest instances: the count here is of the cells shown, the cross-server share in "
    "the title of every interaction. Public timelines carry no replies to other people, so a "
    "collected lake's replies are mostly threads (same server); mentions are the "
    "cross-server signal.",
    "terms": "Posts per UTC day that mention each term as a word or hashtag, in any case. "
    "Unless terms are chosen (tootlake report --term WORD, repeatable), the lake's "
    f"{TOP_TERMS} most used hashtags; the 2023 talk followed {', '.join(queries.TALK_TERMS)}.",
}


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    detail: str = ""


def write_html_report(
    lake: str,
    path: str | os.PathLike[str],
    *,
    report: Mapping[str, pa.Table] | None = None,
    collection: Mapping[str, Any] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    tz: str = TIMEZONE,
) -> None:
    """Write the report of a lake as one self-contained HTML file at `path`.

    `report` is `build_report()`'s result when the caller has it already (it is computed
    otherwise); `collection` the stats of the run that collected the lake (`RunStats.as_dict()`
    shape), else they are read from the lake's `_tootlake/` folder when there; `con` an open
    connection to the lake to query (else one is opened); `tz` the IANA time zone of every
    day, hour and time on the page (a `report` given should be built with the same).
    """
    target = Path(path)
    if target.exists() and not target.is_file():  # (a rename would replace a device as root)
        kind = "a folder" if target.is_dir() else "not a regular file"
        raise ConfigError(f"Cannot write the report to {target}: it is {kind}")
    page = render_html_report(lake, report=report, collection=collection, con=con, tz=tz)
    target.parent.mkdir(parents=True, exist_ok=True)
    # written whole or not at all: a browser never shows half a report
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as handle:  # the umask's usual permissions
            handle.write(page)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def render_html_report(
    lake: str,
    *,
    report: Mapping[str, pa.Table] | None = None,
    collection: Mapping[str, Any] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    terms: Sequence[str] | None = None,
    top: int = 20,
    refresh: int | None = None,
    warning: str | None = None,
    daily_rows: int | None = None,
    now: datetime | None = None,
    tz: str = TIMEZONE,
) -> str:
    """The report page as a string. `refresh` (seconds) makes the browser reload it (the
    dashboard); `daily_rows` keeps only the latest days of the daily table; `tz` is the IANA
    time zone (e.g. Europe/Berlin) of every day, hour and time on the page."""
    queries.check_tz(tz)
    template = _template()  # before any query: a missing extra fails fast
    owned = con is None
    con = con or open_private(lake)
    try:
        context = _context(
            con, lake, report=report, collection=collection, terms=terms, top=top,
            daily_rows=daily_rows, tz=tz,
        )  # fmt: skip
    finally:
        if owned:
            con.close()
    context.update(
        title="tootlake dashboard" if refresh else "tootlake report",
        refresh=refresh,
        warning=warning,
        generated_at=_when(now or datetime.now(UTC), tz),
    )
    return str(template.render(**context))


def _context(
    con: duckdb.DuckDBPyConnection,
    lake: str,
    *,
    report: Mapping[str, pa.Table] | None,
    collection: Mapping[str, Any] | None,
    terms: Sequence[str] | None,
    top: int,
    daily_rows: int | None,
    tz: str = TIMEZONE,
) -> dict[str, Any]:
    """Everything the template shows but the page's own settings."""
    if report is None:
        report = build_report(con=con, terms=terms, top=top, tz=tz)
    tables = dict(report)
    if "instances" not in tables:
        tables["instances"] = queries.instances(con, limit=top)
    summary = _first(tables.get("summary"))
    observers = _rows(queries.observers(con))
    facts = _lake_facts(con, summary.get("posts") or 0, observers)
    daily = _rows(tables.get("daily"))
    days = [row["day"] for row in daily]

    rendered = []
    for name, plot in charts.CHARTS.items():
        table = tables.get(name)
        if table is None:
            continue
        options: dict[str, Any] = {}
        if name == "terms":
            options = {"days": days}  # the words come with the table
        elif name in {"languages", "length_by_language", "instances", "hashtags"}:
            options = {"top": top}
        figure = plot(table, **options)
        svg = charts.figure_to_svg(figure, salt=name)
        rendered.append(
            {
                "name": name,
                "svg": _markup(svg),
                "posts": charts.posts_behind(figure) or "",
                "caption": _CAPTIONS.get(name, "").replace("UTC day", f"day ({tz})"),
            }
        )

    for name, (sections, draw) in SVG_CHARTS.items():
        if sections[0] not in tables:
            continue
        drawn, posts = draw(*(tables.get(section) for section in sections))
        rendered.append(
            {
                "name": name,
                "svg": _markup(drawn),
                "posts": posts,
                "caption": _CAPTIONS.get(name, "").replace("UTC day", f"day ({tz})"),
            }
        )

    stats = collection if collection is not None else read_collection_stats(lake)
    health = read_collector_health(lake)
    shown_daily = daily if daily_rows is None else daily[-daily_rows:]
    return {
        "lake": lake,
        "version": __version__,
        "csp": CSP,
        "timezone": tz,
        "cards": _cards(summary, tz),
        "charts": rendered,
        "daily": shown_daily,
        "daily_hidden": len(daily) - len(shown_daily),
        "longest": _longest(con, _first(tables.get("longest")), tz),
        "span": {
            "written": _span(summary.get("first_post_at"), summary.get("last_post_at"), tz),
            "received": _span(facts.get("first_ingested_at"), facts.get("last_ingested_at"), tz),
        },
        "facts": facts,
        "collection": _collection(stats, collection is not None),
        "observers": [
            {
                **row,
                "first_ingested_at": _when(row["first_ingested_at"], tz),
                "last_ingested_at": _when(row["last_ingested_at"], tz),
                "mode": _health_text(health.get(row["observed_on"] or "")),
            }
            for row in observers
        ],
        "health": bool(health),
    }


def open_private(
    lake: str, *, memory_limit: str | None = None, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """`open_lake()` whose spill files, should a query outgrow memory, go to a private
    temporary folder (removed at exit): never beside the lake, nor in the working directory
    (DuckDB's default for an in-memory database is ./.tmp)."""
    con = open_lake(lake, memory_limit=memory_limit, threads=threads)
    con.execute(f"SET temp_directory = '{_scratch()}'")
    return con


@functools.cache
def _scratch() -> str:
    folder = tempfile.mkdtemp(prefix="tootlake-report-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder.replace("'", "''")


# ----------------------------------------------------------------------------------------
# the template


def _template() -> Any:
    try:
        import jinja2
    except ImportError as exc:
        raise MissingDependency("jinja2", "report") from exc
    return _environment(jinja2).get_template("report.html.j2")


_ENVIRONMENT: Any = None


def _environment(jinja2: Any) -> Any:
    global _ENVIRONMENT  # one environment: it caches the compiled template
    if _ENVIRONMENT is None:
        env = jinja2.Environment(
            loader=jinja2.PackageLoader("tootlake", "data"),
            autoescape=True,  # every value is HTML-escaped unless marked safe
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["thousands"] = _thousands
        _ENVIRONMENT = env
    return _ENVIRONMENT


def _markup(svg: str) -> Any:
    from markupsafe import Markup

    return Markup(svg)  # checked by charts.figure_to_svg(): drawing elements only


def _thousands(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


# ----------------------------------------------------------------------------------------
# the page's parts


def _rows(table: pa.Table | None) -> list[dict[str, Any]]:
    return [] if table is None else as_pylist(table)


def _first(table: pa.Table | None) -> dict[str, Any]:
    rows = _rows(table)
    return rows[0] if rows else {}


def _when(value: Any, tz: str = TIMEZONE) -> str:
    """A time as shown in time zone `tz` (a naive one is UTC, as every time in the lake)."""
    if value is None:
        return "unknown"
    if isinstance(value, datetime):
        value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        try:
            value = value.astimezone(ZoneInfo(tz))
        except OverflowError:  # the year 1 or 9999 moved beyond what a datetime holds
            return value.strftime("%Y-%m-%d %H:%M:%S UTC")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, rest = divmod(rest, 60)
    if days >= 10:
        return f"{days + hours / 24:,.1f} days"
    if days:
        return f"{days} day{'s' if days > 1 else ''} {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes >= 10:
        return f"{minutes} min"
    if minutes:  # a short collection: its seconds still count
        return f"{minutes} min {rest} s"
    if seconds < 1:
        return "under a second"
    return f"{rest} s"


def _span(first: Any, last: Any, tz: str = TIMEZONE) -> str:
    if first is None or last is None:
        return "no posts yet"
    text = f"{_when(first, tz)} to {_when(last, tz)} {tz}"
    if isinstance(first, datetime) and isinstance(last, datetime):
        text += f" ({_duration((last - first).total_seconds())})"
    return text


def _cards(summary: Mapping[str, Any], tz: str = TIMEZONE) -> list[Card]:
    if not summary or not summary.get("posts"):
        return [Card("Posts", "0", "The lake has no posts yet")]
    first, last = summary.get("first_post_at"), summary.get("last_post_at")
    span_value = "–"
    if isinstance(first, datetime) and isinstance(last, datetime):
        span_value = _duration((last - first).total_seconds())
    average = summary.get("average")
    return [
        Card("Posts", _thousands(summary["posts"]), "one per post: edits and relays folded"),
        Card("Users", _thousands(summary.get("users")), "distinct authors"),
        Card("Instances", _thousands(summary.get("instances")), "authors' home servers"),
        Card("Languages", _thousands(summary.get("languages")), "as tagged by clients"),
        Card("Shortest post", f"{_thousands(summary.get('shortest'))}", "characters"),
        Card(
            "Average post", f"{float(average):,.1f}" if average is not None else "–", "characters"
        ),
        Card("Longest post", _thousands(summary.get("longest")), "characters"),
        Card("All posts", _thousands(summary.get("total_characters")), "characters in total"),
        Card("Time span", span_value, f"{_when(first, tz)} to {_when(last, tz)} {tz}"),
    ]


def safe_url(url: Any) -> str | None:
    """`url` when it is an absolute http(s) URL fit for a link, else None (javascript:,
    data:, relative or malformed URLs are never linked)."""
    if not isinstance(url, str) or not url or any(c.isspace() or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    return url


def _longest(
    con: duckdb.DuckDBPyConnection, row: Mapping[str, Any], tz: str = TIMEZONE
) -> dict[str, Any] | None:
    if not row:
        return None
    found = con.execute(
        "SELECT display_name FROM posts_all WHERE uri = ? ORDER BY ingested_at DESC LIMIT 1",
        [row.get("uri")],
    ).fetchall()
    raw_url = row.get("url") or row.get("uri")
    if is_pseudonym_url(raw_url):  # a pseudonymised lake's: no page to link to, or to show
        raw_url = None
    return {
        "acct": row.get("acct") or "",
        "display_name": (found[0][0] if found else "") or row.get("acct") or "",
        "characters": row.get("characters") or 0,
        "created_at": _when(row.get("created_at"), tz),
        "url": safe_url(raw_url),
        "raw_url": raw_url,
        "preview": row.get("preview") or "",
        "preview_characters": PREVIEW_CHARACTERS,
    }


def _lake_facts(
    con: duckdb.DuckDBPyConnection, posts: int, observers: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Versions and receive times (from the observers' rows), opted-out posts, deletes."""
    firsts = [r["first_ingested_at"] for r in observers if r["first_ingested_at"] is not None]
    lasts = [r["last_ingested_at"] for r in observers if r["last_ingested_at"] is not None]
    ((opted_out,),) = con.execute("SELECT count(*) FILTER (WHERE opted_out) FROM posts").fetchall()
    ((deletes,),) = con.execute("SELECT count(*) FROM deletes").fetchall()
    return {
        "versions": sum(r["versions"] for r in observers),
        "posts": posts,
        "opted_out_kept": opted_out,
        "deletes": deletes,
        "first_ingested_at": min(firsts, default=None),
        "last_ingested_at": max(lasts, default=None),
    }


# ----------------------------------------------------------------------------------------
# collection stats

_SKIP_LABELS = {
    "reblog": "Skipped as boosts",
    "not_public": "Skipped as not public",
    "not_indexable": "Skipped as not opted in to search (--consent opt-in)",
    "locked": "Skipped as locked accounts",
    "bot": "Skipped as bots",
}
# The gates of an opt-out, added up as "Skipped as opted out" ("opted_out": runs before the
# gates were counted one by one)
_OPT_OUT_GATES = ("noindex", "opt_out_tag", "opted_out")
_COUNTS = ("events", "posts", "edits", "deletes", "bad")


def read_collection_stats(lake: str) -> dict[str, Any] | None:
    """What the runs that filled the lake recorded about themselves, when they left it in the
    lake's `_tootlake/` folder as JSON in the shape of `RunStats.as_dict()` (at least a
    `skipped` mapping of reason -> count). Several files (one per run) are added up.
    None when there is no such record."""
    if is_remote(lake):
        return _read_remote_stats(lake)
    folder = Path(join(lake, STATE_DIR))
    if not folder.is_dir():
        return None
    merged: dict[str, Any] | None = None
    for path in sorted(folder.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("Cannot read collection stats %s: %s", path, exc)
            continue
        if isinstance(data, dict) and isinstance(data.get("stats"), dict):
            data = data["stats"]
        if not isinstance(data, dict) or not isinstance(data.get("skipped"), dict):
            continue
        merged = _add_stats(merged, data)
        merged.setdefault("files", []).append(str(path.relative_to(folder)))
    return merged


def _read_remote_stats(lake: str) -> dict[str, Any] | None:
    """`read_collection_stats()` of a lake on S3: the JSON objects under `_tootlake/`."""
    storage = storage_for(lake)
    folder = join(lake, STATE_DIR)
    merged: dict[str, Any] | None = None
    for path in storage.list(folder, suffix=".json"):
        try:
            data = json.loads(storage.read(path))
        except (OSError, ValueError, LakeError) as exc:
            log.warning("Cannot read collection stats %s: %s", path, exc)
            continue
        if isinstance(data, dict) and isinstance(data.get("stats"), dict):
            data = data["stats"]
        if not isinstance(data, dict) or not isinstance(data.get("skipped"), dict):
            continue
        merged = _add_stats(merged, data)
        merged.setdefault("files", []).append(path.removeprefix(folder + "/"))
    return merged


def read_collector_health(lake: str) -> dict[str, dict[str, Any]]:
    """The collector's last word on each instance (`_tootlake/state/health.json`: mode,
    status...), or {} when the lake was not collected by `tootlake collect` here."""
    if is_remote(lake):
        return {}
    path = Path(join(lake, STATE_DIR, "state", "health.json"))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("Cannot read the collector health %s: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(host): entry for host, entry in data.items() if isinstance(entry, dict)}


def _health_text(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return ""
    parts = [str(entry[key]) for key in ("mode", "status") if entry.get(key)]
    return ", ".join(parts)


def _add_stats(total: dict[str, Any] | None, stats: Mapping[str, Any]) -> dict[str, Any]:
    total = total if total is not None else {"skipped": {}}
    for key in _COUNTS:
        if isinstance(stats.get(key), int):
            total[key] = total.get(key, 0) + stats[key]
    for reason, count in stats.get("skipped", {}).items():
        if isinstance(count, int):
            total["skipped"][str(reason)] = total["skipped"].get(str(reason), 0) + count
    return total


def _collection(stats: Mapping[str, Any] | None, passed: bool) -> dict[str, Any]:
    if stats is None:
        # No line rather than "unknown": the run printed its skips, the lake only lacks them.
        return {
            "opted_out": None,
            "other": [],
            "source": f"No record of the collecting runs in the lake ({STATE_DIR}/), so what "
            "they skipped is not shown: each run printed it when it ended (tootlake collect "
            f"--stats FILE also writes it to FILE, and a FILE inside {STATE_DIR}/ is read "
            "here). Posts of accounts that opted out of indexing (noindex, #nobot) are skipped "
            "unless collected with --include-opted-out.",
        }
    skipped = stats.get("skipped") or {}
    other = [
        {"label": _SKIP_LABELS.get(reason, f"Skipped: {reason}"), "value": _thousands(count)}
        for reason, count in sorted(skipped.items())
        if reason not in _OPT_OUT_GATES
    ]
    if isinstance(stats.get("bad"), int):
        other.append({"label": "Unreadable events", "value": _thousands(stats["bad"])})
    files = stats.get("files") or []
    source = (
        "Counts of the collecting run, as passed to the report."
        if passed
        else f"Counts recorded by the collecting runs in {STATE_DIR}/ ({len(files)} file"
        f"{'' if len(files) == 1 else 's'})."
    )
    opted_out = sum(skipped.get(gate, 0) for gate in _OPT_OUT_GATES)
    return {"opted_out": _thousands(opted_out), "other": other, "source": source}
