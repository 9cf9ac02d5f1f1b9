"""sce check --arrays on the paths tests/test_check_arrays.py leaves out, and
sce grad --logits-file reading arrays.

Every dump is written here with numpy: the answers are computed in this file
in float32 (plain max-shifted softmax; each mistake made on purpose), and the
expected verdict follows from how the answer was made, never from sce's output.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

IGNORE = -100
N, K = 12, 7


def softmax32(z):
    x = np.asarray(z, np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def inputs(seed=0, ignored=(1, 5)):
    rng = np.random.default_rng(seed)
    z = (3 * rng.standard_normal((N, K))).astype(np.float32)
    labels = rng.integers(0, K, N)
    labels[list(ignored)] = IGNORE
    return z, labels


def row_terms(z, labels):
    """Each row's p − onehot and −log p_label in float32; zero for ignored rows."""
    p = softmax32(z)
    counted = labels != IGNORE
    rows = np.flatnonzero(counted)
    g = p.copy()
    g[rows, labels[counted]] -= 1
    g[~counted] = 0
    nll = np.zeros(len(labels), np.float32)
    nll[rows] = -np.log(p[rows, labels[counted]])
    return g, nll, counted


def run(sce, *args):
    result = sce(*args)
    return result.exit_code, result.stdout, result.stderr


def check(sce, path, *options):
    return run(sce, "check", "--arrays", path, *options)


def test_per_row_losses_correct_and_one_entry_off(tmp_path, sce):
    z, labels = inputs()
    g, nll, _ = row_terms(z, labels)
    np.savez(tmp_path / "ok.npz", logits=z, labels=labels, grad=g, loss=nll)
    code, out, err = check(sce, tmp_path / "ok.npz", "--reduction", "none")
    assert code == 0, out + err
    assert "loss: worst error" in out and "0 of 12 entries beyond" in out
    off = nll.copy()
    off[3] = np.float32(off[3] * (1 + 2.0**-10))  # ~8,000 ulp of float32: far beyond what float32 allows
    np.savez(tmp_path / "off.npz", logits=z, labels=labels, grad=g, loss=off)
    code, out, _ = check(sce, tmp_path / "off.npz", "--reduction", "none")
    assert code == 1
    loss_line = next(line for line in out.splitlines() if line.startswith("loss: worst error"))
    assert loss_line.endswith("1 of 12 entries beyond")
    assert "gradient: worst error" in out and "0 of 84 entries beyond" in out


def test_reduced_loss_alone_and_its_padding_mistake(tmp_path, sce):
    z, labels = inputs()
    _, nll, counted = row_terms(z, labels)
    mean = np.float32(nll.sum(dtype=np.float32) / np.float32(counted.sum()))
    np.savez(tmp_path / "ok.npz", logits=z, labels=labels, loss=mean)
    assert check(sce, tmp_path / "ok.npz", "--reduction", "mean")[0] == 0
    over_all = np.float32(nll.sum(dtype=np.float32) / np.float32(N))  # ignored rows counted in the mean
    np.savez(tmp_path / "bad.npz", logits=z, labels=labels, loss=over_all)
    code, out, _ = check(sce, tmp_path / "bad.npz", "--reduction", "mean")
    assert code == 1
    assert (
        "mistake: the mean over every row, ignored (padding) rows included (12 rows, where the mean divides by 10)"
        in out
    )
    code, out, _ = check(sce, tmp_path / "bad.npz", "--reduction", "sum")
    assert code == 1 and "mistake:" not in out  # a mean over 12 is no sum: nothing named


def test_probability_targets_and_the_sum_instead_of_the_mean(tmp_path, sce):
    z, _ = inputs()
    rng = np.random.default_rng(1)
    t = rng.random((N, K)).astype(np.float32)
    t /= t.sum(axis=1, keepdims=True)
    summed = softmax32(z) - t  # with targets every row counts: the mean divides by N
    np.savez(tmp_path / "ok.npz", logits=z, targets=t, grad=summed / np.float32(N))
    code, out, err = check(sce, tmp_path / "ok.npz", "--reduction", "mean")
    assert code == 0, out + err
    np.savez(tmp_path / "sum.npz", logits=z, targets=t, grad=summed)
    code, out, _ = check(sce, tmp_path / "sum.npz", "--reduction", "mean")
    assert code == 1 and "mistake: 1/N missing: the sum over rows, not the mean (not divided by 12)" in out


def test_weights_and_the_weighted_mean_divided_by_the_row_count(tmp_path, sce):
    z, labels = inputs()
    w = np.array([0.5, 2.0, 1.0, 3.0, 0.25, 1.5, 1.0])
    g, _, counted = row_terms(z, labels)
    row_weight = np.where(counted, w[np.where(counted, labels, 0)], 0).astype(np.float32)
    weighted = g * row_weight[:, None]  # without smoothing, a row's gradient is w_y·(p − onehot)
    weight_sum = np.float32(row_weight.sum())
    weight_arg = ",".join(map(str, w))
    np.savez(tmp_path / "ok.npz", logits=z, labels=labels, grad=weighted / weight_sum)
    code, out, err = check(sce, tmp_path / "ok.npz", "--reduction", "mean", "--weight", weight_arg)
    assert code == 0, out + err
    np.savez(tmp_path / "bad.npz", logits=z, labels=labels, grad=weighted / np.float32(counted.sum()))
    code, out, _ = check(sce, tmp_path / "bad.npz", "--reduction", "mean", "--weight", weight_arg)
    assert code == 1
    assert (
        f"mistake: the weighted mean divided by the row count, not the weight sum (10 rows, where the weight sum is {weight_sum:g})"
        in out
    )


def test_smoothing_counting_ignored_rows_pytorch_73205(tmp_path, sce):
    z, labels = inputs()
    eps = np.float32(0.1)
    g, _, counted = row_terms(z, labels)
    smooth = softmax32(z) - np.float32(1 / K)  # ∂/∂z of −(1/K)·Σ_j log p_j
    smooth[~counted] = 0
    right = ((1 - eps) * g + eps * smooth) / np.float32(counted.sum())
    wrong = (1 - eps) * g / np.float32(counted.sum()) + eps * smooth / np.float32(N)
    options = ("--reduction", "mean", "--smoothing", "0.1")
    np.savez(tmp_path / "ok.npz", logits=z, labels=labels, grad=right)
    code, out, err = check(sce, tmp_path / "ok.npz", *options)
    assert code == 0, out + err
    np.savez(tmp_path / "bad.npz", logits=z, labels=labels, grad=wrong)
    code, out, _ = check(sce, tmp_path / "bad.npz", *options)
    assert code == 1
    assert "mistake: the smoothing term divided by every row, ignored rows included (PyTorch #73205)\nfix: " in out


def test_the_sum_of_per_batch_means(tmp_path, sce):
    z, labels = inputs(ignored=(0, 1, 2, 3, 4))  # batch 1 (rows 0-5) counts 1 row, batch 2 counts 6
    g, _, counted = row_terms(z, labels)
    halves = [g[:6] / np.float32(counted[:6].sum()), g[6:] / np.float32(counted[6:].sum())]
    np.savez(tmp_path / "d.npz", logits=z, labels=labels, grad=np.concatenate(halves))
    code, out, _ = check(sce, tmp_path / "d.npz", "--reduction", "mean")
    assert code == 1
    assert "mistake: the sum of per-batch means, x1/n1 + x2/n2 + … (2 batches of 6 rows)" in out


def test_arrow_with_a_list_column(tmp_path, sce):
    import polars as pl

    z, labels = inputs()
    g, _, counted = row_terms(z, labels)
    grad = g / np.float32(counted.sum())
    frame = pl.DataFrame(
        {"logits": z.tolist(), "labels": labels, "grad": grad.tolist()},
        schema={"logits": pl.List(pl.Float32), "labels": pl.Int64, "grad": pl.List(pl.Float32)},
    )
    frame.write_ipc(tmp_path / "d.arrow")
    code, out, err = check(sce, tmp_path / "d.arrow", "--reduction", "mean")
    assert code == 0, out + err
    assert "checked: 12 rows × 7 classes, as float32" in out
    ragged = pl.DataFrame({"logits": [[1.0, 2.0], [1.0]], "labels": [0, 0], "grad": [[0.0, 0.0], [0.0]]})
    ragged.write_ipc(tmp_path / "r.arrow")
    code, _, err = check(sce, tmp_path / "r.arrow")
    assert (code, err.replace(str(tmp_path) + os.sep, "")) == (
        1,
        "sce: error: r.arrow: array 'logits': row 1 has 1 entry where row 0 has 2; every row needs one per class\n",
    )


def test_blocks_do_not_change_the_verdict(tmp_path, monkeypatch, sce):
    """Rows cut into blocks of one or two, graded one at a time or in two threads: the same
    counts, worst entries and named mistake."""
    from sce.grading.dump import check as dump_check
    from sce.grading.dump import verdict_pass

    z, labels = inputs()
    g, _, counted = row_terms(z, labels)
    for name, grad in (("ok", g / np.float32(counted.sum())), ("bad", g / np.float32(N))):
        np.save(tmp_path / f"{name}.npy", grad)  # .npy: rows read from the file, block by block
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", labels)
    documents = {}
    for entries, workers in ((dump_check.BLOCK_ENTRIES, 1), (K, 1), (2 * K, 2), (K, 2)):
        monkeypatch.setattr(dump_check, "BLOCK_ENTRIES", entries)
        monkeypatch.setattr(verdict_pass, "WORKERS", workers)
        for name in ("ok", "bad"):
            args = ["--logits", tmp_path / "z.npy", "--labels", tmp_path / "y.npy", "--grad", tmp_path / f"{name}.npy"]
            code, out, _ = run(sce, "check", *args, "--reduction", "mean", "--format", "json")
            documents.setdefault(name, []).append((code, json.loads(out)))
    assert [code for code, _ in documents["ok"]] == [0, 0, 0, 0]
    assert [code for code, _ in documents["bad"]] == [1, 1, 1, 1]
    for name in ("ok", "bad"):
        first = documents[name][0][1]
        assert all(document == first for _, document in documents[name])
    assert documents["bad"][0][1]["mistakes"][0].startswith(
        "the mean over every row, ignored (padding) rows included (12 rows"
    )


def test_histogram_bins_match_a_search_of_the_edges():
    from sce.grading.dump.histogram import EDGES, bins

    rng = np.random.default_rng(0)
    edges = EDGES[1:]
    errors = np.concatenate(
        [
            [0.0, 5e-324, 2.0**-11, 2.0**61, 1e300],
            edges,
            np.nextafter(edges, 0),
            np.nextafter(edges, np.inf),
            2.0 ** rng.uniform(-12, 62, 10_000),
        ]
    )
    assert (bins(errors) == np.searchsorted(EDGES, errors, side="right") - 1).all()


def test_progress_is_told_each_block_and_the_naming_pass(tmp_path, monkeypatch):
    from sce.grading.dump import check as dump_check
    from sce.io.arrays import DumpRequest, read_dump
    from sce.options import LossOptions

    z, labels = inputs()
    g, _, _ = row_terms(z, labels)
    np.savez(tmp_path / "bad.npz", logits=z, labels=labels, grad=g / np.float32(N))
    monkeypatch.setattr(dump_check, "BLOCK_ENTRIES", 5 * K)
    calls: list[tuple[str, int]] = []
    dump = read_dump(DumpRequest(str(tmp_path / "bad.npz")))
    found = dump_check.check_dump(dump, LossOptions(reduction="mean"), "float32", progress=lambda *a: calls.append(a))
    assert not found.correct
    assert [c for c in calls if c[0] == "checking"] == [("checking", 5), ("checking", 5), ("checking", 2)]
    naming = [rows for phase, rows in calls if phase == "naming the mistake"]
    # One mistake fits. The blocks graded before the answer looked wrong (the first, and those
    # already started in threads) are compared after the verdict's pass, in order; the rest in it.
    assert naming in ([5], [5, 5], [5, 5, 2])
    assert calls.index(("naming the mistake", 5)) > calls.index(("checking", 2))


def _grad(sce, *args, stdin=None):
    result = sce("grad", *args, "--format", "json", input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("kind", ["npy", "npy_row", "npz", "parquet"])
def test_grad_reads_one_vector_from_an_array_file(tmp_path, kind, sce):
    import polars as pl

    z = np.array([1.5, -2.0, 0.25, 3.0], np.float32)
    path = tmp_path / f"v.{kind.split('_')[0]}"
    if kind == "npy":
        np.save(path, z)
    elif kind == "npy_row":
        np.save(path, z[None, :])
    elif kind == "npz":
        np.savez(path, logits=z, other=np.zeros(3))
    else:
        pl.DataFrame({"logits": [z.tolist()]}).write_parquet(path)
    code, out, err = _grad(sce, "--logits-file", path, "--label", 2)
    assert code == 0, err
    document = json.loads(out)
    x = z.astype(np.float64)
    expected = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    probabilities = np.array(document["rows"][0]["probabilities"] if "rows" in document else document["probabilities"])
    assert np.allclose(probabilities, expected, rtol=1e-14, atol=0)


def test_grad_reads_npy_bytes_from_stdin_and_text_still_works(tmp_path, sce):
    import io

    z = np.array([0.5, 1.0, -1.0])
    buffer = io.BytesIO()
    np.save(buffer, z)
    from_bytes = _grad(sce, "--logits-file", "-", "--label", 0, stdin=buffer.getvalue())
    from_text = _grad(sce, "--logits-file", "-", "--label", 0, stdin="0.5 1.0 -1.0\n")
    typed = _grad(sce, "0.5", "1.0", "-1.0", "--label", 0)
    assert from_bytes[0] == from_text[0] == typed[0] == 0
    assert json.loads(from_bytes[1]) == json.loads(typed[1]) == json.loads(from_text[1])


def test_grad_array_file_errors_are_one_line(tmp_path, sce):
    np.save(tmp_path / "m.npy", np.zeros((2, 3)))
    np.savez(tmp_path / "two.npz", a=np.ones(3), b=np.ones(3))
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))

    def error(name):
        code, _, err = _grad(sce, "--logits-file", tmp_path / name, "--label", 0)
        return code, err.replace(str(tmp_path) + os.sep, "")

    assert error("m.npy") == (
        1,
        "sce: error: m.npy has shape (2, 3); sce grad takes one vector (K, or 1 × K); "
        "for a batch use sce check --arrays or sce batch\n",
    )
    assert error("two.npz") == (
        1,
        "sce: error: two.npz: holds several arrays ('a', 'b') and none named 'logits'; save the logits alone\n",
    )
    assert error("s.npy") == (
        1,
        "sce: error: s.npy has type <U1; logits must be numbers (float16, bfloat16, float32, float64)\n",
    )
    code, _, err = _grad(sce, "--logits-file", "-", "--label", 0, stdin=b"PK\x03\x04 not really a zip")
    assert (code, err) == (1, "sce: error: stdin: not a .npz file (not a complete zip archive)\n")


def test_regression_a_dump_without_logits_lists_what_it_holds(tmp_path, sce):
    np.savez(tmp_path / "foo.npz", scores=np.zeros((2, 3)), y=np.zeros(2, dtype=int))
    code, _, err = run(sce, "batch", str(tmp_path / "foo.npz"), "-q")
    assert (code, err) == (
        1,
        f"sce: error: {tmp_path / 'foo.npz'}: no array 'logits' (it holds 'scores', 'y'); name it with --key-logits\n",
    )
