"""The numbers behind ``sce grad --verify``, ``--jacobian`` and ``--hessian``.

Built from a core result (row 0); rendered by ``render.table`` and
``render.json_format``. Nothing here is computed twice: the matrices come
from :mod:`sce_cli.core.matrices`, the finite differences from grading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .core import (
    SoftmaxCrossEntropyResult,
    gradient_via_jacobian,
    loss_gradient_wrt_probabilities,
    loss_hessian,
    softmax_jacobian,
)
from .grading import Verification, verify_gradient


@dataclass(frozen=True)
class JacobianProof:
    jacobian: np.ndarray
    """∂s/∂z = diag(s) − s sᵀ (K×K)."""
    dl_ds: np.ndarray
    """∂L/∂s (K)."""
    product: np.ndarray
    """∂L/∂s · ∂s/∂z times 1/T and 1/D: the gradient the long way (K)."""
    gradient: np.ndarray
    """The core's gradient, to compare the product with (K)."""


@dataclass(frozen=True)
class HessianProof:
    hessian: np.ndarray
    eigenvalues: np.ndarray


@dataclass(frozen=True)
class Proofs:
    verification: Verification | None = None
    jacobian: JacobianProof | None = None
    hessian: HessianProof | None = None

    @property
    def any(self) -> bool:
        return any(part is not None for part in (self.verification, self.jacobian, self.hessian))


def prove(result: SoftmaxCrossEntropyResult, *, verify: bool, jacobian: bool, hessian: bool) -> Proofs:
    """The proofs asked for, for row 0 of ``result``."""
    jacobian_proof = None
    if jacobian:
        jacobian_proof = JacobianProof(
            softmax_jacobian(result.probabilities[0].astype(np.float64)),
            loss_gradient_wrt_probabilities(result).astype(np.float64),
            gradient_via_jacobian(result),
            result.gradient[0].astype(np.float64),
        )
    hessian_proof = None
    if hessian:
        matrix = loss_hessian(result).astype(np.float64)
        hessian_proof = HessianProof(matrix, np.linalg.eigvalsh(matrix))
    return Proofs(verify_gradient(result) if verify else None, jacobian_proof, hessian_proof)
