"""Settings: frozen dataclasses, one per section. Precedence: defaults < tootlake.toml <
TOOTLAKE_* environment < command-line flags. One name, four spellings: flag `--lake` = env
`TOOTLAKE_LAKE` = TOML `lake = ...` = field `lake`.

The config file is `$TOOTLAKE_CONFIG`, else `~/.config/tootlake/tootlake.toml`: outside the
repository, since it may hold tokens. Secrets never print (`repr=False`, shown as ***): every
token loaded here is registered with `tootlake.redact`, so logs and error messages mask it too.
A file holding tokens that other users can read gets a warning, as ssh gives for keys.

`[kafka]` holds librdkafka settings for every command that talks to Kafka (SASL, TLS...), a
key per line (`sasl.mechanism = "PLAIN"`); they merge with TOOTLAKE_KAFKA_<KEY> and -X flags in
`tootlake.kafka.settings`. Its secrets (sasl.password...) are treated as tokens are.
"""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tootlake.errors import ConfigError
from tootlake.redact import MIN_SECRET_LENGTH, register_secret

__all__ = [
    "Settings",
    "check_private",
    "config_path",
    "load_settings",
    "parse_size",
    "retain_days",
]

log = logging.getLogger(__name__)

DEFAULT_LAKE = "./lake"


@dataclass(frozen=True)
class Settings:
    lake: str = DEFAULT_LAKE
    include_opted_out: bool = False
    policy: str | None = None  # the instance policy file (tootlake.sources.policy)
    retain: float | None = None  # days posts, sightings and rejects are kept (None: for ever)
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    kafka: dict[str, Any] = field(default_factory=dict, repr=False)  # librdkafka settings

    def __repr__(self) -> str:
        from tootlake.kafka.settings import masked

        hosts = ", ".join(sorted(self.tokens))
        return (
            f"Settings(lake={self.lake!r}, include_opted_out={self.include_opted_out}, "
            f"policy={self.policy!r}, retain={self.retain!r}, "
            f"tokens=[{hosts}: ***], kafka={masked(self.kafka)!r})"
        )


def config_path() -> Path:
    env = os.environ.get("TOOTLAKE_CONFIG")
    if env:
        return Path(env)
    return (
        Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
        / "tootlake"
        / "tootlake.toml"
    )


def _read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Cannot read the config file {path}: {exc}") from exc


def check_private(path: str | Path, what: str = "file", holds: str = "tokens") -> bool:
    """Warn (and return False) when other users can read a file that holds secrets."""
    if os.name != "posix":  # no such mode bits to check
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return True  # whoever opens it says why it cannot
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "The %s %s holds %s and other users can read it (mode %04o): run chmod 600 %s",
            what,
            path,
            holds,
            stat.S_IMODE(mode),
            path,
        )
        return False
    return True


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(**flags: Any) -> Settings:
    """Settings from defaults, the config file, the environment and flags (None = not given).
    `kafka`: librdkafka settings from -X flags (`tootlake.kafka.settings.parse_options`)."""
    from tootlake.kafka.settings import client_settings, file_settings, is_secret

    values: dict[str, Any] = {}
    path = config_path()
    config = _read_config(path)
    values.update(
        {k: v for k, v in config.items() if k in {"lake", "include_opted_out", "policy", "retain"}}
    )
    table = config.get("tokens") or {}
    if not isinstance(table, dict):
        raise ConfigError(
            f'The config file {path}: [tokens] must be a table of instance = "token" lines.'
        )
    tokens: dict[str, str] = {}
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"The config file {path}: the token for {key} in [tokens] is "
                + ("empty." if isinstance(value, str) else "not a string.")
            )
        tokens[str(key).lower()] = value.strip()
    kafka_table = config.get("kafka") or {}
    if not isinstance(kafka_table, dict):
        raise ConfigError(
            f"The config file {path}: [kafka] must be a table of librdkafka settings, e.g. "
            f'"security.protocol" = "SASL_SSL".'
        )
    kafka_file = file_settings(kafka_table, str(path))
    kafka = client_settings(kafka_file, environ=os.environ, flags=flags.get("kafka"))
    file_secrets = [key for key in kafka_file if is_secret(key)]
    if tokens or file_secrets:
        held = ["tokens"] if tokens else []
        held += [f"the Kafka {key}" for key in file_secrets]
        check_private(path, "config file", " and ".join(held))
    env = os.environ
    if env.get("TOOTLAKE_LAKE"):
        values["lake"] = env["TOOTLAKE_LAKE"]
    if env.get("TOOTLAKE_INCLUDE_OPTED_OUT"):
        values["include_opted_out"] = _truthy(env["TOOTLAKE_INCLUDE_OPTED_OUT"])
    if env.get("TOOTLAKE_POLICY"):
        values["policy"] = env["TOOTLAKE_POLICY"]
    if env.get("TOOTLAKE_RETAIN"):
        values["retain"] = env["TOOTLAKE_RETAIN"]
    for key, value in env.items():
        # TOOTLAKE_TOKEN_<HOST>: dots and colons of the host written as underscores.
        if key.startswith("TOOTLAKE_TOKEN_"):
            if value.strip():
                tokens[key.removeprefix("TOOTLAKE_TOKEN_").lower()] = value.strip()
            else:
                log.warning("The token in %s is empty: ignored.", key)
    values.update(
        {k: v for k, v in flags.items() if v is not None and k not in {"tokens", "kafka"}}
    )
    tokens.update(flags.get("tokens") or {})
    if values.get("retain") is not None:
        values["retain"] = retain_days(values["retain"])
    if values.get("policy") is not None and not isinstance(values["policy"], str):
        raise ConfigError(f"The config file {path}: policy must be the path of a TOML file.")
    register_secret(*tokens.values())
    for host, token in tokens.items():
        if len(token) < MIN_SECRET_LENGTH:  # masked only where `Bearer` precedes it
            log.warning(
                "The token for %s is shorter than %d characters: it is no real token, and "
                "logs can only hide it after the word Bearer.",
                host,
                MIN_SECRET_LENGTH,
            )
    return Settings(tokens=tokens, kafka=kafka, **values)


def retain_days(
    value: Any, where: str = "--retain, TOOTLAKE_RETAIN or retain in the config"
) -> float:
    """Days of retention (`retain = 30`, `--retain 30`, TOOTLAKE_RETAIN=30): a number >= 0."""
    try:
        days = float(value)
    except (TypeError, ValueError):
        days = -1.0
    if isinstance(value, bool) or not days >= 0 or days == float("inf"):
        raise ConfigError(
            f"Invalid retention {value!r} ({where}): a number of days, 0 or more, e.g. 30"
        )
    return days


def token_for(settings: Settings, host: str) -> str | None:
    """The token for an instance host, matching `host`, or `host` with . and : as _."""
    host = host.lower()
    return settings.tokens.get(host) or settings.tokens.get(
        host.replace(".", "_").replace(":", "_")
    )


def parse_size(text: str | int) -> int:
    """Bytes of `128MB`, `1.5GiB`, `512k`, `1000` (MB = MiB here: file sizes, not disks)."""
    if isinstance(text, int):
        return text
    units = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("bikmgt")
    unit = raw[len(number) :].replace("ib", "").replace("b", "")
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ConfigError(
            f"Invalid size {text!r}: use a number of bytes or units, such as 128MB or 1GiB"
        ) from None
    if value < 1024:
        raise ConfigError(f"Invalid size {text!r}: at least 1KB")
    return int(value)
