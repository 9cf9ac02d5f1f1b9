"""The pytest plugin as a user meets it: sce's wheel built from this checkout and installed in a fresh
virtual environment, where pytest finds the plugin through its entry point alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: A fused kernel written with numpy as the common ones compute: float32 logits and sums, each
#: result rounded once to the inputs' type, 'mean' or 'none' with an upstream gradient per row.
#: ``counts_ignored`` makes the mean's mistake of dividing by every row, ignored ones too.
KERNEL = '''
import numpy as np


def linear_cross_entropy(hidden, classifier, labels, bias=None, ignore_index=-100, reduction="mean",
                         grad_output=1.0, counts_ignored=False):
    kind = hidden.dtype
    e, c = hidden.astype(np.float32), classifier.astype(np.float32)
    z = e @ c.T
    if bias is not None:
        z += bias.astype(np.float32)
    z -= z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    counted = labels != ignore_index
    label = np.where(counted, labels, 0)
    rows = np.arange(len(labels))
    losses = np.where(counted, lse - z[rows, label], 0).astype(np.float32)
    g = np.exp(z - lse[:, None])
    g[rows, label] -= 1
    g[~counted] = 0
    if reduction == "none":
        loss = losses
        g *= np.asarray(grad_output, np.float32)[:, None]
    else:
        n = np.float32(len(labels) if counts_ignored else counted.sum())
        loss = losses.sum(dtype=np.float32) / n
        g /= n
    grad_bias = None if bias is None else g.sum(axis=0).astype(kind)
    return np.asarray(loss).astype(kind), (g @ c).astype(kind), (g.T @ e).astype(kind), grad_bias
'''

SAMPLE_TEST = '''
from kernel import linear_cross_entropy


def results(sce_case, **mistake):
    loss, grad_hidden, grad_classifier, grad_bias = linear_cross_entropy(
        sce_case.hidden, sce_case.classifier, sce_case.labels, sce_case.bias,
        grad_output=sce_case.grad_output, **sce_case.options, **mistake
    )
    return dict(loss=loss, grad_hidden=grad_hidden, grad_classifier=grad_classifier, grad_bias=grad_bias)


def test_right(sce_case):
    assert sce_case.check(**results(sce_case)).passed
    sce_case.assert_close(**results(sce_case))


def test_wrong(sce_case):
    sce_case.assert_close(**results(sce_case, counts_ignored=True))
'''


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with sce's wheel (built from this checkout), its bfloat16 extra and pytest."""
    where = tmp_path_factory.mktemp("fresh")
    wheels = where / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)], where)
    if built.returncode != 0:
        pytest.skip(f"pip could not build sce's wheel (it needs setuptools from PyPI): {built.stderr[-300:]}")
    venv.EnvBuilder(with_pip=True).create(where / "venv")
    python = where / "venv" / "bin" / "python"
    wheel = next(wheels.glob("sce-*.whl"))
    installed = _run([str(python), "-m", "pip", "install", "-q", f"{wheel}[bfloat16]", "pytest"], where)
    if installed.returncode != 0:
        pytest.skip(f"pip could not install sce's wheel from PyPI: {installed.stderr[-300:]}")
    return python


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command in ``cwd``, outside this checkout's environment (no PYTHONPATH, no active venv)."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", COLUMNS="400")
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.fresh_venv
def test_pytest_fixtures_lists_sce_case(fresh_venv: Path, tmp_path: Path) -> None:
    result = _run([str(fresh_venv), "-m", "pytest", "--fixtures", "-p", "no:cacheprovider"], tmp_path)
    assert any(line.startswith("sce_case -- ") for line in result.stdout.splitlines()), result.stdout[-2000:]


@pytest.mark.fresh_venv
def test_a_numpy_kernel_passes_every_case_and_a_wrong_one_fails_with_the_verdict_first(
    fresh_venv: Path, tmp_path: Path
) -> None:
    (tmp_path / "kernel.py").write_text(KERNEL)
    (tmp_path / "test_kernel.py").write_text(textwrap.dedent(SAMPLE_TEST))
    command = [str(fresh_venv), "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "test_kernel.py"]
    result = _run(command, tmp_path)
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    # Dividing by every row is wrong exactly where rows are ignored: the ignored runs and the padding.
    assert sorted(line.split(" - ")[0] for line in failed) == [
        f"FAILED test_kernel.py::test_wrong[{case}-{dtype}]"
        for case in ("ignored-runs", "padding-only-rows")
        for dtype in ("bfloat16", "float32")
    ], result.stdout[-3000:]
    for line in failed:
        verdict = line.split(" - ", 1)[1]
        assert verdict.startswith("AssertionError: not correct: ignored rows counted in the mean ("), line
    assert "20 passed" in result.stdout.splitlines()[-1]
