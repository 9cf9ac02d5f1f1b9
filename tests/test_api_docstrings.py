"""The public API's docstrings: numpy-style sections, and Examples that run as written.

The examples' numbers come from outside the code: z = (2, 3, 4), label 1 gives p = (0.0900, 0.2447,
0.6652) and L = 1.4076 by hand (and mpmath at 50 digits: 1.40760596444438); log(1 + e^-40) is
4.248354255291589e-18 by mpmath.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io

import pytest

import sce
import sce.testing

MODULES = ["sce", "sce.options", "sce.loss.cross_entropy", "sce.loss.result", "sce.testing"]

# What each public name's docstring holds, at least.
SECTIONS = {
    sce.softmax_cross_entropy: ("Parameters", "Returns", "Raises", "Notes", "References", "See Also", "Examples"),
    sce.LossOptions: ("Parameters", "Notes", "See Also", "Examples"),
    sce.SoftmaxCrossEntropyResult: ("See Also", "Examples"),
    sce.InvalidInput: ("Parameters", "Examples"),
    sce.LossWarning: ("Examples",),
    sce.testing.check_implementation: ("Parameters", "Returns", "Raises", "See Also", "Examples"),
    sce.testing.assert_implementation_correct: ("Parameters", "Returns", "Raises", "Examples"),
    sce.testing.assert_cross_entropy_close: ("Parameters", "Raises", "See Also", "Examples"),
    sce.testing.loss_options: ("Parameters", "Returns", "Raises", "Examples"),
}


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_the_docstrings_run_as_written(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    said = io.StringIO()
    for test in finder.find(module, name):
        runner.run(test, out=said.write)
    results = runner.summarize(verbose=False)
    assert results.attempted > 0, f"{name} has no examples"
    assert results.failed == 0, said.getvalue()


@pytest.mark.parametrize("public", SECTIONS, ids=lambda public: public.__qualname__)
def test_public_names_have_numpy_style_sections(public):
    lines = [line.strip() for line in inspect.getdoc(public).splitlines()]
    underlined = {title for title, rule in zip(lines, lines[1:]) if rule and set(rule) == {"-"} and len(rule) == len(title)}
    assert set(SECTIONS[public]) <= underlined, f"missing: {sorted(set(SECTIONS[public]) - underlined)}"


def test_import_sce_exposes_the_api_it_lists():
    assert set(sce.__all__) == {"softmax_cross_entropy", "LossOptions", "SoftmaxCrossEntropyResult", "InvalidInput",
                                "LossWarning"}
    assert all(getattr(sce, name) is not None for name in sce.__all__)
    assert set(sce.__all__) <= set(dir(sce))
    with pytest.raises(AttributeError, match="no attribute 'loss_options'"):
        sce.loss_options  # noqa: B018
