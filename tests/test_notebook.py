"""docs/bptt.ipynb: stored without outputs, and runs top to bottom in a kernel of this venv.

The notebook is executed with nbclient in a fresh kernel of the interpreter that runs the tests
(a kernel spec of its own in a temporary JUPYTER_PATH, so kernels registered on the machine do
not matter), and its outputs are checked: the proof, the worked example against the generated
code, the training loss and the two figures.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

NOTEBOOK = ROOT / "docs" / "bptt.ipynb"
KERNEL = "bptt-derive-notebook-test"
BUDGET = 120  # seconds, top to bottom (issue 12)


def _code_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {cell.id: cell for cell in nb.cells if cell.cell_type == "code"}


def _text(cell: nbformat.NotebookNode) -> str:
    """What a cell printed (stream outputs), joined."""
    return "".join(out.text for out in cell.outputs if out.output_type == "stream")


def _mimetypes(cell: nbformat.NotebookNode) -> set[str]:
    return {mime for out in cell.outputs for mime in out.get("data", {})}


def test_the_notebook_is_stored_without_outputs() -> None:
    """Committed without outputs or execution counts, so the file only changes with its source."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {cell.id} has outputs: clear them"
            assert cell.execution_count is None, f"cell {cell.id} has an execution count"
        assert "execution" not in cell.metadata, f"cell {cell.id} has execution timings"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec for this interpreter (ipykernel's own kernel.json with sys.executable)."""
    jupyter = tmp_path / "jupyter"
    write_kernel_spec(jupyter / "kernels" / KERNEL)
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return KERNEL


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(kernel: str) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=BUDGET,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first cell that fails
    seconds = time.perf_counter() - start
    assert seconds < BUDGET, f"the notebook took {seconds:.0f} s (budget {BUDGET} s)"

    cells = _code_cells(nb)
    assert "text/latex" in _mimetypes(cells["derive"])
    assert "PROVEN" in _text(cells["prove"])
    assert "text/latex" in _mimetypes(cells["worked"])
    assert "they agree" in _text(cells["worked-check"])

    found = re.search(r"first step ([\d.]+), last step ([\d.]+)", _text(cells["train"]))
    assert found, _text(cells["train"])
    first, last = map(float, found.groups())
    assert last < first / 10

    assert "image/png" in _mimetypes(cells["train-plot"])
    assert "image/png" in _mimetypes(cells["jacobian"])
    assert _text(cells["jacobian"]).count("ρ = ") == 3
