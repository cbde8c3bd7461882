"""Kafka client settings, in one place for the producer (`collect --kafka`, `replay --kafka`)
and the consumer (`sink`). Later wins:

    1. defaults            tootlake's own (`producer_config`, `consumer_config`)
    2. the config file     its [kafka] section (tootlake.settings reads the file)
    3. the environment     TOOTLAKE_KAFKA_<KEY>: the key upper-cased, dots as underscores,
                           e.g. TOOTLAKE_KAFKA_SASL_PASSWORD -> sasl.password
    4. flags               -X KEY=VALUE (repeatable; `tootlake.cli.options.kafka_option`)

Keys are librdkafka's own (its CONFIGURATION.md), so a managed cluster's client settings
(Confluent Cloud, Aiven, MSK, Redpanda Cloud: security.protocol=SASL_SSL, sasl.mechanism,
sasl.username, sasl.password...) are copied as they are. Two are not settings here, because
they have flags: the brokers (`--kafka HOST:PORT`, env TOOTLAKE_KAFKA) and the sink's consumer
group (`--group`). Secrets (sasl.password, ssl.key.password, ...) are registered with
`tootlake.redact`, so no log line or error message shows them.

    from tootlake.settings import load_settings
    settings = load_settings(kafka={"sasl.username": "..."})   # file < env < these
    KafkaTransport("broker:9092", config=settings.kafka)

Imports nothing heavy: confluent_kafka only when a client is made.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tootlake.errors import ConfigError, MissingDependency, TransportError
from tootlake.redact import MASK, MIN_SECRET_LENGTH, register_secret

__all__ = [
    "DEFAULT_TOPIC",
    "ENV_PREFIX",
    "KEY_ID_HEADER",
    "LIBRDKAFKA_LOG",
    "ConnectWatch",
    "client_settings",
    "confluent_kafka",
    "file_settings",
    "is_secret",
    "masked",
    "parse_options",
    "wait_for_cluster",
]

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "mastodon-posts"
ENV_PREFIX = "TOOTLAKE_KAFKA_"
# The pseudonymisation key id of a message's record (none: raw); see docs/pseudonymisation.md
KEY_ID_HEADER = "tootlake-key-id"
# librdkafka's settings are lower-case words joined by dots; this also keeps out its code-only
# ones (error_cb, oauth_cb, ssl_key...), which take Python objects, not text.
_KEY = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*")
_FLAGGED = {
    "bootstrap.servers": "name the brokers with --kafka HOST:PORT (env TOOTLAKE_KAFKA)",
    "group.id": "name the sink's group with --group (env TOOTLAKE_GROUP)",
}
_SECRET_WORDS = ("password", "secret", "passphrase")
_SECRET_KEYS = frozenset({"ssl.key.pem", "sasl.oauthbearer.config"})


def is_secret(key: str) -> bool:
    """Whether a librdkafka setting holds a secret (never logged, masked in errors)."""
    return (
        key in _SECRET_KEYS
        or key.endswith(".private.key.pem")
        or any(word in key for word in _SECRET_WORDS)
    )


def masked(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings with every secret shown as ***, e.g. for a repr."""
    return {key: MASK if is_secret(key) else value for key, value in settings.items()}


def _checked_key(key: str, where: str) -> str:
    if not _KEY.fullmatch(key):
        raise ConfigError(
            f"Invalid Kafka setting {key!r} in {where}: librdkafka settings are lower-case "
            "words joined by dots, e.g. security.protocol."
        )
    if key in _FLAGGED:
        raise ConfigError(
            f"{key} in {where} is not a Kafka setting of tootlake's: {_FLAGGED[key]}."
        )
    return key


def parse_options(pairs: Iterable[str], where: str = "-X") -> dict[str, str]:
    """librdkafka settings from KEY=VALUE pairs (the -X flags)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"Invalid Kafka option {pair!r}: use KEY=VALUE, e.g. -X session.timeout.ms=6000"
            )
        options[_checked_key(key.strip(), where)] = value.strip()
    return options


def _from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    options = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = _checked_key(name.removeprefix(ENV_PREFIX).lower().replace("_", "."), name)
        if value.strip():
            options[key] = value.strip()
        else:
            log.warning("The Kafka setting in %s is empty: ignored.", name)
    return options


def file_settings(table: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """A TOML [kafka] table (of the config file `where`), checked and flat: `sasl.mechanism =
    "PLAIN"` written bare is a nested table in TOML ({"sasl": {"mechanism": ...}}), quoted it
    is one key; both mean sasl.mechanism."""
    options: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            options.update(file_settings(value, where, f"{key}."))
            continue
        _checked_key(key, f"[kafka] of {where}")
        if isinstance(value, bool | int | str):
            options[key] = value
        elif isinstance(value, float):
            options[key] = str(value)
        else:
            raise ConfigError(
                f"The Kafka setting {key} in [kafka] of {where} must be a string, number or "
                f"boolean, not {type(value).__name__}."
            )
    return options


def client_settings(
    file: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    where: str = "the config file",
) -> dict[str, Any]:
    """The librdkafka settings a user gave, merged: `file` (the config file's [kafka] table,
    read from `where`) < `environ` (its TOOTLAKE_KAFKA_* variables) < `flags` (-X, parsed).
    They go over tootlake's defaults as `config=` (KafkaTransport, KafkaSinkWorker). Every
    secret among them is registered with tootlake.redact."""
    merged: dict[str, Any] = {}
    merged.update(file_settings(file or {}, where))
    merged.update(_from_environ(environ or {}))
    for key, value in (flags or {}).items():
        merged[_checked_key(key, "-X")] = value
        if is_secret(key):
            log.warning(
                "The Kafka %s is given with -X: other local users can read a command line "
                "(ps). Prefer %s%s or the config file's [kafka] section (chmod 600).",
                key,
                ENV_PREFIX,
                key.upper().replace(".", "_"),
            )
    for key, value in merged.items():
        if not is_secret(key) or not isinstance(value, str):
            continue
        register_secret(value)
        if len(value) < MIN_SECRET_LENGTH:
            log.warning(
                "The Kafka setting %s is shorter than %d characters: logs cannot hide it.",
                key,
                MIN_SECRET_LENGTH,
            )
    return merged


# -- clients ---------------------------------------------------------------------------------


def confluent_kafka() -> Any:
    """The confluent_kafka module, or a MissingDependency naming the extra to install."""
    try:
        import confluent_kafka as module
    except ImportError:
        raise MissingDependency("confluent_kafka", "kafka") from None
    return module


class LibrdkafkaLog:
    """librdkafka's own log lines, into Python logging at DEBUG (logger `tootlake.librdkafka`):
    tootlake reports what matters (broker unreachable, reachable again) once, itself."""

    def __init__(self) -> None:
        self._log = logging.getLogger("tootlake.librdkafka")

    def log(self, level: int, msg: str, *args: Any) -> None:
        self._log.debug(msg, *args)


LIBRDKAFKA_LOG = LibrdkafkaLog()


class ConnectWatch:
    """Remembers the first error that retrying cannot fix (credentials refused, TLS failed),
    fed from a client's error callback, so the wait for the cluster ends with it at once
    instead of timing out as "unreachable"."""

    def __init__(self) -> None:
        self.refused: str | None = None
        self.hint = ""

    def saw(self, err: Any) -> bool:
        """Record `err` (a KafkaError) if it is such an error; whether it was."""
        ck = confluent_kafka()
        code = err.code()
        if code in (ck.KafkaError._AUTHENTICATION, ck.KafkaError.SASL_AUTHENTICATION_FAILED):
            hint = (
                "Check sasl.mechanism, sasl.username and sasl.password ([kafka] in the config "
                "file, TOOTLAKE_KAFKA_SASL_PASSWORD..., or -X)."
            )
        elif code == ck.KafkaError._SSL:
            hint = (
                "Check security.protocol and ssl.ca.location ([kafka] in the config file, "
                "TOOTLAKE_KAFKA_..., or -X)."
            )
        else:
            return False
        if self.refused is None:
            self.refused, self.hint = err.str(), hint
        return True


def wait_for_cluster(
    client: Any,
    bootstrap: str,
    timeout: float,
    watch: ConnectWatch,
    *,
    serve: Callable[[], Any] | None = None,
) -> None:
    """Return once the cluster answers a metadata request; TransportError when it does not
    within `timeout`, or at once when `watch` saw the credentials (or TLS) refused. `serve`
    runs the client's callbacks between tries (a consumer's poll; a producer is served by its
    own thread)."""
    ck = confluent_kafka()
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_topics(timeout=max(0.01, min(0.5, deadline - time.monotonic())))
            return
        except ck.KafkaException as exc:
            reason = exc.args[0]
        if serve is not None:
            serve()
        if watch.refused is not None:
            raise TransportError(
                f"Kafka at {bootstrap} refused the connection: {watch.refused}. {watch.hint}"
            )
        if time.monotonic() >= deadline:
            raise TransportError(
                f"Cannot reach Kafka at {bootstrap} within {timeout:g} s ({reason}). "
                "Is a broker running there? Point --kafka at one (HOST:PORT); in a clone of "
                "the repository, `make kafka-up` starts a local one."
            )
