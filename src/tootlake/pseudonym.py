"""The secret key of a pseudonymised lake (`tootlake keygen FILE`).

A key is 32 random bytes (`secrets.token_bytes`), kept in a file of its own, outside the lake,
readable by its owner only. It is written so that it is never readable by others, not even for
an instant: a temporary file in the same folder is created with mode 0600 (`O_EXCL`, so no
one can slip a file in first), filled and synced, then put in place by a hard link (which
fails when FILE exists: no overwrite) or, with `force`, an atomic rename.

The key id (`key_id`) is a short hash of the key that names it in logs, the lake's audit and
datasheets; the key itself is never printed, logged or stored anywhere but its file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from pathlib import Path

from tootlake.errors import ConfigError

__all__ = ["KEY_BYTES", "generate_key", "key_id", "read_key"]

KEY_BYTES = 32
_KEY_ID_DOMAIN = b"tootlake key id v1\x00"  # a key's id is never a hash used elsewhere


def key_id(key: bytes) -> str:
    """A short, public name of `key`: 16 hex digits of a domain-separated SHA-256."""
    return hashlib.sha256(_KEY_ID_DOMAIN + key).hexdigest()[:16]


def generate_key(path: str | Path, *, force: bool = False) -> str:
    """Write a new random key to `path` (mode 0600; a missing folder is made, mode 0700) and
    return its id. An existing `path` is an error unless `force` (then it is replaced
    atomically)."""
    if not str(path).strip() or Path(path).is_dir() or str(path).endswith(("/", os.sep)):
        raise ConfigError(f"The key file {str(path)!r} is no file name: give the path of a file.")
    path = Path(path)
    if path.exists() and not path.is_file():  # (--force would replace /dev/full, as root)
        raise ConfigError(f"The key file {path} is not a regular file: give another FILE.")
    if "~" in path.parts:  # a quoted ~ is no home folder: it would make a folder named ~
        raise ConfigError(
            f"The key file {path} has a literal ~ in it (quoted, the shell does not expand "
            "it): give the path unquoted, or with $HOME."
        )
    if path.exists() and not force:
        raise ConfigError(
            f"The key file {path} exists: a new key would orphan every lake pseudonymised with "
            "it. Give another FILE, or --force to replace it."
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        # (`keygen ~/.config/tootlake/study.key` on a fresh machine: as `mkdir -p`, the
        # key's own folder readable by its owner only)
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"Cannot write the key file {path}: cannot make the folder {folder} "
                f"({exc.strerror or exc})"
            ) from exc
    key = secrets.token_bytes(KEY_BYTES)
    temporary = folder / f".{path.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temporary, flags, 0o600)  # the umask can only take bits away
    except OSError as exc:
        raise ConfigError(f"Cannot write the key file {path}: {exc.strerror or exc}") from exc
    try:
        try:
            if os.name == "posix":
                os.fchmod(fd, 0o600)
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        if force:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # fails if `path` appeared meanwhile: no overwrite
            except FileExistsError:
                raise ConfigError(
                    f"The key file {path} exists (made meanwhile): give another FILE, or --force."
                ) from None
            except OSError:  # a file system without hard links: create it exclusively
                _write_exclusive(path, key)
    except OSError as exc:
        raise ConfigError(f"Cannot write the key file {path}: {exc.strerror or exc}") from exc
    finally:
        if temporary.exists():
            temporary.unlink()
    return key_id(key)


def _write_exclusive(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_key(path: str | Path) -> bytes:
    """The key in `path`: exactly KEY_BYTES bytes, in a file other users cannot read. Errors
    name the file, never its content."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read the key file {path}: {exc.strerror or exc}") from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"The key file {path} can be read by other users (mode {stat.S_IMODE(mode):04o}): "
            f"run chmod 600 {path}"
        )
    if len(data) != KEY_BYTES:
        raise ConfigError(
            f"The key file {path} is not a tootlake key ({KEY_BYTES} bytes from tootlake keygen)"
        )
    return data
