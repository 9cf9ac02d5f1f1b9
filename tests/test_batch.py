"""`sce batch`: files in and out, compared with the core row by row."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sce.io.csv import records
from sce.loss import softmax_cross_entropy

SAMPLES = Path(__file__).parent.parent / "sce" / "samples"


def read_csv(text: str, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def make_rows(n: int = 40, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = np.round(rng.normal(0, 3, (n, k)), 6)
    labels = rng.integers(0, k, n)
    labels[::7] = -100
    return logits, labels


def as_csv(logits: np.ndarray, labels: np.ndarray | None = None, targets: np.ndarray | None = None) -> str:
    k = logits.shape[1]
    header = [f"z{j}" for j in range(k)]
    if labels is not None:
        header.append("label")
    if targets is not None:
        header += [f"t{j}" for j in range(k)]
    lines = [",".join(header)]
    for n, row in enumerate(logits):
        fields = [repr(float(v)) for v in row]
        if labels is not None:
            fields.append(str(int(labels[n])))
        if targets is not None:
            fields += [repr(float(v)) for v in targets[n]]
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"


def assert_rows_match(rows: list[dict[str, str]], result, k: int) -> None:
    assert len(rows) == result.num_rows
    for n, row in enumerate(rows):
        for j in range(k):
            assert float(row[f"p_z{j}"]) == result.probabilities[n, j]
            assert float(row[f"grad_z{j}"]) == result.gradient[n, j]
        assert float(row["loss"]) == result.losses[n]


OPTIONS = [
    ([], {}),
    (["--reduction", "mean"], {"reduction": "mean"}),
    (["--reduction", "sum"], {"reduction": "sum"}),
    (["--weight", "0.5,2,1,1.5", "--reduction", "mean"], {"weight": [0.5, 2, 1, 1.5], "reduction": "mean"}),
    (["--smoothing", "0.2", "--temperature", "1.7"], {"label_smoothing": 0.2, "temperature": 1.7}),
    (["--ignore-index", "3", "--reduction", "mean"], {"ignore_index": 3, "reduction": "mean"}),
    (["--dtype", "float32"], {"dtype": np.float32}),
]


@pytest.mark.parametrize("args,kwargs", OPTIONS, ids=[" ".join(a) or "defaults" for a, _ in OPTIONS])
def test_output_rows_equal_the_core(tmp_path, args, kwargs, sce):
    logits, labels = make_rows()
    if kwargs.get("ignore_index") == 3:
        labels = np.where(labels == -100, 3, labels)
    path = write(tmp_path, "in.csv", as_csv(logits, labels))
    result = sce("batch", str(path), "-q", *args)
    assert result.exit_code == 0, result.stderr
    expected = softmax_cross_entropy(logits, labels, **{"reduction": "none", **kwargs})
    rows = read_csv(result.stdout)
    if kwargs.get("dtype") is np.float32:
        for n, row in enumerate(rows):
            assert np.float32(row["grad_z0"]) == expected.gradient[n, 0]
        return
    assert_rows_match(rows, expected, 4)


def test_input_columns_are_kept_exactly_as_written(tmp_path, sce):
    path = write(tmp_path, "in.csv", 'id,z0,z1,label,note\nA-1,2.50,-3e-2,1,"x, y"\n')
    result = sce("batch", str(path), "--logit-cols", "z*", "-q")
    row = read_csv(result.stdout)[0]
    assert (row["id"], row["z0"], row["z1"], row["label"], row["note"]) == ("A-1", "2.50", "-3e-2", "1", "x, y")
    assert list(row)[-5:] == ["p_z0", "p_z1", "loss", "grad_z0", "grad_z1"]


def test_stdin_to_stdout_matches_the_loss_row_by_row(sce):
    logits, labels = make_rows(10)
    result = sce("batch", "-", "-q", input=as_csv(logits, labels))
    assert result.exit_code == 0, result.stderr
    assert_rows_match(read_csv(result.stdout), softmax_cross_entropy(logits, labels, reduction="none"), 4)


def test_stdin_with_mean_is_read_twice(sce):
    logits, labels = make_rows(10)
    result = sce("batch", "-", "-q", "--reduction", "mean", input=as_csv(logits, labels))
    assert result.exit_code == 0, result.stderr
    assert_rows_match(read_csv(result.stdout), softmax_cross_entropy(logits, labels, reduction="mean"), 4)


def test_headerless_input_names_columns_by_number(tmp_path, sce):
    path = write(tmp_path, "in.csv", "2,3,4,1\n0,40,-1,1\n")
    result = sce("batch", str(path), "--no-header", "-q")
    rows = read_csv(result.stdout)
    assert list(rows[0]) == ["0", "1", "2", "3", "p_0", "p_1", "p_2", "loss", "grad_0", "grad_1", "grad_2"]
    assert float(rows[1]["loss"]) == softmax_cross_entropy([0, 40, -1], 1).losses


def test_a_tsv_input_gives_a_tsv_output(tmp_path, sce):
    path = write(tmp_path, "in.tsv", "z0\tz1\tlabel\n2\t3\t0\n")
    result = sce("batch", str(path), "-q")
    assert result.stdout.splitlines()[0].split("\t")[:4] == ["z0", "z1", "label", "p_z0"]
    assert float(read_csv(result.stdout, "\t")[0]["loss"]) == softmax_cross_entropy([2, 3], 0).losses


def test_probability_target_columns_give_the_loss_of_soft_targets(tmp_path, sce):
    logits, _ = make_rows(12)
    rng = np.random.default_rng(3)
    targets = rng.dirichlet(np.ones(4), 12)
    path = write(tmp_path, "in.csv", as_csv(logits, targets=targets))
    result = sce("batch", str(path), "--target-cols", "t*", "--logit-cols", "z*", "-q", "--reduction", "mean")
    assert result.exit_code == 0, result.stderr
    expected = softmax_cross_entropy(logits, targets=targets, reduction="mean")
    assert_rows_match(read_csv(result.stdout), expected, 4)


def test_jsonl_has_numbers(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n2,3,0\n")
    lines = sce("batch", str(path), "-f", "jsonl", "-q").stdout.splitlines()
    record = json.loads(lines[0])
    assert record["z0"] == 2.0 and record["label"] == 0
    assert record["loss"] == softmax_cross_entropy([2, 3], 0).losses


def test_digits_rounds_to_significant_digits(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n0,40,1\n")
    row = read_csv(sce("batch", str(path), "--digits", "4", "-q").stdout)[0]
    assert row["loss"] == "4.248e-18"


def test_summary_on_stderr_and_quiet(tmp_path, sce):
    path = SAMPLES / "batch.csv"
    loud = sce("batch", str(path))
    assert "rows" in loud.stderr and "accuracy" in loud.stderr
    assert loud.stdout == sce("batch", str(path), "--quiet").stdout
    assert sce("batch", str(path), "--quiet").stderr == ""


def test_progress_bar_never_enters_the_output(tmp_path, sce):
    logits, labels = make_rows(2000)
    path = write(tmp_path, "in.csv", as_csv(logits, labels))
    quiet = sce("batch", str(path), "-q").stdout
    forced = sce("batch", str(path), env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "TERM": "xterm"})
    assert forced.exit_code == 0, forced.stderr
    assert "━" in forced.stderr  # the bar was drawn, on stderr
    assert forced.stdout == quiet


# --- chunks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_chunk_boundaries_change_nothing(tmp_path, monkeypatch, reduction, sce):
    logits, labels = make_rows(300, 5)
    text = as_csv(logits, labels)
    path = write(tmp_path, "in.csv", text)
    whole = sce("batch", str(path), "-q", "--reduction", reduction).stdout
    monkeypatch.setattr(records, "BLOCK_BYTES", 97)  # many blocks, cut mid-line
    chunked = sce("batch", str(path), "-q", "--reduction", reduction).stdout
    assert chunked == whole
    assert_rows_match(read_csv(chunked), softmax_cross_entropy(logits, labels, reduction=reduction), 5)


def test_quoted_newline_across_a_block_boundary(tmp_path, monkeypatch, sce):
    text = "id,z0,z1,label\n" + "".join(f'"row\n{n}",{n % 3},1,0\n' for n in range(40))
    path = write(tmp_path, "in.csv", text)
    monkeypatch.setattr(records, "BLOCK_BYTES", 50)
    rows = read_csv(sce("batch", str(path), "--logit-cols", "z0,z1", "-q").stdout)
    assert [row["id"] for row in rows] == [f"row\n{n}" for n in range(40)]


def test_errors_after_a_quoted_newline_name_the_right_line(tmp_path, sce):
    path = write(tmp_path, "in.csv", 'id,z0,z1,label\n"a\nb",1,2,0\nc,1,x,0\n')
    result = sce("batch", str(path), "--logit-cols", "z*", "-q")
    assert "line 4, column z1: 'x' is not a number" in result.stderr


# --- encodings ---------------------------------------------------------------------------------------


def test_utf8_bom_is_ignored(tmp_path, sce):
    path = write(tmp_path, "in.csv", b"\xef\xbb\xbfz0,z1,label\n2,3,0\n")
    assert read_csv(sce("batch", str(path), "-q").stdout)[0]["z0"] == "2"


def test_latin1_with_encoding(tmp_path, sce):
    path = write(tmp_path, "in.csv", "café,z1,label\n2,3,0\n".encode("latin-1"))
    assert sce("batch", str(path), "-q").exit_code == 1
    result = sce("batch", str(path), "--encoding", "latin-1", "-q")
    assert result.exit_code == 0, result.stderr
    assert "p_café" in result.stdout


# --- bad input ----------------------------------------------------------------------------------------

BAD_FILES = [
    ("few.csv", "z0,z1,z2,label\n1,2,3,0\n1,2\n", [], "line 3: 2 fields, but the header has 4"),
    ("many.csv", "z0,z1,z2,label\n1,2,3,0\n1,2,3,4,5\n", [], "line 3: 5 fields, but the header has 4"),
    ("word.csv", "z0,z1,z2,label\n1,2,3,0\n1,x,3,0\n", [], "line 3, column z1: 'x' is not a number"),
    ("nan.csv", "z0,z1,z2,label\n1,2,3,0\n1,nan,3,0\n", [], "line 3, column z1: logit nan is not allowed"),
    ("inf.csv", "z0,z1,z2,label\n1,2,3,0\n1,2,inf,0\n", [], "line 3, column z2: logit inf is not allowed"),
    ("frac.csv", "z0,z1,z2,label\n1,2,3,1.5\n", [], "line 2, column label: '1.5' is not a class index"),
    (
        "range.csv",
        "z0,z1,z2,label\n1,2,3,0\n1,2,3,7\n",
        [],
        "line 3, column label: label 7 is out of range for 3 classes",
    ),
    ("negative.csv", "z0,z1,label\n1,2,-1\n", [], "line 2, column label: label -1 is negative"),
    ("nolabel.csv", "z0,z1,y\n1,2,0\n", [], "there is no column named 'label'; the columns are z0, z1, y"),
    ("nomatch.csv", "z0,z1,label\n1,2,0\n", ["--logit-cols", "q*"], "--logit-cols: 'q*' matches no column"),
    ("empty.csv", "", [], "the input is empty"),
    ("header.csv", "z0,z1,label\n", [], "the input has a header but no rows"),
    ("dup.csv", "z0,z1,z0,label\n1,2,3,0\n", [], "line 1: column name 'z0' appears twice (columns 1 and 3)"),
    (
        "utf.csv",
        b"z0,z1,label\n1,2,0\n\xff1,2,0\n",
        [],
        "line 3, byte 1: byte 0xff is not valid UTF-8; give the file's encoding with --encoding",
    ),
    ("sum.csv", "z0,z1,t0,t1\n1,2,0.5,0.6\n", ["--target-cols", "t0,t1"], "line 2: targets sum to 1.1, not 1"),
    ("blank.csv", "z0,z1,label\n1,2,0\n\n4,5,1\n1,,0\n", [], "line 5, column z1: the value is empty"),
    ("clash.csv", "z0,loss,label\n1,2,0\n", [], "the input already has a column 'loss'"),
    ("unnamed.csv", "z0,,label\n1,2,0\n", [], "line 1: column 2 has no name"),
]


@pytest.mark.parametrize("name,text,args,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_input_names_the_line_and_exits_1(tmp_path, name, text, args, message, sce):
    path = write(tmp_path, name, text)
    result = sce("batch", str(path), "-q", *args)
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_input_file(tmp_path, sce):
    result = sce("batch", str(tmp_path / "nope.csv"), "-q")
    assert result.exit_code == 1
    assert "cannot read" in result.stderr and "No such file" in result.stderr


def test_bad_options_are_usage_errors(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,0\n")
    assert "--weight: 3 weights for 2 classes" in sce("batch", str(path), "-w", "1,2,3").stderr
    result = sce("batch", str(path), "--smoothing", "2")
    assert result.exit_code == 2 and "--smoothing" in result.stderr
    assert sce("batch", str(path), "--delimiter", "ab").exit_code == 2


# --- never losing data ------------------------------------------------------------------------------


def test_failed_run_leaves_an_existing_output_untouched(tmp_path, sce):
    good = write(tmp_path, "good.csv", "z0,z1,label\n1,2,0\n")
    bad = write(tmp_path, "bad.csv", "z0,z1,label\n1,2,0\n" * 50 + "1,x,0\n")
    out = tmp_path / "out.csv"
    assert sce("batch", str(good), "-o", str(out), "-q").exit_code == 0
    before = out.read_bytes()
    result = sce("batch", str(bad), "-o", str(out), "-q")
    assert result.exit_code == 1
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv", "out.csv"]


def test_failed_run_creates_no_output(tmp_path, sce):
    bad = write(tmp_path, "bad.csv", "z0,z1,label\n1,x,0\n")
    assert sce("batch", str(bad), "-o", str(tmp_path / "out.csv"), "-q").exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_output_over_the_input_is_refused(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,0\n")
    result = sce("batch", str(path), "-o", str(path), "-q")
    assert result.exit_code == 2
    assert "is the input file" in result.stderr
    assert path.read_text() == "z0,z1,label\n1,2,0\n"


def test_output_to_dev_null_is_written_directly(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,0\n")
    assert sce("batch", str(path), "-o", os.devnull, "-q").exit_code == 0
    assert Path(os.devnull).is_char_device()


def test_output_format_follows_the_output_name(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,0\n")
    out = tmp_path / "out.jsonl"
    sce("batch", str(path), "-o", str(out), "-q")
    assert json.loads(out.read_text().splitlines()[0])["label"] == 0


@pytest.mark.parametrize(
    ("name", "chosen", "message"),
    [
        ("out.parquet", ("--format", "csv"), "its name says parquet, --format says csv; make them agree"),
        ("out.csv", ("--format", "jsonl"), "its name says csv, --format says jsonl; make them agree"),
        ("out.json", ("--format", "jsonl"), "its name says json, --format says jsonl; make them agree"),
        ("out.tsv", ("--format", "csv"), "its name says tsv, --format says csv; make them agree"),
        ("out.html", (), "its name says html; the output is csv, tsv, jsonl, npz, parquet or arrow: name it so"),
        ("out.md", (), "its name says markdown; the output is csv, tsv, jsonl, npz, parquet or arrow: name it so"),
    ],
)
def test_an_output_name_that_says_another_format_is_refused(tmp_path, sce, name, chosen, message):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,0\n")
    out = tmp_path / name
    result = sce("batch", str(path), *chosen, "-o", str(out), "-q")
    assert (result.exit_code, result.stderr) == (2, f"sce: error: -o {out}: {message}" + (
        ", or leave --format out (the name chooses)\n" if chosen else "\n"
    ))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_an_output_named_tab_is_separated_by_tabs(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,0\n")
    out = tmp_path / "out.tab"
    assert sce("batch", str(path), "-o", str(out), "-q").exit_code == 0
    header = out.read_text().splitlines()[0]
    assert "," not in header and header.split("\t")[:3] == ["z0", "z1", "label"], header


def test_interrupt_leaves_no_partial_output(tmp_path):
    logits, labels = make_rows(400_000, 10, seed=5)
    path = write(tmp_path, "in.csv", as_csv(logits, labels))
    out = write(tmp_path, "out.csv", "precious\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "sce", "batch", str(path), "-o", str(out), "-q"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".partial") for p in tmp_path.iterdir()):
        assert process.poll() is None, "finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in process.stderr.read()
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_an_unclosed_quote_is_reported_not_read_into_memory(tmp_path, monkeypatch, sce):
    monkeypatch.setattr(records, "BLOCK_BYTES", 64)
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 1024)
    path = write(tmp_path, "in.csv", "id,z0,z1,label\n" + "x,1,2,0\n" * 3 + '"open,1,2,0\n' + "y,1,2,0\n" * 400)
    result = sce("batch", str(path), "--logit-cols", "z*", "-q")
    assert result.exit_code == 1
    assert "line 5: a quoted field is never closed" in result.stderr


def test_record_boundary_with_an_open_quote_is_fast():
    data = b'"' + b"a,1\n" * 500_000  # one quote opened at the start of 2 MB
    start = time.perf_counter()
    assert records._record_boundary(data) == 0
    assert time.perf_counter() - start < 5  # was quadratic: hours


def test_undecodable_latin_text_names_its_line(tmp_path, sce):
    path = write(tmp_path, "in.csv", b"z0,z1,label\n1,2,0\n1,2,0\n\xff\xfe,2,0\n")
    result = sce("batch", str(path), "--encoding", "ascii", "-q")
    assert result.exit_code == 1
    assert result.stderr.startswith("sce: error: line 4: bytes that are not ascii")


@pytest.mark.parametrize("block_bytes", [50, 4096])
def test_errors_deep_in_a_file_name_the_right_line(tmp_path, monkeypatch, block_bytes, sce):
    # Regression: lines were counted from 1 again in every block after the first.
    monkeypatch.setattr(records, "BLOCK_BYTES", block_bytes)
    rows = ["z0,z1,label"] + ["1.5,2.5,0"] * 998 + ["1.5,oops,0"]
    path = write(tmp_path, "in.csv", "\n".join(rows) + "\n")
    result = sce("batch", str(path), "-q")
    assert "line 1000, column z1: 'oops' is not a number" in result.stderr
    rows[999] = "1.5,2.5,9"
    path.write_text("\n".join(rows) + "\n")
    assert "line 1000, column label: label 9 is out of range" in sce("batch", str(path), "-q").stderr


def test_the_file_layer_names_the_request_field_and_the_cli_words_it_as_a_flag(tmp_path, sce):
    from sce.batch import BatchRequest, run_batch
    from sce.cli.exit_status import exit_status
    from sce.errors import OptionProblem
    from sce.io.csv.columns import plan_columns

    with pytest.raises(OptionProblem) as caught:
        plan_columns(["z0", "label"], label_col="nope", logit_cols=None, target_cols=None, has_header=True)
    # A missing --label-col column exits as a missing default label column does.
    assert (caught.value.option, exit_status(caught.value, "batch")) == ("label_col", 1)
    with pytest.raises(OptionProblem) as caught:
        run_batch(BatchRequest(str(tmp_path / "missing.csv"), None))
    assert (caught.value.option, exit_status(caught.value, "batch")) == ("input_path", 1)
    assert (
        "sce: error: --label-col: there is no column 'nope'"
        in sce("batch", str(SAMPLES / "batch.csv"), "--label-col", "nope").stderr
    )


def test_losses_summing_past_the_largest_float_print_no_raw_warning(tmp_path):
    # Regression: the summary's sum of two losses near 1e308 overflowed with
    # numpy's "RuntimeWarning: overflow encountered in reduce" on stderr.
    source = write(tmp_path, "huge.csv", "z0,z1,label\n0,1.7e308,0\n0,1.7e308,0\n")
    result = subprocess.run(
        [sys.executable, "-m", "sce", "batch", str(source), "-o", str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert result.returncode == 0
    assert "Warning" not in result.stderr and "umr_sum" not in result.stderr
    # Summed exactly, the two rows' mean is their loss, 1.7e308, not the inf of a float sum.
    assert "mean row loss    1.70000e+308" in result.stderr


def test_quiet_runs_warn_but_never_load_rich(tmp_path):
    # -q draws nothing, so importing rich (20 ms) would be start-up paid for nothing.
    source = write(tmp_path, "soft.csv", "z0,z1,t0,t1\n-1e308,1e308,1,0\n")
    probe = (
        "import sys\nfrom sce.cli import main\n"
        "try:\n    main()\nexcept SystemExit as end:\n    status = end.code\n"
        "print('rich' in sys.modules, status)\n"
    )
    argv = ["batch", str(source), "--target-cols", "t*", "-o", str(tmp_path / "out.csv"), "-q"]
    result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "0"]
    assert result.stderr == "sce: warning: 1 row has an infinite loss (a target class with probability 0)\n"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_weighted_mean_over_many_blocks_is_bit_identical_to_one_call_of_the_core(tmp_path, dtype, sce):
    """Regression: the weighted mean's D = Σ w[y] was summed block by block in
    sce batch and in one go by the core, so their last bits differed (1–2 ulp in
    most gradient entries). Both now round the exact Σ_k w_k·n_k once."""
    rng = np.random.default_rng(2)
    n, k = 30_000, 10  # about 5 MB: several blocks
    z = rng.normal(size=(n, k)) * 4
    y = rng.integers(0, k, n)
    y[rng.random(n) < 0.1] = -100
    weights = [float(w) for w in rng.uniform(0.1, 3, k)]  # every bit of the mantissa in use
    lines = [",".join(f"z{j}" for j in range(k)) + ",label"]
    lines += [",".join(repr(float(v)) for v in z[row]) + f",{y[row]}" for row in range(n)]
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    assert source.stat().st_size > 3 * records.BLOCK_BYTES
    out = tmp_path / "out.csv"
    weight = ",".join(map(repr, weights))
    result = sce("batch", str(source), "-o", str(out), "-q", "--reduction", "mean", "-w", weight, "--dtype", dtype)
    assert result.exit_code == 0, result.stderr
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    written = np.array([[float(row[f"grad_z{j}"]) for j in range(k)] for row in rows])
    core = softmax_cross_entropy(z, labels=y, reduction="mean", weight=weights, dtype=dtype)
    assert np.array_equal(written.astype(dtype), core.gradient)


def test_regression_an_output_in_a_missing_folder_says_so(tmp_path, sce):
    (tmp_path / "in.csv").write_text("z0,z1,label\n1,2,0\n")
    missing = tmp_path / "missing" / "deeper"
    result = sce("batch", str(tmp_path / "in.csv"), "-o", str(missing / "out.csv"))
    assert result.exit_code == 1
    assert result.stderr == f"sce: error: -o: the folder {missing} does not exist; create it, or write the output elsewhere\n"
    assert not missing.exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_regression_an_output_in_proc_says_the_folder_takes_no_files(tmp_path, sce):
    """/proc exists, yet creating a file there fails with 'no such file or directory': the
    message said 'cannot write in /proc: no such file or directory'."""
    (tmp_path / "in.csv").write_text("z0,z1,label\n1,2,0\n")
    result = sce("batch", str(tmp_path / "in.csv"), "-o", "/proc/out.csv")
    assert result.exit_code == 1
    assert result.stderr == (
        "sce: error: -o: cannot create a file in /proc (no such file or directory: it takes no new files); "
        "write the output elsewhere\n"
    )


def test_regression_an_input_that_grows_between_the_means_two_passes_is_refused(tmp_path, monkeypatch, sce):
    """With --reduction mean the input is read twice; rows added in between were written with
    gradients divided by the first pass's count, exit 0. The second pass counts again."""
    from sce.batch import csv_source as batch_run

    source = tmp_path / "in.csv"
    source.write_text("z0,z1,label\n1,2,0\n3,1,1\n")
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    first_pass = batch_run.mean_denominator

    def then_grow(path, *reading):
        found = first_pass(path, *reading)
        with open(source, "a") as more:
            more.write("0,5,1\n")
        return found

    monkeypatch.setattr(batch_run, "mean_denominator", then_grow)
    result = sce("batch", str(source), "--reduction", "mean", "-o", str(out), "-q")
    assert result.exit_code == 1
    assert result.stderr == (
        f"sce: error: {source} changed while it was read twice for --reduction mean: 2 counted rows of weight 2 "
        "the first time, 3 of weight 3 the second; run it again on a file that stays as it is (or a copy)\n"
    )
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_the_means_second_pass_agrees_with_the_first_on_an_unchanged_file(tmp_path, sce):
    source = tmp_path / "in.csv"
    source.write_text("z0,z1,t0,t1\n1,2,0.5,0.5\n3,1,0.25,0.75\n")
    result = sce("batch", str(source), "--target-cols", "t0,t1", "--reduction", "mean", "-o", str(tmp_path / "o.csv"), "-q")
    assert result.exit_code == 0, result.stderr


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux's /proc")
def test_regression_a_read_error_on_the_input_names_the_input(tmp_path, sce):
    """Reading /proc/self/mem fails with EIO; it was reported as "writing the output to stdout
    failed", with -o naming a file."""
    result = sce("batch", "/proc/self/mem", "-q", "-o", str(tmp_path / "out.csv"))
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: INPUT: reading /proc/self/mem failed: input/output error\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_regression_an_output_with_a_trailing_slash_names_a_folder(tmp_path, sce):
    """`-o results/` wrote a file named results."""
    (tmp_path / "in.csv").write_text("z0,z1,label\n1,2,0\n")
    target = f"{tmp_path / 'results'}/"
    result = sce("batch", str(tmp_path / "in.csv"), "-o", target, "-q")
    assert (result.exit_code, result.stderr) == (
        2,
        f"sce: error: -o: {target} names a folder, which does not exist; create it, or name a file: {target}out.csv\n",
    )
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("p.tsv", "z0,z1,label\n1,2,0\n", "it looks separated by commas, not tabs; say --delimiter comma"),
        ("p.csv", "z0;z1;label\n1;2;0\n", "it looks separated by semicolons, not commas; say --delimiter ';'"),
    ],
)
def test_regression_a_file_separated_otherwise_than_its_name_says(tmp_path, name, text, said, sce):
    """A comma-separated .tsv was told "there is no column named 'label'; the columns are
    z0,z1,label", one column worded as three, with advice that could not work."""
    (tmp_path / name).write_text(text)
    result = sce("batch", str(tmp_path / name), "-q")
    header = text.splitlines()[0]
    assert (result.exit_code, result.stderr) == (1, f"sce: error: the file has one column, {header!r}: {said}\n")


def test_regression_a_line_without_an_end_is_not_called_an_open_quote(tmp_path, monkeypatch, sce):
    """No record end within the bound, in a file without a quote, was "a quoted field is never
    closed"."""
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 1000)
    monkeypatch.setattr(records, "BLOCK_BYTES", 256)
    (tmp_path / "long.csv").write_text("z0,z1,label\n" + "1" * 5000 + ",2,0\n")
    result = sce("batch", str(tmp_path / "long.csv"), "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: line 2: no line ends within 1,000 bytes: a line longer than sce reads, or not a text file; "
        "check the input\n",
    )


def test_regression_arrays_through_a_fifo_are_named_as_arrays(tmp_path, sce):
    """A .npz given as a FIFO (or <(cat d.npz)) was read as CSV: "byte 0xcc is not valid
    UTF-8; give the file's encoding with --encoding latin-1", advice that made it worse."""
    import threading

    np.savez(tmp_path / "d.npz", logits=np.array([[2.0, 3.0, 4.0]]), labels=np.array([1]))
    fifo = tmp_path / "ff"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write((tmp_path / "d.npz").read_bytes())

    feeder = threading.Thread(target=feed)
    feeder.start()
    result = sce("batch", str(fifo), "-q")
    feeder.join(5)
    assert (result.exit_code, result.stderr) == (
        1,
        f"sce: error: {fifo} holds arrays (.npz), which sce reads from a file: save them and give its name\n",
    )


@pytest.mark.parametrize("text", ["[Errno 28] No space left on device", "No space left on device (os error 28)"])
def test_regression_a_full_disk_is_worded_one_way(tmp_path, text):
    """Python's "[Errno 28]" showed through on CSV and JSON Lines outputs, without the hint."""
    from sce.io.writers.atomic import OutputTarget

    out = tmp_path / "out.csv"
    out.write_text("OLD")
    target = OutputTarget(str(out), None)
    try:
        said = target.write_failure(OSError(text)).worded({"output_path": "-o"})
    finally:
        target.abandon()
    assert said == (
        f"-o: writing the output {out} failed: no space left on device; {out} is unchanged; "
        "free some space or write the output elsewhere"
    )


@pytest.mark.parametrize("order", ["utf-16le", "utf-16be"])
def test_regression_utf16_without_a_byte_order_mark_is_named(tmp_path, order, sce):
    """Read as UTF-8, its header became one column name full of NUL bytes, written raw to the
    terminal, with advice about --label-col."""
    (tmp_path / "u.csv").write_bytes("z0,z1,label\n1,2,0\n".encode(order))
    result = sce("batch", str(tmp_path / "u.csv"), "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        f"sce: error: line 1: the file looks like UTF-16 (a NUL byte beside every character); give --encoding {order}\n",
    )
    assert sce("batch", str(tmp_path / "u.csv"), "--encoding", order, "-q").exit_code == 0


def test_run_batch_docstring_examples_run():
    import doctest

    import sce.batch.loop

    failures, tried = doctest.testmod(sce.batch.loop)
    assert tried > 0 and failures == 0


@pytest.mark.parametrize(("chosen", "suggested"), [((), "out.csv"), (("--format", "parquet"), "out.parquet"),
                                                   (("--format", "jsonl"), "out.jsonl")])
def test_a_folder_given_as_the_output_suggests_a_name_of_the_format_written(tmp_path, sce, chosen, suggested):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,0\n")
    (tmp_path / "results").mkdir()
    result = sce("batch", str(path), *chosen, "-o", str(tmp_path / "results"), "-q")
    assert (result.exit_code, result.stderr) == (
        2,
        f"sce: error: -o: {tmp_path / 'results'} is a folder; name a file in it, e.g. {tmp_path / 'results' / suggested}\n",
    )
