"""The consent policy from the config file, the environment and the flags: each layer's word
replaces the one below it, contradictions and unknown words are errors naming where."""

from __future__ import annotations

import os

import pytest

from tootlake.errors import ConfigError
from tootlake.record import Consent
from tootlake.settings import load_settings


@pytest.fixture
def config(tmp_path, monkeypatch):
    for name in ("INCLUDE_OPTED_OUT", "CONSENT", "SKIP_LOCKED", "SKIP_BOTS"):
        monkeypatch.delenv(f"TOOTLAKE_{name}", raising=False)
    path = tmp_path / "tootlake.toml"
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(path))

    def write(text: str) -> None:
        path.write_text(text, encoding="utf-8")

    write("")
    return write


def policy(**flags) -> Consent:
    return load_settings(**flags).consent_policy()


def test_the_default_is_opt_out(config):
    assert policy() == Consent()


def test_each_layer_replaces_the_one_below(config, monkeypatch):
    config("include_opted_out = true\nskip_bots = true\n")
    assert policy() == Consent("none", skip_bots=True)
    # a flag's mode beats the config file's include_opted_out (it used to keep "none")
    assert policy(consent="opt-out") == Consent(skip_bots=True)
    assert policy(consent="opt-in", skip_bots=False) == Consent("opt-in")
    monkeypatch.setenv("TOOTLAKE_CONSENT", "opt-in")
    assert policy() == Consent("opt-in", skip_bots=True)
    assert policy(include_opted_out=True) == Consent("none", skip_bots=True)
    monkeypatch.setenv("TOOTLAKE_INCLUDE_OPTED_OUT", "false")
    monkeypatch.delenv("TOOTLAKE_CONSENT")
    assert policy() == Consent(skip_bots=True)  # "false" below "true": back to the default
    config('consent = "opt-in"\nskip_locked = true\n')
    monkeypatch.setenv("TOOTLAKE_SKIP_LOCKED", "no")
    assert policy() == Consent("opt-in")
    assert policy(skip_locked=True).describe() == "opt-in+skip-locked"


@pytest.mark.parametrize(
    ("text", "flags", "env", "message"),
    [
        ('consent = "opt-in"\ninclude_opted_out = true\n', {}, {}, "config file .*choose one"),
        ("", {"consent": "opt-in", "include_opted_out": True}, {}, "command line.*choose one"),
        ('consent = ""\n', {}, {}, "config file.*'' is no consent mode"),
        ('consent = "optin"\n', {}, {}, "'optin' is no consent mode"),
        ('include_opted_out = "yes"\n', {}, {}, "include_opted_out must be true or false"),
        ("skip_bots = 1\n", {}, {}, "skip_bots must be true or false"),
        ("", {}, {"TOOTLAKE_SKIP_BOTS": "enabled"}, "TOOTLAKE_SKIP_BOTS='enabled'"),
        ("", {}, {"TOOTLAKE_CONSENT": "everyone"}, "environment: TOOTLAKE_CONSENT 'everyone'"),
    ],
)
def test_contradictions_and_unknown_words_name_where(
    config, monkeypatch, text, flags, env, message
):
    config(text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        policy(**flags)


def test_a_key_the_config_file_does_not_know_is_named(config, caplog):
    """A misspelt key (`lak = ...`) would leave its setting at the default, silently."""
    config('lak = "/data/lake"\nconsent = "opt-in"\n[tokens]\n"a.example" = "a-long-token"\n')
    settings = load_settings()
    assert settings.consent_policy() == Consent("opt-in")
    warnings = [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
    assert len(warnings) == 1 and "'lak' not read" in warnings[0], warnings
    assert "tokens" not in warnings[0].split("not read")[0]
    caplog.clear()
    config('lake = "/data/lake"\npolicy = "p.toml"\nretain = 30\nskip_bots = true\n')
    load_settings()
    assert not [r for r in caplog.records if "not read" in r.getMessage()]


def test_a_config_file_named_but_missing_is_an_error(tmp_path, monkeypatch):
    """TOOTLAKE_CONFIG with a typo used to read as "no config file": tokens and the consent
    policy silently at their defaults. os.devnull is how to say "none"."""
    missing = tmp_path / "tootlak.toml"
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="TOOTLAKE_CONFIG names .*tootlak.toml, which does not"):
        load_settings()
    monkeypatch.setenv("TOOTLAKE_CONFIG", os.devnull)
    assert load_settings().consent_policy() == Consent()
    # the default place may be missing: a first run has no config file
    monkeypatch.delenv("TOOTLAKE_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))
    assert load_settings().consent_policy() == Consent()


@pytest.mark.parametrize("line", ["lake = 5", "lake = ['a']", 'lake = ""', "lake = true"])
def test_a_lake_of_the_wrong_type_in_the_config_file_is_an_error_naming_it(config, line):
    """(`lake = 5` ended in a TypeError traceback from the lake's first use)"""
    config(line + "\n")
    with pytest.raises(ConfigError, match="lake must be the path or URL of the lake"):
        load_settings()


@pytest.mark.parametrize("text", ["inf", "infMB", "nan", "1e400", "-inf", "x", "12q"])
def test_a_size_that_is_no_number_of_bytes_is_an_error_naming_it(text):
    """(`--max-body inf` ended in an OverflowError traceback, `nan` in a ValueError)"""
    from tootlake.settings import parse_size

    with pytest.raises(ConfigError, match="Invalid size"):
        parse_size(text)
