"""Tokens: given safely (--token-file, environment, config file; --token warns), and never
seen again: not in a log line, an error, the state directory, the lake or `ps`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tootlake.cli import main
from tootlake.cli.command import run_command
from tootlake.collector import parse_token_flags, read_token_file
from tootlake.errors import ConfigError
from tootlake.redact import MASK, RedactingFilter, redact, redact_json, register_secret
from tootlake.settings import load_settings, token_for

from .collect.conftest import all_connected, wait_for

SECRET = "tfile-S3cret-0123456789abcdef"
SETTINGS = settings(max_examples=300, deadline=None, database=None)


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# -- the token file -----------------------------------------------------------------------


def test_token_file_reads_instances_comments_blank_lines_and_quotes(tmp_path, caplog):
    path = write_private(
        tmp_path / "tokens",
        "\ufeff# tokens of the fleet\n"
        "\n"
        "mastodon.social=abc123\n"
        "  https://Fosstodon.org/ = 'quoted-token'   # the bot account\n"
        "http://127.0.0.1:8080=tok#with#hashes\r\n"
        '   # indented comment\n'
        'example.net="dq"\n',
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        tokens = read_token_file(path)
    assert tokens == {
        "mastodon.social": "abc123",
        "fosstodon.org": "quoted-token",
        "127.0.0.1:8080": "tok#with#hashes",
        "example.net": "dq",
    }
    assert not caplog.records  # mode 600: nothing to say


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (f"mastodon.social {SECRET}", "expected INSTANCE=TOKEN"),
        (f"={SECRET}", "expected INSTANCE=TOKEN"),
        (f"[{SECRET}=x", "expected INSTANCE=TOKEN"),  # not a host: not shown either
        ("mastodon.social=", "the token for mastodon.social is empty"),
        ("mastodon.social=''", "the token for mastodon.social is empty"),
        (f"mastodon.social={SECRET} more", "the token for mastodon.social contains whitespace"),
    ],
)
def test_a_malformed_line_names_file_and_line_but_never_the_token(tmp_path, line, why):
    path = write_private(tmp_path / "tokens", f"# header\nexample.org=fine-token\n{line}\n")
    with pytest.raises(ConfigError) as info:
        read_token_file(path)
    message = str(info.value)
    assert f"The token file {path}, line 3: {why}" in message
    assert SECRET not in message and "fine-token" not in message


def test_a_second_token_for_one_instance_is_an_error(tmp_path):
    path = write_private(tmp_path / "tokens", "a.example=one-token\nhttps://a.example=two\n")
    with pytest.raises(ConfigError, match=r"line 2: a second token for a\.example"):
        read_token_file(path)


def test_a_missing_token_file_is_a_clean_error(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read the token file .*missing"):
        read_token_file(tmp_path / "missing")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_token_file_others_can_read_gets_an_ssh_like_warning(tmp_path, caplog, mode):
    path = write_private(tmp_path / "tokens", f"mastodon.social={SECRET}\n", mode)
    with caplog.at_level(logging.WARNING):
        assert read_token_file(path) == {"mastodon.social": SECRET}
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert str(path) in message and f"chmod 600 {path}" in message
    assert f"mode {mode:04o}" in message and SECRET not in message


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_config_file_with_tokens_others_can_read_gets_the_warning(tmp_path, monkeypatch, caplog):
    config = write_private(
        tmp_path / "tootlake.toml", f'[tokens]\n"mastodon.social" = "{SECRET}"\n', 0o644
    )
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(config))
    with caplog.at_level(logging.WARNING):
        settings_ = load_settings()
    assert token_for(settings_, "mastodon.social") == SECRET
    assert any(f"chmod 600 {config}" in r.getMessage() for r in caplog.records)
    caplog.clear()
    config.chmod(0o600)
    load_settings()
    write_private(config, 'lake = "./elsewhere"\n', 0o644)  # no tokens: nothing to protect
    with caplog.at_level(logging.WARNING):
        assert load_settings().lake == "./elsewhere"
    assert not caplog.records


def test_an_empty_token_in_the_config_file_is_an_error(tmp_path, monkeypatch):
    config = write_private(tmp_path / "tootlake.toml", '[tokens]\n"mastodon.social" = ""\n')
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(config))
    with pytest.raises(ConfigError, match="the token for mastodon.social in .tokens. is empty"):
        load_settings()


def test_an_empty_token_variable_is_ignored_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("TOOTLAKE_TOKEN_MASTODON_SOCIAL", "")
    with caplog.at_level(logging.WARNING):
        assert load_settings().tokens == {}
    assert "TOOTLAKE_TOKEN_MASTODON_SOCIAL is empty" in caplog.text


# -- --token ------------------------------------------------------------------------------


def test_token_flag_still_works_and_warns_about_the_command_line(caplog):
    with caplog.at_level(logging.WARNING):
        assert parse_token_flags([f"https://mastodon.social/={SECRET}"]) == {
            "mastodon.social": SECRET
        }
    assert "other local users can read it" in caplog.text
    assert "--token-file" in caplog.text and "TOOTLAKE_TOKEN_<HOST>" in caplog.text
    assert SECRET not in caplog.text


def test_an_empty_token_flag_says_the_token_is_empty():
    result = CliRunner().invoke(main, ["instances", "check", "--token", "mastodon.social="])
    assert result.exit_code == 1
    assert "The token for mastodon.social given with --token is empty" in result.output
    assert "Invalid --token" not in result.output
    bad = CliRunner().invoke(main, ["instances", "check", "--token", SECRET])
    assert bad.exit_code == 1 and "expected INSTANCE=TOKEN" in bad.output
    assert SECRET not in bad.output


def test_token_file_and_flag_together_the_flag_wins(tmp_path):
    """Precedence: config < environment < --token-file < --token."""
    from tootlake.cli.options import settings_and_specs

    path = write_private(tmp_path / "tokens", "a.example=from-file-token\nb.example=file-b-token\n")
    settings_, specs = settings_and_specs(
        ("a.example", "b.example"), None, ("b.example=from-flag-token",), str(path)
    )
    assert {s.host: s.token for s in specs} == {
        "a.example": "from-file-token",
        "b.example": "from-flag-token",
    }
    assert "from-file-token" not in repr(settings_)


# -- redaction ----------------------------------------------------------------------------

# Tokens as servers and users spell them: any characters but whitespace, non-ASCII too.
TOKENS = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Zs", "Zl", "Zp", "Cc"]),
    min_size=1,
    max_size=60,
).filter(lambda t: not any(c.isspace() for c in t))


@SETTINGS
@given(prefix=st.text(max_size=40), token=TOKENS, suffix=st.text(max_size=40))
def test_no_bearer_token_survives_redaction(prefix, token, suffix):
    # The token must not be made of what is around it (then it was never a secret in it).
    around = (prefix + " bearer *** " + suffix).lower()
    assume(token.lower() not in around and token.lower() not in "bearer ***")
    for spelling in ("Bearer", "bearer", "BEARER"):
        for space in (" ", "\t", "  "):
            text = f"{prefix}{spelling}{space}{token}{suffix if suffix[:1].isspace() else ''}"
            assert token not in redact(text), text


def test_non_ascii_bearer_tokens_are_redacted_in_every_shape():
    for text in (
        "WebSocket handshake: invalid Authorization header: Bearer SECRÉT☃",
        "{'Authorization': 'Bearer SECRÉT☃'}",
        "headers=[('authorization', 'bearer SECRÉT☃')]",
        "Authorization: Bearer Bearer SECRÉT☃",
        "GET https://x.example/api/v1/streaming?access_token=SECRÉT☃&stream=public",
    ):
        assert "SECR" not in redact(text), text
        assert MASK in redact(text)


def test_a_registered_token_is_masked_without_bearer_in_every_spelling():
    token = "regist3red-SECRÉT☃-token"
    register_secret(token, "short")  # too short to mask alone: ordinary words stay
    for shown in (token, repr(token), ascii(token), json.dumps(token), str(token.encode())):
        assert "regist3red" not in redact(f"error: {shown} failed"), shown
    assert redact("short and sweet") == "short and sweet"


def test_settings_register_every_token_they_load(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOTLAKE_TOKEN_A_EXAMPLE", "env-token-value-1")
    config = write_private(tmp_path / "c.toml", '[tokens]\n"b.example" = "config-token-2"\n')
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(config))
    load_settings(tokens={"c.example": "flag-token-value-3"})
    text = redact("env-token-value-1 config-token-2 flag-token-value-3")
    assert text == f"{MASK} {MASK} {MASK}"


def test_redact_json_covers_keys_and_nested_values():
    data = {"h": {"last_error": "401 Bearer xyz-123", "n": 3, "l": ["Bearer q1"]}}
    assert redact_json(data) == {"h": {"last_error": "401 Bearer ***", "n": 3, "l": ["Bearer ***"]}}


def test_log_filter_redacts_message_arguments_and_exception_text():
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "%s failed: %r", ("host", "Bearer SECRÉT☃"), None
    )
    try:
        raise ValueError("header Authorization: Bearer SECRÉT☃")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert "SECR" not in line and "host failed" in line and "ValueError" in line


# -- the collector, for real ----------------------------------------------------------------


def _strings(value: Any) -> Any:
    """Every string in a nested Python value (lists, dicts, structs)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _assert_nowhere(secret: str, root: Path, *texts: str) -> None:
    """The secret (in any spelling) is in none of `texts`, no file under `root` (state,
    health, logs) and no string value of any column of any Parquet file there."""
    spellings = {secret, json.dumps(secret)[1:-1], ascii(secret)[1:-1], repr(secret)[1:-1]}
    for text in texts:
        for s in spellings:
            assert s not in text, f"the token is in the output: {text[-2000:]}"
    files = [p for p in root.rglob("*") if p.is_file()]
    parquet = [p for p in files if p.suffix == ".parquet"]
    for path in files:
        if path.suffix == ".parquet":
            continue
        data = path.read_bytes()
        for s in spellings:
            assert s.encode() not in data, f"the token leaked into {path}"
    for path in parquet:
        table = pq.read_table(path)
        for column in table.column_names:
            for value in _strings(table.column(column).to_pylist()):
                assert secret not in value, f"the token is in {path}, column {column}"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull
    return env


def _ps() -> str:
    # -ww: never cut a long command line
    return subprocess.run(
        ["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout


def test_collect_with_a_token_file_never_shows_the_secret(tmp_path):
    """`tootlake collect --token-file F --duration N` as a real process against the simulator:
    it streams with the token, and the token is in no log line, state file, lake column or
    `ps` line (taken while it runs)."""
    from tootlake.simulate import FediverseThread, InstanceSettings

    run = tmp_path / "run"  # everything the collector writes; the token file is outside
    lake, state = run / "lake", run / "state"
    feeds = {"local": "authenticated", "remote": "authenticated"}
    with FediverseThread(
        instances=2, seed=4, settings=InstanceSettings(token=SECRET, live_feeds=feeds)
    ) as sim:
        fed = sim.fed
        tokens = write_private(tmp_path / "tokens", "".join(f"{h}={SECRET}\n" for h in fed.hosts))
        args = [sys.executable, "-m", "tootlake", "--log-level", "debug", "collect",
                "--token-file", str(tokens), "--lake", str(lake), "--state", str(state),
                "--flush-seconds", "0.5", "--duration", "8", "--include-opted-out"]  # fmt: skip
        for url in fed.urls:
            args += ["--instance", url]
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(tmp_path)
        )
        try:
            wait_for(all_connected(sim), timeout=30, what="both streams")
            ps = _ps()
            assert str(tokens) in ps  # the collector's command line is there...
            assert SECRET not in ps  # ...without the token
            sim.call(fed.publish, 60, rate=100, edits=0.05, deletes=0.02)
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 0, stderr
    assert "Collected " in stdout and "streaming" in stderr
    assert "other users can read" not in stderr  # chmod 600: no warning
    assert any(p.suffix == ".parquet" for p in lake.rglob("*"))
    assert (state / "cursors.json").exists() and (state / "health.json").exists()
    _assert_nowhere(SECRET, run, stdout, stderr)


def test_a_non_ascii_token_is_redacted_in_logs_and_health(tmp_path):
    """A token the HTTP libraries cannot send as is (`SECRÉT☃`): whatever the collector makes
    of it (an error naming the header, or a stream), the token is in no log, health or state
    file, and not in the final lines printed."""
    from tootlake.simulate import FediverseThread, InstanceSettings

    secret = "SECRÉT☃-non-ascii-token"
    run = tmp_path / "run"  # everything the collector writes; the token file is outside
    lake, state = run / "lake", run / "state"
    with FediverseThread(instances=1, seed=5, settings=InstanceSettings(token=secret)) as sim:
        host = sim.fed.hosts[0]
        tokens = write_private(tmp_path / "tokens", f"{host}={secret}\n", 0o644)
        proc = subprocess.run(
            [sys.executable, "-m", "tootlake", "--log-level", "debug", "collect",
             "--instance", f"http://{host}", "--token-file", str(tokens), "--lake", str(lake),
             "--state", str(state), "--duration", "4", "--heartbeat-timeout", "3"],
            capture_output=True, env=_env(tmp_path), timeout=90,
        )  # fmt: skip
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert f"chmod 600 {tokens}" in stderr  # mode 644: the ssh-like warning
    health = json.loads((state / "health.json").read_text(encoding="utf-8"))
    assert host in health
    _assert_nowhere(secret, run, stdout, stderr)
    # Either a library refused the header (the complaint is logged and in health.json, the
    # token masked) or the token went through and the instance streams.
    entry = health[host]
    assert f"Bearer {MASK}" in stderr + entry["last_error"] or entry["status"] == "streaming"


def test_the_cli_redacts_tokens_from_an_error_message():
    """An error raised with a token in its text prints with the token masked."""

    @run_command
    def failing() -> None:
        raise ConfigError("instance said: invalid Authorization header: Bearer SECRÉT☃ \x1b[2J")

    with pytest.raises(click.ClickException) as info:
        failing()
    assert "SECR" not in info.value.message and "\x1b" not in info.value.message


def test_a_server_echoing_the_token_in_a_rejected_status_leaves_no_token_in_the_lake():
    """A reject keeps the raw payload: a server that echoes what it was sent (the token, in a
    status or in an error) must not get it into the rejects table."""
    from tootlake.record import Rejection
    from tootlake.sources import reject_event

    register_secret(SECRET)
    raw = ('{"uri": 5, "content": "you sent ' + SECRET + ' and Bearer xyz"}').encode()
    event = reject_event(
        Rejection(f"odd {SECRET}"), raw, source="rest", observed_on="a.example", where="x"
    )
    assert event.reject is not None
    assert SECRET not in event.reject.raw and SECRET not in event.reject.reason
    assert "***" in event.reject.raw and "Bearer xyz" not in event.reject.raw


def test_credentials_in_an_instance_url_are_dropped():
    from tootlake.sources.mastodon import normalize_instance

    assert normalize_instance("https://user:pass@Mastodon.Example:8443/") == (
        "https://mastodon.example:8443"
    )
