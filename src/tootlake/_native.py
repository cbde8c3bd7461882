"""tootlake's native helpers (native/, Rust; docs/native.md): the module when it is installed,
None without it or with TOOTLAKE_NATIVE=0 in the environment (to compare, or to rule it out).
Every user keeps the Python code it stands for, and runs it when its `_native` is None."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from types import ModuleType

__all__ = ["native", "python_only"]

# the modules that use it, each through a module attribute `_native`
USERS = (
    "tootlake.text",
    "tootlake.record.status",
    "tootlake.lake.writer",
    "tootlake.sources.mastodon",
)


def _load() -> ModuleType | None:
    if os.environ.get("TOOTLAKE_NATIVE", "").strip() == "0":
        return None
    try:
        import tootlake_native
    except ImportError:
        return None
    return tootlake_native


native = _load()


@contextlib.contextmanager
def python_only() -> Iterator[None]:
    """Run the Python code instead of the native helpers inside the block (benchmarks
    compare the two in one process). Not thread-safe: the switch is module-wide."""
    users = [importlib.import_module(name) for name in USERS]
    kept = [getattr(user, "_native") for user in users]  # noqa: B009 (a module's attribute)
    for user in users:
        setattr(user, "_native", None)  # noqa: B010
    try:
        yield
    finally:
        for user, helpers in zip(users, kept, strict=True):
            setattr(user, "_native", helpers)  # noqa: B010
