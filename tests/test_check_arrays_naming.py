"""Naming a dump's mistake over many blocks: the name is the one a single block gives, whether
the answer looks wrong from its first block or only from a later one, and a name is given only
where it explains every entry, those graded before the mistake was suspected included.

The mistaken answers are made here in plain numpy from the textbook formulas (p − y, over the
counted rows), not from sce's what-ifs.
"""

from __future__ import annotations

import numpy as np
import pytest

from sce.errors import worded
from sce.grading import catalogue
from sce.grading.dump import check, mistake_pass
from sce.grading.dump.check import check_dump
from sce.io.arrays import ArrayDump
from sce.options import LossOptions

ROWS, CLASSES = 48, 7


def textbook(mistake: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The mean's gradient, or the mistake's, in float64 numpy."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    at = (y + 1) % CLASSES if mistake == "label + 1" else y
    gradient = p - np.eye(CLASSES)[at]
    if mistake == "sign flipped":
        gradient = -gradient
    return gradient if mistake == "sum not mean" else gradient / len(y)


NAMES = {
    "sign flipped": catalogue.SIGN_FLIPPED,
    "label + 1": catalogue.LABEL_PLUS_ONE,
    "sum not mean": catalogue.SUM_NOT_MEAN,
}


def inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(ROWS, CLASSES)) * 2
    y = rng.integers(0, CLASSES, ROWS)
    return z, y


def named(z: np.ndarray, y: np.ndarray, gradient: np.ndarray, block_entries: int, monkeypatch) -> list[str]:
    monkeypatch.setattr(check, "BLOCK_ENTRIES", block_entries)
    monkeypatch.setattr(mistake_pass, "SCREEN_ENTRIES", 1)  # the candidates tried on two rows first, not all
    found = check_dump(ArrayDump(z, y, None, gradient, None, {}), LossOptions(), "float64")
    assert not found.correct
    return [worded(name) for name in found.mistakes]


@pytest.mark.parametrize("mistake", sorted(NAMES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_mistake_is_named_alike_in_one_block_and_in_many(mistake, seed, monkeypatch):
    z, y = inputs(seed)
    gradient = textbook(mistake, z, y)
    whole = named(z, y, gradient, 1 << 20, monkeypatch)
    assert whole[:1] and whole[0].startswith(NAMES[mistake].name)
    for rows_per_block in (1, 3, 8):
        assert named(z, y, gradient, rows_per_block * CLASSES, monkeypatch) == whole


@pytest.mark.parametrize("first_wrong_row", [0, 20, 47])
def test_a_mistake_made_only_from_a_later_row_on_is_not_named_for_every_row(first_wrong_row, monkeypatch):
    """Right up to a row, sign flipped from there: no mistake explains every entry."""
    z, y = inputs(3)
    gradient = textbook("", z, y)
    gradient[first_wrong_row:] *= -1
    expected = [] if first_wrong_row else [catalogue.SIGN_FLIPPED.name]
    for rows_per_block in (2, 8, ROWS):
        names = named(z, y, gradient, rows_per_block * CLASSES, monkeypatch)
        assert [name.split(catalogue.FIX_SEPARATOR)[0] for name in names] == expected


@pytest.mark.parametrize("spoiled_row", [0, 1, 5, 30, 47])
def test_one_entry_wrong_another_way_anywhere_leaves_the_mistake_unnamed(spoiled_row, monkeypatch):
    """The label + 1 everywhere, and one more entry off by 0.37: in a block graded before the
    mistake was suspected, in the rows it is first tried on, or in a block after."""
    z, y = inputs(4)
    gradient = textbook("label + 1", z, y)
    assert named(z, y, gradient, 4 * CLASSES, monkeypatch)[0].startswith(catalogue.LABEL_PLUS_ONE.name)
    gradient[spoiled_row, 2] += 0.37
    for rows_per_block in (1, 4, ROWS):
        assert named(z, y, gradient, rows_per_block * CLASSES, monkeypatch) == []


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_other_labels_changed_in_place_are_the_exact_computation_again_to_float64s_rounding(reduction, temperature):
    """For answers graded in a narrower type, the what-ifs of other labels change two entries per row
    and the row's loss instead of computing everything again: the same numbers to a few float64 ulps."""
    from sce.grading.dump.kernel_mistakes import denominators, exact_rows, what_ifs

    rng = np.random.default_rng(5)
    z = rng.normal(size=(12, 9)) * 30  # confident rows: p − 1 and small losses lose digits first
    y = rng.integers(0, 9, 12)
    y[3] = -100
    options = LossOptions(reduction=reduction, temperature=temperature)
    dump = ArrayDump(z, y, None, z, None, {})
    d = denominators(y, 12, options)
    block, _ = exact_rows(dump, 0, 12, options, d)
    again, in_place = what_ifs(y, d, options), what_ifs(y, d, options, rerun=False)
    for name in (catalogue.PREDICTED_CLASS, catalogue.ONE_BASED, catalogue.LABEL_PLUS_ONE):
        (key,) = [k for k in again if k.startswith(name.words)]
        (gradient, losses), (close_gradient, close_losses) = again[key](block), in_place[key](block)
        scale = 1 / (temperature * (d.total if reduction == "mean" else 1))
        assert np.abs(close_gradient - gradient).max() <= 4e-16 * scale
        assert losses is not None and close_losses is not None
        # A loss is graded at the scale of 1 at least (its log-sum-exp's): −log p_old + (z_old − z_new)/T
        # keeps its absolute digits, at the logits' size.
        size = np.abs(z).max() / temperature * scale * temperature
        assert np.abs(close_losses - losses).max() <= 1e-15 * size


def test_a_float32_answer_with_the_label_plus_one_is_named_over_many_blocks(monkeypatch):
    """The textbook float32 computation, the −1 at the next class: named as in float64."""
    z, y = inputs(6)
    z32 = z.astype(np.float32)
    e = np.exp(z32 - z32.max(axis=1, keepdims=True))
    wrong = (e / e.sum(axis=1, keepdims=True) - np.eye(CLASSES, dtype=np.float32)[(y + 1) % CLASSES]) / len(y)
    monkeypatch.setattr(check, "BLOCK_ENTRIES", 4 * CLASSES)
    monkeypatch.setattr(mistake_pass, "SCREEN_ENTRIES", 1)
    found = check_dump(ArrayDump(z32, y, None, wrong.astype(np.float32), None, {}), LossOptions(), "float32")
    assert [worded(m).split(catalogue.FIX_SEPARATOR)[0] for m in found.mistakes] == [catalogue.LABEL_PLUS_ONE.name]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(4))
def test_a_candidates_errors_by_the_compiled_loop_are_numpys(dtype, seed, monkeypatch):
    """The worst error the same bits, Σe² to its last digits, a flushing kernel's zeros excused
    alike; NaN and infinity left to numpy."""
    from sce.grading.dump import mistake_trials, ulp_kernel

    if ulp_kernel.library() is None:
        pytest.skip("the compiled loop is not built here")
    rng = np.random.default_rng(seed)
    other = rng.normal(size=(7, 33)) * 10.0 ** rng.integers(-30, 3, size=(7, 33))
    other[0, :5] = [0.0, -0.0, 5e-324, 1e-310, -1e-300]
    magnitude = np.abs(rng.normal(size=(7, 33))) * 10.0 ** rng.integers(-40, 1, size=(7, 33))
    given = (other * (1 + rng.normal(size=other.shape) * 1e-6)).astype(dtype)
    given[1, :3] = 0.0
    given[0, :5] = 0.0  # zeros where the what-if is tiny: excused below the row's bound only
    bounds = np.full((7, 1), 1e-305)
    bounds[0] = 1e-200
    for flushed_below in (None, bounds):
        monkeypatch.setattr(mistake_trials, "COMPILED", True)
        found = mistake_trials.errors_of(given, other, magnitude, dtype, flushed_below)
        monkeypatch.setattr(mistake_trials, "COMPILED", False)
        expected = mistake_trials.errors_of(given, other, magnitude, dtype, flushed_below)
        assert found.worst == expected.worst and found.entries == expected.entries
        assert found.squares == pytest.approx(expected.squares, rel=1e-12)
    for spoiled in (np.nan, np.inf):
        given[2, 2] = spoiled
        assert ulp_kernel.candidate_errors(given, other, magnitude, (23, -126)) is None


@pytest.mark.parametrize("compiled", [True, False])
def test_a_flushing_kernels_zero_is_excused_below_its_rows_bound_only(compiled, monkeypatch):
    """float32's smallest normal is 1.18e-38: a 0 for 1e-39 is a flushing kernel's; for 1e-30 it is wrong."""
    from sce.grading.dump import mistake_trials

    monkeypatch.setattr(mistake_trials, "COMPILED", compiled)
    given = np.zeros((1, 2), np.float32)
    other = np.array([[1e-39, 1e-30]])
    bounds = np.array([[2.0**-126]])
    flushed = mistake_trials.errors_of(given[:, :1], other[:, :1], other[:, :1], "float32", bounds)
    assert flushed.worst <= 0.5
    assert mistake_trials.errors_of(given[:, :1], other[:, :1], other[:, :1], "float32").worst > 1e5
    assert mistake_trials.errors_of(given, other, other, "float32", bounds).worst > 1e6


@pytest.mark.parametrize("classes", [1, 7, 700])
@pytest.mark.parametrize(
    "options",
    [
        LossOptions(),
        LossOptions(weight=tuple(np.linspace(0.5, 2.0, 7))),
        LossOptions(temperature=0.7),
        LossOptions(reduction="sum"),
        LossOptions(reduction="none"),
    ],
    ids=["mean", "weights", "temperature", "sum", "none"],
)
def test_a_changed_what_ifs_errors_formed_by_the_compiled_loop_are_numpys(classes, options, monkeypatch):
    """A what-if given as the exact gradient scaled by row or with two entries per row changed is
    measured by the compiled loop without being formed: the worst error the same bits as numpy's
    on the formed what-if, Σe² to its last digits, a flushing kernel's zeros excused alike, and
    NaN or infinity in the answer left to numpy."""
    from functools import partial

    from sce.grading.dump import mistake_trials, sparse_labels, ulp_kernel
    from sce.grading.dump.kernel_mistakes import ChangedGradient, denominators, exact_rows, what_ifs

    if ulp_kernel.library() is None:
        pytest.skip("the compiled loop is not built here")
    if options.weight is not None and classes != 7:
        options = options.replace(weight=tuple(np.linspace(0.5, 2.0, classes)))
    rng = np.random.default_rng(classes)
    rows = 40
    z = (rng.normal(size=(rows, classes)) * 4).astype(np.float32)
    y = rng.integers(0, classes, rows)
    y[::7] = -100
    options = options.replace(dtype="float64")
    d = denominators(y, rows, options)
    block, _ = exact_rows(ArrayDump(z, y, None, z, None, {}), 0, rows, options, d)
    coef = sparse_labels.label_coefficients(y, classes, options, d.total)
    magnitude = partial(sparse_labels.gradient_magnitude, block.exact.probabilities, coef)
    formed_loop = ulp_kernel.candidate_errors
    changed = {k: w for k, w in what_ifs(y, d, options, rerun=False).items() if isinstance(w, ChangedGradient)}
    assert changed
    for dtype in ("float32", "float64"):
        for name, what_if in changed.items():
            gradient, _ = what_if(block)
            given = (gradient * (1 + rng.normal(size=gradient.shape) * 1e-6)).astype(dtype)
            given[np.abs(gradient) < 1e-9] = 0  # a flushing kernel's zeros, and wrong ones
            given[1, 0] = 0
            found = []
            for compiled in (True, False):
                monkeypatch.setattr(mistake_trials, "COMPILED", compiled)
                # Compiled, measured by the loop that forms the what-if, not by the one given it formed.
                monkeypatch.setattr(ulp_kernel, "candidate_errors", None if compiled else formed_loop)
                answer = mistake_trials.Answer(given, None, dtype)
                trial = mistake_trials.tried_on_rows({name: what_if}, block, coef, (magnitude, None), answer)
                found.append(trial[name].gradient)
            assert found[0].worst == found[1].worst and found[0].entries == found[1].entries == given.size
            assert found[0].squares == pytest.approx(found[1].squares, rel=1e-12)
            rows_for_loop = mistake_trials.label_rows(block, coef)
            change, _ = what_if.change(block)
            spoiled = given.copy()
            for bad in (np.nan, np.inf):
                spoiled[2, 0] = bad
                spoiled_answer = mistake_trials.Answer(spoiled, None, dtype)
                assert mistake_trials.changed_errors(spoiled_answer, rows_for_loop, change, None) is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(10))
def test_the_names_and_verdicts_are_the_same_by_the_compiled_loop_and_by_numpy(dtype, seed, monkeypatch):
    """Over many blocks, with padding, weights, a temperature and every reduction: the sign, a
    scale, the label + 1, two factors by halves of the batch, or an offset, named (or not) alike."""
    from sce import softmax_cross_entropy
    from sce.grading.dump import mistake_trials, ulp_kernel

    if ulp_kernel.library() is None:
        pytest.skip("the compiled loop is not built here")
    monkeypatch.setattr(check, "BLOCK_ENTRIES", 64)
    monkeypatch.setattr(mistake_pass, "SCREEN_ENTRIES", 1)
    rng = np.random.default_rng(seed)
    rows, classes = 2 * int(rng.integers(8, 30)), int(rng.integers(2, 30))
    z = rng.normal(size=(rows, classes)) * 3
    y = rng.integers(0, classes, rows)
    y[:: 5 if seed % 2 else rows] = -100
    weight = tuple(rng.uniform(0.5, 2, classes)) if seed % 4 == 1 else None
    options = LossOptions(reduction=("mean", "sum", "none")[seed % 3], weight=weight, temperature=(1.0, 0.8)[seed % 2])
    gradient = softmax_cross_entropy(z, y, options=options).gradient
    shifted = np.where(y == -100, y, (y + 1) % classes)
    answer = [
        -gradient,
        3 * gradient,
        softmax_cross_entropy(z, shifted, options=options).gradient,
        gradient * np.repeat([1.7, 1.0], rows // 2)[:, None],
        gradient + 1e-3,
    ][seed % 5]
    found = []
    for compiled in (True, False):
        monkeypatch.setattr(mistake_trials, "COMPILED", compiled)
        dump = ArrayDump(z.astype(dtype), y, None, answer.astype(dtype), None, {})
        graded = check_dump(dump, options, dtype)
        found.append((graded.correct, graded.mistakes, [q.counts.tolist() for q in graded.quantities]))
    assert found[0] == found[1]
