"""The last stage: the gradient the long way, through the Jacobian of the softmax."""

from __future__ import annotations

import numpy as np

from ..core import (
    SoftmaxCrossEntropyResult,
    gradient_via_jacobian,
    loss_gradient_wrt_probabilities,
    softmax_jacobian,
)
from .stages import (
    DL_DS,
    MAX_MATRIX_CLASSES,
    Equation,
    Item,
    Matrix,
    Stage,
    important_classes,
    scale_factor,
    vector,
)

THIN_SPACE = " \\, "


def jacobian_stage(result: SoftmaxCrossEntropyResult, one_hot: bool) -> Stage:
    s = result.probabilities[0].astype(np.float64)
    dl_ds = loss_gradient_wrt_probabilities(result).astype(np.float64)
    product = gradient_via_jacobian(result)
    important = important_classes(result)
    notes = [
        "The other route the first post mentions: the row vector $\\frac{\\partial L}{\\partial \\mathbf{s}}$ "
        "times the Jacobian $\\frac{\\partial \\mathbf{s}}{\\partial \\mathbf{z}} = "
        "\\operatorname{diag}(\\mathbf{s}) - \\mathbf{s}\\mathbf{s}^\\top$, whose entries are "
        "$s_i(\\delta_{ij} - s_j)$.",
    ]
    items: list[Item] = [vector("v", DL_DS, dl_ds, important)]
    matrix_notes, matrix_items = _jacobian_itself(result, s, dl_ds, one_hot)
    notes += matrix_notes
    items += matrix_items
    factor = scale_factor(result)
    items.append(
        vector("p", factor + DL_DS + r" \, \frac{\partial \mathbf{s}}{\partial \mathbf{z}}", product, important)
    )
    if np.isfinite(product).all():
        notes.append(
            ("Their product" if not factor else f"Their product, times ${factor.removesuffix(THIN_SPACE)}$,")
            + " is the gradient found above, "
            "but the Jacobian costs $K^2$ numbers where $\\mathbf{s} - \\mathbf{y}$ needs $K$."
        )
        items.append(
            Equation(
                "\\max_i \\left|\\text{product}_i - \\frac{\\partial L}{\\partial z_i}\\right|",
                "⟨diff⟩",
                {"diff": float(np.max(np.abs(product - result.gradient[0])))},
            )
        )
    else:
        notes.append(
            "Here a probability with target mass rounds to 0, so "
            "$\\frac{\\partial L}{\\partial \\mathbf{s}}$ has an infinite entry and the product "
            "meets $\\infty \\times 0$: this route fails in floating point, the simplified one does not."
        )
    return Stage("The Jacobian route", tuple(notes), tuple(items))


def _jacobian_itself(
    result: SoftmaxCrossEntropyResult, s: np.ndarray, dl_ds: np.ndarray, one_hot: bool
) -> tuple[list[str], list[Item]]:
    """The K×K Jacobian for a few classes; beyond, the one row that matters (built
    as a vector: a K×K matrix of 100,000 classes would take 75 GiB)."""
    n_classes = result.num_classes
    if n_classes <= MAX_MATRIX_CLASSES:
        jacobian = softmax_jacobian(s)
        rows = tuple(tuple(float(v) for v in row) for row in jacobian)
        return [], [Matrix("\\frac{\\partial \\mathbf{s}}{\\partial \\mathbf{z}}", rows, tuple(range(n_classes)))]
    if one_hot:
        label = result.label_of(0)
        row = -s[label] * s
        row[label] += s[label]  # s_c(δ_cj - s_j)
        note = (
            f"The Jacobian is ${n_classes} \\times {n_classes}$, too large to show; "
            f"$\\frac{{\\partial L}}{{\\partial \\mathbf{{s}}}}$ is zero except at $c = {label}$, "
            f"so only row {label} matters: $s_c(\\delta_{{cj}} - s_j)$."
        )
        symbol = f"\\frac{{\\partial s_{{{label}}}}}{{\\partial \\mathbf{{z}}}}"
        return [note], [vector("J", symbol, row, important_classes(result))]
    note = (
        f"The Jacobian is ${n_classes} \\times {n_classes}$, too large to show; "
        f"{int(np.count_nonzero(dl_ds))} of its rows meet a non-zero entry of "
        "$\\frac{\\partial L}{\\partial \\mathbf{s}}$."
    )
    return [note], []
