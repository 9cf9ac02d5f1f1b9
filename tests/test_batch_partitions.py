"""Several inputs scored as the partitions of one (the seam every engine runs on): the same bits
as one process reading the whole, however the input is cut and in whatever order the
partitions finish; in this process, without Dask."""

from __future__ import annotations

import json
import math
import os
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from sce.batch import BatchRequest, run_batch
from sce.batch.loop import write_summary_file
from sce.batch.partitioned import InProcess, guarded, partition_paths, run_partitioned
from sce.errors import DataProblem
from sce.io.arrays import DumpRequest
from sce.options import LossOptions

CLASSES = 5
#: Rows per part: uneven, a part of one row among them.
CUTS = {1: [0, 211], 3: [0, 1, 90, 211], 7: [0, 13, 14, 60, 61, 150, 209, 211]}

OPTION_SETS = {
    "plain": {},
    "weights and ignored rows": {"weight": (1.0, 2.0, 3.0, 0.5, 0.1)},
    "uniform smoothing": {"label_smoothing": 0.1},
    "off-target smoothing": {"label_smoothing": 0.2, "smoothing_style": "off-target"},
    "z-loss and soft cap": {"z_loss": 1e-3, "softcap": 5.0},
    "temperature and weights": {"temperature": 0.7, "weight": (0.3, 1.0, 1.0, 2.0, 1.0)},
    "float32": {"dtype": "float32", "label_smoothing": 0.05},
}


class Shuffled:
    """In this process, every partition computed, then handed back in a shuffled order."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def unordered(self, function, arguments):
        done = [(index, guarded(function, *given)) for index, given in enumerate(arguments)]
        random.Random(self.seed).shuffle(done)
        yield from done


def rows(seed: int = 3, count: int = 211) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(count, CLASSES)) * 4
    logits[5] = [1e3, -1e3, 0.0, 1e-300, -0.0]
    labels = rng.integers(0, CLASSES, count)
    labels[::9] = -100
    return logits, labels


def csv_lines(logits: np.ndarray, labels: np.ndarray) -> list[str]:
    return [",".join(repr(float(v)) for v in row) + f",{label}" for row, label in zip(logits, labels)]


HEADER = ",".join(f"z{k}" for k in range(CLASSES)) + ",label"


def write_parts(folder: Path, count: int, fmt: str = "csv") -> tuple[Path, list[Path]]:
    """The whole input, and the same rows cut into ``count`` uneven parts."""
    logits, labels = rows()
    folder.mkdir(parents=True, exist_ok=True)
    cuts = CUTS[count]
    if fmt == "csv":
        lines = csv_lines(logits, labels)
        whole = folder / "whole.csv"
        whole.write_text("\n".join([HEADER, *lines]) + "\n")
        parts = []
        for index, (start, stop) in enumerate(zip(cuts, cuts[1:])):
            part = folder / "parts" / f"part{index}.csv"
            part.parent.mkdir(exist_ok=True)
            part.write_text("\n".join([HEADER, *lines[start:stop]]) + "\n")
            parts.append(part)
        return whole, parts
    whole = folder / f"whole.{fmt}"
    save_arrays(whole, logits, labels)
    parts = []
    for index, (start, stop) in enumerate(zip(cuts, cuts[1:])):
        part = folder / "parts" / f"part{index}.{fmt}"
        part.parent.mkdir(exist_ok=True)
        save_arrays(part, logits[start:stop], labels[start:stop])
        parts.append(part)
    return whole, parts


def save_arrays(path: Path, logits: np.ndarray, labels: np.ndarray) -> None:
    """A dump: .npz, or a Parquet table of columns logits_0 … and labels."""
    if path.suffix == ".npz":
        np.savez(path, logits=logits, labels=labels)
        return
    import polars as pl

    columns = {f"logits_{k}": logits[:, k] for k in range(logits.shape[1])}
    pl.DataFrame({**columns, "labels": labels}).write_parquet(path)


def request_for(path: Path, output: Path, options: LossOptions, fmt: str, summary: Path | None = None):
    arrays = DumpRequest(str(path), {}, {}) if path.suffix in (".npz", ".parquet") else None
    return BatchRequest(
        str(path), str(output), output_format=fmt, options=options, arrays=arrays,
        summary_path=None if summary is None else str(summary),
    )


def run_in_parts(parts, output, options, fmt, executor, summary=None):
    whole = request_for(parts[0], output, options, fmt, summary)

    def part_request(path: str) -> BatchRequest:
        return request_for(Path(path), output, options, fmt)

    return run_partitioned(whole, [str(part) for part in parts], executor, part_request)


def output_rows(path: Path, fmt: str) -> object:
    if fmt in ("csv", "jsonl"):
        return path.read_bytes()
    import polars as pl

    return pl.read_parquet(path).to_dict(as_series=False)


@pytest.mark.parametrize("count", [1, 3, 7])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_parts_finishing_in_any_order_give_one_process_bits(tmp_path, count, reduction, name):
    whole, parts = write_parts(tmp_path, count)
    options = LossOptions(reduction=reduction, **OPTION_SETS[name])
    one = run_batch(request_for(whole, tmp_path / "one.csv", options, "csv", tmp_path / "one.json"))
    cut = run_in_parts(parts, tmp_path / "cut.csv", options, "csv", Shuffled(count), tmp_path / "cut.json")
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert (tmp_path / "cut.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    assert cut.document() == one.document()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("source", ["csv", "npz", "parquet"])
def test_every_output_format_and_source_gives_one_process_rows(tmp_path, fmt, source):
    whole, parts = write_parts(tmp_path, 7, source)
    options = LossOptions(reduction="mean", weight=(1.0, 2.0, 3.0, 0.5, 0.1))
    one = run_batch(request_for(whole, tmp_path / f"one.{fmt}", options, fmt))
    cut = run_in_parts(parts, tmp_path / f"cut.{fmt}", options, fmt, Shuffled(1))
    assert output_rows(tmp_path / f"cut.{fmt}", fmt) == output_rows(tmp_path / f"one.{fmt}", fmt)
    assert cut.document() == one.document()


def test_the_summed_loss_is_the_exactly_rounded_sum_of_the_rows(tmp_path):
    """An independent check of the partials: math.fsum rounds the rows' exact sum once."""
    _, parts = write_parts(tmp_path, 7)
    options = LossOptions(reduction="none", weight=(1.0, 2.0, 3.0, 0.5, 0.1))
    summary = run_in_parts(parts, tmp_path / "cut.jsonl", options, "jsonl", Shuffled(2))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "cut.jsonl").read_text().splitlines()]
    assert summary.loss_sum == math.fsum(losses)
    exact = sum((Fraction(loss) for loss in losses), Fraction(0))
    assert summary.mean_loss == float(exact / summary.counted)


def test_the_mean_of_partition_means_differs_from_the_exact_mean(tmp_path):
    """The negative control: what an engine that averages each partition's mean would report."""
    whole, parts = write_parts(tmp_path, 7)
    options = LossOptions(reduction="mean", weight=(1.0, 2.0, 3.0, 0.5, 0.1))
    exact = run_batch(request_for(whole, tmp_path / "one.csv", options, "csv")).mean_loss
    means = [run_batch(request_for(part, tmp_path / f"{part.stem}.csv", options, "csv")).mean_loss for part in parts]
    averaged = sum(means) / len(means)
    assert abs(averaged - exact) > 1e-3 * abs(exact)
    cut = run_in_parts(parts, tmp_path / "cut.csv", options, "csv", Shuffled(3))
    assert cut.mean_loss == exact


def test_a_folder_of_parts_is_read_in_name_order_without_hidden_files(tmp_path):
    for name in ("b.csv", "a.tsv", ".c.csv", "notes.md", "d.parquet"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub.csv").mkdir()
    assert [Path(path).name for path in partition_paths([str(tmp_path)])] == ["a.tsv", "b.csv", "d.parquet"]


def test_a_quoted_glob_is_expanded_in_name_order(tmp_path):
    for name in ("p10.csv", "p2.csv", "p1.csv"):
        (tmp_path / name).write_text("x")
    assert [Path(p).name for p in partition_paths([str(tmp_path / "p*.csv")])] == ["p1.csv", "p10.csv", "p2.csv"]


def test_the_in_process_executor_hands_back_errors_as_results():
    def bad(path):
        from sce.errors import OptionProblem

        raise OptionProblem("label_col", f"no column {path}")

    [(index, failure)] = list(InProcess().unordered(bad, [("x",)]))
    assert index == 0
    assert type(failure.error()).__name__ == "OptionProblem"
    assert failure.error().worded() == "label_col: no column x"


def test_a_summary_written_alone_matches_the_partitioned_one(tmp_path):
    _, parts = write_parts(tmp_path, 3)
    summary = run_in_parts(parts, tmp_path / "cut.csv", LossOptions(reduction="sum"), "csv", InProcess())
    write_summary_file(str(tmp_path / "alone.json"), None, summary.document())
    assert json.loads((tmp_path / "alone.json").read_text())["rows"] == 211


def test_ctrl_c_after_a_part_is_in_place_still_stops_the_run_and_keeps_the_old_output(tmp_path):
    """A part put in place (in the staging folder) is not the run's output in place: a signal then still stops it."""
    import signal
    import subprocess
    import time

    logits, labels = rows(seed=11, count=60_000)
    text = "\n".join([HEADER, *csv_lines(logits, labels)]) + "\n"
    parts = []
    for index in range(6):
        part = tmp_path / f"part{index}.csv"
        part.write_text(text)
        parts.append(part)
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    process = subprocess.Popen(
        ["sce", "batch", *map(str, parts), "-o", str(out), "-q"], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60

    def first_part_in_place() -> bool:
        return any(
            (folder / "part-00000.csv").exists() for folder in tmp_path.iterdir() if folder.name.endswith(".parts")
        )

    while not first_part_in_place():
        assert process.poll() is None, "finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    stderr = process.stderr.read()
    assert process.returncode == 130, stderr
    assert "complete" not in stderr and "Traceback" not in stderr
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in parts] + ["out.csv"])


def test_a_closed_pipe_ends_a_run_of_parts_with_141(tmp_path):
    import shutil
    import subprocess

    _, parts = write_parts(tmp_path, 7)
    shutil.copytree(tmp_path / "parts", tmp_path / "more")
    run = subprocess.run(
        f"sce batch {tmp_path / 'parts'} {tmp_path / 'more'} | head -n 1", shell=True, capture_output=True,
        text=True, executable="/bin/bash",
    )
    assert run.stdout.startswith(HEADER)
    assert "Traceback" not in run.stderr
    status = subprocess.run(
        f"sce batch {tmp_path / 'parts'} {tmp_path / 'more'} | head -n 1 > /dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True, capture_output=True, text=True, executable="/bin/bash",
    )
    assert status.stdout.strip() == "141"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_one_part_may_be_written_as_one_npz_file(tmp_path, sce):
    whole, parts = write_parts(tmp_path, 1, "npz")
    assert sce("batch", tmp_path / "parts", "-o", tmp_path / "out.npz", "-q").exit_code == 0
    assert sce("batch", whole, "-o", tmp_path / "one.npz", "-q").exit_code == 0
    cut, one = np.load(tmp_path / "out.npz"), np.load(tmp_path / "one.npz")
    assert sorted(cut.files) == sorted(one.files)
    for name in one.files:
        assert np.array_equal(cut[name], one[name])


def test_a_summary_inside_the_output_folder_is_refused(tmp_path, sce):
    write_parts(tmp_path, 3)
    run = sce("batch", tmp_path / "parts", "-o", f"{tmp_path / 'scored'}/", "--summary-json",
              tmp_path / "scored" / "summary.json")
    assert run.exit_code == 2
    assert run.stderr == (
        f"sce: error: --summary-json: {tmp_path / 'scored' / 'summary.json'} is inside the output folder "
        f"{tmp_path / 'scored'}/, which is replaced whole; write the summary beside it\n"
    )
    assert not (tmp_path / "scored").exists()


def test_a_folder_output_and_its_summary_are_put_in_place_together(tmp_path, sce):
    _, parts = write_parts(tmp_path, 3)
    run = sce("batch", tmp_path / "parts", "-o", f"{tmp_path / 'scored'}/", "--summary-json",
              tmp_path / "summary.json", "-q", "--reduction", "sum")
    assert run.exit_code == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "scored").iterdir()) == [f"part-0000{i}.csv" for i in range(3)]
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == 211
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_parts_without_rows_are_skipped_and_the_header_written_once(tmp_path, reduction, fmt):
    """Data lakes hold empty parts (a header alone): the first of them among them."""
    whole, parts = write_parts(tmp_path, 3)
    empty = [tmp_path / "parts" / name for name in ("empty0.csv", "empty1.csv")]
    for path in empty:
        path.write_text(HEADER + "\n")
    ordered = [empty[0], parts[0], parts[1], empty[1], parts[2]]
    options = LossOptions(reduction=reduction, weight=(1.0, 2.0, 3.0, 0.5, 0.1))
    one = run_batch(request_for(whole, tmp_path / f"one.{fmt}", options, fmt))
    cut = run_in_parts(ordered, tmp_path / f"cut.{fmt}", options, fmt, Shuffled(5))
    assert output_rows(tmp_path / f"cut.{fmt}", fmt) == output_rows(tmp_path / f"one.{fmt}", fmt)
    assert cut.document() == one.document()


def test_parts_that_all_lack_rows_are_refused(tmp_path, sce):
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text(HEADER + "\n")
    for reduction in ("none", "mean"):
        run = sce("batch", tmp_path / "a.csv", tmp_path / "b.csv", "-o", tmp_path / "out.csv", "--reduction", reduction)
        assert run.exit_code == 1
        assert run.stderr == "sce: error: the parts have a header but no rows\n"
        assert not (tmp_path / "out.csv").exists()


def test_a_part_with_a_header_and_no_rows_is_an_empty_part_of_a_multi_part_input(sce, tmp_path, monkeypatch):
    # Writers of partitioned data (Spark, Dask, polars) leave header-only parts where a partition is empty.
    monkeypatch.chdir(tmp_path)
    Path("a.csv").write_text("z0,z1,z2,label\n2,3,4,1\n0,40,-1,1\n")
    Path("b.csv").write_text("z0,z1,z2,label\n")
    Path("c.csv").write_text("z0,z1,z2,label\n1.5,-0.5,0.25,0\n0.1,0.2,0.3,2\n-1,-2,-3,0\n")
    Path("joined.csv").write_text("z0,z1,z2,label\n2,3,4,1\n0,40,-1,1\n1.5,-0.5,0.25,0\n0.1,0.2,0.3,2\n-1,-2,-3,0\n")
    assert sce("batch", "joined.csv", "-o", "one.csv", "--quiet").exit_code == 0
    parts = sce("batch", "a.csv", "b.csv", "c.csv", "-o", "parts.csv", "--quiet")
    assert parts.exit_code == 0, parts.output
    assert Path("parts.csv").read_bytes() == Path("one.csv").read_bytes()


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_parts_of_0_bytes_are_empty_parts_too(tmp_path, reduction, fmt):
    """Spark writes an empty partition as a file of 0 bytes, without even a header."""
    whole, parts = write_parts(tmp_path, 3)
    empty = [tmp_path / "parts" / name for name in ("empty0.csv", "empty1.csv")]
    for path in empty:
        path.write_bytes(b"")
    ordered = [empty[0], parts[0], parts[1], empty[1], parts[2]]
    options = LossOptions(reduction=reduction, label_smoothing=0.1)
    one = run_batch(request_for(whole, tmp_path / f"one.{fmt}", options, fmt))
    cut = run_in_parts(ordered, tmp_path / f"cut.{fmt}", options, fmt, Shuffled(2))
    assert output_rows(tmp_path / f"cut.{fmt}", fmt) == output_rows(tmp_path / f"one.{fmt}", fmt)
    assert cut.document() == one.document()


def test_parts_that_are_all_0_bytes_are_refused_as_one_empty_input_is(tmp_path, sce):
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_bytes(b"")
    run = sce("batch", tmp_path / "a.csv", tmp_path / "b.csv", "-o", tmp_path / "out.csv")
    assert (run.exit_code, run.stderr) == (
        1, "sce: error: the parts are empty (0 bytes each); they need a header line and rows of logits\n"
    )
    alone = sce("batch", tmp_path / "a.csv", "-o", tmp_path / "out.csv")
    assert (alone.exit_code, alone.stderr) == (
        1, "sce: error: the input is empty; it needs a header line and rows of logits\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]


def test_parts_with_a_byte_order_mark_or_crlf_line_ends_give_the_joined_inputs_bytes(tmp_path, sce):
    whole, parts = write_parts(tmp_path, 3)
    parts[1].write_bytes(b"\xef\xbb\xbf" + parts[1].read_bytes())
    parts[2].write_bytes(parts[2].read_bytes().replace(b"\n", b"\r\n"))
    assert sce("batch", whole, "-o", tmp_path / "one.csv", "-q").exit_code == 0
    run = sce("batch", *parts, "-o", tmp_path / "cut.csv", "-q")
    assert run.exit_code == 0, run.stderr
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


def test_one_file_named_twice_among_the_parts_is_refused(tmp_path, sce, monkeypatch):
    """By its name twice, through a link, or as a folder's part and by itself: its rows would count twice."""
    monkeypatch.chdir(tmp_path)
    write_parts(tmp_path, 3)
    Path("link.csv").symlink_to(Path("parts/part1.csv"))
    for given, named in (
        (["parts/part0.csv", "parts/part0.csv"], "parts/part0.csv twice"),
        (["parts/part1.csv", "link.csv"], "parts/part1.csv twice (also as link.csv)"),
        (["parts", "parts/part2.csv"], "parts/part2.csv twice"),
    ):
        run = sce("batch", *given, "-o", "out.csv", "--engine", "dask", "--workers", "1")
        assert run.exit_code == 2
        assert run.stderr == f"sce: error: the inputs name {named}: its rows would count twice; give each part once\n"
    assert not Path("out.csv").exists()


def test_a_linked_part_is_read_as_the_file_it_links_to(tmp_path, sce):
    whole, parts = write_parts(tmp_path, 3)
    (tmp_path / "linked.csv").symlink_to(parts[1])
    assert sce("batch", whole, "-o", tmp_path / "one.csv", "-q").exit_code == 0
    run = sce("batch", parts[0], tmp_path / "linked.csv", parts[2], "-o", tmp_path / "cut.csv", "-q")
    assert run.exit_code == 0, run.stderr
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


@pytest.mark.parametrize(("given", "output"), [("parts", "parts/out.csv"), ("parts/*.csv", "parts/scored.csv")])
def test_an_output_an_input_folder_or_glob_would_read_as_a_part_is_refused(tmp_path, sce, monkeypatch, given, output):
    monkeypatch.chdir(tmp_path)
    write_parts(tmp_path, 3)
    run = sce("batch", given, "-o", output)
    assert run.exit_code == 2
    assert run.stderr == (
        f"sce: error: -o: {output} would be one of the parts of {given} (read again by the next run); "
        "write it elsewhere\n"
    )
    assert sorted(p.name for p in Path("parts").iterdir()) == ["part0.csv", "part1.csv", "part2.csv"]


class DiskFullOnPart:
    """Every partition computed, but the writing of part ``failing`` fails as a full disk does."""

    def __init__(self, failing: int) -> None:
        self.failing = failing

    def unordered(self, function, arguments):
        from sce.batch.partition import PartitionFailure
        from sce.errors import OptionDataProblem, option

        for index, given in enumerate(arguments):
            if index == self.failing and function.__name__ == "score_partition":
                written = given[0].output_path
                yield index, PartitionFailure(OptionDataProblem, (
                    f"{option('output_path')}: writing the output {written} failed: no space left on device; "
                    "free some space or write the output elsewhere"
                ))
            else:
                yield index, guarded(function, *given)


@pytest.mark.parametrize("into_folder", [False, True])
def test_a_full_disk_while_writing_a_part_names_the_output_not_the_hidden_parts_folder(tmp_path, into_folder):
    from sce.errors import OptionDataProblem

    _, parts = write_parts(tmp_path, 3)
    output = f"{tmp_path / 'scored'}/" if into_folder else str(tmp_path / "scored.csv")
    shown = str(tmp_path / "scored" / "part-00001.csv") if into_folder else output
    with pytest.raises(OptionDataProblem) as raised:
        run_in_parts(parts, output, LossOptions(), "csv", DiskFullOnPart(1))
    assert str(raised.value) == (
        f"output_path: writing the output {shown} failed: no space left on device; free some space or write the "
        "output elsewhere"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts", "whole.csv"]


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("source", ["npz", "parquet"])
def test_array_parts_without_rows_are_empty_parts(tmp_path, source, reduction):
    """A table's writer leaves a part of no rows where a partition is empty (in Parquet with a list
    column, without even a class count): skipped, as a CSV part with a header alone."""
    import polars as pl

    whole, parts = write_parts(tmp_path, 3, source)
    empty = tmp_path / "parts" / f"empty.{source}"
    save_arrays(empty, np.zeros((0, CLASSES)), np.zeros(0, dtype=np.int64))
    listed = tmp_path / "parts" / "listed.parquet"
    pl.DataFrame({"logits": pl.Series([], dtype=pl.List(pl.Float64)), "labels": pl.Series([], dtype=pl.Int64)}
                 ).write_parquet(listed)
    options = LossOptions(reduction=reduction, weight=(1.0, 2.0, 3.0, 0.5, 0.1))
    one = run_batch(request_for(whole, tmp_path / "one.csv", options, "csv"))
    cut = run_in_parts([empty, parts[0], listed, parts[1], parts[2]], tmp_path / "cut.csv", options, "csv", Shuffled(3))
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert cut.document() == one.document()


def test_array_parts_that_all_lack_rows_are_refused(tmp_path, sce):
    for name in ("a.npz", "b.npz"):
        save_arrays(tmp_path / name, np.zeros((0, CLASSES)), np.zeros(0, dtype=np.int64))
    run = sce("batch", tmp_path / "a.npz", tmp_path / "b.npz", "-o", tmp_path / "out.csv")
    assert (run.exit_code, run.stderr) == (1, "sce: error: the parts have no rows; give at least one row of one class\n")
    assert not (tmp_path / "out.csv").exists()


def test_a_pipe_among_the_parts_is_refused_where_it_would_be_read_twice_or_by_a_worker(tmp_path):
    """A process substitution (<(…)) is a pipe: read once, in this process only."""
    import subprocess

    _, parts = write_parts(tmp_path, 3)
    common = f"sce batch {parts[0]} <(cat {parts[1]}) -q"
    piped = subprocess.run(f"{common} > {tmp_path / 'out.csv'}", shell=True, capture_output=True, text=True,
                           executable="/bin/bash")
    assert (piped.returncode, piped.stderr) == (0, "")
    for extra, why in (
        ("--reduction mean", "read once; with --reduction mean every part is read twice (a first pass counts the "
         "whole input's denominators): save it to a file"),
        ("--engine dask --workers 1", "which the cluster's workers cannot open: save it to a file"),
    ):
        run = subprocess.run(f"{common} {extra}", shell=True, capture_output=True, text=True, executable="/bin/bash")
        assert run.returncode == 2
        assert run.stderr.startswith("sce: error: /dev/fd/") and run.stderr.endswith(f" is a pipe or a device, {why}\n")


def test_a_device_output_keeps_the_parts_in_the_temporary_folder_not_in_dev(tmp_path, monkeypatch):
    import tempfile

    import sce.batch.partitioned as partitioned

    made, original = [], tempfile.mkdtemp

    def mkdtemp(**given):
        made.append(given.get("dir"))
        return original(**{**given, "dir": tmp_path})

    monkeypatch.setattr(partitioned.tempfile, "mkdtemp", mkdtemp)
    _, parts = write_parts(tmp_path, 3)
    summary = run_in_parts(parts, Path(os.devnull), LossOptions(), "csv", Shuffled(0))
    assert summary.rows == 211
    assert made == [None]


class Recorded:
    """Every partition computed in this process, handed back in a given order, the indices handed back kept."""

    def __init__(self, order: list[int]) -> None:
        self.order = order
        self.handed: list[int] = []

    def unordered(self, function, arguments):
        done = {index: guarded(function, *given) for index, given in enumerate(arguments)}
        for index in self.order:
            self.handed.append(index)
            yield index, done[index]


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(
    "order", [[6, 5, 4, 3, 2, 1, 0], [4, 0, 6, 1, 5, 3, 2], [2, 4, 1, 0, 3, 6, 5], [0, 1, 2, 3, 4, 5, 6]]
)
def test_of_several_bad_parts_the_first_in_input_order_is_named_however_tasks_finish(tmp_path, reduction, order):
    # On a cluster the task that failed first was named, so the same run gave another message than one
    # process does (which meets the parts in order), and, with parts of like sizes, from run to run.
    _, parts = write_parts(tmp_path, 7)
    for bad in (2, 4):
        lines = parts[bad].read_text().splitlines()
        lines[2] = "x" + lines[2]
        parts[bad].write_text("\n".join(lines) + "\n")
    executor = Recorded(order)
    with pytest.raises(DataProblem) as raised:
        run_in_parts(parts, tmp_path / "cut.csv", LossOptions(reduction=reduction), "csv", executor)
    assert str(raised.value).startswith(f"{parts[2]}: line 3, column z0: ")
    # The run waits for the parts before the first bad one, not for every part: it stops once that is known.
    assert executor.handed == order[: max(order.index(k) for k in (0, 1, 2)) + 1]
    assert not (tmp_path / "cut.csv").exists()
