"""The numbers behind ``sce grad --verify``, ``--jacobian`` and ``--hessian``.

Built from a core result (row 0); rendered by ``render.table`` and
``render.json_format``. Nothing here is computed twice: the matrices come
from :mod:`sce_cli.core.matrices`, the finite differences from grading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .core import (
    SoftmaxCrossEntropyResult,
    gradient_via_jacobian,
    loss_gradient_wrt_probabilities,
    loss_hessian,
    softmax_jacobian,
)
from .core.matrices import hessian_scale, language_model_hessian, softmax_jacobian_top_eigenvalues

if TYPE_CHECKING:  # grading is imported by --verify alone
    from .grading import Verification

#: Beyond this many classes the K×K matrices are not formed (K = 1,000 is 8 MB;
#: K = 100,000 would be 75 GiB): their shown rows and eigenvalues follow from s.
MATRIX_LIMIT = 1000
#: How many of the largest eigenvalues are found when the matrix is not formed.
TOP_EIGENVALUES = 5


@dataclass(frozen=True)
class JacobianProof:
    jacobian: np.ndarray | None
    """∂s/∂z = diag(s) − s sᵀ (K×K), or None beyond MATRIX_LIMIT classes."""
    dl_ds: np.ndarray
    """∂L/∂s (K)."""
    product: np.ndarray
    """∂L/∂s · ∂s/∂z times 1/T and 1/D: the gradient the long way (K)."""
    gradient: np.ndarray
    """The core's gradient, to compare the product with (K)."""
    language_model: bool = False
    """The product includes the cap's factor 1 − tanh²(z/c) and the z-loss's 2λ·lse·s."""

    @property
    def fails_in_floating_point(self) -> bool:
        """A probability with target mass is 0 in float64: ∂L/∂s is infinite and the product meets ∞·0."""
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

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.eigenvalues).all())

    @property
    def all_eigenvalues(self) -> bool:
        return len(self.eigenvalues) == self.num_classes


@dataclass(frozen=True)
class Proofs:
    verification: Verification | None = None
    jacobian: JacobianProof | None = None
    hessian: HessianProof | None = None

    @property
    def any(self) -> bool:
        return any(part is not None for part in (self.verification, self.jacobian, self.hessian))


def prove(result: SoftmaxCrossEntropyResult, *, verify: bool, jacobian: bool, hessian: bool) -> Proofs:
    """The proofs asked for, for row 0 of ``result``; time and memory linear in K
    beyond MATRIX_LIMIT classes."""
    small = result.num_classes <= MATRIX_LIMIT
    s = result.probabilities[0].astype(np.float64)
    jacobian_proof = None
    if jacobian:
        jacobian_proof = JacobianProof(
            softmax_jacobian(s) if small else None,
            loss_gradient_wrt_probabilities(result).astype(np.float64),
            gradient_via_jacobian(result),
            result.gradient[0].astype(np.float64),
            result.options.has_llm_options,
        )
    hessian_proof = None
    if hessian:
        if small:
            with_options = result.options.has_llm_options
            matrix = language_model_hessian(result) if with_options else loss_hessian(result).astype(np.float64)
            finite = np.isfinite(matrix).all()  # a tiny T overflows it, as it did the gradient
            eigenvalues = np.linalg.eigvalsh(matrix) if finite else np.full(result.num_classes, np.nan)
            hessian_proof = HessianProof(matrix, eigenvalues, result.num_classes, with_options)
        else:
            top = hessian_scale(result) * softmax_jacobian_top_eigenvalues(s, TOP_EIGENVALUES)
            hessian_proof = HessianProof(None, np.append(top, 0.0), result.num_classes)
    verification = None
    if verify:
        from .grading import verify_gradient

        verification = verify_gradient(result)
    return Proofs(verification, jacobian_proof, hessian_proof)
