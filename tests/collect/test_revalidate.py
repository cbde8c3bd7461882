"""`tootlake revalidate` against the simulated fediverse, over real sockets: deletes, account
deletions and suspensions, and posts made non-public while the collector was stopped are gone
from `posts` afterwards, and nothing else is; a bounded run resumes; 429s are waited out and
5xx answers delete nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from tootlake.cli import main
from tootlake.lake.audit import AuditEntry, record_run
from tootlake.lake.reader import open_lake
from tootlake.record import Rejection, decode_status, skip_reason
from tootlake.revalidate import UNUSABLE, PseudonymisedLake, RevalidateOptions, revalidate, verdict
from tootlake.simulate import InstanceSettings
from tootlake.sources.fleet import InstanceSpec
from tootlake.sources.lookup import (
    ACTIVE,
    SUSPENDED,
    UNREADABLE,
    LookupOptions,
    parse_account_state,
)

from ..conftest import real_status
from .conftest import Running, all_connected, assert_lake_matches, wait_for

TOKEN = "revalidate-TOKEN-0123456789"
FAST = RevalidateOptions(
    lookups=LookupOptions(connect_timeout=2.0, request_timeout=2.0, max_wait=10.0),
    backoff_base=0.05,
    backoff_cap=0.2,
    max_errors_in_a_row=3,
)


def collected(fediverse: Any, lake: str, posts: int = 60, **settings: Any) -> Any:
    """A fediverse of three instances, `posts` published and collected by a streaming
    collector that is then stopped: the lake holds exactly the truth. Federated copies arrive
    0.3 s after the home one, as between real servers, so each post is written from its home
    copy (the collector reads in gathers of 20 ms: copies arriving together are written from
    whichever socket it reads first), and a 404 there speaks for its account."""
    sim = fediverse(
        instances=3,
        seed=5,
        settings=InstanceSettings(token=TOKEN, **settings),
        delays=dict.fromkeys(range(3), 0.3),
    )
    fed = sim.fed
    collector = Running([InstanceSpec(url, TOKEN) for url in fed.urls], lake)
    wait_for(all_connected(sim), what="three streams")
    sim.call(fed.publish, posts, rate=150)
    wait_for(lambda: collector.handed_out() > 0, what="posts collected")
    collector.settle()
    collector.stop()
    assert_lake_matches(lake, sim.call(fed.truth, include_opted_out=True))
    return sim


def specs(sim: Any, token: str | None = TOKEN) -> list[InstanceSpec]:
    return [InstanceSpec(url, token) for url in sim.fed.urls]


def lake_posts(lake: str) -> dict[str, tuple[str, str, str, bool]]:
    """uri -> (observed_on, id, acct, opted_out) of `posts`."""
    con = open_lake(lake)
    rows = con.execute("SELECT uri, observed_on, id, acct, opted_out FROM posts").fetchall()
    return {
        uri: (observed_on, id_, acct, opted_out) for uri, observed_on, id_, acct, opted_out in rows
    }


def accounts_by_posts(rows: dict[str, tuple[str, str, str, bool]]) -> list[tuple[str, list[str]]]:
    """(acct, its uris) in the lake, most posts first."""
    by: dict[str, list[str]] = {}
    for uri, (_, _, acct, _) in rows.items():
        by.setdefault(acct, []).append(uri)
    return sorted(by.items(), key=lambda item: (-len(item[1]), item[0]))


@pytest.mark.slow
def test_revalidate_removes_exactly_what_changed_while_the_collector_was_stopped(fediverse, lake):
    sim = collected(fediverse, lake, posts=80)
    fed = sim.fed
    before = lake_posts(lake)
    accounts = accounts_by_posts(before)
    deleted_acct, deleted_account_uris = accounts[0]
    suspended_acct, suspended_account_uris = accounts[1]
    assert len(deleted_account_uris) >= 2 and len(suspended_account_uris) >= 2
    others = [u for u in sorted(before) if before[u][2] not in (deleted_acct, suspended_acct)]
    deleted, unlisted, private = others[:4], others[4], others[5]
    kept = set(before) - set(deleted_account_uris) - set(suspended_account_uris)
    kept -= {*deleted, unlisted, private}

    # the collector is stopped: none of this reaches it
    for uri in deleted:
        sim.call(fed.delete, uri)
    sim.call(fed.remove_account, deleted_acct)
    sim.call(fed.remove_account, suspended_acct, suspend=True)
    sim.call(fed.restrict, unlisted, "unlisted")
    sim.call(fed.restrict, private, "private")
    truth = sim.call(fed.truth, include_opted_out=True)
    assert truth.gone_accounts == {deleted_acct: "deleted", suspended_acct: "suspended"}
    assert {unlisted, private} <= truth.restricted
    assert set(lake_posts(lake)) == set(before)  # not yet

    result = revalidate(
        lake, instances=specs(sim), older_than=0, include_opted_out=True, options=FAST
    )

    after = lake_posts(lake)
    assert set(after) == kept == truth.uris
    assert_lake_matches(lake, truth)
    stats = result.stats
    assert stats.errors == 0 and stats.remaining == 0 and stats.due == len(before)
    # 404s: the deleted posts, the private one (404, as on Mastodon) and the posts of the
    # two accounts; a 404 speaks for the author only from the author's home instance
    gone = len(deleted) + 1 + len(deleted_account_uris) + len(suspended_account_uris)
    assert (
        stats.removed["account_gone"]
        + stats.removed["deleted"]
        + stats.removed["gone_from_observer"]
        == gone
    )
    assert stats.removed["not_public"] == 1  # unlisted: served as such
    # every post was written from its home copy (`collected`): both accounts' homes said so
    # (a 404 from another observer: test_revalidate_hostile.py, test_audit_research_revalidate)
    assert stats.gone_accounts == 2 and stats.removed["gone_from_observer"] == 0
    home = {uri: before[uri][0] == before[uri][2].rpartition("@")[2] for uri in before}
    reasons = dict(
        open_lake(lake)
        .execute(
            "SELECT uri, reason FROM deletes WHERE reason IN ('deleted', 'gone_from_observer')"
        )
        .fetchall()
    )
    assert all(home[u] == (why != "gone_from_observer") for u, why in reasons.items()), reasons
    # the deletes table holds them, each with its uri, and the audit says what ran
    con = open_lake(lake)
    removed = {row[0] for row in con.execute("SELECT uri FROM deletes").fetchall()}
    assert removed == set(before) - kept
    audit = con.execute(
        "SELECT deletes_revalidated, instances FROM audit WHERE command = 'revalidate'"
    ).fetchall()
    assert audit == [(len(before) - len(kept), sorted({row[0] for row in before.values()}))]
    # every asked post has its check; those of gone accounts needed no question each
    (checked,) = con.execute("SELECT count(*) FROM checks WHERE outcome <> 'error'").fetchone()
    assert checked == stats.checked <= len(before)

    # a second run finds every remaining post checked recently: nothing to ask
    again = revalidate(lake, instances=specs(sim), include_opted_out=True, options=FAST)
    assert again.stats.due == 0 and again.stats.requests == 0
    assert set(lake_posts(lake)) == kept


@pytest.mark.slow
def test_revalidate_applies_the_consent_rules_to_what_the_instances_show_now(fediverse, lake):
    """Collected with --include-opted-out: by default revalidation keeps the lake's own
    policy (the audit says "none"), so no opt-out removes anything; asked for the opt-out
    mode, it removes every post of the authors whose copies show an opt-out (noindex,
    #nobot), on whichever instance."""
    from tootlake.record import Consent
    from tootlake.revalidate import lake_consent

    sim = collected(fediverse, lake, posts=120)
    before = lake_posts(lake)
    opted = {acct for (_, _, acct, opted_out) in before.values() if opted_out}
    assert opted, "the workload has opted-out authors"
    assert lake_consent(lake) == Consent("none")
    first = revalidate(lake, instances=specs(sim), older_than=0, options=FAST)
    assert first.stats.opted_out_accounts == 0 and set(lake_posts(lake)) == set(before)

    result = revalidate(lake, instances=specs(sim), older_than=0, consent=Consent(), options=FAST)

    expected = {uri for uri, row in before.items() if row[2] not in opted}
    assert set(lake_posts(lake)) == expected
    # an author's home speaks for all their posts; another instance for its own copy
    homes = {acct for acct in opted if any(
        row[2] == acct and row[0] == acct.rpartition("@")[2] for row in before.values()
    )}  # fmt: skip
    assert result.stats.opted_out_accounts == len(homes)
    assert result.stats.deletes == len(before) - len(expected)
    assert result.stats.errors == 0


@pytest.mark.slow
def test_a_bounded_run_stops_at_its_budget_and_the_next_run_finishes(fediverse, lake):
    sim = collected(fediverse, lake, posts=60)
    fed = sim.fed
    before = lake_posts(lake)
    deleted = sorted(before)[:6]
    for uri in deleted:
        sim.call(fed.delete, uri)

    first = revalidate(
        lake,
        instances=specs(sim),
        older_than=0,
        max_requests=10,
        include_opted_out=True,
        options=FAST,
    )
    assert first.stats.requests == 10
    assert 0 < first.stats.checked <= 10
    assert first.stats.remaining == len(before) - first.stats.checked
    partial = set(lake_posts(lake))
    assert set(before) - set(deleted) <= partial  # nothing else removed

    # the next run, with the default policy, asks only what the first did not
    second = revalidate(lake, instances=specs(sim), include_opted_out=True, options=FAST)
    assert second.stats.remaining == 0
    assert second.stats.due == first.stats.remaining
    assert set(lake_posts(lake)) == set(before) - set(deleted)
    assert_lake_matches(lake, sim.call(fed.truth, include_opted_out=True))
    con = open_lake(lake)
    once = con.execute(
        "SELECT count(*), count(DISTINCT (observed_on, id)) FROM checks WHERE outcome <> 'error'"
    ).fetchone()
    assert once == (len(before), len(before))  # each post asked exactly once over both runs


@pytest.mark.slow
def test_a_stopped_run_keeps_what_it_found_and_the_next_run_goes_on(fediverse, lake):
    sim = collected(fediverse, lake, posts=60)
    fed = sim.fed
    before = lake_posts(lake)
    deleted = sorted(before)[:8]
    for uri in deleted:
        sim.call(fed.delete, uri)
    for inst in fed.instances:
        sim.call(inst.slow, 0.1, path="/api/v1/statuses")
    stop = threading.Event()

    first = revalidate(
        lake,
        instances=specs(sim),
        older_than=0,
        include_opted_out=True,
        options=FAST,
        stop=stop,
        on_progress=lambda result: stop.set(),  # Ctrl-C at the first progress report
    )

    assert first.stats.checked > 0 and first.stats.remaining > 0
    assert {e["detail"] for e in first.instances.values()} == {"stopped"}
    assert set(before) - set(lake_posts(lake)) <= set(deleted)  # only deleted ones went
    con = open_lake(lake)
    (checked,) = con.execute("SELECT count(*) FROM checks").fetchone()
    assert checked == first.stats.checked  # what was asked is recorded, nothing lost

    second = revalidate(lake, instances=specs(sim), include_opted_out=True, options=FAST)
    assert second.stats.due == first.stats.remaining and second.stats.remaining == 0
    assert set(lake_posts(lake)) == set(before) - set(deleted)


_KILLED_RUN = """
import os, sys
from tootlake.revalidate import RevalidateOptions, revalidate
from tootlake.sources.fleet import InstanceSpec
lake, *urls = sys.argv[1:]
specs = [InstanceSpec(url, os.environ["REVALIDATE_TEST_TOKEN"]) for url in urls]
revalidate(lake, instances=specs, older_than=0, include_opted_out=True,
           options=RevalidateOptions(flush_every=3))
"""


@pytest.mark.slow
def test_a_killed_run_is_continued_by_the_next(fediverse, lake):
    sim = collected(fediverse, lake, posts=60)
    fed = sim.fed
    before = lake_posts(lake)
    deleted = sorted(before)[:10]
    for uri in deleted:
        sim.call(fed.delete, uri)
    for inst in fed.instances:
        sim.call(inst.slow, 0.15, path="/api/v1/statuses")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOTLAKE_")}
    env["REVALIDATE_TEST_TOKEN"] = TOKEN
    run = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, lake, *fed.urls], env=env, stderr=subprocess.DEVNULL
    )
    log = Path(lake) / "checks" / "_delta_log"
    wait_for(lambda: len(list(log.glob("*.json"))) >= 2, timeout=60, what="two commits of checks")
    run.send_signal(signal.SIGKILL)
    assert run.wait(10) == -signal.SIGKILL
    con = open_lake(lake)
    (asked,) = con.execute("SELECT count(DISTINCT (observed_on, id)) FROM checks").fetchone()
    assert 0 < asked < len(before)
    assert set(before) - set(lake_posts(lake)) <= set(deleted)

    for inst in fed.instances:
        sim.call(inst.slow, 0.0)
    second = revalidate(lake, instances=specs(sim), include_opted_out=True, options=FAST)
    assert second.stats.due == len(before) - asked  # what the killed run recorded is not asked
    assert second.stats.remaining == 0
    assert set(lake_posts(lake)) == set(before) - set(deleted)


@pytest.mark.slow
def test_rate_limits_are_waited_out(fediverse, lake):
    # A small budget (12 requests per 2 s window): spread by the X-RateLimit-* headers, and
    # two 429s with Retry-After on top, each waited before asking again.
    sim = collected(fediverse, lake, posts=40, rate_limit=(12, 2.0))
    fed = sim.fed
    before = lake_posts(lake)
    deleted = sorted(before)[:3]
    for uri in deleted:
        sim.call(fed.delete, uri)
    time.sleep(2.0)  # the collector's window is over
    sim.call(fed.fail, 429, 2, instances=[0], path="/api/v1/statuses")

    started = time.monotonic()
    result = revalidate(
        lake, instances=specs(sim), older_than=0, include_opted_out=True, options=FAST
    )
    elapsed = time.monotonic() - started

    stats = result.stats
    assert stats.rate_limited == 2 and stats.rate_wait >= 2.0
    assert elapsed >= 2.0
    assert stats.errors == 0 and stats.remaining == 0
    assert set(lake_posts(lake)) == set(before) - set(deleted)
    first = fed.instances[0].stats
    assert first["failed_429"] == 2
    # the budget spread the rest: the server throttled nothing beyond the two it was told to
    assert sum(inst.stats["throttled"] - inst.stats["failed_429"] for inst in fed.instances) == 0


@pytest.mark.slow
def test_server_errors_and_timeouts_delete_nothing_and_are_asked_again(fediverse, lake):
    sim = collected(fediverse, lake, posts=60)
    fed = sim.fed
    before = lake_posts(lake)
    hosts = fed.hosts
    on = {host: sorted(u for u, row in before.items() if row[0] == host) for host in hosts}
    deleted = [on[hosts[0]][0], on[hosts[1]][0], on[hosts[2]][0]]
    for uri in deleted:
        sim.call(fed.delete, uri)
    sim.call(fed.fail, 503, None, instances=[0], path="/api/v1/statuses")
    sim.call(fed.instances[1].slow, 3.0, path="/api/v1/statuses")  # beyond the 2 s timeout

    first = revalidate(
        lake, instances=specs(sim), older_than=0, include_opted_out=True, options=FAST
    )

    assert set(lake_posts(lake)) == set(before) - {deleted[2]}
    assert first.stats.errors == 2 * FAST.max_errors_in_a_row  # then each was left alone
    assert first.instances[hosts[0]]["status"] == "stopped"
    assert "503" in first.instances[hosts[0]]["detail"]
    assert "timed out" in first.instances[hosts[1]]["detail"]
    assert first.instances[hosts[2]]["status"] == "done"
    assert first.stats.remaining == len(on[hosts[0]]) + len(on[hosts[1]])

    sim.call(fed.clear_faults)
    sim.call(fed.instances[1].slow, 0.0)
    second = revalidate(lake, instances=specs(sim), include_opted_out=True, options=FAST)
    assert second.stats.errors == 0 and second.stats.remaining == 0
    assert set(lake_posts(lake)) == set(before) - set(deleted)


@pytest.mark.slow
def test_lookups_that_need_a_token_get_the_instances_token(fediverse, lake):
    sim = collected(fediverse, lake, posts=30, lookups_need_token=True)
    before = lake_posts(lake)
    refused = revalidate(
        lake, instances=specs(sim, token=None), older_than=0, include_opted_out=True, options=FAST
    )
    assert refused.stats.checked == 0 and refused.stats.errors > 0
    assert set(lake_posts(lake)) == set(before)
    ok = revalidate(lake, instances=specs(sim), older_than=0, include_opted_out=True, options=FAST)
    assert ok.stats.errors == 0 and ok.stats.present == len(before)


@pytest.mark.slow
def test_the_command_prints_one_summary_line(fediverse, lake, tmp_path):
    sim = collected(fediverse, lake, posts=30)
    fed = sim.fed
    before = lake_posts(lake)
    sim.call(fed.delete, sorted(before)[0])
    tokens = tmp_path / "tokens"
    tokens.write_text("".join(f"{url}={TOKEN}\n" for url in fed.urls))
    tokens.chmod(0o600)
    args = [
        "revalidate",
        lake,
        "--older-than",
        "0",
        "--include-opted-out",
        "--max-requests",
        "1000",
    ]
    args += ["--token-file", str(tokens)]
    for url in fed.urls:
        args += ["--instance", url]
    outcome = CliRunner().invoke(main, args)
    assert outcome.exit_code == 0, outcome.output
    line = outcome.output.strip().splitlines()[-1]
    assert line.startswith(f"Revalidated {lake}: checked {len(before)} posts")
    assert "1 deleted" in line or "1 gone from the instance that showed them" in line
    assert "0 errors" in line and "0 remaining" in line
    assert TOKEN not in outcome.output


def test_a_pseudonymised_lake_is_refused(lake):
    record_run(
        lake,
        AuditEntry(
            command="collect", started_at=datetime.now(UTC), pseudonymised=True, key_id="ab12"
        ),
    )
    with pytest.raises(PseudonymisedLake, match="pseudonymised"):
        revalidate(lake)
    outcome = CliRunner().invoke(main, ["revalidate", lake])
    assert outcome.exit_code == 1
    assert "pseudonymised" in outcome.output and "cannot be looked up" in outcome.output


def test_a_lake_replayed_with_pseudonyms_is_refused(lake):
    from tootlake.pipeline import replay
    from tootlake.record.pseudonymize import Pseudonymizer

    from ..conftest import REAL

    replay([REAL / "mastodonsocial.json"], lake, pseudonymizer=Pseudonymizer(b"k" * 32))
    with pytest.raises(PseudonymisedLake, match="keyed hashes"):
        revalidate(lake)


def test_an_empty_lake_has_nothing_to_revalidate(tmp_path):
    (tmp_path / "lake").mkdir()
    result = revalidate(str(tmp_path / "lake"))
    assert result.stats.due == 0 and result.stats.requests == 0


# -- the account parser -----------------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=300))
def test_any_bytes_give_an_account_state(body):
    assert parse_account_state(body) in (ACTIVE, SUSPENDED, UNREADABLE)


@given(st.dictionaries(st.text(max_size=8), _json, max_size=6), _json)
def test_an_account_is_suspended_only_when_it_says_suspended_true(account, suspended):

    account = {**account, "suspended": suspended}
    state = parse_account_state(json.dumps(account).encode())
    assert state == (SUSPENDED if suspended is True else ACTIVE)
    account.pop("suspended")
    assert parse_account_state(json.dumps(account).encode()) == ACTIVE


@given(_json.filter(lambda value: not isinstance(value, dict)))
def test_what_is_not_an_object_is_no_account(value):

    assert parse_account_state(json.dumps(value).encode()) == UNREADABLE


# -- what an answer means: a hostile or broken body never removes a post ---------------------

_URI = "https://mastodon.social/users/someone/statuses/1"


@given(st.binary(max_size=2000) | _json.map(lambda v: json.dumps(v).encode()))
def test_a_body_removes_a_post_only_as_a_valid_status_with_its_uri(body):
    status = decode_status(body)
    outcome = verdict(status, _URI, lambda s: skip_reason(s))
    assert outcome != "deleted"
    if outcome != UNUSABLE:
        assert not isinstance(status, Rejection) and status.uri == _URI


@given(
    st.sampled_from(["public", "unlisted", "private", "direct", None, 7]),
    st.booleans(),
    st.sampled_from(["", " #nobot", " #NoIndex"]),
)
def test_a_real_status_is_judged_by_its_uri_visibility_and_consent(visibility, same, tag):
    raw = real_status("mastodonsocial.json", 1)
    uri = raw["uri"] if same else raw["uri"] + "0"
    raw = {**raw, "visibility": visibility}
    raw["account"] = {**raw["account"], "note": (raw["account"].get("note") or "") + tag}
    outcome = verdict(decode_status(json.dumps(raw).encode()), uri, lambda s: skip_reason(s))
    if not same:
        assert outcome == UNUSABLE
    elif visibility != "public":
        assert outcome == "not_public"
    elif tag:
        assert outcome == "opt_out_tag"
    else:
        assert outcome == "present"
    assert verdict(None, uri, lambda s: skip_reason(s)) == "deleted"
