"""A Jupyter notebook using JupySQL against Quiver, executed headless."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from conftest import url


def test_notebook_runs(tmp_path, table_name):
    notebook = nbformat.read(Path(__file__).with_name("quiver.ipynb"), as_version=4)
    plot = tmp_path / "population.png"
    os.environ["QUIVER_URL"] = url("psycopg2")
    os.environ["QUIVER_TABLE"] = table_name
    os.environ["QUIVER_PLOT"] = str(plot)
    # The kernel inherits this environment; each cell must run without error.
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert plot.stat().st_size > 1000
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
