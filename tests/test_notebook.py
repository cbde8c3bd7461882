"""notebooks/tour.ipynb runs from top to bottom against a small lake (any failing cell fails
the test), with the lake given as the notebook reads it: TOOTLAKE_LAKE."""

from __future__ import annotations

from pathlib import Path

import pytest

from tootlake.pipeline import replay

from .conftest import REAL
from .smalllake import write_inputs

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "tour.ipynb"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_tour_notebook_runs_against_a_small_lake(tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    jsonl, sse = write_inputs(tmp_path / "input")
    replay([jsonl, REAL / "mastodonsocial.json", REAL / "malformed.json"], str(lake))
    replay([sse], str(lake), observed_on="a.example")
    monkeypatch.setenv("TOOTLAKE_LAKE", str(lake))  # the kernel inherits the environment

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, when one fails

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert f"'{lake}'" in str(notebook.cells[1].outputs[0]["data"]["text/plain"])
    svgs = [out for out in outputs if "image/svg+xml" in out.get("data", {})]
    assert len(svgs) == 3  # the hourly chart, the box plot and the interaction heatmap
    assert not list(tmp_path.glob("*.html"))  # the tour reads; it writes nothing
