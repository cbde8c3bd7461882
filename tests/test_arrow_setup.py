"""tootlake's own processes tell pyarrow that pandas is not there (`tootlake._arrow`): its
first `pa.array()` of a list no longer imports pandas (0.4 s), and `to_pandas()` still works.
Each check runs in a fresh interpreter, as the `tootlake` program does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pandas")  # (without pandas there is nothing to skip)


def run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def imports_pandas(setup: str) -> bool:
    """Whether pyarrow's first `pa.array()` of a list imports pandas after `setup`."""
    answer = run(textwrap.dedent(setup) + "\nimport sys, pyarrow as pa\npa.array(['a'])\n"
                 "print('pandas' in sys.modules)")  # fmt: skip
    return answer == "True"


def test_without_the_probe_pyarrow_imports_pandas_for_a_list():
    # the premise: if a pyarrow release stops doing this, the skip can go
    assert imports_pandas("")


def test_after_the_probe_lists_convert_without_pandas_and_to_pandas_still_works():
    assert (
        run("""
        import sys, pyarrow as pa
        from tootlake._arrow import skip_pandas_probe
        skip_pandas_probe()
        pa.array(["a", None], type=pa.string())
        before = "pandas" in sys.modules
        frame = pa.table({"a": [1, 2]}).to_pandas()
        print(before, type(frame).__name__, list(frame["a"]))
    """)
        == "False DataFrame [1, 2]"
    )


def test_the_tootlake_program_skips_the_probe_and_a_notebook_import_does_not():
    assert imports_pandas("import tootlake.cli, tootlake.pipeline")  # a notebook's: no skip
    assert not imports_pandas("""
        from tootlake import cli
        cli.main = lambda: None  # the program's set-up only, not a command
        cli.entry()
    """)
