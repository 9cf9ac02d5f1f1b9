"""sce check --arrays RANK0 RANK1 …: a vocabulary-parallel kernel's dumps, one per rank, checked
without gathering them; a set that does not fit together is one line."""

from __future__ import annotations

import numpy as np
import pytest

from sce.cli.exit_status import ExitStatus
from tests.test_check_arrays_hidden_states import dump, save

SHARDED = ("classifier", "bias", "grad_classifier", "grad_bias")


def ranks(tmp_path, arrays, cuts, prefix="rank"):  # noqa: ANN001, ANN201
    """The dump split over the vocabulary at ``cuts``, one file per rank, their paths in order."""
    bounds = [0, *cuts, len(arrays["classifier"])]
    paths = []
    for rank, (start, stop) in enumerate(zip(bounds, bounds[1:])):
        part = {name: value[start:stop] if name in SHARDED else value for name, value in arrays.items()}
        paths.append(save(tmp_path, part, f"{prefix}{rank}.npz"))
    return paths


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("case_id", ["padding-only-rows-float32", "ignored-runs-bfloat16"])
def test_a_correct_kernels_rank_dumps_pass_as_the_whole_dump_does(tmp_path, sce, case_id, quick):
    arrays = dump(case_id)
    whole = sce("check", "--arrays", save(tmp_path, arrays), *(["--quick"] if quick else []))
    assert whole.exit_code == 0
    v = len(arrays["classifier"])
    result = sce("check", "--arrays", *ranks(tmp_path, arrays, [v // 3, v // 2]), *(["--quick"] if quick else []))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == whole.stdout.splitlines()[-1]
    checked = next(line for line in result.stdout.splitlines() if line.startswith("checked: "))
    assert f"× {v} classes" in checked  # the whole vocabulary, from the shards


def test_one_ranks_wrong_classifier_gradient_fails(tmp_path, sce):
    arrays = dump()
    arrays["grad_classifier"] = arrays["grad_classifier"].copy()
    arrays["grad_classifier"][-2] *= np.float32(1.5)  # in the last rank's shard
    result = sce("check", "--arrays", *ranks(tmp_path, arrays, [10]))
    assert result.exit_code == ExitStatus.WRONG
    assert result.stdout.splitlines()[-1] == "verdict: not correct for float32"


def test_ranks_given_out_of_the_vocabularys_order_fail(tmp_path, sce):
    first, second = ranks(tmp_path, dump(), [10])
    assert sce("check", "--arrays", second, first).exit_code == ExitStatus.WRONG


@pytest.mark.parametrize("order", [(1, 0, 2), (0, 2, 1)])
def test_a_correct_kernels_ranks_given_with_two_neighbours_swapped_say_the_order_is_suspect(tmp_path, sce, order):
    arrays = dump("ignored-runs-float32")
    v = len(arrays["classifier"])
    paths = ranks(tmp_path, arrays, [v // 3, v // 2])
    given = [paths[k] for k in order]
    result = sce("check", "--arrays", *given)
    assert result.exit_code == ExitStatus.WRONG  # the outputs as given are still not correct
    k = next(k for k in range(2) if order[k] > order[k + 1])
    lines = result.stdout.splitlines()
    assert lines[-3] == "mistake: rank dumps out of the vocabulary's order"
    assert lines[-2].startswith(f"fix: with {given[k]} and {given[k + 1]} swapped every output is correct"), lines[-2]
    assert lines[-1] == "verdict: not correct for float32"


def test_a_wrong_kernels_ranks_in_order_are_not_called_out_of_order(tmp_path, sce):
    arrays = dump()
    arrays["grad_classifier"] = arrays["grad_classifier"].copy()
    arrays["grad_classifier"][-2] *= np.float32(1.5)
    result = sce("check", "--arrays", *ranks(tmp_path, arrays, [10]))
    assert result.exit_code == ExitStatus.WRONG
    assert "order" not in result.stdout


def _one_line(result) -> str:  # noqa: ANN001
    assert result.exit_code in (ExitStatus.ERROR, ExitStatus.USAGE), result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_rank_dumps_with_other_hidden_states_are_one_line(tmp_path, sce):
    arrays = dump()
    first, _ = ranks(tmp_path, arrays, [10])
    _, other = ranks(tmp_path, dict(arrays, hidden=arrays["hidden"] * 2), [10], prefix="other")
    assert _one_line(sce("check", "--arrays", first, other)) == (
        f"sce: error: {other}: array 'hidden' differs from {first}'s: every rank's dump holds the same hidden "
        "(a vocabulary-parallel kernel splits only the classifier, the bias and their gradients)\n"
    )


def test_rank_dumps_whose_hidden_size_differs_are_one_line(tmp_path, sce):
    arrays = dump()
    first, _ = ranks(tmp_path, arrays, [10])
    wide = {name: np.hstack([value, value]) if name in ("hidden", "classifier", "grad_hidden", "grad_classifier")
            else value for name, value in arrays.items()}  # fmt: skip
    _, other = ranks(tmp_path, wide, [10], prefix="wide")
    d = arrays["hidden"].shape[1]
    assert _one_line(sce("check", "--arrays", first, other)) == (
        f"sce: error: {other}: hidden size D = {2 * d}, but {first} has D = {d}: every rank's dump holds the same "
        "hidden states\n"
    )


def test_a_missing_rank_is_named_when_the_labels_reach_past_the_shards(tmp_path, sce):
    arrays = dump()
    labels = arrays["labels"]
    top = int(labels[labels >= 0].max())
    paths = ranks(tmp_path, arrays, [top // 2, top])  # the last rank holds the top label
    stderr = _one_line(sce("check", "--arrays", *paths[:2]))
    assert stderr == (
        f"sce: error: {paths[0]}: array 'labels': label {top} is beyond the {top} classes the 2 dumps hold "
        f"together (0 to {top - 1}): is a rank's dump missing?\n"
    )


def test_rank_dumps_whose_ignored_rows_use_another_index_name_the_classes_they_hold_together(tmp_path, sce):
    arrays = dump("ignored-runs-float32")  # rows ignored with -100, checked with --ignore-index 3
    v = len(arrays["classifier"])
    paths = ranks(tmp_path, arrays, [v // 2])
    whole = save(tmp_path, arrays, "whole.npz")
    stderr = _one_line(sce("check", "--arrays", *paths, "--ignore-index", "3"))
    assert f"label -100 is out of range for {v} classes" in stderr and f"use 0 to {v - 1} (or 3 " in stderr, stderr
    # word for word what the one dump of the whole says, naming the first rank's file
    assert stderr == _one_line(sce("check", "--arrays", whole, "--ignore-index", "3")).replace(str(whole), str(paths[0]))


def test_the_same_dump_twice_and_ranks_of_other_arrays_are_one_line(tmp_path, sce):
    arrays = dump()
    first, second = ranks(tmp_path, arrays, [10])
    twice = sce("check", "--arrays", first, first)
    assert _one_line(twice) == (
        f"sce: error: {first} is given twice: give each rank's dump once, in the order of the vocabulary\n"
    )
    assert twice.exit_code == ExitStatus.USAGE  # a command line's slip, as a part named twice is for sce batch
    _, bare = ranks(tmp_path, {k: v for k, v in arrays.items() if k != "grad_bias"}, [10], prefix="bare")
    assert _one_line(sce("check", "--arrays", first, bare)) == (
        f"sce: error: {first} holds an array 'grad_bias' and {bare} does not: give every rank the same arrays\n"
    )
    _, wider = ranks(tmp_path, dict(arrays, grad_classifier=arrays["grad_classifier"].astype(np.float64)), [10],
                     prefix="wider")  # fmt: skip
    assert "array 'grad_classifier' is float64, but" in _one_line(sce("check", "--arrays", first, wider))


@pytest.mark.parametrize("spelling", ["dot-slash", "symlink", "hard link"])
def test_a_rank_dump_given_twice_under_another_name_is_refused_in_one_line(tmp_path, sce, monkeypatch, spelling):
    first, second = ranks(tmp_path, dump(), [10])
    monkeypatch.chdir(tmp_path)
    again = "./" + first.name  # a string: pathlib would drop the ./
    if spelling == "symlink":
        (tmp_path / "again.npz").symlink_to(first)
        again = "again.npz"
    elif spelling == "hard link":
        (tmp_path / "again.npz").hardlink_to(first)
        again = "again.npz"
    result = sce("check", "--arrays", first.name, again, second.name)
    assert result.exit_code == ExitStatus.USAGE
    assert _one_line(result) == (
        f"sce: error: {first.name} (also as {again}) is given twice: give each rank's dump once, in the order of "
        "the vocabulary\n"
    )
    assert result.stdout == ""


def test_several_dumps_of_logits_are_refused_in_one_line(tmp_path, sce):
    path = tmp_path / "logits.npz"
    np.savez(path, logits=np.zeros((2, 3)), labels=np.array([0, 1]), grad=np.zeros((2, 3)))
    first, _ = ranks(tmp_path, dump(), [10])
    assert _one_line(sce("check", "--arrays", path, first)) == (
        f"sce: error: {path} holds logits: several dumps are a vocabulary-parallel kernel's, one per rank, each "
        "holding hidden, classifier and labels; give one dump of logits\n"
    )


def test_typed_numbers_after_arrays_are_refused_as_before(tmp_path, sce):
    first, _ = ranks(tmp_path, dump(), [10])
    result = sce("check", "--arrays", first, "2", "3")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr == (
        "sce: error: give the arrays (--arrays or --logits FILE) alone, without LOGITS, --csv, --label or --target\n"
    )


def _counting_checks(monkeypatch) -> list[tuple[str, ...]]:  # noqa: ANN001
    """The outputs of each check the command runs, in order, as it runs them."""
    import sce.grading.linear.grade as grade

    checked: list[tuple[str, ...]] = []
    original = grade.check_linear

    def counted(*args, outputs, **keywords):  # noqa: ANN002, ANN003, ANN202
        checked.append(tuple(sorted(name for name, value in outputs.items() if value is not None)))
        return original(*args, outputs=outputs, **keywords)

    monkeypatch.setattr(grade, "check_linear", counted)
    return checked


def test_the_order_of_many_ranks_is_searched_by_the_loss_before_any_full_check(tmp_path, sce, monkeypatch):
    arrays = dump("ignored-runs-float32")
    v = len(arrays["classifier"])
    paths = ranks(tmp_path, arrays, [v // 6, v // 3, v // 2, 2 * v // 3, 5 * v // 6])
    given = [*paths[:4], paths[5], paths[4]]  # the last two swapped (classes 26-32 and 33-39)
    checked = _counting_checks(monkeypatch)
    result = sce("check", "--arrays", *given)
    assert result.stdout.splitlines()[-3] == "mistake: rank dumps out of the vocabulary's order"
    every_output = checked[0]
    assert "grad_classifier" in every_output and "loss" in every_output
    cheap = tuple(name for name in every_output if name in ("grad_bias", "loss"))
    assert checked.count(every_output) == 2  # as given, then the one pair whose cheap outputs fit
    # ∂L/∂E fails worst at row 3, whose label is class 26: only the swaps of ranks 3, 4 (classes 20-32) and 4, 5
    # (26-39) move it; the other three pairs are ruled out without a check.
    assert arrays["labels"][3] == 26
    assert checked.count(cheap) == 2


COPY_NAMED = (
    "fix: {target} holds the same shard of the classifier (and of every sharded array) as {source}, byte for byte: "
    "a rank's dump copied over another's, or written under its name? give each rank's own dump"
)


@pytest.mark.parametrize("copied", [(0, 1), (2, 1), (2, 0)])
def test_a_ranks_dump_copied_over_anothers_is_named_as_the_mistake(tmp_path, sce, copied):
    # One rank's dump written over another's (each rank saved under the same name, or a copy went wrong): the
    # same file under two names is refused, but a byte-for-byte copy was graded as two shards, "not correct",
    # with no word that both hold the same classifier.
    paths = ranks(tmp_path, dump("ignored-runs-float32"), [13, 26])  # 13, 13 and 14 classes
    source, target = (paths[k] for k in copied)
    target.write_bytes(source.read_bytes())
    result = sce("check", "--arrays", *paths)
    assert result.exit_code == ExitStatus.WRONG
    first, second = sorted((source, target))
    assert result.stdout.splitlines()[-3:] == [
        "mistake: two ranks' dumps hold the same shard",
        COPY_NAMED.format(source=first, target=second),
        "verdict: not correct for float32",
    ]


def test_a_copy_that_leaves_a_label_beyond_the_shards_names_the_copy(tmp_path, sce):
    arrays = dump("ignored-runs-float32")
    assert int(arrays["labels"].max()) == 39  # the last class: beyond the 39 classes three copies of 13 hold
    paths = ranks(tmp_path, arrays, [13, 26])
    paths[2].write_bytes(paths[0].read_bytes())
    result = sce("check", "--arrays", *paths)
    assert (result.exit_code, result.stdout) == (ExitStatus.ERROR, "")
    assert result.stderr == (
        f"sce: error: {paths[0]}: array 'labels': label 39 is beyond the 39 classes the 3 dumps hold together "
        f"(0 to 38): {paths[2]} holds the same shards as {paths[0]}, byte for byte: a rank's dump copied over "
        "another's?\n"
    )


def test_ranks_whose_classifier_shards_alone_are_alike_are_not_called_copies(tmp_path, sce):
    # A classifier whose rows repeat every 13 classes (a shard the same as another's, as a zero-initialised one
    # is) with each rank's own ∂L/∂C: a right kernel passes, and a wrong one is not said to be a copy.
    arrays = dump("ignored-runs-float32")
    v = len(arrays["classifier"])
    assert v == 40
    repeated = {**arrays, "classifier": arrays["classifier"][np.arange(v) % 13]}
    from tests.test_check_arrays_hidden_states import kernel

    repeated.update(kernel(repeated["hidden"], repeated["classifier"], repeated["labels"]))
    assert sce("check", "--arrays", *ranks(tmp_path, repeated, [13, 26])).exit_code == 0
    repeated["grad_hidden"] = repeated["grad_hidden"] * np.float32(2)
    result = sce("check", "--arrays", *ranks(tmp_path, repeated, [13, 26], prefix="wrong"))
    assert result.exit_code == ExitStatus.WRONG and "same shard" not in result.stdout


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_rank_dump_that_is_no_readable_file_is_named_as_a_single_dump_is(tmp_path, sce, kind):
    first, _ = ranks(tmp_path, dump(), [10])
    other = tmp_path / "other.npz"
    if kind == "folder":
        other.mkdir()
    result = sce("check", "--arrays", first, other)
    why = "no such file" if kind == "missing" else "is a directory"
    assert _one_line(result) == f"sce: error: {other}: cannot read: {why}\n"
    assert result.exit_code == sce("check", "--arrays", other).exit_code


SIXTEEN_CUTS = [2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27, 30, 32, 35, 37]  # 40 classes over 16 ranks of 2 or 3


def test_sixteen_ranks_with_two_neighbours_swapped_name_them_after_a_few_checks(tmp_path, sce, monkeypatch):
    # Ranks 4 (classes 10, 11) and 5 (12-14) given the other way round, so classes 10-14 are misplaced.
    arrays = dump("ignored-runs-float32")
    assert len(arrays["classifier"]) == 40 and {10, 12} <= set(arrays["labels"].tolist())
    paths = ranks(tmp_path, arrays, SIXTEEN_CUTS)
    given = [*paths[:4], paths[5], paths[4], *paths[6:]]
    checked = _counting_checks(monkeypatch)
    result = sce("check", "--arrays", *given)
    assert result.exit_code == ExitStatus.WRONG
    assert result.stdout.splitlines()[-3:] == [
        "mistake: rank dumps out of the vocabulary's order",
        f"fix: with {paths[5]} and {paths[4]} swapped every output is correct: give the ranks' dumps in the order of "
        f"the vocabulary ({paths[4]} before {paths[5]})",
        "verdict: not correct for float32",
    ]
    # ∂L/∂E fails worst at row 4, label 12. As given, the ranks hold 2, 3, 2, 3, 3, 2, … classes: of the 15 pairs of
    # neighbours only the 4th (classes 7-12) and the 5th (10-14) move class 12; the 4th fails the loss.
    every_output, cheap = checked[0], ("loss",)
    assert checked == [every_output, cheap, cheap, every_output]


def test_a_wrong_kernels_sixteen_ranks_in_order_are_not_searched_past_the_failing_rows_label(tmp_path, sce, monkeypatch):
    arrays = dump("ignored-runs-float32")
    arrays["grad_hidden"] = arrays["grad_hidden"].copy()
    arrays["grad_hidden"][4] *= np.float32(1.5)  # row 4, label 12 (rank 5's classes 12-14)
    assert arrays["labels"][4] == 12
    checked = _counting_checks(monkeypatch)
    result = sce("check", "--arrays", *ranks(tmp_path, arrays, SIXTEEN_CUTS))
    assert result.exit_code == ExitStatus.WRONG
    assert "order" not in result.stdout
    # Only the swaps of ranks 4, 5 and 5, 6 move row 4's label: two cheap checks (each fails the loss), no full one.
    assert checked[1:] == [("loss",), ("loss",)]
