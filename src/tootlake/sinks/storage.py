"""Where lake files are stored: a local folder, or S3 (see `tootlake.sinks.s3`).

Every write is atomic for a reader: a local file is written under a hidden temporary name,
fsynced and renamed; an S3 object appears whole when its PUT completes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from tootlake.errors import LakeError

__all__ = ["LocalStorage", "Storage", "storage_for"]


class Storage(Protocol):
    root: str

    def write_atomic(self, path: str, data: bytes) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, path: str) -> None: ...

    def read(self, path: str) -> bytes: ...


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
            tmp.unlink(missing_ok=True)
            raise LakeError(f"Cannot write {target}: {exc.strerror or exc}") from exc

    def list(self, prefix: str) -> list[str]:
        base = Path(prefix)
        if not base.exists():
            return []
        return sorted(str(p) for p in base.rglob("*.parquet") if not p.name.startswith("."))

    def delete(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def read(self, path: str) -> bytes:
        return Path(path).read_bytes()


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def storage_for(lake: str) -> Storage:
    """The storage of a lake given as a path or URL (`s3://bucket/prefix`)."""
    if lake.startswith("s3://"):
        from tootlake.sinks.s3 import S3Storage

        return S3Storage(lake)
    if "://" in lake and not lake.startswith("file://"):
        raise LakeError(f"Unsupported lake URL {lake!r}: use a folder path or s3://bucket/prefix")
    return LocalStorage(lake.removeprefix("file://"))
