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
    vector,
)


def jacobian_stage(result: SoftmaxCrossEntropyResult, classic: bool) -> Stage:
    s = result.probabilities[0].astype(np.float64)
    n_classes = result.num_classes
    jacobian = softmax_jacobian(s)
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
    if n_classes <= MAX_MATRIX_CLASSES:
        items.append(
            Matrix(
                "\\frac{\\partial \\mathbf{s}}{\\partial \\mathbf{z}}",
                tuple(tuple(float(v) for v in row) for row in jacobian),
                tuple(range(n_classes)),
            )
        )
    else:
        rows_that_matter = [int(k) for k in np.flatnonzero(dl_ds)]
        if classic:
            label = result.label_of(0)
            notes.append(
                f"The Jacobian is ${n_classes} \\times {n_classes}$, too large to show; "
                f"$\\frac{{\\partial L}}{{\\partial \\mathbf{{s}}}}$ is zero except at $c = {label}$, "
                f"so only row {label} matters: $s_c(\\delta_{{cj}} - s_j)$."
            )
            items.append(
                vector("J", f"\\frac{{\\partial s_{{{label}}}}}{{\\partial \\mathbf{{z}}}}", jacobian[label], important)
            )
        else:
            notes.append(
                f"The Jacobian is ${n_classes} \\times {n_classes}$, too large to show; "
                f"{len(rows_that_matter)} of its rows meet a non-zero entry of "
                "$\\frac{\\partial L}{\\partial \\mathbf{s}}$."
            )
    factors = []
    if result.options.temperature != 1.0:
        factors.append("$\\frac{1}{T}$")
    if result.denominator != 1:
        factors.append("$\\frac{1}{D}$ of the mean")
    factor_latex = "".join(f.split("$")[1] + " \\, " for f in factors)
    items.append(
        vector("p", factor_latex + DL_DS + r" \, \frac{\partial \mathbf{s}}{\partial \mathbf{z}}", product, important)
    )
    if np.isfinite(product).all():
        notes.append(
            ("Their product" if not factors else "Their product, times " + " and ".join(factors) + ",")
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
