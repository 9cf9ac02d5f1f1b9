"""Grading one case: sce's exact answer, a fair allowance, the comparison, the named mistake."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Literal

import numpy as np

from sce.errors import option
from sce.grading import catalogue
from sce.grading.implementations import mistaken_variants
from sce.grading.implementations.cases import Case
from sce.grading.implementations.evidence import CaseEvidence, Judged, agreement, case_evidence
from sce.grading.implementations.loading import UnusableImplementation
from sce.grading.implementations.mistaken_variants import Exact
from sce.grading.implementations.report import CaseResult, Configuration, Mistake
from sce.grading.implementations.runner import CaseOutcome
from sce.grading.implementations.signs import sign_notes, with_negative_loss, wrong_signs
from sce.loss import softmax_cross_entropy

Reduction = Literal["none", "mean", "sum"]

#: An allowance is MARGIN times a straightforward implementation's error, plus ULPS units in the last place.
MARGIN = 4.0
ULPS = 8.0
INPUT_ULPS = 4.0


class Mismatch(Exception):
    """The answer has the wrong type or shape for this case."""


def exact_answer(case: Case, configuration: Configuration) -> Exact:
    """sce's exact result for the case (the core, in float64), with the loss's options."""
    options = configuration.loss_options()
    logits = case.logits.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an infinite or zero loss is part of the case
        if configuration.targets:
            assert case.targets is not None
            result = softmax_cross_entropy(logits, targets=case.targets.astype(np.float64), options=options)
        else:
            result = softmax_cross_entropy(logits, case.labels.astype(np.int64), options=options)
    return Exact(
        logits=logits,
        loss=np.asarray(result.loss, dtype=np.float64),
        gradient=result.gradient,
        row_losses=result.losses,
        probabilities=result.probabilities,
        log_probabilities=result.log_probabilities,
        shifted_logits=result.shifted_logits,
        target=result.target,
        labels=None if configuration.targets else case.labels.astype(np.int64),
        reduction=options.reduction,
        batch=configuration.convention == "batch",
        result=result,
    )


def straightforward_answer(exact: Exact, dtype: np.dtype) -> dict[str, np.ndarray]:
    """What a straightforward correct implementation gets in ``dtype``: the cap
    c·tanh(z/c) and its factor 1/cosh²(z/c), the temperature, max-shifted softmax,
    (1 + 2λ·lse)·p − q, divided by N; the loss as
    log Σ exp(b − max) − (b_c − max) plus λ·lse². A half type's answer is computed in
    float32 from the logits rounded to it, and rounded to it at the end, as frameworks
    compute half types."""
    if dtype.itemsize == 2:
        rounded = dataclasses.replace(exact, logits=exact.logits.astype(dtype).astype(np.float32))
        answer = straightforward_answer(rounded, np.dtype(np.float32))
        return {name: value.astype(dtype) for name, value in answer.items()}
    options = exact.options
    z = exact.logits.astype(dtype)
    target = exact.target.astype(dtype)
    with np.errstate(all="ignore"):
        b, factor = z, None
        if options.softcap is not None:
            cap = dtype.type(options.softcap)
            b = cap * np.tanh(z / cap)
            factor = (dtype.type(1) / np.square(np.cosh(z / cap))).astype(dtype)
        if options.temperature != 1.0:
            b = b / dtype.type(options.temperature)
        top = b.max(axis=1, keepdims=True)
        shifted = b - top
        exps = np.exp(shifted)
        sums = exps.sum(axis=1, keepdims=True)
        p = exps / sums
        gradient = p - target
        row_losses = (target * (np.log(sums) - shifted)).sum(axis=1)
        if options.z_loss:
            # The fused kernels' formula (1 + 2λ·lse)·p − q: it rounds the coefficient's product with p
            # at the size of p, not of p − q (a kernel's usual organisation; allowed its error).
            lse = (top + np.log(sums))[:, 0]
            gradient = (dtype.type(1) + dtype.type(2 * options.z_loss) * lse[:, None]) * p - target
            row_losses = row_losses + dtype.type(options.z_loss) * np.square(lse)
        if options.temperature != 1.0:
            gradient = gradient / dtype.type(options.temperature)
        if factor is not None:
            gradient = gradient * factor
        if exact.reduction == "mean":
            return {"gradient": gradient / dtype.type(exact.rows), "loss": row_losses.sum() / dtype.type(exact.rows)}
        if exact.reduction == "sum":
            return {"gradient": gradient, "loss": row_losses.sum()}
    return {"gradient": gradient, "loss": row_losses}


def allowance(right: np.ndarray, baseline: np.ndarray, dtype: np.dtype, input_sensitivity: float) -> float:
    """What a correct implementation may be off by: MARGIN × the straightforward
    implementation's error, + ULPS ulps of the largest entry, + the effect of
    rounding the logits by INPUT_ULPS ulps (``input_sensitivity`` is how far the
    answer moves per unit change of every logit). The last term keeps correct
    but differently organised code (log-softmax as z − logsumexp(z)) from failing
    at logits of 1000, where the inputs' own last digits are worth 1e-13."""
    with np.errstate(all="ignore"):
        error = float(np.max(np.abs(baseline.astype(np.float64) - right)))
    # Only finite terms: where the exact answer or its sensitivity overflows (a z-loss of 1e300,
    # T = 1e-300) an infinite allowance would pass any answer; a NaN one would pass none.
    finite = np.abs(right[np.isfinite(right)]) if right.size else np.zeros(0)
    scale = float(np.max(finite, initial=0.0))
    eps = float(np.finfo(dtype).eps)
    margin = MARGIN * error if np.isfinite(error) else 0.0
    rounding = INPUT_ULPS * eps * input_sensitivity if np.isfinite(input_sensitivity) else 0.0
    return margin + ULPS * eps * scale + rounding + float(np.finfo(dtype).tiny)


def input_sensitivities(exact: Exact) -> dict[str, float]:
    """Bounds on how far the gradient and the loss move when every logit moves by
    up to max|z|: Σ_j |∂g_i/∂z_j| = 2 p_i (1 − p_i) and Σ_j |∂L/∂z_j| = Σ_j |p_j − y_j|,
    times 1/T per derivative through the temperature (the cap's factor is at most 1)
    and 1 + 2λ·(|lse| + 1) for the z-loss."""
    reach = float(np.max(np.abs(exact.logits[np.isfinite(exact.logits)]), initial=0.0))
    p = exact.probabilities
    per_row_loss = np.abs(p - exact.target).sum(axis=1)
    rows = exact.rows if exact.reduction == "sum" else 1.0
    options = exact.options
    z_factor = 1.0
    if options.z_loss and exact.result is not None and exact.result.log_sum_exp is not None:
        z_factor += 2 * options.z_loss * (float(np.max(np.abs(exact.result.log_sum_exp), initial=0.0)) + 1)
    over_t = 1 / options.temperature
    return {
        "gradient": reach * float(np.max(2 * p * (1 - p), initial=0.0)) * z_factor * over_t * over_t / exact.divisor,
        "loss": reach * float(np.max(per_row_loss, initial=0.0)) * z_factor * over_t * rows,
    }


def judged_dtype(case: Case, answer: np.ndarray) -> np.dtype:
    """float32 answers (and answers for float32 logits) are judged as float32, float16 ones
    as float16 (a half-precision kernel's output has float16's rounding, not float32's)."""
    if answer.dtype == np.float16:
        return np.dtype(np.float16)
    if case.logits.dtype == np.float32 or (answer.dtype.kind == "f" and answer.dtype.itemsize <= 4):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def quantities(outcome: CaseOutcome, case: Case, configuration: Configuration) -> dict[str, np.ndarray]:
    """The answer as arrays by quantity ("loss", "gradient"), stacked over rows for
    --convention row. Raises Mismatch when it has the wrong type or shape."""
    per_call = [_unpack(answer, configuration) for answer in outcome.answers]
    row = configuration.convention == "row"
    shapes = {
        "gradient": (case.classes,) if row else (case.rows, case.classes),
        "loss": () if row or configuration.reduction != "none" else (case.rows,),
    }
    arrays: dict[str, np.ndarray] = {}
    for quantity in per_call[0]:
        parts = [_as_array(items[quantity], quantity, shapes[quantity], configuration) for items in per_call]
        arrays[quantity] = np.stack(parts) if row else parts[0]
    return arrays


def _unpack(answer: dict[str, Any], configuration: Configuration) -> dict[str, dict[str, Any]]:
    if configuration.returns == "loss,grad":
        if answer["kind"] != "pair":
            raise Mismatch(f"expected a pair (loss, grad); found {_what(answer)}{_returns_hint(answer)}")
        return {"loss": answer["items"][0], "gradient": answer["items"][1]}
    if answer["kind"] == "other" and answer["type"] == "a tuple of 2":
        raise Mismatch(
            f"expected only the {_returned(configuration)}; found a tuple of 2 "
            f"(if it returns (loss, grad), use {option('returns', 'loss,grad')})"
        )
    return {"gradient" if configuration.returns == "grad" else "loss": answer}


def _returns_hint(answer: dict[str, Any]) -> str:
    if answer["kind"] == "other" and answer["type"] == "dict":
        return f" (if it returns a dict of the derivation's stages, use {option('returns', 'stages')})"
    if answer["kind"] != "array":
        return ""
    if answer["array"].ndim == 0:
        return f" (if it returns only the loss, use {option('returns', 'loss')})"
    return f" (if it returns only the gradient, use {option('returns', 'grad')})"


def _returned(configuration: Configuration) -> str:
    return "gradient" if configuration.returns == "grad" else "loss"


def _what(item: dict[str, Any]) -> str:
    if item["kind"] == "array":
        shape = item["array"].shape
        return "a number" if shape == () else f"an array of shape {shape}"
    if item["kind"] == "too_large":
        return f"an array of shape {tuple(item['shape'])}"
    found = item["type"]
    if found.startswith(("a ", "an ", "one ")) or found == "None":
        return str(found)
    return f"{'an' if found[:1].lower() in 'aeiou' else 'a'} {found}"


def _as_array(item: dict[str, Any], quantity: str, shape: tuple[int, ...], configuration: Configuration) -> np.ndarray:
    wanted = "a number" if shape == () else f"an array of shape {shape}"
    if item["kind"] == "other" and item["type"] == "bfloat16 values":
        # 16 ulps of the largest entry, this grading's floor, are 12 % in bfloat16: too loose to judge.
        raise Mismatch(
            f"the {quantity} is bfloat16: sce test grades float16, float32 and float64 answers; grade a bfloat16 "
            "kernel's arrays, dumped, with sce check, which judges bfloat16 by its own baseline"
        )
    if item["kind"] != "array":
        raise Mismatch(f"the {quantity} should be {wanted}; found {_what(item)}")
    array: np.ndarray = item["array"]
    if shape == () and array.shape in ((), (1,)):
        return array.reshape(())
    if array.shape == shape:
        return array
    hint = ""
    if quantity == "gradient" and array.shape == shape[1:] and configuration.convention == "batch":
        hint = f" (a function of one row? use {option('convention', 'row')})"
    elif quantity == "loss" and shape == () and array.ndim == 1:
        hint = f" (a loss per row? use {option('reduction', 'none')})"
    raise Mismatch(f"the {quantity} should be {wanted}; found {_what(item)}{hint}")


def grade_case(case: Case, outcome: CaseOutcome, configuration: Configuration, first: bool) -> CaseResult:
    """Compare the answer with the exact one. On the first case a wrong type or
    shape means the function is not the one configured: UnusableImplementation."""
    changed = in_place_mistake(outcome)
    if outcome.error is not None:
        return CaseResult(case.name, False, None, None, changed, outcome.error, evidence=_inputs(case, configuration))
    try:
        arrays = quantities(outcome, case, configuration)
    except Mismatch as problem:
        if first:
            raise UnusableImplementation(f"{problem}, for {case.name}") from None
        return CaseResult(case.name, False, None, None, changed, str(problem), evidence=_inputs(case, configuration))
    return compare_answers(case, arrays, exact_answer(case, configuration), changed)


def _inputs(case: Case, configuration: Configuration) -> CaseEvidence:
    """What a case without an answer to compare shows: its inputs and the expected answer."""
    exact = exact_answer(case, configuration)
    returned = {"loss,grad": ("loss", "gradient"), "grad": ("gradient",), "loss": ("loss",)}[configuration.returns]
    expected = {"gradient": exact.gradient, "loss": exact.loss}
    return case_evidence(case, {}, {quantity: expected[quantity] for quantity in returned})


def in_place_mistake(outcome: CaseOutcome) -> Mistake | None:
    if "logits" in outcome.changed or outcome.read_only_violation:
        return catalogue.LOGITS_IN_PLACE
    if "second" in outcome.changed:
        return catalogue.LABELS_IN_PLACE
    return None


def compare_answers(case: Case, arrays: dict[str, np.ndarray], exact: Exact, changed: Mistake | None) -> CaseResult:
    """Each quantity's error against its allowance; the worst one is reported."""
    worst: tuple[float, str, float, float, float] | None = None  # ratio, quantity, error, allowance, ulps
    named: list[Mistake] = []
    worst_failing: str | None = None
    notes: list[str] = []
    sensitivity = input_sensitivities(exact)
    signs = wrong_signs(arrays, exact)
    judged: dict[str, Judged] = {}
    for quantity in ("gradient", "loss"):
        if quantity not in arrays:
            continue
        dtype = judged_dtype(case, arrays[quantity])
        given = per_cap_factor(exact, quantity, arrays[quantity])
        right = per_cap_factor(exact, quantity, exact.gradient if quantity == "gradient" else exact.loss)
        baseline = per_cap_factor(exact, quantity, straightforward_answer(exact, dtype)[quantity])
        allowed = allowance(right, baseline, dtype, sensitivity[quantity])
        error = _error(given, right)
        ratio = np.inf if not np.isfinite(error) else error / allowed
        expected = exact.gradient if quantity == "gradient" else exact.loss
        flipped = signs[quantity]
        judged[quantity] = Judged(arrays[quantity], expected, agreement(given, right, allowed) & ~flipped)
        if worst is None or ratio > worst[0]:
            worst = (ratio, quantity, error, allowed, error_ulps(error, right, dtype, exact.divisor))
        if (ratio > 1 or flipped.any()) and worst_failing is None:  # named from the first wrong quantity
            worst_failing = quantity
            named = _named(case, quantity, (given, right, flipped), exact, allowed if ratio > 1 else None)
        notes += sign_notes(quantity, flipped, ratio)
        if ratio > 1:
            capped = quantity == "gradient" and exact.cap_factor is not None
            absolute = _error(arrays[quantity], exact.gradient) if capped else None
            notes.append(_describe_error(quantity, given, error, allowed, absolute))
    assert worst is not None
    named = with_negative_loss(named, signs)
    ratio, quantity, error, allowed, ulps = worst
    narrowed = precision_thrown_away(case, arrays)
    passed = ratio <= 1 and changed is None and narrowed is None and not any(m.any() for m in signs.values())
    if narrowed is not None:
        notes.insert(0, narrowed)
    elif case.logits.dtype == np.float32:
        notes.append(_dtype_note(arrays))
    mistake = named[0] if named else changed
    if changed is not None and named:
        notes.append(f"also: {changed.name}")
    elif changed is not None and ratio <= 1:
        notes.insert(0, "right answer, but the function wrote into its input")
    non_finite = any(
        not np.isfinite(_error(arrays[q], exact.gradient if q == "gradient" else exact.loss)) for q in arrays
    )
    return CaseResult(
        case.name,
        passed,
        error,
        allowed,
        mistake,
        "; ".join(notes),
        tuple(named),
        non_finite,
        case.overflow_prone or case.label_probability_underflows,
        None if passed else case_evidence(case, judged, {q: judgement.expected for q, judgement in judged.items()}),
        error_ulps=ulps,
    )


def error_ulps(error: float, right: np.ndarray, dtype: np.dtype, divisor: float) -> float:
    """An absolute error in ulps (of the type judged) of the quantity's largest finite exact entry, or
    of its terms' size where that is larger: 1, or 1/N for a mean (p and y in p − y; a confident row's
    p − 1 of 4e-18 is formed from numbers of size 1, and an error of 4e-18 is not 10^15 ulps)."""
    finite = np.abs(right[np.isfinite(right)]) if right.size else np.zeros(0)
    unit = float(np.finfo(dtype).eps) * max(float(np.max(finite, initial=0.0)), 1.0 / divisor)
    if not math.isfinite(error):
        return math.inf
    return error / unit if unit > 0 else (0.0 if error == 0 else math.inf)


def _named(
    case: Case, quantity: str, values: tuple[np.ndarray, np.ndarray, np.ndarray], exact: Exact, allowed: float | None
) -> list[Mistake]:
    """The mistakes named for a wrong quantity (``values``: given, right, the entries of a wrong
    sign); ``allowed`` None where only signs are wrong: every mistake's numbers are then as near the
    truth as the answer's, and a loss below 0 is the catalogue's negative loss."""
    given, right, flipped = values
    named = []
    if allowed is not None:
        with np.errstate(all="ignore"):
            named = _name_mistakes(case, quantity, given, right, exact, allowed)
    return named or ([catalogue.NEGATIVE_LOSS] if quantity == "loss" and flipped.any() else [])


def per_cap_factor(exact: Exact, quantity: str, values: np.ndarray) -> np.ndarray:
    """With a softcap, the gradient is judged divided by each entry's factor 1 − tanh²(z/c)
    (where it is not 0): an entry of a large logit is tiny, and an absolute error would
    hide that it lost its digits; per unit of the factor it is ∂L/∂a, of the size of p − q."""
    factor = exact.cap_factor
    if quantity != "gradient" or factor is None or values.shape != factor.shape:
        return values
    with np.errstate(all="ignore"):
        return np.where(factor > 0, values.astype(np.float64) / np.where(factor > 0, factor, 1.0), values)


def precision_thrown_away(case: Case, arrays: dict[str, np.ndarray]) -> str | None:
    """What an answer in float16 for wider logits says of itself, or None.

    A float16 entry carries 11 significant bits: graded by float16's own allowances, an
    answer for float64 logits may be a few units off per entry, and a gradient missing its 1/N
    passes. The case asked for the logits' precision; the answer cannot hold it, so the case
    fails, said so, and the mistake (if one fits) is still named by float16's measure.

    Examples
    --------
    >>> from sce.grading.implementations.cases import Case
    >>> case = Case("two rows", np.zeros((2, 3)), np.array([0, 1]))
    >>> precision_thrown_away(case, {"gradient": np.zeros((2, 3), np.float16)})
    'returns float16 for float64 logits: it cannot hold the precision asked for'
    >>> precision_thrown_away(case, {"gradient": np.zeros((2, 3))}) is None
    True
    """
    narrow = sorted({str(a.dtype) for a in arrays.values() if a.dtype == np.float16})
    if not narrow or case.logits.dtype.itemsize <= 2:
        return None
    return f"returns {', '.join(narrow)} for {case.logits.dtype} logits: it cannot hold the precision asked for"


def _error(given: np.ndarray, right: np.ndarray) -> float:
    """The largest absolute difference; NaN when the answer is NaN or infinite where
    the exact one is finite (or the other way round)."""
    with np.errstate(all="ignore"):
        values = given.astype(np.float64)
        both_same_infinity = (values == right) & np.isinf(right)
        difference = np.where(both_same_infinity, 0.0, np.abs(values - right))
    if difference.size == 0:
        return 0.0
    if np.any(np.isnan(difference)):
        return float("nan")
    return float(np.max(difference))


def _describe_error(
    quantity: str, given: np.ndarray, error: float, allowed: float, absolute: float | None = None
) -> str:
    """``absolute``: under a softcap, the gradient's own error, beside the one per unit of the
    cap's factor it is judged by (0.333 per unit of a factor of 1e-29 is 3e-30 of gradient)."""
    if np.any(np.isnan(given)):
        return f"the {quantity} has NaN entries"
    if np.any(np.isinf(given)):
        return f"the {quantity} has infinite entries"
    if absolute is not None:
        return (
            f"the {quantity} is off by {error:.3g} per unit of the cap's factor 1 − tanh²(z/c) "
            f"(allowed {allowed:.2g}); in the gradient itself by {absolute:.2g}"
        )
    return f"the {quantity} is off by {error:.3g} (allowed {allowed:.2g})"


def _dtype_note(arrays: dict[str, np.ndarray]) -> str:
    kinds = {str(array.dtype) for array in arrays.values()}
    if kinds <= {"float32"}:
        return "keeps float32"
    return f"returns {', '.join(sorted(kinds))} for float32 logits"


def _name_mistakes(
    case: Case, quantity: str, given: np.ndarray, right: np.ndarray, exact: Exact, allowed: float
) -> list[Mistake]:
    with np.errstate(all="ignore"):
        finite = bool(np.all(np.isfinite(given.astype(np.float64))))
    if (
        case.label_probability_underflows
        and quantity == "loss"
        and np.any(np.isposinf(given))
        and not np.any(np.isnan(given))
    ):
        return [catalogue.LOG_OF_ZERO]
    if not finite:
        if quantity == "loss" and bool(np.all(given < 0)):
            return [catalogue.NEGATIVE_LOSS]  # −inf: log 0 with its sign lost
        if _like_no_max_shift(case, quantity, given, exact):
            return [catalogue.NO_MAX_SHIFT]
        if case.label_probability_underflows and quantity == "gradient":
            # The chain rule through the Jacobian, −1/s_c · ∂s_c/∂z, taken literally.
            return [catalogue.DIVIDED_BY_P]
        return []
    variants = (
        mistaken_variants.gradient_variants(exact) if quantity == "gradient" else mistaken_variants.loss_variants(exact)
    )
    if quantity == "gradient" and exact.cap_factor is not None:
        variants = [(mistake, per_cap_factor(exact, quantity, value)) for mistake, value in variants]
        variants.append((catalogue.CAP_FACTOR_LOSES_DIGITS, right * _naive_cap_factor(exact, case, given)))
    scale = float(np.max(np.abs(right))) if right.size else 1.0

    def tolerance(variant: np.ndarray) -> float:
        # A mistaken variant is as hard to compute as the right answer, relative to its size.
        size = float(np.max(np.abs(variant))) if variant.size else 0.0
        return 2.0 * allowed * max(1.0, size / scale if scale > 0 else 1.0)

    found = mistaken_variants.match(given, right, variants, tolerance)
    if not found and quantity == "loss" and bool(np.all(given < 0) and np.all(right >= 0)):
        return [catalogue.NEGATIVE_LOSS]  # no known slip makes it, but a loss is never negative
    return found


def _naive_cap_factor(exact: Exact, case: Case, given: np.ndarray) -> np.ndarray:
    """1 − tanh²(z/c) as 1 minus a number near 1, in the answer's type, over the exact factor."""
    assert exact.cap_factor is not None and exact.options.softcap is not None
    dtype = judged_dtype(case, given)
    z = exact.logits.astype(dtype)
    tanh = np.tanh(z / dtype.type(exact.options.softcap))
    naive = (dtype.type(1) - tanh * tanh).astype(np.float64)
    factor = exact.cap_factor
    return np.where(factor > 0, naive / np.where(factor > 0, factor, 1.0), 1.0)


def _like_no_max_shift(case: Case, quantity: str, given: np.ndarray, exact: Exact) -> bool:
    """Non-finite where exp(z) without the shift overflows or underflows, and only there
    (a function that returns NaN everywhere has some other problem)."""
    if not (case.overflow_prone or case.label_probability_underflows):
        return False
    dtype = judged_dtype(case, given)
    z = exact.logits if exact.result is None else exact.result.scaled_logits
    exps = np.exp(z.astype(dtype))
    naive = (exps / exps.sum(axis=1, keepdims=True) - exact.target) / exact.divisor
    if quantity == "loss":
        return not bool(np.all(np.isfinite(naive)))
    return bool(np.array_equal(np.isfinite(given.astype(np.float64)), np.isfinite(naive)))
