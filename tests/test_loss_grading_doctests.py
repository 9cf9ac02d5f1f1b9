"""The Examples in the docstrings of the loss's arithmetic and of the dump grader run, and give
what they show (their values checked by hand, with mpmath, or against the textbook example's
0.0900, 0.2447, 0.6652)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "sce.loss.exact_arithmetic",
    "sce.loss.log_softmax",
    "sce.loss.softcap",
    "sce.grading.dump.histogram",
    "sce.grading.dump.block_errors",
    "sce.grading.dump.verdict",
    "sce.grading.dump.verdict_pass",
    "sce.grading.dump.check",
    "sce.grading.catalogue",
    "sce.grading.mistakes",
    "sce.loss.linear_cross_entropy",
    "sce.grading.linear.skipped",
    "sce.grading.linear.shards",
    "sce.testing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_give_what_they_show(name):
    module = importlib.import_module(name)
    found = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert found.attempted > 0, f"{name} has no examples"
    assert found.failed == 0
