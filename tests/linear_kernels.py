"""Fused linear cross-entropy kernels written with numpy as the common kernels compute: chunks of
rows, float32 accumulation of the input type's products, the logits and ∂L/∂z rounded to the
input's type; each can make one of the named mistakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class Case:
    hidden: np.ndarray
    classifier: np.ndarray
    labels: np.ndarray
    bias: np.ndarray | None = None
    options: dict[str, Any] = field(default_factory=dict)
    grad_output: Any = 1.0


def make_case(
    dtype: Any,
    n: int = 12,
    d: int = 16,
    v: int = 40,
    seed: int = 0,
    offset: float = 0.0,
    grid: bool = False,
    confident: tuple[int, ...] = (3, 7),
    **options: Any,
) -> Case:
    """Random inputs with ignored rows, confident rows (p_y near 0.99) and uneven counted rows
    per chunk; ``offset`` shifts every hidden state (hidden states often share a large component);
    ``confident`` are the rows whose label's logit leads; ``grid`` puts every value on multiples of 1/4 (and 1/16 for C), so that the logits are exact
    even in bfloat16 and only a kernel's own steps round."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, d)) * 1.5 + offset
    c = rng.standard_normal((v, d)) / np.sqrt(d) * 3
    labels = rng.integers(0, v, n)
    labels[[row for row in (1, 2, 5) if row < n]] = -100
    for row in [row for row in confident if row < n and v > 1]:  # confident rows: the label leads by about 6
        z = c @ e[row]
        order = np.argsort(z)
        labels[row] = order[-1]
        e[row] *= min(4.0, 6.0 / max(z[order[-1]] - z[order[-2]], 1e-3))
    bias = rng.standard_normal(v) * 0.5
    if grid:
        e, c, bias = np.round(e * 4) / 4, np.round(c * 16) / 16, np.round(bias * 4) / 4
        for row in [row for row in (3, 7) if row < n]:
            e[row] = np.round(e[row] * 4) / 4
    return Case(e.astype(dtype), c.astype(dtype), labels, bias.astype(dtype), options)


def kernel(case: Case, mistake: str | None = None, chunk: int = 4) -> dict[str, np.ndarray]:
    """loss, grad_hidden, grad_classifier and grad_bias as a chunked kernel computes them."""
    o = case.options
    given = case.hidden.dtype
    e, c = case.hidden.astype(F32), case.classifier.astype(F32)
    n, v = len(e), len(c)
    labels = case.labels
    ignore = o.get("ignore_index", -100)
    counted = labels != ignore
    safe = np.where(counted, labels, 0)
    w = np.ones(v, F32) if o.get("weight") is None else np.asarray(o["weight"], F32)
    reduction = o.get("reduction", "mean")
    upstream = np.broadcast_to(np.asarray(case.grad_output, F32), (n,)) if reduction == "none" else None
    denominator = F32(w[safe][counted].sum()) if mistake != "ignored_counted" else F32(n)
    z_denominator = F32(counted.sum()) if mistake != "ignored_counted" else F32(n)
    grad_classifier = np.zeros(c.shape, F32 if mistake != "classifier_in_input_type" else given)
    grad_hidden = np.zeros(e.shape, F32)
    grad_bias = np.zeros(v, F32)
    losses = np.zeros(n, F32)
    starts = list(range(0, n, chunk))
    for start in starts:
        rows = slice(start, min(start + chunk, n))
        if mistake == "mean_of_chunk_means":
            denominator = F32(w[safe[rows]][counted[rows]].sum() * len(starts))
            z_denominator = F32(counted[rows].sum() * len(starts))
        g, losses[rows] = _chunk(case, e[rows], c, rows, counted, safe, w, mistake, denominator, z_denominator, upstream)
        if mistake == "mean_of_chunk_means" and reduction == "mean":
            losses[rows] = losses[rows] / denominator if denominator else 0
        g = g.astype(given).astype(F32)
        grad_hidden[rows] = g @ c
        if mistake == "classifier_in_input_type":
            grad_classifier = (grad_classifier.astype(F32) + g.T @ e[rows]).astype(given)
        else:
            grad_classifier += g.T @ e[rows]
        grad_bias += g.sum(axis=0)
    loss = _reduced(losses, reduction, denominator, mistake)
    return {
        "loss": loss,
        "grad_hidden": grad_hidden.astype(given),
        "grad_classifier": grad_classifier.astype(given),
        "grad_bias": grad_bias.astype(given),
    }


def _chunk(case, e, c, rows, counted, safe, w, mistake, denominator, z_denominator, upstream):  # noqa: ANN001, ANN202
    o = case.options
    given = case.hidden.dtype
    z = e @ c.T
    if case.bias is not None:
        z = z + case.bias.astype(F32)
    z = z.astype(given).astype(F32)
    cap = o.get("softcap")
    factor = None
    if cap is not None:
        t = np.tanh(z / F32(cap))
        z, factor = F32(cap) * t, F32(1) - t * t
    top = z.max(axis=1, keepdims=True)
    ex = np.exp(z - top)
    total = ex.sum(axis=1, keepdims=True)
    p = ex / total
    lse = (top + np.log(total))[:, 0]
    coef = _coefficients(case, len(c), safe[rows], w, mistake)
    coef[~counted[rows]] = 0
    s = coef.sum(axis=1, keepdims=True)
    losses = (coef * (lse[:, None] - z)).sum(axis=1)
    g = s * p - coef
    if mistake == "label_rounded_early":
        at = np.flatnonzero(counted[rows])
        g[at, safe[rows][at]] = (s[at, 0] * p[at, safe[rows][at]]).astype(given).astype(F32) - coef[at, safe[rows][at]]
    reduction = o.get("reduction", "mean")
    scale = np.ones(len(g), F32)
    if reduction == "mean":
        scale[:] = 1 / denominator if denominator else 0
    elif reduction == "none":
        scale = upstream[rows] if mistake != "upstream_first" else np.full(len(g), upstream[0], F32)
    g *= scale[:, None]
    if o.get("z_loss", 0.0):
        losses = losses + _z_loss(case, g, p, lse, rows, counted, safe, w, mistake, denominator, z_denominator, scale)
    if mistake == "skips_small":  # cut cross-entropy's filter: entries with p below ε/32 of the type left out
        g[p < F32(np.finfo(given).eps) / 32] = 0
    if factor is not None and mistake != "softcap_factor_missing":
        g *= factor
    return g, np.where(counted[rows], losses, 0).astype(F32)


def _z_loss(case, g, p, lse, rows, counted, safe, w, mistake, denominator, z_denominator, scale):  # noqa: ANN001, ANN202
    """Add the z-loss's gradient to g (in place); return each row's z-loss as the loss sums it."""
    reduction = case.options.get("reduction", "mean")
    lam = F32(case.options["z_loss"])
    z_scale = np.ones(len(g), F32) if reduction != "none" else scale
    if reduction == "mean":
        z_scale = np.full(len(g), 1 / z_denominator, F32)
    if mistake == "z_loss_weighted":
        z_scale = z_scale * w[safe[rows]] * (z_denominator / denominator if reduction == "mean" else 1)
    zl = lam * lse * lse
    if mistake == "z_loss_weighted":
        zl = zl * w[safe[rows]]
    elif reduction == "mean":  # the mean divides the losses by the weight sum: the z-loss by the count
        zl = zl * (denominator / z_denominator)
    g += (F32(2) * lam * lse * z_scale * counted[rows])[:, None] * p
    return np.where(counted[rows], zl, 0)


def _coefficients(case, v, labels, w, mistake):  # noqa: ANN001, ANN202
    o = case.options
    eps = F32(o.get("label_smoothing", 0.0))
    spread = v // 2 if mistake == "local_smoothing" else v
    coef = np.zeros((len(labels), v), F32)
    rows = np.arange(len(labels))
    if o.get("smoothing_style", "uniform") == "off-target" and eps:
        if mistake == "local_smoothing":  # Megatron's formula with the local vocabulary
            s = eps * spread / (spread - 1)
            coef += s / v * w
            coef[rows, labels] = (1 - s + s / v) * w[labels]
        else:
            coef += eps / (v - 1) * w
            coef[rows, labels] = (1 - eps) * w[labels]
    else:
        coef += eps / spread * w
        coef[rows, labels] += (1 - eps) * w[labels]
    return coef


def _reduced(losses, reduction, denominator, mistake):  # noqa: ANN001, ANN202
    if reduction == "none":
        return losses
    if reduction == "sum" or mistake == "mean_of_chunk_means":
        return np.asarray(losses.sum(dtype=F32))
    return np.asarray(losses.sum(dtype=F32) / denominator if denominator else F32(np.nan))


def exact_mean_outputs(hidden, classifier, labels):
    """Loss, ∂L/∂E and ∂L/∂C of the mean cross-entropy in float64 (no label is ignored)."""
    e, c = hidden.astype(np.float64), classifier.astype(np.float64)
    z = e @ c.T
    top = z.max(axis=1, keepdims=True)
    p = np.exp(z - top)
    total = p.sum(axis=1, keepdims=True)
    p /= total
    rows = np.arange(len(labels))
    lse = top[:, 0] + np.log(total[:, 0])
    g = p.copy()
    g[rows, labels] -= 1
    g /= len(labels)
    return float(np.mean(lse - z[rows, labels])), g @ c, g.T @ e


def random_inputs(n, d, v, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    hidden = (rng.standard_normal((n, d)) * scale).astype(F32)
    classifier = (rng.standard_normal((v, d)) / 4 * scale).astype(F32)
    return hidden, classifier, rng.integers(0, v, n)
