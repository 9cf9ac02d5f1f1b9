"""`--summary-json FILE` on sce batch and sce check --csv: what it refuses (one line each), and
that it is written whole with the run or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SAMPLE = "z0,z1,z2,label\n2,3,4,1\n1,1,1,0\n"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text(SAMPLE)
    return tmp_path


def test_the_summary_is_written_beside_the_output(folder, sce):
    done = sce("batch", "in.csv", "-o", "out.csv", "--summary-json", "summary.json", "-q")
    assert (done.exit_code, done.stderr) == (0, "")
    document = json.loads((folder / "summary.json").read_text())
    assert (document["rows"], document["reduction"]) == (2, "none")
    assert sorted(p.name for p in folder.iterdir()) == ["in.csv", "out.csv", "summary.json"]


def test_the_summary_beside_an_output_on_stdout(folder, sce):
    done = sce("batch", "in.csv", "--summary-json", "summary.json", "-q")
    assert done.exit_code == 0 and done.stdout.startswith("z0,z1,z2,label,p_z0")
    assert json.loads((folder / "summary.json").read_text())["counted_rows"] == 2


@pytest.mark.parametrize(
    "arguments,status,line",
    [
        (("-o", "out.csv", "--summary-json", "in.csv"), 2, "in.csv is the input file; write the summary to another file"),
        (
            ("-o", "out.csv", "--summary-json", "out.csv"),
            2,
            "out.csv is the output file (-o out.csv); write the summary to another file",
        ),
        (
            ("-o", "out.csv", "--summary-json", "./sub/../out.csv"),
            2,
            "./sub/../out.csv is the output file (-o out.csv); write the summary to another file",
        ),
        (("-o", "out.csv", "--summary-json", "-"), 2, "- is not a file name; name the summary's file, e.g. summary.json"),
        (("-o", "out.csv", "--summary-json", ""), 2, "the summary file name is empty; name a file, e.g. summary.json"),
        (
            ("-o", "out.csv", "--summary-json", "missing/summary.json"),
            1,
            "the folder {folder}/missing does not exist; create it, or write the summary elsewhere",
        ),
        (("-o", "out.csv", "--summary-json", "sub"), 2, "sub is a folder; name a file in it, e.g. sub/summary.json"),
    ],
    ids=["input", "output", "output-by-another-name", "dash", "empty", "missing-folder", "folder"],
)
def test_a_summary_that_cannot_be_written_is_refused_in_one_line(folder, sce, arguments, status, line):
    (folder / "sub").mkdir()
    (folder / "out.csv").write_text("precious\n")
    done = sce("batch", "in.csv", *arguments)
    assert (done.exit_code, done.stderr) == (status, f"sce: error: --summary-json: {line.format(folder=folder)}\n")
    assert (folder / "out.csv").read_text() == "precious\n"
    assert sorted(p.name for p in folder.iterdir()) == ["in.csv", "out.csv", "sub"]


def test_the_summary_onto_the_output_through_a_symbolic_link_is_refused(folder, sce):
    (folder / "out.csv").write_text("precious\n")
    (folder / "link.csv").symlink_to("out.csv")
    done = sce("batch", "in.csv", "-o", "out.csv", "--summary-json", "link.csv")
    assert done.stderr == "sce: error: --summary-json: link.csv is the output file (-o out.csv); write the summary to another file\n"
    # And the other way round: -o through the link, the summary onto its target.
    done = sce("batch", "in.csv", "-o", "link.csv", "--summary-json", "out.csv")
    assert done.stderr == "sce: error: --summary-json: out.csv is the output file (-o link.csv); write the summary to another file\n"
    assert (folder / "out.csv").read_text() == "precious\n"


def test_the_summary_onto_a_hard_link_of_the_output_or_the_input_is_refused(folder, sce):
    (folder / "out.csv").write_text("precious\n")
    os.link(folder / "out.csv", folder / "other-name.json")
    os.link(folder / "in.csv", folder / "input-too.json")
    done = sce("batch", "in.csv", "-o", "out.csv", "--summary-json", "other-name.json")
    assert done.stderr == (
        "sce: error: --summary-json: other-name.json is the output file (-o out.csv); write the summary to another file\n"
    )
    done = sce("batch", "in.csv", "-o", "out.csv", "--summary-json", "input-too.json")
    assert done.stderr == "sce: error: --summary-json: input-too.json is the input file; write the summary to another file\n"
    assert (folder / "out.csv").read_text() == "precious\n"


def test_a_failed_run_leaves_an_existing_summary_and_output_untouched(folder, sce):
    (folder / "bad.csv").write_text("z0,z1,label\n1,2,0\n1,x,0\n")
    (folder / "out.csv").write_text("precious\n")
    (folder / "summary.json").write_text("old\n")
    done = sce("batch", "bad.csv", "-o", "out.csv", "--summary-json", "summary.json")
    assert done.exit_code == 1
    assert done.stderr.startswith("sce: error: line 3, column z1:")
    assert ((folder / "out.csv").read_text(), (folder / "summary.json").read_text()) == ("precious\n", "old\n")
    assert sorted(p.name for p in folder.iterdir()) == ["bad.csv", "in.csv", "out.csv", "summary.json"]


def test_check_csv_writes_the_summary_with_its_verdict(folder, sce):
    assert sce("batch", "in.csv", "-o", "scored.csv", "-q").exit_code == 0
    done = sce("check", "--csv", "scored.csv", "--grad-cols", "grad_*", "--summary-json", "summary.json")
    assert done.exit_code == 0
    document = json.loads((folder / "summary.json").read_text())
    assert (document["rows"], document["wrong_rows"], document["all_correct"]) == (2, 0, True)
    assert list(document)[-5:] == ["wrong_rows", "too_few_digits_rows", "all_correct", "max_abs_error", "max_rel_error"]
    wrong = (folder / "scored.csv").read_text().splitlines()
    wrong[1] = ",".join([*wrong[1].split(",")[:-1], "0.5"])  # the last gradient entry of the first row
    (folder / "wrong.csv").write_text("\n".join(wrong) + "\n")
    done = sce("check", "--csv", "wrong.csv", "--grad-cols", "grad_*", "--summary-json", "summary.json")
    assert done.exit_code == 1
    document = json.loads((folder / "summary.json").read_text())
    assert (document["wrong_rows"], document["all_correct"]) == (1, False)


def test_check_csv_refuses_a_summary_onto_its_input_and_ungraded_runs_keep_the_old_one(folder, sce):
    (folder / "summary.json").write_text("old\n")
    done = sce("check", "--csv", "in.csv", "--grad-cols", "grad_*", "--summary-json", "in.csv")
    assert (done.exit_code, done.stderr) == (
        2,
        "sce: error: --summary-json: in.csv is the input file; write the summary to another file\n",
    )
    done = sce("check", "--csv", "in.csv", "--grad-cols", "grad_*", "--summary-json", "summary.json")
    assert done.exit_code == 2  # no gradient columns to grade: nothing was graded
    assert (folder / "summary.json").read_text() == "old\n"


@pytest.mark.parametrize(
    "arguments",
    [("2", "3", "4", "-l", "1", "--grad", "0.1,0.2,0.3"), ("--arrays", "dump.npz")],
    ids=["typed", "arrays"],
)
def test_summary_json_goes_with_check_csv_only(folder, sce, arguments):
    done = sce("check", *arguments, "--summary-json", "summary.json")
    assert (done.exit_code, done.stderr) == (
        2,
        "sce: error: --summary-json goes with --csv INPUT (and with sce batch)\n",
    )


def test_the_summary_onto_a_file_of_arrays_read_is_refused(folder, sce):
    import numpy as np

    np.save(folder / "logits.npy", np.array([[2.0, 3.0, 4.0]]))
    np.save(folder / "labels.npy", np.array([1]))
    done = sce("batch", "--logits", "logits.npy", "--labels", "labels.npy", "--summary-json", "labels.npy")
    assert (done.exit_code, done.stderr) == (
        2,
        "sce: error: --summary-json: labels.npy is the input file; write the summary to another file\n",
    )
    assert np.load(folder / "labels.npy").tolist() == [1]


def test_the_summary_onto_the_file_stdin_reads_is_refused(folder):
    import subprocess
    import sys

    with open(folder / "in.csv", "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "sce", "batch", "-", "-o", "out.csv", "--summary-json", "in.csv"],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=folder,
        )
    assert (done.returncode, done.stderr) == (
        2,
        "sce: error: --summary-json: in.csv is the input file; write the summary to another file\n",
    )
    assert (folder / "in.csv").read_text() == SAMPLE
