"""The numbers behind ``sce grad --verify``, ``--jacobian`` and ``--hessian``.

Built from a core result (row 0); rendered by ``render.table`` and
``render.json_format``. Nothing here is computed twice: the matrices come
from :mod:`sce.loss.matrices`, the finite differences from :mod:`.finite_differences`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sce.explain.finite_differences import Verification, verify_gradient
from sce.loss import (
    SoftmaxCrossEntropyResult,
    gradient_via_jacobian,
    loss_gradient_wrt_probabilities,
    loss_hessian,
    softmax_jacobian,
)
from sce.loss.matrices import (
    hessian_scale,
    language_model_hessian,
    softmax_jacobian_eigenvalues,
    softmax_jacobian_top_eigenvalues,
)
from sce.options import LossOptions

#: Beyond this many classes the K×K matrices are not formed (K = 1,000 is 8 MB;
#: K = 100,000 would be 75 GiB): their shown rows and eigenvalues follow from s.
MATRIX_LIMIT = 1000
#: How many of the largest eigenvalues are found when the matrix is not formed.
TOP_EIGENVALUES = 5


@dataclass(frozen=True)
class JacobianProof:
    jacobian: np.ndarray | None
    """∂s/∂z, the softmax's Jacobian with respect to the logits as given: (diag(s) − s sᵀ)
    · diag(1 − tanh²(z/c)) / T, which is diag(s) − s sᵀ without a cap or a temperature
    (K×K), or None beyond MATRIX_LIMIT classes."""
    dl_ds: np.ndarray
    """∂L/∂s (K)."""
    product: np.ndarray
    """∂L/∂s · ∂s/∂z times 1/T and 1/D: the gradient the long way (K)."""
    gradient: np.ndarray
    """The core's gradient, to compare the product with (K)."""
    language_model: bool = False
    """The product includes the cap's factor 1 − tanh²(z/c) and the z-loss's 2λ·lse·s."""
    softmax_jacobian: np.ndarray | None = None
    """∂s/∂b = diag(s) − s sᵀ at the softmax's own input b = c·tanh(z/c)/T, where b is not
    z (a temperature or a cap); else None (K×K; None beyond MATRIX_LIMIT classes too)."""
    options: LossOptions = LossOptions()
    """The result's options: what the product carries beyond ∂L/∂s · ∂s/∂z (the mean, the z-loss)."""
    denominator: float = 1.0
    """What the mean divides the cross-entropy by (D)."""
    dl_ds_overflows: bool = False
    """An entry of ∂L/∂s = -w ⊙ y / s is beyond float64's range although its probability is not 0
    (a weight near 1e308): not a probability of 0."""

    @property
    def fails_in_floating_point(self) -> bool:
        """∂L/∂s is infinite (a probability with target mass is 0 in float64, or -w y/s overflows),
        so the product meets ∞·0 or ∞ − ∞."""
        return not bool(np.isfinite(self.product).all())


@dataclass(frozen=True)
class HessianProof:
    hessian: np.ndarray | None
    """∇²L (K×K), or None beyond MATRIX_LIMIT classes."""
    eigenvalues: np.ndarray
    """All eigenvalues, ascending; beyond MATRIX_LIMIT classes the largest few, descending, and 0."""
    num_classes: int
    language_model: bool = False
    """Soft-capping or a z-loss: not a multiple of diag(s) − s sᵀ, and not convex in general."""
    softcap: bool = False
    negative_lse: bool = False
    """With a z-loss, lse < 0 for the row, where λ·lse² is not convex."""

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.eigenvalues).all())

    @property
    def positive_semidefinite(self) -> bool:
        """Every eigenvalue ≥ 0 up to rounding (64 ulps of the largest): convex at these logits."""
        largest = float(np.max(np.abs(self.eigenvalues), initial=0.0))
        return bool(np.min(self.eigenvalues, initial=0.0) >= -64 * np.finfo(np.float64).eps * largest)

    @property
    def all_eigenvalues(self) -> bool:
        return len(self.eigenvalues) == self.num_classes

    @property
    def eigenvalue_error(self) -> float:
        """How far an eigenvalue shown may be from the exact one, at most: 0 where each is found to a few
        ulps of itself (a multiple of diag(s) - s sᵀ, from its secular equation); with a cap or a z-loss,
        the matrix's own rounding and the eigensolver's, 16·K·eps·‖H‖ (Weyl), which leaves an eigenvalue
        near 0 fewer digits than asked for."""
        if not self.language_model or not self.finite:
            return 0.0
        largest = float(np.max(np.abs(self.eigenvalues), initial=0.0))
        return 16 * self.num_classes * float(np.finfo(np.float64).eps) * largest


@dataclass(frozen=True)
class Proofs:
    verification: Verification | None = None
    jacobian: JacobianProof | None = None
    hessian: HessianProof | None = None

    @property
    def any(self) -> bool:
        return any(part is not None for part in (self.verification, self.jacobian, self.hessian))


def _jacobian_proof(result: SoftmaxCrossEntropyResult, s: np.ndarray, small: bool) -> JacobianProof:
    """∂s/∂z = ∂s/∂b · ∂b/∂z: the softmax's Jacobian at b, times diag(1 − tanh²(z/c)) / T."""
    options = result.options
    at_b = softmax_jacobian(s) if small else None
    moved = options.softcap is not None or options.temperature != 1.0
    with_respect_to_z = None
    if at_b is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            factor = result.cap_derivative[0].astype(np.float64) / options.temperature
            with_respect_to_z = at_b * factor[None, :] if moved else at_b
    dl_ds = loss_gradient_wrt_probabilities(result).astype(np.float64)
    return JacobianProof(
        with_respect_to_z,
        dl_ds,
        gradient_via_jacobian(result),
        result.gradient[0].astype(np.float64),
        options.has_llm_options,
        at_b if moved else None,
        options,
        float(result.denominator),
        bool(np.isinf(dl_ds[s > 0]).any()),
    )


def prove(result: SoftmaxCrossEntropyResult, *, verify: bool, jacobian: bool, hessian: bool) -> Proofs:
    """The proofs asked for, for row 0 of ``result``; time and memory linear in K
    beyond MATRIX_LIMIT classes."""
    result = result.as_rows
    small = result.num_classes <= MATRIX_LIMIT
    s = result.probabilities[0].astype(np.float64)
    jacobian_proof = _jacobian_proof(result, s, small) if jacobian else None
    hessian_proof = None
    if hessian:
        if small:
            with_options = result.options.has_llm_options
            matrix = language_model_hessian(result) if with_options else loss_hessian(result).astype(np.float64)
            finite = np.isfinite(matrix).all()  # a tiny T overflows it, as it did the gradient
            eigenvalues = np.full(result.num_classes, np.nan)
            if finite and with_options:
                eigenvalues = np.linalg.eigvalsh(matrix)
            elif finite:  # a multiple of diag(s) - s sᵀ: its 0 exactly, and small ones to their own digits
                eigenvalues = np.sort(hessian_scale(result) * softmax_jacobian_eigenvalues(s))
            lse = result.log_sum_exp
            negative_lse = bool(result.options.z_loss and lse is not None and float(lse[0]) < 0)
            hessian_proof = HessianProof(
                matrix, eigenvalues, result.num_classes, with_options, result.options.softcap is not None, negative_lse
            )
        else:
            top = hessian_scale(result) * softmax_jacobian_top_eigenvalues(s, TOP_EIGENVALUES)
            hessian_proof = HessianProof(None, np.append(top, 0.0), result.num_classes)
    verification = None
    if verify:
        verification = verify_gradient(result)
    return Proofs(verification, jacobian_proof, hessian_proof)
