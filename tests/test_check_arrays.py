"""sce check --arrays: dumps written here with numpy, graded by their float type.

The answers are computed in this file by plain numpy in each type (an
independent implementation, with and without the named mistakes); the
expected verdicts follow from how they were made, never from sce's output.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest

IGNORE = -100


def plain_gradient(z, labels, dtype, *, reduction="mean", divide_by=None, one_based=False):
    """Max-shifted softmax, p − onehot, the mean over counted rows, all in ``dtype``."""
    work = np.float32 if np.dtype(dtype).itemsize == 2 else dtype
    x = np.asarray(z).astype(dtype).astype(work)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = (e / e.sum(axis=1, keepdims=True)).astype(dtype)
    counted = labels != IGNORE
    rows = np.flatnonzero(counted)
    classes = labels[counted] - 1 if one_based else labels[counted]
    g = p.astype(work)
    g[rows, classes] -= 1
    g[~counted] = 0
    if reduction == "mean":
        g = g / (counted.sum() if divide_by is None else divide_by)
    return g.astype(dtype)


def make_dump(tmp_path, n=12, k=7, dtype=np.float32, seed=0, name="dump.npz", **mistake):
    rng = np.random.default_rng(seed)
    z = (3 * rng.standard_normal((n, k))).astype(dtype)
    labels = rng.integers(0, k, n)
    labels[[1, 5]] = IGNORE
    path = tmp_path / name
    np.savez(path, logits=z, labels=labels, grad=plain_gradient(z, labels, dtype, **mistake))
    return str(path), z, labels


def run(sce, *args):
    result = sce("check", *args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_a_correct_implementation_in_each_type_passes(tmp_path, dtype, sce):
    path, _, _ = make_dump(tmp_path, dtype=dtype)
    code, out, err = run(sce, "--arrays", path, "--reduction", "mean")
    assert code == 0, out + err
    assert f"verdict: correct for {np.dtype(dtype).name}" in out


def test_bfloat16_when_ml_dtypes_is_installed(tmp_path, sce):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    path, _, _ = make_dump(tmp_path, dtype=ml_dtypes.bfloat16)
    code, out, _ = run(sce, "--arrays", path, "--reduction", "mean")
    assert code == 0 and "verdict: correct for bfloat16" in out


def test_a_float32_answer_is_not_failed_for_lacking_float64_digits_but_1000_ulp_off_is(tmp_path, sce):
    path, z, labels = make_dump(tmp_path)
    grad = plain_gradient(z, labels, np.float32)
    # Upcast and graded as float32: passes; graded as float64 (what the stored type says): fails.
    np.savez(tmp_path / "up.npz", logits=z.astype(np.float64), labels=labels, grad=grad.astype(np.float64))
    assert run(sce, "--arrays", tmp_path / "up.npz", "--reduction", "mean", "--claimed-dtype", "float32")[0] == 0
    assert run(sce, "--arrays", tmp_path / "up.npz", "--reduction", "mean")[0] == 1
    off = grad.copy()
    off[3, 2] += np.float32(1000) * np.spacing(np.abs(off[3, 2]))
    np.savez(tmp_path / "off.npz", logits=z, labels=labels, grad=off)
    code, out, _ = run(sce, "--arrays", tmp_path / "off.npz", "--reduction", "mean")
    assert code == 1
    assert "1 of 84 entries beyond" in out
    worst = next(line for line in out.splitlines() if line.strip().startswith("3 "))
    assert worst.split()[:2] == ["3", "2"]
    assert abs(float(worst.split()[-1].replace(",", "")) - 1000) <= 3  # the float32 answer's own ~2 ulp aside


@pytest.mark.parametrize(
    ("mistake", "options", "named"),
    [
        (
            {"divide_by": 12},
            ["--reduction", "mean"],
            "the mean over every row, ignored (padding) rows included (12 rows, where the mean divides by 10)",
        ),
        ({"reduction": "sum"}, ["--reduction", "mean"], "1/N missing: the sum over rows, not the mean"),
        ({"reduction": "mean"}, ["--reduction", "sum"], "divided by N, but --reduction sum has no 1/N"),
        (
            {"reduction": "mean"},
            ["--reduction", "none"],
            "divided by N, but --reduction none gives each row its own gradient",
        ),
        ({"one_based": True}, ["--reduction", "mean"], "−1 at the wrong class: labels read as 1-based"),
    ],
)
def test_each_named_mistake_is_recognised(tmp_path, mistake, options, named, sce):
    path, _, _ = make_dump(tmp_path, **mistake)
    code, out, _ = run(sce, "--arrays", path, *options)
    assert code == 1
    assert f"mistake: {named}" in out


def test_the_mean_of_per_batch_means(tmp_path, sce):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((8, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 8)
    labels[[0, 1, 2]] = IGNORE  # the first half has 1 counted row, the second 4
    halves = [plain_gradient(z[:4], labels[:4], np.float32), plain_gradient(z[4:], labels[4:], np.float32)]
    np.savez(tmp_path / "d.npz", logits=z, labels=labels, grad=np.concatenate(halves) / np.float32(2))
    code, out, _ = run(sce, "--arrays", tmp_path / "d.npz", "--reduction", "mean")
    assert code == 1
    assert "mistake: the mean of per-batch means, (x1/n1 + x2/n2 + …)/B (2 batches of 4 rows)" in out


def test_separate_files_and_json(tmp_path, sce):
    _, z, labels = make_dump(tmp_path)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", labels)
    np.save(tmp_path / "g.npy", plain_gradient(z, labels, np.float32))
    args = ["--logits", tmp_path / "z.npy", "--labels", tmp_path / "y.npy", "--grad", tmp_path / "g.npy"]
    code, out, _ = run(sce, *args, "--reduction", "mean", "--format", "json")
    assert code == 0
    import json

    document = json.loads(out)
    assert document["correct"] is True and document["claimed_dtype"] == "float32"
    assert document["quantities"][0]["entries"] == 84


def test_parquet_list_column_and_one_column_per_class(tmp_path, sce):
    import polars as pl

    _, z, labels = make_dump(tmp_path)
    grad = plain_gradient(z, labels, np.float32)
    pl.DataFrame({"logits": z, "labels": labels, "grad": grad}).write_parquet(tmp_path / "d.parquet")
    assert run(sce, "--arrays", tmp_path / "d.parquet", "--reduction", "mean")[0] == 0
    pl.DataFrame({f"z{j}": z[:, j] for j in range(7)}).write_ipc(tmp_path / "z.arrow")
    np.save(tmp_path / "y.npy", labels)
    np.save(tmp_path / "g.npy", grad)
    code, out, err = run(
        sce,
        "--logits",
        tmp_path / "z.arrow",
        "--labels",
        tmp_path / "y.npy",
        "--grad",
        tmp_path / "g.npy",
        "--reduction",
        "mean",
    )
    assert code == 0, out + err


def test_safetensors_when_installed(tmp_path, sce):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    _, z, labels = make_dump(tmp_path)
    save_file({"x": z, "y": labels, "g": plain_gradient(z, labels, np.float32)}, str(tmp_path / "d.safetensors"))
    keys = ["--key-logits", "x", "--key-labels", "y", "--key-grad", "g"]
    assert run(sce, "--arrays", tmp_path / "d.safetensors", *keys, "--reduction", "mean")[0] == 0


def test_nan_and_infinity_in_a_given_gradient_fail(tmp_path, sce):
    _, z, labels = make_dump(tmp_path)
    grad = plain_gradient(z, labels, np.float32)
    grad[0, 0], grad[2, 1] = np.nan, np.inf
    np.savez(tmp_path / "d.npz", logits=z, labels=labels, grad=grad)
    code, out, _ = run(sce, "--arrays", tmp_path / "d.npz", "--reduction", "mean")
    assert code == 1 and "inf or NaN" in out and "2 of 84 entries beyond" in out


def test_negative_zero_for_an_ignored_row_is_zero(tmp_path, sce):
    _, z, labels = make_dump(tmp_path)
    grad = plain_gradient(z, labels, np.float32)
    grad[1] = -0.0
    np.savez(tmp_path / "d.npz", logits=z, labels=labels, grad=grad)
    assert run(sce, "--arrays", tmp_path / "d.npz", "--reduction", "mean")[0] == 0


def _error(sce, tmp_path, arrays, *extra):
    np.savez(tmp_path / "d.npz", **arrays)
    code, out, err = run(sce, "--arrays", tmp_path / "d.npz", *extra)
    return code, err.replace(str(tmp_path) + os.sep, "")


def test_bad_arrays_get_one_line_naming_the_file_and_the_array(tmp_path, sce):
    z = np.zeros((3, 4), np.float32)
    g = np.zeros((3, 4), np.float32)
    y = np.array([0, 1, 2])
    assert _error(sce, tmp_path, {"logits": z, "labels": y}) == (
        2,
        "sce: error: nothing to check: the answer to grade is an array 'grad' and/or 'loss' (or --grad/--loss)\n",
    )
    assert _error(sce, tmp_path, {"logits": z, "labels": y, "grad": g[:, :3]}) == (
        1,
        "sce: error: d.npz: array 'grad' has shape (3, 3) but the logits are 3 × 4; give one gradient entry per logit\n",
    )
    assert _error(sce, tmp_path, {"logits": z, "labels": y.astype(np.float32), "grad": g}) == (
        1,
        "sce: error: d.npz: array 'labels' has type float32; labels are class indices: save them as integers\n",
    )
    assert _error(sce, tmp_path, {"logits": z, "labels": np.array([0, 4, 1]), "grad": g}) == (
        1,
        "sce: error: d.npz: array 'labels': row 1: label 4 is out of range for 4 classes; "
        "labels are 0-based: use 0 to 3 (or -100 to ignore the row)\n",
    )
    assert _error(sce, tmp_path, {"logits": z.astype(np.int32), "labels": y, "grad": g}) == (
        1,
        "sce: error: d.npz: array 'logits' has type int32; logits must be floats (float16, bfloat16, float32, float64)\n",
    )
    # No classes is no dump (no rows is a batch: graded, see test_regression_an_empty_batch…).
    assert _error(sce, tmp_path, {"logits": np.zeros((3, 0), np.float32), "labels": y, "grad": g[:, :0]}) == (
        1,
        "sce: error: d.npz: array 'logits' is empty (shape (3, 0)); give at least one row of one class\n",
    )
    assert _error(sce, tmp_path, {"logits": z, "labels": y, "grad": g}, "--key-grad", "dz") == (
        1,
        "sce: error: d.npz: no array 'dz' (it holds 'logits', 'labels', 'grad')\n",
    )


def test_bad_files_get_one_line_and_the_right_status(tmp_path, sce):
    def error(path, *extra):
        code, _, err = run(sce, "--arrays", path, *extra)
        return code, err.replace(str(tmp_path) + os.sep, "")

    (tmp_path / "empty.npz").write_bytes(b"")
    assert error(tmp_path / "empty.npz") == (1, "sce: error: empty.npz: the file is empty (0 bytes)\n")
    assert error(tmp_path / "missing.npz") == (2, "sce: error: missing.npz: cannot read: no such file\n")
    assert error(tmp_path) == (2, f"sce: error: {tmp_path}: cannot read: is a directory\n")
    (tmp_path / "text.npy").write_text("1 2 3\n")
    code, _, err = run(
        sce, "--logits", tmp_path / "text.npy", "--labels", tmp_path / "text.npy", "--grad", tmp_path / "text.npy"
    )
    assert (code, err.replace(str(tmp_path) + os.sep, "")) == (
        1,
        "sce: error: text.npy: not a .npy file (its header is missing or damaged)\n",
    )
    np.save(tmp_path / "z.npy", np.zeros((100, 10), np.float32))
    data = (tmp_path / "z.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-1000])
    os.symlink(tmp_path / "cut.npy", tmp_path / "link.npy")
    code, _, err = run(
        sce, "--logits", tmp_path / "link.npy", "--labels", tmp_path / "z.npy", "--grad", tmp_path / "z.npy"
    )
    assert (code, err.replace(str(tmp_path) + os.sep, "")) == (
        1,
        "sce: error: link.npy: truncated: 3,000 bytes of data where its header promises 4,000\n",
    )
    make_dump(tmp_path)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "dump.npz").read_bytes()[:300])
    assert error(tmp_path / "cut.npz")[0] == 1


def test_the_python_assertion(tmp_path):
    from sce.testing import assert_cross_entropy_close

    _, z, labels = make_dump(tmp_path)
    grad = plain_gradient(z, labels, np.float32)
    assert_cross_entropy_close(z, labels, grad, reduction="mean")
    with pytest.raises(AssertionError, match="the mean over every row, ignored"):
        assert_cross_entropy_close(z, labels, plain_gradient(z, labels, np.float32, divide_by=12), reduction="mean")


def test_without_reduction_a_dump_is_graded_as_pytorchs_default_mean(tmp_path, sce):
    """Regression: --arrays defaulted to none (sce check's one-vector default),
    failing PyTorch's default answer that assert_cross_entropy_close passes."""
    path, z, labels = make_dump(tmp_path)
    code, out, _ = run(sce, "--arrays", path)
    assert (code, out.splitlines()[-1]) == (0, "verdict: correct for float32")
    assert run(sce, "--arrays", path, "--reduction", "sum")[0] == 1
    per_row = tmp_path / "per_row.npz"
    counted = labels != IGNORE
    z64 = z.astype(np.float64)
    shifted = z64 - z64.max(axis=1, keepdims=True)
    losses = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), np.where(counted, labels, 0)]
    grad = plain_gradient(z, labels, np.float32, reduction="none")
    np.savez(per_row, logits=z, labels=labels, grad=grad, loss=np.where(counted, losses, 0).astype(np.float32))
    assert run(sce, "--arrays", per_row)[0] == 0  # one loss per row: none


def test_tol_is_refused_with_arrays(tmp_path, sce):
    path, _, _ = make_dump(tmp_path)
    assert run(sce, "--arrays", path, "--tol", "1")[:3:2] == (
        2,
        "sce: error: --tol: arrays are graded in ulps of their type against a baseline; leave out --tol\n",
    )


# --- assert_cross_entropy_close takes the layouts softmax_cross_entropy takes ---------------------


def test_assert_close_takes_an_unbatched_vector_and_pytorchs_class_axis():
    """Regression: a vector with a scalar label raised IndexError, and class_axis was a TypeError."""
    from sce.testing import assert_cross_entropy_close

    z = np.array([2.0, 3.0, 4.0], np.float32)
    e = np.exp(np.array([2.0, 3.0, 4.0]) - 4.0)
    p = e / e.sum()  # by hand: the softmax, then p − onehot at label 1
    assert_cross_entropy_close(z, 1, (p - [0, 1, 0]).astype(np.float32))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)  # (N, C, d1)
    y = rng.integers(0, 5, (2, 3))
    rows = np.moveaxis(x, 1, -1).reshape(-1, 5).astype(np.float64)
    by_hand = np.exp(rows - rows.max(axis=1, keepdims=True))
    by_hand /= by_hand.sum(axis=1, keepdims=True)
    by_hand[np.arange(6), y.reshape(-1)] -= 1
    grad = np.moveaxis((by_hand / 6).reshape(2, 3, 5), -1, 1).astype(np.float32)
    assert_cross_entropy_close(x, y, grad, class_axis=1)
    with pytest.raises(AssertionError, match="not correct for float32"):
        assert_cross_entropy_close(x, y, -grad, class_axis=1)


@pytest.mark.parametrize(
    "call, error, said",
    [
        (
            lambda a, z, y: a(z, y, np.zeros((4, 4), np.float32)),
            ValueError,
            "grad has shape (4, 4) but the logits are 4 × 5",
        ),
        (
            lambda a, z, y: a(z, y, np.zeros((4, 5), np.float32), dtype="float8"),
            ValueError,
            "dtype='float8': give one of",
        ),
        (lambda a, z, y: a(z, y, np.zeros((4, 5), np.float32), reducton="sum"), TypeError, "unknown option 'reducton'"),
        (lambda a, z, y: a(z, y.astype(float), np.zeros((4, 5), np.float32)), ValueError, "labels are class indices"),
        (
            lambda a, z, y: a(z, y, np.zeros((4, 5), np.float32), class_axis=2),
            ValueError,
            "class_axis=2: the logits have 2 axes",
        ),
    ],
)
def test_assert_close_names_what_does_not_fit(call, error, said):
    """Regression: a raw numpy broadcast error, a TypeError from LossOptions, float labels taken as targets."""
    from sce.testing import assert_cross_entropy_close

    with pytest.raises(error) as raised:
        call(assert_cross_entropy_close, np.zeros((4, 5), np.float32), np.zeros(4, np.int64))
    assert said in str(raised.value)


def test_big_endian_arrays_are_read_as_the_numbers_they_are(tmp_path, sce):
    """Regression: '>f4' was refused as "must be numbers (…, float32, …)"."""
    path, z, labels = make_dump(tmp_path)
    big = tmp_path / "big_endian.npz"
    with np.load(path) as dump:
        np.savez(big, **{name: dump[name].astype(dump[name].dtype.newbyteorder(">")) for name in dump.files})
    code, out, err = run(sce, "--arrays", big)
    assert (code, out.splitlines()[-1], err) == (0, "verdict: correct for float32", "")


def test_class_columns_are_taken_by_their_number_not_their_place(tmp_path, sce):
    """Regression: grad_0, grad_1, grad_10, grad_11, grad_2 … (sorted by name) were
    stacked in that order, so a right answer failed; a gap went unnoticed."""
    import polars as pl

    path, z, labels = make_dump(tmp_path, k=12)
    with np.load(path) as dump:
        grad = dump["grad"]
    np.save(tmp_path / "labels.npy", labels)
    columns = {**{f"logits_{j}": z[:, j] for j in range(12)}, **{f"grad_{j}": grad[:, j] for j in range(12)}}
    pl.DataFrame({name: columns[name] for name in sorted(columns)}).write_parquet(tmp_path / "sorted.parquet")
    code, out, _ = run(sce, "--arrays", tmp_path / "sorted.parquet", "--labels", tmp_path / "labels.npy")
    assert (code, out.splitlines()[-1]) == (0, "verdict: correct for float32")
    del columns["grad_3"]
    pl.DataFrame(columns).write_parquet(tmp_path / "gap.parquet")
    code, _, err = run(sce, "--arrays", tmp_path / "gap.parquet", "--labels", tmp_path / "labels.npy")
    assert (code, err) == (
        1,
        f"sce: error: {tmp_path / 'gap.parquet'}: array 'grad': its columns are numbered 0, 1, 2, 4, 5, 6, … "
        "(11 columns), where class 3 has no column; number the class columns 0 to K-1 (grad_0, grad_1, …)\n",
    )


def test_a_parquet_file_is_known_by_its_bytes_whatever_its_name(tmp_path, sce):
    import polars as pl

    for name in ("logits", "logits.arrow"):
        pl.DataFrame({"logits": [[2.0, 3.0, 4.0]]}).write_parquet(tmp_path / name)
        result = sce("grad", "--logits-file", str(tmp_path / name), "-l", "1")
        assert (result.exit_code, result.stdout.splitlines()[-2:]) == (0, ["loss L = 1.4076", "reduction: none"])


def test_an_uncompressed_npz_member_is_memory_mapped_and_reads_the_same(tmp_path):
    """A .npz dump was loaded whole (920 MB for a 10,000 × 10,000 float32 dump); np.savez's
    members are stored uncompressed, so they can be mapped where they lie, as a .npy is."""
    from sce.io.arrays.formats import open_arrays

    rng = np.random.default_rng(3)
    arrays = {
        "logits": rng.normal(size=(50, 7)).astype(np.float32),
        "fortran": np.asfortranarray(rng.normal(size=(5, 3))),
    }
    np.savez(tmp_path / "stored.npz", **arrays)
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    stored, compressed = open_arrays(str(tmp_path / "stored.npz")), open_arrays(str(tmp_path / "compressed.npz"))
    for name, array in arrays.items():
        assert isinstance(stored.load(name), np.memmap)
        assert not isinstance(compressed.load(name), np.memmap)
        assert np.array_equal(stored.load(name), array) and np.array_equal(compressed.load(name), array)


def test_the_json_histogram_gives_its_bounds_as_numbers(tmp_path, sce):
    """Regression: the bins were only display strings ('1,048,576 – 2,097,152')."""
    path, z, labels = make_dump(tmp_path, divide_by=16)  # the padding mistake: far beyond
    code, out, _ = run(sce, "--arrays", path, "-f", "json")
    histogram = json.loads(out)["quantities"][0]["histogram"]
    assert code == 1
    for row in histogram:
        low, high = row["from_ulps"], row["below_ulps"]
        assert (low, high) == (0.0, 1.0) or (high == 2 * low and math.log2(low).is_integer())
    assert sum(row["entries"] for row in histogram) == z.size


def test_a_compressed_batch_given_to_logits_file_is_refused_from_its_header(tmp_path, monkeypatch, sce):
    """Regression: a 1.5 MB np.savez_compressed of 20,000 × 10,000 zeros was decompressed
    (1.6 GB, 13 s) before the refusal its header already allowed."""
    from sce.io.arrays import formats

    path = tmp_path / "batch.npz"
    np.savez_compressed(path, logits=np.zeros((300, 200)))

    def never(self, name):
        raise AssertionError("the data was read")

    monkeypatch.setattr(formats.ArrayFile, "load", never)
    result = sce("grad", "--logits-file", str(path), "-l", "1")
    assert (result.exit_code, result.stderr) == (
        1,
        f"sce: error: {path} has shape (300, 200); sce grad takes one vector (K, or 1 × K); "
        "for a batch use sce check --arrays or sce batch\n",
    )


def test_an_array_given_twice_or_a_key_not_found_is_refused_not_guessed(tmp_path, sce):
    """Regression: --arrays with --logits silently used the file, and --key-grad foo with
    --grad g.npy silently read g.npy's only array."""
    path, z, labels = make_dump(tmp_path)
    np.save(tmp_path / "other.npy", z)
    code, _, err = run(sce, "--arrays", path, "--logits", tmp_path / "other.npy")
    assert (code, err) == (
        2,
        f"sce: error: logits given twice: array 'logits' in {path} and the file {tmp_path / 'other.npy'}; "
        "give one of them\n",
    )
    np.save(tmp_path / "labels.npy", labels)
    code, _, err = run(
        sce,
        "--logits",
        tmp_path / "other.npy",
        "--labels",
        tmp_path / "labels.npy",
        "--grad",
        tmp_path / "other.npy",
        "--key-grad",
        "foo",
    )
    assert (code, err) == (
        1,
        f"sce: error: {tmp_path / 'other.npy'}: no array 'foo' (it holds 'other'); fix --key-grad\n",
    )


def test_a_dump_the_loss_is_not_defined_for_is_bad_data_named_where_not_an_internal_error(tmp_path, sce):
    """Regression: a NaN logit, a row of -inf or targets that do not sum to 1 in a dump were
    'internal error' (exit 70); the row must be the dump's, not the block's."""
    from sce.grading.dump import check

    z = np.random.default_rng(0).normal(size=(3000, 400)).astype(np.float32)
    z[2900, :] = -np.inf  # beyond the first block of rows
    np.savez(tmp_path / "masked.npz", logits=z, labels=np.zeros(3000, np.int64), grad=np.zeros_like(z))
    assert check.BLOCK_ENTRIES < 3000 * 400
    code, _, err = run(sce, "--arrays", tmp_path / "masked.npz")
    assert (code, err) == (
        1,
        f"sce: error: {tmp_path / 'masked.npz'}: array 'logits': row 2900: every logit in the row is -inf, "
        "so the softmax is undefined; leave at least one class finite\n",
    )
    z = np.zeros((4, 5), np.float32)
    z[2, 3] = np.nan
    np.savez(tmp_path / "nan.npz", logits=z, labels=np.arange(4), grad=z)
    code, _, err = run(sce, "--arrays", tmp_path / "nan.npz")
    assert (code, err) == (
        1,
        f"sce: error: {tmp_path / 'nan.npz'}: array 'logits': row 2, class 3: logit nan is not allowed; "
        "logits must be finite numbers or -inf (a masked class)\n",
    )


def test_a_dump_missing_an_array_is_refused_before_its_data_is_read(tmp_path, monkeypatch, sce):
    """Regression: every array was decompressed before the usage error (1.6 GB and 12 s for a
    1.5 MB np.savez_compressed of zeros that had no labels)."""
    from sce.io.arrays import formats

    np.savez_compressed(tmp_path / "logits_only.npz", logits=np.zeros((300, 200)))

    def never(self, name):
        raise AssertionError("the data was read")

    monkeypatch.setattr(formats.ArrayFile, "load", never)
    code, _, err = run(sce, "--arrays", tmp_path / "logits_only.npz")
    assert (code, err) == (
        2,
        "sce: error: give the labels (an array 'labels', or --labels FILE) or probability targets ('targets'), "
        f"one of them ({tmp_path / 'logits_only.npz'} holds 'logits')\n",
    )


def test_the_allowance_does_not_depend_on_how_the_dump_is_stored_in_memory(tmp_path, sce):
    """Regression: a Fortran-order dump was allowed 215 ulp where the same numbers in C order
    were allowed 152 (the baseline's sums ran in another order)."""
    rng = np.random.default_rng(5)
    z = (3 * rng.normal(size=(64, 1000))).astype(np.float32)
    labels = rng.integers(0, 1000, 64)
    grad = plain_gradient(z, labels, np.float32)
    np.savez(tmp_path / "c.npz", logits=z, labels=labels, grad=grad)
    np.savez(tmp_path / "f.npz", logits=np.asfortranarray(z), labels=labels, grad=np.asfortranarray(grad))
    reports = [json.loads(run(sce, "--arrays", tmp_path / name, "-f", "json")[1]) for name in ("c.npz", "f.npz")]
    assert reports[0] == reports[1]


@pytest.mark.parametrize(
    "option, said",
    [
        (
            ["-w", "1,-2,3"],
            "--weight (class 1): weight -2 is not a non-negative finite number; class weights must be >= 0",
        ),
        (["-w", "1,2,3"], "--weight: 3 weights for 7 classes; give one weight per class (7)"),
        (["--smoothing", "2"], "--smoothing: label smoothing 2.0 is outside [0, 1]; use a value from 0 (none) to 1"),
    ],
)
def test_a_bad_option_with_arrays_is_usage_worded_as_its_flag(tmp_path, option, said, sce):
    """Regression: sce batch DUMP --reduction mean with a bad option was an internal error (70),
    check --arrays -w 1,-2,3 said 'weight, class 1' with status 1, and a weight count that
    did not fit the classes was an IndexError."""
    path, _, _ = make_dump(tmp_path)
    for command in (["check", "--arrays", path], ["batch", path, "--reduction", "mean", "-q"]):
        result = sce(*command, *option)
        assert (command[0], result.exit_code, result.stderr) == (command[0], 2, f"sce: error: {said}\n")


def test_a_weight_beyond_float32_is_refused_not_overflowed(sce):
    """Regression: 1e39 became inf in float32 (a raw numpy overflow warning in sce batch) and
    the result was explained as a class with probability 0."""
    result = sce("grad", "1", "2", "3", "-l", "0", "-w", "1e39,1,1", "--dtype", "float32")
    assert (result.exit_code, result.stderr) == (
        2,
        "sce: error: --weight (class 0): weight 1e+39 is beyond float32's range (3.4e+38); class weights must fit "
        "the type computed in; scale them down or compute in float64\n",
    )


def test_a_mean_over_no_counted_weight_is_graded_as_pytorch_gives_it(tmp_path, sce):
    """Regression: an all-padding batch's mean is 0/0, NaN in PyTorch, but the grader expected
    0 (PyTorch's answer failed and 0 passed); with every counted weight 0 PyTorch's gradient is
    NaN too (0/0 in its backward), which failed every entry."""
    z = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.savez(
        tmp_path / "padding.npz", logits=z, labels=np.full(4, IGNORE), grad=np.zeros_like(z), loss=np.float32("nan")
    )
    np.savez(tmp_path / "zero_loss.npz", logits=z, labels=np.full(4, IGNORE), grad=np.zeros_like(z), loss=np.float32(0))
    np.savez(
        tmp_path / "weights0.npz",
        logits=z,
        labels=np.zeros(4, np.int64),
        grad=np.full_like(z, np.nan),
        loss=np.float32("nan"),
    )
    assert run(sce, "--arrays", tmp_path / "padding.npz")[0] == 0
    assert run(sce, "--arrays", tmp_path / "zero_loss.npz")[0] == 1
    assert run(sce, "--arrays", tmp_path / "weights0.npz", "-w", "0,1,1")[0] == 0


def test_the_python_assertion_leaves_the_callers_malloc_alone(tmp_path, monkeypatch, sce):
    """Regression: assert_cross_entropy_close tuned glibc's malloc (for good: any mallopt ends
    its own adjustment) inside the caller's process, e.g. a training run's; only sce check does."""
    from sce.grading.dump import check
    from sce.io.arrays import heap
    from sce.testing import assert_cross_entropy_close

    asked: list[bool] = []
    real = heap.reused_heap

    def spy(enabled: bool = True):
        asked.append(enabled)
        return real(False)

    monkeypatch.setattr(check, "reused_heap", spy)
    monkeypatch.setattr(check, "BLOCK_ENTRIES", 8)  # many blocks: the check would tune the heap
    path, z, labels = make_dump(tmp_path)
    with np.load(path) as dump:
        assert_cross_entropy_close(z, labels, dump["grad"])
    assert asked == [False]
    assert run(sce, "--arrays", path)[0] == 0
    assert asked == [False, True]


def test_a_dump_holding_both_labels_and_targets_is_bad_data_named_by_its_file(tmp_path, sce):
    """Regression: 'give labels or targets, not both' (status 2) named neither the file nor its arrays."""
    z = np.zeros((2, 3), np.float32)
    path = tmp_path / "both.npz"
    np.savez(path, logits=z, labels=np.array([0, 1]), targets=np.full((2, 3), 1 / 3), grad=z)
    code, _, err = run(sce, "--arrays", path)
    assert (code, err) == (
        1,
        f"sce: error: {path}: holds both 'labels' and 'targets'; a dump has labels or probability targets, "
        "not both: save it with one of them\n",
    )


def test_regression_the_assertions_report_holds_the_worst_entries_and_the_histogram():
    """The AssertionError was rich's record of the report, which left out the tables (written
    as plain lines around rich): three blank lines where the worst entries belong."""
    from sce.testing import assert_cross_entropy_close

    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 6)).astype(np.float32)
    with pytest.raises(AssertionError) as raised:
        assert_cross_entropy_close(z, np.array([1, 2, 3, 4]), np.zeros((4, 6), np.float32))
    lines = [line.rstrip() for line in str(raised.value).splitlines()]
    assert "gradient: errors in ulps of the claimed type" in lines
    assert "gradient: worst entries" in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("row   class"))
    worst = lines[header + 2].split()
    # Row 1's class 4: its probability exp(z)/Σexp(z), worked out here, given as 0.
    p = np.exp(z[1].astype(np.float64)) / np.exp(z[1].astype(np.float64)).sum()
    assert worst[:2] == ["1", "4"]
    assert float(worst[2]) == pytest.approx(p[4] / 4, rel=1e-7)
    assert lines[-1] == "verdict: not correct for float32"


def test_regression_a_mistake_in_the_loss_alone_or_the_gradient_alone_is_named():
    """The loss logged with one denominator while the backward uses another: no mistake fitted
    both, and none was named. Each wrong quantity now names the mistake that fits it alone."""
    from sce.testing import assert_cross_entropy_close

    rng = np.random.default_rng(9)
    z = (rng.standard_normal((32, 50)) * 2).astype(np.float32)
    y = rng.integers(0, 50, 32)
    y[::4] = -100
    counted = int((y >= 0).sum())
    grad = plain_gradient(z, y, np.float64)
    # The mean loss, by hand: Σ over counted rows of −log p_y, over the 24 counted rows.
    shifted = z.astype(np.float64) - z.astype(np.float64).max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_p[np.flatnonzero(y >= 0), y[y >= 0]].sum() / counted
    named = "the mean over every row, ignored (padding) rows included (32 rows, where the mean divides by 24)"
    cases = (
        (grad, loss * counted / 32, f"mistake: loss: {named}"),
        (grad * counted / 32, loss, f"mistake: gradient: {named}"),
    )
    for given_grad, given_loss, said in cases:
        with pytest.raises(AssertionError) as raised:
            assert_cross_entropy_close(z, y, given_grad.astype(np.float32), np.float32(given_loss))
        assert any(line.startswith(said) for line in str(raised.value).splitlines())


@pytest.mark.parametrize(
    ("reduction", "given", "right"), [("sum", 0.0, True), ("sum", 1.0, False), ("mean", math.nan, True)]
)
def test_regression_an_empty_batch_is_graded_as_pytorch_computes_it(reduction, given, right):
    """A batch of no rows (a data-parallel rank's, the last micro-batch after filtering) was a data
    error ("logits is empty"). PyTorch gives 0 for 'sum', NaN for 'mean' and an empty gradient."""
    from sce.testing import assert_cross_entropy_close

    z, y = np.zeros((0, 5), np.float32), np.zeros(0, np.int64)
    grad = np.zeros((0, 5), np.float32)
    if right:
        assert_cross_entropy_close(z, y, grad, np.float32(given), reduction=reduction)
    else:
        with pytest.raises(AssertionError, match="not correct for float32"):
            assert_cross_entropy_close(z, y, grad, np.float32(given), reduction=reduction)


def test_regression_labels_shifted_by_one_upwards_are_named():
    """Labels read one class up (the −1 at label + 1: `sce test` names it "label + 1") were failed
    by check --arrays with no mistake named; one class down was named."""
    from sce.testing import assert_cross_entropy_close

    rng = np.random.default_rng(9)
    z = (rng.standard_normal((32, 50)) * 2).astype(np.float32)
    y = rng.integers(0, 50, 32)
    y[::4] = IGNORE
    shifted = np.where(y >= 0, (y + 1) % 50, y)
    grad = plain_gradient(z, shifted, np.float64)  # the gradient for the shifted labels, by hand
    with pytest.raises(AssertionError) as raised:
        assert_cross_entropy_close(z, y, grad.astype(np.float32))
    lines = str(raised.value).splitlines()
    assert "mistake: −1 at the wrong class: the label's index plus one (off by one)" in lines
    assert "fix: subtract 1 at index labels[i] itself" in lines


@pytest.mark.parametrize("loss", [None, "per row"])
def test_a_dump_of_no_rows_is_not_graded_correct(tmp_path, sce, loss):
    """`sce check --csv` refuses a file with no rows (status 2); a dump with none was "correct".
    Only a reduced loss (PyTorch's 0 for 'sum', NaN for 'mean') leaves something to grade."""
    path = tmp_path / "empty.npz"
    arrays = {"logits": np.zeros((0, 3), np.float32), "labels": np.zeros(0, np.int64)}
    arrays["grad"] = np.zeros((0, 3), np.float32)
    if loss == "per row":
        arrays["loss"] = np.zeros(0, np.float32)
    np.savez(path, **arrays)
    result = sce("check", "--arrays", path)
    assert result.exit_code == 2, (result.exit_code, result.stdout)
    assert "verdict: correct" not in result.stdout
    assert result.stderr == (
        f"sce: error: {path}: array 'logits' has no rows: nothing to grade "
        "(a batch of no rows is graded by its reduced loss alone)\n"
    )


def test_assert_cross_entropy_close_refuses_a_batch_of_no_rows_without_a_reduced_loss():
    from sce.testing import assert_cross_entropy_close

    with pytest.raises(ValueError, match=r"^the logits array has no rows: nothing to grade"):
        assert_cross_entropy_close(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros((0, 3)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sce_batchs_own_dump_is_graded_correct_by_check_arrays(tmp_path, sce, reduction):
    """`sce batch --reduction mean -o out.npz` writes each row's loss beside the mean's gradient;
    `sce check --arrays out.npz` inferred `none` from the loss and named "divided by N" as a mistake,
    and refused the per-row loss with `--reduction mean`. sce's own right answer is correct, with
    and without the reduction said."""
    source = tmp_path / "in.csv"
    source.write_text("z0,z1,z2,label\n2,3,4,1\n0,40,-1,1\n1.5,-0.5,0.25,0\n-1,2,0.5,-100\n")
    dump = tmp_path / "out.npz"
    assert sce("batch", source, "-o", dump, "--reduction", reduction, "-q").exit_code == 0
    graded = sce("check", "--arrays", dump)
    assert "mistake:" not in graded.stdout, graded.stdout
    assert graded.exit_code == 0, graded.stdout
    said = sce("check", "--arrays", dump, "--reduction", reduction)
    assert said.exit_code == 0, (said.stdout, said.stderr)
    assert f"reduction: {reduction}" in said.stdout


def test_a_per_row_loss_beside_the_means_gradient_is_graded_row_by_row(tmp_path, sce):
    """Each row's loss, by hand (log Σe − z_y), beside the mean's gradient: correct as mean; the
    gradient left undivided is named as the sum, and a wrong row loss still fails."""
    z = np.array([[2.0, 3.0, 4.0], [1.5, -0.5, 0.25], [-1.0, 2.0, 0.5]])
    labels = np.array([1, 0, 2])
    shifted = z - z.max(axis=1, keepdims=True)
    losses = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(3), labels]
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    p[np.arange(3), labels] -= 1
    for name, grad, loss, status in (
        ("right", p / 3, losses, 0),
        ("undivided", p, losses, 1),
        ("wrong loss", p / 3, losses * 1.01, 1),
    ):
        path = tmp_path / f"{name}.npz"
        np.savez(path, logits=z, labels=labels, grad=grad, loss=loss)
        result = sce("check", "--arrays", path, "--reduction", "mean")
        assert result.exit_code == status, (name, result.stdout)
    undivided = sce("check", "--arrays", tmp_path / "undivided.npz", "--reduction", "mean").stdout
    assert "mistake: 1/N missing: the sum over rows, not the mean (not divided by 3)" in undivided


def test_ulp_counts_are_shown_with_no_more_digits_than_they_have(tmp_path, sce):
    """The −1 at label + 1 puts −1/N where the truth is 1e-23: 2e28 float32 ulps, a float64 quotient
    that was written out as 19,807,040,628,566,084,398,385,987,584, and a root-mean-square rounded to
    6 digits as 110,732,999,999,999,993,052,135,424. The counts shown keep the JSON's value."""
    rng = np.random.default_rng(5)
    rows, classes = 64, 1000
    logits = (rng.normal(size=(rows, classes)) * 8).astype(np.float32)
    labels = rng.integers(0, classes, rows)
    wide = logits.astype(np.float64)
    p = np.exp(wide - wide.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(rows), (labels + 1) % classes] -= 1
    path = tmp_path / "off.npz"
    np.savez(path, logits=logits, labels=labels, grad=(p / rows).astype(np.float32))
    result = sce("check", "--arrays", path)
    assert result.exit_code == 1
    shown = dict(re.findall(r"^gradient: (worst|typical \(root-mean-square\)) error (\S+) ulp", result.stdout, re.M))
    document = json.loads(sce("check", "--arrays", path, "-f", "json").stdout)["quantities"][0]
    for said, key in (("worst", "max_error_ulps"), ("typical (root-mean-square)", "rms_error_ulps")):
        text = shown[said]
        mantissa = re.sub(r"e[+-]\d+$", "", text.replace(",", "")).replace(".", "").lstrip("0").rstrip("0")
        assert len(mantissa) <= 16, text
        assert math.isclose(float(text.replace(",", "")), document[key], rel_tol=1e-3), (text, document[key])
    worst_rows = result.stdout.split("gradient: worst entries")[1].split("\n\n")[0].splitlines()[3:]
    for line in worst_rows:
        count = line.split()[-1].replace(",", "")
        assert len(re.sub(r"e[+-]\d+$", "", count).replace(".", "").strip("0")) <= 16, line


def test_a_wrong_row_loss_beside_the_means_gradient_is_not_called_divided_by_n(tmp_path, sce):
    """Without --reduction the gradient says which reduction a dump of per-row losses holds: a
    wrong loss beside the mean's right gradient is a wrong loss, graded as mean."""
    source = tmp_path / "in.csv"
    source.write_text("z0,z1,z2,label\n2,3,4,1\n0,40,-1,1\n1.5,-0.5,0.25,0\n-1,2,0.5,-100\n")
    dump = tmp_path / "out.npz"
    assert sce("batch", source, "-o", dump, "--reduction", "mean", "-q").exit_code == 0
    arrays = dict(np.load(dump))
    arrays["loss"] = arrays["loss"] * 1.01
    np.savez(dump, **arrays)
    graded = sce("check", "--arrays", dump)
    assert graded.exit_code == 1
    assert "divided by N" not in graded.stdout and "reduction: mean" in graded.stdout, graded.stdout
