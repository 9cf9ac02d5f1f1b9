"""The fused check's entries that the float64 reference's error bound cannot grade are recomputed
exactly and graded by their exact values: a float64 answer (whose band is thousands of ulps) or
an answer within the band of its allowance passes or fails by the truth, checked against an
independent mpmath oracle; a correct float32 or bfloat16 kernel recomputes nothing."""

from __future__ import annotations

import json

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sce.grading.linear import check as linear_check
from sce.grading.linear import exact_entries, exact_rows
from sce.grading.linear.profiles import PROFILES
from sce.testing import check_linear_cross_entropy
from tests.linear_kernels import Case, kernel, make_case

ml_dtypes = pytest.importorskip("ml_dtypes")

MP = mpmath.MPContext()
MP.dps = 50
OUTPUTS = ("loss", "grad_hidden", "grad_classifier", "grad_bias")


def oracle(case: Case, grad_output: object = 1.0, **options: object) -> dict[str, np.ndarray]:
    """Loss, dE, dC and db from the definitions, at 50 digits, rounded to float64 at the end."""
    e = [[MP.mpf(float(x)) for x in row] for row in case.hidden.astype(np.float64)]
    c = [[MP.mpf(float(x)) for x in row] for row in case.classifier.astype(np.float64)]
    b = [MP.mpf(float(x)) for x in case.bias.astype(np.float64)] if case.bias is not None else [0] * len(c)
    n, v, d = len(e), len(c), len(e[0])
    eps, lam = MP.mpf(options.get("label_smoothing", 0.0)), MP.mpf(options.get("z_loss", 0.0))
    w = [MP.mpf(x) for x in options.get("weight") or [1.0] * v]
    cap, reduction = options.get("softcap"), options.get("reduction", "mean")
    upstream = np.broadcast_to(np.asarray(grad_output, dtype=np.float64), (n,))
    counted = [int(y) != options.get("ignore_index", -100) for y in case.labels]
    weight_sum = MP.fsum(w[int(y)] for y, k in zip(case.labels, counted) if k)
    losses, grads = [], []
    for i in range(n):
        z = [MP.fsum(e[i][k] * c[j][k] for k in range(d)) + b[j] for j in range(v)]
        a = [cap * MP.tanh(x / cap) for x in z] if cap else z
        lse = MP.log(MP.fsum(MP.exp(x) for x in a))
        if not counted[i]:
            losses.append((0, 0)), grads.append([0] * v)
            continue
        y = int(case.labels[i])
        if options.get("smoothing_style") == "off-target":
            coef = [(1 - eps) * w[j] if j == y else eps / (v - 1) * w[j] for j in range(v)]
        else:
            coef = [eps / v * w[j] + ((1 - eps) * w[j] if j == y else 0) for j in range(v)]
        s = MP.fsum(coef)
        losses.append((MP.fsum(coef[j] * (lse - a[j]) for j in range(v)), lam * lse**2))
        scale = MP.mpf(float(upstream[i])) / (weight_sum if reduction == "mean" else 1)
        z_scale = 2 * lam * MP.mpf(float(upstream[i])) / (sum(counted) if reduction == "mean" else 1)
        factor = [1 - MP.tanh(x / cap) ** 2 for x in z] if cap else [1] * v
        p = [MP.exp(x - lse) for x in a]
        grads.append([((s * p[j] - coef[j]) * scale + z_scale * lse * p[j]) * factor[j] for j in range(v)])
    if reduction == "none":
        loss = [ce + zl for ce, zl in losses]
    elif reduction == "sum":
        loss = [MP.fsum(ce + zl for ce, zl in losses)]
    else:
        loss = [MP.fsum(ce for ce, _ in losses) / weight_sum + MP.fsum(zl for _, zl in losses) / sum(counted)]
    found = {
        "loss": loss,
        "grad_hidden": [[MP.fsum(grads[i][j] * c[j][k] for j in range(v)) for k in range(d)] for i in range(n)],
        "grad_classifier": [[MP.fsum(grads[i][j] * e[i][k] for i in range(n)) for k in range(d)] for j in range(v)],
        "grad_bias": [MP.fsum(grads[i][j] for i in range(n)) for j in range(v)],
    }
    return {name: np.array(value, dtype=object).astype(np.float64) for name, value in found.items()}


def as_answer(exact: dict[str, np.ndarray], reduction: str = "mean") -> dict[str, np.ndarray]:
    """The exact outputs rounded to float64: a float64 kernel can do no better."""
    found = dict(exact)
    if reduction != "none":
        found["loss"] = np.float64(exact["loss"][0])
    return found


def check(case: Case, answer: dict[str, object], **keywords: object):  # noqa: ANN201
    return check_linear_cross_entropy(
        case.hidden, case.classifier, case.labels, bias=case.bias, **answer, **case.options, **keywords
    )


def unit_of(case: Case, name: str, place: tuple[int, ...], exact: float, answer: dict, **keywords: object) -> float:
    """The ulp an output's entry is graded in (at its operands' size), read by moving it far off:
    it is then the worst entry, its error a known number of those ulps."""
    moved = {key: np.array(value, copy=True) for key, value in answer.items()}
    moved[name][place] = exact + np.abs(np.asarray(answer[name], np.float64)).max() / 4
    report = check(case, {name: moved[name]}, **keywords)
    output = getattr(report, name)
    assert output.worst_entry == place
    return abs(float(moved[name][place]) - exact) / output.worst_ulp


FLOAT64_OPTIONS = [
    {},
    {"label_smoothing": 0.2, "smoothing_style": "off-target", "weight": list(np.linspace(2.0, 0.5, 40))},
    {"reduction": "sum", "label_smoothing": 0.1},
    {"reduction": "none", "softcap": 2.0, "z_loss": 1e-3},
    {"weight": list(np.linspace(0.5, 2.0, 40)), "z_loss": 1e-2},
]


@pytest.mark.parametrize("options", FLOAT64_OPTIONS, ids=str)
def test_a_float64_answer_is_graded_by_its_exact_values(options: dict) -> None:
    """The float64 reference is tens of ulps off at some entries of a float64 answer and its band
    is thousands: the exact outputs rounded to float64 pass, each output decided by exact entries,
    and the reported worst entry's exact value is the oracle's."""
    case = make_case(np.float64, **options)
    grad_output = np.linspace(0.5, 2.0, 12) if options.get("reduction") == "none" else 0.75
    exact = oracle(case, grad_output, **options)
    report = check(case, as_answer(exact, options.get("reduction", "mean")), grad_output=grad_output)
    assert report.passed, report
    for output in report.outputs:
        assert output.reference_ulp > 100  # the band is wide: the bound alone decides nothing
        assert output.decided_by == "exact", output
        assert output.allowed_ulp < output.reference_ulp  # the band is no longer added to the allowance
        where = output.worst_entry if output.worst_entry else (0,)
        assert output.expected == pytest.approx(float(exact[output.name][where]), rel=1e-15, abs=1e-300)
        if output.recomputed == np.size(exact[output.name]):  # the exact values rounded once: within half an ulp
            assert output.worst_ulp <= 0.5, output
    assert report.exact is not None and report.exact["recomputed"] > 0 and not report.exact["past_cap"]
    json.dumps(report.to_dict())


@pytest.mark.parametrize("name", ["grad_hidden", "grad_classifier", "grad_bias"])
def test_a_float64_entry_just_inside_its_allowance_passes_and_just_outside_fails(name: str) -> None:
    """Before, a float64 answer was allowed the reference's band on top (thousands of ulps): one
    entry 2 ulps beyond its allowance passed. Graded by its exact value it fails, and 2 ulps within passes."""
    case = make_case(np.float64)
    exact = oracle(case)
    answer = as_answer(exact)
    place = (4, 3) if name != "grad_bias" else (7,)
    unit = unit_of(case, name, place, float(exact[name][place]), answer)
    allowed = getattr(check(case, {name: answer[name]}), name).allowed_ulp
    for offset, passes in ((allowed - 2, True), (allowed + 2, False)):
        moved = np.array(answer[name], copy=True)
        moved[place] = exact[name][place] + offset * unit
        report = check(case, {name: moved})
        output = getattr(report, name)
        assert report.passed is passes, (offset, report)
        assert output.decided_by == "exact"
        assert output.reference_ulp > 100 * abs(output.worst_ulp - offset)  # the old rule passed both


def test_a_float64_loss_off_by_more_than_allowed_fails() -> None:
    case = make_case(np.float64)
    exact = float(oracle(case)["loss"][0])
    report = check(case, {"loss": np.float64(exact)})
    assert report.passed and report.loss.decided_by == "exact"
    unit = unit_of(case, "loss", (), exact, {"loss": np.array(exact)})
    for offset, passes in ((report.loss.allowed_ulp - 2, True), (report.loss.allowed_ulp + 2, False)):
        found = check(case, {"loss": np.float64(exact + offset * unit)})
        assert found.passed is passes and found.loss.decided_by == "exact"
        assert found.loss.reference_ulp > 100


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16], ids=["float32", "bfloat16"])
def test_an_entry_inside_a_widened_band_is_graded_by_its_exact_value(dtype: object, monkeypatch) -> None:
    """The reference's band widened (its bound factor raised) until the answer's worst entry lies
    in it: an entry 1.5 ulps within the allowance passes and 1.5 beyond fails, by the exact value,
    its entries kept in a second pass (a narrow type's keeps nothing in the first)."""
    collected = []
    first_pass = linear_check.full_check

    def counted(*args, **keywords):  # noqa: ANN002, ANN003, ANN202
        collected.append(keywords.get("collect", False))
        return first_pass(*args, **keywords)

    monkeypatch.setattr(linear_check, "full_check", counted)
    case = make_case(dtype)
    answer = kernel(case)
    exact = oracle(case)["grad_hidden"]
    place = (4, 3)
    unit = unit_of(case, "grad_hidden", place, float(exact[place]), {"grad_hidden": answer["grad_hidden"]})
    monkeypatch.setattr(linear_check, "_BOUND_FACTOR", 3.0e6 if dtype == np.float32 else 3.0e6 * 2.0**16)
    allowed = check(case, {"grad_hidden": answer["grad_hidden"]}).grad_hidden.allowed_ulp
    for offset, passes in ((allowed - 1.5, True), (allowed + 1.5, False)):
        moved = answer["grad_hidden"].copy()
        moved[place] = exact[place] + offset * unit
        output = check(case, {"grad_hidden": moved}).grad_hidden
        assert output.passed is passes, (offset, output)
        assert output.decided_by == "exact"
        assert 2 < output.reference_ulp < allowed / 2  # the band held the entry; a bound-only rule passed it
    assert True in collected


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("profile", PROFILES)
def test_a_correct_narrow_kernel_is_decided_by_the_bound_and_keeps_nothing(dtype: object, profile: str, monkeypatch) -> None:
    """The common case costs nothing: no entry is held during the pass, no exact row is formed."""
    offered, compiled = [], []
    original, compiled_grading = exact_entries.EntryStore.offer, linear_check.grade_sized_compiled

    def counting(self, verdict, errors, base_errors, block) -> None:  # noqa: ANN001
        offered.append(block)
        original(self, verdict, errors, base_errors, block)

    def grading(*args):  # noqa: ANN002, ANN202
        compiled.append(args[0])
        return compiled_grading(*args)

    monkeypatch.setattr(exact_entries.EntryStore, "offer", counting)
    monkeypatch.setattr(linear_check, "grade_sized_compiled", grading)
    monkeypatch.setattr(exact_rows, "ExactRows", None)  # building one would raise
    case = make_case(dtype)
    report = check(case, kernel(case), profile=profile)
    assert report.passed, report
    assert offered == []  # nothing kept, no second pass
    assert compiled or profile == "cce"  # blocks graded by the compiled loop, as without exact entries
    assert report.exact["recomputed"] == 0 and report.exact["past_cap"] == []
    assert all(o.decided_by == "bound" for o in report.outputs)
    assert "exact:" not in str(report)


def test_past_the_cap_the_bound_decides_and_the_report_says_so(monkeypatch) -> None:
    monkeypatch.setattr(exact_entries, "MAX_ENTRIES", 20)
    case = make_case(np.float64)
    report = check(case, as_answer(oracle(case)))
    assert report.passed
    # The typical error is within the band: only every entry decides it, and 20 cannot be all of
    # them, so none are spent there; the loss's one entry is.
    assert report.exact["recomputed"] == 1 and report.loss.decided_by == "exact"
    assert report.exact["past_cap"] == ["grad_hidden", "grad_classifier", "grad_bias"]
    assert "past the cap (20 entries" in report.exact["statement"]
    assert str(report).splitlines()[-1].startswith("  exact: 1 entry recomputed exactly")
    past = report.grad_classifier
    assert past.decided_by == "bound_past_cap" and past.allowed_ulp > past.reference_ulp


def test_a_float64_mistake_is_still_named() -> None:
    """A what-if is graded against a mistake's float64 result, as exact as the reference's bound."""
    case = make_case(np.float64)
    answer = as_answer(oracle(case))
    counted = int((case.labels != -100).sum())
    scaled = {name: answer[name] * (counted / len(case.labels)) for name in ("grad_hidden", "grad_classifier")}
    report = check(case, scaled)
    assert not report.passed
    assert report.mistake == "ignored rows counted in the mean"


def test_a_mean_over_no_counted_row_is_not_recomputed_as_a_number() -> None:
    case = make_case(np.float64)
    case = Case(case.hidden, case.classifier, np.full(12, -100), case.bias)
    report = check(case, {"loss": np.float64("nan"), "grad_hidden": np.zeros((12, 16))})
    assert report.passed, report
    assert report.loss.decided_by in ("bound", "bound_past_cap")


def test_a_non_finite_float64_answer_fails_without_recomputing() -> None:
    case = make_case(np.float64)
    answer = as_answer(oracle(case))
    wrong = answer["grad_hidden"].copy()
    wrong[0, 0] = np.nan
    report = check(case, {"grad_hidden": wrong})
    assert not report.passed and report.grad_hidden.decided_by == "bound"


def test_check_arrays_on_a_float64_dump_grades_by_exact_entries_as_the_api_does(tmp_path, sce) -> None:  # noqa: ANN001
    """The command line's verdict is the API's: a float64 entry 2 ulps beyond its allowance fails
    there too, and the lines say how many entries were recomputed."""
    case = make_case(np.float64)
    answer = as_answer(oracle(case))
    arrays = {"hidden": case.hidden, "classifier": case.classifier, "labels": case.labels, "bias": case.bias}
    right = tmp_path / "right.npz"
    np.savez(right, **arrays, **answer)
    result = sce("check", "--arrays", str(right))
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "verdict: correct for float64"
    assert "exact: 873 entries recomputed exactly, where the reference's bound could not decide" in result.stdout
    place = (4, 3)
    unit = unit_of(case, "grad_hidden", place, float(answer["grad_hidden"][place]), answer)
    allowed = check(case, answer).grad_hidden.allowed_ulp
    moved = answer["grad_hidden"].copy()
    moved[place] += (allowed + 2) * unit
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **arrays, **{**answer, "grad_hidden": moved})
    api = check(case, {**answer, "grad_hidden": moved})
    result = sce("check", "--arrays", str(wrong))
    assert not api.passed and result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "verdict: not correct for float64"
    document = json.loads(sce("check", "--arrays", str(wrong), "--format", "json").stdout)
    assert document["exact"]["recomputed"] == api.exact["recomputed"] > 0
    assert document["grad_hidden"]["decided_by"] == "exact"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 6)),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float64, np.float32, ml_dtypes.bfloat16]),
    options=st.sampled_from(FLOAT64_OPTIONS[:4]),
)
def test_the_exact_outputs_rounded_once_are_within_half_an_ulp_at_any_shape(shape, seed, dtype, options) -> None:  # noqa: ANN001
    """With the band widened until every entry is recomputed, the oracle's outputs rounded to the
    answer's type are graded within half an ulp: the recomputed values are the oracle's."""
    n, d, v = shape
    options = {key: value for key, value in options.items() if key != "weight"}
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, v, n)
    labels[rng.random(n) < 0.2] = -100
    case = Case((rng.standard_normal((n, d)) * 2).astype(dtype), rng.standard_normal((v, d)).astype(dtype), labels,
                rng.standard_normal(v).astype(dtype), options)  # fmt: skip
    if options.get("reduction", "mean") == "mean" and not (labels != -100).any():
        return  # 0/0: graded as NaN, not recomputed
    out = np.float64 if dtype == np.float64 else np.float32
    grad_output = np.linspace(0.5, 2.0, n) if options.get("reduction") == "none" else 0.75
    exact = oracle(case, grad_output, **options)
    answer = {name: value.astype(out) for name, value in as_answer(exact, options.get("reduction", "mean")).items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(linear_check, "_BOUND_FACTOR", 1e30)
        report = check(case, answer, grad_output=grad_output)
    for output in report.outputs:
        assert output.decided_by == "exact", output
        if output.recomputed == np.size(exact[output.name]):
            assert output.worst_ulp <= 0.5 + 1e-9, output
    assert report.passed, report


@pytest.mark.parametrize(
    "options",
    [{"ignore_index": 3}, {"weight": [0.0, *np.linspace(0.5, 2.0, 39)]}, {"reduction": "none", "z_loss": 1e-2}],
    ids=["ignore-index-3", "a-zero-weight", "batch-and-sequence-axes"],
)
def test_float64_answers_with_other_conventions_are_graded_by_their_exact_values(options: dict) -> None:
    """A label that is the ignored index, a class of weight 0, hidden states of B × T × D: the exact
    entries are those of the oracle, and the exact outputs rounded to float64 pass within half an ulp."""
    case = make_case(np.float64, **options)
    labels = case.labels.copy()
    labels[[0, 4]] = 3  # rows with the label 3 (ignored under ignore_index=3)
    if "ignore_index" in options:
        labels[labels == -100] = 3  # −100 is a class index out of range there
    labels[6] = 0  # a row whose label has weight 0 under the zero weight
    case = Case(case.hidden, case.classifier, labels, case.bias, options)
    grad_output = np.linspace(0.5, 2.0, 12) if options.get("reduction") == "none" else 1.0
    exact = oracle(case, grad_output, **options)
    answer = as_answer(exact, options.get("reduction", "mean"))
    if options.get("reduction") == "none":  # batch and sequence axes: 3 × 4 rows
        case = Case(case.hidden.reshape(3, 4, -1), case.classifier, labels.reshape(3, 4), case.bias, options)
        answer = {**answer, "loss": answer["loss"].reshape(3, 4), "grad_hidden": answer["grad_hidden"].reshape(3, 4, -1)}
        grad_output = grad_output.reshape(3, 4)
    report = check(case, answer, grad_output=grad_output)
    assert report.passed, report
    for output in report.outputs:
        assert output.decided_by == "exact" and output.recomputed == np.size(exact[output.name]), output
        assert output.worst_ulp <= 0.5, output
