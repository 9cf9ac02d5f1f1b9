"""The former package name, sce_cli, still imports for one release, and says it is now sce."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_import_sce_cli_warns_and_gives_the_sce_api():
    sys.modules.pop("sce_cli", None)
    with pytest.warns(DeprecationWarning, match="now called sce"):
        import sce_cli
    import sce

    assert sce_cli.softmax_cross_entropy is sce.softmax_cross_entropy
    assert sce_cli.__version__ == sce.__version__
    assert sce_cli.softmax_cross_entropy([2, 3, 4], 1).loss == sce.softmax_cross_entropy([2, 3, 4], 1).loss


def test_python_dash_m_sce_cli_runs_the_command_and_warns():
    done = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-m", "sce_cli", "grad", "2", "3", "4", "-l", "1"],
        capture_output=True,
        text=True,
        env={"NO_COLOR": "1", "COLUMNS": "100", "PATH": ""},
    )
    assert done.returncode == 0
    assert "loss L = 1.4076" in done.stdout
    assert "now called sce" in done.stderr
