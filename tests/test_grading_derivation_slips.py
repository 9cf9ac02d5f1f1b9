"""The slips of the derivation itself, each made by hand in plain numpy (or written out from the
textbook example's numbers) and named in the same words by every grader that can see it: a typed
row, a CSV file, a tensor dump, a learner's function.

The textbook example z = (2, 3, 4), label 1: s = e^z / Σ e^z = (0.0900306, 0.2447285, 0.6652410).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sce.errors import worded
from sce.grading import catalogue, check_answer
from sce.grading.dump.check import check_dump
from sce.io.arrays import ArrayDump
from sce.loss import softmax_cross_entropy
from sce.options import LossOptions

IMPLEMENTATIONS = Path(__file__).parent / "implementations"


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def mispredicted(seed: int, n: int = 5, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Random logits whose every row is labelled with a class other than its largest logit's,
    and never its neighbour: the −1 at the prediction shows in every row, as no other slip."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    y = (z.argmax(axis=1) + rng.integers(2, k - 1, n)) % k
    return z, y


def by_hand(mistake: str, z: np.ndarray, y: np.ndarray) -> tuple[str, np.ndarray]:
    """(the quantity, each row's mistaken value), reduction 'none', from the textbook formulas."""
    n, k = z.shape
    rows, p, one_hot = np.arange(n), softmax(z), np.eye(k)[y]
    made = {
        "predicted class": ("gradient", p - np.eye(k)[z.argmax(axis=1)]),
        "predicted class loss": ("loss", -np.log(p[rows, z.argmax(axis=1)])),
        "stopped at dL/ds": ("gradient", -one_hot / p),
        "label's entry only": ("gradient", one_hot * (p - 1)),
        "e^z": ("gradient", np.exp(z) - one_hot),
        "e^z loss": ("loss", -z[rows, y]),  # −log e^(z_y)
    }
    return made[mistake]


NAMES = {
    "predicted class": catalogue.PREDICTED_CLASS,
    "predicted class loss": catalogue.PREDICTED_CLASS,
    "stopped at dL/ds": catalogue.STOPPED_AT_DL_DS,
    "label's entry only": catalogue.ONLY_LABEL_ENTRY,
    "e^z": catalogue.UNNORMALISED_EXP,
    "e^z loss": catalogue.UNNORMALISED_EXP,
}


def typed(values: np.ndarray) -> list[str]:
    """12 significant digits, and zeros with 15 decimals (a bare 0 is right to half a unit)."""
    return [f"{v:.15f}" if v == 0 else f"{v:.12g}" for v in np.ravel(values)]


def dump_named(z: np.ndarray, y: np.ndarray, options: LossOptions, gradient=None, loss=None) -> list[str]:
    found = check_dump(ArrayDump(z, y, None, gradient, loss, {}), options, "float64")
    assert not found.correct
    return [worded(m).split(catalogue.FIX_SEPARATOR)[0] for m in found.mistakes]


def csv_named(sce, folder: Path, z: np.ndarray, y: np.ndarray, quantity: str, value: np.ndarray) -> list[str]:
    k = z.shape[1]
    answer_columns = [f"grad_z{j}" for j in range(k)] if quantity == "gradient" else ["loss"]
    lines = [",".join([*(f"z{j}" for j in range(k)), "label", *answer_columns])]
    for row in range(len(y)):
        answer = np.ravel(value[row])
        lines.append(",".join([*(repr(float(v)) for v in z[row]), str(int(y[row])), *typed(answer)]))
    path = folder / "answers.csv"
    path.write_text("\n".join(lines) + "\n")
    picked = ["--grad-cols", "grad_*"] if quantity == "gradient" else ["--loss-col", "loss"]
    result = sce("check", "--csv", path, "--logit-cols", "z*", *picked, "-f", "json")
    assert result.exit_code == 1, result.output
    return [m["name"] for m in json.loads(result.stdout)["mistakes"]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mistake", sorted(NAMES))
def test_each_slip_of_the_derivation_is_named_alike_by_typed_csv_and_dump_graders(mistake, seed, sce, tmp_path):
    z, y = mispredicted(seed)
    quantity, value = by_hand(mistake, z, y)
    expected = NAMES[mistake]
    options = LossOptions(reduction="none")
    typed_value = value[0] if quantity == "gradient" else value[:1]
    # 12 digits, as a learner's float64 answer holds them: p − 1 and log p near 1 lose the last few.
    (check,) = check_answer(softmax_cross_entropy(z[:1], y[:1]), {quantity: typed(typed_value)})
    assert not check.passed and check.mistake == expected and check.also is None
    assert csv_named(sce, tmp_path, z, y, quantity, value) == [expected.name]
    answer = {"gradient" if quantity == "gradient" else "loss": value}
    assert dump_named(z, y, options, **answer)[:1] == [expected.name]


def test_a_file_made_with_the_broadcasting_slip_is_named(sce, tmp_path):
    z, y = mispredicted(4, n=4)
    at_every_label = np.zeros(z.shape[1])
    at_every_label[y] = 1.0
    assert csv_named(sce, tmp_path, z, y, "gradient", softmax(z) - at_every_label) == [catalogue.LABELS_BROADCAST.name]


def test_a_dump_with_the_broadcasting_slip_is_named_and_its_mean_too():
    z, y = mispredicted(3, n=6)
    y[:3] = y[3:]  # repeated labels: grad[:, labels] subtracts 1 once per distinct label
    at_every_label = np.zeros(z.shape[1])
    at_every_label[y] = 1.0  # as numpy's fancy assignment does: once per column, repeats or not
    gradient = softmax(z) - at_every_label
    for options, answer in ((LossOptions(reduction="none"), gradient), (LossOptions(), gradient / len(y))):
        assert dump_named(z, y, options, gradient=answer) == [catalogue.LABELS_BROADCAST.name]


def test_the_jacobians_diagonal_is_told_from_the_labels_entry_with_soft_targets(sce):
    """−t_k(1 − s_k) at every class: with t = (0.2, 0.5, 0.3) every entry is nonzero."""
    s = [math.exp(v) / sum(math.exp(u) for u in (2, 3, 4)) for v in (2, 3, 4)]
    answer = ",".join(f"{-t * (1 - p):.8f}" for t, p in zip((0.2, 0.5, 0.3), s))
    result = sce("check", "2", "3", "4", "--target", "0.2,0.5,0.3", "--grad", answer, "-f", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["quantities"][0]["mistake"] == catalogue.JACOBIAN_DIAGONAL.name
    # With the one-hot label the same computation is the label's entry alone: named once, as that.
    one_hot = f"0.00000000,{s[1] - 1:.8f},0.00000000"
    result = sce("check", "2", "3", "4", "-l", "1", "--grad", one_hot, "-f", "json")
    quantity = json.loads(result.stdout)["quantities"][0]
    assert (quantity["mistake"], quantity["also"]) == (catalogue.ONLY_LABEL_ENTRY.name, None)


def test_the_textbook_example_with_the_minus_one_at_the_prediction_names_both_readings(sce):
    """Class 2 is both the prediction and the label's neighbour: one row cannot tell them apart."""
    s = [math.exp(v) / sum(math.exp(u) for u in (2, 3, 4)) for v in (2, 3, 4)]
    answer = f"{s[0]:.6f},{s[1]:.6f},{s[2] - 1:.6f}"
    result = sce("check", "2", "3", "4", "-l", "1", "--grad", answer)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-7:] == [
        "✗ gradient: wrong (2 of 3 entries)",
        "  mistake: −1 at the predicted class (the largest logit), not at the label",
        "  fix: subtract 1 at the label's class, labels[i], whatever the prediction",
        "  or: −1 at the wrong class: the label's index plus one (off by one), which fits these numbers too",
        "  fix: subtract 1 at index labels[i] itself",
        "reduction: none",
        "verdict: not correct",
    ]


@pytest.mark.parametrize("loss", ["-1.4076", "-3", "-0.5"])
def test_a_negative_loss_is_named_after_the_mistake_that_makes_it_or_as_negative(loss, sce):
    """−1.4076 is −L (the sign), −3 is −z_1 = −log e^3 (e^z taken as s); −0.5 only negative."""
    result = sce("check", "2", "3", "4", "-l", "1", "--loss", loss, "-f", "json")
    assert result.exit_code == 1
    named = {"-1.4076": catalogue.SIGN_FLIPPED, "-3": catalogue.UNNORMALISED_EXP, "-0.5": catalogue.NEGATIVE_LOSS}
    assert json.loads(result.stdout)["quantities"][0]["mistake"] == named[loss].name


@pytest.mark.parametrize(
    ("implementation", "expected"),
    [
        ("predicted_class", catalogue.PREDICTED_CLASS),
        ("labels_broadcast", catalogue.LABELS_BROADCAST),
        ("stopped_at_probabilities", catalogue.STOPPED_AT_DL_DS),
        ("label_entry_only", catalogue.ONLY_LABEL_ENTRY),
        ("exp_as_probabilities", catalogue.UNNORMALISED_EXP),
        ("negative_loss", catalogue.NEGATIVE_LOSS),
    ],
)
def test_sce_test_names_each_slip_of_the_derivation_first(implementation, expected, sce):
    result = sce("test", f"{IMPLEMENTATIONS / implementation}.py:softmax_loss", "-f", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["mistakes"][:1] == [expected.name]


def test_sce_test_givesone_diagnosis_to_every_case_the_prediction_explains(sce):
    """On the textbook example the −1 at class 2 is also the label plus one, and on a batch of
    one row it is also one row's gradient for every row: each case is named after the mistake
    that explains them all."""
    result = sce("test", f"{IMPLEMENTATIONS / 'predicted_class'}.py:softmax_loss", "-f", "json")
    document = json.loads(result.stdout)
    named = {case["mistake"] for case in document["cases"] if not case["passed"]}
    assert named == {catalogue.PREDICTED_CLASS.name}
    assert document["mistakes"] == [catalogue.PREDICTED_CLASS.name]


def test_two_quantities_wrong_two_ways_say_more_than_one_mistake(sce):
    """y − s = (−0.0900306, 0.7552715, −0.6652410) and 1.4076060 / ln 10 = 0.6113155."""
    args = ("check", "2", "3", "4", "-l", "1", "--grad=-0.0900306,0.7552715,-0.6652410", "--loss", "0.6113155")
    result = sce(*args)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-3:] == [
        "more than one mistake (loss: log base 10 in the loss; gradient: sign flipped: y − p instead of p − y)",
        "reduction: none",
        "verdict: not correct",
    ]
    document = json.loads(sce(*args, "-f", "json").stdout)
    assert document["more_than_one_mistake"] == [
        {"quantity": "loss", "name": catalogue.LOG10.name},
        {"quantity": "gradient", "name": catalogue.SIGN_FLIPPED.name},
    ]


def test_one_mistake_that_explains_every_wrong_quantity_is_named_for_each():
    """The −1 at class 2 in the gradient and −log s_2 = 0.4076060 for the loss: both readings fit
    both quantities, so both name the same one first, and no "more than one mistake"."""
    from sce.grading.answers import diagnosis

    result = softmax_cross_entropy(np.array([[2.0, 3.0, 4.0]]), np.array([1]))
    checks = check_answer(result, {"gradient": ["0.0900306", "0.2447285", "-0.3347590"], "loss": ["0.4076060"]})
    assert [(c.mistake, c.also) for c in checks] == [(catalogue.PREDICTED_CLASS, catalogue.LABEL_PLUS_ONE)] * 2
    assert diagnosis(checks) == []


def test_the_mistake_common_to_every_wrong_quantity_is_named_before_each_ones_first():
    from sce.grading.answers import QuantityCheck, one_diagnosis

    wrong = np.array([False])

    def quantity(name, *fitting):
        return QuantityCheck(name, np.zeros(1), np.ones(1), np.zeros(1), wrong, fitting[0], fitting=fitting)

    a, b = catalogue.PREDICTED_CLASS, catalogue.LABEL_PLUS_ONE
    settled = one_diagnosis([quantity("gradient", a, b), quantity("loss", b)])
    assert [(c.mistake, c.also) for c in settled] == [(b, None), (b, None)]


def test_a_dump_of_nan_or_zeros_is_named_after_no_slip():
    """Regression: a slip that does not apply to the input must not stand in as NaN, which a NaN
    answer matches (NaN against NaN is 0 ulps apart)."""
    z = np.random.default_rng(0).normal(size=(6, 4))
    y = np.array([0, 1, 2, 3, -100, 1])
    for answer in (np.full((6, 4), np.nan), np.zeros((6, 4))):
        assert dump_named(z, y, LossOptions(), gradient=answer) == []
