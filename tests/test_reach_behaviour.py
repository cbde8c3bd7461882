"""Federation reach and behaviour (content warnings, edits, deletes, bots, accounts' age): each
analysis equals the answer computed here from the raw statuses, never from the lake.

Reach: the real statuses of mastodon.social's stream, written as a collector writes them (a
sighting of every copy), plus relays with known delays: copies seen on two other instances
a known number of seconds after the post was written. Behaviour: the recorded real statuses
replayed, and the small lake (smalllake.py) for deletes."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from tootlake.analysis import queries
from tootlake.analysis.report import build_report, render_report
from tootlake.lake.reader import open_lake
from tootlake.lake.writer import LakeWriter
from tootlake.pipeline import replay
from tootlake.record import Sighting, from_status, skip_reason

from .conftest import REAL, real_lines, real_status
from .smalllake import write_inputs
from .test_languages import REAL_FILES, latest_posts

HOST = "mastodon.social"
# relay -> seconds after created_at it sees the n-th post (None: it does not)
RELAYS = {
    "relay.example": lambda n: 30 + 7 * n if n % 3 == 0 else None,
    "far.example": lambda n: 4000 + 3600 * n if n % 5 == 0 else None,
}


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, DuckDB's quantile_cont)."""
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    low, high = math.floor(pos), math.ceil(pos)
    return xs[low] + (xs[high] - xs[low]) * (pos - low)


def collected_posts() -> list[tuple[object, dict[str, datetime]]]:
    """(post, instance -> first seen at) for each real status, as collected: seen on
    mastodon.social 2 s after it was written, and on the relays that carry it."""
    out = []
    for n, line in enumerate(real_lines("mastodonsocial.json")):
        status = json.loads(line)
        if skip_reason(status) is not None:
            continue
        created = datetime.fromisoformat(status["created_at"].replace("Z", "+00:00"))
        post = from_status(status, HOST, ingested_at=created + timedelta(seconds=2))
        seen = {HOST: created + timedelta(seconds=2)}
        for relay, delay in RELAYS.items():
            seconds = delay(n)
            if seconds is not None:
                seen[relay] = created + timedelta(seconds=seconds)
        out.append((post, seen))
    return out


@pytest.fixture(scope="module")
def reach_lake(tmp_path_factory) -> str:
    lake = str(tmp_path_factory.mktemp("reach") / "lake")
    writer = LakeWriter(lake, sightings=True)
    for post, seen in collected_posts():
        writer.add([post])
        for relay, at in seen.items():
            if relay != HOST:
                writer.add([Sighting(post.uri, relay, f"{relay}-{post.id}", at)])
    writer.flush()
    return lake


def hand_reach() -> list[dict[str, object]]:
    rows = []
    for post, seen in collected_posts():
        origin = urlsplit(post.uri).hostname
        created = datetime.fromisoformat(post.created_at.isoformat())
        elsewhere = [at for host, at in seen.items() if host != origin]
        delay = max((min(elsewhere) - created).total_seconds(), 0) if elsewhere else None
        rows.append({"origin": origin, "created": created, "n": len(seen), "delay": delay})
    return rows


def expected_reach_by_origin(reach: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`queries.reach_by_origin` computed by hand from per-post rows (origin, n instances that
    saw it, delay or None): the 20 origins with the most posts."""
    per_origin: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in reach:
        per_origin[row["origin"]].append(row)
    return sorted(
        (
            {
                "origin": origin,
                "posts": len(rows),
                "mean_instances": round(sum(r["n"] for r in rows) / len(rows), 2),
                "max_instances": max(r["n"] for r in rows),
                "seen_elsewhere_share": round(
                    sum(r["delay"] is not None for r in rows) / len(rows), 4
                ),
            }
            for origin, rows in per_origin.items()
        ),
        key=lambda r: (-r["posts"], r["origin"]),
    )[:20]


def test_reach_by_origin_equals_the_hand_computed_answer(reach_lake):
    got = queries.reach_by_origin(open_lake(reach_lake)).to_pylist()
    assert got == expected_reach_by_origin(hand_reach())
    assert max(r["max_instances"] for r in got) == 3  # mastodon.social and both relays


def test_reach_daily_equals_the_hand_computed_answer(reach_lake):
    per_day: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in hand_reach():
        per_day[row["created"].astimezone(UTC).strftime("%Y-%m-%d")].append(row)
    expected = [
        {
            "day": day,
            "posts": len(rows),
            "mean_instances": round(sum(r["n"] for r in rows) / len(rows), 2),
            "seen_elsewhere_share": round(sum(r["delay"] is not None for r in rows) / len(rows), 4),
        }
        for day, rows in sorted(per_day.items())
    ]
    assert queries.reach_daily(open_lake(reach_lake)).to_pylist() == expected


def test_reach_delay_distribution_equals_the_hand_computed_answer(reach_lake):
    delays = [r["delay"] for r in hand_reach() if r["delay"] is not None]
    starts = [start for _, start in queries.DELAY_BUCKETS]
    counts = Counter(max(i for i, s in enumerate(starts) if d >= s) for d in delays)
    expected = [
        {
            "delay": label,
            "from_seconds": start,
            "posts": counts[i],
            "share": round(counts[i] / len(delays), 4),
            "median_seconds": round(quantile(delays, 0.5), 1),
            "p90_seconds": round(quantile(delays, 0.9), 1),
        }
        for i, (label, start) in enumerate(queries.DELAY_BUCKETS)
    ]
    got = queries.reach_delay(open_lake(reach_lake)).to_pylist()
    assert got == expected
    # remote posts reach mastodon.social in 2 s; local ones reach a relay 30 s or more later
    assert got[0]["posts"] > 0 and sum(r["posts"] for r in got[1:]) > 0


def test_a_replayed_lake_has_no_reach_and_the_report_says_why(tmp_path, lake):
    """`replay` writes a relayed copy as a version in posts_all, at the time of the replay:
    no sightings, so no reach (rather than delays of years)."""
    jsonl, _ = write_inputs(tmp_path / "input")
    replay([jsonl], lake)
    report = build_report(lake)
    for name in ("reach_by_origin", "reach_daily", "reach_delay"):
        assert report[name].num_rows == 0
    assert "`replay` does not" in render_report(report, "table")


# ----------------------------------------------------------------------------------------
# behaviour, on the replayed real statuses


@pytest.fixture(scope="module")
def real_con(tmp_path_factory):
    lake = str(tmp_path_factory.mktemp("behaviour") / "lake")
    replay(REAL_FILES, lake)
    return open_lake(lake)


@pytest.mark.parametrize("by", ["language", "origin"])
def test_content_warnings_equal_the_hand_computed_answer(real_con, by):
    posts = list(latest_posts().values())
    groups: dict[str | None, list[object]] = defaultdict(list)
    for post in posts:
        groups[getattr(post, by)].append(post)
    expected = sorted(
        (
            {
                by: key,
                "posts": len(group),
                "with_warning": sum(p.spoiler_text != "" for p in group),
                "warning_share": round(sum(p.spoiler_text != "" for p in group) / len(group), 4),
            }
            for key, group in groups.items()
        ),
        key=lambda r: (-r["posts"], r[by] is None, r[by] or ""),
    )[:20]
    got = queries.content_warnings(real_con, by).to_pylist()
    assert got == expected
    assert sum(r["with_warning"] for r in got) > 0


def test_edits_equal_the_hand_computed_answer(real_con):
    posts = latest_posts()
    first_edit: dict[str, datetime] = {}
    created: dict[str, datetime] = {}
    from .conftest import all_real_statuses

    for _, observed_on, status in all_real_statuses():
        if skip_reason(status) is not None:
            continue
        post = from_status(status, observed_on)
        if post.edited_at is not None:
            first_edit[post.uri] = min(first_edit.get(post.uri, post.edited_at), post.edited_at)
            created[post.uri] = min(created.get(post.uri, post.created_at), post.created_at)
    delays = [max((first_edit[u] - created[u]).total_seconds(), 0) for u in first_edit]
    edited = sum(p.edited_at is not None for p in posts.values())
    assert queries.edits(real_con).to_pylist() == [
        {
            "posts": len(posts),
            "edited": edited,
            "edited_share": round(edited / len(posts), 4),
            "median_seconds_to_edit": round(quantile(delays, 0.5), 1),
            "p90_seconds_to_edit": round(quantile(delays, 0.9), 1),
        }
    ]
    assert edited > 0


def test_bots_daily_equals_the_hand_computed_answer(real_con):
    per_day: dict[str, list[bool]] = defaultdict(list)
    for post in latest_posts().values():
        per_day[post.created_at.astimezone(UTC).strftime("%Y-%m-%d")].append(post.bot)
    expected = [
        {"day": day, "posts": len(bots), "bot_posts": sum(bots),
         "bot_share": round(sum(bots) / len(bots), 4)}
        for day, bots in sorted(per_day.items())
    ]  # fmt: skip
    got = queries.bots_daily(real_con).to_pylist()
    assert got == expected
    assert sum(r["bot_posts"] for r in got) > 0


def test_account_age_equals_the_hand_computed_answer(real_con):
    days = []
    unknown = 0
    for post in latest_posts().values():
        if post.account_created_at is None:
            unknown += 1
            continue
        micros = (post.created_at - post.account_created_at) // timedelta(microseconds=1)
        days.append(max(micros, 0) // 86_400_000_000)
    total = len(days) + unknown
    starts = [start for _, start in queries.AGE_BUCKETS]
    counts = Counter(max(i for i, s in enumerate(starts) if d >= s) for d in days)
    median = sorted(days)[math.ceil(len(days) / 2) - 1]  # the lower median
    expected = [
        {"age": label, "from_days": start, "posts": counts[i],
         "share": round(counts[i] / total, 4), "median_days": median}
        for i, (label, start) in enumerate(queries.AGE_BUCKETS)
    ]  # fmt: skip
    if unknown:
        expected.append(
            {"age": "unknown", "from_days": None, "posts": unknown,
             "share": round(unknown / total, 4), "median_days": median}
        )  # fmt: skip
    assert queries.account_age(real_con).to_pylist() == expected


def test_deletes_equal_the_hand_computed_answer(tmp_path, lake):
    """smalllake: bob's post (b.example) is deleted by a delete event naming its local id on
    a.example (1003: not a snowflake, so no time to delete); then a real post of
    mastodon.social, whose id is a snowflake, is deleted: its time to delete is from its
    creation to the moment tootlake received the delete."""
    jsonl, sse = write_inputs(tmp_path / "input")
    replay([jsonl, REAL / "mastodonsocial.json"], lake)
    replay([sse], lake, observed_on="a.example")
    (row,) = queries.deletes(open_lake(lake)).to_pylist()
    stream = [json.loads(line) for line in real_lines("mastodonsocial.json")]
    posts = 7 + len({st["uri"] for st in stream if skip_reason(st) is None})  # + smalllake's 7
    assert (row["posts"], row["deleted"], row["unmatched_deletes"]) == (posts, 1, 0)
    assert row["deleted_share"] == round(1 / posts, 4)
    assert row["median_seconds_to_delete"] is None  # 1003 encodes no time

    status = real_status("mastodonsocial.json", 1)  # local to mastodon.social
    written = datetime.fromisoformat(status["created_at"].replace("Z", "+00:00"))
    delete = tmp_path / "delete.sse"
    delete.write_text(f":)\nevent: delete\ndata: {status['id']}\n\n", encoding="utf-8")
    before = datetime.now(UTC)
    replay([delete], lake, observed_on="mastodon.social")
    after = datetime.now(UTC)
    (row,) = queries.deletes(open_lake(lake)).to_pylist()
    assert (row["posts"], row["deleted"]) == (posts, 2)
    low, high = (before - written).total_seconds(), (after - written).total_seconds()
    assert low - 1 <= row["median_seconds_to_delete"] == row["p90_seconds_to_delete"] <= high + 1


def test_a_delete_of_a_post_never_collected_is_unmatched(tmp_path, lake):
    jsonl, _ = write_inputs(tmp_path / "input")
    replay([jsonl], lake)
    sse = tmp_path / "other.sse"
    sse.write_text(":)\nevent: delete\ndata: 424242\n\n", encoding="utf-8")
    replay([sse], lake, observed_on="a.example")
    (row,) = queries.deletes(open_lake(lake)).to_pylist()
    assert (row["posts"], row["deleted"], row["unmatched_deletes"]) == (7, 0, 1)


def test_the_report_has_every_new_section(real_con):
    report = build_report(con=real_con)
    for name in (
        "language_tags", "language_confusions", "untagged_languages", "reach_by_origin",
        "reach_daily", "reach_delay", "content_warnings_by_language",
        "content_warnings_by_origin", "edits", "deletes", "bots_daily", "account_age",
    ):  # fmt: skip
        assert name in report
    assert report["edits"].num_rows == report["deletes"].num_rows == 1
