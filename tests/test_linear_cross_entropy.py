"""The fused linear cross-entropy check: the blocked reference against mpmath, fair verdicts for
correct kernels in float32 and bfloat16 under every profile, each planted mistake failing and
named, and bad input refused with the argument named."""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sce import softmax_cross_entropy
from sce.grading.linear import mistakes
from sce.grading.linear.profiles import PROFILES
from sce.loss.linear_cross_entropy import linear_cross_entropy
from sce.testing import Report, assert_linear_cross_entropy_close, check_linear_cross_entropy
from tests.linear_kernels import Case, kernel, make_case

# The module, not the function sce.loss exports under its name.
blocked = importlib.import_module("sce.loss.linear_cross_entropy")
ml_dtypes = pytest.importorskip("ml_dtypes")
BFLOAT16 = ml_dtypes.bfloat16

mpmath.mp.dps = 50

OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.2, "smoothing_style": "off-target"},
    {"softcap": 2.0},
    {"z_loss": 1e-3},
    {"weight": list(np.linspace(0.5, 2.0, 40))},
    {"softcap": 1.0, "z_loss": 1e-2, "label_smoothing": 0.1, "reduction": "sum"},
]


def exact(case: Case, grad_output: object = 1.0, **options: object) -> dict[str, list]:
    """Loss, dE, dC and db with mpmath at 50 digits, from the definitions."""
    e = [[mpmath.mpf(float(x)) for x in row] for row in case.hidden.astype(np.float64)]
    c = [[mpmath.mpf(float(x)) for x in row] for row in case.classifier.astype(np.float64)]
    b = [mpmath.mpf(float(x)) for x in case.bias.astype(np.float64)] if case.bias is not None else None
    n, v, d = len(e), len(c), len(e[0])
    eps = mpmath.mpf(options.get("label_smoothing", 0.0))
    w = [mpmath.mpf(x) for x in options.get("weight") or [1.0] * v]
    cap, lam = options.get("softcap"), mpmath.mpf(options.get("z_loss", 0.0))
    reduction = options.get("reduction", "mean")
    off_target = options.get("smoothing_style") == "off-target"
    upstream = np.broadcast_to(np.asarray(grad_output, dtype=np.float64), (n,))
    counted = [int(y) != -100 for y in case.labels]
    denominator = sum(w[int(y)] for y, k in zip(case.labels, counted) if k)
    count = sum(counted)
    ce_losses, z_losses, grads = [], [], []
    for i in range(n):
        z = [mpmath.fsum(e[i][k] * c[j][k] for k in range(d)) + (b[j] if b else 0) for j in range(v)]
        a = [cap * mpmath.tanh(x / cap) for x in z] if cap else z
        factor = [1 - mpmath.tanh(x / cap) ** 2 for x in z] if cap else [1] * v
        lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in a))
        if not counted[i]:
            ce_losses.append(0), z_losses.append(0), grads.append([0] * v)
            continue
        y = int(case.labels[i])
        if off_target:
            coef = [eps / (v - 1) * w[j] if j != y else (1 - eps) * w[j] for j in range(v)]
        else:
            coef = [eps / v * w[j] + ((1 - eps) * w[j] if j == y else 0) for j in range(v)]
        s = mpmath.fsum(coef)
        ce_losses.append(mpmath.fsum(coef[j] * (lse - a[j]) for j in range(v)))
        z_losses.append(lam * lse**2)
        ce_scale = {"mean": 1 / denominator, "sum": 1, "none": upstream[i]}[reduction]
        z_scale = {"mean": mpmath.mpf(1) / count, "sum": 1, "none": upstream[i]}[reduction]
        p = [mpmath.exp(x - lse) for x in a]
        grads.append([((s * p[j] - coef[j]) * ce_scale + 2 * lam * lse * p[j] * z_scale) * factor[j] for j in range(v)])
    if reduction == "none":
        loss = [x + y for x, y in zip(ce_losses, z_losses)]
    elif reduction == "sum":
        loss = [mpmath.fsum(ce_losses) + mpmath.fsum(z_losses)]
    else:
        loss = [mpmath.fsum(ce_losses) / denominator + mpmath.fsum(z_losses) / count]
    grad_hidden = [[mpmath.fsum(grads[i][j] * c[j][k] for j in range(v)) for k in range(d)] for i in range(n)]
    grad_classifier = [[mpmath.fsum(grads[i][j] * e[i][k] for i in range(n)) for k in range(d)] for j in range(v)]
    grad_bias = [mpmath.fsum(grads[i][j] for i in range(n)) for j in range(v)]
    return {"loss": loss, "grad_hidden": grad_hidden, "grad_classifier": grad_classifier, "grad_bias": grad_bias}


def assert_close_to_exact(found: np.ndarray, expected: list, scale: float) -> None:
    want = np.array(mpmath.matrix(expected).tolist() if isinstance(expected[0], list) else expected, dtype=np.float64)
    assert np.abs(np.asarray(found, dtype=np.float64).reshape(want.shape) - want).max() <= 1e-13 * scale


ORACLE_OPTIONS = OPTIONS[:7] + [
    {"weight": [0.5, 1.0, 2.0, 1.5, 0.7]},
    {"weight": [0.5, 1.0, 2.0, 1.5, 0.7], "label_smoothing": 0.2, "smoothing_style": "off-target", "z_loss": 0.01},
    {"softcap": 1.5, "z_loss": 0.1, "label_smoothing": 0.3, "reduction": "none"},
    {"weight": [0.5, 1.0, 2.0, 1.5, 0.7], "softcap": 3.0, "reduction": "sum", "label_smoothing": 0.1},
]


@pytest.mark.parametrize("options", ORACLE_OPTIONS, ids=str)
@pytest.mark.parametrize("rows_first", [True, False], ids=["rows", "classes"])
def test_reference_matches_mpmath_for_every_option(options: dict, rows_first: bool, monkeypatch) -> None:
    monkeypatch.setattr(blocked, "CLASSIFIER_BYTES", 1 << 30 if rows_first else 0)
    monkeypatch.setattr(blocked, "BLOCK_BYTES", 8 * 5 * 2)  # blocks of two rows, or of two classes
    case = make_case(np.float32, n=5, d=3, v=5, seed=3)
    case = dataclasses.replace(case, hidden=case.hidden.copy())
    grad_output = np.array([0.5, 2.0, 1.0, 3.0, 1.5]) if options.get("reduction") == "none" else 1.0
    result = linear_cross_entropy(
        case.hidden, case.classifier, case.labels, bias=case.bias, grad_output=grad_output, **options
    )
    want = exact(case, grad_output, **options)
    assert_close_to_exact(np.atleast_1d(result.loss), want["loss"], 10.0)
    assert_close_to_exact(result.grad_hidden, want["grad_hidden"], 10.0)
    assert_close_to_exact(result.grad_classifier, want["grad_classifier"], 10.0)
    assert_close_to_exact(result.grad_bias, want["grad_bias"], 10.0)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    d=st.integers(1, 5),
    v=st.integers(1, 7),
    seed=st.integers(0, 1000),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
)
def test_reference_agrees_with_the_loss_on_materialised_logits(n: int, d: int, v: int, seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    e = (rng.standard_normal((n, d)) * scale).astype(np.float32)
    c = rng.standard_normal((v, d)).astype(np.float32)
    labels = rng.integers(0, v, n)
    result = linear_cross_entropy(e, c, labels, reduction="sum")
    logits = e.astype(np.float64) @ c.astype(np.float64).T
    plain = softmax_cross_entropy(logits, labels, reduction="sum")
    size = 1 + float(np.abs(logits).max(initial=0))
    assert abs(result.loss - plain.loss) <= 1e-12 * size * n
    np.testing.assert_allclose(result.grad_hidden, plain.gradient @ c.astype(np.float64), atol=1e-12 * size)
    np.testing.assert_allclose(result.grad_classifier, plain.gradient.T @ e.astype(np.float64), atol=1e-12 * size)


def _check(case: Case, outputs: dict, profile: str = "pytorch") -> Report:
    return check_linear_cross_entropy(
        case.hidden, case.classifier, case.labels, bias=case.bias, **outputs, **case.options, profile=profile,
        grad_output=case.grad_output,
    )  # fmt: skip


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
def test_a_correct_kernel_passes_under_every_profile(dtype: object, options: dict) -> None:
    for seed in range(2):
        case = make_case(dtype, seed=seed, **options)
        outputs = kernel(case)
        for profile in PROFILES:
            report = _check(case, outputs, profile)
            assert report.passed, str(report)
            assert report.profile == profile and report.mode == "full" and report.mistake is None


MISTAKES = {
    "upstream_first": (mistakes.ROWS_SCALED_BY_FIRST_UPSTREAM, {"reduction": "none"}, {}),
    "ignored_counted": (mistakes.IGNORED_ROWS_COUNTED, {}, {}),
    "mean_of_chunk_means": (mistakes.MEAN_OF_CHUNK_MEANS, {}, {}),
    "z_loss_weighted": (mistakes.Z_LOSS_WEIGHTED_OR_DIVIDED, {"z_loss": 1e-2, "weight": list(np.linspace(0.5, 2, 40))}, {}),
    "softcap_factor_missing": (mistakes.SOFTCAP_FACTOR_MISSING, {"softcap": 2.0}, {}),
    "local_smoothing": (mistakes.SMOOTHING_OVER_LOCAL_VOCABULARY, {"label_smoothing": 0.3}, {}),
    "local_smoothing_off_target": (
        mistakes.SMOOTHING_OVER_LOCAL_VOCABULARY, {"label_smoothing": 0.3, "smoothing_style": "off-target"}, {}
    ),
}


@pytest.mark.parametrize("planted", list(MISTAKES))
@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
def test_each_planted_mistake_fails_and_is_named(dtype: object, planted: str) -> None:
    mistake, options, _ = MISTAKES[planted]
    v = 10 if planted.startswith("local") and dtype is BFLOAT16 else 40
    if "weight" in options:
        options = {**options, "weight": list(np.linspace(0.5, 2, v))}
    case = make_case(dtype, v=v, **options)
    if planted == "upstream_first":
        case = dataclasses.replace(case, grad_output=np.linspace(0.5, 2.0, len(case.labels)))
    report = _check(case, kernel(case, mistake=planted.removesuffix("_off_target")))
    assert not report.passed and report.verdict == "not_correct"
    assert report.mistake == mistake.name, str(report)
    assert report.fix == mistake.fix


@pytest.mark.parametrize("seed", [2, 3])
def test_the_label_rounded_before_the_subtraction_is_named_in_bfloat16(seed: int) -> None:
    # Every row confident (the label's logit leads by about 6: p_y near 0.998), where p_y rounded to
    # bfloat16 before p_y − 1 loses most of the label's entry.
    case = make_case(BFLOAT16, seed=seed, confident=tuple(range(12)))
    assert _check(case, kernel(case)).passed
    report = _check(case, kernel(case, mistake="label_rounded_early"))
    assert not report.passed and report.mistake == mistakes.LABEL_GRADIENT_ROUNDED_EARLY.name, str(report)


def test_the_classifier_gradient_summed_in_bfloat16_is_named() -> None:
    # 2,048 one-row chunks of hidden states sharing a component: each increment is below half an
    # ulp of the running sum, which stagnates.
    case = make_case(BFLOAT16, n=2048, offset=2.0)
    assert _check(case, kernel(case, chunk=1)).passed
    report = _check(case, kernel(case, mistake="classifier_in_input_type", chunk=1))
    assert not report.passed and report.mistake == mistakes.CLASSIFIER_GRADIENT_IN_INPUT_TYPE.name, str(report)
    assert [o.name for o in report.outputs if not o.passed] == ["grad_classifier"]


def test_a_float32_classifier_gradient_summed_in_float32_is_correct() -> None:
    case = make_case(np.float32, n=2048, offset=2.0)
    assert _check(case, kernel(case, mistake="classifier_in_input_type", chunk=1)).passed


@pytest.mark.parametrize("factor", [0.5, 1.01, -1.0, 0.0])
def test_a_scaled_float32_gradient_never_passes(factor: float) -> None:
    case = make_case(np.float32)
    outputs = kernel(case)
    for name in ("grad_hidden", "grad_classifier", "grad_bias"):
        wrong = {**outputs, name: outputs[name] * np.float32(factor)}
        report = _check(case, wrong)
        assert not report.passed
        assert [o.name for o in report.outputs if not o.passed] == [name]


def test_the_assertion_message_starts_with_the_verdict_and_the_report_is_json() -> None:
    case = make_case(np.float32, softcap=2.0)
    outputs = kernel(case, mistake="softcap_factor_missing")
    with pytest.raises(AssertionError) as failure:
        assert_linear_cross_entropy_close(case.hidden, case.classifier, case.labels, bias=case.bias, **outputs,
                                          softcap=2.0)  # fmt: skip
    first = str(failure.value).splitlines()[0]
    assert first.startswith("not correct: the soft cap's factor 1 − tanh²(z/c) missing from the gradient (")
    report = _check(case, outputs)
    found = json.loads(json.dumps(report.to_dict()))
    assert found["verdict"] == "not_correct" and found["profile"] == "pytorch" and found["mode"] == "full"
    assert found["grad_hidden"]["worst_ulp"] > found["grad_hidden"]["allowed_ulp"]
    assert first == report.summary == found["summary"]
    passed = assert_linear_cross_entropy_close(case.hidden, case.classifier, case.labels, bias=case.bias,
                                               **kernel(case), softcap=2.0)  # fmt: skip
    assert passed.passed and passed.summary.startswith("correct: ")


def test_a_non_finite_answer_fails() -> None:
    case = make_case(np.float32)
    outputs = kernel(case)
    outputs["grad_hidden"][0, 0] = np.nan
    report = _check(case, outputs)
    assert not report.passed and not report.grad_hidden.passed


E = np.ones((2, 3), np.float32)
C = np.ones((4, 3), np.float32)


@pytest.mark.parametrize(
    ("keywords", "named"),
    [
        ({"profile": "triton"}, "profile"),
        ({"mode": "fast"}, "mode"),
        ({"classifier": np.ones((4, 2), np.float32)}, "classifier"),
        ({"labels": [0, 1, 2]}, "labels"),
        ({"labels": [0, 4]}, "labels"),
        ({"labels": [0, -1]}, "labels"),
        ({"grad_hidden": np.ones((3, 2), np.float32)}, "grad_hidden"),
        ({"grad_classifier": np.ones((4, 3), np.int32)}, "grad_classifier"),
        ({"grad_bias": np.ones(4, np.float32)}, "grad_bias"),
        ({"loss": np.ones(2, np.float32)}, "loss"),
        ({"hidden": np.array([[1.0, np.nan, 0.0], [0, 0, 0]], np.float32)}, "hidden"),
        ({"hidden": np.ones(3, np.float32)}, "hidden"),
        ({"bias": np.ones(3, np.float32)}, "bias"),
        ({"weight": [1.0, 1.0]}, "weight"),
        ({"label_smoothing": 2.0}, "label_smoothing"),
        ({"reduction": "avg"}, "reduction"),
        ({"reduction": "none", "grad_output": np.ones(3)}, "grad_output"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_argument(keywords: dict, named: str) -> None:
    arguments = {"hidden": E, "classifier": C, "labels": [0, 1], **keywords}
    with pytest.raises(ValueError, match=named):
        check_linear_cross_entropy(arguments.pop("hidden"), arguments.pop("classifier"), arguments.pop("labels"),
                                   **arguments)  # fmt: skip


def test_torch_tensors_are_graded_as_their_own_type() -> None:
    torch = pytest.importorskip("torch")
    case = make_case(BFLOAT16)
    outputs = kernel(case)
    as_tensor = {name: torch.tensor(np.asarray(value, np.float32)) for name, value in outputs.items()}
    as_tensor = {n: t.to(torch.bfloat16) if n != "loss" else t for n, t in as_tensor.items()}
    hidden = torch.tensor(case.hidden.astype(np.float32)).to(torch.bfloat16).requires_grad_()
    classifier = torch.tensor(case.classifier.astype(np.float32)).to(torch.bfloat16)
    bias = torch.tensor(case.bias.astype(np.float32)).to(torch.bfloat16)
    report = check_linear_cross_entropy(hidden, classifier, torch.tensor(case.labels), bias=bias, **as_tensor)
    assert report.passed and report.grad_hidden.dtype == "bfloat16"


@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "softcap": 2.0, "z_loss": 1e-3}], ids=str)
def test_blocks_of_classes_grade_as_blocks_of_rows(dtype: object, options: dict, monkeypatch) -> None:
    # Where ∂L/∂C would not fit whole, the reference and the baseline take blocks of classes.
    case = make_case(dtype, **options)
    outputs = kernel(case)
    by_rows = _check(case, outputs)
    monkeypatch.setattr(blocked, "CLASSIFIER_BYTES", 0)
    monkeypatch.setattr(blocked, "BLOCK_BYTES", 8 * 16 * 7)
    by_classes = _check(case, outputs)
    assert by_rows.passed and by_classes.passed, str(by_classes)
    wrong = _check(case, {**outputs, "grad_classifier": outputs["grad_classifier"] * 2})
    assert not wrong.passed and [o.name for o in wrong.outputs if not o.passed] == ["grad_classifier"]
    for mine, theirs in zip(by_rows.outputs, by_classes.outputs):
        assert theirs.worst_ulp == pytest.approx(mine.worst_ulp, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize(
    "edit",
    [
        lambda case: dataclasses.replace(case, labels=np.full(len(case.labels), -100)),  # 'mean' of nothing: NaN
        lambda case: dataclasses.replace(case, hidden=case.hidden[:0], labels=case.labels[:0]),
        lambda case: dataclasses.replace(case, hidden=(case.hidden.astype(np.float32) * 30).astype(case.hidden.dtype)),
        lambda case: make_case(case.hidden.dtype, v=1),
        lambda case: make_case(case.hidden.dtype, label_smoothing=1.0),
        lambda case: make_case(case.hidden.dtype, softcap=0.1),
        lambda case: make_case(case.hidden.dtype, z_loss=10.0),
        lambda case: make_case(case.hidden.dtype, reduction="none", z_loss=1e-2, label_smoothing=0.5),
    ],
    ids=["all-ignored", "no-rows", "huge-logits", "one-class", "smoothing-1", "cap-0.1", "z-loss-10", "none-all"],
)
@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16, np.float16], ids=["float32", "bfloat16", "float16"])
def test_a_correct_kernel_passes_at_the_edges(dtype: object, edit) -> None:
    case = edit(make_case(dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the numpy kernel's own overflow to inf in float16
        outputs = kernel(case)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the check's: none
        assert _check(case, outputs).passed


@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
def test_zeros_or_a_negated_gradient_never_pass(dtype: object) -> None:
    case = make_case(dtype)
    outputs = kernel(case)
    for name in ("grad_hidden", "grad_classifier", "grad_bias"):
        for wrong in (np.zeros_like(outputs[name]), -outputs[name]):
            assert not _check(case, {name: wrong}).passed
    assert not _check(case, {"loss": np.float32(0.0)}).passed


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 40),
    d=st.integers(1, 24),
    v=st.integers(2, 60),
    seed=st.integers(0, 10_000),
    smoothing=st.sampled_from([0.0, 0.1]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    dtype=st.sampled_from([np.float32, BFLOAT16, np.float16]),
    offset=st.sampled_from([0.0, 2.0]),
    chunk=st.integers(1, 8),
)
def test_a_correct_kernel_passes_on_any_shape(
    n: int, d: int, v: int, seed: int, smoothing: float, reduction: str, dtype: object, offset: float, chunk: int
) -> None:
    case = make_case(dtype, n=n, d=d, v=v, seed=seed, offset=offset, label_smoothing=smoothing, reduction=reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the numpy kernel's own overflow in float16
        outputs = kernel(case, chunk=chunk)
    report = _check(case, outputs)
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
def test_skipped_small_gradient_entries_pass_under_cce_only(dtype: object) -> None:
    # Cut cross-entropy leaves out the gradient where p < ε/32 of the type: its profile allows that.
    case = make_case(dtype, v=400, confident=tuple(range(12)))
    outputs = kernel(case, mistake="skips_small")
    assert _check(case, outputs, "cce").passed
    assert not _check(case, outputs, "pytorch").passed


def test_hidden_states_with_batch_and_sequence_axes_are_rows() -> None:
    case = make_case(np.float32, n=12)
    outputs = kernel(case)
    shaped = check_linear_cross_entropy(
        case.hidden.reshape(3, 4, -1), case.classifier, case.labels.reshape(3, 4), bias=case.bias,
        loss=outputs["loss"], grad_hidden=outputs["grad_hidden"].reshape(3, 4, -1),
        grad_classifier=outputs["grad_classifier"],
    )  # fmt: skip
    assert shaped.passed
    with pytest.raises(ValueError, match="grad_hidden"):
        check_linear_cross_entropy(case.hidden.reshape(3, 4, -1), case.classifier, case.labels.reshape(3, 4),
                                   grad_hidden=outputs["grad_hidden"])  # fmt: skip
    none = make_case(np.float32, n=12, reduction="none")
    none = dataclasses.replace(none, grad_output=np.linspace(0.5, 2.0, 12))
    per_row = kernel(none)
    report = check_linear_cross_entropy(
        none.hidden.reshape(3, 4, -1), none.classifier, none.labels.reshape(3, 4), bias=none.bias,
        loss=per_row["loss"].reshape(3, 4), grad_hidden=per_row["grad_hidden"].reshape(3, 4, -1),
        reduction="none", grad_output=none.grad_output.reshape(3, 4),
    )  # fmt: skip
    assert report.passed, str(report)


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "softcap": 2.0, "z_loss": 1e-3, "reduction": "none"}])
def test_when_neither_gradient_fits_each_is_finished_in_blocks(options: dict, monkeypatch) -> None:
    case = make_case(np.float32, n=9, d=3, v=7, seed=2, **options)
    whole = linear_cross_entropy(case.hidden, case.classifier, case.labels, bias=case.bias, **options)
    monkeypatch.setattr(blocked, "CLASSIFIER_BYTES", 0)
    monkeypatch.setattr(blocked, "BLOCK_BYTES", 8 * 3 * 2)  # two classes, two rows at a time
    tiled = linear_cross_entropy(case.hidden, case.classifier, case.labels, bias=case.bias, **options)
    for name in ("loss", "grad_hidden", "grad_classifier", "grad_bias"):
        np.testing.assert_allclose(getattr(tiled, name), getattr(whole, name), rtol=1e-13, atol=1e-15)
    outputs = kernel(case)
    assert _check(case, outputs).passed
    assert not _check(case, {**outputs, "grad_hidden": outputs["grad_hidden"] * 2}).passed


def test_a_python_float_loss_is_graded_as_the_kernels_float32() -> None:
    case = make_case(BFLOAT16)
    loss = kernel(case)["loss"]
    report = _check(case, {"loss": float(loss)})
    assert report.passed and report.loss.dtype == "float32"
    assert _check(case, {"loss": np.float32(loss)}).loss.dtype == "float32"
    with pytest.raises(ValueError, match="^loss is float64 but hidden and classifier are bfloat16"):
        _check(case, {"loss": np.float64(loss)})


def _summed_in_chunks(e: np.ndarray, c: np.ndarray, b: np.ndarray, rounded: str | None, chunks: int = 64) -> dict:
    """A kernel with float32 accumulation ('sum'), but for ``rounded``: that output summed over
    chunks (of rows for ∂L/∂C and ∂L/∂b, of classes for ∂L/∂E) rounded to the input's type after each."""
    given, f32 = e.dtype, np.float32
    e32, c32 = e.astype(f32), c.astype(f32)
    z = e32 @ c32.T + b.astype(f32)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = p.copy()
    g[:, 0] -= 1  # every label is class 0
    ones = np.ones((len(e), 1), f32)
    sums = {"grad_hidden": (g, c32), "grad_classifier": (g.T, e32), "grad_bias": (g.T, ones)}
    outputs = {}
    for name, (left, right) in sums.items():
        if name != rounded:
            outputs[name] = (left @ right).astype(given)
            continue
        total = np.zeros((len(left), right.shape[1]), given)
        for part in np.array_split(np.arange(left.shape[1]), chunks):
            total = (total.astype(f32) + left[:, part] @ right[part]).astype(given)
        outputs[name] = total
    outputs["grad_bias"] = outputs["grad_bias"][:, 0]
    return outputs


@pytest.mark.parametrize("rounded", ["grad_classifier", "grad_hidden", "grad_bias"])
@pytest.mark.parametrize("dtype", [BFLOAT16, np.float16])
def test_a_gradient_summed_over_chunks_in_a_half_type_fails(rounded: str, dtype: object) -> None:
    # Sums of one sign (every label 0, hidden states near 1, classifier rows near 1 but the label's
    # near -1) over 4,096 rows or classes: rounded to the half type after each of 512 chunks, each sum is a few ulps off at most entries, where float32 accumulation
    # rounded once is within an ulp. The margin of 8 ulps that a float32 answer is allowed beyond 4x
    # the baseline's error let them pass.
    rng = np.random.default_rng(3)
    long = 4096
    n, v = (long, 10) if rounded != "grad_hidden" else (10, long)
    c = (1 + 0.1 * rng.standard_normal((v, 8))) * np.where(np.arange(v) == 0, -1, 1)[:, None]
    c = c.astype(dtype)
    e = (1 + 0.1 * rng.standard_normal((n, 8))).astype(dtype)
    b = (0.1 * rng.standard_normal(v)).astype(dtype)
    y = np.zeros(n, dtype=np.int64)
    right = check_linear_cross_entropy(e, c, y, bias=b, reduction="sum", **_summed_in_chunks(e, c, b, None))
    assert right.passed, str(right)
    wrong = _summed_in_chunks(e, c, b, rounded, chunks=512)
    report = check_linear_cross_entropy(e, c, y, bias=b, reduction="sum", **wrong)
    assert [o.name for o in report.outputs if not o.passed] == [rounded], str(report)
    if rounded == "grad_classifier":
        assert report.mistake == mistakes.CLASSIFIER_GRADIENT_IN_INPUT_TYPE.name, str(report)


def test_bfloat16_classifier_gradient_summed_over_64_chunks_in_bfloat16_is_caught_and_named() -> None:
    # 4,096 rows with one sign of ∂L/∂C, summed in bfloat16 over 64 chunks: 7.5 ulp worst (rms 3.8),
    # where float32 accumulation rounded once errs 0.5 ulp (rms 0.27).
    rng = np.random.default_rng(3)
    c = rng.standard_normal((10, 8)).astype(BFLOAT16)
    e = (1 + 0.1 * rng.standard_normal((4096, 8))).astype(BFLOAT16)
    y = np.zeros(4096, dtype=np.int64)
    zero_bias = np.zeros(10, BFLOAT16)
    for rounded in (None, "grad_classifier"):
        outputs = _summed_in_chunks(e, c, zero_bias, rounded, chunks=64)
        del outputs["grad_bias"]
        report = check_linear_cross_entropy(e, c, y, reduction="sum", **outputs)
        assert report.passed is (rounded is None), str(report)
    assert report.mistake == mistakes.CLASSIFIER_GRADIENT_IN_INPUT_TYPE.name, str(report)


def test_a_check_given_no_output_at_all_is_refused_not_passed() -> None:
    with pytest.raises(ValueError, match=r"^nothing to check: .*give the kernel's results: loss=, grad_hidden="):
        check_linear_cross_entropy(E, C, [0, 1])
    with pytest.raises(ValueError, match="^nothing to check"):
        check_linear_cross_entropy(E, C, [0, 1], loss=None, grad_hidden=None, grad_classifier=None)


@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16, np.float64])
@pytest.mark.parametrize("name", ["loss", "grad_hidden", "grad_classifier", "grad_bias"])
def test_an_output_of_a_type_no_kernel_returns_is_refused_naming_it(dtype: object, name: str) -> None:
    # A float32 result copied to float64 was graded in float64's ulps: "correct … within 9.19e+08 ulp".
    # A kernel returns its inputs' type, or float32 for a half type (a float32 loss, float32 buffers).
    case = make_case(dtype)
    right = kernel(case)
    allowed = {np.float32: ["float32"], BFLOAT16: ["bfloat16", "float32"], np.float64: ["float64"]}[dtype]
    for other in [np.float16, BFLOAT16, np.float32, np.float64]:
        value = np.asarray(right[name], np.float32).astype(dtype if dtype == np.float64 else np.float32).astype(other)
        if np.dtype(other).name in allowed:  # (the numpy kernel computes in float32: not right for float64 inputs)
            assert dtype == np.float64 or _check(case, {name: value}).passed, np.dtype(other).name
            continue
        with pytest.raises(ValueError, match=f"^{name} is {np.dtype(other).name} but hidden and classifier are"):
            _check(case, {name: value})
    if name != "loss":
        with pytest.raises(ValueError, match=f"^{name} is a list, which has no float type"):
            _check(case, {name: np.asarray(right[name], np.float64).tolist()})


@pytest.mark.parametrize(
    ("hidden_shape", "labels_shape", "want"),
    [((2, 3, 4), (3, 2), "(2, 3)"), ((2, 3, 4), (6, 1), "(2, 3)"), ((6, 4), (3, 2), "(6,)")],
)
def test_labels_of_the_wrong_shape_are_named_with_both_shapes(hidden_shape: tuple, labels_shape: tuple, want: str) -> None:
    # hidden (2, 3, 4) with labels (3, 2) read "6 labels for 6 rows (labels)": a refusal that reads as agreement.
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal(hidden_shape).astype(np.float32)
    classifier = rng.standard_normal((5, 4)).astype(np.float32)
    labels = rng.integers(0, 5, labels_shape)
    with pytest.raises(ValueError, match=f"^labels have shape {re.escape(str(labels_shape))} but hidden has ") as refused:
        check_linear_cross_entropy(hidden, classifier, labels, loss=np.float32(1.0))
    message = str(refused.value)
    assert str(hidden_shape) in message and f"shape {want}" in message and "labels for" not in message


@pytest.mark.parametrize("sharded", [False, True], ids=["whole", "shards"])
def test_boolean_labels_are_refused_as_pytorch_refuses_them_not_graded(sharded: bool) -> None:
    rng = np.random.default_rng(2)
    hidden = rng.standard_normal((6, 8)).astype(np.float32)
    classifier = rng.standard_normal((10, 8)).astype(np.float32)
    given = [classifier[:4], classifier[4:]] if sharded else classifier
    with pytest.raises(ValueError, match="^labels are booleans") as refused:
        check_linear_cross_entropy(hidden, given, np.ones(6, dtype=bool), loss=np.float32(1.0))
    assert "(labels)" in str(refused.value)
    with pytest.raises(ValueError, match="^labels are booleans"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([True, False]))


def test_every_report_says_its_verdict_in_one_line_by_one_name() -> None:
    from sce.testing import check_cross_entropy

    z = np.array([[2.0, 3.0, 4.0]], np.float32)
    logits_report = check_cross_entropy(z, np.array([1]), np.zeros_like(z))
    case = make_case(np.float32)
    fused_report = _check(case, kernel(case))
    for report in (logits_report, fused_report):
        assert isinstance(report.summary, str) and "\n" not in report.summary
        assert report.to_dict()["summary"] == report.summary
        assert not hasattr(report, "headline")


@pytest.mark.parametrize("regime", ["rows", "classes", "classes-then-rows"])
@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("options", [{}, {"z_loss": 1e-2, "softcap": 2.0}, {"reduction": "none"}], ids=["plain", "cap-z", "none"])
def test_a_baseline_formed_in_steps_grades_as_the_whole_one(regime: str, dtype: object, options: dict, monkeypatch) -> None:
    # At sizes where the baseline's outputs would not fit beside the inputs, each block of the
    # baseline is formed when the reference hands over the same block: the verdicts are those of the
    # whole baseline, whichever order the reference takes the blocks in.
    stepped = importlib.import_module("sce.grading.linear.stepped_baseline")
    case = make_case(dtype, **options)
    right = kernel(case)
    wrong = {**right, "grad_classifier": right["grad_classifier"] * 2, "grad_bias": right["grad_bias"] * 0}
    if regime != "rows":
        monkeypatch.setattr(blocked, "CLASSIFIER_BYTES", 0 if regime == "classes-then-rows" else 16 * 40 * 7)
        monkeypatch.setattr(blocked, "BLOCK_BYTES", 8 * 16 * 7)
    whole = [_check(case, outputs) for outputs in (right, wrong)]
    monkeypatch.setattr(stepped, "BASELINE_BYTES", 0)
    steps = [_check(case, outputs) for outputs in (right, wrong)]
    assert [r.passed for r in steps] == [r.passed for r in whole] == [True, False]
    assert steps[1].mistake == whole[1].mistake
    # Where the whole baseline takes rows and the stepped one classes (with the reference), the float32
    # sums over blocks are taken in another order: a float32 baseline's few worst errors then differ by
    # that order's rounding (up to 2x here), as two kernels' do; the answer's own errors are the same.
    same_order = regime == "rows" or dtype != np.float32
    for mine, theirs in zip(whole[0].outputs + whole[1].outputs, steps[0].outputs + steps[1].outputs):
        if same_order:
            assert theirs.baseline_ulp == pytest.approx(mine.baseline_ulp, rel=0.05, abs=0.05), mine.name
        assert theirs.worst_ulp == pytest.approx(mine.worst_ulp, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("rows", "classes"), [(1, 1), (5, 3), (9, 13), (16, 64)])
def test_the_grouped_size_bounds_the_operands_size_from_above(rows: int, classes: int) -> None:
    # Σ_g (Σ_{v in g} |G_iv|)·max_{v in g} |C_vd| ≥ Σ_v |G_iv|·|C_vd|, ragged last group included.
    rng = np.random.default_rng(rows * 100 + classes)
    size = np.abs(rng.standard_normal((rows, classes))).astype(np.float32)
    c = (rng.standard_normal((classes, 7)) * 10.0 ** rng.uniform(-3, 3, (classes, 1))).astype(np.float32)
    exact = size.astype(np.float64) @ np.abs(c.astype(np.float64))
    grouped = blocked.group_sums(size, 1) @ blocked.group_maxima(c)
    assert (grouped >= exact * (1 - 1e-6)).all()


def test_the_kernels_page_names_only_options_check_has(sce) -> None:  # noqa: ANN001
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "kernels.md").read_text(encoding="utf-8")
    paragraph = page[page.index("The options are the loss's") :][:400]
    named = set(re.findall(r"`(--[a-z-]+)`", paragraph))
    assert {"--reduction", "--ignore-index", "--smoothing", "--z-loss"} <= named
    declared = set(re.findall(r"--[a-z][a-z-]+", sce("check", "--help", env={"COLUMNS": "200"}).stdout))
    assert named <= declared, sorted(named - declared)
