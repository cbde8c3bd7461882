"""Where lake files are stored: a local folder, or S3 (see `tootlake.lake.s3`).

Every write is atomic for a reader: a local file is written under a hidden temporary name,
fsynced and renamed; an S3 object appears whole when its PUT completes.

The lake's tables are Delta tables written by delta-rs (`tootlake.lake.tables`); this module
stores what tootlake keeps beside them (run statistics, dead letters) and reads the files of
a lake of the old layout for `tootlake migrate`. Beyond the `Storage` protocol, both storages
offer `list_info()` (paths with size and a version tag, so a rewritten file is told apart from
the one it replaced); `file_infos()` falls back to the protocol for storages without it. A
missing file reads as `FileNotFoundError`; any other failure (a read-only lake, a full disk) is
a LakeError that names the file.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tootlake.errors import LakeError

__all__ = ["FileInfo", "LocalStorage", "Storage", "file_infos", "storage_for"]


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

    def delete(self, path: str) -> None:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise LakeError(f"Cannot delete {path}: {exc.strerror or exc}") from exc

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


def storage_for(lake: str) -> Storage:
    """The storage of a lake given as a path or URL (`s3://bucket/prefix`)."""
    if lake.startswith("s3://"):
        from tootlake.lake.s3 import S3Storage

        return S3Storage(lake)
    if "://" in lake and not lake.startswith("file://"):
        raise LakeError(f"Unsupported lake URL {lake!r}: use a folder path or s3://bucket/prefix")
    return LocalStorage(lake.removeprefix("file://"))
