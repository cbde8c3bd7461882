"""Consent gates against the simulated fediverse, over real sockets: four collectors, one per
consent policy, read the same two instances; each lake holds exactly the posts the simulator's
own authors let through (its ground truth, judged from the authors' flags, not by tootlake's
code), each gate counts exactly the copies it skipped, and each post records the consent its
author showed."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from tootlake.cli import main
from tootlake.lake.reader import open_lake
from tootlake.record import Consent
from tootlake.simulate import InstanceSettings
from tootlake.sources.fleet import InstanceSpec

from .conftest import Running, all_connected, assert_lake_matches, wait_for

TOKEN = "consent-test-token-0123456789"

POLICIES = {
    "opt-out": Consent(),
    "opt-in": Consent("opt-in"),
    "none": Consent("none"),
    "opt-out+skip-locked+skip-bots": Consent(skip_locked=True, skip_bots=True),
}


def _expected_level(author, policy: Consent) -> str:
    """The consent a stored post's author showed, from the simulator's flags."""
    if author.opt_out_tag:
        return "none"  # only the "none" mode stores these
    if author.indexable and not author.locked:
        return "opt-in"
    return "opt-out"


@pytest.mark.slow
def test_each_consent_mode_stores_exactly_what_it_should(fediverse, tmp_path: Path):
    sim = fediverse(instances=2, seed=21, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    lakes = {name: str(tmp_path / name.replace("+", "_")) for name in POLICIES}
    collectors = {
        name: Running(
            [InstanceSpec(url, TOKEN) for url in fed.urls],
            lakes[name],
            include_opted_out=False,
            consent=policy,
            state_dir=str(tmp_path / f"state-{name}"),
        )
        for name, policy in POLICIES.items()
    }
    wait_for(all_connected(sim, len(POLICIES)), what="every collector's streams")
    sim.call(fed.publish, 1500, rate=1000)
    for collector in collectors.values():
        collector.settle()
    results = {name: c.stop() for name, c in collectors.items()}
    posts = sim.call(fed.posts)
    authors = {p.uri: p.author for p in posts}
    # copies from elsewhere of a noindex author's post, after its home copy: skipped as
    # noindex too, or before it: written, then withdrawn when the home copy comes
    elsewhere = sum(
        len(p.copies) - 1 for p in posts if p.streamable and p.author.noindex and not p.deleted
    )

    gates_seen: set[str] = set()
    for name, policy in POLICIES.items():
        truth = sim.call(fed.truth, consent=policy)
        lake = lakes[name]
        assert_lake_matches(lake, truth)
        stats = results[name].stats
        # every copy a gate failed, counted once under that gate; nothing else skipped
        skipped, expected = dict(stats.skipped), dict(truth.gates)
        low = expected.pop("noindex", 0)
        assert low <= skipped.pop("noindex", 0) <= low + elsewhere, name
        assert skipped == expected, name
        if policy.mode != "none":
            assert sum(stats.withdrawn.values()) <= elsewhere, name
        gates_seen |= set(truth.gates)
        con = open_lake(lake)
        levels = dict(con.execute("SELECT uri, consent FROM posts").fetchall())
        for uri, level in levels.items():
            author = authors[uri]
            if name == "none" and author.noindex:
                continue  # stored from its home copy ("none") or a remote one, which cannot tell
            assert level == _expected_level(author, policy), (name, uri)
        assert sum(stats.consent.values()) == stats.posts
        (audited,) = con.execute("SELECT consent FROM audit").fetchone()
        assert audited == policy.describe() == name
    # the accounts and posts of the issue: each flag, moved accounts, quote posts
    published = [p for p in posts if p.streamable]
    assert any(p.author.moved_to for p in published) and any(p.quoted for p in published)
    assert any(p.author.noindex and p.author.indexable for p in published)
    # the workload exercised every gate but the ones public streams never carry
    assert gates_seen == {"noindex", "opt_out_tag", "not_indexable", "locked", "bot"}

    opt_in = set(_uris(lakes["opt-in"]))
    opt_out = set(_uris(lakes["opt-out"]))
    everyone = set(_uris(lakes["none"]))
    assert opt_in < opt_out < everyone
    assert all(authors[u].indexable and not authors[u].locked for u in opt_in)
    # profile-field opt-outs and the new bio tags reached the collector, and were honoured
    tagged = {u for u in everyone - opt_out if authors[u].opt_out_tag}
    assert any(authors[u].fields and "#" in str(authors[u].fields) for u in tagged)
    assert not any(authors[u].opt_out_tag for u in opt_out)


def _uris(lake: str) -> list[str]:
    try:
        return [u for (u,) in open_lake(lake).execute("SELECT uri FROM posts").fetchall()]
    except duckdb.Error as exc:  # pragma: no cover - a failure names the lake
        raise AssertionError(f"cannot read {lake}: {exc}") from exc


def test_contradicting_policies_are_refused_with_a_reason():
    from tootlake.errors import ConfigError

    with pytest.raises(ConfigError, match="choose one"):
        Consent.of("opt-in", include_opted_out=True)
    with pytest.raises(ConfigError, match="Unknown consent mode 'opt_in'"):
        Consent("opt_in")


_TAG = re.compile(r"#(?:nobots?|noindex|nosearch|noarchive)\b", re.IGNORECASE)


def _opted_out(account: dict) -> bool:
    """Independently of tootlake.text: a tag in the bio or a field, markup removed."""
    texts = [account.get("note") or ""]
    texts += [f"{f.get('name')} {f.get('value')}" for f in account.get("fields") or []]
    return account.get("noindex") is True or any(
        _TAG.search(re.sub(r"<[^>]*>", "", t)) for t in texts
    )


@pytest.mark.parametrize("mode", ["opt-out", "opt-in"])
def test_replay_of_real_statuses_applies_the_consent_mode(tmp_path: Path, mode: str):
    """The recorded real statuses (2022 and 2025 servers, some with `indexable`, locked and
    opted-out accounts) replayed with `tootlake replay --consent`: the lake holds the uris an
    independent reading of the raw statuses lets through."""
    source = resources.files("tootlake.simulate").joinpath("data/statuses.jsonl")
    statuses = [json.loads(line) for line in source.read_text("utf-8").split("\n") if line]
    expected = set()
    for status in statuses:
        account = status["account"]
        if status.get("visibility") != "public" or status.get("reblog") or _opted_out(account):
            continue
        if mode == "opt-in" and (account.get("indexable") is not True or account.get("locked")):
            continue
        expected.add(status["uri"])
    lake = str(tmp_path / "lake")
    result = CliRunner().invoke(
        main, ["replay", str(source), "--lake", lake, "--consent", mode, "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    con = open_lake(lake)
    assert {u for (u,) in con.execute("SELECT uri FROM posts").fetchall()} == expected
    assert 0 < len(expected) < len(statuses)
    (audited,) = con.execute("SELECT consent FROM audit").fetchone()
    assert audited == mode
    if mode == "opt-in":
        assert "not_indexable" in result.output and "locked" in result.output
