"""The installed `sce` command, run as a user runs it: a separate process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCE = shutil.which("sce", path=str(Path(sys.executable).parent)) or shutil.which("sce")
pytestmark = pytest.mark.skipif(SCE is None, reason="sce is not installed (pip install .)")
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}


def test_installed_sce_computes_the_seed_example():
    done = subprocess.run(
        [SCE, "grad", "2", "3", "4", "--label", "1", "--format", "json"],
        capture_output=True, text=True, env=ENV, check=False,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert round(document["loss"], 6) == 1.407606
    assert round(document["gradient"][1], 6) == -0.755272


def test_python_dash_m_works_too():
    done = subprocess.run(
        [sys.executable, "-m", "sce", "grad", "-1", "2", "-l", "0", "-f", "csv"],
        capture_output=True, text=True, env=ENV, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "class,logit,target,probability,gradient,loss,reduction"


def test_piping_into_head_ends_quietly():
    done = subprocess.run(
        f"'{SCE}' grad $(seq 1 300) --label 5 | head -1",
        shell=True, capture_output=True, text=True, env=ENV, check=False,
    )
    assert done.stdout.count("\n") == 1
    assert done.stderr == ""


def test_an_error_is_one_line_without_traceback():
    done = subprocess.run(
        [SCE, "grad", "2", "3", "4", "--label", "7"], capture_output=True, text=True, env=ENV, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_the_installed_sce_loads_its_compiled_loop(tmp_path):
    """What a user runs (imported from outside the checkout) grades with the compiled loop where
    pip could build it; skipped where it could not (tests/test_check_arrays_compiled.py fails then)."""
    from sce.grading.dump import ulp_kernel

    if ulp_kernel.library() is None:
        pytest.skip("the compiled loop was not built")
    code = "from sce.grading.dump import ulp_kernel; print(ulp_kernel.library() is not None)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "True\n", "")
