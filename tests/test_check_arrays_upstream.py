"""sce check --arrays on a dump of hidden states that holds the upstream gradient its backward was given
(`grad_output`): used, as `check_linear_cross_entropy(grad_output=…)` uses it; and any array the check would not
read refused in one line, never left out without a word.

Expected values come from float64 numpy on float32 inputs (products of float32 numbers are exact in float64, and
the sizes here keep the sums' rounding far below an ulp of float32), never from sce's own output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

F32 = np.float32
ROWS, WIDTH, CLASSES = 12, 8, 10


def exact(upstream, reduction: str, seed: int = 0) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """The inputs and the exact loss, ∂L/∂E and ∂L/∂C, rounded once to float32, for the upstream gradient given:
    dL/dz_ij = u_i (p_ij − [j = y_i]) for 'none' (L = Σ u_i·loss_i), u (p − onehot) / N for 'mean'."""
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((ROWS, WIDTH)).astype(F32)
    classifier = (rng.standard_normal((CLASSES, WIDTH)) / 4).astype(F32)
    labels = rng.integers(0, CLASSES, ROWS)
    e, c = hidden.astype(np.float64), classifier.astype(np.float64)
    z = e @ c.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(ROWS)
    losses = -np.log(p[rows, labels])
    g = p.copy()
    g[rows, labels] -= 1
    u = np.asarray(upstream, np.float64)
    g = g * (u[:, None] if u.ndim else u) / (ROWS if reduction == "mean" else 1)
    loss = losses if reduction == "none" else np.array(losses.mean())
    return {
        "hidden": hidden, "classifier": classifier, "labels": labels, "loss": loss.astype(F32),
        "grad_hidden": (g @ c).astype(F32), "grad_classifier": (g.T @ e).astype(F32),
    }  # fmt: skip


PER_ROW = np.linspace(0.5, 2, ROWS).astype(F32)  # a loss weighted per token


def save(tmp_path: Path, arrays: dict[str, np.ndarray], name: str = "dump.npz") -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_a_per_row_upstream_gradient_in_the_dump_is_used(tmp_path, sce):
    # reduction 'none' with an upstream gradient of 0.5 to 2 per row: the array was left out, and the right ∂L/∂E
    # graded against an upstream gradient of 1 ("not correct", 4.4e+06 ulp) with no word about it.
    path = save(tmp_path, {**exact(PER_ROW, "none"), "grad_output": PER_ROW})
    result = sce("check", "--arrays", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "verdict: correct for float32"


def test_every_row_scaled_by_the_first_rows_upstream_gradient_is_named(tmp_path, sce):
    wrong = exact(np.full(ROWS, PER_ROW[0]), "none")
    path = save(tmp_path, {**wrong, "loss": exact(PER_ROW, "none")["loss"], "grad_output": PER_ROW})
    result = sce("check", "--arrays", path)
    assert result.exit_code == 1
    assert "mistake: every row's gradient scaled by the first row's upstream gradient" in result.stdout


@pytest.mark.parametrize("stored", [np.array(0.5, F32), np.array([0.5], F32)], ids=["0-d", "one"])
def test_one_upstream_number_scales_a_mean(tmp_path, sce, stored):
    arrays = exact(0.5, "mean")
    assert sce("check", "--arrays", save(tmp_path, {**arrays, "grad_output": stored})).exit_code == 0
    # The same answer without it is graded against an upstream gradient of 1: every gradient is half what it is.
    assert sce("check", "--arrays", save(tmp_path, arrays, "without.npz")).exit_code == 1


def test_an_upstream_gradient_that_does_not_fit_is_one_line(tmp_path, sce):
    path = tmp_path / "dump.npz"
    wrong_shape = {**exact(PER_ROW, "none"), "grad_output": PER_ROW[:3]}
    result = sce("check", "--arrays", save(tmp_path, wrong_shape))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"sce: error: {path}: array 'grad_output' has shape (3,); give the upstream gradient as one number, or one "
        f"per row ({ROWS}) for reduction none\n"
    )
    not_finite = {**exact(PER_ROW, "none"), "grad_output": np.where(np.arange(ROWS) == 4, np.inf, PER_ROW)}
    result = sce("check", "--arrays", save(tmp_path, not_finite))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"sce: error: {path}: array 'grad_output': grad_output is not finite\n"
    per_row_for_a_mean = {**exact(PER_ROW, "none"), "grad_output": PER_ROW}
    result = sce("check", "--arrays", save(tmp_path, per_row_for_a_mean), "--reduction", "mean")
    assert (result.exit_code, result.stdout, len(result.stderr.splitlines())) == (1, "", 1)
    assert result.stderr.startswith(f"sce: error: {path}: array 'grad_output': grad_output has shape ({ROWS},)")


KNOWN = (
    "'hidden', 'classifier', 'labels', 'bias', 'grad_output', 'loss', 'grad_hidden', 'grad_classifier', 'grad_bias'"
)


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("upstream", ""),
        ("grad_logits", ""),
        ("weight", " and give it as --weight"),
        ("z_loss", " and give it as --z-loss"),
        ("ignore_index", " and give it as --ignore-index"),
    ],
)
def test_an_array_the_check_would_not_read_is_refused_not_left_out(tmp_path, sce, name, how):
    path = save(tmp_path, {**exact(1.0, "mean"), name: np.ones(CLASSES, F32)})
    result = sce("check", "--arrays", path)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"sce: error: {path}: array '{name}' is not one a dump of hidden states holds ({KNOWN}); rename it, or "
        f"leave it out of the dump{how}\n"
    )


def test_rank_dumps_hold_the_same_upstream_gradient(tmp_path, sce):
    whole = exact(PER_ROW, "none")

    def shard(k: int, upstream: np.ndarray) -> dict[str, np.ndarray]:
        part = {name: whole[name][k : k + 5] for name in ("classifier", "grad_classifier")}
        return {**whole, **part, "grad_output": upstream}

    paths = [save(tmp_path, shard(k, PER_ROW), f"rank{k}.npz") for k in (0, 5)]
    result = sce("check", "--arrays", *paths)
    assert result.exit_code == 0, result.output
    other = save(tmp_path, shard(5, PER_ROW[::-1]), "other.npz")
    result = sce("check", "--arrays", paths[0], other)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"sce: error: {other}: array 'grad_output' differs from {paths[0]}'s")


def logits_dump(tmp_path: Path, **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 4)).astype(F32)
    p = np.exp(logits.astype(np.float64))
    p /= p.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, 6)
    grad = p.copy()
    grad[np.arange(6), labels] -= 1
    return save(tmp_path, {"logits": logits, "labels": labels, "grad": (grad / 6).astype(F32), **extra}, "logits.npz")


def test_a_dump_of_logits_refuses_an_upstream_gradient_it_would_not_read(tmp_path, sce):
    # A dump of logits is graded as ∂L/∂z of the loss itself: a 'grad_output' beside it was left out without a word.
    path = logits_dump(tmp_path, grad_output=np.full(6, 2, F32))
    result = sce("check", "--arrays", path)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"sce: error: {path}: array 'grad_output' is not read: a dump of logits is graded as the gradient of the loss "
        "itself (an upstream gradient of 1); divide each row of 'grad' by its upstream gradient, and leave "
        "'grad_output' out\n"
    )


@pytest.mark.parametrize(("name", "flag"), [("weight", "--weight"), ("z_loss", "--z-loss"), ("smoothing", "--smoothing")])
def test_a_dump_of_logits_refuses_an_option_saved_as_an_array(tmp_path, sce, name, flag):
    path = logits_dump(tmp_path, **{name: np.ones(4, F32)})
    result = sce("check", "--arrays", path)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"sce: error: {path}: array '{name}' is not read: the loss's options are given as options; give it as {flag}, "
        "and leave the array out\n"
    )


def test_a_dump_of_logits_may_hold_other_arrays(tmp_path, sce):
    # sce batch's own dumps hold its probabilities and predictions beside the logits: they change no verdict.
    path = logits_dump(tmp_path, probabilities=np.ones((6, 4), F32), step=np.array(3))
    assert sce("check", "--arrays", path).exit_code == 0


def test_sce_batch_refuses_an_option_saved_in_its_dump_but_scores_beside_an_upstream_gradient(tmp_path, sce):
    path = logits_dump(tmp_path, weight=np.ones(4, F32))
    result = sce("batch", path, "-o", tmp_path / "out.csv")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"sce: error: {path}: array 'weight' is not read: the loss's options are given as options; give it as "
        "--weight, and leave the array out\n"
    )
    assert not (tmp_path / "out.csv").exists()
    path = logits_dump(tmp_path, grad_output=np.full(6, 2, F32))
    assert sce("batch", path, "-o", tmp_path / "out.csv", "-q").exit_code == 0


def test_an_upstream_gradient_with_the_batch_and_sequence_axes_is_one_per_row(tmp_path, sce):
    rows = exact(PER_ROW, "none")
    axes = {name: rows[name].reshape(3, 4, *rows[name].shape[1:]) for name in ("hidden", "labels", "loss", "grad_hidden")}
    path = save(tmp_path, {**rows, **axes, "grad_output": PER_ROW.reshape(3, 4)})
    assert sce("check", "--arrays", path).stdout.splitlines()[-1] == "verdict: correct for float32"
    path = save(tmp_path, {**rows, **axes, "grad_output": PER_ROW.reshape(4, 3)}, "transposed.npz")
    result = sce("check", "--arrays", path)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"sce: error: {path}: array 'grad_output' has shape (4, 3); give the upstream")
