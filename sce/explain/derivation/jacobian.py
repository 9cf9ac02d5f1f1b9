"""The last stage: the gradient the long way, through the Jacobian of the softmax."""

from __future__ import annotations

import numpy as np

from sce.explain.derivation.stages import (
    DL_DS,
    MAX_MATRIX_CLASSES,
    PRODUCT,
    Equation,
    Item,
    Matrix,
    Stage,
    important_classes,
    per_class,
    scale_factor,
    vector,
)
from sce.loss import (
    SoftmaxCrossEntropyResult,
    gradient_via_jacobian,
    loss_gradient_wrt_probabilities,
    softmax_jacobian,
)

LSE = "\\operatorname{lse}"


def jacobian_stage(result: SoftmaxCrossEntropyResult, one_hot: bool, main: bool = False) -> Stage:
    """∂L/∂s times the softmax's Jacobian: the other route after the chain rule's cases, or,
    ``main``, the route itself (for a plain label, which it simplifies to s − y)."""
    s = result.probabilities[0].astype(np.float64)
    dl_ds = loss_gradient_wrt_probabilities(result).astype(np.float64)
    product = gradient_via_jacobian(result)
    important = important_classes(result)
    # With a temperature the softmax's input is b = z/T: diag(s) - ssᵀ is ∂s/∂b, and ∂s/∂z is that over T.
    wrt = "\\mathbf{z}" if result.options.temperature == 1.0 else "\\mathbf{b}"
    notes = [
        ("By the chain rule through every $s_j$: " if main else "The other route: ")
        + "the row vector $\\frac{\\partial L}{\\partial \\mathbf{s}}$ "
        f"times the Jacobian $\\frac{{\\partial \\mathbf{{s}}}}{{\\partial {wrt}}} = "
        "\\operatorname{diag}(\\mathbf{s}) - \\mathbf{s}\\mathbf{s}^\\top$, whose entries are "
        "$s_i(\\delta_{ij} - s_j)$"
        + (
            "." if wrt == "\\mathbf{z}"
            else ", $\\mathbf{b} = \\mathbf{z} / T$ the softmax's input: the Jacobian with respect to "
            "$\\mathbf{z}$ is this divided by $T$."
        ),
    ]
    items: list[Item] = [vector("v", DL_DS, dl_ds, important)]
    matrix_notes, matrix_items = _jacobian_itself(result, s, dl_ds, one_hot)
    note, simplified = _multiplied_out(result, one_hot)
    if main:
        notes.append(note)
    notes += [note.replace("\\mathbf{z}", wrt) for note in matrix_notes]
    items += [_with_respect_to(item, wrt) for item in matrix_items]
    factor = scale_factor(result)
    ds_dz = f"\\frac{{\\partial \\mathbf{{s}}}}{{\\partial {wrt}}}"
    items.append(vector("p", factor + DL_DS + PRODUCT + ds_dz, product, important))
    if np.isfinite(product).all():
        notes.append(
            ("Their product" if not factor else f"Their product, times ${factor.removesuffix(PRODUCT)}$,")
            + (f" simplifies to ${simplified}$, which is what sce computes: " if main
               else " is the gradient found above, but ")
            + f"the Jacobian costs $K^2$ numbers where ${simplified}$ needs $K$."
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


def _multiplied_out(result: SoftmaxCrossEntropyResult, one_hot: bool) -> tuple[str, str]:
    """(the note that multiplies ∂L/∂s by the Jacobian out by hand, the LaTeX of what it gives)."""
    b = "z" if result.options.temperature == 1.0 else "b"
    if result.options.weight is None and one_hot:
        return (
            "Here $\\frac{\\partial L}{\\partial s_j} = -\\frac{y_j}{s_j}$ is zero except at $c$, so entry $i$ "
            "of the product is $-\\frac{1}{s_c} \\cdot s_c(\\delta_{ci} - s_i) = s_i - y_i$"
            + ("." if b == "z" else ", with respect to $b_i$.")
        ), "\\mathbf{s} - \\mathbf{y}"
    if result.options.weight is None:
        return (
            "Here $\\frac{\\partial L}{\\partial s_j} = -\\frac{y_j}{s_j}$, so entry $i$ of the product is "
            "$\\sum_j -\\frac{y_j}{s_j} \\cdot s_j(\\delta_{ji} - s_i) = s_i \\sum_j y_j - y_i = s_i - y_i$, "
            "the target summing to 1" + ("." if b == "z" else ", with respect to $b_i$.")
        ), "\\mathbf{s} - \\mathbf{y}"
    if one_hot:
        return (
            "Here $\\frac{\\partial L}{\\partial s_j} = -\\frac{w_j y_j}{s_j}$ is zero except at $c$, so entry "
            "$i$ of the product is $-\\frac{w_c}{s_c} \\cdot s_c(\\delta_{ci} - s_i) = w_c (s_i - y_i)$"
            + ("." if b == "z" else ", with respect to $b_i$.")
        ), "w_c \\left(\\mathbf{s} - \\mathbf{y}\\right)"
    return (
        "Here $\\frac{\\partial L}{\\partial s_j} = -\\frac{w_j y_j}{s_j}$, so entry $i$ of the product is "
        "$\\sum_j -\\frac{w_j y_j}{s_j} \\cdot s_j(\\delta_{ji} - s_i) = s_i \\sum_j w_j y_j - w_i y_i$"
        + ("." if b == "z" else ", with respect to $b_i$.")
    ), "\\mathbf{s} \\sum_j w_j y_j - \\mathbf{w} \\odot \\mathbf{y}"


def _with_respect_to(item: Item, wrt: str) -> Item:
    """A Jacobian's matrix or row named with respect to ``wrt`` (b where a temperature divides z)."""
    if isinstance(item, Matrix):
        return Matrix(item.name.replace("\\mathbf{z}", wrt), item.rows, item.indices)
    if isinstance(item, Equation):
        return Equation(item.symbolic.replace("\\mathbf{z}", wrt), item.substituted, item.values)
    return item


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


def language_model_jacobian_stage(result: SoftmaxCrossEntropyResult) -> Stage:
    """The Jacobian route with a softcap or a z-loss: ∂L/∂z = diag(1 − tanh²) · (1/T) · (Jᵀ v / D + 2λ·lse·s / D_z),
    J = ∂s/∂b the softmax's Jacobian at b = a/T, v = ∂ℓ/∂s the cross-entropy's; each product written out."""
    s = result.probabilities[0].astype(np.float64)
    v = loss_gradient_wrt_probabilities(result).astype(np.float64)
    important = important_classes(result)
    notes = [
        "The other route, through the Jacobians of each step: $\\mathbf{z} \\to \\mathbf{a}$ "
        "(the cap, diagonal: $\\frac{\\partial a_i}{\\partial z_i} = 1 - \\tanh^2(z_i / C)$, 1 without a cap), "
        "$\\mathbf{a} \\to \\mathbf{b} = \\mathbf{a} / T$, $\\mathbf{b} \\to \\mathbf{s}$ (the softmax: "
        "$\\frac{\\partial \\mathbf{s}}{\\partial \\mathbf{b}} = \\operatorname{diag}(\\mathbf{s}) - "
        "\\mathbf{s}\\mathbf{s}^\\top$) and $\\mathbf{s} \\to$ the cross-entropy, "
        f"$\\mathbf{{v}} = {DL_DS}$; the z-loss depends on $\\mathbf{{b}}$ through ${LSE}$, "
        f"with $\\frac{{\\partial {LSE}}}{{\\partial \\mathbf{{b}}}} = \\mathbf{{s}}$.",
        "Row $k$ of $\\mathbf{v}^\\top \\frac{\\partial \\mathbf{s}}{\\partial \\mathbf{b}}$ is "
        "$\\sum_j v_j s_j (\\delta_{jk} - s_k) = s_k (v_k - \\mathbf{v} \\cdot \\mathbf{s})$: "
        "$O(K)$, never the $K^2$ matrix.",
    ]
    items: list[Item] = [vector("v", DL_DS, v, important)]
    if not np.all(np.isfinite(v)):
        notes.append(
            "Here a probability with target mass rounds to 0, so "
            "$\\frac{\\partial L}{\\partial \\mathbf{s}}$ has an infinite entry and the product "
            "meets $\\infty \\times 0$: this route fails in floating point, the simplified one does not."
        )
        return Stage("The Jacobian route", tuple(notes), tuple(items))
    matrix_notes, matrix_items = _jacobian_itself(result, s, v, result.labels is not None)
    notes += [note.replace("\\mathbf{z}", "\\mathbf{b}") for note in matrix_notes]
    items += [
        Matrix(item.name.replace("\\mathbf{z}", "\\mathbf{b}"), item.rows, item.indices)
        if isinstance(item, Matrix)
        else item
        for item in matrix_items
    ]
    chain = _ChainRoute(result, s, v)
    items.append(chain.dot_equation())
    items += per_class(result.num_classes, important, chain.cross_entropy_equation)
    if result.options.z_loss:
        items += per_class(result.num_classes, important, chain.z_loss_equation)
    items += per_class(result.num_classes, important, chain.gradient_equation)
    notes.append("Each entry is the gradient found above, up to rounding; the product's largest difference from it:")
    items.append(
        Equation(
            "\\max_i \\left|\\text{route}_i - \\frac{\\partial L}{\\partial z_i}\\right|",
            "⟨diff⟩",
            {"diff": chain.largest_difference()},
        )
    )
    return Stage("The Jacobian route", tuple(notes), tuple(items))


class _ChainRoute:
    """The route's numbers for row 0, each computed from the numbers its equation shows."""

    def __init__(self, result: SoftmaxCrossEntropyResult, s: np.ndarray, v: np.ndarray) -> None:
        self.result = result
        self.s = s
        self.v = v
        self.terms = np.flatnonzero(v)
        self.dot = float(np.sum(v[self.terms] * s[self.terms])) if self.terms.size else 0.0
        options = result.options
        mean = options.reduction == "mean"
        self.d = float(result.denominator) if mean else 1.0
        self.d_z = float(result.z_loss_denominator) if mean else 1.0
        self.counted = bool(result.counted[0])
        self.lse = float(result.log_sum_exp[0]) if result.log_sum_exp is not None else 0.0
        self.lam = float(options.z_loss) if self.counted and not (mean and self.d_z == 0) else 0.0
        self.derivative = result.cap_derivative[0].astype(np.float64)
        with np.errstate(all="ignore"):
            self.u = s * (v - self.dot) / self.d if self.d != 0 else np.zeros_like(s)
            self.r = 2 * self.lam * self.lse * s / self.d_z
            self.g = self.derivative * ((self.u + self.r) / float(options.temperature))

    def dot_equation(self) -> Equation:
        terms = " + ".join(f"⟨v{j}⟩ \\times ⟨s{j}⟩" for j in self.terms) or "0"
        named = {f"v{j}": float(self.v[j]) for j in self.terms} | {f"s{j}": float(self.s[j]) for j in self.terms}
        return Equation(
            "\\mathbf{v} \\cdot \\mathbf{s} = \\sum_j v_j s_j", f"{terms} = ⟨dot⟩", named | {"dot": self.dot}
        )

    def cross_entropy_equation(self, k: int) -> Equation:
        if self.d == 0:  # the mean over no weight: the cross-entropy's part is 0, as in the core
            return Equation(f"u_{{{k}}} = 0", "0", {})
        return Equation(
            f"u_{{{k}}} = \\frac{{s_{{{k}}} (v_{{{k}}} - \\mathbf{{v}} \\cdot \\mathbf{{s}})}}{{D}}",
            "\\frac{⟨s⟩ \\times \\left(⟨v⟩ - ⟨dot⟩\\right)}{⟨D⟩} = ⟨u⟩",
            {"s": float(self.s[k]), "v": float(self.v[k]), "dot": self.dot, "D": self.d, "u": float(self.u[k])},
        )

    def z_loss_equation(self, k: int) -> Equation:
        return Equation(
            f"r_{{{k}}} = \\frac{{2 \\lambda \\, {LSE} \\, s_{{{k}}}}}{{D_z}}",
            "\\frac{2 \\times ⟨lam⟩ \\times ⟨lse⟩ \\times ⟨s⟩}{⟨Dz⟩} = ⟨r⟩",
            {"lam": self.lam, "lse": self.lse, "s": float(self.s[k]), "Dz": self.d_z, "r": float(self.r[k])},
        )

    def gradient_equation(self, k: int) -> Equation:
        z_part = " + ⟨r⟩" if self.result.options.z_loss else ""
        return Equation(
            f"\\frac{{\\partial L}}{{\\partial z_{{{k}}}}} = \\left(1 - \\tanh^2(z_{{{k}}} / C)\\right) \\cdot "
            f"\\frac{{u_{{{k}}}{' + r_{' + str(k) + '}' if z_part else ''}}}{{T}}",
            f"⟨d⟩ \\times \\frac{{⟨u⟩{z_part}}}{{⟨T⟩}} = ⟨g⟩",
            {
                "d": float(self.derivative[k]),
                "u": float(self.u[k]),
                "r": float(self.r[k]),
                "T": float(self.result.options.temperature),
                "g": float(self.g[k]),
            },
        )

    def largest_difference(self) -> float:
        with np.errstate(invalid="ignore"):
            return float(np.max(np.abs(self.g - self.result.gradient[0].astype(np.float64))))
