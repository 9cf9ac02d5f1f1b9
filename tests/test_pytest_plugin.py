"""The pytest plugin: sce_case's items, its inputs, the sce_slow marker, and the check it hands a test."""

from __future__ import annotations

import numpy as np
import pytest

from sce.grading.linear.cases import IGNORE_INDEX, LARGE_CLASSES, LARGE_ROWS, case_specs

pytest_plugins = ["pytester"]

CASE_IDS = [
    f"{name}-{dtype}"
    for dtype in ("float32", "bfloat16")
    for name in (
        "confident-rows", "ignored-runs", "padding-only-rows", "extreme-logits", "long-sums", "per-row-upstream"
    )
]

USES_THE_FIXTURE = """
def test_kernel(sce_case):
    assert sce_case.hidden.shape[1] == sce_case.classifier.shape[1]
"""


def test_fixtures_lists_sce_case(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures")
    assert any(line.startswith("sce_case -- ") for line in result.outlines)
    assert result.ret == 0


def test_one_item_per_case_and_type_the_large_one_deselected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_kernel=USES_THE_FIXTURE)
    result = pytester.runpytest("--collect-only", "-q")
    collected = [line for line in result.outlines if "::test_kernel[" in line]
    assert collected == [f"test_kernel.py::test_kernel[{case}]" for case in CASE_IDS]
    assert "12/13 tests collected (1 deselected)" in result.stdout.str()


@pytest.mark.parametrize("asked", [["--sce-slow"], ["-m", "sce_slow"]])
def test_the_large_case_runs_when_asked(pytester: pytest.Pytester, asked: list[str]) -> None:
    pytester.makepyfile(test_kernel=USES_THE_FIXTURE)
    result = pytester.runpytest("--collect-only", "-q", *asked)
    assert "test_kernel.py::test_kernel[past-2^31-logits-float32]" in result.outlines


def test_sce_slow_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_kernel=USES_THE_FIXTURE)
    result = pytester.runpytest("--markers")
    assert any(line.startswith("@pytest.mark.sce_slow:") for line in result.outlines)
    # --strict-markers refuses an unregistered marker: the plugin's must pass it.
    assert pytester.runpytest("--strict-markers", "--collect-only", "-q", "--sce-slow").ret == 0


def test_a_test_without_sce_case_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_fixture_hands_the_inputs_in_their_type(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import numpy as np

        def test_inputs(sce_case):
            n, d = sce_case.hidden.shape
            v = sce_case.classifier.shape[0]
            assert sce_case.classifier.shape == (v, d)
            assert sce_case.labels.shape == (n,) and sce_case.labels.dtype == np.int64
            assert str(sce_case.hidden.dtype) == str(sce_case.classifier.dtype) == sce_case.dtype
            assert sce_case.bias is None or (sce_case.bias.shape == (v,) and str(sce_case.bias.dtype) == sce_case.dtype)
            per_row = sce_case.name == "per-row upstream"
            assert sce_case.options == {"reduction": "none" if per_row else "mean", "ignore_index": -100}
            if per_row:
                assert sce_case.grad_output.shape == (n,) and len(set(sce_case.grad_output.tolist())) == 4
            else:
                assert sce_case.grad_output == 1.0
        """
    )
    # In a child process: ml_dtypes registers its types with numpy once per process.
    pytester.runpytest_subprocess().assert_outcomes(passed=12)


def built(case_id: str):  # type: ignore[no-untyped-def]
    return next(spec for spec in case_specs() if spec.id == case_id).build()


def float64_logits(case_id: str) -> tuple[np.ndarray, np.ndarray]:
    case = built(case_id)
    z = case.hidden.astype(np.float64) @ case.classifier.astype(np.float64).T
    if case.bias is not None:
        z += case.bias.astype(np.float64)
    return z, case.labels


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_confident_rows_are_confident(dtype: str) -> None:
    z, labels = float64_logits(f"confident-rows-{dtype}")
    rows = np.arange(len(labels))
    others = np.where(np.eye(z.shape[1], dtype=bool)[labels], -np.inf, z)
    # e^-(margin) summed over the other classes is 1 − p at the label: from ~1e-2 down to ~1e-5, where
    # bfloat16 (8 bits) rounds p to 1 and a float32 p − 1 still keeps a few digits.
    gap = z[rows, labels] - others.max(axis=1)
    assert gap.min() > 7
    one_minus_p = np.exp(others - z[rows, labels][:, None]).sum(axis=1)
    assert one_minus_p.max() < 1e-2 and one_minus_p.min() > 1e-6
    assert one_minus_p.max() > 2**-9 > 1e-4 > one_minus_p.min()  # both sides of bfloat16's half ulp below 1


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_confident_rows_catch_the_label_probability_rounded_before_the_subtraction(dtype: str) -> None:
    """A kernel that rounds p to bfloat16 before p − 1 (a bug fused kernels shipped with) fails the case in
    either type, where the same kernel without the rounding passes."""
    import ml_dtypes

    from sce.pytest_plugin import SceCase

    case = SceCase(built(f"confident-rows-{dtype}"))
    e, c = case.hidden.astype(np.float32), case.classifier.astype(np.float32)
    z = e @ c.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(case.labels))

    def gradients(p: np.ndarray) -> dict[str, np.ndarray]:
        g = p.copy()
        g[rows, case.labels] -= 1
        g /= np.float32(len(rows))
        return {"grad_hidden": (g @ c).astype(case.hidden.dtype), "grad_classifier": (g.T @ e).astype(case.hidden.dtype)}

    assert case.check(**gradients(p)).passed
    assert not case.check(**gradients(p.astype(ml_dtypes.bfloat16).astype(np.float32))).passed


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_ignored_runs_and_padding_rows(dtype: str) -> None:
    runs = built(f"ignored-runs-{dtype}")
    ignored = runs.labels == IGNORE_INDEX
    assert ignored[:3].all() and ignored[9:15].all() and ignored[-4:].all() and not ignored.all()
    padded = built(f"padding-only-rows-{dtype}")
    zero_rows = ~padded.hidden.astype(np.float64).any(axis=1)
    assert zero_rows.sum() == 9 and (padded.labels[zero_rows] == IGNORE_INDEX).all()
    assert (padded.labels[~zero_rows] >= 0).all() and padded.bias is not None


@pytest.mark.parametrize(("dtype", "at_least"), [("float32", 100), ("bfloat16", 60)])
def test_extreme_logits_overflow_exp_unshifted(dtype: str, at_least: float) -> None:
    z, _ = float64_logits(f"extreme-logits-{dtype}")
    assert np.abs(z).max() > at_least
    # float32's exp overflows past 88.7: a kernel without the max shift gives inf here.
    assert np.ptp(z, axis=1).max() > 89


def test_the_large_case_passes_two_to_the_31_logits_and_is_built_only_when_asked() -> None:
    spec = next(spec for spec in case_specs() if spec.slow)
    assert (spec.dtype, spec.mode) == ("float32", "quick")
    assert LARGE_ROWS * LARGE_CLASSES > 2**31 >= (LARGE_ROWS - 1) * LARGE_CLASSES


def test_a_fixture_or_a_class_may_ask_for_sce_case(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def kernel_inputs(sce_case):
            return sce_case.hidden, sce_case.classifier

        def test_through_a_fixture(kernel_inputs):
            assert kernel_inputs[0].shape[1] == kernel_inputs[1].shape[1]

        class TestKernel:
            def test_in_a_class(self, sce_case):
                assert len(sce_case.labels) == len(sce_case.hidden)
        """
    )
    result = pytester.runpytest("--collect-only", "-q")
    collected = [line for line in result.outlines if "::" in line]
    assert len(collected) == 24
    assert "24/26 tests collected (2 deselected)" in result.stdout.str()


def test_the_plugin_can_be_switched_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_kernel=USES_THE_FIXTURE)
    result = pytester.runpytest("-p", "no:sce")
    assert result.ret != 0
    assert "fixture 'sce_case' not found" in result.stdout.str()


def test_a_check_of_nothing_is_refused_not_passed() -> None:
    from sce.pytest_plugin import SceCase

    case = SceCase(next(spec for spec in case_specs() if spec.id == "confident-rows-float32").build())
    for method in (case.check, case.assert_close):
        with pytest.raises(ValueError, match="give the kernel's results: loss=, grad_hidden="):
            method()
    assert repr(case) == "<sce_case 'confident rows': 16 × 32 hidden, 24 classes, float32>"


def float32_kernel(  # type: ignore[no-untyped-def]
    case, *, shift: bool = True, zero_ignored: bool = True, first_upstream: bool = False, chunks: int = 0
) -> dict:
    """A fused kernel written with numpy (float32 sums, outputs rounded once to the inputs' type), with
    four known slips to switch on: no max shift, ignored rows' gradients left in, every row scaled by
    the first row's upstream gradient, ∂L/∂C summed over ``chunks`` chunks of rows in the inputs' type."""
    e, c = case.hidden.astype(np.float32), case.classifier.astype(np.float32)
    z = e @ c.T + (0 if case.bias is None else case.bias.astype(np.float32))
    with np.errstate(all="ignore"):
        p = np.exp(z - z.max(axis=1, keepdims=True) if shift else z)
        p /= p.sum(axis=1, keepdims=True)
    counted = case.labels != IGNORE_INDEX
    rows = np.arange(len(case.labels))
    g = p.copy()
    g[rows[counted], case.labels[counted]] -= 1
    if zero_ignored:
        g[~counted] = 0
    if case.options["reduction"] == "mean":
        g /= np.float32(counted.sum())
    else:
        upstream = np.asarray(case.grad_output, np.float32)
        g *= upstream[0] if first_upstream else upstream[:, None]
    kind = case.hidden.dtype
    found = {"grad_hidden": (g @ c).astype(kind), "grad_classifier": (g.T @ e).astype(kind)}
    if chunks:
        total = np.zeros(c.shape, kind)
        for part in np.array_split(rows, chunks):
            total = (total.astype(np.float32) + g[part].T @ e[part]).astype(kind)
        found["grad_classifier"] = total
    if case.bias is not None:
        found["grad_bias"] = g.sum(axis=0).astype(kind)
    return found


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_padding_rows_catch_a_gradient_left_in_ignored_rows(dtype: str) -> None:
    from sce.pytest_plugin import SceCase

    case = SceCase(built(f"padding-only-rows-{dtype}"))
    assert case.check(**float32_kernel(case)).passed
    assert not case.check(**float32_kernel(case, zero_ignored=False)).passed


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_extreme_logits_catch_a_softmax_without_the_max_shift(dtype: str) -> None:
    from sce.pytest_plugin import SceCase

    case = SceCase(built(f"extreme-logits-{dtype}"))
    assert case.check(**float32_kernel(case)).passed
    assert not case.check(**float32_kernel(case, shift=False)).passed


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_per_row_upstream_catches_every_row_scaled_by_the_first(dtype: str) -> None:
    from sce.pytest_plugin import SceCase

    case = SceCase(built(f"per-row-upstream-{dtype}"))
    assert case.check(**float32_kernel(case)).passed
    report = case.check(**float32_kernel(case, first_upstream=True))
    assert not report.passed
    assert report.mistake == "every row's gradient scaled by the first row's upstream gradient"


def test_some_case_catches_the_classifier_gradient_summed_over_chunks_in_bfloat16() -> None:
    from sce.pytest_plugin import SceCase

    caught = []
    for spec in case_specs():
        if spec.slow:
            continue
        case = SceCase(spec.build())
        assert case.check(**float32_kernel(case)).passed, spec.id
        report = case.check(**float32_kernel(case, chunks=64))
        caught += [spec.id] if not report.passed else []
        assert report.passed or report.mistake == "the classifier's gradient accumulated over chunks in the input's type"
    assert caught == ["long-sums-bfloat16"]


CLOBBERING_KERNEL = """
import numpy as np


def test_kernel(sce_case):
    sce_case.hidden[...] = 0  # works in place on its input (torch.from_numpy shares the buffer)
    sce_case.assert_close(grad_classifier=np.zeros_like(sce_case.classifier))
"""


def test_a_kernel_that_overwrites_its_inputs_is_graded_against_the_cases_own(pytester: pytest.Pytester) -> None:
    # A kernel that zeroes its input buffer and returns ∂L/∂C = 0: graded against the inputs as it left them
    # (hidden all 0, so ∂L/∂C = Gᵀ·0 = 0) it would pass; against the case's own, ∂L/∂C is far from 0.
    pytester.makepyfile(test_kernel=CLOBBERING_KERNEL)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-k", "confident-rows and float32")
    result.assert_outcomes(failed=1)


@pytest.mark.parametrize("case_id", ["padding-only-rows-float32", "per-row-upstream-float32"])
def test_a_right_kernel_that_scribbles_on_every_input_still_passes(case_id: str) -> None:
    from sce.pytest_plugin import SceCase

    case = SceCase(built(case_id))
    right = float32_kernel(case)
    scribbled = [case.hidden, case.classifier, case.labels, case.bias, case.grad_output]
    for array in scribbled:
        if isinstance(array, np.ndarray):
            array[...] = 0
    case.options["reduction"] = "sum"
    assert case.check(**right).passed
    zeros = {"grad_hidden": np.zeros_like(case.hidden), "grad_classifier": np.zeros_like(case.classifier)}
    assert not case.check(**zeros).passed


def test_the_inputs_graded_against_are_read_only_and_apart_from_those_handed_out() -> None:
    from sce.pytest_plugin import SceCase

    case = SceCase(built("padding-only-rows-float32"))
    for name in ("hidden", "classifier", "labels", "bias"):
        kept, handed = getattr(case.case, name), getattr(case, name)
        assert not kept.flags.writeable and handed.flags.writeable
        assert not np.shares_memory(kept, handed)
