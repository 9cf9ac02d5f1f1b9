"""Grading the stages of the derivation: each intermediate a learner writes on the way to the gradient.

The stages are those ``sce grad --steps`` derives, by the same names: the shifted logits
``shifted`` (z − max z), their exponentials ``exp``, the sum ``sum_exp``, the probabilities
``probs``, the ``loss``, the gradient with respect to the probabilities ``dL_ds`` (−y/s), the
softmax's Jacobian ``ds_dz`` (K×K, row by row) and the gradient ``grad``. Each is graded as a
typed answer is: a tolerance from the digits written, too few digits to tell it from a usual
mistake, and the mistake named where one explains it.

Examples
--------
>>> from sce.loss import softmax_cross_entropy
>>> result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1])
>>> [check.verdict for check in check_stages(result, {"shifted": ["-2", "-1", "0"], "sum_exp": ["1.5032"]})]
['correct', 'correct']
>>> check_stages(result, {"exp": ["7.389", "20.09", "54.60"]})[0].mistake.name
'e^z instead of e^(z − max z): the exponentials of the logits, not of the shifted logits'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike

from sce.errors import option
from sce.grading import catalogue
from sce.grading.answers import QuantityCheck, check_answer, check_quantity, one_diagnosis
from sce.grading.mistakes import MistakenValue
from sce.loss import SoftmaxCrossEntropyResult, loss_gradient_wrt_probabilities, softmax_jacobian
from sce.options import LossOptions

#: Every stage, in the derivation's order.
STAGES = ("shifted", "exp", "sum_exp", "probs", "loss", "dL_ds", "ds_dz", "grad")

#: The stages that a typed answer's quantities grade: graded as ``--probs``, ``--loss`` and ``--grad`` are.
AS_QUANTITY: Mapping[str, str] = {"probs": "probabilities", "loss": "loss", "grad": "gradient"}

#: The stages that are one number for the row; the others have one entry per class.
SCALAR_STAGES = frozenset({"sum_exp", "loss"})

#: The stages that are a K×K matrix, given row by row.
MATRIX_STAGES = frozenset({"ds_dz"})


def undefined_stage(stage: str, options: LossOptions) -> str | None:
    """Why ``stage`` is not an intermediate of the loss under ``options`` (None where it is one).

    >>> from sce.errors import worded
    >>> worded(undefined_stage("dL_ds", LossOptions(z_loss=1e-4)))
    'with z_loss the loss depends on the logits through log Σ e^z as well, not through s alone'
    >>> undefined_stage("exp", LossOptions()) is None
    True
    """
    if stage == "dL_ds" and options.z_loss:
        return f"with {option('z_loss')} the loss depends on the logits through log Σ e^z as well, not through s alone"
    return None


def stage_length(stage: str, classes: int) -> int:
    """How many numbers the stage has for a row of ``classes`` logits: K² for the Jacobian."""
    if stage in MATRIX_STAGES:
        return classes * classes
    return 1 if stage in SCALAR_STAGES else classes


def check_stages(
    result: SoftmaxCrossEntropyResult,
    given: Mapping[str, list[str]],
    tolerance: float | None = None,
    targets: ArrayLike | None = None,
) -> list[QuantityCheck]:
    """Grade each stage given (its name → the numbers as typed) against row 0 of ``result``, in the
    derivation's order; ``probs``, ``loss`` and ``grad`` exactly as :func:`~sce.grading.check_answer` does."""
    quantities = {AS_QUANTITY[s]: texts for s, texts in given.items() if s in AS_QUANTITY}
    answered = {
        check.name: check for check in (check_answer(result, quantities, tolerance, targets) if quantities else [])
    }
    # As for the typed quantities: computed in float32, another float32 engine differs in its last bits.
    rounding = 4 * float(np.finfo(result.gradient.dtype).eps)
    checks = []
    for stage in STAGES:
        if stage not in given:
            continue
        if stage in AS_QUANTITY:
            checks.append(answered[AS_QUANTITY[stage]])
            continue
        # Only the stages given are computed: the Jacobian is K², too big to make unasked for a large K.
        expected = _exact_stage(result, stage)
        candidates = [m for m in _stage_mistakes(result, stage, expected) if not _same_numbers(m.value, expected)]
        columns = result.num_classes if stage in MATRIX_STAGES else 0
        found = check_quantity(stage, given[stage], expected, tolerance, candidates, rounding, columns=columns)
        checks.append(found if tolerance is None else _with_given_tolerance(found))
    return one_diagnosis(checks)


def _with_given_tolerance(check: QuantityCheck) -> QuantityCheck:
    return replace(check, tolerance_given=True)


def _same_numbers(mistaken: np.ndarray, expected: np.ndarray) -> bool:
    """A mistake that gives the right numbers here is none (the shift of an all-equal row)."""
    with np.errstate(invalid="ignore"):
        return bool(np.array_equal(mistaken, expected) or np.allclose(mistaken, expected, rtol=1e-15, atol=0))


def _exact_stage(result: SoftmaxCrossEntropyResult, stage: str) -> np.ndarray:
    """One stage's exact numbers for row 0, float64 (a matrix's flattened row by row)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if stage == "shifted":
            return result.shifted_logits[0].astype(np.float64)
        if stage == "exp":
            return result.exp_shifted[0].astype(np.float64)
        if stage == "sum_exp":
            return np.array([float(result.exp_sum[0])])
        if stage == "dL_ds":
            return loss_gradient_wrt_probabilities(result).astype(np.float64)
        return _jacobian(result).ravel()


def _jacobian(result: SoftmaxCrossEntropyResult) -> np.ndarray:
    """∂s_j/∂z_k = s_j(δ_jk − s_k) · a'(z_k)/T: the softmax's Jacobian at its input b = a(z)/T, times ∂b/∂z."""
    s = result.probabilities[0].astype(np.float64)
    exps = result.exp_shifted[0].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        factor = result.cap_derivative[0].astype(np.float64) / result.options.temperature
        jacobian = softmax_jacobian(s)
        # s_j(1 − s_j) with 1 − s_j as the other classes' share Σ_{k≠j} e_k / Σ e: on a confident
        # row 1 − s_j rounds to 0, and the diagonal would lose every digit.
        eye = np.eye(s.size, dtype=bool)
        np.fill_diagonal(jacobian, s * np.where(eye, 0.0, exps[None, :]).sum(axis=1) / exps.sum())
        return jacobian * factor[None, :]


def _stage_mistakes(result: SoftmaxCrossEntropyResult, stage: str, exact: np.ndarray) -> list[MistakenValue]:
    """What the stage's own mistakes give: the shift reversed, e^z unshifted, −y/s's sign, s − y for −y/s,
    the Jacobian's diagonal alone."""
    if stage == "shifted":
        return [MistakenValue(catalogue.SHIFT_REVERSED, stage, -exact)]
    if stage == "dL_ds":
        return [
            MistakenValue(catalogue.DL_DS_SIGN_DROPPED, stage, -exact),
            MistakenValue(catalogue.DL_DZ_FOR_DL_DS, stage, result.gradient[0].astype(np.float64)),
        ]
    if stage in MATRIX_STAGES:  # s_k(1 − s_k) on the diagonal, the off-diagonal −s_j·s_k left out
        k = result.num_classes
        return [MistakenValue(catalogue.JACOBIAN_DIAGONAL, stage, np.diag(exact[:: k + 1]).ravel())]
    # The softmax's input b (z, z/T, or the capped logits) exponentiated without its shift.
    with np.errstate(over="ignore", invalid="ignore"):
        unshifted = np.exp(result.scaled_logits[0].astype(np.float64))
    return [
        MistakenValue(catalogue.EXP_NOT_SHIFTED, stage, unshifted if stage == "exp" else np.array([unshifted.sum()]))
    ]


__all__ = ["AS_QUANTITY", "MATRIX_STAGES", "SCALAR_STAGES", "STAGES", "check_stages", "stage_length", "undefined_stage"]
