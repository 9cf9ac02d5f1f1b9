"""`sce check --csv`: which column is what. Gradient columns are paired with their logit columns
by name (grad_X with X), never by position; every logit column joins the softmax whichever
gradient columns are graded; a NaN or an infinity given for a finite value is a wrong entry.

The right answers are written from mpmath's softmax at 50 digits (tests/reference.py),
correctly rounded to float64, not from sce's own output."""

from __future__ import annotations

import json
import random
from pathlib import Path

import mpmath as mp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference import log_softmax

# --- files of right answers ----------------------------------------------------------------------------------


def exact_columns(rows: list[tuple[list[float], int]]) -> dict[str, list[str]]:
    """The columns of a file of right answers: z<k>, label, loss and grad_z<k>, each number the
    float64 nearest the value mpmath gives at 50 digits, written as Python writes it."""
    classes = len(rows[0][0])
    columns: dict[str, list[str]] = {f"z{k}": [] for k in range(classes)}
    columns.update({"label": [], "loss": []})
    columns.update({f"grad_z{k}": [] for k in range(classes)})
    for logits, label in rows:
        log_p = log_softmax(logits)
        for k, value in enumerate(logits):
            columns[f"z{k}"].append(repr(value))
            columns[f"grad_z{k}"].append(repr(float(mp.exp(log_p[k]) - (1 if k == label else 0))))
        columns["label"].append(str(label))
        columns["loss"].append(repr(float(-log_p[label])))
    return columns


def write_columns(path: Path, columns: dict[str, list[str]], order: list[str] | None = None) -> Path:
    names = order or list(columns)
    rows = range(len(columns[names[0]]))
    lines = [",".join(names)] + [",".join(columns[name][row] for name in names) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


ROWS = [([2.0, 3.0, 4.0], 1), ([0.0, 40.0, -1.0], 1), ([1.5, -0.5, 0.25], 0), ([-1.0, 2.0, 0.5], 2)]


def test_gradient_columns_in_another_order_than_the_logits_pass(tmp_path, sce):
    columns = exact_columns(ROWS)
    path = write_columns(tmp_path / "in.csv", columns, ["z0", "z1", "z2", "label", "grad_z2", "grad_z0", "grad_z1"])
    for extra in ([], ["--logit-cols", "z0,z1,z2"], ["--logit-cols", "z*"]):
        result = sce("check", "--csv", path, "--grad-cols", "grad_*", *extra)
        assert result.exit_code == 0, (extra, result.stdout, result.stderr)
        assert "rows wrong: 0" in result.stdout


def test_logit_columns_after_their_gradient_columns_pass(tmp_path, sce):
    columns = exact_columns(ROWS)
    order = ["grad_z1", "label", "grad_z0", "z0", "loss", "grad_z2", "z1", "z2"]
    path = write_columns(tmp_path / "in.csv", columns, order)
    result = sce("check", "--csv", path, "--grad-cols", "grad_*", "--loss-col", "loss")
    assert result.exit_code == 0, result.stdout + result.stderr


def test_some_gradient_columns_graded_keep_every_logit_in_the_softmax(tmp_path, sce):
    path = write_columns(tmp_path / "in.csv", exact_columns(ROWS))
    for extra in ([], ["--logit-cols", "z0,z1,z2"]):
        result = sce("check", "--csv", path, "--grad-cols", "grad_z0,grad_z1", *extra)
        assert result.exit_code == 0, (extra, result.stdout, result.stderr)
        assert "graded 2 of 3 gradient columns; all 3 logit columns join the softmax\n" in result.stdout
    document = json.loads(sce("check", "--csv", path, "--grad-cols", "grad_z2", "-f", "json").stdout)
    assert (document["correct"], document["classes"], document["graded_gradient_columns"]) == (True, 3, 1)


def test_every_gradient_column_graded_says_nothing_of_a_part(tmp_path, sce):
    path = write_columns(tmp_path / "in.csv", exact_columns(ROWS))
    result = sce("check", "--csv", path, "--grad-cols", "grad_*")
    assert result.exit_code == 0 and "graded" not in result.stdout


def test_a_file_with_some_gradient_columns_needs_its_logit_columns_named(tmp_path, sce):
    columns = exact_columns(ROWS)
    path = write_columns(tmp_path / "in.csv", columns, ["z0", "z1", "z2", "label", "grad_z0", "grad_z1"])
    refused = sce("check", "--csv", path, "--grad-cols", "grad_*")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "sce: error: column 'z2' has no gradient column grad_z2: say whether it is a logit with --logit-cols "
        "(every logit column joins the softmax, graded or not; those with a gradient column are z0, z1)\n"
    )
    graded = sce("check", "--csv", path, "--grad-cols", "grad_*", "--logit-cols", "z*")
    assert graded.exit_code == 0, graded.stdout + graded.stderr
    assert "graded 2 of 3 gradient columns" in graded.stdout


def test_an_id_column_needs_the_logit_columns_named(tmp_path, sce):
    columns = {"id": ["a", "b", "c", "d"], **exact_columns(ROWS)}
    path = write_columns(tmp_path / "in.csv", columns)
    refused = sce("check", "--csv", path, "--grad-cols", "grad_*")
    assert refused.exit_code == 2
    assert "column 'id' has no gradient column grad_id" in refused.stderr
    assert sce("check", "--csv", path, "--grad-cols", "grad_*", "--logit-cols", "z*").exit_code == 0


def test_an_ungraded_gradient_column_of_no_column_needs_the_logit_columns_named(tmp_path, sce):
    columns = exact_columns(ROWS)
    columns["grad_q"] = columns["grad_z1"]
    path = write_columns(tmp_path / "in.csv", columns)
    refused = sce("check", "--csv", path, "--grad-cols", "grad_z0")
    assert (refused.exit_code, refused.stderr) == (
        2,
        "sce: error: column 'grad_q' is the gradient of no column (there is no column 'q'); name the logit columns "
        "with --logit-cols (every logit column joins the softmax, graded or not; those with a gradient column are "
        "z0, z1, z2)\n",
    )
    assert sce("check", "--csv", path, "--grad-cols", "grad_z0", "--logit-cols", "z*").exit_code == 0


def test_gradient_columns_named_otherwise_pair_with_the_logit_columns_in_order(tmp_path, sce):
    columns = exact_columns(ROWS)
    renamed = {("g" + name[6:] if name.startswith("grad_z") else name): values for name, values in columns.items()}
    path = write_columns(tmp_path / "in.csv", renamed, ["g2", "z0", "z1", "z2", "label", "g0", "g1"])
    result = sce("check", "--csv", path, "--grad-cols", "g0,g1,g2", "--logit-cols", "z0,z1,z2")
    assert result.exit_code == 0, result.stdout + result.stderr
    # In the file's order (g2, g0, g1) they would be the wrong classes: a pattern is refused.
    refused = sce("check", "--csv", path, "--grad-cols", "g*", "--logit-cols", "z0,z1,z2")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "sce: error: --grad-cols: column 'g2' is not named grad_<logit column>, and a pattern would pair the "
        "gradient columns with the logits by the file's order; write them out one by one, in the order of "
        "--logit-cols\n"
    )



# --- logit columns numbered as classes, in another order ------------------------------------------------------

REORDERED = ["z2", "label", "z0", "grad_z1", "z1", "grad_z2", "loss", "grad_z0"]
OUT_OF_ORDER = (
    "the logit columns are numbered out of order ('z2' before 'z0'): a class is a column's place among them, "
    "so sce will not guess whether 'z2' is class 0 (its place) or 2 (its name); write them out in class order, "
    "--logit-cols z0,z1,z2"
)


def test_logit_columns_reordered_in_sces_own_output_never_get_a_wrong_verdict(tmp_path, sce):
    # sce batch's own output, columns reordered: grad_z1 is the gradient of z1, and label 1 means z1,
    # though z1 is the third logit column in the file. Taken in the file's order the right file was
    # "not correct", with an off-by-one label that is not there.
    path = write_columns(tmp_path / "reordered.csv", exact_columns(ROWS), REORDERED)
    for extra, prefix in (([], ""), (["--logit-cols", "z*"], "--logit-cols: ")):
        result = sce("check", "--csv", path, "--grad-cols", "grad_*", "--loss-col", "loss", *extra)
        assert (result.exit_code, result.stdout) == (2, ""), extra
        assert result.stderr == f"sce: error: {prefix}{OUT_OF_ORDER}\n"
    listed = sce("check", "--csv", path, "--grad-cols", "grad_*", "--loss-col", "loss", "--logit-cols", "z0,z1,z2")
    assert listed.exit_code == 0, listed.stdout + listed.stderr
    assert "rows wrong: 0" in listed.stdout


def test_sce_batch_refuses_logit_columns_numbered_out_of_order_too(tmp_path, sce):
    columns = exact_columns(ROWS)
    path = write_columns(tmp_path / "in.csv", columns, ["z2", "z0", "z1", "label"])
    refused = sce("batch", path, "-q")
    assert (refused.exit_code, refused.stderr) == (1, f"sce: error: {OUT_OF_ORDER}\n")
    out = tmp_path / "out.csv"
    assert sce("batch", path, "-q", "--logit-cols", "z0,z1,z2", "-o", out).exit_code == 0
    written = out.read_text().splitlines()
    assert written[0].split(",")[-4:] == ["loss", "grad_z0", "grad_z1", "grad_z2"]
    # Columns in the file's own order, or numbered from 1, or named otherwise are taken as they come.
    for names in (["z0", "z1", "z2"], ["x1", "x2", "x3"], ["cat", "dog", "bird"]):
        renamed = {new: columns[old] for new, old in zip(names, ["z0", "z1", "z2"], strict=True)}
        renamed["label"] = columns["label"]
        assert sce("batch", write_columns(tmp_path / "ok.csv", renamed), "-q").exit_code == 0, names


def test_target_columns_numbered_out_of_order_are_refused_unless_written_out(tmp_path, sce):
    lines = ["z0,z1,z2,t2,t0,t1", "2,3,4,0.25,0.5,0.25"]
    path = tmp_path / "targets.csv"
    path.write_text("\n".join(lines) + "\n")
    refused = sce("batch", path, "-q", "--target-cols", "t*")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "sce: error: --target-cols: the target columns are numbered out of order ('t2' before 't0'): a class is a "
        "column's place among them, so sce will not guess whether 't2' is class 0 (its place) or 2 (its name); "
        "write them out in class order, --target-cols t0,t1,t2\n"
    )
    out = tmp_path / "out.csv"
    assert sce("batch", path, "-q", "--target-cols", "t0,t1,t2", "-o", out).exit_code == 0
    # t0 = 0.5 with z0 = 2: L = lse(2, 3, 4) − (0.5·2 + 0.25·3 + 0.25·4), from mpmath.
    loss = mp.log(mp.e**2 + mp.e**3 + mp.e**4) - mp.mpf("2.75")
    header, row = out.read_text().splitlines()
    assert abs(float(row.split(",")[header.split(",").index("loss")]) - float(loss)) < 1e-15

# --- bad column options: one line each ------------------------------------------------------------------------

BAD_OPTIONS = [
    (
        ["--grad-cols", "grad_*", "--logit-cols", "z0,z0"],
        "--logit-cols: column 'z0' is named twice; name each column once",
    ),
    (
        ["--grad-cols", "grad_*", "--logit-cols", "z*,z1"],
        "--logit-cols: column 'z1' is named twice (by 'z*' and by 'z1'); name each column once",
    ),
    (
        ["--grad-cols", "grad_z0,grad_z0"],
        "--grad-cols: column 'grad_z0' is named twice; name each column once",
    ),
    (
        ["--grad-cols", "grad_*", "--logit-cols", "z0,z1"],
        "--logit-cols: column 'z2' is left out, but its gradient column 'grad_z2' is graded; add it "
        "(every logit column joins the softmax, graded or not)",
    ),
    (
        ["--grad-cols", "grad_q"],
        "--grad-cols: column 'grad_q' is the gradient of no column (there is no column 'q'); name the logit "
        "columns with --logit-cols too, and the gradient columns are paired with them in the order both are written",
    ),
    (
        ["--grad-cols", "grad_q", "--logit-cols", "z*"],
        "--grad-cols: 1 gradient column for 3 logit columns: columns not named grad_<logit column> are paired "
        "with --logit-cols in order, so give one per logit column",
    ),
    (
        ["--grad-cols", "grad_z0,grad_q,grad_z2", "--logit-cols", "z*"],
        "--grad-cols: column 'grad_q' is the gradient of no column (there is no column 'q'), but 'grad_z0' is; "
        "name every gradient column grad_<logit column>, or none of them",
    ),
    (
        ["--grad-cols", "grad_z0", "--logit-cols", "z0,z1,z2,grad_z0"],
        "--logit-cols: column 'grad_z0' is a gradient column being graded; leave it out of --logit-cols",
    ),
    (
        ["--grad-cols", "grad_*", "--logit-cols", "z*,label"],
        "--logit-cols: column 'label' is the label column; name the label column with --label-col, "
        "or leave it out of --logit-cols",
    ),
    (
        ["--grad-cols", "grad_z1", "--loss-col", "grad_z1"],
        "--loss-col: column 'grad_z1' is already a gradient column being graded; a column is one thing only",
    ),
    (
        ["--grad-cols", "label"],
        "--grad-cols: column 'label' is already the label column; a column is one thing only",
    ),
    (
        ["--grad-cols", "grad_*", "--label-col", "z0", "--logit-cols", "z*"],
        "--logit-cols: column 'z0' is the label column; leave it out of --logit-cols",
    ),
]


def test_bad_column_options_get_one_line_and_status_2(tmp_path, sce):
    columns = exact_columns(ROWS)
    columns["grad_q"] = columns["grad_z1"]
    path = write_columns(tmp_path / "in.csv", columns)
    for options, message in BAD_OPTIONS:
        result = sce("check", "--csv", path, *options)
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"sce: error: {message}\n"), options


def test_a_missing_file_is_named_before_the_columns_to_grade(tmp_path, sce):
    missing = tmp_path / "missing.csv"
    for options in ([], ["--grad-cols", "grad_*"], ["--logit-cols", "z0,z0"]):
        result = sce("check", "--csv", missing, *options)
        assert result.exit_code == 2
        assert result.stderr == f"sce: error: --csv: cannot read {missing}: No such file or directory\n"
    folder = sce("check", "--csv", tmp_path)
    assert folder.stderr == f"sce: error: --csv: cannot read {tmp_path}: Is a directory\n"


def test_a_column_option_that_does_not_fit_the_file_has_one_status(tmp_path, sce):
    """A column the file lacks and a logit column the file calls its label are both the file's
    mismatch: 1 in sce batch (bad data), 2 in sce check --csv (cannot be graded)."""
    path = write_columns(tmp_path / "in.csv", exact_columns(ROWS))
    for options in (["--label-col", "nope"], ["--logit-cols", "label"], ["--logit-cols", "nope"]):
        batch = sce("batch", path, "-q", *options)
        check = sce("check", "--csv", path, "--grad-cols", "grad_*", *options)
        assert (batch.exit_code, check.exit_code) == (1, 2), options
        assert batch.stderr == check.stderr and len(check.stderr.splitlines()) == 1
    # Two options that contradict each other, whatever the file: the command line's, 2 in both.
    contradiction = ["--label-col", "z0", "--logit-cols", "z0"]
    assert sce("batch", path, "-q", *contradiction).exit_code == 2
    assert sce("check", "--csv", path, "--grad-cols", "grad_*", *contradiction).exit_code == 2


# --- NaN and infinities given ---------------------------------------------------------------------------------


def test_nan_and_infinities_given_are_wrong_entries_counted_and_shown(tmp_path, sce):
    columns = exact_columns(ROWS)
    columns["grad_z0"][0] = "nan"
    columns["grad_z2"][1] = "-inf"
    exact = float(columns["grad_z1"][2])
    columns["grad_z1"][2] = "0.5"  # a finite wrong entry
    path = write_columns(tmp_path / "in.csv", columns)
    result = sce("check", "--csv", path, "--grad-cols", "grad_*")
    assert result.exit_code == 1
    assert "rows wrong: 3\nnot finite: 2 entries (NaN or ±inf where a finite value is expected)\n" in result.stdout
    document = json.loads(sce("check", "--csv", path, "--grad-cols", "grad_*", "-f", "json").stdout)
    assert document["non_finite_entries"] == 2 and document["wrong_rows"] == 3
    # Listed first, as the worst; the largest error is the finite entry's: |0.5 - grad_z1 of line 4|.
    shown = [(cell["line"], cell["column"], cell["written"]) for cell in document["worst"]]
    assert sorted(shown[:2]) == [(2, "grad_z0", "nan"), (3, "grad_z2", "-inf")]
    assert shown[2] == (4, "grad_z1", "0.5")
    assert document["max_abs_error"] == abs(0.5 - exact)


# --- properties -----------------------------------------------------------------------------------------------

logit_text = st.integers(-4000, 4000).map(lambda n: n / 100)


@st.composite
def answer_files(draw: st.DrawFn) -> list[tuple[list[float], int]]:
    classes = draw(st.integers(1, 4))
    count = draw(st.integers(1, 3))
    return [
        (draw(st.lists(logit_text, min_size=classes, max_size=classes)), draw(st.integers(0, classes - 1)))
        for _ in range(count)
    ]


def graded(sce, path: Path, *options: str) -> dict:
    result = sce("check", "--csv", path, "--loss-col", "loss", "-f", "json", *options)
    assert result.exit_code in (0, 1, 3), result.stderr
    document = json.loads(result.stdout)
    assert document["correct"] == (result.exit_code == 0)
    # An exact value written short (0.0 for the gradient of one class) has the few digits of any
    # answer written so: right, but too few digits to tell from a mistake, as typed check says.
    assert document["verdict"] == {0: "correct", 1: "not_correct", 3: "too_few_digits"}[result.exit_code]
    return document


def spoil(columns: dict[str, list[str]], column: str, row: int, how: str) -> None:
    value = float(columns[column][row])
    columns[column][row] = {"shift": repr(value + 0.5 + abs(value)), "nan": "nan", "inf": "inf"}[how]


PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(rows=answer_files(), seed=st.randoms(use_true_random=False), spoilt=st.booleans())
def test_a_permutation_of_the_columns_never_changes_a_verdict(tmp_path, sce, rows, seed: random.Random, spoilt):
    columns = exact_columns(rows)
    if spoilt:
        spoil(columns, seed.choice([name for name in columns if name.startswith("grad_")]), 0, "shift")
    logits = [name for name in columns if name.startswith("z")]
    first = graded(sce, write_columns(tmp_path / "a.csv", columns), "--grad-cols", "grad_*")
    order = list(columns)
    seed.shuffle(order)
    permuted = write_columns(tmp_path / "b.csv", columns, order)
    named = graded(sce, permuted, "--grad-cols", "grad_*", "--logit-cols", ",".join(logits))
    # Without --logit-cols the classes are in the file's order: keep the logit columns' own order.
    slots = iter(logits)
    order = [next(slots) if name in logits else name for name in order]
    inferred = graded(sce, write_columns(tmp_path / "c.csv", columns, order), "--grad-cols", "grad_*")
    assert (first["verdict"] == "not_correct") == spoilt
    for document in (named, inferred):
        assert document["verdict"] == first["verdict"]
        assert document["wrong_rows"] == first["wrong_rows"]
        assert [cell["column"] for cell in document["worst"]] == [cell["column"] for cell in first["worst"]]


@PROPERTY_SETTINGS
@given(rows=answer_files(), seed=st.randoms(use_true_random=False), spoilt=st.booleans())
def test_logit_columns_in_any_order_are_refused_or_keep_the_verdict(tmp_path, sce, rows, seed: random.Random, spoilt):
    columns = exact_columns(rows)
    if spoilt:
        spoil(columns, seed.choice([name for name in columns if name.startswith("grad_")]), 0, "shift")
    order = list(columns)
    seed.shuffle(order)
    path = write_columns(tmp_path / "in.csv", columns, order)
    result = sce("check", "--csv", path, "--loss-col", "loss", "--grad-cols", "grad_*", "-f", "json")
    logits = [name for name in order if name in columns and name.startswith("z")]
    if logits != sorted(logits, key=lambda name: int(name[1:])):
        assert result.exit_code == 2 and "numbered out of order" in result.stderr
        return
    assert (result.exit_code == 1) == spoilt, result.stderr
    assert (json.loads(result.stdout)["verdict"] == "not_correct") == spoilt


@PROPERTY_SETTINGS
@given(rows=answer_files(), seed=st.randoms(use_true_random=False))
def test_any_subset_of_the_gradient_columns_of_a_right_file_passes(tmp_path, sce, rows, seed: random.Random):
    columns = exact_columns(rows)
    gradients = [name for name in columns if name.startswith("grad_")]
    chosen = seed.sample(gradients, seed.randint(1, len(gradients)))
    document = graded(sce, write_columns(tmp_path / "in.csv", columns), "--grad-cols", ",".join(chosen))
    assert document["wrong_rows"] == 0 and document["verdict"] != "not_correct", document
    assert (document["graded_gradient_columns"], document["classes"]) == (len(chosen), len(gradients))


@PROPERTY_SETTINGS
@given(
    rows=answer_files(),
    seed=st.randoms(use_true_random=False),
    how=st.sampled_from(["shift", "nan", "inf"]),
)
def test_a_wrong_entry_fails_and_is_reported_in_its_column(tmp_path, sce, rows, seed: random.Random, how):
    columns = exact_columns(rows)
    column = seed.choice([name for name in columns if name.startswith("grad_")] + ["loss"])
    row = seed.randrange(len(rows))
    spoil(columns, column, row, how)
    document = graded(sce, write_columns(tmp_path / "in.csv", columns), "--grad-cols", "grad_*")
    assert not document["correct"]
    assert document["wrong_rows"] == 1
    assert document["non_finite_entries"] == (0 if how == "shift" else 1)
    assert [(cell["line"], cell["column"]) for cell in document["worst"]] == [(row + 2, column)]


number_texts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["0.090", " 1e-3 ", "1.50E+2", "-0", "inf", "nan", "x", "", "12."]),
)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda width: st.lists(st.lists(number_texts, min_size=width, max_size=width), min_size=1, max_size=5)
    )
)
def test_the_tolerance_of_every_cell_follows_its_own_digits(rows):
    """Each cell of a block's graded columns is allowed half a unit in its own last written digit,
    whatever its row and column (the columns are read as one, then put back in place)."""
    import polars as pl

    from sce.number_text import tolerance_of, written_tolerances

    names = [f"c{k}" for k in range(len(rows[0]))]
    cells = {name: [row[k] for row in rows] for k, name in enumerate(names)}
    frame = pl.DataFrame(cells, schema=dict.fromkeys(names, pl.String))
    found = written_tolerances(frame, tuple(reversed(names)))
    expected = [[tolerance_of(row[k]) for k in reversed(range(len(names)))] for row in rows]
    assert found.shape == (len(rows), len(names))
    assert found.tolist() == expected


def test_a_mistake_is_named_whatever_the_order_and_number_of_gradient_columns(tmp_path, sce):
    columns = exact_columns(ROWS)
    for name in ("grad_z0", "grad_z1", "grad_z2"):
        columns[name] = [repr(-float(value)) for value in columns[name]]  # y - p: the sign flipped
    path = write_columns(tmp_path / "in.csv", columns, ["z0", "z1", "z2", "label", "grad_z2", "grad_z0", "grad_z1"])
    for chosen in ("grad_*", "grad_z2,grad_z1", "grad_z1"):
        document = json.loads(sce("check", "--csv", path, "--grad-cols", chosen, "-f", "json").stdout)
        assert [mistake["name"] for mistake in document["mistakes"]] == ["sign flipped: y − p instead of p − y"]


def test_sce_batch_refuses_a_column_named_twice_in_any_list(tmp_path, sce):
    path = tmp_path / "in.csv"
    path.write_text("z0,z1,t0,t1\n1,2,0.5,0.5\n")
    for options, message in (
        (
            ["--target-cols", "t*", "--logit-cols", "z0,z1,z0"],
            "--logit-cols: column 'z0' is named twice; name each column once",
        ),
        (
            ["--target-cols", "t*,t0"],
            "--target-cols: column 't0' is named twice (by 't*' and by 't0'); name each column once",
        ),
    ):
        result = sce("batch", path, "-q", *options)
        assert (result.exit_code, result.stderr) == (2, f"sce: error: {message}\n"), options


# --- a column given as a gradient that is something else -------------------------------------------------------

SCE_OUTPUT = ["z0", "z1", "z2", "label", "p_z0", "p_z1", "p_z2", "loss", "grad_z0", "grad_z1", "grad_z2"]


@pytest.mark.parametrize("order", [[name for name in SCE_OUTPUT if not name.startswith("p_")], SCE_OUTPUT])
def test_a_logit_column_given_as_a_gradient_column_is_named_in_the_error(tmp_path, sce, order):
    # `--grad-cols z0` was told that there is no column 'z0' (there is), or about 'p_z0', a column it did not name.
    columns = exact_columns(ROWS)
    columns.update({f"p_z{k}": ["0.5"] * len(ROWS) for k in range(3)})
    path = write_columns(tmp_path / "out.csv", columns, order)
    for named, suggested, extra in (
        ("z0", "grad_z0", []),
        ("z*", "grad_z*", []),
        ("z0,grad_z1", "grad_z0", []),
        ("z0", "grad_z0", ["--loss-col", "loss"]),
        ("z0", "grad_z0", ["--logit-cols", "z*"]),
    ):
        result = sce("check", "--csv", path, "--grad-cols", named, *extra)
        assert (result.exit_code, result.stdout) == (2, ""), named
        assert result.stderr == (
            "sce: error: --grad-cols: column 'z0' is a logit column (its gradient column is 'grad_z0'); "
            f"give the gradient columns to grade, as --grad-cols {suggested}\n"
        ), (named, extra)


def test_sce_batchs_loss_and_probability_columns_given_as_gradients_are_named_for_what_they_are(tmp_path, sce):
    columns = exact_columns(ROWS)
    columns.update({f"p_z{k}": ["0.5"] * len(ROWS) for k in range(3)})
    path = write_columns(tmp_path / "out.csv", columns, SCE_OUTPUT)
    loss = sce("check", "--csv", path, "--grad-cols", "loss")
    assert (loss.exit_code, loss.stderr) == (
        2,
        "sce: error: --grad-cols: column 'loss' is the loss column sce batch writes, not a gradient; "
        "grade it with --loss-col loss\n",
    )
    probability = sce("check", "--csv", path, "--grad-cols", "p_z1")
    assert (probability.exit_code, probability.stderr) == (
        2,
        "sce: error: --grad-cols: column 'p_z1' is the probability of 'z1' that sce batch writes, not a gradient; "
        "the gradient columns are grad_<logit column>\n",
    )
