"""Where lake files are stored: a local folder, or S3 (see `tootlake.lake.s3`).

Every write is atomic for a reader: a local file is written under a hidden temporary name,
fsynced and renamed; an S3 object appears whole when its PUT completes.

Beyond the `Storage` protocol, both storages offer `list_info()` (paths with size and a
version tag, so a rewritten file is told apart from the one it replaced), `delete_if()` (delete
only that version) and `create()` (write only if absent: the compaction lock). `file_infos()`
and `create_new()` fall back to the protocol for storages without them. A missing file reads
as `FileNotFoundError`; any other failure (a read-only lake, a full disk) is a LakeError that
names the file.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tootlake.errors import LakeError

__all__ = ["FileInfo", "LocalStorage", "Storage", "create_new", "file_infos", "storage_for"]


class Storage(Protocol):
    root: str

    def write_atomic(self, path: str, data: bytes) -> None: ...

    def list(self, prefix: str, *, suffix: str = ".parquet") -> list[str]: ...

    def delete(self, path: str) -> None: ...

    def read(self, path: str) -> bytes: ...


@dataclass(frozen=True)
class FileInfo:
    """A listed file. `version` changes whenever the file is rewritten (local: mtime in ns;
    S3: the ETag); None when the storage cannot tell."""

    path: str
    size: int | None = None
    version: str | None = None


class LocalStorage:
    """A lake in a local folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(Path(root).resolve())

    def write_atomic(self, path: str, data: bytes) -> None:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise LakeError(f"Cannot write {target}: {exc.strerror or exc}") from exc

    def list(self, prefix: str, *, suffix: str = ".parquet") -> list[str]:
        """The files under `prefix` whose names end with `suffix` (not hidden ones), sorted."""
        base = Path(prefix)
        if not base.exists():
            return []
        return sorted(str(p) for p in base.rglob(f"*{suffix}") if not p.name.startswith("."))

    def list_info(self, prefix: str) -> builtins.list[FileInfo]:
        infos = []
        for path in self.list(prefix):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # deleted since it was listed
            infos.append(FileInfo(path, st.st_size, str(st.st_mtime_ns)))
        return infos

    def create(self, path: str, data: bytes) -> bool:
        """Write `path` only if it does not exist; False if it does."""
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise LakeError(f"Cannot create {target}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:  # a full disk: leave no half-written file behind
            with contextlib.suppress(OSError):
                target.unlink()
            raise LakeError(f"Cannot write {target}: {exc.strerror or exc}") from exc
        return True

    def delete(self, path: str) -> None:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise LakeError(f"Cannot delete {path}: {exc.strerror or exc}") from exc

    def delete_if(self, path: str, version: str) -> bool:
        """Delete `path` only if it is still that version (see FileInfo); True if deleted."""
        try:
            if str(os.stat(path).st_mtime_ns) != version:
                return False
        except FileNotFoundError:
            return False
        self.delete(path)
        return True

    def read(self, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise LakeError(f"Cannot read {path}: {exc.strerror or exc}") from exc


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_infos(storage: Storage, prefix: str) -> list[FileInfo]:
    """`storage.list_info(prefix)`, or its paths without size and version."""
    list_info = getattr(storage, "list_info", None)
    if list_info is not None:
        return list(list_info(prefix))
    return [FileInfo(path) for path in storage.list(prefix)]


def create_new(storage: Storage, path: str, data: bytes) -> bool:
    """Write `path` only if absent (False if present). Atomic where the storage has `create`;
    otherwise a read-then-write that two racing callers can both win."""
    create = getattr(storage, "create", None)
    if create is not None:
        return bool(create(path, data))
    try:
        storage.read(path)
        return False
    except FileNotFoundError:
        storage.write_atomic(path, data)
        return True


def storage_for(lake: str) -> Storage:
    """The storage of a lake given as a path or URL (`s3://bucket/prefix`)."""
    if lake.startswith("s3://"):
        from tootlake.lake.s3 import S3Storage

        return S3Storage(lake)
    if "://" in lake and not lake.startswith("file://"):
        raise LakeError(f"Unsupported lake URL {lake!r}: use a folder path or s3://bucket/prefix")
    return LocalStorage(lake.removeprefix("file://"))
