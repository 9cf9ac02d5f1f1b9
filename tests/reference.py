"""A slow, independent reference at 50 digits, written from the definitions.

The loss follows the formulas of ``torch.nn.functional.cross_entropy`` term by
term; the gradient is not derived by hand at all but taken by mpmath's
numerical differentiation of that loss, so it checks the core's gradient
formulas rather than repeating them.
"""

from __future__ import annotations

from collections.abc import Sequence

import mpmath as mp

mp.mp.dps = 50


def log_softmax(row: Sequence, temperature=1) -> list:
    z = [mp.mpf(v) / mp.mpf(temperature) for v in row]
    top = max(z)
    first_max = z.index(top)
    # log Σ e^(z_j - M) = log1p(Σ_{j ≠ argmax} ...): plain log() of a sum
    # near 1 would keep only 50 - 45 digits of a loss of 1e-45.
    log_sum = mp.log1p(mp.fsum(mp.exp(v - top) for j, v in enumerate(z) if j != first_max))
    return [(v - top) - log_sum for v in z]


def softmax(row: Sequence, temperature=1) -> list:
    return [mp.exp(v) for v in log_softmax(row, temperature)]


def _xlogy(y, log_p):
    return mp.mpf(0) if y == 0 else y * log_p


def loss(
    logits: Sequence[Sequence],
    labels: Sequence[int] | None = None,
    *,
    targets: Sequence[Sequence] | None = None,
    weight: Sequence | None = None,
    label_smoothing=0,
    ignore_index: int = -100,
    reduction: str = "mean",
    temperature=1,
):
    """The loss as PyTorch defines it: a list of row losses for 'none', else one number."""
    n_classes = len(logits[0])
    w = [mp.mpf(1)] * n_classes if weight is None else [mp.mpf(v) for v in weight]
    eps = mp.mpf(label_smoothing)
    log_p = [log_softmax(row, temperature) for row in logits]
    if labels is not None:
        mask = [0 if y == ignore_index else 1 for y in labels]
        nll = [
            -m * w[y] * lp[y] if m else mp.mpf(0) for m, y, lp in zip(mask, labels, log_p)
        ]
        smooth = [
            -m * mp.fsum(w[c] * lp[c] for c in range(n_classes)) if m else mp.mpf(0)
            for m, lp in zip(mask, log_p)
        ]
        if reduction == "none":
            return [(1 - eps) * a + eps / n_classes * b for a, b in zip(nll, smooth)]
        total_nll, total_smooth = mp.fsum(nll), mp.fsum(smooth)
        if reduction == "mean":
            weight_sum = mp.fsum(m * w[y] for m, y in zip(mask, labels) if m)
            total_nll, total_smooth = total_nll / weight_sum, total_smooth / weight_sum
        return (1 - eps) * total_nll + eps / n_classes * total_smooth
    y_rows = [[mp.mpf(v) for v in row] for row in targets]
    if eps:
        y_rows = [[(1 - eps) * v + eps / n_classes for v in row] for row in y_rows]
    rows = [
        -mp.fsum(w[c] * _xlogy(y[c], lp[c]) for c in range(n_classes)) for y, lp in zip(y_rows, log_p)
    ]
    if reduction == "none":
        return rows
    total = mp.fsum(rows)
    return total / len(rows) if reduction == "mean" else total


def gradient(logits: Sequence[Sequence], **kwargs) -> list[list]:
    """∂loss/∂logits by numerical differentiation at 50 digits.

    For reduction 'none' this is the gradient of each row's own loss, which is
    the gradient of their sum (rows do not interact).
    """
    summed = dict(kwargs)
    if summed.get("reduction", "mean") == "none":
        summed["reduction"] = "sum"
    base = [[mp.mpf(v) for v in row] for row in logits]
    result = []
    for n, row in enumerate(base):
        grad_row = []
        for k in range(len(row)):
            if row[k] == -mp.inf:
                grad_row.append(mp.mpf(0))
                continue

            def loss_at(t, n=n, k=k):
                moved = [list(r) for r in base]
                moved[n][k] = t
                return loss(moved, **summed)

            grad_row.append(mp.diff(loss_at, row[k]))
        result.append(grad_row)
    return result
