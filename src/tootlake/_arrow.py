"""Process set-up for pyarrow in tootlake's own processes (the CLI, replay's workers)."""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from typing import Any

__all__ = ["skip_pandas_probe"]


class _NoPandas(MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not looked for here", name=name)


def skip_pandas_probe() -> None:
    """Tell pyarrow that pandas is not there, when nothing has imported it yet.

    pyarrow imports pandas at the first `pa.array()` of a Python list, only to ask whether
    the list is a pandas object: 0.4 s of every process that writes a batch, where pandas is
    installed (the benchmarks' environment has it; tootlake does not need it). tootlake's
    commands never hand pyarrow a pandas object, so pyarrow is let to look for pandas once
    and find none. `to_pandas()` still works: pyarrow imports pandas for real when asked to.
    Not for library use: a notebook may give pyarrow pandas objects later.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    finder = _NoPandas()
    sys.meta_path.insert(0, finder)  # `import pandas` fails while it is there
    try:
        pa.array([0])  # pyarrow's pandas shim tries its import here, once
    finally:
        sys.meta_path.remove(finder)
