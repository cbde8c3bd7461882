"""Instance policy: `instances check` reads each instance's rules, terms and privacy policy
over real sockets (the simulator serves them) and flags what they say about collection;
`collect --policy` refuses the instances a policy denies, and the lake's audit says so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tootlake.cli import main
from tootlake.errors import ConfigError
from tootlake.lake.reader import open_lake
from tootlake.simulate import InstanceSettings
from tootlake.sources.fleet import InstanceSpec
from tootlake.sources.policy import load_policy

from .conftest import Running, assert_lake_matches, wait_for

TOKEN = "t0ken-for-policy"


def check_json(*args: str) -> dict[str, dict]:
    result = CliRunner().invoke(main, ["instances", "check", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return {r["instance"]: r for r in json.loads(result.stdout)}


def test_instances_check_shows_rules_terms_privacy_and_flags(fediverse):
    sim = fediverse(instances=3, seed=1)
    urls, hosts = sim.fed.urls, sim.fed.hosts
    reports = check_json(*[arg for url in urls for arg in ("--instance", url)])
    plain, strict, archive = (reports[h]["policy"] for h in hosts)
    # instance 0: two harmless rules, terms and privacy policy published
    assert plain["rules_status"] == "2 rules" and plain["flags"] == {}
    assert plain["terms_url"] == f"{urls[0]}/terms-of-service"
    assert plain["privacy_url"] == f"{urls[0]}/privacy-policy"
    assert plain["rules_sha256"] and not plain["problems"]
    # instance 1: its third rule forbids scraping for research, and asks bots to say so;
    # no terms of service (404: not published)
    assert strict["rules_status"] == "3 rules"
    assert set(strict["flags"]) == {"research", "scraping", "bots"}
    assert strict["terms_status"] == "not published" and strict["terms_url"] is None
    assert strict["rules_sha256"] != plain["rules_sha256"]
    # instance 2: the description speaks of archiving
    assert set(archive["flags"]) == {"archiving"}
    table = CliRunner().invoke(main, ["instances", "check", "--instance", urls[1]])
    assert table.exit_code == 0, table.output
    assert "No scraping of posts for research" in table.output and "not published" in table.output


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (InstanceSettings(policy_raw=b"<!DOCTYPE html><html><body>Sign in</body></html>"), "HTML"),
        (InstanceSettings(policy_raw=b"\xff\xfe{[garbage"), "not JSON"),
        (InstanceSettings(policy_raw=b"[" + b" " * (3 << 20) + b"]"), "larger than"),
        (InstanceSettings(rules={"text": 5}), "rules: not a list"),
        (InstanceSettings(rules=[5, {"text": 7}, {"text": "Fine", "hint": []}]), "rules[0]"),
        (InstanceSettings(terms=None, privacy=None, rules=None), None),
    ],
)
def test_hostile_policy_documents_are_shown_never_a_crash(fediverse, settings, problem):
    sim = fediverse(instances=1, seed=2, settings=settings)
    (report,) = check_json("--instance", sim.fed.urls[0]).values()
    policy = report["policy"]
    if problem is None:
        assert policy["problems"] == []
        return
    assert any(problem in p for p in policy["problems"]), policy["problems"]
    assert report["action"] in ("stream", "poll", "needs token")  # the instance is still judged
    table = CliRunner().invoke(main, ["instances", "check", "--instance", sim.fed.urls[0]])
    assert table.exit_code == 0, table.output


def write_policy(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_collect_refuses_instances_the_policy_denies_and_audits_it(fediverse, lake, tmp_path):
    sim = fediverse(instances=3, seed=5, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    denied = fed.hosts[0]  # the others: rules that differ (default_policy)
    path = write_policy(
        tmp_path / "policy.toml",
        f'default = "allow"\n[instances."{denied}"]\ndecision = "deny"\n'
        'note = "rules forbid research"\ncontact = "admin@example.org"\n',
    )
    policy = load_policy(path)
    specs = [InstanceSpec(u, TOKEN) for u in fed.urls]
    collector = Running(specs, lake, policy=policy)
    wait_for(lambda: collector.fleet is not None and len(collector.fleet.workers) == 2,
             what="two workers")  # fmt: skip
    sim.call(fed.publish, 60, rate=200)
    collector.settle()
    result = collector.stop()
    assert set(result.refused) == {denied} and "rules forbid research" in result.refused[denied]
    allowed = [h for h in fed.hosts if h != denied]
    assert denied not in result.health
    assert_lake_matches(lake, sim.call(fed.truth, allowed, include_opted_out=True))
    con = open_lake(lake)
    try:
        row = con.execute(
            "SELECT command, policy_sha256, consent, pseudonymised, instances, refused "
            "FROM audit WHERE command = 'collect'"
        ).fetchone()
    finally:
        con.close()
    assert row == ("collect", policy.sha256, "none", False, sorted(allowed), [denied])
    con = open_lake(lake)
    try:
        (details,) = con.execute("SELECT instances_json FROM audit").fetchone()
    finally:
        con.close()
    details = json.loads(details)
    assert details[denied]["status"] == "refused by the policy"
    # the rules of the instances read, hashed when the collection began
    assert all(len(details[h]["rules_sha256"]) == 64 for h in allowed)
    assert details[allowed[0]]["rules_sha256"] != details[allowed[1]]["rules_sha256"]


def test_collect_command_says_what_the_policy_refused(fediverse, tmp_path, monkeypatch):
    monkeypatch.setenv("TOOTLAKE_CONFIG", os.devnull)
    sim = fediverse(instances=2, seed=6, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    path = write_policy(
        tmp_path / "policy.toml",
        f'default = "deny"\n[instances."{fed.hosts[0]}"]\ndecision = "allow"\n',
    )
    args = ["collect", "--lake", str(tmp_path / "lake"), "--duration", "1.5", "-q",
            "--policy", path]  # fmt: skip
    for url in fed.urls:
        args += ["--instance", url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Refused by the policy: 1 instance (not read)" in result.output
    assert f"{fed.hosts[1]}: the policy {path}: not listed, default deny" in result.output
    everyone = write_policy(tmp_path / "deny.toml", 'default = "deny"\n')
    refused = CliRunner().invoke(main, [*args[:-4], "--policy", everyone, *args[-4:]])
    assert refused.exit_code == 1 and "nothing to collect" in refused.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('default = "maybe"\n', "default must be"),
        ('[instances."a.example"]\ndecision = "yes"\n', "decision must be"),
        ('[instances."a.example"]\ndecision = "deny"\ncolour = 1\n', "unknown key"),
        ("default = \n", "not valid TOML"),
        ('[instances."a.example"]\ndecision = "deny"\nnote = 5\n', "note must be a string"),
    ],
)
def test_a_bad_policy_file_is_an_error_naming_it(tmp_path, text, message):
    path = write_policy(tmp_path / "p.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_policy(path)


def test_a_policy_decides_by_host_and_hashes_its_file(tmp_path):
    path = write_policy(
        tmp_path / "p.toml",
        'default = "deny"\n[instances."https://Fosstodon.org/"]\ndecision = "allow"\n',
    )
    policy = load_policy(path)
    assert policy.decide("fosstodon.org")[0] is True
    assert policy.decide("mastodon.social") == (
        False,
        f"the policy {path}: not listed, default deny",
    )
    assert len(policy.sha256) == 64


def test_collect_applies_retention_at_the_end_of_its_run(fediverse, lake):
    sim = fediverse(instances=1, seed=7, settings=InstanceSettings(token=TOKEN))
    fed = sim.fed
    collector = Running([InstanceSpec(u, TOKEN) for u in fed.urls], lake, retain_days=0)
    wait_for(lambda: collector.fleet is not None, what="the fleet")
    sim.call(fed.publish, 40, rate=200)
    collector.settle()
    result = collector.stop()
    assert result.retention is not None
    assert result.retention["posts_all"] == result.stats.posts > 0
    con = open_lake(lake)
    try:
        assert con.execute("SELECT count(*) FROM posts").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM posts_all").fetchone() == (0,)
        (removed,) = con.execute(
            "SELECT retention_removed FROM audit WHERE command = 'collect'"
        ).fetchone()
    finally:
        con.close()
    assert removed == sum(result.retention.values())


def test_instances_check_says_what_the_policy_decides(fediverse, tmp_path):
    sim = fediverse(instances=2, seed=8)
    hosts = sim.fed.hosts
    path = write_policy(
        tmp_path / "p.toml", f'default = "allow"\n[instances."{hosts[1]}"]\ndecision = "deny"\n'
    )
    args = ["--policy", path, "--no-rules", *[a for u in sim.fed.urls for a in ("--instance", u)]]
    reports = check_json(*args)
    assert reports[hosts[0]]["decision"].startswith("allow")
    assert reports[hosts[1]]["decision"] == f"deny: the policy {path}: deny"
    assert reports[hosts[0]]["policy"] is None  # --no-rules
    table = CliRunner().invoke(main, ["instances", "check", *args])
    assert table.exit_code == 0 and "deny" in table.output
