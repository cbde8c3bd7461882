"""Settings: frozen dataclasses, one per section. Precedence: defaults < tootlake.toml <
TOOTLAKE_* environment < command-line flags. One name, four spellings: flag `--lake` = env
`TOOTLAKE_LAKE` = TOML `lake = ...` = field `lake`.

The config file is `$TOOTLAKE_CONFIG`, else `~/.config/tootlake/tootlake.toml`: outside the
repository, since it may hold tokens. Secrets never print (`repr=False`, shown as ***).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tootlake.errors import ConfigError

__all__ = ["Settings", "config_path", "load_settings"]

DEFAULT_LAKE = "./lake"


@dataclass(frozen=True)
class Settings:
    lake: str = DEFAULT_LAKE
    include_opted_out: bool = False
    tokens: dict[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        hosts = ", ".join(sorted(self.tokens))
        return (
            f"Settings(lake={self.lake!r}, include_opted_out={self.include_opted_out}, "
            f"tokens=[{hosts}: ***])"
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


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(**flags: Any) -> Settings:
    """Settings from defaults, the config file, the environment and flags (None = not given)."""
    values: dict[str, Any] = {}
    config = _read_config(config_path())
    values.update({k: v for k, v in config.items() if k in {"lake", "include_opted_out"}})
    tokens: dict[str, str] = {
        str(k).lower(): str(v) for k, v in (config.get("tokens") or {}).items()
    }
    env = os.environ
    if env.get("TOOTLAKE_LAKE"):
        values["lake"] = env["TOOTLAKE_LAKE"]
    if env.get("TOOTLAKE_INCLUDE_OPTED_OUT"):
        values["include_opted_out"] = _truthy(env["TOOTLAKE_INCLUDE_OPTED_OUT"])
    for key, value in env.items():
        # TOOTLAKE_TOKEN_<HOST>: dots and colons of the host written as underscores.
        if key.startswith("TOOTLAKE_TOKEN_") and value:
            tokens[key.removeprefix("TOOTLAKE_TOKEN_").lower()] = value
    values.update({k: v for k, v in flags.items() if v is not None and k != "tokens"})
    tokens.update(flags.get("tokens") or {})
    return Settings(tokens=tokens, **values)


def token_for(settings: Settings, host: str) -> str | None:
    """The token for an instance host, matching `host`, or `host` with . and : as _."""
    host = host.lower()
    return settings.tokens.get(host) or settings.tokens.get(
        host.replace(".", "_").replace(":", "_")
    )
