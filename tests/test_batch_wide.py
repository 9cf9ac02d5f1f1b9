"""`sce batch` on rows of many columns: the wide way writes the same bytes and
says the same errors as the frame way, and its memory follows the block, not K."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sce.batch import BatchRequest, run_batch
from sce.batch import csv_source as batch_run
from sce.errors import SceError
from sce.io.writers.text import EncodedLater, TextWriter
from sce.loss import softmax_cross_entropy
from sce.options import LossOptions

from .test_batch_plain import CASES as PLAIN_CASES
from .test_batch_plain import assert_the_same_either_way, generated_files

SAMPLES = Path(__file__).parent.parent / "sce" / "samples"


def wide_csv(rows: int, k: int, seed: int = 0) -> tuple[str, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = np.round(rng.normal(0, 3, (rows, k)), 6)
    labels = rng.integers(0, k, rows)
    lines = [",".join([*(f"z{j}" for j in range(k)), "label"])]
    lines += [",".join([*map(repr, row.tolist()), str(label)]) for row, label in zip(logits, labels, strict=True)]
    return "\n".join(lines) + "\n", logits, labels


def outcome(tmp_path: Path, name: str, data: bytes, **fields) -> bytes | str:
    """The output's bytes, or the error's one line."""
    source = tmp_path / name
    source.write_bytes(data)
    target = tmp_path / f"out-{name}"
    try:
        run_batch(BatchRequest(str(source), str(target), **fields))
    except SceError as error:
        return str(error)
    return target.read_bytes()


def both_ways(tmp_path: Path, monkeypatch, name: str, data: bytes, **fields) -> tuple[bytes | str, bytes | str]:
    """The outcome the frame way (no input is wide) and the wide way (every input is)."""
    monkeypatch.setattr(batch_run, "WIDE_COLUMNS", 10**9)
    with monkeypatch.context() as patched:  # nor is any block taken for plain lines (test_batch_plain.py)
        patched.setattr(batch_run, "parse_plain_block", lambda *args: None)
        framed = outcome(tmp_path, name, data, **fields)
    monkeypatch.setattr(batch_run, "WIDE_COLUMNS", 1)
    return framed, outcome(tmp_path, name, data, **fields)


CASES = {
    "plain": (b"z0,z1,z2,label\n1,2,3,0\n-1.5,0,2e3,2\n", {}),
    "crlf, bom and blank lines": (b"\xef\xbb\xbfz0,z1,label\r\n\r\n1,2,1\r\n\r\n3,4,0\r\n", {}),
    "a row of empty fields": (b"z0,z1,label\n1,2,1\n,,\n3,4,0\n", {}),
    "bad cells, the first column first": (b"z0,z1,label\n1,x,1\n2,3,0\ny,4,0\n", {}),
    "spaces, 1_000, minus signs": ("z0,z1,label\n 1 , 1_000,1\n\u22122,\uff0d3,0\n".encode(), {}),
    "non-finite spellings": (b"z0,z1,label\n1,Infinity,1\n", {}),
    "nan logits": (b"z0,z1,label\n1,nan,1\n", {}),
    "labels 1.0, 1.5": (b"z0,z1,label\n1,2,1.0\n3,4,1.5\n", {}),
    "huge label": (b"z0,z1,label\n1,2,1e30\n", {}),
    "ignored rows, mean": (b"z0,z1,label\n1,2,-100\n3,4,0\n", {"options": LossOptions(reduction="mean")}),
    "sum": (b"z0,z1,label\n1,2,1\n3,4,0\n", {"options": LossOptions(reduction="sum")}),
    "float32, digits": (b"z0,z1,label\n1,2,1\n3,4e-9,0\n", {"options": LossOptions(dtype="float32"), "digits": 3}),
    "overflowing logits write nan": (b"z0,z1,label\n1e308,-1e308,1\n", {}),
    "ids with an empty cell": (b"id,z0,z1,label\n,1,2,1\nb c,3,4,0\n", {"logit_cols": "z*"}),
    "a quoted id": (b'id,z0,z1,label\n"a,b",1,2,1\n', {"logit_cols": "z*"}),
    "too few fields": (b"z0,z1,label\n1,2,1\n3,4\n", {}),
    "too many fields": (b"z0,z1,label\n1,2,1\n3,4,0,9\n", {}),
    "tsv to csv, a comma in a cell": (b"id\tz0\tz1\tlabel\na,b\t1\t2\t1\n", {"delimiter": "\t", "logit_cols": "z*"}),
    "tsv to tsv": (b"z0\tz1\tlabel\n1\t2\t1\n", {"delimiter": "\t", "output_format": "tsv"}),
    "soft targets": (b"z0,z1,t0,t1\n1,2,0.25,0.75\n3,4,1,0\n", {"target_cols": "t*"}),
    "targets not summing to 1": (b"z0,z1,t0,t1\n1,2,0.25,0.7\n", {"target_cols": "t*"}),
    "label out of range": (b"z0,z1,label\n1,2,1\n1,2,7\n", {}),
    "a lone carriage return": (b"z0,z1,label\n1,2\r,1\n", {}),
    "tsv, a comma after the last label": (b"z0\tz1\tlabel\n1\t2\t1\n3\t4\t0,", {"delimiter": "\t"}),
    "tsv, a comma after the last logit": (b"z0\tz1\tlabel\n1\t2\t1\n3\t4,\t0\n", {"delimiter": "\t"}),
    "tsv, a comma after the last cell, tsv out": (
        b"z0\tz1\tlabel\n1\t2\t1\n3\t4\t0,",
        {"delimiter": "\t", "output_format": "tsv"},
    ),
    "semicolons, a comma in the last cell": (b"z0;z1;label\n1;2;1\n3;4,5;0", {"delimiter": ";"}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_wide_way_writes_and_says_what_the_frame_way_does(tmp_path, monkeypatch, name):
    data, fields = CASES[name]
    framed, wide = both_ways(tmp_path, monkeypatch, "input.csv", data, **fields)
    assert wide == framed


@pytest.mark.parametrize("name", list(CASES))
def test_rows_the_main_thread_encodes_are_the_writers_bytes(tmp_path, monkeypatch, name):
    """A main thread that would wait for the writer encodes the wide rows itself: the same bytes."""
    data, fields = CASES[name]
    framed, _ = both_ways(tmp_path, monkeypatch, "input.csv", data, **fields)
    put, encoded = TextWriter.put, []

    def put_encoded(self, item):
        if isinstance(item, EncodedLater):
            item.encode()
            encoded.append(item)
        put(self, item)

    monkeypatch.setattr(TextWriter, "put", put_encoded)
    assert outcome(tmp_path, "input.csv", data, **fields) == framed
    if name == "plain":
        assert encoded


@pytest.mark.parametrize("sample", ["batch.csv", "batch.tsv", "batch_with_id.csv", "batch_soft_targets.csv"])
def test_samples_come_out_the_same_either_way(tmp_path, monkeypatch, sample):
    fields = {
        "batch.tsv": {"delimiter": "\t", "output_format": "tsv"},
        "batch_with_id.csv": {"logit_cols": "z*"},
        "batch_soft_targets.csv": {"target_cols": "t*"},
    }.get(sample, {})
    framed, wide = both_ways(tmp_path, monkeypatch, sample, (SAMPLES / sample).read_bytes(), **fields)
    assert isinstance(framed, bytes)
    assert wide == framed


def test_a_wide_file_gives_the_cores_numbers(tmp_path):
    text, logits, labels = wide_csv(4, 20_000)
    written = outcome(tmp_path, "wide.csv", text.encode())
    assert isinstance(written, bytes)
    header, *rows = written.decode().splitlines()
    k = logits.shape[1]
    assert header.split(",") == [
        *(f"z{j}" for j in range(k)), "label", *(f"p_z{j}" for j in range(k)), "loss", *(f"grad_z{j}" for j in range(k))
    ]
    expected = softmax_cross_entropy(logits, labels, reduction="none")
    numbers = np.array([[float(cell) for cell in row.split(",")] for row in rows])
    assert np.array_equal(numbers[:, :k], logits)
    assert np.array_equal(numbers[:, k], labels)
    assert np.array_equal(numbers[:, k + 1 : 2 * k + 1], expected.probabilities)
    assert np.array_equal(numbers[:, 2 * k + 1], expected.losses)
    assert np.array_equal(numbers[:, 2 * k + 2 :], expected.gradient)


def test_errors_in_a_wide_file_name_the_line_and_column(tmp_path):
    text, _, _ = wide_csv(4, 20_000)
    lines = text.splitlines()
    cells = lines[2].split(",")
    cells[12345] = "oops"
    lines[2] = ",".join(cells)
    said = outcome(tmp_path, "bad.csv", ("\n".join(lines) + "\n").encode())
    assert said == (
        "line 3, column z12345: 'oops' is not a number; "
        "if z12345 is not a logit column, name the logit columns with logit_cols"
    )
    lines[2] = ",".join(cells[:-1])  # the label left out
    said = outcome(tmp_path, "short.csv", ("\n".join(lines) + "\n").encode())
    assert said == "line 3: 20000 fields, but the header has 20001; every row needs one value per column"


def peak_rss_mb(tmp_path: Path, source: Path) -> float:
    """The peak resident memory of `sce batch` on ``source``, in a child of its own."""
    argv = [sys.executable, "-m", "sce", "batch", str(source), "-o", str(tmp_path / "out.csv"), "--quiet"]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, child.stderr.read() if child.stderr else ""
    return usage.ru_maxrss / 1024


def test_memory_of_a_wide_block_follows_the_block_not_k(tmp_path):
    """2 rows × 50,000 columns are 1 MB of text: the plan's 150,000 names (some 25 MB
    of Python strings), the cells, the numbers and the output text (held up
    to three times in the writer's queue) come to a few tens of MB beyond
    what sce takes for a tiny file. The frame way took 780 MB beyond it."""
    wide = tmp_path / "wide.csv"
    wide.write_text(wide_csv(2, 50_000)[0])
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("z0,z1,label\n1,2,1\n")
    assert peak_rss_mb(tmp_path, wide) - peak_rss_mb(tmp_path, tiny) < 120


@pytest.mark.parametrize("name", list(PLAIN_CASES))
def test_the_plain_ways_cases_come_out_the_same_the_wide_way(tmp_path, monkeypatch, name):
    """Every case of the plain lines' way (tests/test_batch_plain.py), through the wide way's
    cells read at once (a byte-order mark, labels beyond 2^53, odd spellings, short rows)."""
    data, fields = PLAIN_CASES[name]
    framed, wide = both_ways(tmp_path, monkeypatch, "input.csv", data, **fields)
    assert wide == framed


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=generated_files(), block_bytes=st.sampled_from([64, 300, 1 << 20]))
def test_generated_files_come_out_the_same_the_wide_way(monkeypatch, generated, block_bytes):
    def ways(folder: Path, patched, data: bytes, **fields) -> tuple[bytes | str, bytes | str]:
        return both_ways(folder, patched, "input.csv", data, **fields)

    assert_the_same_either_way(ways, monkeypatch, generated, block_bytes)
