"""Extreme inputs to the fused check (float16 logits past its range, a huge z-loss or weight, logits near
float64's range) let no raw numpy warning out, from the Python call or on `sce check --arrays`'s stderr,
in either mode, whole or on shards."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from sce.io.arrays.dump import bfloat16_dtype
from sce.testing import check_linear_cross_entropy

F32 = np.float32

#: (type, scale of the inputs, options): each overflowed somewhere in the exact pass or a baseline.
EXTREMES = [
    ("float16", 300.0, {}),
    ("float16", 300.0, {"z_loss": 1e30}),
    ("float16", 300.0, {"softcap": 1e300}),
    ("float32", 1e5, {"z_loss": 1e300}),
    ("float32", 1e5, {"weight": [1e300] * 6}),
    ("float32", 1e18, {"z_loss": 1e-3, "softcap": 1e-3}),
    ("bfloat16", 1e30, {}),
    ("float64", 1e150, {"label_smoothing": 0.5, "z_loss": 1e10}),
    ("float64", 1e150, {"weight": [1e-300] * 6, "z_loss": 1.0}),
]


def _inputs(dtype_name: str, scale: float):  # noqa: ANN202
    dtype = bfloat16_dtype() if dtype_name == "bfloat16" else np.dtype(dtype_name)
    rng = np.random.default_rng(0)
    hidden = (rng.standard_normal((8, 4)) * scale).astype(dtype)
    classifier = (rng.standard_normal((6, 4)) * scale).astype(dtype)
    return hidden, classifier, rng.integers(0, 6, 8)


@pytest.mark.parametrize("shards", [False, True], ids=["whole", "shards"])
@pytest.mark.parametrize("mode", ["full", "quick"])
@pytest.mark.parametrize("extreme", EXTREMES, ids=lambda e: f"{e[0]}-{e[1]:g}-{'-'.join(e[2]) or 'plain'}")
def test_extreme_inputs_let_no_numpy_warning_out_of_the_check(extreme: tuple, mode: str, shards: bool) -> None:
    dtype_name, scale, options = extreme
    hidden, classifier, labels = _inputs(dtype_name, scale)
    classifier_given = [classifier[:2], classifier[2:]] if shards else classifier
    zeros = np.zeros(classifier.shape, classifier.dtype)
    outputs = {
        "loss": np.asarray(1.0, hidden.dtype),
        "grad_hidden": np.zeros(hidden.shape, hidden.dtype),
        "grad_classifier": [zeros[:2], zeros[2:]] if shards else zeros,
    }
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        report = check_linear_cross_entropy(hidden, classifier_given, labels, mode=mode, **outputs, **options)
    assert not leaked, [f"{w.filename}:{w.lineno} {w.message}" for w in leaked]
    assert report.mode == mode


def _exact_mean_loss(hidden, classifier, labels) -> float:  # noqa: ANN001
    """The mean cross-entropy in float64 (float16 products are exact in float64)."""
    z = hidden.astype(np.float64) @ classifier.astype(np.float64).T
    top = z.max(axis=1)
    return float(np.mean(top + np.log(np.exp(z - top[:, None]).sum(axis=1)) - z[np.arange(len(labels)), labels]))


def test_quick_mode_on_float16_logits_past_its_range_leaks_no_numpy_warning() -> None:
    # float16 inputs whose logits reach 1.6e+05 (float16 stops at 65,504): quick mode let numpy's "overflow
    # encountered in cast" and "invalid value encountered in subtract" out of its insides.
    hidden, classifier, labels = _inputs("float16", 200.0)
    loss = _exact_mean_loss(hidden, classifier, labels)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        report = check_linear_cross_entropy(hidden, classifier, labels, loss=F32(loss), mode="quick")
    assert report.passed, str(report)
    assert not leaked, [str(warning.message) for warning in leaked]


@pytest.mark.parametrize(("dtype_name", "scale", "z_loss"), [("float16", 200.0, None), ("float32", 1e5, "1e300")])
@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_check_arrays_prints_no_raw_numpy_warning(tmp_path, dtype_name: str, scale: float, z_loss, quick: bool) -> None:  # noqa: ANN001
    hidden, classifier, labels = _inputs(dtype_name, scale)
    dump = tmp_path / "extreme_logits.npz"
    np.savez(dump, hidden=hidden, classifier=classifier, labels=labels, grad_hidden=np.zeros_like(hidden))
    command = [sys.executable, "-m", "sce", "check", "--arrays", str(dump)]
    command += ["--quick"] * quick + (["--z-loss", z_loss] if z_loss else [])
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stderr
    assert "Warning" not in result.stderr and result.stderr == "", result.stderr

