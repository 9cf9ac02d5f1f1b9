"""A fused linear cross-entropy's outputs recomputed exactly, entry by entry, for the few entries
whose verdict the float64 reference's error bound cannot decide (:mod:`.exact_entries`).

Every float (float16, bfloat16, float32 or float64) is an integer times a power of two, so a logit
Σ_d E_id·C_jd + b_j is an integer sum, formed with Python's integers without any rounding. The
row's soft cap, log-sum-exp, probabilities and ∂L/∂z follow with mpmath at :data:`DIGITS`
digits (each rounded at the 60th digit: 10⁴⁰ times finer than a float64 ulp), and so do the sums
∂L/∂E_id = Σ_j G_ij·C_jd, ∂L/∂C_jd = Σ_i G_ij·E_id and ∂L/∂b_j = Σ_i G_ij, their products exact
and each sum rounded once. The coefficients come from the options themselves (ε, the weights,
the mean's denominator as an exact sum), not from their float64 roundings.

mpmath is imported only here, and only when an entry is recomputed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sce.grading.linear.answers import LinearInputs

#: Significant digits of the recomputed values.
DIGITS = 60


def integer_matrix(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a`` (any float type, any shape) as Python integers m and one exponent k: a = m·2^k exactly.

    Examples
    --------
    >>> m, k = integer_matrix(np.array([0.75, -2.0, 0.0]))
    >>> [int(x) * 2.0**k for x in m]
    [0.75, -2.0, 0.0]
    """
    values = np.asarray(a, dtype=np.float64)
    fraction, exponent = np.frexp(values)
    mantissa = (fraction * 2.0**53).astype(np.int64)  # exact: 53 bits
    nonzero = values != 0
    lowest = int(exponent[nonzero].min()) if nonzero.any() else 0
    shifts = np.where(nonzero, exponent - lowest, 0).astype(object)
    return mantissa.astype(object) << shifts, lowest - 53


class ExactRows:
    """Each row's ∂L/∂z and loss, exact to :data:`DIGITS` digits, computed once and kept."""

    def __init__(self, inputs: LinearInputs) -> None:
        import mpmath  # type: ignore[import-untyped]

        self.mp = mpmath.MPContext()
        self.mp.dps = DIGITS
        self.inputs = inputs
        self.v = len(inputs.c)
        self._c, self._c_exponent = integer_matrix(inputs.c)
        self._b = None if inputs.b is None else integer_matrix(inputs.b)
        self._coefficients = _Coefficients(self.mp, inputs)
        self.gradients: dict[int, list[Any]] = {}
        self.losses: dict[int, tuple[Any, Any]] = {}

    def ensure(self, rows: list[int]) -> None:
        """Compute the rows not yet known (their logits together, as one integer product)."""
        wanted = [i for i in sorted(set(rows)) if i not in self.gradients]
        counted = self.inputs.terms.counted
        for i in wanted:
            if not counted[i]:
                self.gradients[i] = [self.mp.zero] * self.v
                self.losses[i] = (self.mp.zero, self.mp.zero)
        live = [i for i in wanted if counted[i]]
        if not live:
            return
        e, e_exponent = integer_matrix(self.inputs.e[live])
        products = e @ self._c.T
        for at, i in enumerate(live):
            logits = [self.mp.ldexp(self.mp.mpf(int(x)), e_exponent + self._c_exponent) for x in products[at]]
            if self._b is not None:
                b, b_exponent = self._b
                logits = [z + self.mp.ldexp(self.mp.mpf(int(x)), b_exponent) for z, x in zip(logits, b)]
            self.gradients[i], self.losses[i] = self._row(i, logits)

    def _row(self, i: int, logits: list[Any]) -> tuple[list[Any], tuple[Any, Any]]:
        """Row i's ∂L/∂z and its (cross-entropy, z-loss), from its exact logits."""
        mp, terms = self.mp, self.inputs.terms
        cap = terms.softcap
        if cap is None:
            capped, factor = logits, None
        else:
            tanh = [mp.tanh(z / cap) for z in logits]
            capped, factor = [cap * t for t in tanh], [1 - t * t for t in tanh]
        lse = mp.log(mp.fsum(mp.exp(a) for a in capped))
        p = [mp.exp(a - lse) for a in capped]
        coefficients = self._coefficients.of_row(int(terms.labels[i]))
        s = mp.fsum(coefficients.values())
        ce_scale, z_scale = self._coefficients.scales(i)
        gradient = [s * pj * ce_scale for pj in p]
        for j, cj in coefficients.items():
            gradient[j] -= cj * ce_scale
        if terms.z_loss:
            gradient = [g + z_scale * lse * pj for g, pj in zip(gradient, p)]
        if factor is not None:
            gradient = [g * f for g, f in zip(gradient, factor)]
        cross_entropy = mp.fsum(cj * (lse - capped[j]) for j, cj in coefficients.items())
        return gradient, (cross_entropy, mp.mpf(terms.z_loss) * lse * lse)

    def grad_hidden(self, i: int, d: int) -> Any:
        return self.mp.fdot(self.gradients[i], self.inputs.c[:, d].astype(np.float64).tolist())

    def grad_classifier(self, j: int, d: int) -> Any:
        rows = sorted(self.gradients)
        column = self.inputs.e[rows, d].astype(np.float64).tolist()
        return self.mp.fdot([self.gradients[i][j] for i in rows], column)

    def grad_bias(self, j: int) -> Any:
        return self.mp.fsum(self.gradients[i][j] for i in sorted(self.gradients))

    def loss(self, index: tuple[int, ...]) -> Any:
        """Row i's loss for 'none'; the reduced loss (every row known) otherwise."""
        mp, terms = self.mp, self.inputs.terms
        if terms.reduction == "none":
            return mp.fsum(self.losses[index[0]])
        cross_entropy = mp.fsum(part[0] for part in self.losses.values())
        z = mp.fsum(part[1] for part in self.losses.values())
        if terms.reduction == "sum":
            return cross_entropy + z
        denominator, count = self._coefficients.denominators
        if not denominator or not count:
            return mp.nan  # 0/0: a mean over no counted weight, as PyTorch returns it
        return cross_entropy / denominator + (z / count if terms.z_loss else 0)


class _Coefficients:
    """Each row's c_ij and scales from the options, exactly: the label's share (1 − ε)·w_y and the
    smoothing's mass ε/V·w_j (or ε/(V − 1)·w_j off the label, off-target), as the loss defines them."""

    def __init__(self, mp: Any, inputs: LinearInputs) -> None:
        self.mp = mp
        options, terms = inputs.options, inputs.terms
        v = len(inputs.c)
        self.weights = [mp.mpf(w) for w in (options.weight or (1.0,) * v)]
        eps = mp.mpf(options.label_smoothing)
        self.off_target = options.smoothing_style == "off-target"
        if self.off_target:
            self.share, mass = (mp.one, mp.zero) if eps == 0 or v == 1 else (1 - eps, eps / (v - 1))
        else:
            self.share, mass = 1 - eps, eps / v
        self.smoothed = {j: mass * w for j, w in enumerate(self.weights)} if mass else {}
        counted = np.flatnonzero(terms.counted)
        self.denominators = (mp.fsum(self.weights[int(terms.labels[i])] for i in counted), len(counted))
        upstream = np.broadcast_to(np.asarray(inputs.grad_output, dtype=np.float64), terms.counted.shape)
        self.upstream = upstream
        self.reduction = terms.reduction
        self.z_loss = mp.mpf(terms.z_loss)

    def of_row(self, label: int) -> dict[int, Any]:
        coefficients = dict(self.smoothed)
        share = self.share * self.weights[label]
        if self.off_target:
            coefficients[label] = share
        else:
            coefficients[label] = coefficients.get(label, self.mp.zero) + share
        return {j: c for j, c in coefficients.items() if c}

    def scales(self, i: int) -> tuple[Any, Any]:
        """What multiplies s·p − c, and lse·p (the z-loss's 2λ included), in row i."""
        upstream = self.mp.mpf(float(self.upstream[i]))
        if self.reduction != "mean":
            return upstream, 2 * self.z_loss * upstream
        denominator, count = self.denominators
        ce_scale = upstream / denominator if denominator else self.mp.zero
        return ce_scale, 2 * self.z_loss * upstream / count
