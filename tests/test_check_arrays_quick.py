"""sce check --arrays DUMP --quick: the quick check of a dump of hidden states, what it prints and
its exit status; --quick refused where it means nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_check_arrays_hidden_states import dump, save

STATEMENT = (
    "quick check (seed 0): the loss and grad_bias compared whole, and 16 rows of grad_hidden and 16 of "
    "grad_classifier; every row through 4 random projections, which miss an entry wrong by 1000× its row's "
    "summed allowance with probability at most 1e-12"
)


@pytest.mark.parametrize("case_id", ["padding-only-rows-float32", "ignored-runs-bfloat16", "extreme-logits-float32"])
def test_a_correct_kernel_passes_the_quick_check_and_says_what_it_may_miss(tmp_path, sce, case_id):
    result = sce("check", "--arrays", save(tmp_path, dump(case_id)), "--quick")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("verdict: correct for ")
    statement = next(line for line in lines if line.startswith("quick check (seed 0): "))
    assert statement.endswith(STATEMENT.split("; ", 1)[1])
    assert any(line.startswith("checked: ") and line.endswith("quick check)") for line in lines)


def test_ignored_rows_counted_fail_the_quick_check(tmp_path, sce):
    result = sce("check", "--arrays", save(tmp_path, dump(counts_ignored=True)), "--quick")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "verdict: not correct for float32"


def test_one_row_wrong_is_found_and_placed(tmp_path, sce):
    arrays = dump()
    arrays["grad_hidden"] = arrays["grad_hidden"].copy()
    arrays["grad_hidden"][5] *= np.float32(1.5)  # a counted row
    result = sce("check", "--arrays", save(tmp_path, arrays), "--quick", "--format", "json")
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert found["mode"] == "quick" and found["quick"]["seed"] == 0
    assert found["quick"]["miss_probability"] == {"10": 0.0001, "1000": 1e-12}
    assert found["grad_hidden"]["passed"] is False and found["grad_hidden"]["worst_entry"][0] == 5
    assert found["loss"]["passed"] is True


def test_quick_is_refused_with_a_dump_of_logits(tmp_path, sce):
    path = tmp_path / "logits.npz"
    np.savez(path, logits=np.zeros((2, 3)), labels=np.array([0, 1]), grad=np.zeros((2, 3)))
    result = sce("check", "--arrays", path, "--quick")
    assert result.exit_code == 2
    assert result.stderr == (
        "sce: error: --quick goes with a dump of hidden states (hidden, classifier, labels), not with logits\n"
    )


def test_quick_is_refused_without_arrays(sce):
    result = sce("check", "2", "3", "4", "--label", "1", "--grad", "0.09,-0.755,0.665", "--quick")
    assert result.exit_code == 2
    assert result.stderr == "sce: error: --quick goes with --arrays FILE holding hidden states (hidden, classifier, labels)\n"


def test_the_seed_chooses_the_sample_and_is_named(tmp_path, sce):
    path = save(tmp_path, dump())
    lines = {
        seed: sce("check", "--arrays", path, "--quick", "--seed", seed, "--format", "json") for seed in ("0", "7")
    }
    documents = {seed: json.loads(result.stdout) for seed, result in lines.items()}
    assert all(result.exit_code == 0 for result in lines.values())
    quick = {seed: json.dumps(document) for seed, document in documents.items()}
    assert '"seed": 7' in quick["7"] and '"seed": 0' in quick["0"]
    assert quick["0"] != quick["7"]  # other rows sampled
    default = sce("check", "--arrays", path, "--quick", "--format", "json")
    assert json.loads(default.stdout) == documents["0"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--seed", "3"], "--seed chooses the rows --quick samples: give --quick too, or leave it out"),
        (["--quick", "--seed", "-1"], "--seed: a whole number from 0, not -1"),
    ],
)
def test_a_seed_without_quick_or_below_zero_is_one_line(tmp_path, sce, arguments, message):
    result = sce("check", "--arrays", save(tmp_path, dump()), *arguments)
    assert result.exit_code == 2
    assert result.stderr == f"sce: error: {message}\n"


def test_a_seed_is_refused_with_a_dump_of_logits_and_without_arrays(tmp_path, sce):
    path = tmp_path / "logits.npz"
    np.savez(path, logits=np.zeros((2, 3)), labels=np.array([0, 1]), grad=np.zeros((2, 3)))
    result = sce("check", "--arrays", path, "--seed", "1")
    assert (result.exit_code, result.stderr) == (
        2, "sce: error: --seed goes with a dump of hidden states (hidden, classifier, labels), not with logits\n"
    )  # fmt: skip
    result = sce("check", "2", "3", "4", "--label", "1", "--grad", "0.09,-0.755,0.665", "--seed", "1")
    assert (result.exit_code, result.stderr) == (
        2, "sce: error: --seed goes with --arrays FILE holding hidden states (hidden, classifier, labels)\n"
    )  # fmt: skip
