"""Each learner's mistake is named in the same words by every grader that can see it: the learner's
function itself (``sce test``), and what that function returns for the same inputs, typed in
(``sce check``), written to a file (``sce check --csv``) or dumped (``sce check --arrays``).

The wrong answers are the learner files' own (``tests/implementations``: plain numpy, written as
a learner writes the mistake), never sce's what-ifs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sce.cli.declarations import FLAG_OF_FIELD
from sce.errors import worded
from sce.grading import catalogue, check_answer
from sce.grading.dump.check import check_dump
from sce.io.arrays import ArrayDump
from sce.loss import softmax_cross_entropy
from sce.options import LossOptions

IMPLEMENTATIONS = Path(__file__).parent / "implementations"

#: Each learner file, its mistake, and the quantity the mistake is in.
MISTAKES = {
    "label_off_by_one": (catalogue.LABEL_PLUS_ONE, "gradient"),
    "one_based": (catalogue.ONE_BASED, "gradient"),
    "sign_flipped": (catalogue.SIGN_FLIPPED, "gradient"),
    "probabilities_returned": (catalogue.PROBABILITIES, "gradient"),
    "not_normalised": (catalogue.NOT_NORMALISED, "gradient"),
    "sum_not_mean": (catalogue.SUM_NOT_MEAN, "gradient"),
    "predicted_class": (catalogue.PREDICTED_CLASS, "gradient"),
    "labels_broadcast": (catalogue.LABELS_BROADCAST, "gradient"),
    "stopped_at_probabilities": (catalogue.STOPPED_AT_DL_DS, "gradient"),
    "label_entry_only": (catalogue.ONLY_LABEL_ENTRY, "gradient"),
    "exp_as_probabilities": (catalogue.UNNORMALISED_EXP, "gradient"),
    "log10_loss": (catalogue.LOG10, "loss"),
    "log2_loss": (catalogue.LOG2, "loss"),
}
#: What one typed row cannot show: a mean over one row is its sum; one row's labels are its own.
NOT_IN_ONE_ROW = {"sum_not_mean", "labels_broadcast"}


def learner(name: str):
    spec = importlib.util.spec_from_file_location(f"learner_{name}", IMPLEMENTATIONS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.softmax_loss


def batch(seed: int, n: int = 6, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose every row is labelled neither with its largest logit's class nor with one
    next to it, with at least two labels: each mistake shows in every row as no other one."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    y = (z.argmax(axis=1) + rng.integers(2, k - 1, n)) % k
    y[:2] = (z.argmax(axis=1)[:2] + np.array([2, 3])) % k
    return z, y


def first_name(names: list[str]) -> str:
    """A name without its fix, and without what the input makes of it ("(not divided by 6)")."""
    return worded(names[0]).split(catalogue.FIX_SEPARATOR)[0].split(" (not divided by")[0] if names else ""


def csv_names(sce, folder: Path, z: np.ndarray, y: np.ndarray, quantity: str, values: np.ndarray, mean: bool):
    k = z.shape[1]
    columns = [f"grad_z{j}" for j in range(k)] if quantity == "gradient" else ["loss"]
    lines = [",".join([*(f"z{j}" for j in range(k)), "label", *columns])]
    for row in range(len(y)):
        answer = np.ravel(values[row])
        lines.append(",".join([*(repr(float(v)) for v in z[row]), str(int(y[row])), *(repr(float(v)) for v in answer)]))
    path = folder / "answers.csv"
    path.write_text("\n".join(lines) + "\n")
    picked = ["--grad-cols", "grad_*"] if quantity == "gradient" else ["--loss-col", "loss"]
    reduction = ["--reduction", "mean"] if mean else []
    result = sce("check", "--csv", path, "--logit-cols", "z*", *picked, *reduction, "-f", "json")
    assert result.exit_code == 1, result.output
    return [m["name"] for m in json.loads(result.stdout)["mistakes"]]


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_a_learners_mistake_is_named_alike_by_sce_test_and_by_every_check_of_its_answers(name, sce, tmp_path):
    expected, quantity = MISTAKES[name]
    function = learner(name)
    tested = sce("test", f"{IMPLEMENTATIONS / name}.py:softmax_loss", "-f", "json")
    assert tested.exit_code == 1
    assert json.loads(tested.stdout)["mistakes"][:1] == [expected.name]

    z, y = batch(7)
    loss, gradient = function(z.copy(), y.copy())  # the mean over the batch, as the function computes it
    answer = (np.asarray(gradient), None) if quantity == "gradient" else (None, np.asarray(loss, dtype=np.float64))
    found = check_dump(ArrayDump(z, y, None, *answer, {}), LossOptions(), "float64")
    assert not found.correct and first_name(found.mistakes) == expected.name

    if quantity == "gradient":  # the batch's gradient of the mean, row by row
        assert first_name(csv_names(sce, tmp_path, z, y, quantity, np.asarray(gradient), True)) == expected.name
    else:  # each row's own loss: the function called on that row alone
        losses = np.array([function(z[i : i + 1].copy(), y[i : i + 1].copy())[0] for i in range(len(y))])
        assert first_name(csv_names(sce, tmp_path, z, y, quantity, losses, False)) == expected.name

    if name not in NOT_IN_ONE_ROW:
        row_loss, row_gradient = function(z[:1].copy(), y[:1].copy())
        value = np.ravel(row_gradient) if quantity == "gradient" else np.ravel(row_loss)
        (typed,) = check_answer(softmax_cross_entropy(z[:1], y[:1]), {quantity: [repr(float(v)) for v in value]})
        assert not typed.passed and typed.mistake == expected


def test_weights_applied_class_by_class_are_named_alike_typed_in_a_file_and_dumped(sce, tmp_path):
    """w ⊙ (p − y) instead of w_y·(p − y), each row's own (reduction 'none'), weights 1 to 6."""
    z, y = batch(8)
    weights = np.arange(1.0, 7.0)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    wrong = weights * (e / e.sum(axis=1, keepdims=True) - np.eye(6)[y])
    expected = catalogue.WEIGHTS_PER_CLASS.name
    options = LossOptions(reduction="none", weight=tuple(weights))
    (typed,) = check_answer(
        softmax_cross_entropy(z[:1], y[:1], options=options), {"gradient": [repr(float(v)) for v in wrong[0]]}
    )
    assert typed.mistake == catalogue.WEIGHTS_PER_CLASS
    found = check_dump(ArrayDump(z, y, None, wrong, None, {}), options, "float64")
    assert first_name(found.mistakes) == expected
    k = z.shape[1]
    lines = [",".join([*(f"z{j}" for j in range(k)), "label", *(f"grad_z{j}" for j in range(k))])]
    lines += [",".join([*map(repr, map(float, z[i])), str(int(y[i])), *map(repr, map(float, wrong[i]))]) for i in range(6)]
    (tmp_path / "weighted.csv").write_text("\n".join(lines) + "\n")
    flags = ("--logit-cols", "z*", "--grad-cols", "grad_*", "-w", ",".join(f"{w:g}" for w in weights))
    result = sce("check", "--csv", tmp_path / "weighted.csv", *flags, "--reduction", "none", "-f", "json")
    assert [m["name"] for m in json.loads(result.stdout)["mistakes"]][:1] == [expected]


def test_a_mean_where_the_sum_is_asked_is_named_alike_by_sce_test_and_a_dump(sce):
    """The vectorised textbook answer divides by N; graded as reduction 'sum' it has one 1/N too many."""
    tested = sce("test", f"{IMPLEMENTATIONS / 'correct_vectorized'}.py:softmax_loss", "--reduction", "sum", "-f", "json")
    # The command line words the option as its flag, Python as its keyword: the same name.
    assert json.loads(tested.stdout)["mistakes"][:1] == [catalogue.MEAN_NOT_SUM.worded_name(FLAG_OF_FIELD)]
    z, y = batch(9)
    _, gradient = learner("correct_vectorized")(z.copy(), y.copy())
    found = check_dump(ArrayDump(z, y, None, np.asarray(gradient), None, {}), LossOptions(reduction="sum"), "float64")
    assert worded(found.mistakes[0]).startswith(catalogue.MEAN_NOT_SUM.name + " (divided by 6)")
