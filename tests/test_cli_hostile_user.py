"""What a fumbling or malicious user met: an infinite tolerance, a file of rows given as one vector, a worker left
running by a killed sce test, and the former package's documented submodules."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sce.cli.samples as samples_command


def one_error_line(result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]

@pytest.mark.parametrize("module", ["sce_cli.testing"])
def test_the_former_packages_documented_submodules_still_import(module):
    # The former README taught `from sce_cli.testing import assert_implementation_correct`.
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", f"import {module}"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr.splitlines()[-1:]

@pytest.mark.parametrize("answer", [("--loss", "-5"), ("--grad", "9,9,9")])
def test_an_infinite_tolerance_is_refused_not_a_pass_for_any_answer(sce, answer):
    # `--tol inf` graded a loss of -5 "correct" (status 0), and added that its digits "also fit" the log-base-10
    # mistake: a wrong answer passed, with a misleading hint. --tol nan and --tol -1 are refused already.
    result = sce("check", "2", "3", "4", "-l", "1", *answer, "--tol", "inf")
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert line.startswith("sce: error: --tol"), line

def test_a_logits_file_of_several_rows_is_refused_not_read_as_one_long_row(sce, tmp_path):
    # "2 3 4" and "5 6 7" on two lines were read as one row of 6 classes, label 1 of 6: loss 4.4562, status 0,
    # where the user meant two rows of 3 (loss 1.4076 each). One number per line, or one line, stays one row.
    (tmp_path / "rows.txt").write_text("2 3 4\n5 6 7\n")
    result = sce("grad", "--logits-file", tmp_path / "rows.txt", "-l", "1")
    assert result.exit_code in (1, 2), result.output
    line = one_error_line(result)
    assert "sce batch" in line, line
    (tmp_path / "column.txt").write_text("2\n3\n4\n")
    assert sce("grad", "--logits-file", tmp_path / "column.txt", "-l", "1").exit_code == 0

def test_the_worker_of_a_killed_sce_test_does_not_outlive_it(tmp_path):
    # SIGKILL (or the OOM killer) on sce test left the worker running the user's `while True: pass` at full CPU,
    # reparented to init, for as long as anyone cared to look: only the parent enforces --timeout.
    import shutil
    import signal
    import time

    sce_command = shutil.which("sce", path=os.path.dirname(sys.executable))
    if sce_command is None:
        pytest.skip("sce is not installed")
    (tmp_path / "spin.py").write_text("def f(logits, labels):\n    while True:\n        pass\n")
    parent = subprocess.Popen(
        [sce_command, "test", "spin.py:f", "--timeout", "60"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        for _ in range(100):
            children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
            if children:
                worker = int(children[0])
                break
            time.sleep(0.1)
        assert worker is not None, "no worker started"
        time.sleep(1)  # inside the user's loop
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists(f"/proc/{worker}"):
            state = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                break
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{worker}") or state == "Z", "the worker outlived sce test by 5 s"
    finally:
        if worker is not None and os.path.exists(f"/proc/{worker}"):
            os.kill(worker, signal.SIGKILL)


def test_samples_on_a_full_disk_leave_no_partial_set(sce, tmp_path, monkeypatch):
    # On a 64 KiB tmpfs the first three samples stayed, and the rerun then refused: "batch.csv and 2 more exist".
    write_beside = samples_command._write_beside
    written = []

    def disk_fills_at_the_fourth(target, data):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        written.append(target)
        return write_beside(target, data)

    monkeypatch.setattr(samples_command, "_write_beside", disk_fills_at_the_fourth)
    result = sce("samples", tmp_path / "work")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "space" in line and "; " in line, line  # the problem, then how to fix it
    left = sorted(p.name for p in (tmp_path / "work").iterdir()) if (tmp_path / "work").exists() else []
    assert left == [], left


def test_samples_over_a_folder_of_a_samples_name_say_so_with_a_fix(sce, tmp_path):
    # Printed "sce: error: DIR/batch.csv Is a directory" (status 1): the raw system words, no colon, no fix.
    (tmp_path / "batch.csv").mkdir()
    result = sce("samples", tmp_path, "--force")
    assert result.exit_code != 0
    line = one_error_line(result)
    assert "Is a directory" not in line, line
    assert "folder" in line and "; " in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.csv"]


@pytest.mark.parametrize(
    ("name", "hint"),
    [("out.json", "name the file .jsonl"), ("out.xlsx", "write .csv"), ("out.csv.gz", "pipe it through gzip")],
)
def test_an_output_name_of_a_format_sce_does_not_write_is_refused_not_filled_with_csv(sce, tmp_path, name, hint):
    table = tmp_path / "in.csv"
    table.write_text("z0,z1,label\n1,2,0\n")
    result = sce("batch", str(table), "-o", str(tmp_path / name), "--quiet")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line.startswith(f"sce: error: -o {tmp_path / name}: ") and hint in line
    assert not (tmp_path / name).exists()
    chosen = sce("batch", str(table), "-o", str(tmp_path / name), "--format", "csv", "--quiet")
    if name == "out.json":  # a name that says another format than --format's is refused, in every command
        assert chosen.exit_code == 2 and "its name says json, --format says csv" in chosen.stderr
    else:  # a name that says no format sce writes: --format decides
        assert chosen.exit_code == 0


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (["grad", "1", "2", "3", "-l", "0", "-w", "1"], "sce: error: --weight: 1 number for 3 logits; give one per class"),
        (["grad", "1", "-l", "0", "-w", "1,2"], "sce: error: --weight: 2 numbers for 1 logit; give one per class"),
        (["check", "1", "-l", "0", "--grad", "0,0"], "sce: error: --grad: 2 numbers for 1 class; give one per class"),
    ],
)
def test_counts_of_one_are_worded_in_the_singular(sce, arguments, line):
    assert one_error_line(sce(*arguments)) == line


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (["grad", "1", "2", "-l", "0", "-l", "1"], "sce grad: error: -l 0 and -l 1: one option given two values"),
        (["grad", "1", "2", "-l0", "-T", "2", "--temperature=3"], "sce grad: error: -T 2 and --temperature 3: one"),
        (["batch", "in.csv", "-o", "a.csv", "-o", "b.csv"], "sce batch: error: -o a.csv and -o b.csv: one option"),
        (["check", "1", "2", "-l", "0", "--grad", "0,0", "--grad=1,1"], "sce check: error: --grad 0,0 and --grad 1,1"),
    ],
)
def test_an_option_given_two_values_is_refused_not_the_last_kept(sce, arguments, line):
    result = sce(*arguments)
    assert result.exit_code == 2
    assert one_error_line(result).startswith(line)


def test_an_option_repeated_with_the_same_value_is_harmless(sce):
    assert sce("grad", "1", "2", "-l", "0", "--label", "0").exit_code == 0
    # After "--" everything is an argument: no option is read there.
    assert "'-l' is not a number" in sce("grad", "-1", "-2", "-l", "1", "--", "-l").stderr


@pytest.mark.parametrize(
    "arguments",
    [["grad", "1", "2", "-l", "0"], ["batch", "in.csv"], ["check", "1", "2", "-l", "0", "--grad", "0,0"],
     ["check", "--arrays", "dump.npz"], ["test", "homework.py:f"]],
)
def test_a_smoothing_style_without_smoothing_is_refused_by_every_command(sce, arguments):
    result = sce(*arguments, "--smoothing-style", "off-target")
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "sce: error: --smoothing-style changes only how label smoothing spreads ε: give --smoothing too "
        "(e.g. --smoothing 0.1)"
    )


def test_an_ignore_index_beyond_int64_is_refused(sce):
    result = sce("grad", "1", "2", "-l", "0", "--ignore-index", str(2**63))
    assert result.exit_code == 2
    assert one_error_line(result) == (
        f"sce: error: --ignore-index: {2**63} is beyond int64; labels are int64: use an index such as -100 (the default)"
    )
    assert sce("grad", "1", "2", "-l", "0", "--ignore-index", str(-(2**63))).exit_code == 0


def test_version_asked_of_a_command_points_at_sce_version(sce):
    result = sce("grad", "--version")
    assert (result.exit_code, one_error_line(result)) == (2, "sce: error: --version belongs to sce itself: sce --version")


@pytest.mark.parametrize(
    ("function", "hint"),
    [
        ("implementation_row.py:row_loss_and_gradient", "17 of 17 pass with --convention row"),
        ("implementation_targets.py:soft_cross_entropy", "15 of 15 pass with --targets"),
    ],
)
def test_a_shipped_sample_graded_without_its_flag_is_pointed_at_the_flag(sce, tmp_path, monkeypatch, function, hint):
    assert sce("samples", str(tmp_path)).exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = sce("test", function)
    assert result.exit_code == 1
    assert f"hint: no case passes as configured, but {hint}" in " ".join(result.stdout.split())


def test_a_wrong_function_gets_no_configuration_hint(sce, tmp_path, monkeypatch):
    (tmp_path / "flipped.py").write_text(
        "import numpy as np\n"
        "def f(z, y):\n"
        "    p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)\n"
        "    g = p.copy(); g[np.arange(len(y)), y] -= 1\n"
        "    return -np.log(p[np.arange(len(y)), y]).mean(), -g / len(y)\n"
    )
    monkeypatch.chdir(tmp_path)
    result = sce("test", "flipped.py:f")
    assert result.exit_code == 1 and "hint:" not in result.stdout


def test_samples_interrupted_while_renaming_still_get_the_whole_set(sce, tmp_path, monkeypatch):
    # A SIGTERM between two renames once left a partial set that a second run refused.
    import signal

    renamed = []

    def signalled_at_the_first_rename(source, target):
        if not renamed:
            os.kill(os.getpid(), signal.SIGTERM)
        renamed.append(target)
        os.rename(source, target)

    monkeypatch.setattr(samples_command.os, "replace", signalled_at_the_first_rename)
    result = sce("samples", tmp_path / "work")
    assert result.exit_code == 0
    assert one_error_line(result) == "sce: the set of samples is complete; SIGTERM arrived after it was in place"
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == sorted(samples_command.SAMPLES)


def test_samples_interrupted_while_writing_leave_none(sce, tmp_path, monkeypatch):
    import signal

    write_beside = samples_command._write_beside
    written = []

    def signalled_at_the_third(target, data):
        if len(written) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        written.append(target)
        return write_beside(target, data)

    monkeypatch.setattr(samples_command, "_write_beside", signalled_at_the_third)
    result = sce("samples", tmp_path / "work")
    assert result.exit_code == 128 + signal.SIGTERM
    assert one_error_line(result) == "sce: interrupted (SIGTERM)"
    assert list((tmp_path / "work").iterdir()) == []
