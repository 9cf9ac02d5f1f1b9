"""A stopping signal once the run's files are in place: the run has succeeded.

Each test runs the installed `sce` in a process of its own, with one function
wrapped (in that process only) so that the signal lands at an exact moment:
just before the rename, during it, or while the summary is shown after it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SAMPLE = "z0,z1,z2,label\n2,3,4,1\n1,1,1,0\n"

#: In the child: wrap ``module.name`` so that the process signals itself right after
#: (or before) the original runs, then run sce as its console script does.
CHILD = textwrap.dedent(
    """
    import importlib, os, signal, sys
    module_name, name, signum, when = sys.argv[1:5]
    module = importlib.import_module(module_name)
    owner, _, attribute = name.rpartition(".")
    holder = getattr(module, owner) if owner else module
    original = getattr(holder, attribute)

    def wrapped(*args, **kwargs):
        if when == "before":
            os.kill(os.getpid(), int(signum))
        result = original(*args, **kwargs)
        if when == "after":
            os.kill(os.getpid(), int(signum))
        return result

    setattr(holder, attribute, wrapped)
    sys.argv = ["sce", *sys.argv[5:]]
    from sce.cli import main
    main()
    """
)


def run_signalled(
    where: str, signum: int, when: str, *args: object, cwd: Path
) -> subprocess.CompletedProcess[str]:
    module, _, name = where.partition(":")
    return subprocess.run(
        [sys.executable, "-c", CHILD, module, name, str(int(signum)), when, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1"},
        timeout=120,
    )


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "in.csv").write_text(SAMPLE)
    (tmp_path / "out.csv").write_text("precious\n")
    (tmp_path / "summary.json").write_text("old summary\n")
    return tmp_path


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_during_the_rename_no_longer_reports_an_interrupted_run(folder, signum):
    # Regression: a signal that came as the output was put in place ended sce with
    # "interrupted" and 128 + n, although the new output was whole and in place.
    done = run_signalled(
        "sce.io.writers.atomic:put_in_place", signum, "after",
        "batch", "in.csv", "-o", "out.csv", "--summary-json", "summary.json", "-q", cwd=folder,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        0,
        f"sce: the output is complete; {signum.name} arrived after it was in place\n",
    )
    assert done.stdout == ""
    assert (folder / "out.csv").read_text().startswith("z0,z1,z2,label,p_z0")
    assert json.loads((folder / "summary.json").read_text())["rows"] == 2
    assert sorted(p.name for p in folder.iterdir()) == ["in.csv", "out.csv", "summary.json"]


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_while_the_summary_is_shown_after_the_rename_exits_0(folder, signum):
    # The run's own handlers are gone by then: the process-wide ones must know it succeeded.
    done = run_signalled(
        "sce.render.table:batch_summary_grid", signum, "before",
        "batch", "in.csv", "-o", "out.csv", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0
    assert done.stderr.startswith("sce batch")
    assert done.stderr.endswith(f"sce: the output is complete; {signum.name} arrived after it was in place\n")
    assert (folder / "out.csv").read_text().startswith("z0,z1,z2,label,p_z0")


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_just_before_the_rename_keeps_the_old_output_and_summary(folder, signum):
    done = run_signalled(
        "sce.io.writers.atomic:OutputTarget.closed", signum, "after",
        "batch", "in.csv", "-o", "out.csv", "--summary-json", "summary.json", "-q", cwd=folder,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (128 + signum, f"sce: interrupted ({signum.name})\n")
    assert (folder / "out.csv").read_text() == "precious\n"
    assert (folder / "summary.json").read_text() == "old summary\n"
    assert sorted(p.name for p in folder.iterdir()) == ["in.csv", "out.csv", "summary.json"]


def test_a_signal_as_check_csv_puts_its_summary_in_place_keeps_the_verdict_and_status(folder):
    scored = subprocess.run(
        [sys.executable, "-m", "sce", "batch", "in.csv", "-o", "scored.csv", "-q"], cwd=folder, check=True
    )
    assert scored.returncode == 0
    done = run_signalled(
        "sce.io.writers.atomic:put_in_place", signal.SIGTERM, "after",
        "check", "--csv", "scored.csv", "--grad-cols", "grad_*", "--summary-json", "summary.json", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0
    assert "verdict: correct" in done.stdout
    assert done.stderr == "sce: the summary is complete; SIGTERM arrived after it was in place\n"
    assert json.loads((folder / "summary.json").read_text())["all_correct"] is True


def test_the_output_through_a_hard_link_gets_a_new_file_and_the_other_name_keeps_the_old(folder):
    os.link(folder / "out.csv", folder / "kept.csv")
    done = subprocess.run(
        [sys.executable, "-m", "sce", "batch", "in.csv", "-o", "out.csv", "-q"], cwd=folder, capture_output=True
    )
    assert done.returncode == 0
    assert (folder / "kept.csv").read_text() == "precious\n"
    assert (folder / "out.csv").read_text().startswith("z0,z1,z2,label,p_z0")
    assert (folder / "out.csv").stat().st_ino != (folder / "kept.csv").stat().st_ino
