"""The installed package holds what it mentions: its types (py.typed), its samples, its licence."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata, resources
from pathlib import Path

import pytest

import sce

ROOT = Path(__file__).resolve().parents[1]
USER_FILE = """\
import sce
from sce.testing import assert_cross_entropy_close

result = sce.softmax_cross_entropy([2.0, 3.0, 4.0], 1)
reveal_type(result)
wrong: int = result
"""


def test_the_package_marks_itself_typed():
    assert (resources.files("sce") / "py.typed").is_file()


def test_a_users_mypy_finds_the_types(tmp_path):
    """mypy reads the installed package (py.typed); from a checkout or an editable install, its sources."""
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI"):
            pytest.fail("mypy is needed (pip install '.[lint]')")
        pytest.skip("mypy is not installed (pip install '.[lint]')")
    (tmp_path / "user.py").write_text(USER_FILE)
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    if Path(sce.__file__).resolve().is_relative_to(ROOT):  # a checkout: mypy cannot follow an editable install
        env["MYPYPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--python-executable", sys.executable, "user.py"],
        cwd=tmp_path, capture_output=True, text=True, env=env, check=False,
    )
    assert "import-not-found" not in done.stdout and "import-untyped" not in done.stdout, done.stdout
    assert re.search(r'Revealed type is "sce\.[\w.]*SoftmaxCrossEntropyResult"', done.stdout), done.stdout
    assert 'has type "SoftmaxCrossEntropyResult", variable has type "int"' in done.stdout, done.stdout


def test_the_licence_is_an_spdx_expression_with_its_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # SPDX replaces the classifier


def test_the_installed_metadata_says_mit():
    assert metadata.metadata("sce")["License-Expression"] == "MIT"
