"""sce check --arrays on a dump of hidden states, a classifier and labels: a fused linear cross-entropy's
loss and gradients graded, in each file format of named arrays, and every bad dump refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sce.grading.linear.cases import case_specs

IGNORE = -100


def kernel(e, c, labels, b=None, *, counts_ignored=False, reduction="mean"):  # type: ignore[no-untyped-def]
    """A fused kernel as the common ones compute it: float32 sums, each output rounded once to the inputs' type."""
    kind = e.dtype
    e32, c32 = e.astype(np.float32), c.astype(np.float32)
    z = e32 @ c32.T + (0 if b is None else b.astype(np.float32))
    z -= z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    counted = labels != IGNORE
    label = np.where(counted, labels, 0)
    rows = np.arange(len(labels))
    losses = np.where(counted, lse - z[rows, label], 0).astype(np.float32)
    n = np.float32(len(labels) if counts_ignored else counted.sum()) if reduction == "mean" else np.float32(1)
    g = np.exp(z - lse[:, None])
    g[rows, label] -= 1
    g[~counted] = 0
    g /= n
    loss = losses if reduction == "none" else np.array(losses.sum(dtype=np.float32) / n)
    answers = {"loss": loss.astype(kind), "grad_hidden": (g @ c32).astype(kind), "grad_classifier": (g.T @ e32).astype(kind)}
    if b is not None:
        answers["grad_bias"] = g.sum(axis=0).astype(kind)
    return answers


def dump(case_id: str = "padding-only-rows-float32", **mistake) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    case = next(spec for spec in case_specs() if spec.id == case_id).build()
    arrays = {"hidden": case.hidden, "classifier": case.classifier, "labels": case.labels}
    if case.bias is not None:
        arrays["bias"] = case.bias
    return {**arrays, **kernel(case.hidden, case.classifier, case.labels, case.bias, **mistake)}


def save(tmp_path: Path, arrays: dict[str, np.ndarray], name: str = "dump.npz") -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def verdict(sce, *args) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    result = sce("check", "--arrays", *args)
    return result.exit_code, result.stdout.splitlines()[-1]


@pytest.mark.parametrize("case_id", ["padding-only-rows-float32", "ignored-runs-bfloat16", "extreme-logits-float32"])
def test_a_correct_kernel_passes(tmp_path, sce, case_id):
    assert verdict(sce, save(tmp_path, dump(case_id))) == (0, f"verdict: correct for {case_id.rsplit('-', 1)[1]}")


def test_a_kernel_dividing_by_every_row_fails_in_each_output(tmp_path, sce):
    result = sce("check", "--arrays", save(tmp_path, dump(counts_ignored=True)))
    lines = result.stdout.splitlines()
    assert (result.exit_code, lines[-1]) == (1, "verdict: not correct for float32")
    assert lines[-3:-1] == [
        "mistake: ignored rows counted in the mean",
        "fix: divide by the counted rows only: those whose label is not --ignore-index",
    ]
    # Every output is off by the share of ignored rows (9 of 20): far beyond rounding, in each.
    for output in ("loss", "grad_hidden", "grad_classifier", "grad_bias"):
        line = next(line for line in lines if line.startswith(f"{output}: worst error"))
        assert line.endswith("; beyond")


def test_the_table_says_what_was_checked(tmp_path, sce):
    lines = sce("check", "--arrays", save(tmp_path, dump())).stdout.splitlines()
    assert "checked: 20 rows × 16 hidden × 33 classes, as float32 (profile pytorch, full check)" in lines
    assert "reduction: mean" in lines
    assert [line.split()[0] for line in lines[3:7]] == ["loss", "grad_hidden", "grad_classifier", "grad_bias"]


def test_json_is_the_report(tmp_path, sce):
    result = sce("check", "--arrays", save(tmp_path, dump(counts_ignored=True)), "--format", "json")
    document = json.loads(result.stdout)
    assert result.exit_code == 1
    assert (document["passed"], document["verdict"], document["profile"], document["mode"]) == (
        False, "not_correct", "pytorch", "full"
    )  # fmt: skip
    assert (document["rows"], document["hidden"], document["classes"], document["reduction"]) == (20, 16, 33, "mean")
    assert document["grad_bias"]["passed"] is False and document["worst_ulp"] > 1e6
    assert document["mistake"] == "ignored rows counted in the mean"
    assert document["fix"] == "divide by the counted rows only: those whose label is not --ignore-index"


def test_an_html_page(tmp_path, sce):
    page = tmp_path / "report.html"
    result = sce("check", "--arrays", save(tmp_path, dump()), "--format", "html", "-o", page)
    assert result.exit_code == 0
    assert "verdict: correct for float32" in page.read_text()


def test_one_loss_per_row_is_graded_as_reduction_none(tmp_path, sce):
    arrays = dump("ignored-runs-float32", reduction="none")
    lines = sce("check", "--arrays", save(tmp_path, arrays)).stdout.splitlines()
    assert "reduction: none" in lines and lines[-1] == "verdict: correct for float32"


def test_safetensors(tmp_path, sce):
    from safetensors.numpy import save_file

    path = tmp_path / "dump.safetensors"
    save_file({name: np.ascontiguousarray(value) for name, value in dump().items()}, str(path))
    assert verdict(sce, path) == (0, "verdict: correct for float32")


def test_safetensors_in_bfloat16(tmp_path, sce):
    from safetensors.numpy import save_file

    path = tmp_path / "dump.safetensors"
    save_file({name: np.ascontiguousarray(value) for name, value in dump("confident-rows-bfloat16").items()}, str(path))
    assert verdict(sce, path) == (0, "verdict: correct for bfloat16")


def test_torch_save(tmp_path, sce):
    torch = pytest.importorskip("torch")
    path = tmp_path / "dump.pt"
    torch.save({name: torch.from_numpy(np.array(value)) for name, value in dump().items()}, path)
    assert verdict(sce, path) == (0, "verdict: correct for float32")


def test_a_dump_with_logits_is_still_a_dump_of_logits(tmp_path, sce):
    arrays = dump()
    z = arrays["hidden"] @ arrays["classifier"].T
    path = save(tmp_path, {**arrays, "logits": z, "grad": np.zeros_like(z)})
    result = sce("check", "--arrays", path)
    assert "checked: 20 rows × 33 classes, as float32" in result.stdout


def refusal(sce, tmp_path, arrays, *extra) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    result = sce("check", "--arrays", save(tmp_path, arrays), *extra)
    return result.exit_code, result.stdout, result.stderr


def without(arrays: dict[str, np.ndarray], *names: str) -> dict[str, np.ndarray]:
    return {name: value for name, value in arrays.items() if name not in names}


def test_bad_dumps_get_one_line_each(tmp_path, sce):
    arrays = dump()
    path = tmp_path / "dump.npz"
    cases = [
        (
            without(arrays, "classifier"),
            f"sce: error: {path}: no array 'classifier' (the classifier C, V × D); a dump of hidden states holds "
            "'hidden', 'classifier' and 'labels' (it holds 'hidden', 'labels', 'bias', 'loss', 'grad_hidden', "
            "'grad_classifier', 'grad_bias')",
        ),
        (
            without(arrays, "hidden"),
            f"sce: error: {path}: no array 'hidden' (the hidden states E, N × D); a dump of hidden states holds "
            "'hidden', 'classifier' and 'labels' (it holds 'classifier', 'labels', 'bias', 'loss', 'grad_hidden', "
            "'grad_classifier', 'grad_bias')",
        ),
        (
            {**arrays, "classifier": arrays["classifier"][:, :5]},
            f"sce: error: {path}: array 'classifier' has shape (33, 5) but 'hidden' is 20 × 16: the classifier "
            "must be V × 16, one row of the hidden size D per class",
        ),
        (
            {**arrays, "labels": arrays["labels"][:-1]},
            f"sce: error: {path}: array 'labels' has shape (19,) but 'hidden' has 20 rows; give one label per row",
        ),
        (
            {**arrays, "labels": np.where(np.arange(20) == 4, 33, arrays["labels"])},
            f"sce: error: {path}: array 'labels': row 4: label 33 is out of range for 33 classes; labels are "
            "0-based: use 0 to 32 (or -100 to ignore the row)",
        ),
        (
            {**arrays, "grad_hidden": arrays["grad_hidden"].T},
            f"sce: error: {path}: array 'grad_hidden' has shape (16, 20); give 20 × 16, the shape of 'hidden'",
        ),
        (
            {**arrays, "bias": arrays["bias"][:-1]},
            f"sce: error: {path}: array 'bias' has shape (32,); give 33, the shape of the classifier's V",
        ),
        (
            without(arrays, "bias"),
            f"sce: error: {path}: array 'grad_bias': a gradient of the bias, but the dump has no array 'bias'",
        ),
        (
            {**arrays, "hidden": arrays["hidden"].astype(np.int32)},
            f"sce: error: {path}: array 'hidden' has type int32; hidden must be floats (float16, bfloat16, "
            "float32, float64)",
        ),
    ]
    for name in ("grad_classifier", "loss"):  # a float32 result saved as float64 was graded in float64's ulps
        cases.append((
            {**arrays, name: arrays[name].astype(np.float64)},
            f"sce: error: {path}: array '{name}': {name} is float64 but hidden and classifier are float32; give it "
            "in the type the kernel computed it in (float32)",
        ))  # fmt: skip
    hidden = arrays["hidden"].copy()
    hidden[3, 2] = np.nan
    cases.append((
        {**arrays, "hidden": hidden},
        f"sce: error: {path}: array 'hidden': row 3, column 2: hidden has a value that is not finite (nan)",
    ))  # fmt: skip
    for bad, message in cases:
        assert refusal(sce, tmp_path, bad) == (1, "", message + "\n"), message


def test_an_option_the_dump_does_not_fit_names_its_flag(tmp_path, sce):
    assert refusal(sce, tmp_path, dump(), "--weight", "1,2") == (2, "", "sce: error: --weight: 2 weights for 33 classes\n")
    code, out, err = refusal(sce, tmp_path, dump(), "--temperature", "2")
    assert (code, out, err) == (
        2, "", "sce: error: --temperature: a dump of hidden states is graded without a temperature; leave it out\n"
    )  # fmt: skip


def test_nothing_to_grade_and_flags_for_logits_are_usage_errors(tmp_path, sce):
    inputs = without(dump(), "loss", "grad_hidden", "grad_classifier", "grad_bias")
    path = tmp_path / "dump.npz"
    assert refusal(sce, tmp_path, inputs) == (
        2,
        "",
        f"sce: error: {path}: nothing to check: the answer to grade is an array 'loss', 'grad_hidden', "
        "'grad_classifier' and/or 'grad_bias' (it holds 'hidden', 'classifier', 'labels', 'bias')\n",
    )
    for flag in (["--key-logits", "z"], ["--claimed-dtype", "float32"], ["--sum-order", "sequential"]):
        code, out, err = refusal(sce, tmp_path, dump(), *flag)
        assert (code, out) == (2, "") and err.startswith(f"sce: error: {flag[0]}: {path} holds hidden states")


def test_the_shipped_samples_are_what_their_names_say():
    """Against a float64 computation of PyTorch's cross_entropy written out here (mean over counted rows)."""
    from importlib import resources

    shipped = resources.files("sce") / "samples"
    with resources.as_file(shipped / "hidden_float32_correct.npz") as path:
        right = dict(np.load(path))
    with resources.as_file(shipped / "hidden_float32_ignored_counted.npz") as path:
        counted = dict(np.load(path))
    e, c, b, y = (right[name].astype(np.float64) for name in ("hidden", "classifier", "bias", "labels"))
    z = e @ c.T + b
    kept = y != IGNORE
    y = y.astype(np.int64)
    lse = np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)) + z.max(axis=1)
    loss = (lse - z[np.arange(len(y)), np.where(kept, y, 0)])[kept].mean()
    assert abs(float(right["loss"]) - loss) < 1e-6 * loss
    # The mistake: the same sum divided by all 20 rows, not the 11 counted ones.
    assert kept.sum() == 11 and abs(float(counted["loss"]) - loss * 11 / 20) < 1e-6 * loss


def test_profile_names_the_conventions_graded_under(tmp_path, sce):
    from sce.cli.choices import KernelProfile
    from sce.grading.linear.profiles import PROFILES

    assert [profile.value for profile in KernelProfile] == list(PROFILES)
    for profile in PROFILES:
        lines = sce("check", "--arrays", save(tmp_path, dump()), "--profile", profile).stdout.splitlines()
        assert f"checked: 20 rows × 16 hidden × 33 classes, as float32 (profile {profile}, full check)" in lines


def test_profile_is_refused_without_hidden_states(tmp_path, sce):
    arrays = dump()
    z = arrays["hidden"] @ arrays["classifier"].T
    logits = save(tmp_path, {"logits": z, "labels": arrays["labels"], "grad": np.zeros_like(z)}, "logits.npz")
    result = sce("check", "--arrays", logits, "--profile", "cce")
    assert (result.exit_code, result.stdout, result.stderr) == (
        2, "", "sce: error: --profile goes with a dump of hidden states (hidden, classifier, labels), not with logits\n"
    )  # fmt: skip
    result = sce("check", "2", "3", "4", "--label", "1", "--grad", "0.09,-0.755,0.665", "--profile", "cce")
    assert (result.exit_code, result.stderr) == (
        2, "sce: error: --profile goes with --arrays FILE holding hidden states (hidden, classifier, labels)\n"
    )  # fmt: skip


def test_batch_and_sequence_axes_are_rows(tmp_path, sce):
    """A dump as PyTorch holds it before the kernel flattens it: B × T × D hidden states, B × T labels."""
    arrays = dump("ignored-runs-float32", reduction="none")  # 24 rows: 4 sequences of 6 tokens
    shaped = {
        **arrays,
        "hidden": arrays["hidden"].reshape(4, 6, -1),
        "labels": arrays["labels"].reshape(4, 6),
        "grad_hidden": arrays["grad_hidden"].reshape(4, 6, -1),
        "loss": arrays["loss"].reshape(4, 6),
    }
    lines = sce("check", "--arrays", save(tmp_path, shaped)).stdout.splitlines()
    assert "checked: 24 rows × 16 hidden × 40 classes, as float32 (profile pytorch, full check)" in lines
    assert "reduction: none" in lines and lines[-1] == "verdict: correct for float32"
    wrong = {**shaped, "labels": arrays["labels"].reshape(6, 4)}
    path = tmp_path / "dump.npz"
    assert refusal(sce, tmp_path, wrong) == (
        1, "", f"sce: error: {path}: array 'labels' has shape (6, 4) but 'hidden' has 24 rows; give one label per row\n"
    )  # fmt: skip
