"""The `sce` fixture every command-line test uses: the width it runs at, and stdout apart from stderr."""

from __future__ import annotations

import pytest


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_the_terminal_is_100_columns_unless_told(sce):
    assert widest(sce("--help").stdout) == 100
    assert widest(sce("--help", env={"COLUMNS": "70"}).stdout) == 70


@pytest.mark.columns(60)
def test_a_columns_mark_sets_the_width(sce):
    assert widest(sce("--help").stdout) == 60


def test_arguments_are_given_as_their_text_and_the_streams_apart(sce):
    done = sce("grad", 2, 3, 4, "-l", 1, "-f", "csv")
    assert (done.exit_code, done.stderr) == (0, "")
    assert "1.4076059644443" in done.stdout  # L = log(e^2 + e^3 + e^4) - 3, by hand: 1.40760596444438
    refused = sce("grad", "2", "x", "-l", "0")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1 and "x" in refused.stderr
