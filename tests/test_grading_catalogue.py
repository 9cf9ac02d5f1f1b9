"""One catalogue of mistakes: each mistake, made by hand on random inputs, is named in the same
words by every grader that can see it (a typed row, a CSV file, a tensor dump); the exact answer
is never named; a name is given only when it explains every wrong entry.

The mistaken answers are computed here in plain numpy from the textbook formulas (softmax,
−log p_y, p − y), not from sce's what-ifs.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from sce.errors import worded
from sce.grading import catalogue, check_answer
from sce.grading.dump.check import check_dump
from sce.io.arrays import ArrayDump
from sce.loss import softmax_cross_entropy
from sce.options import LossOptions


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[labels]


def by_hand(mistake: str, z: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> tuple[str, np.ndarray]:
    """(the quantity, its mistaken value: N×K or N) for one of the mistakes, each row's own ('none')."""
    k = z.shape[1]
    p, right = softmax(z / temperature), one_hot(y, k)
    rows = np.arange(len(y))
    loss = -np.log(p[rows, y])
    with np.errstate(divide="ignore"):  # a probability that rounds to 0: an infinite loss, as a learner gets
        rounded_first = -np.log(np.round(p[rows, y], 4))
    made = {
        "sign flipped": ("gradient", (right - p) / temperature),
        "probabilities": ("gradient", p / temperature),
        "one-based": ("gradient", (p - one_hot((y - 1) % k, k)) / temperature),
        "label + 1": ("gradient", (p - one_hot((y + 1) % k, k)) / temperature),
        "log 10": ("loss", loss / math.log(10)),
        "log 2": ("loss", loss / math.log(2)),
        "one-based loss": ("loss", -np.log(p[rows, (y - 1) % k])),
        "temperature left out": ("gradient", softmax(z) - right),
        "temperature factor missing": ("gradient", p - right),
        "rounded before the log": ("loss", rounded_first),
        # The plain loss's gradient, where the options ask for more:
        "smoothing left out": ("gradient", p - right),
        "z-loss left out": ("gradient", p - right),
        "softcap left out": ("gradient", p - right),
    }
    return made[mistake]


NAMES = {
    "sign flipped": catalogue.SIGN_FLIPPED,
    "probabilities": catalogue.PROBABILITIES,
    "one-based": catalogue.ONE_BASED,
    "label + 1": catalogue.LABEL_PLUS_ONE,
    "log 10": catalogue.LOG10,
    "log 2": catalogue.LOG2,
    "one-based loss": catalogue.ONE_BASED,
    "temperature left out": catalogue.TEMPERATURE_LEFT_OUT,
    "temperature factor missing": catalogue.TEMPERATURE_FACTOR_MISSING,
    "rounded before the log": catalogue.ROUNDED_BEFORE_LOG,
    "smoothing left out": catalogue.SMOOTHING_LEFT_OUT,
    "z-loss left out": catalogue.Z_LOSS_LEFT_OUT,
    "softcap left out": catalogue.SOFTCAP_LEFT_OUT,
}
#: The loss each mistake is made against (the plain one otherwise), with its flags.
OPTIONS = {
    "temperature left out": (LossOptions(reduction="none", temperature=2.0), ["--temperature", "2"]),
    "temperature factor missing": (LossOptions(reduction="none", temperature=2.0), ["--temperature", "2"]),
    "smoothing left out": (LossOptions(reduction="none", label_smoothing=0.1), ["--smoothing", "0.1"]),
    "z-loss left out": (LossOptions(reduction="none", z_loss=0.05), ["--z-loss", "0.05"]),
    "softcap left out": (LossOptions(reduction="none", softcap=2.0), ["--softcap", "2"]),
}
#: What a tensor dump cannot show: the rounding of a hand derivation.
NOT_IN_DUMPS = {"rounded before the log"}


def written(values: np.ndarray) -> list[str]:
    # "#": trailing zeros kept, so -1.999999999999998 is written -2.00000000000, twelve digits, not "-2".
    return [f"{v:#.12g}" for v in np.ravel(values)]


def typed_mistake(z, y, quantity, value, options):
    result = softmax_cross_entropy(z[:1], y[:1], options=options)
    (check,) = check_answer(result, {quantity: written(value[0])})
    return check


def csv_mistakes(sce, z, y, quantity, value, options) -> list[str]:
    k = z.shape[1]
    header = (
        [f"z{j}" for j in range(k)] + ["label"] + ([f"g{j}" for j in range(k)] if quantity == "gradient" else ["loss"])
    )
    lines = [",".join(header)]
    for row in range(len(y)):
        answer = written(value[row])
        lines.append(",".join([*(repr(float(v)) for v in z[row]), str(int(y[row])), *answer]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "answers.csv"
        path.write_text("\n".join(lines) + "\n")
        picked = ["--grad-cols", ",".join(header[k + 1 :])] if quantity == "gradient" else ["--loss-col", "loss"]
        flags = next((flags for known, flags in OPTIONS.values() if known == options), [])
        args = ["check", "--csv", path, "--logit-cols", ",".join(header[:k]), *picked, *flags, "-f", "json"]
        result = sce(*args)
    assert result.exit_code == 1, result.output
    return [m["name"] for m in json.loads(result.stdout)["mistakes"]]


def dump_mistakes(z, y, quantity, value, options) -> list[str]:
    grad = value if quantity == "gradient" else None
    loss = value if quantity == "loss" else None
    check = check_dump(ArrayDump(z, y, None, grad, loss, {}), options, "float64")
    assert not check.correct
    return [worded(m) for m in check.mistakes]


def made(drawn):
    """(the mistake, logits, labels, options, the quantity, its mistaken value) for drawn inputs."""
    n, k, seed, mistake = drawn
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    y = rng.integers(0, k, n)
    options = OPTIONS.get(mistake, (LossOptions(reduction="none"), []))[0]
    return (mistake, z, y, options, *by_hand(mistake, z, y, options.temperature))


def value_label(mistake: str, y: np.ndarray, k: int) -> np.ndarray:
    """The class where a label mistake puts the −1."""
    return (y + (1 if mistake == "label + 1" else -1)) % k


inputs = st.tuples(st.integers(2, 6), st.integers(3, 7), st.integers(0, 2**32 - 1), st.sampled_from(sorted(NAMES)))


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=inputs)
# An answer written to 12 digits whose entry lies half a unit of its last digit from the what-if value.
@example(drawn=(2, 6, 235445, "label + 1"))
# A confident row, whose label entry the learner's p − 1 forms from numbers near 1.
@example(drawn=(4, 3, 36575199, "label + 1"))
def test_each_mistake_is_named_in_the_same_words_by_every_grader_that_can_see_it(drawn, sce):
    mistake, z, y, options, quantity, value = made(drawn)
    right = softmax_cross_entropy(z, y, options=options)
    exact = right.gradient if quantity == "gradient" else right.losses
    # Only where the mistake shows, in every row (the typed grader sees row 0):
    difference = np.abs(np.reshape(value - exact, (len(y), -1))).max(axis=1)
    assume(bool((difference > 1e-6).all()))
    expected = NAMES[mistake]
    check = typed_mistake(z, y, quantity, value, options)
    names = csv_mistakes(sce, z, y, quantity, value, options)
    if mistake in ("label + 1", "one-based", "one-based loss"):
        # Where every row's prediction is the shifted label, the −1 at the predicted class gives the
        # same numbers: both are named, the prediction first.
        predicted = z.argmax(axis=1)
        if predicted[0] == value_label(mistake, y, z.shape[1])[0]:
            assert (check.mistake, check.also) == (catalogue.PREDICTED_CLASS, expected)
        else:
            assert check.mistake == expected
        if (predicted == value_label(mistake, y, z.shape[1])).all():
            names = [name for name in names if name != catalogue.PREDICTED_CLASS.name]
    else:
        assert check.mistake == expected
    assert names[:1] == [expected.name]
    if mistake not in NOT_IN_DUMPS:
        assert any(m.startswith(expected.name) for m in dump_mistakes(z, y, quantity, value, options))


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 5), st.integers(2, 7), st.integers(0, 2**32 - 1), st.sampled_from(["gradient", "loss"]))
# A confident row: the rounding allowed its label entry is wider than the mistakes' differences, not its digits.
@example(1, 2, 1704, "gradient")
# A confident row at T = 0.5 with smoothing: e^(z − max z) is p to 1e-14, so "not normalised" gives
# the same numbers to 13 digits; the exact answer to 12 digits was "too few digits".
@example(3, 3, 1980, "gradient")
def test_the_exact_answer_is_never_named_as_a_mistake(n, k, seed, quantity):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * rng.choice([0.1, 1.0, 10.0])
    y = rng.integers(0, k, n)
    options = LossOptions(
        temperature=float(rng.choice([1.0, 0.5, 3.0])),
        label_smoothing=float(rng.choice([0.0, 0.1])),
        z_loss=float(rng.choice([0.0, 1e-3])),
        softcap=rng.choice([None, 5.0]),
        smoothing_style=str(rng.choice(["uniform", "off-target"])),
        weight=None if rng.random() < 0.5 else tuple(float(w) for w in rng.uniform(0.5, 2.0, k)),
        reduction=str(rng.choice(["mean", "sum", "none"])),
    )
    result = softmax_cross_entropy(z[:1], y[:1], options=options)
    exact = result.gradient[0] if quantity == "gradient" else np.array([result.reported_loss()])
    for text in (written(exact), [repr(float(v)) for v in exact]):
        (check,) = check_answer(result, {quantity: text})
        assert check.passed and check.mistake is None and check.ambiguous is None, (options, text, check)
    # Both quantities given at once: one computation, never too few digits where each alone is not.
    both = {"gradient": written(result.gradient[0]), "loss": written(np.array([result.reported_loss()]))}
    assert all(check.passed for check in check_answer(result, both))


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=inputs, where=st.integers(0, 100))
def test_a_name_is_given_only_when_it_explains_every_wrong_entry(drawn, where, sce):
    mistake, z, y, options, quantity, value = made(drawn)
    spoiled = np.array(value, dtype=np.float64)
    flat = spoiled.reshape(-1)
    flat[where % z.shape[1] if quantity == "gradient" else 0] += 0.37  # one more entry of row 0, wrong another way
    assert typed_mistake(z, y, quantity, spoiled, options).mistake is None
    assert csv_mistakes(sce, z, y, quantity, spoiled, options) == []


def test_pytorchs_float32_answer_typed_in_names_the_dtype_flag(sce):
    """The digits torch.float32 gives at full precision (float(tensor[i])) for [2, 3, 4], label 1,
    by the textbook float32 computation: the hint names --dtype float32, which then passes."""
    z = np.array([2, 3, 4], dtype=np.float32)
    e = np.exp(z - z.max())
    p = e / e.sum()
    gradient = p - np.eye(3, dtype=np.float32)[1]
    typed = ",".join(repr(float(v)) for v in gradient)
    result = sce("check", "2", "3", "4", "--label", "1", "--grad", typed)
    assert result.exit_code == 1
    assert "mistake: computed in float32 (PyTorch's default type), not in float64" in result.stdout
    assert "fix: grade it as float32 with --dtype float32" in result.stdout
    assert sce("check", "2", "3", "4", "--label", "1", "--grad", typed, "--dtype", "float32").exit_code == 0


def test_the_loss_of_a_probability_rounded_first_is_that_mistake_not_a_slip(sce):
    """−log(0.2447) = 1.40772 where the exact loss is 1.40761: the derivation's rounding-first mistake."""
    assert f"{-math.log(0.2447):.4f}" == "1.4077"
    result = sce("check", "2", "3", "4", "--label", "1", "--loss", "1.4077")
    assert result.exit_code == 1
    assert "mistake: the probability was rounded before the log" in result.stdout
    assert "slip" not in result.stdout


def test_the_gradient_from_probabilities_rounded_first_is_that_mistake(sce):
    p = softmax(np.array([[2.0, 3.0, 4.0]]))[0]
    rounded = np.round(p, 2) - np.eye(3)[1]  # 0.09, 0.24 - 1, 0.67, written with 4 decimals
    result = sce("check", "2", "3", "4", "--label", "1", "--grad", ",".join(f"{v:.4f}" for v in rounded))
    assert result.exit_code == 1 and "mistake: the probability was rounded before the log" in result.stdout


def test_every_mistake_is_in_the_catalogue_once_with_a_fix():
    words = [m.words for m in catalogue.CATALOGUE]
    assert len(words) == len(set(words)) >= 35
    assert all(m.fix and m.name and not m.name.endswith(".") for m in catalogue.CATALOGUE)


@pytest.mark.parametrize(
    ("implementation", "expected"),
    [("sign_flipped", catalogue.SIGN_FLIPPED), ("probabilities_returned", catalogue.PROBABILITIES)],
)
def test_sce_test_names_the_mistake_as_sce_check_does(implementation, expected, sce):
    path = Path(__file__).parent / "implementations" / f"{implementation}.py"
    result = sce("test", f"{path}:softmax_loss", "-f", "json")
    assert json.loads(result.stdout)["mistakes"][:1] == [expected.name]
    p = softmax(np.array([[2.0, 3.0, 4.0]]))[0]
    given = {"sign_flipped": np.eye(3)[1] - p, "probabilities_returned": p}[implementation]
    typed = sce("check", "2", "3", "4", "-l", "1", "--grad", ",".join(f"{v:.6f}" for v in given), "-f", "json")
    assert json.loads(typed.stdout)["quantities"][0]["mistake"] == expected.name


def test_the_docs_list_every_mistake_of_the_catalogue_with_its_fix():
    from sce.cli.declarations import FLAG_OF_FIELD

    page = (Path(__file__).parent.parent / "docs" / "mistakes.md").read_text(encoding="utf-8")
    rows = {line for line in page.splitlines() if line.startswith("| ")}
    for mistake in catalogue.CATALOGUE:
        name, fix = (
            text.replace("|", "\\|") for text in (mistake.worded_name(FLAG_OF_FIELD), mistake.worded_fix(FLAG_OF_FIELD))
        )
        assert any(row.startswith(f"| {name} | {fix} | ") for row in rows), name


def _scored_file(sce, folder: Path, *options: str) -> tuple[list[str], list[list[str]]]:
    """sce batch's own output for the shipped batch.csv, as header and rows."""
    assert sce("samples", folder).exit_code == 0
    assert sce("batch", folder / "batch.csv", "-o", folder / "scored.csv", "--quiet", *options).exit_code == 0
    lines = (folder / "scored.csv").read_text().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def test_check_csv_names_the_mistake_of_its_gradient_columns_with_the_fix(tmp_path, sce):
    header, rows = _scored_file(sce, tmp_path)
    grads = [k for k, name in enumerate(header) if name.startswith("grad_")]
    flipped = [[repr(-float(v)) if k in grads else v for k, v in enumerate(row)] for row in rows]
    (tmp_path / "flipped.csv").write_text("\n".join(",".join(row) for row in [header, *flipped]) + "\n")
    result = sce("check", "--csv", tmp_path / "flipped.csv", "--grad-cols", "grad_*", "--loss-col", "loss")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-3:] == [
        "mistake: sign flipped: y − p instead of p − y",
        "fix: the gradient is p − y, probabilities minus the target",
        "verdict: not correct",
    ]
    # One more cell wrong another way: the name no longer explains every wrong entry.
    flipped[0][grads[0]] = "0.5"
    (tmp_path / "flipped.csv").write_text("\n".join(",".join(row) for row in [header, *flipped]) + "\n")
    document = sce("check", "--csv", tmp_path / "flipped.csv", "--grad-cols", "grad_*", "-f", "json").stdout
    assert json.loads(document)["mistakes"] == []


def test_check_csv_names_a_loss_column_mistake_for_that_column_alone(tmp_path, sce):
    header, rows = _scored_file(sce, tmp_path)
    loss = header.index("loss")
    in_log10 = [[repr(float(v) / math.log(10)) if k == loss else v for k, v in enumerate(row)] for row in rows]
    (tmp_path / "log10.csv").write_text("\n".join(",".join(row) for row in [header, *in_log10]) + "\n")
    args = ("check", "--csv", tmp_path / "log10.csv", "--grad-cols", "grad_*", "--loss-col", "loss", "-f", "json")
    document = json.loads(sce(*args).stdout)
    assert document["mistakes"] == [{"quantity": None, "name": catalogue.LOG10.name, "fix": catalogue.LOG10.fix}]
    correct = sce(
        "check", "--csv", tmp_path / "scored.csv", "--grad-cols", "grad_*", "--loss-col", "loss", "-f", "json"
    )
    assert correct.exit_code == 0 and json.loads(correct.stdout)["mistakes"] == []


def test_check_csv_names_a_float32_file_and_the_flag_that_grades_it(tmp_path, sce):
    """sce batch --dtype float32 writes float32's shortest digits: graded as float64 they are wrong
    at their 8th digit, and the hint names --dtype float32, under which the file is correct."""
    _scored_file(sce, tmp_path, "--dtype", "float32")
    args = ("check", "--csv", tmp_path / "scored.csv", "--grad-cols", "grad_*", "--loss-col", "loss")
    result = sce(*args)
    assert result.exit_code == 1
    assert "mistake: computed in float32 (PyTorch's default type), not in float64" in result.stdout.splitlines()
    assert "fix: grade it as float32 with --dtype float32" in result.stdout.splitlines()
    assert sce(*args, "--dtype", "float32").exit_code == 0


def _mean_file(path: Path, z: np.ndarray, y: np.ndarray, gradient: np.ndarray) -> Path:
    names = [f"z{k}" for k in range(z.shape[1])]
    lines = [",".join([*names, "label", *(f"grad_{name}" for name in names)])]
    for row, label, grad in zip(z, y, gradient, strict=True):
        lines.append(",".join([*map(repr, row.tolist()), str(label), *map(repr, grad.tolist())]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_csv_names_the_mean_that_counts_ignored_rows(tmp_path, sce):
    # The padding mean: (p − y)/N over all N rows, the ignored one's gradient 0, where the mean
    # divides by the 3 counted rows. The same mistake check --arrays names, in the same words.
    z = np.array([[2.0, 3.0, 4.0], [1.5, -0.5, 0.25], [-1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
    y = np.array([1, 0, -100, 2])
    counted = y != -100
    gradient = np.where(counted[:, None], softmax(z) - one_hot(np.where(counted, y, 0), 3), 0.0) / len(y)
    path = _mean_file(tmp_path / "padding_mean.csv", z, y, gradient)
    result = sce("check", "--csv", path, "--grad-cols", "grad_*", "--reduction", "mean")
    assert result.exit_code == 1
    assert f"mistake: {catalogue.IGNORED_ROWS_COUNTED.worded_name({'ignore_index': '--ignore-index'})}" in (
        result.stdout.splitlines()
    )
    in_dump = dump_mistakes(z, y, "gradient", gradient, LossOptions(reduction="mean"))
    assert any(name.startswith(catalogue.IGNORED_ROWS_COUNTED.name) for name in in_dump)
    right = _mean_file(tmp_path / "right.csv", z, y, gradient * len(y) / counted.sum())
    assert sce("check", "--csv", right, "--grad-cols", "grad_*", "--reduction", "mean").exit_code == 0


def test_check_csv_names_a_weighted_mean_divided_by_the_row_count(tmp_path, sce):
    z = np.array([[2.0, 3.0, 4.0], [1.5, -0.5, 0.25], [0.0, 1.0, 3.0]])
    y = np.array([1, 0, 2])
    weights = np.array([0.5, 2.0, 3.0])
    w = weights[y][:, None]
    gradient = w * (softmax(z) - one_hot(y, 3)) / len(y)  # divided by 3 rows, not by Σw = 5.5
    path = _mean_file(tmp_path / "by_rows.csv", z, y, gradient)
    args = ("check", "--csv", path, "--grad-cols", "grad_*", "--reduction", "mean", "--weight", "0.5,2,3")
    result = sce(*args)
    assert result.exit_code == 1
    assert f"mistake: {catalogue.WEIGHT_SUM_BY_ROW_COUNT.name}" in result.stdout.splitlines()
    right = _mean_file(tmp_path / "right.csv", z, y, gradient * len(y) / weights[y].sum())
    assert sce("check", "--csv", right, *args[3:]).exit_code == 0


@pytest.mark.parametrize(
    ("reduction", "mistake"), [("none", catalogue.MEAN_NOT_NONE), ("sum", catalogue.MEAN_NOT_SUM)]
)
def test_check_csv_names_a_mean_where_none_or_sum_is_graded(tmp_path, sce, reduction, mistake):
    # PyTorch's default mean, (p − y)/D, graded as 'none' or 'sum': D is the file's weight sum, 5.5 here.
    z = np.array([[2.0, 3.0, 4.0], [1.5, -0.5, 0.25], [-1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
    y = np.array([1, 0, -100, 2])
    weights = np.array([0.5, 2.0, 3.0])
    counted = y != -100
    safe = np.where(counted, y, 0)
    per_row = np.where(counted[:, None], weights[safe][:, None] * (softmax(z) - one_hot(safe, 3)), 0.0)
    flags = {"reduction": "--reduction"}
    graded = ("--grad-cols", "grad_*", "--reduction", reduction, "--weight", "0.5,2,3")
    for divisor, named in ((weights[safe][counted].sum(), True), (len(y), False), (2.0, False)):
        path = _mean_file(tmp_path / "mean.csv", z, y, per_row / divisor)
        result = sce("check", "--csv", path, *graded)
        assert result.exit_code == 1
        assert (f"mistake: {mistake.worded_name(flags)}" in result.stdout.splitlines()) is named, (divisor, result.stdout)
    right = _mean_file(tmp_path / "right.csv", z, y, per_row)
    assert sce("check", "--csv", right, *graded).exit_code == 0
