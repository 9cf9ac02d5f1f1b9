"""The example notebook of the docs runs in a real Jupyter kernel and shows the numbers it promises (checked
against mpmath), so that it cannot rot. One kernel, started by the test on a temporary copy."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import mpmath
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "notebooks" / "explain.ipynb"

mpmath.mp.dps = 50


def exact(logits: list[float], target: list[float]) -> tuple[list[mpmath.mpf], mpmath.mpf, list[mpmath.mpf]]:
    """p, L = -Σ t log p and ∂L/∂z = p - t, at 50 digits."""
    exps = [mpmath.e ** mpmath.mpf(z) for z in logits]
    p = [e / sum(exps) for e in exps]
    loss = -sum(mpmath.mpf(t) * mpmath.log(q) for t, q in zip(target, p))
    return p, loss, [q - mpmath.mpf(t) for q, t in zip(p, target)]


def five_digits(value: mpmath.mpf) -> str:
    """A value as the notebook displays it: 5 significant digits, rounded by mpmath rather than by sce."""
    return mpmath.nstr(value, 5, strip_zeros=False)


#: A kernel of its own, run by this Python: a "python3" kernel of the user's own (~/.local/share/jupyter) would win over
#: this environment's, and run another Python, without sce or with another version of it.
KERNEL = "sce-tests-python"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    folder = tmp_path_factory.mktemp("notebook")
    spec = folder / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    copy = folder / NOTEBOOK.name
    shutil.copyfile(NOTEBOOK, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name=KERNEL, resources={"metadata": {"path": str(folder)}}
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(folder / "jupyter"))
        client.execute()
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def shown(cell, kind: str) -> str:
    return "".join(
        output.get("data", {}).get(kind, "") if output.output_type != "stream" else output.get("text", "")
        for output in cell.outputs
    )


def test_every_cell_ran_without_error(executed):
    assert [cell.execution_count for cell in executed] == list(range(1, len(executed) + 1))
    assert all(output.output_type != "error" for cell in executed for output in cell.outputs)
    assert all(cell.outputs for cell in executed)


def test_a_result_shows_as_a_table_with_bars(executed):
    p, loss, gradient = exact([2.0, 3.0, 4.0], [0, 1, 0])
    table = shown(executed[0], "text/html")
    assert table.startswith('<div class="sce-result">') and "<script" not in table
    for value in (*p, *gradient):
        assert f">{five_digits(value)}<" in table
    assert f"Loss L = {five_digits(loss)}" in table
    # The probability bars are as wide as p (in % of the track).
    widths = [float(w) for w in re.findall(r"width:([\d.]+)%;background:#1f77b4", table)]
    assert widths == pytest.approx([float(100 * q) for q in p], abs=0.006)


def test_a_derivation_shows_its_formulas_with_the_numbers(executed):
    p, loss, gradient = exact([2.0, 3.0, 4.0], [0, 1, 0])
    markdown = shown(executed[1], "text/markdown")
    assert markdown.startswith("## 1. Setup") and "$$" in markdown
    for value in (p[1], loss, gradient[1]):
        assert five_digits(value) in markdown
    assert shown(executed[1], "text/html").startswith('<div class="sce-derivation"')


def test_the_learners_own_numbers_are_exact(executed):
    logits = [1.5, -0.3, 0.8, 2.2]
    target = [0.025, 0.025, 0.925, 0.025]  # (1 - 0.1)·y + 0.1/4 for label 2
    p, loss, gradient = exact(logits, target)
    assert five_digits(loss) in shown(executed[2], "text/markdown")
    printed = shown(executed[3], "text/plain").split("\n")
    assert float(printed[0]) == pytest.approx(float(loss), rel=4e-16)
    assert [float(v) for v in printed[1].split()] == pytest.approx([float(g) for g in gradient], rel=4e-16)


def test_the_notebook_is_stored_valid_and_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
