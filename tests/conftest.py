"""Test-wide settings, and `sce`: the one way tests run the command line in-process."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import pytest
from hypothesis import settings
from typer.testing import CliRunner, Result

from sce.cli import app

# CI runs a fixed set of examples, so that a green main stays green; a
# developer's run explores new ones (and `HYPOTHESIS_PROFILE=ci` replays CI's).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

# The width of the terminal the command believes it writes to; pinned, so that a
# table's layout does not follow the width of the developer's own terminal.
DEFAULT_COLUMNS = 100

SceRunner = Callable[..., Result]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "columns(n): the terminal width the `sce` fixture runs the command line at (default 100)"
    )
    config.addinivalue_line(
        "markers", "large: minutes of work on inputs past 2³¹ entries; runs under CI or with SCE_LARGE=1"
    )
    config.addinivalue_line(
        "markers",
        "fresh_venv: builds sce's wheel and installs it in a new virtual environment from PyPI (about a minute); "
        "CI runs it, and fails it where it would skip",
    )


#: What a test may skip for under CI too: frameworks sce uses when present but never installs.
SKIPPABLE_UNDER_CI = ("torch", "jax")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Under CI a skip for a missing optional part is a failure: CI installs every part the tests need."""
    report = yield
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
        if not any(name in reason for name in SKIPPABLE_UNDER_CI):
            report.outcome = "failed"
            report.longrepr = f"skipped under CI, where every optional part is installed: {reason}"
    return report


@pytest.fixture
def sce(request: pytest.FixtureRequest) -> SceRunner:
    """Run `sce ARGS...` in-process, as a user would type it: `sce("grad", "2", "3", "4", "-l", "1")`.

    Returns click's result: `exit_code`, `stdout`, `stderr` (and `output`, both interleaved). Each argument is
    passed as its `str`, so paths and numbers can be given as they are; `input` is what stdin holds; `env` adds
    to the environment. The terminal is 100 columns wide, or `n` in a module or test marked
    `@pytest.mark.columns(n)` (an `env` COLUMNS overrides both).
    """
    marker = request.node.get_closest_marker("columns")
    columns = marker.args[0] if marker else DEFAULT_COLUMNS

    def run(*args: object, input: str | bytes | None = None, env: Mapping[str, str] | None = None) -> Result:
        environment = {"COLUMNS": str(columns), **(env or {})}
        return CliRunner().invoke(app, [str(arg) for arg in args], input=input, env=environment)

    return run
