"""No raw Python warning and no numpy wording ever reaches the terminal.

Every sce grad output runs here with numpy set to raise on any floating-point
event that the code did not guard deliberately, and Python warnings turned
into errors: either would surface as an internal error (exit 70). stderr may
hold only `sce: warning: …` lines.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

INPUTS = {
    "seed": ["2", "3", "4", "-l", "1"],
    "confident": ["0", "40", "-l", "1"],
    "against a confident prediction": ["0", "800", "-l", "0"],
    "masked label": ["-inf", "3", "4", "-l", "0"],
    "masked other class": ["-inf", "3", "4", "-l", "1"],
    "huge": ["1e308", "-1e308", "0", "-l", "2"],
    "tiny differences": ["1", "1.000000000001", "1", "-l", "0"],
    "one class": ["3", "-l", "0"],
    "soft on a masked class": ["-inf", "1", "2", "-t", "0.5,0.5,0"],
    "soft, confident": ["0", "40", "-1", "-t", "0,1,0"],
}
OPTIONS = {
    "plain": [],
    "weights with zeros, smoothing, mean": ["-w", "0,1,2", "--smoothing", "0.1", "--reduction", "mean"],
    "tiny temperature": ["-T", "1e-310"],
    "huge temperature": ["-T", "1e300"],
    "float32": ["--dtype", "float32"],
    "zero weights, mean": ["-w", "0,0,0", "--reduction", "mean"],
    "tiny softcap, huge z-loss": ["--softcap", "1e-300", "--z-loss", "1e308"],
    "softcap, z-loss, off-target, float32": [
        "--softcap", "5", "--z-loss", "1", "--smoothing-style", "off-target", "--smoothing", "0.3", "--dtype", "float32",
    ],
}
MODES = {
    "table": [],
    "steps": ["--steps", "-f", "json"],
    "proofs": ["--verify", "--jacobian", "--hessian", "-f", "json"],
    "markdown steps": ["--steps", "-f", "markdown"],
}


def fits(args: list[str], options: list[str]) -> bool:
    """Weights are given for three classes; leave them out of inputs with another count."""
    classes = len([a for a in args[: args.index("-l") if "-l" in args else args.index("-t")]])
    return "-w" not in options or classes == 3


@pytest.mark.parametrize(
    "input_name,option_name,mode",
    [
        (i, o, m)
        for i, o, m in itertools.product(INPUTS, OPTIONS, MODES)
        if fits(INPUTS[i], OPTIONS[o])
    ],
)
def test_every_warning_is_one_sce_line(input_name, option_name, mode, sce):
    args = ["grad", *INPUTS[input_name], *OPTIONS[option_name], *MODES[mode]]
    with warnings.catch_warnings(), np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
        warnings.simplefilter("error")
        result = sce(*args)
    assert result.exit_code in (0, 2), (args, result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert all(line.startswith(("sce: warning: ", "sce: error: ")) for line in lines), (args, lines)
    assert not any(word in result.stderr for word in ("encountered", "RuntimeWarning", "Traceback")), args
    if result.exit_code == 0 and "nan" in result.stdout.lower():
        said = (result.stdout + result.stderr).lower()
        reasons = ("nan (as in pytorch)", "overflow", "fails in floating point", "cannot verify", "undefined")
        assert any(reason in said for reason in reasons), f"a NaN without a line that explains it: {args}"
