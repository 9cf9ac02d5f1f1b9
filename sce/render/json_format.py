"""JSON: the stable machine interface of ``sce grad --format json``."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sce.errors import worded
from sce.explain.derivation import Elided, Item, Matrix, Stage
from sce.explain.derivation.by_hand import approximate_as_written
from sce.explain.exact_values import ExactRow
from sce.explain.proofs import TOP_EIGENVALUES, Proofs
from sce.grading.answers import answer_verdict, diagnosis
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import exact, fill, json_number
from sce.render.words import (
    HESSIAN_OVERFLOWS,
    hessian_formula,
    hessian_statement,
    jacobian_failure,
    jacobian_words,
)

if TYPE_CHECKING:  # only for annotations: rendering a result must not load polars
    from sce.grading import QuantityCheck
    from sce.grading.csv_file import FileCheck
    from sce.grading.dump.verdict import DtypeCheck


def grad_document(result: SoftmaxCrossEntropyResult, row: int = 0, exact: ExactRow | None = None) -> dict[str, Any]:
    """One row's result as plain JSON data, every float at full precision; with ``exact`` (row 0's
    exact values), its target, probabilities, loss and gradient are the exact values rounded once to
    float64 (where float64's own p − q cancels, its digits are not the exact value's)."""
    dtype = result.options.dtype
    options = result.options

    def numbers(values: Any) -> list[float | str]:
        return [json_number(v, dtype) for v in values]

    def rounded(computed: Any, exact_values: Any) -> list[float | str]:
        if exact is None:
            return numbers(computed)
        # float(Decimal) rounds once; a value below float64's range keeps the computed float's zero.
        return numbers([float(e) or c for c, e in zip(np.asarray(computed).tolist(), exact_values)])

    loss = result.reported_loss(row)
    return {
        "logits": numbers(result.logits[row]),
        "label": None if result.labels is None else int(result.labels[row]),
        "target": rounded(result.target[row], exact.target if exact else ()),
        "probabilities": rounded(result.probabilities[row], exact.probabilities if exact else ()),
        "loss": rounded([loss], [exact.loss] if exact else ())[0],
        "reduction": options.reduction,
        "gradient": rounded(result.gradient[row], exact.gradient if exact else ()),
        "predicted": int(result.argmax[row]),
        "options": {
            "label_smoothing": options.label_smoothing,
            "weight": None if options.weight is None else numbers(options.weight),
            "temperature": options.temperature,
            "reduction": options.reduction,
            "ignore_index": options.ignore_index,
            "dtype": str(options.dtype),
            "softcap": options.softcap,
            "z_loss": options.z_loss,
            "smoothing_style": options.smoothing_style,
        },
        **_language_model_terms(result, row, dtype),
    }


def _language_model_terms(result: SoftmaxCrossEntropyResult, row: int, dtype: Any) -> dict[str, Any]:
    """With a z-loss: the row's lse(b) and its z-loss term (included in "loss") apart."""
    if result.options.z_loss == 0 or result.log_sum_exp is None or result.z_losses is None:
        return {}
    z_loss = result.z_losses[row] if result.options.reduction == "none" else result.z_loss
    return {
        "log_sum_exp": json_number(result.log_sum_exp[row], dtype),
        "z_loss": json_number(float(z_loss), dtype),
    }


def dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)


def dumps_escaped(document: Any) -> str:
    """:func:`dumps`, with every control or format character (an escape sequence's ESC, a bidirectional
    override) written as ``\\uNNNN``: a document holding a learner's output is safe to show in a terminal,
    and reads back as the same strings."""
    text = dumps(document)
    return "".join(_json_escape(character) if _unsafe(character) else character for character in text)


def _unsafe(character: str) -> bool:
    return character != "\n" and unicodedata.category(character) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def _json_escape(character: str) -> str:
    encoded = character.encode("utf-16-be", errors="surrogatepass")
    return "".join(f"\\u{int.from_bytes(encoded[i : i + 2], 'big'):04x}" for i in range(0, len(encoded), 2))


def steps_json_document(
    result: SoftmaxCrossEntropyResult, stages: list[Stage], route: str = "chain"
) -> dict[str, Any]:
    """``sce grad --steps --format json``: the result's document with the route taken and the stages under ``steps``."""
    return {**grad_document(result), "route": route, "steps": steps_document(stages, result.dtype)}


def steps_document(stages: list[Stage], dtype: np.dtype) -> list[dict[str, Any]]:
    """The derivation as data: per stage its title, notes (text with inline
    $LaTeX$) and items; an equation's ``substituted`` LaTeX carries the numbers
    at full precision, and ``values`` the numbers themselves."""
    return [
        {
            "stage": number,
            "title": stage.title,
            "notes": list(stage.notes),
            "items": [_step_item(item, dtype) for item in stage.items],
        }
        for number, stage in enumerate(stages, start=1)
    ]


def _step_item(item: Item, dtype: np.dtype) -> dict[str, Any]:
    if isinstance(item, Elided):
        return {"type": "elided", "count": item.count}
    if isinstance(item, Matrix):
        return {
            "type": "matrix",
            "name": item.name,
            "indices": list(item.indices),
            "rows": [[json_number(v, dtype) for v in row] for row in item.rows],
        }
    return {
        "type": "equation",
        "formula": item.symbolic,
        "substituted": fill(item.substituted, item.values, lambda v: exact(v, dtype)),
        "values": {name: json_number(v, dtype) for name, v in item.values.items()},
        # True exactly where the line as written here, with these digits, does not check by hand.
        "approximate": approximate_as_written(item, lambda v: exact(v, dtype)),
    }


def check_document(
    checks: list[QuantityCheck], flag_of: Mapping[str, str] | None = None, *, reduction: str
) -> dict[str, Any]:
    """``sce check``'s verdict on typed answers; a mistake's options worded by ``flag_of``."""
    return {
        "correct": all(check.passed for check in checks),
        "verdict": answer_verdict(checks),
        "reduction": reduction,
        "quantities": [
            {
                "name": check.name,
                "correct": check.passed,
                "verdict": check.verdict,
                "mistake": None if check.mistake is None else check.mistake.worded_name(flag_of),
                "fix": None if check.mistake is None else check.mistake.worded_fix(flag_of),
                "also": None if check.also is None else check.also.worded_name(flag_of),
                "ambiguous_with": None if check.ambiguous is None else check.ambiguous.worded_name(flag_of),
                "slips": list(check.slips),
                "entries": [
                    {
                        "index": k,
                        # A matrix's entry (the Jacobian's ∂s_j/∂z_k) also by its row and column.
                        **({"row": k // check.columns, "column": k % check.columns} if check.columns else {}),
                        "expected": json_number(check.expected[k]),
                        "given": json_number(check.given[k]),
                        "difference": json_number(check.difference[k]),
                        "tolerance": json_number(check.allowed[k]),
                        "correct": bool(check.ok[k]),
                        # Wrong by a sign no computation gives alone: the difference is within the tolerance.
                        "wrong_sign": check.wrong_sign(k),
                    }
                    for k in range(len(check.given))
                ],
            }
            for check in checks
        ],
        # Each wrong quantity's mistake where they differ: more than one mistake.
        "more_than_one_mistake": [
            {"quantity": quantity, "name": mistake.worded_name(flag_of)} for quantity, mistake in diagnosis(checks)
        ],
    }


def matrix(values: np.ndarray) -> list[list[float | str]]:
    return [[json_number(v) for v in row] for row in values]


def file_check_document(
    found: FileCheck, flag_of: Mapping[str, str] | None = None, *, reduction: str
) -> dict[str, Any]:
    """``sce check --csv``'s verdict; a mistake's options worded by ``flag_of``."""
    return {
        "correct": found.correct,
        "verdict": found.verdict,
        "reduction": reduction,
        "rows": found.rows,
        "wrong_rows": found.wrong_rows,
        "too_few_digits_rows": found.too_few_digits_rows,
        "too_few_digits": None
        if found.look_alike is None
        else {"line": found.look_alike[0], "also_fits": found.look_alike[1].worded_name(flag_of)},
        "max_abs_error": json_number(found.max_abs_error),
        "max_rel_error": json_number(found.max_rel_error),
        "non_finite_entries": found.non_finite,
        "classes": found.classes,
        "graded_gradient_columns": found.graded_gradients,
        "worst": [
            {
                # The shape of an entry of `sce check`, located by line and column.
                "line": c.line,
                "column": c.column,
                "expected": json_number(c.expected),
                "given": json_number(c.given),
                "written": c.written,
                "difference": json_number(c.given - c.expected),
                "tolerance": json_number(c.tolerance),
                "correct": False,
            }
            for c in found.worst
        ],
        "mistakes": [
            {"quantity": q or None, "name": m.worded_name(flag_of), "fix": m.worded_fix(flag_of)}
            for q, m in found.mistakes
        ],
    }


def proofs_document(proofs: Proofs) -> dict[str, Any]:
    """The keys ``verify``, ``jacobian`` and ``hessian`` that ``sce grad --format json`` adds."""
    document: dict[str, Any] = {}
    if proofs.verification is not None:
        check = proofs.verification
        document["verify"] = {
            "numeric": [json_number(v) for v in check.numeric],
            "steps": [json_number(v) for v in check.steps],
            "relative_difference": [json_number(v) for v in check.relative_difference],
            "max_relative_difference": json_number(check.worst),
            "classes": [int(k) for k in check.classes],
            "relative_resolution": [json_number(v) for v in check.relative_resolution],
            "verdict": check.verdict,
        }
    if proofs.jacobian is not None:
        jacobian = proofs.jacobian.jacobian
        at_b = proofs.jacobian.softmax_jacobian
        matrix_words, product_words = jacobian_words(proofs.jacobian)
        document["jacobian"] = {
            # null beyond MATRIX_LIMIT classes: diag(s) - s sᵀ follows from "probabilities".
            "ds_dz": None if jacobian is None else matrix(jacobian),
            "ds_dz_is": matrix_words,
            # The softmax's Jacobian at its own input b, where b is not z (a temperature or a cap).
            **({} if at_b is None else {"ds_db": matrix(at_b)}),
            "product_is": product_words,
            "dL_ds": [json_number(v) for v in proofs.jacobian.dl_ds],
            "product": [json_number(v) for v in proofs.jacobian.product],
            # Why the product holds NaN where it does (null where it does not).
            "note": (
                jacobian_failure(proofs.jacobian.dl_ds_overflows) if proofs.jacobian.fails_in_floating_point else None
            ),
        }
    if proofs.hessian is not None:
        hessian = proofs.hessian
        largest = np.sort(hessian.eigenvalues)[::-1][:TOP_EIGENVALUES]
        document["hessian"] = {
            "matrix": None if hessian.hessian is None else matrix(hessian.hessian),
            "eigenvalues": [json_number(v) for v in hessian.eigenvalues] if hessian.all_eigenvalues else None,
            "largest_eigenvalues": [json_number(v) for v in largest],
            # How far an eigenvalue may be from the exact one: 0 where it is exact to a few ulps of itself.
            "eigenvalue_error": json_number(hessian.eigenvalue_error),
            "formula": hessian_formula(hessian),
            "statement": hessian_statement(hessian) if hessian.finite else None,
            "note": None if hessian.finite else HESSIAN_OVERFLOWS,
        }
    return document


def dtype_check_document(check: DtypeCheck, flag_of: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``sce check --arrays --format json``: the verdict by type, every error in ulps
    (options a mistake names worded by ``flag_of``, as in :func:`sce.errors.worded`)."""
    from sce.render.dtype_check import histogram_rows

    def ulps(value: float) -> float | str:
        return json_number(value)

    return {
        "correct": check.correct,
        "judgeable": check.judgeable,
        "claimed_dtype": check.claimed_dtype,
        "rows": check.rows,
        "classes": check.classes,
        "reduction": check.options.reduction,
        "sum_order": check.sum_order,
        "sum_bound": json_number(check.sum_bound) if check.sum_order == "sequential" else None,
        "mistakes": [worded(mistake, flag_of) for mistake in check.mistakes],
        "hints": [worded(hint, flag_of) for hint in check.hints],
        "quantities": [
            {
                "name": q.name,
                "correct": q.correct,
                "beyond_rounding": q.beyond_rounding,
                "entries": q.entries,
                "wrong": q.wrong,
                "max_error_ulps": ulps(q.max_ulps),
                "baseline_max_error_ulps": ulps(q.baseline_ulps),
                "allowed_ulps": ulps(q.allowed_ulps),
                "rms_error_ulps": ulps(q.rms_ulps),
                "baseline_rms_error_ulps": ulps(q.baseline_rms_ulps),
                "allowed_rms_ulps": ulps(q.allowed_rms_ulps),
                "typical_beyond": q.typical_beyond,
                "sign_flips": q.sign_flips,
                "histogram": [
                    {
                        "ulps": row.label,
                        "from_ulps": row.low,
                        "below_ulps": row.high,
                        "entries": row.entries,
                        "beyond": row.beyond,
                    }
                    for row in histogram_rows(q)
                ],
                "worst": [
                    {
                        "row": e.row,
                        "class": e.column,
                        "expected": json_number(e.expected),
                        "given": json_number(e.given),
                        "error_ulps": ulps(e.ulps),
                    }
                    for e in q.worst
                ],
            }
            for q in check.quantities
        ],
    }
