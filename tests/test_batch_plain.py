"""Blocks of plain lines (sce/batch/plain.py) come out byte for byte as
the usual way writes them, and every error in them is worded the same."""

from __future__ import annotations

import io
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sce.batch import csv_source as batch_run
from sce.batch import run_batch
from sce.batch.compute import compute_block
from sce.batch.request import BatchRequest
from sce.errors import SceError
from sce.io.csv import records
from sce.io.csv.columns import plan_columns
from sce.io.csv.plain import parse_plain_block, plain_rows
from sce.io.csv.records import Block
from sce.options import LossOptions

SAMPLES = Path(__file__).parent.parent / "sce" / "samples"


def outcome(folder: Path, data: bytes, **fields) -> tuple[bytes | str, tuple[object, ...]]:
    """The output's bytes (or the error's one line), and the summary's numbers."""
    source = folder / "input.csv"
    source.write_bytes(data)
    target = folder / "output.csv"
    target.unlink(missing_ok=True)
    try:
        summary = run_batch(BatchRequest(str(source), str(target), **fields))
    except SceError as error:
        return str(error), ()
    numbers = (summary.rows, summary.ignored_rows, summary.classes, summary.correct, summary.counted)
    return target.read_bytes(), (*numbers, summary.infinite_losses, repr(summary.reduced_loss))


def both_ways(folder: Path, monkeypatch, data: bytes, **fields) -> tuple[object, object]:
    """The outcome the usual way (no block is taken for plain), then as it comes."""
    with monkeypatch.context() as patched:
        patched.setattr(batch_run, "parse_plain_block", lambda *args: None)
        usual = outcome(folder, data, **fields)
    return usual, outcome(folder, data, **fields)


CASES = {
    "plain": (b"z0,z1,z2,label\n1,2,3,0\n-1.5,0,2e3,2\n", {}),
    "no newline at the end": (b"z0,z1,label\n1,2,0\n3,4,1", {}),
    "crlf, bom and blank lines": (b"\xef\xbb\xbfz0,z1,label\r\n\r\n1,2,1\r\n\r\n3,4,0\r\n", {}),
    "crlf only": (b"z0,z1,label\r\n1,2,1\r\n3,4,0\r\n", {}),
    "blank lines at the end": (b"z0,z1,label\n1,2,1\n3,4,0\n\n\n", {}),
    "a blank line between rows": (b"z0,z1,label\n1,2,1\n\n3,4,0\n", {}),
    "a line of spaces between rows": (b"z0,z1,label\n1,2,1\n   \n3,4,0\n", {}),
    "a byte-order mark starting a row": (b"z0,z1,label\n\xef\xbb\xbf1,2,1\n3,4,0\n", {}),
    "a byte-order mark starting an id": (b"id,z0,z1,label\n\xef\xbb\xbfa,1,2,1\n", {"logit_cols": "z*"}),
    "a byte-order mark after the file's own": (b"\xef\xbb\xbfz0,z1,label\n\xef\xbb\xbf1,2,1\n", {}),
    "a label beyond 2**53 that is the ignore index": (
        b"z0,z1,label\n0,1,9007199254740993\n3,4,0\n",
        {"options": LossOptions(ignore_index=9007199254740993)},
    ),
    "the largest int64 label as the ignore index": (
        b"z0,z1,label\n0,1,9223372036854775807\n3,4,0\n",
        {"options": LossOptions(ignore_index=2**63 - 1)},
    ),
    "the smallest int64 label as the ignore index": (
        b"z0,z1,label\n0,1,-9223372036854775808\n3,4,0\n",
        {"options": LossOptions(ignore_index=-(2**63))},
    ),
    "a row of empty fields": (b"z0,z1,label\n1,2,1\n,,\n3,4,0\n", {}),
    "an empty logit": (b"z0,z1,label\n1,2,1\n3,,0\n", {}),
    "bad cells, the first column first": (b"z0,z1,label\n1,x,1\n2,3,0\ny,4,0\n", {}),
    "spaces, 1_000, minus signs": ("z0,z1,label\n 1 , 1_000,1\n\u22122,\uff0d3,0\n".encode(), {}),
    "a leading space": (b"z0,z1,label\n 1,2, 1\n3, 4,0\n", {}),
    "non-finite spellings": (b"z0,z1,label\n1,Infinity,1\n", {}),
    "nan logits": (b"z0,z1,label\n1,nan,1\n", {}),
    "odd spellings of numbers": (b"z0,z1,label\n+1.5,.5,1\n5.,-0.0,0\n1E5,00012,1\n-0,0.0e0,0\n", {}),
    "huge and tiny logits": (b"z0,z1,label\n1e300,-1e300,1\n4.9e-324,1.7976931348623157e308,0\n", {}),
    "labels 1.0, 1.5": (b"z0,z1,label\n1,2,1.0\n3,4,1.5\n", {}),
    "labels +1, 01": (b"z0,z1,label\n1,2,+1\n3,4,01\n", {}),
    "huge label": (b"z0,z1,label\n1,2,1e30\n", {}),
    "huge integer label": (b"z0,z1,label\n1,2,9223372036854775807\n", {}),
    "negative label": (b"z0,z1,label\n1,2,-1\n", {}),
    "ignored rows, mean": (b"z0,z1,label\n1,2,-100\n3,4,0\n", {"options": LossOptions(reduction="mean")}),
    "sum": (b"z0,z1,label\n1,2,1\n3,4,0\n", {"options": LossOptions(reduction="sum")}),
    "float32, digits": (b"z0,z1,label\n1,2,1\n3,4e-9,0\n", {"options": LossOptions(dtype="float32"), "digits": 3}),
    "overflowing logits write nan": (b"z0,z1,label\n1e308,-1e308,1\n", {}),
    "ids with an empty cell": (b"id,z0,z1,label\n,1,2,1\nb c,3,4,0\n", {"logit_cols": "z*"}),
    "a text column last, a short row": (b"z0,z1,label,id\n1,2,1,a\n3,4,0\n", {"logit_cols": "z*"}),
    "a text column last, empty": (b"z0,z1,label,id\n1,2,1,\n3,4,0,b\n", {"logit_cols": "z*"}),
    "a quoted id": (b'id,z0,z1,label\n"a,b",1,2,1\n', {"logit_cols": "z*"}),
    "a quoted number": (b'z0,z1,label\n"1",2,1\n', {}),
    "a unit separator in an id": (b"id,z0,z1,label\na\x1fb,1,2,1\n", {"logit_cols": "z*"}),
    "unicode ids": ("id,z0,z1,label\nnaïve 日本,1,2,1\n".encode(), {"logit_cols": "z*"}),
    "too few fields": (b"z0,z1,label\n1,2,1\n3,4\n", {}),
    "too many fields": (b"z0,z1,label\n1,2,1\n3,4,0,9\n", {}),
    "tsv to csv, a comma in a cell": (b"id\tz0\tz1\tlabel\na,b\t1\t2\t1\n", {"delimiter": "\t", "logit_cols": "z*"}),
    "tsv to tsv": (b"z0\tz1\tlabel\n1\t2\t1\n", {"delimiter": "\t", "output_format": "tsv"}),
    "csv to jsonl": (b"id,z0,z1,label\na,1,2,1\n", {"logit_cols": "z*", "output_format": "jsonl"}),
    "semicolons": (b"z0;z1;label\n1;2;1\n", {"delimiter": ";"}),
    "soft targets": (b"z0,z1,t0,t1\n1,2,0.25,0.75\n3,4,1,0\n", {"target_cols": "t*"}),
    "targets not summing to 1": (b"z0,z1,t0,t1\n1,2,0.25,0.7\n", {"target_cols": "t*"}),
    "label out of range": (b"z0,z1,label\n1,2,1\n1,2,7\n", {}),
    "a lone carriage return": (b"z0,z1,label\n1,2\r,1\n", {}),
    "header only": (b"z0,z1,label\n", {}),
    "header names that need quotes": (b'"a,b",z0,"q""x"," s ",label\nid,1,2,3,1\n', {"logit_cols": "z0,q\"x,s"}),
    "a header name with a tab, tsv out": (b'"a\tb",z0,z1,label\nid,1,2,1\n', {"logit_cols": "z*", "output_format": "tsv"}),
    "no header": (b"1,2,1\n3,4,0\n", {"has_header": False}),
    "latin-1": ("id,z0,z1,label\ncafé,1,2,1\n".encode("latin-1"), {"encoding": "latin-1", "logit_cols": "z*"}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plain_blocks_write_and_say_what_the_usual_way_does(tmp_path, monkeypatch, name):
    data, fields = CASES[name]
    usual, plain = both_ways(tmp_path, monkeypatch, data, **fields)
    assert plain == usual


@pytest.mark.parametrize("sample", ["batch.csv", "batch.tsv", "batch_with_id.csv", "batch_soft_targets.csv"])
def test_samples_come_out_the_same_either_way(tmp_path, monkeypatch, sample):
    fields = {
        "batch.tsv": {"delimiter": "\t", "output_format": "tsv"},
        "batch_with_id.csv": {"logit_cols": "z*"},
        "batch_soft_targets.csv": {"target_cols": "t*"},
    }.get(sample, {})
    usual, plain = both_ways(tmp_path, monkeypatch, (SAMPLES / sample).read_bytes(), **fields)
    assert isinstance(usual[0], bytes)
    assert plain == usual


def test_a_plain_file_takes_the_plain_way(tmp_path, monkeypatch):
    """Not a test of speed: that the comparisons above compare two different paths."""
    taken: list[int] = []
    parse = batch_run.parse_plain_block

    def counted(*args):
        parsed = parse(*args)
        taken.append(parsed is not None)
        return parsed

    monkeypatch.setattr(batch_run, "parse_plain_block", counted)
    outcome(tmp_path, b"z0,z1,label\n1,2,1\n3,4,0\n")
    assert taken == [True]


#: Cells of logits as they come: model dumps, hand-written files, odd spellings, mistakes.
NUMBER_SPELLINGS = [
    "0",
    "1",
    "-1",
    "0.5",
    "-0.0",
    "2.718282",
    "-3.141593",
    "1e-7",
    "1E+3",
    "1e300",
    "-1e300",
    "1e308",
    "4.9e-324",
    "+2",
    ".25",
    "7.",
    "00012",
    " 1.5",
    "1.5 ",
    "1_000",
    "\u22122",
    "",
    "x",
    "nan",
    "inf",
    "\ufeff1",
]
ID_SPELLINGS = ["a", "", "b c", "naïve", '"q,1"', '"x""y"', "日本", "a;b", "-0.0", "\ufeffa"]


def _line(rng: random.Random, names: list[str], classes: int, delimiter: str, odd: float) -> str:
    cells = []
    for name in names:
        if name == "id":
            cells.append(rng.choice(ID_SPELLINGS))
        elif name.startswith("z"):
            plain = f"{rng.gauss(0, 3):.6f}"
            cells.append(rng.choice(NUMBER_SPELLINGS) if rng.random() < odd else plain)
        elif name.startswith("t"):
            cells.append(f"{1 / classes:.17g}")
        else:
            label = rng.randrange(classes) if rng.random() >= odd else rng.choice([-100, classes, -1])
            cells.append(str(label) if rng.random() >= odd else rng.choice(["1.0", "+1", "x", ""]))
    line = delimiter.join(cells)
    if rng.random() < odd:
        line = rng.choice(["", line + delimiter + "9", delimiter.join(cells[:-1]), line + "\r"])
    return line


@st.composite
def generated_files(draw: st.DrawFn) -> tuple[bytes, dict]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    classes = draw(st.integers(1, 5))
    rows = draw(st.integers(0, 40))
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    soft = draw(st.booleans())
    odd = draw(st.sampled_from([0.0, 0.02, 0.2]))  # how often a cell or a line is unusual
    with_id = draw(st.sampled_from(["none", "first", "last"]))
    names = [f"z{k}" for k in range(classes)] + ([f"t{k}" for k in range(classes)] if soft else ["label"])
    if with_id == "first":
        names.insert(0, "id")
    elif with_id == "last":
        names.append("id")
    lines = [delimiter.join(names)] + [_line(rng, names, classes, delimiter, odd) for _ in range(rows)]
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(lines) + draw(st.sampled_from(["", ending, ending * 2]))
    options = LossOptions(
        weight=draw(st.none() | st.just(tuple(0.5 + k for k in range(classes)))),
        label_smoothing=draw(st.sampled_from([0.0, 0.1])),
        ignore_index=draw(st.sampled_from([-100, 0])),
        reduction=draw(st.sampled_from(["none", "sum", "mean"])),
        temperature=draw(st.sampled_from([1.0, 0.7])),
        dtype=draw(st.sampled_from(["float64", "float32"])),
        softcap=draw(st.sampled_from([None, 5.0])),
        z_loss=draw(st.sampled_from([0.0, 1e-4])),
        smoothing_style=draw(st.sampled_from(["uniform", "off-target"])),
    )
    fields: dict = {"delimiter": delimiter, "options": options, "digits": draw(st.sampled_from([None, 4]))}
    fields["output_format"] = draw(st.sampled_from(["csv", "tsv", "jsonl"]))
    if soft:
        fields["target_cols"] = "t*"
    if with_id != "none" or soft:
        fields["logit_cols"] = "z*"
    return text.encode(), fields


def assert_the_same_either_way(ways: Callable, monkeypatch, generated: tuple[bytes, dict], block_bytes: int) -> None:
    """``ways(folder, monkeypatch, data, **fields)`` gives the same two outcomes for a generated file."""
    data, fields = generated
    monkeypatch.setattr(records, "BLOCK_BYTES", block_bytes)  # many blocks, plain and not, cut anywhere
    with tempfile.TemporaryDirectory() as folder:
        usual, other = ways(Path(folder), monkeypatch, data, **fields)
    assert other == usual


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=generated_files(), block_bytes=st.sampled_from([64, 300, 1 << 20]))
def test_generated_files_come_out_the_same_either_way(monkeypatch, generated, block_bytes):
    assert_the_same_either_way(both_ways, monkeypatch, generated, block_bytes)


def test_regression_a_byte_order_mark_starting_a_row_reads_the_same_wherever_the_blocks_are_cut(
    tmp_path, monkeypatch
):
    """polars drops a byte-order mark at the start of what it reads: a row that began with one
    lost it from its id where a block started there, and kept it elsewhere (found by a hostile
    tester); a number after one was read as the number there, and refused elsewhere."""
    ids = b"id,z0,z1,label\nb,1,2,1\n\xef\xbb\xbfa,1,2,1\nc,1,2,0\n"
    numbers = b"z0,z1,label\n1,2,1\n\xef\xbb\xbf1,2,1\n"
    quoted_number = b'z0,z1,label\n1,2,0\n\xef\xbb\xbf"3",4,1\n'
    quoted_id = b'id,z0,z1,label\nx,1,2,0\n\xef\xbb\xbf"a,b",3,4,1\n'
    seen: dict[bytes, set] = {ids: set(), numbers: set(), quoted_number: set(), quoted_id: set()}
    for block_bytes in (7, 13, 20, 23, 50, 1 << 20):
        monkeypatch.setattr(records, "BLOCK_BYTES", block_bytes)
        for data in seen:
            usual, plain = both_ways(tmp_path, monkeypatch, data, logit_cols="z*")
            assert plain == usual
            seen[data].add(usual[0])
    (written,) = seen[ids]
    assert isinstance(written, bytes) and b"\nb,1,2,1," in written and b"\n\xef\xbb\xbfa,1,2,1," in written
    assert seen[numbers] == {"line 3, column z0: '\\ufeff1' is not a number"}
    # A quote after the mark does not start a quoted field, there as anywhere in a field.
    assert seen[quoted_number] == {"line 3, column z0: '\\ufeff\"3\"' is not a number"}
    (quoted_id_outcome,) = seen[quoted_id]
    assert isinstance(quoted_id_outcome, str) and quoted_id_outcome.startswith("line 3")


def test_a_nan_in_a_plain_blocks_output_is_spelled_nan():
    """Whether a block's output holds a NaN is looked at by numpy on the main thread (polars'
    look on the writer's thread waited for the thread pool); a NaN must still be spelled as
    everywhere in sce, not as polars' "NaN"."""
    plan = plan_columns(["z0", "z1", "label"], label_col=None, logit_cols=None, target_cols=None, has_header=True)
    parsed = parse_plain_block(Block(2, b"1,2,1\n3,4,0\n"), plan, ",")
    assert parsed is not None
    result = compute_block(parsed, plan, LossOptions(), None)
    written = []
    for poisoned in (None, result.probabilities, result.losses, result.gradient):
        if poisoned is not None:
            poisoned.reshape(-1)[-1] = np.nan
        stream = io.BytesIO()
        plain_rows(parsed, plan, result, None, ",").write(stream, header=False)
        written.append(stream.getvalue())
    assert b"nan" not in written[0].lower()
    for text in written[1:]:
        assert b"nan" in text and b"NaN" not in text
