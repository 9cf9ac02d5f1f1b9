"""`sce check` names the slips of the language-model options.

Every typed answer is derived here, by hand in numpy, from the formulas of
the options' published definitions, not from sce's code: a = c·tanh(z/c), b = a/T, p = softmax(b),
L = -Σ w q log p / D + λ·lse(b)² / D_z.
"""

from __future__ import annotations

import json

import numpy as np

from sce.grading import catalogue

Z = np.array([2.0, -1.0, 4.0, 0.5])


def by_hand(label, *, cap=None, lam=0.0, eps=0.0, style="uniform", weight=None, mean=False, factor=True):
    """(loss, gradient) for one vector; ``factor=False`` leaves 1 − tanh² out of the gradient."""
    k = len(Z)
    a = cap * np.tanh(Z / cap) if cap else Z
    top = a.max()
    lse = top + np.log(np.sum(np.exp(a - top)))
    p = np.exp(a - lse)
    one_hot = np.eye(k)[label]
    smoothed = eps / k if style == "uniform" else eps / (k - 1) * (1 - one_hot)
    q = (1 - eps) * one_hot + smoothed
    w = np.ones(k) if weight is None else np.array(weight)
    d = w[label] if mean else 1.0  # PyTorch's mean divides by the label's weight; D_z is 1 row here
    loss = -np.sum(w * q * np.log(p)) / d + lam * lse**2
    gradient_a = (p * np.sum(w * q) - w * q) / d + 2 * lam * lse * p
    cap_factor = 1 - np.tanh(Z / cap) ** 2 if cap and factor else 1.0
    return loss, gradient_a * cap_factor, lse, d


def typed(values) -> str:  # type: ignore[no-untyped-def]
    return ",".join(f"{v:.6f}" for v in np.atleast_1d(values))


def mistake_of(sce, *args: str) -> str:
    result = sce("check", *Z, *args, "-f", "json")
    assert result.exit_code == 1, result.stdout
    quantities = json.loads(result.stdout)["quantities"]
    return next(q["mistake"] for q in quantities if not q["correct"]) or ""


def test_an_answer_smoothed_the_other_way_is_named(sce):
    _, uniform = by_hand(2, eps=0.2, style="uniform")[:2]
    _, off_target = by_hand(2, eps=0.2, style="off-target")[:2]
    assert np.max(np.abs(uniform - off_target)) > 1e-3
    found = mistake_of(sce, "-l", "2", "--smoothing", "0.2", "--smoothing-style", "off-target", "--grad", typed(uniform))
    assert found == catalogue.OTHER_SMOOTHING_STYLE.name
    found = mistake_of(sce, "-l", "2", "--smoothing", "0.2", "--grad", typed(off_target))
    assert found == catalogue.OTHER_SMOOTHING_STYLE.name


def test_a_z_loss_divided_by_the_weight_sum_is_named(sce):
    weight = [1.0, 2.0, 0.5, 1.0]
    loss, _, lse, d = by_hand(1, lam=0.1, weight=weight, mean=True)  # D = w_1 = 2, D_z = 1 row
    wrong = loss - 0.1 * lse**2 + 0.1 * lse**2 / d  # λ·lse² over the weight sum 2, not over 1 row
    found = mistake_of(sce, 
        "-l", "1", "-w", "1,2,0.5,1", "--z-loss", "0.1", "--reduction", "mean", "--loss", f"{wrong:.6f}"
    )
    assert found == catalogue.Z_LOSS_BY_WEIGHT_SUM.name


def test_the_softcap_left_out_is_named(sce):
    _, uncapped = by_hand(1)[:2]
    _, capped = by_hand(1, cap=2.5)[:2]
    assert np.max(np.abs(uncapped - capped)) > 1e-3
    found = mistake_of(sce, "-l", "1", "--softcap", "2.5", "--grad", typed(uncapped))
    assert found == catalogue.SOFTCAP_LEFT_OUT.name


def test_the_tanh_derivative_left_out_is_named(sce):
    _, without_factor = by_hand(1, cap=2.5, lam=0.05, factor=False)[:2]
    _, right = by_hand(1, cap=2.5, lam=0.05)[:2]
    assert np.max(np.abs(without_factor - right)) > 1e-3
    found = mistake_of(sce, "-l", "1", "--softcap", "2.5", "--z-loss", "0.05", "--grad", typed(without_factor))
    assert found == catalogue.TANH_DERIVATIVE_LEFT_OUT.name


def test_the_right_answers_pass(sce):
    loss, gradient = by_hand(1, cap=2.5, lam=0.05, eps=0.1, style="off-target")[:2]
    result = sce("check", *Z, "-l", "1", "--softcap", "2.5", "--z-loss", "0.05", "--smoothing", "0.1", "--smoothing-style", "off-target", "--grad", typed(gradient), "--loss", f"{loss:.6f}")  # fmt: skip
    assert result.exit_code == 0, result.stdout


def test_a_z_loss_left_out_is_named(sce):
    # The cross-entropy's own gradient and loss, by hand, where --z-loss 0.5 was asked for.
    loss, gradient, lse, _ = by_hand(1)
    with_z_loss = by_hand(1, lam=0.5)
    assert np.max(np.abs(with_z_loss[1] - gradient)) > 1e-2 and lse > 1
    found = mistake_of(sce, "-l", "1", "--z-loss", "0.5", "--grad", typed(gradient))
    assert found == catalogue.Z_LOSS_LEFT_OUT.name
    found = mistake_of(sce, "-l", "1", "--z-loss", "0.5", "--loss", typed(loss))
    assert found == catalogue.Z_LOSS_LEFT_OUT.name
