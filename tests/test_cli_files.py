"""Files, links, pipes, encodings and full disks through the commands: never lose, misplace or misreport
data. Each case pins the exact line on stderr and the exit status."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest

from sce.io.csv import records
from sce.io.writers import atomic as output
from sce.io.writers import text as text_writer
from sce.io.writers.text import write_frame

#: By its full path: the tests run from any folder.
SAMPLE_BATCH = Path(__file__).resolve().parents[1] / "sce" / "samples" / "batch.csv"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# --- every input row is accounted for ------------------------------------------------------------


def test_a_row_of_empty_fields_is_an_error_like_a_partly_empty_one(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,1\n,,\n3,4,0\n")
    result = sce("batch", str(path), "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: line 3, column z0: the value is empty; every row needs a value here\n",
    )
    partly = sce("batch", str(write(tmp_path, "partly.csv", "z0,z1,label\n1,2,1\n,,1\n")), "-q")
    assert (partly.exit_code, partly.stderr) == (1, result.stderr)


def test_errors_after_blank_lines_name_the_right_line(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n\n\n1,2,1\n\n3,4,0\n\n5,x,0\n")
    result = sce("batch", str(path), "-q")
    assert result.stderr == (
        "sce: error: line 8, column z1: 'x' is not a number; "
        "if z1 is not a logit column, name the logit columns with --logit-cols\n"
    )


def test_check_csv_names_the_line_after_an_empty_row(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label,grad_z0,grad_z1\n1,2,1,0.27,-0.27\n,,,,\n5,6,0,x,1\n")
    result = sce("check", "--csv", str(path), "--grad-cols", "grad_*")
    assert (result.exit_code, result.stderr) == (
        2,
        "sce: error: line 3, column z0: the value is empty; every row needs a value here\n",
    )


@pytest.mark.parametrize("block_bytes", [9, 16, 23])
def test_blank_lines_at_a_block_boundary_are_skipped(tmp_path, monkeypatch, block_bytes, sce):
    # A block that began with a blank line was read by polars as one column.
    monkeypatch.setattr(records, "BLOCK_BYTES", block_bytes)
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,1\n\n\n3,4,0\n\n5,6,1\n")
    result = sce("batch", str(path), "-q")
    assert result.exit_code == 0, result.stderr
    assert [line.split(",")[:3] for line in result.stdout.splitlines()[1:]] == [
        ["1", "2", "1"],
        ["3", "4", "0"],
        ["5", "6", "1"],
    ]


# --- nothing becomes null -----------------------------------------------------------------------------


def test_jsonl_writes_non_finite_numbers_as_strings(tmp_path, sce):
    path = write(tmp_path, "in.csv", 'id,z0,z1,label\n"a ""q"",é",-inf,2,1\n,1,2,1\nb,-inf,2,0\n')
    result = sce("batch", str(path), "--logit-cols", "z0,z1", "-f", "jsonl", "-q")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["id"] == 'a "q",é' and rows[0]["z0"] == "-inf" and rows[0]["z1"] == 2.0
    assert rows[1]["id"] is None and rows[1]["z0"] == 1.0
    assert rows[2]["loss"] == "inf" and rows[2]["grad_z0"] == -1.0 and rows[2]["p_z0"] == 0.0
    assert '"loss":"inf"' in result.stdout.splitlines()[2]


def test_csv_writes_nan_as_sce_grad_does():
    frame = pl.DataFrame({"id": ["a", "b", "c"], "loss": [float("nan"), float("inf"), 0.1]})
    stream = io.BytesIO()
    write_frame(frame, stream, "csv", header=True)
    assert stream.getvalue() == b"id,loss\na,nan\nb,inf\nc,0.1\n"
    stream = io.BytesIO()
    write_frame(frame, stream, "jsonl", header=True)
    assert stream.getvalue() == b'{"id":"a","loss":"nan"}\n{"id":"b","loss":"inf"}\n{"id":"c","loss":0.1}\n'


def test_check_csv_reads_back_the_non_finite_spellings(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label,loss\n-inf,2,0,inf\n1,2,1,0.3133\n")
    result = sce("check", "--csv", str(path), "--loss-col", "loss", "--logit-cols", "z0,z1")
    assert result.exit_code == 0, result.stdout + result.stderr


# --- files: links, pipes, encodings, quotes, full disks ------------------------------------------


def test_output_through_a_symbolic_link_writes_its_target(tmp_path, sce):
    source = write(tmp_path, "in.csv", "z0,z1,label\n1,2,1\n")
    (tmp_path / "elsewhere").mkdir()
    target = write(tmp_path / "elsewhere", "t.csv", "old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    result = sce("batch", str(source), "-o", str(link), "-q")
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("z0,z1,label,p_z0,")
    assert sorted(p.name for p in target.parent.iterdir()) == ["t.csv"]


def test_process_substitution_with_mean_is_spooled(tmp_path):
    source = write(tmp_path, "in.csv", "z0,z1,label\n1,2,1\n3,4,0\n")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m sce batch <(cat "{source}") --reduction mean -q'],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(temporary)},
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert [line.split(",")[7] for line in done.stdout.splitlines()[1:]] == [
        repr(-0.2689414213699951 / 2),
        repr(0.7310585786300049 / 2),
    ]
    assert list(temporary.iterdir()) == []


def test_utf16_encoding_on_utf8_input_is_one_line(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,1\n")
    result = sce("batch", str(path), "--encoding", "utf-16", "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: line 1: the input cannot be read as utf-16 (UTF-16 stream does not start with BOM); "
        "give the file's encoding with --encoding, for example --encoding utf-8\n",
    )
    result = sce("batch", str(path), "--encoding", "rot13", "-q")
    assert (result.exit_code, result.stderr) == (
        2,
        "sce: error: --encoding: 'rot13' is not a text encoding; try utf-8, latin-1 or cp1252\n",
    )


def test_a_label_beyond_int64_is_one_line(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,99999999999999999999999\n")
    result = sce("batch", str(path), "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: line 2, column label: '99999999999999999999999' is too large for a class index "
        "(beyond a 64-bit integer); labels are 0 to K-1\n",
    )


def test_empty_and_folder_output_paths(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1,2,1\n")
    result = sce("batch", str(path), "-o", "", "-q")
    assert (result.exit_code, result.stderr) == (
        2,
        "sce: error: -o: the output file name is empty; name a file, or give - for stdout\n",
    )
    result = sce("batch", str(path), "-o", str(tmp_path), "-q")
    assert (result.exit_code, result.stderr) == (
        2,
        f"sce: error: -o: {tmp_path} is a folder; name a file in it, e.g. {tmp_path / 'out.csv'}\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_stray_and_unclosed_quotes_are_told_apart(tmp_path, sce):
    stray = write(tmp_path, "stray.csv", 'id,z0,z1,label\n12" screen,1,2,1\n')
    result = sce("batch", str(stray), "--logit-cols", "z0,z1", "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: line 2, column id: a stray quote in '12\" screen'; put the field in quotes and double "
        'the quote inside ("12"" screen"), or remove the quote\n',
    )
    unclosed = write(tmp_path, "unclosed.csv", 'id,z0,z1,label\n"a\nb",1,2,1\n"12 screen,1,2,1\nx,1,2,0\n')
    result = sce("batch", str(unclosed), "--logit-cols", "z0,z1", "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: line 4: a quoted field is never closed (it runs to the end of the input); "
        'close the quote, or write a quote inside a field as two ("")\n',
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_disk_full_on_a_device_names_the_output(sce):
    result = sce("batch", str(SAMPLE_BATCH), "-o", "/dev/full", "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: -o: writing the output /dev/full failed: no space left on device; "
        "free some space or write the output elsewhere\n",
    )


def test_disk_full_names_the_output_and_keeps_the_old_one(tmp_path, monkeypatch, sce):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(text_writer, "write_frame", full)
    out = write(tmp_path, "out.csv", "precious\n")
    result = sce("batch", str(SAMPLE_BATCH), "-o", str(out), "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        f"sce: error: -o: writing the output {out} failed: no space left on device; {out} is unchanged; "
        "free some space or write the output elsewhere\n",
    )
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_disk_full_in_the_spool_names_the_spool(tmp_path, monkeypatch, sce):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(output.shutil, "copyfileobj", full)
    result = sce("batch", "-", "--reduction", "mean", "-q", input="z0,z1,label\n1,2,1\n")
    assert result.exit_code == 1
    assert re.fullmatch(
        rf"sce: error: copying stdin to the spool file {re.escape(str(tmp_path))}/sce-spool-\w+\.csv "
        r"\(kept to read the input twice\) failed: no space left on device; "
        r"set TMPDIR to a folder with room\n",
        result.stderr,
    ), result.stderr
    assert list(tmp_path.iterdir()) == []


# --- one language across commands ----------------------------------------------------------------


def test_files_read_numbers_as_the_command_line_does(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1,label\n1_000,\u22122,1\n\u0663, 4 ,\u0660\n")
    result = sce("batch", str(path), "-q")
    assert result.exit_code == 0, result.stderr
    rows = [line.split(",") for line in result.stdout.splitlines()[1:]]
    typed = sce("grad", "1_000", "\u22122", "-l", "1", "-f", "json")
    assert float(rows[0][5]) == json.loads(typed.stdout)["loss"] == 1002.0
    assert rows[1][:3] == ["\u0663", " 4 ", "\u0660"]  # the input as written
    assert float(rows[1][5]) == 1.3132616875182228  # logits 3, 4 and label 0
    bad = sce("batch", str(write(tmp_path, "bad.csv", "z0,z1,label\n1,0x1,1\n")), "-q")
    assert bad.stderr == (
        "sce: error: line 2, column z1: '0x1' is not a number; "
        "if z1 is not a logit column, name the logit columns with --logit-cols\n"
    )


def test_a_closed_pipe_before_writing_exits_141(tmp_path):
    for output_format in ("table", "json", "csv", "markdown"):
        read, written = os.pipe()
        os.close(read)
        done = subprocess.run(
            [sys.executable, "-m", "sce", "grad", "2", "3", "4", "-l", "1", "-f", output_format],
            stdout=written,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        os.close(written)
        assert (output_format, done.returncode, done.stderr) == (output_format, 141, "")


def test_check_csv_that_cannot_be_read_exits_2_not_1(tmp_path, sce):
    missing = sce("check", "--csv", str(tmp_path / "nope.csv"), "--grad-cols", "grad_*")
    assert missing.exit_code == 2
    # sce check reads the file from --csv: the message names that, not sce batch's INPUT.
    assert missing.stderr.startswith(f"sce: error: --csv: cannot read {tmp_path / 'nope.csv'}: ")
    wrong = write(tmp_path, "wrong.csv", "z0,z1,label,grad_z0,grad_z1\n1,2,1,0.5,-0.5\n")
    assert sce("check", "--csv", str(wrong), "--grad-cols", "grad_*").exit_code == 1


def test_a_missing_label_column_exits_alike_named_or_not(tmp_path, sce):
    path = write(tmp_path, "in.csv", "z0,z1\n1,2\n")
    default = sce("batch", str(path), "-q")
    named = sce("batch", str(path), "--label-col", "y", "-q")
    assert (default.exit_code, named.exit_code) == (1, 1)
    assert named.stderr == "sce: error: --label-col: there is no column 'y'; the columns are z0, z1\n"


def test_check_json_entries_have_one_shape(tmp_path, sce):
    typed = json.loads(sce("check", "2", "3", "4", "-l", "1", "--grad", "0.09,-0.7,0.665", "-f", "json").stdout)
    path = write(tmp_path, "in.csv", "z0,z1,z2,label,g0,g1,g2\n2,3,4,1,0.09,-0.7,0.665\n")
    filed = json.loads(
        sce("check", "--csv", str(path), "--grad-cols", "g0,g1,g2", "--logit-cols", "z*", "-f", "json").stdout
    )
    entry = typed["quantities"][0]["entries"][1]
    cell = filed["worst"][0]
    shared = ("expected", "given", "difference", "tolerance", "correct")
    assert {key: entry[key] for key in shared} == {key: cell[key] for key in shared}
    assert cell["difference"] > 0 and cell["given"] == -0.7 and cell["written"] == "-0.7"


# --- tables never hide digits -----------------------------------------------------------------------


def test_digits_12_into_a_pipe_are_not_cut():
    done = subprocess.run(
        [sys.executable, "-m", "sce", "grad", "2", "3", "4", "-l", "1", "-d", "12"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
    )
    assert "0.090030573170" in done.stdout and "…" not in done.stdout


def test_columns_40_cuts_no_number(sce):
    result = sce("grad", "2", "3", "4", "-l", "1", env={"COLUMNS": "40"})
    assert "…" not in result.stdout and "0.090031" in result.stdout and "-0.75527" in result.stdout


@pytest.mark.parametrize(
    "options",
    [["-f", "csv"], ["-f", "json"], ["-f", "markdown"], ["-f", "table"], ["--steps"], ["--steps", "-f", "json"]],
    ids=" ".join,
)
def test_a_reader_that_leaves_mid_output_gives_141_whatever_the_format(tmp_path, options):
    """Regression: `sce grad … -f csv | head -c 100` exited 0 (the rest of a
    large write was dropped unnoticed) and `--steps | head -1` exited 1 with
    no message (rich's own broken-pipe exit)."""
    import numpy as np

    logits = tmp_path / "logits.npy"
    np.save(logits, np.random.default_rng(0).normal(size=100_000))
    writer = subprocess.Popen(
        [sys.executable, "-m", "sce", "grad", "--logits-file", str(logits), "-l", "5", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader = subprocess.run(["head", "-c", "100"], stdin=writer.stdout, capture_output=True, timeout=120)
    writer.stdout.close()
    stderr = writer.stderr.read().decode()
    writer.wait(timeout=120)
    assert len(reader.stdout) == 100
    assert (writer.returncode, stderr) == (141, "")


def test_whole_writes_finish_what_a_short_buffered_write_leaves():
    """Python's buffered writer may return a short count for one large write;
    sys.stdout.write ignores it. WholeWrites writes the rest."""
    from sce.cli.stdout import WholeWrites

    class ShortBuffer(io.BytesIO):
        def write(self, data) -> int:
            return super().write(bytes(data[:7]))

    buffer = ShortBuffer()
    stream = io.TextIOWrapper(buffer, encoding="utf-8")
    text = "∂L/∂z = p − y\n" * 50
    assert WholeWrites(stream).write(text) == len(text)
    stream.flush()
    assert buffer.getvalue().decode("utf-8") == text


CARRIAGE_RETURN = (
    "a carriage return (\\r) alone ends a line; sce reads lines that end with \\n or \\r\\n: "
    "convert the line ends, for example with tr '\\r' '\\n' < IN > OUT\n"
)


@pytest.mark.parametrize(
    "text, line",
    [
        ("z0,z1,label\r1,2,0\r3,4,1\r", 1),  # old Mac line ends throughout
        ("z0,z1,label\n1,2,0\r3,4,1\n5,6,1\n", 2),  # one stray
        ("z0,z1,label\r\n1,2,0\r\n3,4\r1\r\n", 3),  # inside a CRLF file
        (",".join(f"z{k}" for k in range(1200)) + ",label\r" + ",".join(["0.5"] * 1200) + ",1\r", 1),  # wide rows
    ],
)
def test_bare_carriage_returns_are_named_with_their_line_not_an_internal_error(tmp_path, text, line, sce):
    """Regression: the csv module's "new-line character seen in unquoted field"
    reached the user as an internal error, exit 70."""
    path = write(tmp_path, "cr.csv", text)
    batch = sce("batch", str(path), "-q")
    assert (batch.exit_code, batch.stderr) == (1, f"sce: error: line {line}: {CARRIAGE_RETURN}")
    graded_text = text.replace(",label", ",label,grad_z0,grad_z1", 1).replace(",0\r", ",0,-0.5,0.5\r")
    graded = sce("check", "--csv", str(write(tmp_path, "graded.csv", graded_text)), "--grad-cols", "grad_*")
    assert (graded.exit_code, graded.stderr) == (2, f"sce: error: line {line}: {CARRIAGE_RETURN}")


def fifo_with(tmp_path: Path, data: bytes) -> Path:
    """A FIFO that gives ``data`` to its first reader, fed by a thread."""
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as out:
            out.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return fifo


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("kind", ["text", "npy"])
def test_logits_file_from_a_fifo_is_read_once_not_waited_on(tmp_path, kind):
    """Regression: the file was opened once to sniff its first bytes and again
    to read it; a FIFO's second open waited forever for a writer (and <(…)
    said it held no numbers)."""
    import numpy as np

    if kind == "text":
        data = b"2 3 4\n"
    else:
        buffer = io.BytesIO()
        np.save(buffer, np.array([2.0, 3.0, 4.0]))
        data = buffer.getvalue()
    done = subprocess.run(
        [sys.executable, "-m", "sce", "grad", "--logits-file", str(fifo_with(tmp_path, data)), "-l", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # L = log(e^2 + e^3 + e^4) - 3, by hand
    assert (done.returncode, done.stdout.splitlines()[-2:]) == (0, ["loss L = 1.4076", "reduction: none"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_arrays_from_a_pipe_are_refused_with_why_not_called_damaged(tmp_path, sce):
    fifo = fifo_with(tmp_path, b"\x93NUMPY")
    labels = tmp_path / "labels.npy"
    import numpy as np

    np.save(labels, np.array([1]))
    result = sce("check", "--logits", str(fifo), "--labels", str(labels), "--grad", str(labels))
    assert (result.exit_code, result.stderr) == (
        2,
        f"sce: error: {fifo}: is a pipe or a device; arrays are read from a file: save them first\n",
    )
    with open(fifo, "rb") as drain:  # let the feeding thread finish
        drain.read()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize(
    "args, said",
    [
        (["grad", "2", "3", "4", "-l", "1"], ""),
        (["grad", "2", "3", "4", "-l", "1", "-f", "json"], ""),
        (["batch", str(SAMPLE_BATCH), "-q"], "; free some space or write the output elsewhere"),
    ],
)
def test_a_full_stdout_is_named_as_stdout(args, said):
    """Regression: `sce grad … > /dev/full` said only "No space left on device",
    and sce batch blamed a -o that was never given."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "sce", *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60
        )
    assert (done.returncode, done.stderr) == (
        1,
        f"sce: error: writing the output to stdout failed: no space left on device{said}\n",
    )


@pytest.mark.parametrize(
    "text, said",
    [
        ("z0\tz1\tlabel\n1\t2\t0\n", "'z0\\tz1\\tlabel': it looks separated by tabs, not commas; say --delimiter tab"),
        ("z0;z1;label\n1;2;0\n", "'z0;z1;label': it looks separated by semicolons, not commas; say --delimiter ';'"),
    ],
)
def test_a_file_of_another_separator_is_named_so(tmp_path, text, said, sce):
    """Regression: a tab-separated .csv was told it has no column 'label', the
    columns being 'z0<TAB>z1<TAB>label', with no word of --delimiter."""
    result = sce("batch", str(write(tmp_path, "in.csv", text)), "-q")
    assert (result.exit_code, result.stderr) == (1, f"sce: error: the file has one column, {said}\n")


def test_an_empty_archive_is_said_to_hold_no_arrays(tmp_path, sce):
    import numpy as np

    path = tmp_path / "empty.npz"
    np.savez(path)
    result = sce("grad", "--logits-file", str(path), "-l", "0")
    assert (result.exit_code, result.stderr) == (1, f"sce: error: {path}: holds no arrays; save the logits in it\n")


def test_json_lines_given_as_input_is_named_as_such(tmp_path, sce):
    """Regression: sce batch's own JSON Lines output, given to sce check --csv,
    was parsed as CSV and its JSON fragments listed as column names."""
    source = write(tmp_path, "in.csv", "z0,z1,label\n-inf,2,0\n3,4,1\n")
    jsonl = tmp_path / "out.jsonl"
    assert sce("batch", str(source), "-q", "-o", str(jsonl)).exit_code == 0
    said = (
        "sce: error: line 1: this is JSON Lines, not CSV; sce reads files of comma- or tab-separated values "
        "(write sce batch's output with -o OUT.csv to read it again)\n"
    )
    checked = sce("check", "--csv", str(jsonl), "--grad-cols", "grad_*")
    assert (checked.exit_code, checked.stderr) == (2, said)
    assert (sce("batch", str(jsonl), "-q").stderr) == said


def test_logits_file_statuses_follow_the_one_table(tmp_path, sce):
    """A file that cannot be opened is usage (2); what is in it, bad, is data (1) —
    not UTF-8 was 2 while a bad number was 1."""
    import numpy as np

    missing = sce("grad", "--logits-file", str(tmp_path / "nope.txt"), "-l", "1")
    assert missing.exit_code == 2
    not_text = sce("grad", "--logits-file", str(write(tmp_path, "bad.txt", b"\xff\xfe")), "-l", "1")
    assert (not_text.exit_code, not_text.stderr) == (
        1,
        f"sce: error: --logits-file: {tmp_path / 'bad.txt'} is not UTF-8 text (byte 1)\n",
    )
    assert sce("grad", "--logits-file", str(write(tmp_path, "word.txt", "2 x 4")), "-l", "1").exit_code == 1
    damaged = tmp_path / "damaged.npy"
    np.save(damaged, np.array([2.0, 3.0, 4.0]))
    damaged.write_bytes(damaged.read_bytes()[:-8])
    assert sce("grad", "--logits-file", str(damaged), "-l", "1").exit_code == 1


@pytest.mark.parametrize(
    "row, said",
    [
        (
            "1" + "0" * 400 + ",0,0",
            "line 2, column z0: '1000000000000000000000000000000000000000'… (401 characters) is beyond float64's "
            "range (±1.8e308); write a smaller number or inf",
        ),
        ("0,-1e400,0", "line 2, column z1: '-1e400' is beyond float64's range (±1.8e308); write a smaller number or inf"),
        (
            "x" * 5000 + ",0,0",
            "line 2, column z0: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'… (5,000 characters) is not a number; "
            "if z0 is not a logit column, name the logit columns with --logit-cols",
        ),
        ("1" * 200_000 + ",0,0", "line 2: a field of more than 131,072 characters; a cell holds a number, a label or a short text"),
    ],
    ids=["beyond float64", "-1e400 not a masked class", "a long bad cell", "beyond the csv field limit"],
)
def test_numbers_beyond_float64_and_long_cells_in_a_file(tmp_path, row, said, sce):
    """Regression: 1e400 in a file was read as an inf nobody wrote (and -1e400 as a masked
    class, silently); a 5,000-character cell was echoed whole; a field beyond the csv
    module's limit was an internal error (exit 70)."""
    result = sce("batch", str(write(tmp_path, "in.csv", f"z0,z1,label\n{row}\n")), "-q")
    assert (result.exit_code, result.stderr) == (1, f"sce: error: {said}\n")


def test_a_number_beyond_float64_in_a_wide_row(tmp_path, sce):
    names = ",".join(f"z{k}" for k in range(1200))
    text = f"{names},label\n" + ",".join(["0.5"] * 1199) + ",1e999,1\n"
    result = sce("batch", str(write(tmp_path, "wide.csv", text)), "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: line 2, column z1199: '1e999' is beyond float64's range (±1.8e308); write a smaller number or inf\n",
    )


def test_a_utf16_file_is_told_its_encoding(tmp_path, sce):
    path = write(tmp_path, "u16.csv", "z0,z1,label\n1,2,0\n".encode("utf-16"))
    result = sce("batch", str(path), "-q")
    assert (result.exit_code, result.stderr) == (
        1,
        "sce: error: line 1: the file starts with a UTF-16 byte-order mark; give --encoding utf-16\n",
    )
    assert sce("batch", str(path), "-q", "--encoding", "utf-16").stdout.startswith("z0,z1,label,p_z0")
