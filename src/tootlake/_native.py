"""tootlake's native helpers (native/, Rust; docs/native.md): the module when it is installed,
None without it or with TOOTLAKE_NATIVE=0 in the environment (to compare, or to rule it out).
Every user keeps the Python code it stands for, and runs it when this is None."""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["native"]


def _load() -> ModuleType | None:
    if os.environ.get("TOOTLAKE_NATIVE", "").strip() == "0":
        return None
    try:
        import tootlake_native
    except ImportError:
        return None
    return tootlake_native


native = _load()
