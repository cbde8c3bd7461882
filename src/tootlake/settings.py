"""Settings: frozen dataclasses, one per section. Precedence: defaults < tootlake.toml <
TOOTLAKE_* environment < command-line flags. One name, four spellings: flag `--lake` = env
`TOOTLAKE_LAKE` = TOML `lake = ...` = field `lake`.

The config file is `$TOOTLAKE_CONFIG` (which must exist; /dev/null for none), else
`~/.config/tootlake/tootlake.toml` when it exists: outside the repository, since it may hold
tokens. Secrets never print (`repr=False`, shown as ***): every
token loaded here is registered with `tootlake.redact`, so logs and error messages mask it too.
A file holding tokens that other users can read gets a warning, as ssh gives for keys.

`[kafka]` holds librdkafka settings for every command that talks to Kafka (SASL, TLS...), a
key per line (`sasl.mechanism = "PLAIN"`); they merge with TOOTLAKE_KAFKA_<KEY> and -X flags in
`tootlake.kafka.settings`. Its secrets (sasl.password...) are treated as tokens are.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tootlake.errors import ConfigError
from tootlake.record.consent import MODES, NONE, Consent
from tootlake.redact import MIN_SECRET_LENGTH, register_secret

if TYPE_CHECKING:
    from tootlake.record.pseudonymize import Pseudonymizer

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
    consent: str | None = None  # opt-out (None: the default) or opt-in: tootlake.record.Consent
    skip_locked: bool = False
    skip_bots: bool = False
    policy: str | None = None  # the instance policy file (tootlake.sources.policy)
    retain: float | None = None  # days posts, sightings and rejects are kept (None: for ever)
    pseudonymize: str | None = None  # the key file of a pseudonymised lake (tootlake keygen)
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    kafka: dict[str, Any] = field(default_factory=dict, repr=False)  # librdkafka settings

    def __repr__(self) -> str:
        from tootlake.kafka.settings import masked

        hosts = ", ".join(sorted(self.tokens))
        return (
            f"Settings(lake={self.lake!r}, include_opted_out={self.include_opted_out}, "
            f"consent={self.consent!r}, skip_locked={self.skip_locked}, "
            f"skip_bots={self.skip_bots}, "
            f"policy={self.policy!r}, retain={self.retain!r}, "
            f"pseudonymize={self.pseudonymize!r}, "
            f"tokens=[{hosts}: ***], kafka={masked(self.kafka)!r})"
        )

    def pseudonymizer(self) -> Pseudonymizer | None:
        """The Pseudonymizer of the `pseudonymize` key file (read now), or None."""
        if not self.pseudonymize:
            return None
        from tootlake.record.pseudonymize import Pseudonymizer

        return Pseudonymizer.from_file(self.pseudonymize)

    def consent_policy(self) -> Consent:
        """The consent gates these settings ask for (a ConfigError when they contradict)."""
        return Consent.of(
            self.consent,
            include_opted_out=self.include_opted_out,
            skip_locked=self.skip_locked,
            skip_bots=self.skip_bots,
        )


_CONFIG_KEYS = {"lake", "policy", "retain", "pseudonymize"}
_SKIPS = ("skip_locked", "skip_bots")
# every top-level key and table of the config file
_FILE_KEYS = {*_CONFIG_KEYS, "tokens", "kafka", "consent", "include_opted_out", *_SKIPS}


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
        if os.environ.get("TOOTLAKE_CONFIG"):  # named on purpose: a typo must not pass
            raise ConfigError(
                f"TOOTLAKE_CONFIG names {path}, which does not exist. Fix the path, or set it "
                f"to {os.devnull} to read no config file."
            )
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Cannot read the config file {path}: {exc}") from exc
    except UnicodeDecodeError:  # (TOML is UTF-8: a binary or UTF-16 file)
        raise ConfigError(
            f"Cannot read the config file {path}: it is not UTF-8 text (TOML)"
        ) from None


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


def _env_flag(env: Mapping[str, str], name: str) -> bool | None:
    """A true/false environment variable; None when unset or empty."""
    value = env.get(name, "").strip().lower()
    if not value:
        return None
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={env[name]!r}: write true or false (1/0, yes/no, on/off).")


def _consent_settings(
    config: Mapping[str, Any], path: str, env: Mapping[str, str], flags: Mapping[str, Any]
) -> dict[str, Any]:
    """The consent policy from the config file, then the environment, then the flags: each
    layer's word (`include_opted_out` is the "none" mode) replaces the one below, so that
    `--consent opt-out` overrides `include_opted_out = true` in the config file; a layer
    that says both opt-in and include-opted-out is an error naming it."""
    mode: str | None = None
    skips = dict.fromkeys(_SKIPS, False)
    layers = (
        (f"The config file {path}", "include_opted_out", "consent", "{}", config),
        (
            "The environment",
            "TOOTLAKE_INCLUDE_OPTED_OUT",
            "TOOTLAKE_CONSENT",
            "the variable for {}",
            {
                "include_opted_out": _env_flag(env, "TOOTLAKE_INCLUDE_OPTED_OUT"),
                "consent": env.get("TOOTLAKE_CONSENT") or None,
                **{n: _env_flag(env, f"TOOTLAKE_{n.upper()}") for n in _SKIPS},
            },
        ),
        ("The command line", "--include-opted-out", "--consent", "--{}", flags),
    )
    for where, everyone_name, mode_name, skip_name, layer in layers:
        everyone, chosen = layer.get("include_opted_out"), layer.get("consent")
        if everyone is not None and not isinstance(everyone, bool):
            raise ConfigError(f"{where}: {everyone_name} must be true or false.")
        if chosen is not None and chosen not in MODES:
            raise ConfigError(
                f"{where}: {mode_name} {chosen!r} is no consent mode: use one of "
                f"{', '.join(MODES)}."
            )
        if everyone and chosen not in (None, NONE):
            raise ConfigError(
                f"{where}: {everyone_name} keeps accounts that opted out, {mode_name} "
                f"{chosen} does not: choose one."
            )
        if everyone:
            mode = NONE
        elif chosen is not None:
            mode = chosen
        elif everyone is False and mode == NONE:
            mode = None  # "do not include them": back to the default
        for name in _SKIPS:
            value = layer.get(name)
            if value is None:
                continue
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {skip_name.format(name)} must be true or false.")
            skips[name] = value
    return {"consent": mode, "include_opted_out": mode == NONE, **skips}


def load_settings(**flags: Any) -> Settings:
    """Settings from defaults, the config file, the environment and flags (None = not given).
    `kafka`: librdkafka settings from -X flags (`tootlake.kafka.settings.parse_options`)."""
    from tootlake.kafka.settings import client_settings, file_settings, is_secret

    values: dict[str, Any] = {}
    path = config_path()
    config = _read_config(path)
    unknown = sorted(set(config) - _FILE_KEYS)
    if unknown:  # (a misspelt `lak = ...` would leave the lake at ./lake, silently)
        log.warning(
            "The config file %s: %s not read (tootlake reads %s)",
            path,
            ", ".join(repr(k) for k in unknown),
            ", ".join(sorted(_FILE_KEYS)),
        )
    values.update({k: v for k, v in config.items() if k in _CONFIG_KEYS})
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
    values.update(_consent_settings(config, str(path), env, flags))
    if env.get("TOOTLAKE_POLICY"):
        values["policy"] = env["TOOTLAKE_POLICY"]
    if env.get("TOOTLAKE_RETAIN"):
        values["retain"] = env["TOOTLAKE_RETAIN"]
    if env.get("TOOTLAKE_PSEUDONYMIZE"):
        values["pseudonymize"] = env["TOOTLAKE_PSEUDONYMIZE"]
    for key, value in env.items():
        # TOOTLAKE_TOKEN_<HOST>: dots and colons of the host written as underscores.
        if key.startswith("TOOTLAKE_TOKEN_"):
            if value.strip():
                tokens[key.removeprefix("TOOTLAKE_TOKEN_").lower()] = value.strip()
            else:
                log.warning("The token in %s is empty: ignored.", key)
    values.update(
        {
            k: v
            for k, v in flags.items()
            if v is not None
            and k not in {"tokens", "kafka", "include_opted_out", "consent", *_SKIPS}
        }
    )
    tokens.update(flags.get("tokens") or {})
    if values.get("retain") is not None:
        values["retain"] = retain_days(values["retain"])
    lake = values.get("lake")
    if lake is not None and (not isinstance(lake, str) or not lake.strip()):
        if flags.get("lake") is not None:
            where = "--lake"
        elif env.get("TOOTLAKE_LAKE"):
            where = "TOOTLAKE_LAKE"
        else:
            where = f"The config file {path}: lake"
        raise ConfigError(
            f"{where} must be the path or URL of the lake, e.g. ./lake or s3://bucket/lake "
            f"(not {lake!r})."
        )
    if values.get("policy") is not None and not isinstance(values["policy"], str):
        raise ConfigError(f"The config file {path}: policy must be the path of a TOML file.")
    if values.get("pseudonymize") is not None and not isinstance(values["pseudonymize"], str):
        raise ConfigError(
            f"The config file {path}: pseudonymize must be the path of a key file "
            "(tootlake keygen FILE)."
        )
    register_secret(*tokens.values())
    # The lake's S3 credentials, read from this environment by tootlake.lake.s3 and
    # tables.storage_options: S3 echoes a session token it refuses (`<Token-0>` of
    # ExpiredToken, InvalidToken) and delta-rs quotes the whole answer in its error.
    register_secret(env.get("AWS_SECRET_ACCESS_KEY"), env.get("AWS_SESSION_TOKEN"))
    for host, token in tokens.items():
        if len(token) < MIN_SECRET_LENGTH:  # masked only where `Bearer` precedes it
            log.warning(
                "The token for %s is shorter than %d characters: it is no real token, and "
                "logs can only hide it after the word Bearer.",
                host,
                MIN_SECRET_LENGTH,
            )
    return Settings(tokens=tokens, kafka=kafka, **values)


# A century: the cutoff of more (1e300) is before year 1, which no date can hold
MAX_RETAIN_DAYS = 36_525


def retain_days(
    value: Any, where: str = "--retain, TOOTLAKE_RETAIN or retain in the config"
) -> float:
    """Days of retention (`retain = 30`, `--retain 30`, TOOTLAKE_RETAIN=30): a number from 0
    to MAX_RETAIN_DAYS."""
    try:
        days = float(value)
    except (TypeError, ValueError, OverflowError):
        days = -1.0
    if isinstance(value, bool) or not 0 <= days <= MAX_RETAIN_DAYS:
        raise ConfigError(
            f"Invalid retention {value!r} ({where}): a number of days from 0 to "
            f"{MAX_RETAIN_DAYS:,} (a century), e.g. 30"
        )
    return days


def token_for(settings: Settings, host: str) -> str | None:
    """The token for an instance host, matching `host`, or `host` with . and : as _."""
    host = host.lower()
    return settings.tokens.get(host) or settings.tokens.get(
        host.replace(".", "_").replace(":", "_")
    )


MAX_SIZE = 1024**4  # a size option's largest (10**30 overflowed the writers it was given to)


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
        value = math.nan
    if not math.isfinite(value):  # (also "inf" and "nan", which float() reads)
        raise ConfigError(
            f"Invalid size {text!r}: use a number of bytes or units, such as 128MB or 1GiB"
        )
    if value > MAX_SIZE:
        raise ConfigError(f"Invalid size {text!r}: at most 1TiB")
    if value < 1024:
        raise ConfigError(f"Invalid size {text!r}: at least 1KB")
    return int(value)
