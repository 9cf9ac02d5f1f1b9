"""`sce batch` on dumps of arrays, and its .npz, Parquet and Arrow outputs.

The dumps are written here with numpy, polars and safetensors. An array input
must give exactly what a CSV of the same numbers gives (the CSV written here
by polars, as a user would), in every output format; the values themselves
are checked against the mpmath reference (tests/reference.py) on a small
dump, so that "the same as CSV" is not the only evidence.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import mpmath as mp
import numpy as np
import polars as pl
import pytest

from sce.io.writers.npz import NpzWriter
from sce.loss import softmax_cross_entropy
from tests import reference

IGNORE = -100


def run(sce, *args: object):
    result = sce("batch", *args)
    return result.exit_code, result.stdout, result.stderr


def make_data(n: int = 300, k: int = 5, seed: int = 0, ignored: int = IGNORE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, k))
    labels = rng.integers(0, k, n)
    labels[::7] = ignored
    return logits, labels


def ignored_label(options: list[str]) -> int:
    return int(options[options.index("--ignore-index") + 1]) if "--ignore-index" in options else IGNORE


def write_csv(path: Path, logits: np.ndarray, labels: np.ndarray | None = None, targets=None) -> Path:
    columns = {f"z{j}": logits[:, j] for j in range(logits.shape[1])}
    if labels is not None:
        columns["label"] = labels
    if targets is not None:
        columns |= {f"t{j}": targets[:, j] for j in range(targets.shape[1])}
    pl.DataFrame(columns).write_csv(path)
    return path


def batch_ok(sce, *args: object) -> str:
    code, out, err = run(sce, *args)
    assert code == 0, err
    return out


OPTION_SETS = [
    [],
    ["--reduction", "mean"],
    ["--reduction", "sum", "--weight", "0.5,2,1,1.5,0.25"],
    # Weights whose sums are exact: the CSV path sums them block by block, the array path at once.
    ["--reduction", "mean", "--weight", "0.5,2,1,1.5,0.25", "--smoothing", "0.1", "--temperature", "2"],
    ["--reduction", "mean", "--softcap", "5", "--z-loss", "1e-3", "--smoothing", "0.2"],
    ["--smoothing", "0.2", "--smoothing-style", "off-target", "--digits", "5"],
    ["--dtype", "float32", "--reduction", "mean"],
    ["--ignore-index", "2", "--reduction", "mean"],
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: " ".join(o) or "defaults")
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_an_npz_gives_the_same_bytes_as_a_csv_of_the_same_numbers(tmp_path, options, suffix, sce):
    logits, labels = make_data(ignored=ignored_label(options))
    np.savez(tmp_path / "d.npz", logits=logits, labels=labels)
    source = write_csv(tmp_path / "d.csv", logits, labels)
    batch_ok(sce, source, "-q", "-o", tmp_path / f"from_csv{suffix}", *options)
    batch_ok(sce, tmp_path / "d.npz", "-q", "-o", tmp_path / f"from_arrays{suffix}", *options)
    assert (tmp_path / f"from_arrays{suffix}").read_bytes() == (tmp_path / f"from_csv{suffix}").read_bytes()


def test_the_summary_is_the_csv_inputs(tmp_path, sce):
    logits, labels = make_data()
    np.savez(tmp_path / "d.npz", logits=logits, labels=labels)
    source = write_csv(tmp_path / "d.csv", logits, labels)
    summaries = []
    for given in (source, tmp_path / "d.npz"):
        code, _, err = run(sce, given, "-o", os.devnull, "--reduction", "mean")
        assert code == 0
        summaries.append([line for line in err.splitlines() if "per second" not in line])
    assert summaries[0] == summaries[1]
    assert any("300" in line for line in summaries[1])


def test_targets_and_wide_rows_give_the_csv_bytes(tmp_path, sce):
    rng = np.random.default_rng(3)
    logits, targets = rng.normal(size=(40, 6)), rng.dirichlet(np.ones(6), 40)
    np.savez(tmp_path / "t.npz", logits=logits, targets=targets)
    source = write_csv(tmp_path / "t.csv", logits, targets=targets)
    batch_ok(sce, source, "--target-cols", "t*", "-q", "-o", tmp_path / "a.csv", "--reduction", "mean")
    batch_ok(sce, tmp_path / "t.npz", "-q", "-o", tmp_path / "b.csv", "--reduction", "mean")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # 1,200 classes: the CSV side reads and writes such rows as text lines, not frames.
    wide, labels = make_data(n=12, k=1200, seed=4)
    np.savez(tmp_path / "w.npz", logits=wide, labels=labels)
    source = write_csv(tmp_path / "w.csv", wide, labels)
    for suffix in (".csv", ".tsv"):
        batch_ok(sce, source, "-q", "-o", tmp_path / f"a{suffix}")
        batch_ok(sce, tmp_path / "w.npz", "-q", "-o", tmp_path / f"b{suffix}")
        assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()


@pytest.mark.parametrize("options", [[], ["--digits", "4"], ["--dtype", "float32", "--reduction", "mean"]])
def test_json_lines_of_wide_rows_are_the_frame_paths_bytes(tmp_path, options, sce):
    # Built as text for an array input (a frame of 3K columns took 3.4 GB for 20 rows of 128,000 classes).
    wide, labels = make_data(n=12, k=1100, seed=10)
    wide[3, 5] = -np.inf  # a block with a non-finite number: every float is spelled as its cast to text
    np.savez(tmp_path / "w.npz", logits=wide, labels=labels)
    source = write_csv(tmp_path / "w.csv", wide, labels)
    batch_ok(sce, source, "-q", "-o", tmp_path / "a.jsonl", *options)
    batch_ok(sce, tmp_path / "w.npz", "-q", "-o", tmp_path / "b.jsonl", *options)
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert rows[3]["z5"] == "-inf" and rows[3]["p_z5"] == 0.0 and len(rows[0]) == 1100 * 3 + 2


def test_regression_a_wide_csv_written_as_tsv_is_split_into_fields(tmp_path, sce):
    # Rows of 1,000+ columns were copied as their CSV lines into TSV: all the inputs in one field.
    wide, labels = make_data(n=3, k=1000, seed=5)
    source = write_csv(tmp_path / "w.csv", wide, labels)
    batch_ok(sce, source, "-q", "-o", tmp_path / "o.tsv")
    lines = (tmp_path / "o.tsv").read_text().splitlines()
    assert {len(line.split("\t")) for line in lines} == {1000 + 1 + 1000 + 1 + 1000}


def _csv_matrix(path: Path, prefix: str, k: int) -> np.ndarray:
    frame = pl.read_csv(path, infer_schema_length=0)
    return np.column_stack([frame[f"{prefix}z{j}"].cast(pl.Float64).to_numpy() for j in range(k)])


def read_output(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path) as archive:
            return {name: archive[name] for name in archive.files}
    frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ipc(path)
    return {name: frame[name].to_numpy() for name in frame.columns}


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: " ".join(o) or "defaults")
@pytest.mark.parametrize("suffix", [".npz", ".parquet", ".arrow", ".feather"])
def test_array_outputs_hold_the_csv_outputs_values_and_types(tmp_path, options, suffix, sce):
    logits, labels = make_data(ignored=ignored_label(options))
    np.savez(tmp_path / "d.npz", logits=logits.astype(np.float32), labels=labels.astype(np.int16))
    batch_ok(sce, tmp_path / "d.npz", "-q", "-o", tmp_path / "o.csv", *options)
    batch_ok(sce, tmp_path / "d.npz", "-q", "-o", tmp_path / f"o{suffix}", *options)
    got = read_output(tmp_path / f"o{suffix}")
    assert list(got) == ["logits", "labels", "probabilities", "loss", "grad"]
    computed = np.float32 if "float32" in options else np.float64
    # The CSV's numbers are shortest round-trip text: read back, they are the same floats.
    csv = pl.read_csv(tmp_path / "o.csv", infer_schema_length=0)
    k = logits.shape[1]
    assert got["logits"].dtype == np.float64
    assert np.array_equal(got["logits"], logits.astype(np.float32).astype(np.float64))
    assert got["labels"].dtype == np.int64 and np.array_equal(got["labels"], labels)
    for name, prefix in (("probabilities", "p_"), ("grad", "grad_")):
        assert got[name].dtype == computed and got[name].shape == (len(labels), k)
        expected = _csv_matrix(tmp_path / "o.csv", prefix, k).astype(computed)
        assert np.array_equal(got[name], expected)
    assert got["loss"].dtype == computed
    assert np.array_equal(got["loss"], csv["loss"].cast(pl.Float64).to_numpy().astype(computed))


def test_array_outputs_equal_the_core_on_the_whole_dump(tmp_path, sce):
    logits, labels = make_data(n=2000, k=7, seed=8)
    np.save(tmp_path / "z.npy", logits)
    np.save(tmp_path / "y.npy", labels.astype(np.int32))
    options = ["--reduction", "mean", "--smoothing", "0.05", "--z-loss", "1e-4"]
    batch_ok(sce, "--logits", tmp_path / "z.npy", "--labels", tmp_path / "y.npy", "-q", "-o", tmp_path / "o.npz", *options)
    core = softmax_cross_entropy(logits, labels, reduction="mean", label_smoothing=0.05, z_loss=1e-4)
    got = read_output(tmp_path / "o.npz")
    assert np.array_equal(got["probabilities"], core.probabilities)
    assert np.array_equal(got["loss"], core.losses)
    assert np.array_equal(got["grad"], core.gradient)


def test_values_agree_with_the_50_digit_reference(tmp_path, sce):
    logits = np.array([[2.0, 3.0, 4.0, -1.0], [0.5, -40.0, 1.0, 0.0], [1e-3, 2e-3, 0.0, 5.0], [3.0, 3.0, 3.0, 3.0]])
    labels = np.array([1, IGNORE, 3, 0])
    weight = [0.5, 2.0, 1.0, 1.5]
    np.savez(tmp_path / "d.npz", logits=logits, labels=labels)
    batch_ok(sce, 
        tmp_path / "d.npz", "-q", "-o", tmp_path / "o.parquet", "--reduction", "mean",
        "--weight", ",".join(map(str, weight)), "--smoothing", "0.1",
    )  # fmt: skip
    got = read_output(tmp_path / "o.parquet")
    kwargs = {"weight": weight, "label_smoothing": 0.1, "reduction": "mean"}
    exact = reference.gradient(logits.tolist(), labels=labels.tolist(), **kwargs)
    for row in range(4):
        for k in range(4):
            assert abs(got["grad"][row][k] - float(exact[row][k])) <= 4e-16 * max(1.0, abs(float(exact[row][k])))
    for row in range(4):
        one = reference.loss([logits[row].tolist()], [int(labels[row])], **(kwargs | {"reduction": "sum"}))
        assert got["loss"][row] == pytest.approx(float(one), rel=4e-16, abs=1e-300)
    probabilities = [reference.softmax([mp.mpf(v) for v in row]) for row in logits.tolist()]
    assert np.allclose(got["probabilities"], np.array(probabilities, dtype=float), rtol=4e-16, atol=0)


def test_an_npz_output_is_a_dump_that_check_and_batch_read_back(tmp_path, sce):
    logits, labels = make_data(n=64, k=9, seed=2)
    np.savez(tmp_path / "d.npz", logits=logits, labels=labels)
    batch_ok(sce, tmp_path / "d.npz", "-q", "-o", tmp_path / "o.npz")
    graded = sce("check", "--arrays", str(tmp_path / "o.npz"), "--reduction", "none")
    assert graded.exit_code == 0 and "verdict: correct for float64" in graded.stdout
    for suffix in (".npz", ".parquet", ".arrow"):
        batch_ok(sce, tmp_path / "o.npz", "-q", "-o", tmp_path / f"again{suffix}")
        assert {k: v.tolist() for k, v in read_output(tmp_path / f"again{suffix}").items()} == {
            k: v.tolist() for k, v in read_output(tmp_path / "o.npz").items()
        }
    with zipfile.ZipFile(tmp_path / "o.npz") as archive:
        assert archive.testzip() is None  # every member's CRC-32 is right
        assert [info.compress_type for info in archive.infolist()] == [zipfile.ZIP_STORED] * 5


@pytest.mark.parametrize("source", ["npy pair", "list parquet", "column parquet", "arrow", "safetensors"])
def test_every_input_format_gives_the_npz_output(tmp_path, source, sce):
    logits, labels = make_data(n=50, k=6, seed=9)
    np.savez(tmp_path / "d.npz", logits=logits, labels=labels)
    batch_ok(sce, tmp_path / "d.npz", "-q", "-o", tmp_path / "ref.csv")
    if source == "npy pair":
        np.save(tmp_path / "z.npy", logits)
        np.save(tmp_path / "y.npy", labels)
        args = [tmp_path / "z.npy", "--labels", tmp_path / "y.npy"]
    elif source == "list parquet":
        pl.DataFrame({"logits": logits, "labels": labels}).write_parquet(tmp_path / "d.parquet")
        args = [tmp_path / "d.parquet"]
    elif source == "column parquet":  # logits_0 … logits_5 beside integer labels
        columns = {f"logits_{k}": logits[:, k] for k in range(6)} | {"labels": labels}
        pl.DataFrame(columns).write_parquet(tmp_path / "d.parquet")
        args = [tmp_path / "d.parquet"]
    elif source == "arrow":
        pl.DataFrame({"x": logits, "y": labels}).write_ipc(tmp_path / "d.arrow")
        args = ["--arrays", tmp_path / "d.arrow", "--key-logits", "x", "--key-labels", "y"]
    else:
        safetensors = pytest.importorskip("safetensors.numpy")
        safetensors.save_file({"logits": logits, "labels": labels}, str(tmp_path / "d.safetensors"))
        args = [tmp_path / "d.safetensors"]
    batch_ok(sce, *args, "-q", "-o", tmp_path / "o.csv")
    assert (tmp_path / "o.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_narrow_floats_are_read_exactly_as_their_values(tmp_path, dtype, sce):
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    logits, labels = make_data(n=30, k=4, seed=6)
    stored = logits.astype(dtype)
    np.savez(tmp_path / "narrow.npz", logits=stored, labels=labels.astype(np.int8))
    np.savez(tmp_path / "wide.npz", logits=stored.astype(np.float64), labels=labels)
    batch_ok(sce, tmp_path / "narrow.npz", "-q", "-o", tmp_path / "a.csv")
    batch_ok(sce, tmp_path / "wide.npz", "-q", "-o", tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_a_csv_input_into_parquet_keeps_its_other_columns_as_text(tmp_path, sce):
    logits, labels = make_data(n=20, k=3)
    frame = pl.DataFrame({"id": [f"row {i}" for i in range(20)]}).hstack(
        pl.DataFrame({f"z{k}": logits[:, k] for k in range(3)} | {"label": labels})
    )
    frame.write_csv(tmp_path / "d.csv")
    batch_ok(sce, tmp_path / "d.csv", "--logit-cols", "z*", "-q", "-o", tmp_path / "o.parquet", "--reduction", "mean")
    got = pl.read_parquet(tmp_path / "o.parquet")
    assert got.columns == ["id", "logits", "labels", "probabilities", "loss", "grad"]
    assert got["id"].to_list() == [f"row {i}" for i in range(20)]
    core = softmax_cross_entropy(logits, labels, reduction="mean")
    assert np.array_equal(got["grad"].to_numpy(), core.gradient)
    assert np.array_equal(got["logits"].to_numpy(), logits)


def test_a_wide_csv_input_into_arrow(tmp_path, sce):
    wide, labels = make_data(n=10, k=1500, seed=7)
    write_csv(tmp_path / "w.csv", wide, labels)
    batch_ok(sce, tmp_path / "w.csv", "-q", "-o", tmp_path / "o.arrow")
    got = read_output(tmp_path / "o.arrow")
    assert np.array_equal(got["grad"], softmax_cross_entropy(wide, labels, reduction="none").gradient)


def test_npz_writer_members_beyond_a_block_and_names_beyond_ascii(tmp_path):
    path = tmp_path / "t.npz"
    values = np.arange(35.0).reshape(7, 5)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        writer = NpzWriter(fd, [("ünï", np.dtype(np.float32), (7, 5)), ("n", np.dtype(np.int64), (7,))])
        for start in range(0, 7, 3):
            writer.write({"ünï": values[start : start + 3], "n": np.arange(start, min(7, start + 3))})
        writer.finish()
    finally:
        os.close(fd)
    with np.load(path) as archive:
        assert archive["ünï"].dtype == np.float32 and np.array_equal(archive["ünï"], values)
        assert np.array_equal(archive["n"], np.arange(7))


def test_npz_writer_refuses_more_rows_than_its_shape(tmp_path):
    fd = os.open(tmp_path / "t.npz", os.O_RDWR | os.O_CREAT)
    try:
        writer = NpzWriter(fd, [("a", np.dtype(np.float64), (2,))])
        with pytest.raises(RuntimeError, match="more rows"):
            writer.write({"a": np.zeros(3)})
    finally:
        os.close(fd)


# --- bad input: one line, naming the file and the array -------------------------------------------------


def save(tmp_path: Path, name: str = "d.npz", **arrays: np.ndarray) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


Z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    "arrays,status,message",
    [
        (
            {"logits": Z},
            2,
            "give the labels (an array 'labels', or --labels FILE) or probability targets ('targets'), "
            "one of them ({path} holds 'logits')",
        ),
        ({"logits": Z, "labels": np.array([0])}, 1, "{path}: array 'labels' has shape (1,) but the logits have 2 rows"),
        ({"logits": Z, "targets": np.full((2, 2), 0.5)}, 1, "{path}: array 'targets' has shape (2, 2) but the logits are 2 × 3"),
        ({"logits": Z, "labels": np.array([0, 3])}, 1, "{path}: array 'labels': row 1: label 3 is out of range for 3 classes"),
        ({"logits": Z, "labels": np.array([0.0, 1.0])}, 1, "{path}: array 'labels' has type float64; labels are class indices"),
        ({"logits": Z, "labels": np.array(["a", "b"])}, 1, "{path}: array 'labels' has type <U1; labels are class indices"),
        ({"logits": np.where(Z == 2.0, np.nan, Z), "labels": np.array([0, 1])}, 1, "{path}: array 'logits': row 0, class 1: logit nan"),
        ({"logits": np.zeros((0, 3)), "labels": np.zeros(0, int)}, 1, "{path}: array 'logits' is empty"),
        ({"logits": Z, "labels": np.array([0, 1]), "targets": np.full((2, 3), 1 / 3)}, 1, "{path}: holds both 'labels' and 'targets'"),
    ],
    ids=["no labels", "labels shape", "K mismatch", "label range", "float labels", "text labels", "nan", "empty", "both"],
)  # fmt: skip
def test_a_bad_dump_is_one_line_naming_file_and_array(tmp_path, arrays, status, message, sce):
    path = save(tmp_path, **arrays)
    code, out, err = run(sce, path, "-o", tmp_path / "o.npz")
    assert code == status and out == ""
    assert err.startswith("sce: error: " + message.format(path=path)) and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]  # nothing written


def test_logits_of_more_than_two_axes_say_how_to_flatten_them(tmp_path, sce):
    path = save(tmp_path, logits=np.zeros((2, 3, 4)), labels=np.zeros((2, 4), int))
    code, _, err = run(sce, path)
    assert (code, err) == (
        1,
        f"sce: error: {path}: array 'logits' has shape (2, 3, 4); logits must be N × K (rows × classes); "
        "for classes on axis 1 (N × K × …) save np.moveaxis(x, 1, -1).reshape(-1, K)\n",
    )


def test_progress_is_told_in_bytes_of_the_input_and_rows(tmp_path, monkeypatch):
    from sce.batch import BatchRequest, array_source, run_batch
    from sce.io.arrays import DumpRequest

    monkeypatch.setattr(array_source, "BLOCK_ENTRIES", 40)  # blocks of 10 rows of 4 classes
    logits, labels = make_data(n=35, k=4)
    path = save(tmp_path, logits=logits, labels=labels)
    told: list[tuple[int, int]] = []
    request = BatchRequest(str(path), str(tmp_path / "o.npz"), output_format="npz", arrays=DumpRequest(str(path)))
    summary = run_batch(request, on_progress=lambda done, rows: told.append((done, rows)))
    size = path.stat().st_size
    assert [rows for _, rows in told] == [10, 20, 30, 35] and summary.rows == 35
    assert [done for done, _ in told] == [size * rows // 35 for rows in (10, 20, 30, 35)]


def test_unsigned_labels_that_wrapped_the_ignore_index_are_explained(tmp_path, sce):
    path = save(tmp_path, logits=Z, labels=np.array([0, -100]).astype(np.uint8))
    code, _, err = run(sce, path)
    assert (code, err) == (
        1,
        f"sce: error: {path}: array 'labels': row 1: label 156 is out of range for 3 classes; labels are 0-based: "
        "use 0 to 2 (or -100 to ignore the row); uint8 cannot hold -100 (it became 156): save the labels as a "
        "signed type such as int64\n",
    )
    labels = np.array([0, 2]).astype(np.uint16)  # an unsigned type without the ignore index is fine
    assert run(sce, save(tmp_path, "u.npz", logits=Z, labels=labels))[0] == 0


def test_a_truncated_npy_and_a_missing_file(tmp_path, sce):
    np.save(tmp_path / "z.npy", Z)
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    data = (tmp_path / "z.npy").read_bytes()
    (tmp_path / "z.npy").write_bytes(data[:-8])
    code, _, err = run(sce, tmp_path / "z.npy", "--labels", tmp_path / "y.npy")
    assert (code, err) == (1, f"sce: error: {tmp_path / 'z.npy'}: truncated: 40 bytes of data where its header promises 48\n")
    code, _, err = run(sce, tmp_path / "missing.npz")
    assert (code, err) == (1, f"sce: error: {tmp_path / 'missing.npz'}: cannot read: no such file\n")


def test_a_truncated_npz_is_named_as_not_an_npz_file(tmp_path, sce):
    path = save(tmp_path, logits=Z, labels=np.array([0, 1]))
    path.write_bytes(path.read_bytes()[:-30])
    code, _, err = run(sce, path)
    assert code == 1 and err.startswith(f"sce: error: {path}: not a .npz file")


@pytest.mark.parametrize(
    "args,message",
    [
        (["-o", "o.npy"], "-o o.npy: a .npy file holds one array; write .npz (named arrays), .parquet or .arrow"),
        (["-o", "o.safetensors"], "-o o.safetensors: sce does not write .safetensors; write .npz, .parquet or .arrow"),
        (["-f", "npz"], "--format npz: binary output goes to a file; name it with -o FILE"),
        (["-f", "parquet", "-o", "-"], "--format parquet: binary output goes to a file; name it with -o FILE"),
        (["--label-col", "y"], "--label-col goes with a CSV input, not with arrays; name the labels array with --key-labels"),
        (["--delimiter", "tab"], "--delimiter goes with a CSV input, not with arrays"),
        (["--arrays", "x.npz"], "give the dump once: as INPUT ({path}) or --arrays (x.npz)"),
    ],
)  # fmt: skip
def test_usage_mistakes_with_arrays(tmp_path, args, message, sce):
    path = save(tmp_path, logits=Z, labels=np.array([0, 1]))
    code, _, err = run(sce, path, *args)
    assert (code, err) == (2, f"sce: error: {message.format(path=path)}\n")


def test_array_options_with_a_csv_input_and_nothing_at_all(tmp_path, sce):
    source = write_csv(tmp_path / "d.csv", Z, np.array([0, 1]))
    code, _, err = run(sce, source, "--labels", "y.npy")
    assert code == 2 and err.startswith(f"sce: error: {source} is read as CSV; --arrays, --logits")
    code, _, err = run(sce, "-q")
    assert code == 2 and err.startswith("sce: error: give INPUT (a CSV or TSV file, or - for stdin) or arrays")


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_a_csv_input_into_npz_counts_its_rows_first(tmp_path, stdin, sce):
    logits, labels = make_data(n=30, k=3)
    names = ["", "a", "ünïcödé long name"] * 10  # an empty cell, and text wider than the first block's
    frame = pl.DataFrame({"id": names}).hstack(pl.DataFrame({f"z{k}": logits[:, k] for k in range(3)} | {"label": labels}))
    frame.write_csv(tmp_path / "d.csv")
    args = ["--logit-cols", "z*", "-q", "-o", tmp_path / "o.npz", "--reduction", "mean"]
    if stdin:
        result = sce("batch", "-", *args, input=(tmp_path / "d.csv").read_bytes())
        assert result.exit_code == 0, result.stderr
    else:
        batch_ok(sce, tmp_path / "d.csv", *args)
    got = read_output(tmp_path / "o.npz")
    assert list(got) == ["id", "logits", "labels", "probabilities", "loss", "grad"]
    assert got["id"].tolist() == names
    core = softmax_cross_entropy(logits, labels, reduction="mean")
    assert np.array_equal(got["grad"], core.gradient) and np.array_equal(got["logits"], logits)
    batch_ok(sce, tmp_path / "d.csv", "--logit-cols", "z*", "-q", "-o", tmp_path / "o.parquet", "--reduction", "mean")
    table = pl.read_parquet(tmp_path / "o.parquet")
    assert table["id"].to_list() == names
    assert all(np.array_equal(got[name], table[name].to_numpy()) for name in list(got)[1:])


def test_regression_a_csv_into_npz_with_mean_runs_the_core_twice_not_three_times(tmp_path, monkeypatch, sce):
    """The mean's first pass and the .npz's first pass (its members' shapes) were two passes
    through the core before the one that writes; now one first pass does both."""
    from sce.batch import compute as frames

    logits, labels = make_data(n=30, k=3)
    pl.DataFrame({f"z{k}": logits[:, k] for k in range(3)} | {"label": labels}).write_csv(tmp_path / "d.csv")
    calls = []
    counted = frames.softmax_cross_entropy
    monkeypatch.setattr(frames, "softmax_cross_entropy", lambda *a, **k: calls.append(1) or counted(*a, **k))
    batch_ok(sce, tmp_path / "d.csv", "-q", "-o", tmp_path / "o.npz", "--reduction", "mean", "--weight", "0.5,2,1")
    assert len(calls) == 2  # one block, twice
    core = softmax_cross_entropy(logits, labels, reduction="mean", weight=[0.5, 2, 1])
    assert np.array_equal(read_output(tmp_path / "o.npz")["grad"], core.gradient)


def test_a_csv_with_a_header_and_no_rows_writes_no_npz(tmp_path, sce):
    (tmp_path / "d.csv").write_text("z0,z1,label\n")
    code, _, err = run(sce, tmp_path / "d.csv", "-o", tmp_path / "o.npz")
    assert (code, err) == (1, "sce: error: the input has a header but no rows\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_a_csv_column_named_like_an_output_array_is_refused(tmp_path, sce):
    (tmp_path / "d.csv").write_text("grad,z0,z1,label\n1,2,3,0\n")
    code, _, err = run(sce, tmp_path / "d.csv", "--logit-cols", "z*", "-o", tmp_path / "o.parquet")
    assert code == 1 and "the input has a column 'grad', the name of one of the parquet output's arrays" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_npz_into_a_fifo_is_refused_before_a_byte_is_written(tmp_path, sce):
    import threading

    path = save(tmp_path, logits=Z, labels=np.array([0, 1]))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    code, _, err = run(sce, path, "-o", fifo, "-f", "npz")
    reader.join(timeout=10)
    assert (code, err) == (2, f"sce: error: -o: {fifo} is a pipe; .npz output is written out of order: name a regular file\n")
    assert received == [b""]


def test_a_full_disk_while_writing_npz_names_the_output_and_keeps_the_old_one(tmp_path, monkeypatch, sce):
    import errno

    from sce.io.writers import npz as npz_writer

    logits, labels = make_data(n=2000, k=300, seed=11)  # several blocks
    path = save(tmp_path, logits=logits, labels=labels)
    out = tmp_path / "o.npz"
    out.write_bytes(b"precious")
    real = os.pwrite
    calls = []

    def pwrite(fd: int, data, position: int) -> int:
        calls.append(position)
        if len(calls) > 12:  # in the second block (5 npy headers, then 5 arrays a block)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, position)

    monkeypatch.setattr(npz_writer.os, "pwrite", pwrite)
    code, _, err = run(sce, path, "-o", out)
    assert (code, err) == (
        1,
        f"sce: error: -o: writing the output {out} failed: no space left on device; {out} is unchanged; "
        "free some space or write the output elsewhere\n",
    )
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "o.npz"]


def test_an_unknown_format_and_a_dump_named_otherwise(tmp_path, sce):
    (tmp_path / "x.txt").write_text("z0,z1\n1,2\n")
    code, _, err = run(sce, "--arrays", tmp_path / "x.txt")
    assert (code, err) == (
        1,
        f"sce: error: {tmp_path / 'x.txt'}: not a format sce reads as arrays; "
        "use .npy, .npz, .safetensors, .parquet, .arrow or .pt\n",
    )
    dump = save(tmp_path, logits=Z, labels=np.array([0, 1]))
    renamed = tmp_path / "dump.bin"  # an .npz by its first bytes
    renamed.write_bytes(dump.read_bytes())
    assert batch_ok(sce, renamed, "-q") == batch_ok(sce, dump, "-q")


def test_the_output_cannot_be_an_input(tmp_path, sce):
    np.save(tmp_path / "z.npy", Z)
    labels = save(tmp_path, "y.npz", labels=np.array([0, 1]))
    code, _, err = run(sce, tmp_path / "z.npy", "--labels", labels, "--key-labels", "labels", "-o", labels)
    assert (code, err) == (2, f"sce: error: -o: {labels} is an input file; write the output to another file\n")


def test_an_existing_output_survives_a_failed_run(tmp_path, sce):
    bad = save(tmp_path, logits=np.vstack([Z] * 400_000), labels=np.array([0, 1] * 399_999 + [0, 7]))
    out = tmp_path / "o.npz"
    out.write_bytes(b"precious")
    code, _, err = run(sce, bad, "-o", out)
    assert code == 1 and "row 799999: label 7 is out of range" in err
    assert out.read_bytes() == b"precious"
    nan = np.vstack([Z] * 400_000)
    nan[700_000, 1] = np.nan  # found by the core, blocks after the first were written
    bad = save(tmp_path, "nan.npz", logits=nan, labels=np.zeros(800_000, int))
    for name in ("o.npz", "o.parquet", "o.csv"):
        (tmp_path / name).write_bytes(b"precious")
        code, _, err = run(sce, bad, "-o", tmp_path / name)
        assert code == 1 and "array 'logits': row 700000, class 1: logit nan" in err
        assert (tmp_path / name).read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "nan.npz", "o.csv", "o.npz", "o.parquet"]


def test_arrays_piped_on_stdin_are_named_as_such(tmp_path, sce):
    path = save(tmp_path, logits=Z, labels=np.array([0, 1]))
    result = sce("batch", "-", input=path.read_bytes())
    # The in-process runner's stdin cannot be peeked at: the refusal is checked on a real pipe in test_batch_arrays_processes.py.
    assert result.exit_code in (1, 2)
    assert result.stderr.count("\n") == 1


def test_json_lines_of_an_array_input_are_numbers(tmp_path, sce):
    path = save(tmp_path, logits=Z, labels=np.array([0, IGNORE]))
    out = batch_ok(sce, path, "-f", "jsonl", "-q")
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["z0"] == 1.0 and first["label"] == 0 and second["label"] == IGNORE
    assert second["loss"] == 0.0 and second["grad_z2"] == 0.0


def test_regression_an_npz_writer_stuck_in_a_write_keeps_its_descriptor_open_on_abort(tmp_path, monkeypatch):
    """An abort waited 2 s for the writer's thread, then closed the file it was still writing
    into: a file opened next could take its descriptor and the thread's bytes. Now the
    descriptor stays open (the writes go to the removed temporary file) until the process ends."""
    import threading

    from sce.io.writers import arrays as array_output
    from sce.io.writers import atomic
    from sce.io.writers.atomic import OutputTarget

    monkeypatch.setattr(atomic, "ABORT_WAIT", 0.05)
    entered, release = threading.Event(), threading.Event()
    target = OutputTarget(str(tmp_path / "out.npz"), None)
    sink = array_output.NpzSink(target, {"loss": (np.dtype(np.float64), (4,))})

    def stuck(columns):
        entered.set()
        release.wait(10)

    monkeypatch.setattr(sink.writer, "write", stuck)
    sink.put({"loss": np.zeros(4)})
    assert entered.wait(5)
    sink.abort()
    target.abandon()
    assert not target.stream.closed
    assert list(tmp_path.iterdir()) == []  # the temporary file is removed all the same
    release.set()
    sink.thread.join(5)
    target.stream.close()


def test_an_npz_writer_that_finished_has_its_file_closed_on_abort(tmp_path):
    from sce.io.writers import arrays as array_output
    from sce.io.writers.atomic import OutputTarget

    target = OutputTarget(str(tmp_path / "out.npz"), None)
    sink = array_output.NpzSink(target, {"loss": (np.dtype(np.float64), (4,))})
    sink.abort()
    target.abandon()
    assert target.stream.closed
    assert list(tmp_path.iterdir()) == []


def _flipped_member_byte(path, flipped, member="logits.npy", at=200):
    """A copy of the .npz with one bit of a stored member's data flipped (its CRC-32 kept)."""
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo(member)
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + at] ^= 1
    flipped.write_bytes(bytes(data))


def test_regression_a_damaged_stored_npz_member_is_refused_not_read(tmp_path, sce):
    """Memory-mapped, a stored member skipped zipfile's CRC-32 check: a flipped bit was scored
    by sce batch (exit 0) and judged a wrong answer by sce check --arrays."""
    logits, labels = make_data(n=50, k=4)
    grad = softmax_cross_entropy(logits, labels, reduction="mean").gradient
    np.savez(tmp_path / "d.npz", logits=logits, labels=labels, grad=grad)
    _flipped_member_byte(tmp_path / "d.npz", tmp_path / "bad.npz")
    said = (
        f"sce: error: {tmp_path / 'bad.npz'}: array 'logits' is damaged: its bytes do not match the archive's "
        "CRC-32 (the file changed or was corrupted after it was written); write it again\n"
    )
    code, _, err = run(sce, tmp_path / "bad.npz", "-q", "-o", tmp_path / "out.npz")
    assert (code, err) == (1, said)
    assert not (tmp_path / "out.npz").exists()
    result = sce("check", "--arrays", str(tmp_path / "bad.npz"), "--reduction", "mean")
    assert (result.exit_code, result.stderr) == (1, said)
    result = sce("check", "--arrays", str(tmp_path / "d.npz"), "--reduction", "mean")
    assert result.exit_code == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("reduction", "change", "second"), [("sum", "grow", "more"), ("none", "shrink", "1")])
def test_regression_a_csv_that_changes_before_its_npz_is_written_is_refused(tmp_path, monkeypatch, reduction, change, second, sce):
    """The .npz's members are shaped by a first pass's row count: an input that grew or shrank
    before the second ended in an internal error (exit 70, 'more rows than its shape')."""
    from sce.batch import csv_source

    source = tmp_path / "in.csv"
    source.write_text("z0,z1,label\n1,2,0\n3,1,1\n")
    first_pass = csv_source._csv_layout

    def then_change(path, *reading):
        found = first_pass(path, *reading)
        if change == "grow":
            with open(source, "a") as more:
                more.write("0,5,1\n")
        else:
            source.write_text("z0,z1,label\n1,2,0\n")
        return found

    monkeypatch.setattr(csv_source, "_csv_layout", then_change)
    code, _, err = run(sce, source, "--reduction", reduction, "-o", tmp_path / "out.npz", "-q")
    assert (code, err) == (
        1,
        f"sce: error: {source} changed while it was read twice for the .npz output: 2 rows the first time, "
        f"{second} the second; run it again on a file that stays as it is (or a copy)\n",
    )
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("name", ["d.arrows", "d.arrow", "d.bin"])
def test_regression_an_arrow_ipc_stream_is_read(tmp_path, name, sce):
    """The stream format (what Arrow writes to pipes; polars' write_ipc_stream) was read as CSV
    ("byte 0xff is not valid UTF-8") or refused ("InvalidFooter")."""
    pl.DataFrame({"logits": [[2.0, 3.0, 4.0]], "labels": [1]}).write_ipc_stream(tmp_path / name)
    code, out, err = run(sce, tmp_path / name, "-q")
    assert code == 0, err
    # −log softmax([2, 3, 4])₁, by hand
    loss = float(out.splitlines()[1].split(",")[7])
    assert loss == pytest.approx(np.log(np.exp([2.0, 3.0, 4.0]).sum()) - 3.0, rel=1e-15)
