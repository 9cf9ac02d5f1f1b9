"""Docstrings: every Example in the package runs as written, and the public API's are numpy-style.

The public API's examples take their numbers from outside the code: z = (2, 3, 4), label 1 gives
p = (0.0900, 0.2447, 0.6652) and L = 1.4076 by hand (mpmath at 50 digits: 1.40760596444438);
log(1 + e^-40) is 4.248354255291589e-18 by mpmath.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import io
import pkgutil

import pytest

import sce
import sce.notebook
import sce.testing

# Every module of the package (`python -m sce` runs the command line when imported; compiled helpers have no
# docstrings), so that an example written anywhere is run.
MODULES = ["sce"] + [
    found.name
    for found in pkgutil.walk_packages(sce.__path__, "sce.")
    if found.name != "sce.__main__" and str(importlib.util.find_spec(found.name).origin).endswith(".py")
]
PUBLIC_MODULES = ["sce", "sce.options", "sce.loss.cross_entropy", "sce.loss.result", "sce.notebook", "sce.testing"]

# What each public name's docstring holds, at least.
SECTIONS = {
    sce.softmax_cross_entropy: ("Parameters", "Returns", "Raises", "Notes", "References", "See Also", "Examples"),
    sce.LossOptions: ("Parameters", "Notes", "See Also", "Examples"),
    sce.SoftmaxCrossEntropyResult: ("See Also", "Examples"),
    sce.InvalidInput: ("Parameters", "Examples"),
    sce.LossWarning: ("Examples",),
    sce.notebook.explain: ("Parameters", "Returns", "Raises", "See Also", "Examples"),
    sce.Derivation: ("Attributes", "See Also", "Examples"),
    sce.testing.check_implementation: ("Parameters", "Returns", "Raises", "See Also", "Examples"),
    sce.testing.assert_implementation_correct: ("Parameters", "Returns", "Raises", "Examples"),
    sce.testing.assert_cross_entropy_close: ("Parameters", "Raises", "See Also", "Examples"),
    sce.testing.check_cross_entropy: ("Parameters", "Returns", "Raises", "See Also", "Examples"),
    sce.testing.loss_options: ("Parameters", "Returns", "Raises", "Examples"),
}


def run_examples(name: str) -> tuple[doctest.TestResults, str]:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    said = io.StringIO()
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test, out=said.write)
    return runner.summarize(verbose=False), said.getvalue()


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_the_docstrings_run_as_written(name):
    results, said = run_examples(name)
    assert results.failed == 0, said


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_the_public_modules_show_examples(name):
    assert name in MODULES
    assert run_examples(name)[0].attempted > 0, f"{name} has no examples"


@pytest.mark.parametrize("public", SECTIONS, ids=lambda public: public.__qualname__)
def test_public_names_have_numpy_style_sections(public):
    lines = [line.strip() for line in inspect.getdoc(public).splitlines()]
    underlined = {title for title, rule in zip(lines, lines[1:]) if rule and set(rule) == {"-"} and len(rule) == len(title)}
    assert set(SECTIONS[public]) <= underlined, f"missing: {sorted(set(SECTIONS[public]) - underlined)}"


def test_import_sce_exposes_the_api_it_lists():
    assert set(sce.__all__) == {"softmax_cross_entropy", "explain", "LossOptions", "SoftmaxCrossEntropyResult",
                                "Derivation", "InvalidInput", "LossWarning"}
    assert all(getattr(sce, name) is not None for name in sce.__all__)
    assert set(sce.__all__) <= set(dir(sce))
    with pytest.raises(AttributeError, match="no attribute 'loss_options'"):
        sce.loss_options  # noqa: B018
