"""A datasheet for a lake, in the spirit of "Datasheets for Datasets" (Gebru et al., 2018/2021):
what the data set holds, how it was collected, under which consent rules, what was removed
and what is known to be missing, and what each column means.

    from tootlake.analysis.datasheet import build_datasheet, render_markdown, render_html
    sheet = build_datasheet("./lake")
    print(render_markdown(sheet))

Everything comes from the lake itself: the `posts`, `deletes` and `rejects` views, and the
`audit` table (one row per collect, replay or compact run: `tootlake.lake.audit`), so a copy
of the lake carries its own account. Values that came from the fediverse (instance names,
versions, reasons) are escaped in the HTML page and made one line, without control
characters, in Markdown.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from tootlake._version import __version__
from tootlake.errors import ConfigError
from tootlake.lake.reader import open_lake
from tootlake.record import arrow_schema
from tootlake.text import counted

__all__ = ["Datasheet", "build_datasheet", "render_html", "render_markdown", "write_datasheet"]


@dataclass
class Datasheet:
    lake: str
    generated_at: str = ""
    posts: int = 0
    authors: int = 0
    first_post: str | None = None
    last_post: str | None = None
    observed_on: int = 0  # instances posts were collected from
    origins: int = 0  # home servers of the authors
    runs: Counter[str] = field(default_factory=Counter)  # command -> runs
    first_run: str | None = None
    last_run: str | None = None
    versions: list[str] = field(default_factory=list)  # tootlake versions that wrote it
    # host -> {mode, status, version, reconnects, errors, runs}
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # host -> why the policy refused it
    policies: list[str] = field(default_factory=list)  # SHA-256 of policy files used
    consent: Counter[str] = field(default_factory=Counter)  # consent mode -> runs
    skipped: Counter[str] = field(default_factory=Counter)  # gate / reason -> posts skipped
    levels: Counter[str] = field(default_factory=Counter)  # consent level -> posts in the lake
    pseudonymised: bool = False
    key_ids: list[str] = field(default_factory=list)
    deletes_received: int = 0
    deletes_in_lake: int = 0
    # the deletes table by why the post went: received (a server sent it), deleted and
    # account_gone (found by revalidate), not_public, a consent gate
    deletes_by_reason: Counter[str] = field(default_factory=Counter)
    deleted_rows_removed: int = 0
    retain_days: list[float] = field(default_factory=list)
    retention_removed: int = 0
    rejects: Counter[str] = field(default_factory=Counter)  # reason -> statuses
    reconnects: int = 0
    errors: int = 0
    columns: list[tuple[str, str, str]] = field(default_factory=list)  # name, type, meaning

    def as_dict(self) -> dict[str, Any]:
        return {key: (dict(v) if isinstance(v, Counter) else v) for key, v in vars(self).items()}


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def build_datasheet(lake: str) -> Datasheet:
    """Gather the datasheet of `lake` (a folder or s3:// URL) from its views."""
    from datetime import UTC

    sheet = Datasheet(lake, generated_at=datetime.now(UTC).isoformat(timespec="seconds"))
    con = open_lake(lake)
    try:
        row = con.execute(
            "SELECT count(*), count(DISTINCT acct), min(created_at), max(created_at), "
            "count(DISTINCT observed_on), count(DISTINCT origin) FROM posts"
        ).fetchone()
        assert row is not None
        sheet.posts, sheet.authors = int(row[0]), int(row[1])
        sheet.first_post, sheet.last_post = _iso(row[2]), _iso(row[3])
        sheet.observed_on, sheet.origins = int(row[4]), int(row[5])
        (deletes,) = con.execute("SELECT count(*) FROM deletes").fetchone() or (0,)
        sheet.deletes_in_lake = int(deletes)
        for reason, n in con.execute(
            "SELECT coalesce(reason, 'received'), count(*) FROM deletes GROUP BY 1"
        ).fetchall():
            sheet.deletes_by_reason[str(reason)] += int(n)
        for reason, n in con.execute("SELECT reason, count(*) FROM rejects GROUP BY 1").fetchall():
            sheet.rejects[str(reason)] += int(n)
        try:  # a lake written before posts recorded their consent has no such column
            levels = con.execute("SELECT consent, count(*) FROM posts GROUP BY 1").fetchall()
        except duckdb.Error:
            levels = []
        for level, n in levels:
            sheet.levels[str(level or "not recorded")] += int(n)
        audit = con.execute(
            "SELECT started_at, command, tootlake_version, policy_sha256, consent, "
            "pseudonymised, key_id, refused, instances_json, deletes_received, "
            "deleted_rows_removed, skipped_json, retain_days, retention_removed "
            "FROM audit ORDER BY started_at"
        ).fetchall()
    finally:
        con.close()
    for (started, command, version, policy, consent, pseudo, key, refused, details,
         received, removed, skipped, retain, retained) in audit:  # fmt: skip
        sheet.runs[command] += 1
        sheet.first_run = sheet.first_run or _iso(started)
        sheet.last_run = _iso(started)
        _add_once(sheet.versions, version)
        _add_once(sheet.policies, policy)
        if command in ("collect", "replay"):
            sheet.consent[consent or "not recorded"] += 1
        sheet.pseudonymised = sheet.pseudonymised or bool(pseudo)
        _add_once(sheet.key_ids, key)
        sheet.deletes_received += int(received or 0)
        sheet.deleted_rows_removed += int(removed or 0)
        if retain is not None:
            _add_once(sheet.retain_days, float(retain))
        sheet.retention_removed += int(retained or 0)
        for reason, n in _json_object(skipped).items():
            if isinstance(n, int):
                sheet.skipped[str(reason)] += n
        instance_details = _json_object(details)
        for host in refused or ():
            why = _json_object(instance_details.get(host)).get("detail")
            sheet.refused[host] = str(why or "")
        for host, entry in instance_details.items():
            entry = _json_object(entry)
            if host in (refused or ()):
                continue
            known = sheet.instances.setdefault(host, {"runs": 0, "reconnects": 0, "errors": 0})
            known["runs"] += 1
            for key_name in ("mode", "status", "version"):
                if entry.get(key_name):
                    known[key_name] = str(entry[key_name])
            for counter in ("reconnects", "errors"):
                value = entry.get(counter)
                if isinstance(value, int):
                    known[counter] += value
                    setattr(sheet, counter, getattr(sheet, counter) + value)
    sheet.columns = [
        (f.name, str(f.type), (f.metadata or {}).get(b"doc", b"").decode()) for f in arrow_schema()
    ]
    return sheet


def _add_once(items: list[Any], value: Any) -> None:
    if value is not None and value not in items:
        items.append(value)


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# ----------------------------------------------------------------------------------------
# rendering: sections of (heading, [paragraph or table]) shared by Markdown and HTML

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

Table = tuple[list[str], list[list[str]]]


def _sections(s: Datasheet) -> list[tuple[str, list[str | Table]]]:
    n = (
        f"{counted(s.posts, 'post')} by {counted(s.authors, 'account')} of "
        f"{counted(s.origins, 'server')}"
    )
    span = f"from {s.first_post} to {s.last_post}" if s.first_post else "no posts"
    runs = ", ".join(f"{k} {v}" for k, v in sorted(s.runs.items())) or "none recorded"
    consent = ", ".join(f"{k} ({counted(v, 'run')})" for k, v in sorted(s.consent.items()))
    consent = consent or "unknown"
    skipped = [[reason, f"{count:,}"] for reason, count in sorted(s.skipped.items())]
    levels = [[level, f"{count:,}"] for level, count in sorted(s.levels.items())]
    why = {
        "received": "deleted: the server sent the delete",
        "deleted": "deleted: found by revalidate",
        "gone_from_observer": "gone from the instance that showed it (revalidate)",
        "account_gone": "account deleted or suspended (revalidate)",
        "not_public": "no longer public (revalidate)",
    }
    by_reason = [
        [why.get(reason, f"consent gate {reason} (a later copy or revalidate)"), f"{count:,}"]
        for reason, count in sorted(s.deletes_by_reason.items())
    ]
    instances = [
        [host, e.get("mode", "?"), e.get("version", "?"), str(e["runs"]), str(e["reconnects"]),
         str(e["errors"])]
        for host, e in sorted(s.instances.items())
    ]  # fmt: skip
    rejects = [[reason, f"{n:,}"] for reason, n in s.rejects.most_common()]
    retention = (
        f"posts older than {', '.join(f'{d:g}' for d in s.retain_days)} days (by created_at), "
        f"and sightings and rejects older than that, were removed: {s.retention_removed:,} rows"
        if s.retain_days
        else "none: everything collected is kept"
    )
    return [
        (
            "Motivation and composition",
            [
                f"Public Mastodon posts collected with tootlake into a Delta Lake ({s.lake}): {n}, "
                f"seen on {counted(s.observed_on, 'instance')}, {span} (created_at, UTC).",
                "Each row of `posts` is the latest version of one post (by uri); deleted posts are "
                "absent. Only public posts are collected; boosts are not.",
            ],
        ),
        (
            "Collection process",
            [
                f"Runs recorded in the lake's audit table: {runs} (first {s.first_run or '-'}, "
                f"last {s.last_run or '-'}), by tootlake {', '.join(s.versions) or __version__}.",
                (
                    [
                        "instance",
                        "collection method",
                        "software version",
                        "runs",
                        "reconnects",
                        "errors",
                    ],
                    instances,
                ),
                "Collection method: stream (the streaming API, backfilled from the public timeline "
                "after every reconnect) or poll (the public timeline, paged).",
                *(
                    [
                        (
                            ["instance refused by the policy", "why"],
                            [[h, w] for h, w in sorted(s.refused.items())],
                        )
                    ]
                    if s.refused
                    else []
                ),
                "Instance policy files used (SHA-256): "
                + (", ".join(s.policies) if s.policies else "none"),
            ],
        ),  # fmt: skip
        (
            "Consent and preprocessing",
            [
                f"Consent mode: {consent}. opt-out: posts of accounts that set noindex or whose "
                "bio or a profile field carries #nobot, #nobots, #noindex, #nosearch or "
                "#noarchive are skipped; opt-in: also those of accounts not indexable "
                "(Mastodon's search opt-in) or locked; none: opted-out accounts were kept "
                "(--include-opted-out); +skip-locked, +skip-bots: those were skipped too. "
                "Each gate and its limits: docs/research.md.",
                (["skipped because (gate)", "statuses"], skipped),
                (["consent its author showed", "posts in the lake"], levels),
                "Pseudonymised: "
                + (
                    f"yes (key ids {', '.join(s.key_ids)})"
                    if s.pseudonymised
                    else "no: accounts, uris and texts are as the servers published them"
                ),
            ],
        ),  # fmt: skip
        (
            "Deletes and retention",
            [
                f"Delete events received and honoured: {s.deletes_received:,} in the runs recorded "
                f"({s.deletes_in_lake:,} in the deletes table); rows of deleted posts removed "
                f"physically by compaction: {s.deleted_rows_removed:,}. Deletes made while no "
                "stream was connected are found only by `tootlake revalidate` (which re-asks "
                "each instance for the posts it showed), within the interval it is run at.",
                (["removed because", "posts"], by_reason),
                f"Retention: {retention}.",
            ],
        ),
        (
            "Known gaps",
            [
                f"Stream reconnects: {s.reconnects:,}; errors: {s.errors:,} (each reconnect is "
                "backfilled; what happened to older posts meanwhile may be missed).",
                (["rejected because", "statuses"], rejects),
                "Rejected statuses are kept in the rejects table, not in posts.",
            ],
        ),
        ("Columns of posts", [(["column", "type", "meaning"], [list(c) for c in s.columns])]),
    ]


def _md_cell(value: str) -> str:
    text = " ".join(_CONTROL.sub(" ", str(value)).split())
    # as the report's Markdown: a server's version or a reject's reason (which quotes the
    # status) is text, never raw HTML, a link or an image
    text = html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("](", "]\\(")


def _no_rows(header: list[str]) -> str:
    """What an empty table says instead: its first column's name, and none."""
    return f"{header[0][:1].upper()}{header[0][1:]}: none."


def render_markdown(sheet: Datasheet) -> str:
    out = [f"# Datasheet: {_md_cell(sheet.lake)}", "", f"Generated {sheet.generated_at}.", ""]
    for heading, parts in _sections(sheet):
        out += [f"## {heading}", ""]
        for part in parts:
            if isinstance(part, str):
                out += [_md_cell(part), ""]
                continue
            header, rows = part
            if not rows:
                out += [_md_cell(_no_rows(header)), ""]
                continue
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("")
    return "\n".join(out)


def render_html(sheet: Datasheet) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Datasheet: {e(sheet.lake)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>",
        "</head><body>",
        f"<h1>Datasheet: {e(sheet.lake)}</h1>",
        f"<p>Generated {e(sheet.generated_at)}.</p>",
    ]
    for heading, parts in _sections(sheet):
        out.append(f"<h2>{e(heading)}</h2>")
        for part in parts:
            if isinstance(part, str):
                out.append(f"<p>{e(part)}</p>")
                continue
            header, rows = part
            if not rows:
                out.append(f"<p>{e(_no_rows(header))}</p>")
                continue
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            out += [
                "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows
            ]
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_datasheet(lake: str, output: str | None = None, *, as_html: bool = False) -> str:
    """The datasheet of `lake` as Markdown (or HTML), written to `output` when given."""
    sheet = build_datasheet(lake)
    text = render_html(sheet) if as_html else render_markdown(sheet)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise ConfigError(f"Cannot write {output}: {exc.strerror or exc}") from exc
    return text
