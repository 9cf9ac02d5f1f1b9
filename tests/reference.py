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


def capped(row: Sequence, softcap=None) -> list:
    """a = c·tanh(z/c), or z without a cap."""
    if softcap is None:
        return [mp.mpf(v) for v in row]
    c = mp.mpf(softcap)
    return [c * mp.tanh(mp.mpf(v) / c) for v in row]


def log_sum_exp(row: Sequence, temperature=1, softcap=None):
    """lse(b) = log Σ_j e^(b_j), b = c·tanh(z/c)/T."""
    b = [v / mp.mpf(temperature) for v in capped(row, softcap)]
    top = max(b)
    return top + mp.log(mp.fsum(mp.exp(v - top) for v in b))


def log_softmax(row: Sequence, temperature=1, softcap=None) -> list:
    z = [v / mp.mpf(temperature) for v in capped(row, softcap)]
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
    softcap=None,
    z_loss=0,
    smoothing_style: str = "uniform",
):
    """The loss as PyTorch defines it: a list of row losses for 'none', else one number.

    Beyond PyTorch: a softcap c (b = c·tanh(z/c)/T), a z-loss λ (each counted row
    adds λ·lse(b)², unweighted; 'mean' divides it by the number of counted rows, as
    Liger), and Megatron's 'off-target' smoothing (1 - ε on the label, ε/(K - 1) on
    each other class), written as a dense target row by row.
    """
    ce = _cross_entropy(
        logits, labels, targets, weight, label_smoothing, ignore_index, reduction, temperature, softcap, smoothing_style
    )
    if not z_loss:
        return ce
    counted = [True] * len(logits) if labels is None else [y != ignore_index for y in labels]
    zs = [
        mp.mpf(z_loss) * log_sum_exp(row, temperature, softcap) ** 2 if c else mp.mpf(0)
        for row, c in zip(logits, counted)
    ]
    if reduction == "none":
        return [a + b for a, b in zip(ce, zs)]
    total = mp.fsum(zs)
    return ce + (total / sum(counted) if reduction == "mean" else total)


def _off_target_cross_entropy(labels, targets, w, eps, ignore_index, reduction, log_p):
    """Megatron's and t5x's smoothing: 1 - ε on the label, ε/(K - 1) on each other class."""
    n_classes = len(w)
    off = eps / (n_classes - 1)
    if labels is not None:
        targets = [
            [(1 - eps) if j == y else off for j in range(n_classes)] if y != ignore_index else None for y in labels
        ]
    else:
        targets = [[(1 - eps) * mp.mpf(v) + off * (1 - mp.mpf(v)) for v in row] for row in targets]
    counted = [t is not None for t in targets]
    rows = [
        -mp.fsum(w[c] * _xlogy(t[c], lp[c]) for c in range(n_classes)) if t else mp.mpf(0)
        for t, lp in zip(targets, log_p)
    ]
    if reduction == "none":
        return rows
    total = mp.fsum(rows)
    if reduction == "sum":
        return total
    if labels is None:
        return total / len(rows)
    return total / mp.fsum(w[y] for y, c in zip(labels, counted) if c)


def _cross_entropy(
    logits, labels, targets, weight, label_smoothing, ignore_index, reduction, temperature, softcap, smoothing_style
):
    n_classes = len(logits[0])
    w = [mp.mpf(1)] * n_classes if weight is None else [mp.mpf(v) for v in weight]
    eps = mp.mpf(label_smoothing)
    log_p = [log_softmax(row, temperature, softcap) for row in logits]
    if smoothing_style == "off-target" and eps and n_classes > 1:
        return _off_target_cross_entropy(labels, targets, w, eps, ignore_index, reduction, log_p)
    if labels is not None:
        mask = [0 if y == ignore_index else 1 for y in labels]
        nll = [-m * w[y] * lp[y] if m else mp.mpf(0) for m, y, lp in zip(mask, labels, log_p)]
        smooth = [
            -m * mp.fsum(w[c] * lp[c] for c in range(n_classes)) if m else mp.mpf(0) for m, lp in zip(mask, log_p)
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
    rows = [-mp.fsum(w[c] * _xlogy(y[c], lp[c]) for c in range(n_classes)) for y, lp in zip(y_rows, log_p)]
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


# --- a 60-digit analytic reference for every option, fast enough for K = 100,000 ---
#
# The loss is the same definition as loss() above; the gradient is written out
# by hand, ∂loss/∂z_i = (p_i·Σ_c w_c q_c - w_i q_i) / (T·D), and checked against
# gradient() (numerical differentiation of loss()) in tests/test_loss_accuracy.py,
# so it is independent of the core's formulas. Every subtraction whose
# operands may agree in many digits is measured, and a row whose result would
# keep fewer than 30 digits is computed again at a higher precision: the
# reference is right to 30 digits even where float64 cannot be (the inherent
# case z = [0, 1e-300], q = (1/2, 1/2)).

from dataclasses import dataclass, field  # noqa: E402

ANALYTIC_DIGITS = 60
_KEPT_DIGITS = 30
_MAX_DIGITS = 1200


@dataclass
class Exact:
    """The exact (to 30 digits or more) result, shaped like the core's."""

    losses: list
    """Each row's own loss (0 for an ignored row)."""
    loss: object
    """The reduced loss: ``losses`` for 'none', else one number (NaN where 'mean' divides by 0)."""
    gradient: list[list]
    """∂loss/∂z (N×K)."""
    probabilities: list[list]
    target: list[list]
    """The effective target q (zero rows where ignored)."""
    denominator: object
    """D: what 'mean' divides by; 1 for 'none' and 'sum'."""
    gradient_terms: list[list] = field(default_factory=list)
    """(p_i·Σ_c w_c q_c + w_i q_i) / (T·D): the scale of the two terms whose
    difference is gradient entry i, for bounds in the inherent case."""
    condition: list[list] = field(default_factory=list)
    """κ_i = (a_i + b_i) / |a_i - b_i| with a_i = p_i·Σ_{j≠i} w_j q_j and
    b_i = w_i q_i·Σ_{j≠i} p_j: the condition number of gradient entry i under
    relative perturbations of the q_j (and w_j) one by one. Near 1 wherever
    the cancellation is structural (target mass on a confident prediction:
    b_i alone); large only where the data itself make a_i ≈ b_i."""


def _lost_digits(whole, part) -> float:
    """Digits lost when ``part`` is computed as a difference out of numbers of size ``whole``."""
    if whole == 0:
        return 0.0
    if part == 0:
        return float("inf")
    return max(0.0, (mp.mag(whole) - mp.mag(part)) * 0.30103 + 1)  # mag: log2 to within 1, cheaply


def _exact_row(z, w, q, temperature, digits: int, columns=None, softcap=None):
    """One row's loss, ∂(row loss)/∂b over T (without 1/D), p, and the scale of each
    gradient entry's two terms; the most digits any subtraction lost; and, for
    the options of language models, lse(b) and each entry's two terms a_i, b_i."""
    with mp.workdps(digits):
        zs = capped(z, softcap)
        t = mp.mpf(temperature)
        top = max(range(len(zs)), key=lambda j: zs[j])  # the first maximum
        shifted = [mp.fsub(v, zs[top], exact=True) / t for v in zs]
        shifted[top] = mp.mpf(0)
        e = [mp.exp(v) for v in shifted]
        e[top] = mp.mpf(1)
        others = mp.fsum(v for j, v in enumerate(e) if j != top)
        total_e = 1 + others
        log_sum = mp.log1p(others)
        wanted = range(len(zs)) if columns is None else columns
        p = [None] * len(zs)
        for i in wanted:
            p[i] = e[i] / total_e
        wq = [wj * qj for wj, qj in zip(w, q)]
        # A class whose w_j q_j is 0 contributes nothing, even where log p_j = -inf.
        row_loss = mp.fsum(c * (log_sum - v) for c, v in zip(wq, shifted) if c != 0)
        mass = mp.fsum(wq)
        lost = 0.0
        grad, terms, condition = [None] * len(zs), [None] * len(zs), [None] * len(zs)
        parts = [None] * len(zs)
        lse = zs[top] / t + log_sum
        for i in wanted:
            # p_i·Σ_{j≠i} w_j q_j - w_i q_i·Σ_{j≠i} p_j: each sum is of
            # non-negative terms, formed as a difference whose loss is counted.
            mass_but = mass - wq[i]
            p_but = (others if i == top else total_e - e[i]) / total_e
            lost = max(lost, _lost_digits(mass, mass_but) if wq[i] != 0 and mass_but != 0 else 0.0)
            a, b = p[i] * mass_but, wq[i] * p_but
            g = a - b
            if a != 0 and b != 0:
                lost = max(lost, _lost_digits(max(a, b), g))
            grad[i] = g / t
            terms[i] = (p[i] * mass + wq[i]) / t
            condition[i] = mp.mpf(1) if a + b == 0 else mp.inf if g == 0 else (a + b) / abs(g)
            parts[i] = (a, b)
    return row_loss, grad, p, terms, condition, lost, lse, parts


def exact_row(z, w, q, temperature, columns=None, softcap=None, with_parts=False):
    """_exact_row at 60 digits, or more where a difference would keep fewer than 30."""
    digits = ANALYTIC_DIGITS
    while True:
        row_loss, grad, p, terms, condition, lost, lse, parts = _exact_row(
            z, w, q, temperature, digits, columns, softcap
        )
        if lost <= digits - _KEPT_DIGITS or digits >= _MAX_DIGITS:
            if with_parts:
                return row_loss, grad, p, terms, condition, lse, parts
            return row_loss, grad, p, terms, condition
        # A true 0 (such as z = [0, 0], q = (1/2, 1/2)) loses every digit at
        # every precision and ends at _MAX_DIGITS, as 0.
        digits = min(_MAX_DIGITS, 2 * digits if lost == float("inf") else int(lost) + _KEPT_DIGITS + 20)


def analytic(
    logits: Sequence[Sequence],
    labels: Sequence[int] | None = None,
    *,
    targets: Sequence[Sequence] | None = None,
    weight: Sequence | None = None,
    label_smoothing=0,
    ignore_index: int = -100,
    reduction: str = "mean",
    temperature=1,
    columns: Sequence[int] | None = None,
    softcap=None,
    z_loss=0,
    smoothing_style: str = "uniform",
) -> Exact:
    """PyTorch's cross_entropy and its gradient at 60 digits, written from the definitions.

    With a softcap, z-loss or off-target smoothing (:func:`analytic_lm`), the
    cross-entropy of b = c·tanh(z/c)/T plus λ·lse(b)² per counted row.

    Inputs are taken as the exact binary values of the floats given (pass
    float32-rounded values to check a float32 computation). ``columns``
    limits the gradient to those classes (None elsewhere), for large K.
    """
    if softcap is not None or z_loss or smoothing_style != "uniform":
        return analytic_lm(
            logits,
            labels,
            targets=targets,
            weight=weight,
            label_smoothing=label_smoothing,
            ignore_index=ignore_index,
            reduction=reduction,
            temperature=temperature,
            columns=columns,
            softcap=softcap,
            z_loss=z_loss,
            smoothing_style=smoothing_style,
        )
    with mp.workdps(ANALYTIC_DIGITS):
        n_classes = len(logits[0])
        w = [mp.mpf(1)] * n_classes if weight is None else [mp.mpf(v) for v in weight]
        eps = mp.mpf(label_smoothing)
        uniform = eps / n_classes
        if labels is not None:
            counted = [y != ignore_index for y in labels]
            rows_q = [
                [(1 - eps) * (1 if j == y else 0) + uniform for j in range(n_classes)] if c else None
                for y, c in zip(labels, counted)
            ]
            denominator = mp.fsum(w[y] for y, c in zip(labels, counted) if c)
        else:
            counted = [True] * len(logits)
            rows_q = [[(1 - eps) * mp.mpf(v) + uniform for v in row] for row in targets]
            denominator = mp.mpf(len(logits))
        if reduction != "mean":
            denominator = mp.mpf(1)
        losses, gradient, probabilities, terms, target, condition = [], [], [], [], [], []
        for z, q in zip(logits, rows_q):
            if q is None:
                q = [mp.mpf(0)] * n_classes
                _, _, p, _, kappa = exact_row(z, w, q, temperature, columns)
                row_loss, grad, scale = mp.mpf(0), [mp.mpf(0)] * n_classes, [mp.mpf(0)] * n_classes
            else:
                row_loss, grad, p, scale, kappa = exact_row(z, w, q, temperature, columns)
            condition.append(kappa)
            losses.append(row_loss)
            gradient.append(grad)
            probabilities.append(p)
            terms.append(scale)
            target.append(q)
        if denominator == 0:
            zero = [[mp.mpf(0)] * n_classes for _ in logits]
            return Exact(losses, mp.nan, zero, probabilities, target, denominator, zero, condition)
        gradient = [[None if g is None else g / denominator for g in row] for row in gradient]
        terms = [[None if s is None else s / denominator for s in row] for row in terms]
        loss = losses if reduction == "none" else mp.fsum(losses) / denominator
        return Exact(losses, loss, gradient, probabilities, target, denominator, terms, condition)


def _lm_gradient_row(parts, p, lse, factor, counted, lam, t, denominator, z_denominator):
    """sech²(z_i/c)/T·[(a_i - b_i)/D + 2λ·lse·p_i/D_z], the scale of its terms, and κ_i."""
    n_classes = len(parts)
    grad_row, term_row, kappa_row = [None] * n_classes, [None] * n_classes, [None] * n_classes
    for i in range(n_classes):
        if parts[i] is None:
            continue
        a, b = parts[i]
        if not counted:
            grad_row[i], term_row[i], kappa_row[i] = mp.mpf(0), mp.mpf(0), mp.mpf(1)
            continue
        zt = 2 * lam * lse * p[i] / z_denominator
        big = (a / denominator if denominator != 0 else 0) + max(zt, 0)
        small = (b / denominator if denominator != 0 else 0) + max(-zt, 0)
        g = big - small
        grad_row[i] = factor[i] * g / t
        term_row[i] = factor[i] * (big + small) / t
        kappa_row[i] = mp.mpf(1) if big + small == 0 else mp.inf if g == 0 else (big + small) / abs(g)
    return grad_row, term_row, kappa_row


def analytic_lm(
    logits,
    labels=None,
    *,
    targets=None,
    weight=None,
    label_smoothing=0,
    ignore_index=-100,
    reduction="mean",
    temperature=1,
    columns=None,
    softcap=None,
    z_loss=0,
    smoothing_style="uniform",
) -> Exact:
    """The options of language-model losses at 60 digits, from their definitions (Gemma 2's cap, PaLM's z-loss, Megatron's off-target smoothing).

    b = c·tanh(z/c)/T, p = softmax(b); the target q is smoothed uniformly (ε/K on
    every class) or off the target (1 - ε on the label, ε/(K - 1) elsewhere;
    K = 1 leaves it). Row loss: -Σ_j w_j q_j log p_j + λ·lse(b)² (counted rows).
    'mean': the cross-entropy over Σ w[y] (labels) or N (targets), the z-loss
    over the number of counted rows. Gradient:
    ∂L/∂z_i = sech²(z_i/c)/T·[(p_i·Σ_j w_j q_j - w_i q_i)/D + 2λ·lse·p_i/D_z],
    sech² computed as such (never 1 - tanh²).
    """
    with mp.workdps(ANALYTIC_DIGITS):
        n_classes = len(logits[0])
        w = [mp.mpf(1)] * n_classes if weight is None else [mp.mpf(v) for v in weight]
        eps = mp.mpf(label_smoothing)
        lam = mp.mpf(z_loss)
        off = smoothing_style == "off-target" and n_classes > 1

        def smooth(row):
            if off:
                return [(1 - eps) * mp.mpf(v) + eps / (n_classes - 1) * (1 - mp.mpf(v)) for v in row]
            if smoothing_style == "off-target":
                return [mp.mpf(v) for v in row]
            return [(1 - eps) * mp.mpf(v) + eps / n_classes for v in row]

        if labels is not None:
            counted = [y != ignore_index for y in labels]
            rows_q = [
                smooth([1 if j == y else 0 for j in range(n_classes)]) if c else None for y, c in zip(labels, counted)
            ]
            denominator = mp.fsum(w[y] for y, c in zip(labels, counted) if c)
        else:
            counted = [True] * len(logits)
            rows_q = [smooth(row) for row in targets]
            denominator = mp.mpf(len(logits))
        z_denominator = mp.mpf(sum(counted))
        if reduction != "mean":
            denominator = z_denominator = mp.mpf(1)
        t = mp.mpf(temperature)
        losses, gradient, probabilities, terms, target, condition, z_losses, lses = [], [], [], [], [], [], [], []
        for z, q, c in zip(logits, rows_q, counted):
            qq = q if q is not None else [mp.mpf(0)] * n_classes
            row_loss, _, p, _, _, lse, parts = exact_row(z, w, qq, temperature, columns, softcap, with_parts=True)
            zl = lam * lse**2 if c else mp.mpf(0)
            if softcap is None:
                factor = [mp.mpf(1)] * n_classes
            else:
                cap = mp.mpf(softcap)
                factor = [mp.sech(mp.mpf(v) / cap) ** 2 for v in z]
            grad_row, term_row, kappa_row = _lm_gradient_row(
                parts, p, lse, factor, c, lam, t, denominator, z_denominator
            )
            ce = row_loss if c else mp.mpf(0)
            losses.append(ce + zl)
            z_losses.append(zl)
            lses.append(lse)
            gradient.append(grad_row)
            probabilities.append(p)
            terms.append(term_row)
            condition.append(kappa_row)
            target.append(qq)
        if reduction == "none":
            loss = losses
        else:
            ce_total = mp.fsum(v - zl for v, zl in zip(losses, z_losses))
            z_total = mp.fsum(z_losses)
            ce_part = ce_total / denominator if denominator != 0 else mp.nan
            z_part = z_total / z_denominator if z_denominator != 0 else (mp.nan if lam else mp.mpf(0))
            loss = ce_part + z_part
        exact = Exact(losses, loss, gradient, probabilities, target, denominator, terms, condition)
        exact.z_losses = z_losses  # type: ignore[attr-defined]
        exact.log_sum_exp = lses  # type: ignore[attr-defined]
        exact.z_loss = (  # type: ignore[attr-defined]
            z_losses if reduction == "none" else (mp.fsum(z_losses) / z_denominator if z_denominator else mp.nan)
        )
        return exact
