"""Every notebook in colabs/ runs headlessly, top to bottom, without a cell error.

The kernel is the interpreter running pytest (a kernelspec written to a temporary
JUPYTER_PATH), so the notebooks see the same environment and the installed algoprog.
"""

import json
import pathlib
import sys

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "colabs").glob("*.ipynb"))
KERNEL = "algoprog-test"


@pytest.fixture
def kernel_of_this_interpreter(tmp_path, monkeypatch):
  spec = tmp_path / "kernels" / KERNEL
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "algoprog test kernel", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
  return KERNEL


def test_there_are_notebooks():
  assert NOTEBOOKS, "no notebooks in colabs/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_of_this_interpreter, small_corpus, tmp_path, monkeypatch):
  # The study notebook trains on the test corpus instead of fetching the embedded one, in a
  # temporary folder, with one CPU device per training process.
  monkeypatch.setenv("ALGOPROG_STUDY_TEXT", str(small_corpus))
  monkeypatch.setenv("ALGOPROG_STUDY_DIR", str(tmp_path))
  monkeypatch.setenv("ALGOPROG_CACHE", str(tmp_path / "cache"))
  monkeypatch.setenv("XLA_FLAGS", "")
  notebook = nbformat.read(path, as_version=4)
  client = NotebookClient(notebook, timeout=900, kernel_name=kernel_of_this_interpreter,
                          resources={"metadata": {"path": str(path.parent)}})
  client.execute()  # raises CellExecutionError, naming the cell, when one fails.
  images = [o for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
  if "plots." in path.read_text():
    assert images, f"{path.name}: figures were drawn but none was displayed"
