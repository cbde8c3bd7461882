"""The talk-shaped generator (bench/talkshape.py) makes statuses shaped like the real ones,
deterministically."""

from __future__ import annotations

import collections
import itertools
import re
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import talkshape as workload
from talkshape import (
    LONGEST_CHARACTERS,
    TALK,
    TALK_START,
    generate_events,
    generate_statuses,
    status_lines,
    write_jsonl,
    write_sse,
)
from tootlake.errors import ConfigError
from tootlake.pipeline import replay
from tootlake.record import from_status, host_of, skip_reason
from tootlake.sources.replay import ReplaySource

ROOT = Path(__file__).resolve().parents[1]
REAL_CANDIDATES = [ROOT / "tests" / "fixtures" / "real", ROOT.parent / "shared" / "real-data"]


def _real_statuses() -> list[dict[str, Any]]:
    for folder in REAL_CANDIDATES:
        path = folder / "mastodonsocial.json"
        if path.exists():
            return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    pytest.skip("the real recordings (shared/real-data/mastodonsocial.json) are not here")


@pytest.fixture(scope="module")
def sample() -> list[tuple[str, dict[str, Any]]]:
    """20,000 statuses: the distribution checks' sample."""
    return list(generate_statuses(20_000, seed=7))


@pytest.fixture(scope="module")
def posts(sample: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return [from_status(status, host) for host, status in sample]


def test_same_seed_gives_the_same_statuses_byte_for_byte() -> None:
    first = b"".join(status_lines(500, seed=11))
    again = b"".join(status_lines(500, seed=11))
    other = b"".join(status_lines(500, seed=12))
    assert first == again
    assert first != other


def test_statuses_are_fresh_dicts_not_shared_with_the_generator() -> None:
    statuses = [s for _, s in generate_statuses(300, seed=2)]
    accounts = [id(s["account"]) for s in statuses]
    assert len(set(accounts)) == len(accounts)
    statuses[0]["account"]["username"] = "changed"
    again = [s for _, s in generate_statuses(300, seed=2)]
    assert again[0]["account"]["username"] != "changed"


def test_statuses_have_the_keys_of_real_recorded_ones() -> None:
    real = _real_statuses()
    real_local = {k for s in real if "application" in s for k in s}
    real_remote = {k for s in real if "application" not in s for k in s}
    real_account = {k for s in real for k in s["account"]} - {"noindex"}
    made = list(generate_statuses(3000, seed=1))
    local = [s for host, s in made if host_of(s["uri"]) == host]
    remote = [s for host, s in made if host_of(s["uri"]) != host]
    assert local and remote
    assert all(set(s) == real_local for s in local)
    assert all(set(s) == real_remote for s in remote)
    assert all(set(s["account"]) - {"noindex"} == real_account for _, s in made)


def test_every_status_becomes_a_post(
    sample: list[tuple[str, dict[str, Any]]], posts: list[Any]
) -> None:
    assert len(posts) == len(sample)
    reasons = collections.Counter(skip_reason(s) for _, s in sample)
    assert set(reasons) <= {None, "noindex", "opt_out_tag"}
    assert reasons["noindex"] + reasons["opt_out_tag"] < 0.03 * len(sample)


def test_every_status_has_its_own_uri_and_id(sample: list[tuple[str, dict[str, Any]]]) -> None:
    assert len({s["uri"] for _, s in sample}) == len(sample)
    assert len({s["id"] for _, s in sample}) == len(sample)


def test_local_statuses_carry_the_app_and_an_unqualified_acct(
    sample: list[tuple[str, dict[str, Any]]],
) -> None:
    local = [s for host, s in sample if host_of(s["uri"]) == host]
    assert local
    for status in local:
        assert "application" in status
        assert "@" not in status["account"]["acct"]
        assert host_of(status["account"]["url"]) == "mastodon.social"
        assert "noindex" in status["account"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", status["created_at"])
        assert status["id"] == status["uri"].rsplit("/", 1)[1]
    assert sum(1 for s in local if s["application"] and s["application"]["name"] == "Web") > 0


def test_remote_statuses_are_qualified_app_less_and_second_precise(
    sample: list[tuple[str, dict[str, Any]]],
) -> None:
    remote = [s for host, s in sample if host_of(s["uri"]) != host]
    assert len(remote) > len(sample) / 2
    for status in remote:
        origin = host_of(status["uri"])
        assert "application" not in status
        assert "noindex" not in status["account"]
        user, _, host = status["account"]["acct"].partition("@")
        assert user == status["account"]["username"]
        assert host == origin
        if "/users/" in status["uri"]:  # Mastodon origins: second precision, url on the origin
            assert status["created_at"].endswith(".000Z")
            assert host_of(status["url"]) == origin
            assert status["id"] != status["uri"].rsplit("/", 1)[1]  # the observer's own id
    assert any("/notes/" in s["uri"] or "/objects/" in s["uri"] for s in remote)


def test_content_is_html_as_mastodon_renders_it(
    sample: list[tuple[str, dict[str, Any]]],
) -> None:
    contents = [s["content"] for _, s in sample]
    assert all(c == "" or c.startswith("<p>") for c in contents)
    assert any('class="mention hashtag" rel="tag">#<span>' in c for c in contents)
    assert any('<span class="h-card"><a href="' in c for c in contents)
    assert any(
        '<span class="invisible">https://' in c and 'class="ellipsis"' in c for c in contents
    )
    assert any("<br />" in c for c in contents) and any("</p><p>" in c for c in contents)
    tagged = [s for _, s in sample if s["tags"]]
    assert all(
        t["url"].startswith("https://mastodon.social/tags/") for s in tagged for t in s["tags"]
    )
    assert any(s["media_attachments"] for _, s in sample)
    assert any(s["card"] for _, s in sample)
    assert any(s["poll"] for _, s in sample)
    assert any(s["emojis"] for _, s in sample)
    assert any(s["mentions"] for _, s in sample)


def test_hashtags_and_mentions_agree_with_the_content(
    sample: list[tuple[str, dict[str, Any]]],
) -> None:
    for _, status in itertools.islice(sample, 3000):
        for tag in status["tags"]:
            assert f"#<span>{tag['name']}</span>" in status["content"].lower()
        for mention in status["mentions"]:
            assert f'href="{mention["url"]}"' in status["content"]


def test_the_longest_post_exists_only_when_asked() -> None:
    longest = [
        from_status(s, h).characters for h, s in generate_statuses(3000, seed=4, longest=True)
    ]
    assert longest.count(LONGEST_CHARACTERS) == 1
    assert max(longest) == LONGEST_CHARACTERS
    plain = [from_status(s, h).characters for h, s in generate_statuses(3000, seed=4)]
    assert max(plain) < 20_000


def test_distinct_users_instances_and_languages_are_exact(posts: list[Any]) -> None:
    ratio = 20_000 / TALK["posts"]
    assert len({p.acct for p in posts}) == round(TALK["users"] * ratio)
    assert len({p.origin for p in posts}) == round(TALK["instances"] * ratio)
    assert len({p.language for p in posts if p.language}) == TALK["languages"]


def test_explicit_users_and_instances_are_honoured() -> None:
    made = [from_status(s, h) for h, s in generate_statuses(5000, seed=5, users=900, instances=60)]
    assert len({p.acct for p in made}) == 900
    assert len({p.origin for p in made}) == 60


def test_distribution_looks_like_the_talks_data(posts: list[Any]) -> None:
    n = len(posts)
    languages = collections.Counter(p.language for p in posts if p.language)
    top = [code for code, _ in languages.most_common(5)]
    assert top[0] == "en" and 0.4 < languages["en"] / n < 0.65
    assert {"de", "ja"} <= set(top[:4])
    assert 130 < statistics.fmean(p.characters for p in posts) < 175
    assert min(p.characters for p in posts) == 0
    by_language = {
        code: statistics.median(p.characters for p in posts if p.language == code)
        for code in ("en", "ja", "zh")
    }
    assert by_language["ja"] < by_language["en"] and by_language["zh"] < by_language["en"]
    bots = sum(p.bot for p in posts) / n
    assert 0.04 < bots < 0.11
    assert 0.08 < sum(p.local for p in posts) / n < 0.3
    origins = collections.Counter(p.origin for p in posts)
    assert origins.most_common(1)[0][0] == "mastodon.social"
    apps = collections.Counter(p.app for p in posts if p.app and not p.bot)
    assert apps.most_common(1)[0][0] == "Web"
    assert {"Ivory", "Tusky", "Mastodon for iOS"} <= set(apps)
    per_user = collections.Counter(p.acct for p in posts)
    top_share = sum(c for _, c in per_user.most_common(len(per_user) // 10)) / n
    assert top_share > 0.35  # Zipf: the top tenth of authors write a good share


def test_times_follow_the_window_and_a_daily_rhythm(posts: list[Any]) -> None:
    end = TALK_START + timedelta(days=10)
    assert all(TALK_START - timedelta(hours=5) <= p.created_at < end for p in posts)
    hours = collections.Counter(p.created_at.hour for p in posts)
    assert hours[15] > 1.8 * hours[4]
    days = collections.Counter(p.created_at.date() for p in posts if p.created_at >= TALK_START)
    assert len(days) == 10 and days[TALK_START.date()] < min(days.values()) * 2


def test_the_talks_terms_appear_on_their_days() -> None:
    hits: dict[str, collections.Counter[str]] = {
        t: collections.Counter() for t in ("balloon", "earthquake", "superbowl", "chatgpt")
    }
    per_day: collections.Counter[str] = collections.Counter()
    for host, status in generate_statuses(30_000, seed=9):
        post = from_status(status, host)
        day = post.created_at.date().isoformat()
        per_day[day] += 1
        text = post.text.lower()
        for term, counter in hits.items():
            if re.search(rf"\b{term}\b", text) or term in post.tags:
                counter[day] += 1

    def rate(term: str, day: str) -> float:
        return hits[term][day] / per_day[day]

    assert all(sum(c.values()) > 10 for c in hits.values())
    assert rate("earthquake", "2023-02-06") > 2 * rate("earthquake", "2023-02-04")
    assert rate("balloon", "2023-02-04") > 2 * rate("balloon", "2023-02-08")
    assert rate("superbowl", "2023-02-12") > 2 * rate("superbowl", "2023-02-08")


def test_several_observers_each_get_their_local_posts() -> None:
    seen: collections.Counter[str] = collections.Counter()
    for host, status in generate_statuses(
        4000, seed=3, observed_on={"mastodon.social": 3, "hachyderm.io": 1}
    ):
        seen[host] += 1
        local = host_of(status["uri"]) == host
        assert ("application" in status) is local
        assert ("@" not in status["account"]["acct"]) is local
    assert set(seen) == {"mastodon.social", "hachyderm.io"}
    assert seen["mastodon.social"] > 2 * seen["hachyderm.io"]


def test_other_windows_and_daily_volumes() -> None:
    start = datetime(2024, 6, 1, tzinfo=UTC)
    made = [from_status(s, h) for h, s in generate_statuses(2000, seed=1, start=start, days=2,
                                                             daily=[1, 3])]  # fmt: skip
    days = collections.Counter(p.created_at.date() for p in made if p.created_at >= start)
    assert set(days) == {start.date(), start.date() + timedelta(days=1)}
    assert days[start.date() + timedelta(days=1)] > 2 * days[start.date()]


def test_bad_arguments_say_what_to_give() -> None:
    with pytest.raises(ConfigError, match="timezone-aware"):
        next(generate_statuses(10, start=datetime(2023, 2, 3)))
    with pytest.raises(ConfigError, match="days"):
        next(generate_statuses(10, days=0))
    with pytest.raises(ConfigError, match="one host"):
        write_sse("/dev/null", 10, observed_on={"a.example": 1.0})  # type: ignore[arg-type]


def test_events_edit_and_delete_earlier_statuses() -> None:
    events = list(generate_events(3000, seed=6, edits=0.05, deletes=0.05))
    updates = {e.payload["id"]: e for e in events if e.kind == "update"}  # type: ignore[index]
    edits = [e for e in events if e.kind == "status.update"]
    deletes = [e for e in events if e.kind == "delete"]
    assert len(updates) == 3000 and edits and deletes
    assert [e.at_ms for e in events] == sorted(e.at_ms for e in events)
    for edit in edits:
        assert isinstance(edit.payload, dict)
        original = updates[edit.payload["id"]].payload
        assert isinstance(original, dict)
        assert edit.payload["uri"] == original["uri"] and edit.payload["edited_at"]
        assert edit.payload["content"] != original["content"]
    assert all(d.payload in updates and updates[d.payload].at_ms < d.at_ms for d in deletes)  # type: ignore[index]


def test_sse_capture_is_framed_like_a_real_server(tmp_path: Path) -> None:
    path = tmp_path / "public.sse"
    counts = write_sse(path, 400, seed=8, days=0.5, edits=0.05, deletes=0.05)
    data = path.read_bytes()
    assert data.startswith(b":)\nevent: update\ndata: {") or data.startswith(b":)\n:thump\n")
    assert counts["bytes"] == len(data)
    assert data.count(b"event: update\ndata: {") == counts["updates"] == 400
    assert data.count(b"event: status.update\ndata: {") == counts["edits"] > 0
    assert data.count(b":thump\n") == counts["heartbeats"] > 1000  # one per 15 s of stream
    for block in data.split(b"\n\n"):
        lines = [line for line in block.split(b"\n") if line and not line.startswith(b":")]
        if lines:
            assert lines[0].startswith(b"event: ") and lines[1].startswith(b"data: ")
            if lines[0] == b"event: delete":
                assert re.fullmatch(rb"data: \d+", lines[1])
    events = list(ReplaySource([path], observed_on="mastodon.social").events())
    kinds = collections.Counter(e.kind for e in events)
    assert kinds == {"update": 400, "status.update": counts["edits"], "delete": counts["deletes"]}


def test_sse_capture_replays_into_the_lake(tmp_path: Path) -> None:
    path = tmp_path / "public.sse"
    counts = write_sse(path, 300, seed=10, days=0.2)
    stats = replay([path], str(tmp_path / "lake"), observed_on="mastodon.social")
    assert stats.bad == 0
    assert stats.posts + sum(stats.skipped.values()) == counts["updates"]
    assert stats.edits == counts["edits"] and stats.deletes == counts["deletes"]


def test_jsonl_keeps_the_observer_of_each_status(tmp_path: Path) -> None:
    path = tmp_path / "statuses.jsonl"
    written = write_jsonl(path, 200, seed=2, observed_on={"mastodon.social": 1, "mas.to": 1})
    assert written == path.stat().st_size
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(lines) == 200 and {line["observed_on"] for line in lines} == {
        "mastodon.social",
        "mas.to",
    }
    events = list(ReplaySource([path]).events())
    assert [e.observed_on for e in events] == [line["observed_on"] for line in lines]
    bare = tmp_path / "bare.jsonl"
    write_jsonl(bare, 50, seed=2, wrapped=False)
    assert all("uri" in orjson.loads(line) for line in bare.read_bytes().splitlines())


def test_all_is_honest() -> None:
    public = {name for name in dir(workload) if not name.startswith("_")}
    assert set(workload.__all__) <= public
    for name in workload.__all__:
        assert getattr(workload, name).__doc__ or name.isupper()
