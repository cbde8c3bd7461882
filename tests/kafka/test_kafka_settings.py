"""Kafka client settings in one place: defaults < the config file's [kafka] < TOOTLAKE_KAFKA_*
< -X, the same for every command that talks to Kafka; secrets never shown; and the real test
broker's SASL/PLAIN listener, produced to by `replay` and read by `sink`, with wrong
credentials a quick, clear error."""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.conftest import REAL
from tootlake.errors import ConfigError
from tootlake.kafka.settings import DEFAULT_TOPIC, parse_options
from tootlake.pipeline import replay
from tootlake.redact import redact
from tootlake.settings import load_settings

from .conftest import REAL_FILES, SaslListener, committed_offsets, end_offsets, version_counts

ROOT = Path(__file__).resolve().parents[2]
FILE_PASSWORD = "file-password-0123"  # long enough to be masked (MIN_SECRET_LENGTH)


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def use_config(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(path))


# -- merging (no broker) ---------------------------------------------------------------------


def test_kafka_settings_merge_config_file_then_environment_then_flags(tmp_path, monkeypatch):
    # bare dotted keys are nested tables in TOML, quoted ones single keys: both are settings
    config = write_config(
        tmp_path / "tootlake.toml",
        "[kafka]\n"
        'security.protocol = "SASL_SSL"\n'
        '"sasl.mechanism" = "PLAIN"\n'
        'sasl.username = "from-file"\n'
        "session.timeout.ms = 6000\n"
        "enable.ssl.certificate.verification = false\n",
    )
    use_config(monkeypatch, config)
    assert load_settings().kafka == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "from-file",
        "session.timeout.ms": 6000,
        "enable.ssl.certificate.verification": False,
    }
    monkeypatch.setenv("TOOTLAKE_KAFKA_SASL_USERNAME", "from-env")
    monkeypatch.setenv("TOOTLAKE_KAFKA_CLIENT_ID", "from-env-too")
    settings = load_settings()
    assert settings.kafka["sasl.username"] == "from-env"
    assert settings.kafka["client.id"] == "from-env-too"
    flags = parse_options(("sasl.username=from-flag", "linger.ms = 5"))
    settings = load_settings(kafka=flags)
    assert settings.kafka["sasl.username"] == "from-flag"
    assert settings.kafka["linger.ms"] == "5"
    assert settings.kafka["security.protocol"] == "SASL_SSL"  # the file's, where nothing wins


def test_user_settings_go_over_the_producer_and_consumer_defaults():
    from tootlake.kafka.producer import producer_config
    from tootlake.kafka.sink import consumer_config

    user = {"security.protocol": "SASL_SSL", "linger.ms": "5", "session.timeout.ms": "6000"}
    producer = producer_config("b:9092", user)
    consumer = consumer_config("b:9092", "g", user)
    assert producer["security.protocol"] == consumer["security.protocol"] == "SASL_SSL"
    assert producer["linger.ms"] == "5" and producer["enable.idempotence"] is True
    assert consumer["session.timeout.ms"] == "6000" and consumer["enable.auto.commit"] is False


def test_kafka_secrets_are_masked_in_logs_and_in_the_settings_repr(tmp_path, monkeypatch, caplog):
    config = write_config(
        tmp_path / "tootlake.toml", f'[kafka]\nsasl.password = "{FILE_PASSWORD}"\n'
    )
    use_config(monkeypatch, config)
    monkeypatch.setenv("TOOTLAKE_KAFKA_SSL_KEY_PASSWORD", "env-key-password-42")
    with caplog.at_level(logging.WARNING):
        settings = load_settings(
            kafka=parse_options(("sasl.oauthbearer.client.secret=flag-secret-7",))
        )
    # like --token: a secret on the command line works, with a warning (ps shows it)
    [warning] = [r.getMessage() for r in caplog.records]
    assert "sasl.oauthbearer.client.secret is given with -X" in warning
    assert "TOOTLAKE_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET" in warning
    assert settings.kafka["sasl.password"] == FILE_PASSWORD
    for secret in (FILE_PASSWORD, "env-key-password-42", "flag-secret-7"):
        assert secret not in repr(settings)
        assert redact(f"librdkafka said {secret!r}") == "librdkafka said '***'"
    assert "'sasl.password': '***'" in repr(settings)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_config_file_with_a_kafka_password_others_can_read_gets_the_warning(
    tmp_path, monkeypatch, caplog
):
    config = write_config(
        tmp_path / "tootlake.toml",
        f'[kafka]\nsasl.username = "me"\nsasl.password = "{FILE_PASSWORD}"\n',
        0o644,
    )
    use_config(monkeypatch, config)
    with caplog.at_level(logging.WARNING):
        load_settings()
    [warning] = [r.getMessage() for r in caplog.records]
    assert "other users can read it (mode 0644)" in warning
    assert f"chmod 600 {config}" in warning and "sasl.password" in warning
    assert FILE_PASSWORD not in warning
    caplog.clear()
    config.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        load_settings()
    assert not caplog.records
    write_config(config, '[kafka]\nsecurity.protocol = "SASL_SSL"\n', 0o644)  # no secret
    with caplog.at_level(logging.WARNING):
        load_settings()
    assert not caplog.records


def test_brokers_and_the_group_are_named_by_their_own_flags(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"bootstrap.servers in -X .*--kafka HOST:PORT"):
        parse_options(("bootstrap.servers=b:9092",))
    monkeypatch.setenv("TOOTLAKE_KAFKA_GROUP_ID", "g")
    with pytest.raises(ConfigError, match=r"group.id in TOOTLAKE_KAFKA_GROUP_ID .*--group"):
        load_settings()
    monkeypatch.delenv("TOOTLAKE_KAFKA_GROUP_ID")
    config = write_config(tmp_path / "tootlake.toml", '[kafka]\nbootstrap.servers = "b:1"\n')
    use_config(monkeypatch, config)
    with pytest.raises(ConfigError, match=rf"bootstrap.servers in \[kafka\] of {config}"):
        load_settings()


@pytest.mark.parametrize(
    ("toml", "flags", "message"),
    [
        ('kafka = "b:9092"\n', (), r"\[kafka\] must be a table of librdkafka settings"),
        ('[kafka]\n"sasl.mechanisms" = ["PLAIN"]\n', (), "must be a string, number or boolean"),
        ("", ("session.timeout.ms",), "Invalid Kafka option 'session.timeout.ms': use KEY=VALUE"),
        ("", ("error_cb=print",), "Invalid Kafka setting 'error_cb' in -X"),
    ],
)
def test_bad_kafka_settings_are_errors_that_say_where(tmp_path, monkeypatch, toml, flags, message):
    use_config(monkeypatch, write_config(tmp_path / "tootlake.toml", toml))
    with pytest.raises(ConfigError, match=message):
        load_settings(kafka=parse_options(flags))


def _commands(group: click.Group, prefix: str = "tootlake") -> dict[str, click.Command]:
    found = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{prefix} {name}"))
        else:
            found[f"{prefix} {name}"] = command
    return found


def test_every_command_that_talks_to_kafka_takes_X_and_the_default_topic():
    from tootlake.cli import main

    kafka = {}
    for name, command in _commands(main).items():
        options = {opt: param for param in command.params for opt in param.opts}
        if "--kafka" in options:
            kafka[name] = options
    assert {"tootlake replay", "tootlake collect", "tootlake sink"} <= set(kafka)
    for name, options in kafka.items():
        assert "-X" in options and "--kafka-option" in options, name
        assert options["--topic"].default == DEFAULT_TOPIC, name


def test_the_default_topic_is_spelled_once_in_the_code():
    where = []
    for path in sorted((ROOT / "src" / "tootlake").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == DEFAULT_TOPIC:
                where.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(where) == 1 and "kafka/settings.py" in where[0], where


# -- the SASL/PLAIN listener of the real broker ----------------------------------------------


def tootlake(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tootlake", "--log-level", "debug", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.kafka
def test_replay_and_sink_through_the_sasl_listener_fill_the_lake(
    kafka: str, kafka_sasl: SaslListener, topic, group, tmp_path
):
    files = [str(REAL / name) for name in REAL_FILES]
    embedded, lake = str(tmp_path / "embedded"), str(tmp_path / "lake")
    replay(files, embedded)
    sasl = kafka_sasl.client_settings()
    # the producer: -X flags, the password from the environment
    produced = tootlake(
        ["replay", *files, "--kafka", kafka_sasl.bootstrap, "--topic", topic]
        + [f"-X{key}={sasl[key]}" for key in ("security.protocol", "sasl.mechanism")]
        + ["-X", f"sasl.username={kafka_sasl.username}"],
        {**os.environ, "TOOTLAKE_KAFKA_SASL_PASSWORD": kafka_sasl.password},
    )
    assert produced.returncode == 0, produced.stderr
    assert f"into Kafka topic {topic} at {kafka_sasl.bootstrap}" in produced.stdout
    # the consumer: everything from the config file's [kafka] section
    config = write_config(
        tmp_path / "tootlake.toml",
        "[kafka]\n" + "".join(f'{key} = "{value}"\n' for key, value in sasl.items()),
    )
    sunk = tootlake(
        ["sink", "--kafka", kafka_sasl.bootstrap, "--topic", topic, "--group", group]
        + [
            "--lake",
            lake,
            "--until-idle",
            "2",
            "-X",
            "session.timeout.ms=6000",
            "--format",
            "json",
        ],
        {**os.environ, "TOOTLAKE_CONFIG": str(config)},
    )
    assert sunk.returncode == 0, sunk.stderr
    stats = json.loads(sunk.stdout)
    assert (stats["messages"], stats["posts"], stats["rejects"]) == (480, 479, 1)
    assert version_counts(lake) == version_counts(embedded)  # every post once, as embedded
    assert committed_offsets(kafka, group, topic) == end_offsets(kafka, topic)
    for text in (produced.stdout, produced.stderr, sunk.stdout, sunk.stderr):
        assert kafka_sasl.password not in text
    assert "other users can read" not in sunk.stderr  # chmod 600


@pytest.mark.kafka
@pytest.mark.parametrize("command", ["replay", "sink", "collect"])
def test_wrong_credentials_are_a_quick_clear_error_naming_the_broker(
    kafka_sasl: SaslListener, topic, group, tmp_path, command
):
    wrong = "not-the-password-31"
    settings = kafka_sasl.client_settings(password=wrong)
    target = ["--kafka", kafka_sasl.bootstrap, "--topic", topic]
    env = dict(os.environ)
    if command == "replay":  # each command gets them another way
        args = ["replay", str(REAL / "mastodonsocial.json"), *target]
        args += [f"-X{key}={value}" for key, value in settings.items()]
    elif command == "sink":
        config = "[kafka]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in settings.items())
        env["TOOTLAKE_CONFIG"] = str(write_config(tmp_path / "tootlake.toml", config))
        args = ["sink", *target, "--group", group, "--lake", str(tmp_path / "lake")]
    else:
        env.update(
            {f"TOOTLAKE_KAFKA_{k.upper().replace('.', '_')}": v for k, v in settings.items()}
        )
        args = ["collect", "--instance", "http://127.0.0.1:9", *target, "--duration", "30"]
        args += ["--lake", str(tmp_path / "lake"), "-q"]
    done = tootlake(args, env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    # said when the refusal is seen, at once; waiting out the 10 s connect timeout would
    # have said "Cannot reach Kafka ... within 10 s" (a wall-clock bound here, with the
    # process's start-up in it, failed on slow machines and proved nothing more)
    assert f"Kafka at {kafka_sasl.bootstrap} refused the connection" in error
    assert "Authentication failed" in error and "sasl.password" in error
    assert wrong not in done.stdout + done.stderr
