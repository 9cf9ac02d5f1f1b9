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


#: Options at the edges of float64: huge, subnormal and infinite weights, temperatures, caps and z-losses.
EXTREME_OPTIONS = {
    "huge weights": ["-w", "1e308,1e308,1e308"],
    "huge weights, mean": ["-w", "1e308,1e308,1e308", "--reduction", "mean"],
    "huge weights, sum": ["-w", "1e308,1e308,1e308", "--reduction", "sum"],
    "huge and subnormal weights": ["-w", "1e308,5e-324,1"],
    "subnormal weights, mean": ["-w", "5e-324,5e-324,5e-324", "--reduction", "mean"],
    "an infinite weight": ["-w", "inf,1,1"],
    "full smoothing": ["--smoothing", "1"],
    "huge weights, smoothing": ["-w", "1e308,0,1e308", "--smoothing", "0.5"],
    "huge weights, off-target smoothing, cap": ["-w", "1e308,1,1e308", "--smoothing", "1", "--smoothing-style",
                                                "off-target", "--softcap", "1e-300"],
    "ignored label, mean": ["--ignore-index", "1", "-w", "1e308,1e308,1e308", "--reduction", "mean"],
    "full off-target smoothing": ["--smoothing", "1", "--smoothing-style", "off-target"],
    "huge temperature": ["-T", "1e308"],
    "subnormal temperature": ["-T", "5e-324"],
    "huge softcap": ["--softcap", "1e308"],
    "subnormal softcap": ["--softcap", "5e-324"],
    "huge z-loss": ["--z-loss", "1e308"],
    "subnormal z-loss": ["--z-loss", "5e-324"],
    "huge z-loss and cap, tiny temperature": ["--z-loss", "1e308", "--softcap", "1e308", "-T", "1e-300"],
    "huge weights and z-loss, mean": ["-w", "1e308,1e308,1e308", "--z-loss", "1e308", "--reduction", "mean"],
}
EXTREME_INPUTS = {
    "seed": ["2", "3", "4", "-l", "1"],
    "huge": ["1e308", "-1e308", "0", "-l", "1"],
    "subnormal": ["5e-324", "0", "-5e-324", "-l", "0"],
    "masked other class": ["-inf", "3", "4", "-l", "1"],
    "soft": ["2", "3", "4", "-t", "0.2,0.3,0.5"],
}
EVERY_OUTPUT = {
    "table": [],
    "table, exact digits": ["--digits", "17"],
    "markdown, exact digits": ["--digits", "12", "-f", "markdown"],
    "steps": ["--steps", "--digits", "17"],
    "steps, json": ["--steps", "-f", "json"],
    "proofs": ["--verify", "--jacobian", "--hessian"],
    "proofs, json": ["--verify", "--jacobian", "--hessian", "-f", "json"],
    "everything, markdown": ["--steps", "--verify", "--jacobian", "--hessian", "-f", "markdown"],
    "csv": ["-f", "csv"],
}


@pytest.mark.parametrize("option_name", list(EXTREME_OPTIONS))
def test_extreme_options_raise_no_raw_warning_in_any_output(option_name, sce):
    failures = []
    for (input_name, inputs), (output_name, output) in itertools.product(EXTREME_INPUTS.items(), EVERY_OUTPUT.items()):
        args = ["grad", *inputs, *EXTREME_OPTIONS[option_name], *output]
        with warnings.catch_warnings(), np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
            warnings.simplefilter("error")
            result = sce(*args)
        lines = result.stderr.splitlines()
        if result.exit_code not in (0, 2) or not all(line.startswith(("sce: warning: ", "sce: error: ")) for line in lines):
            failures.append((input_name, output_name, result.exit_code, lines[-1:]))
    assert not failures, failures


def test_an_overflowing_dl_ds_is_not_blamed_on_a_probability_of_0(sce):
    # w·y/s = 1e308/0.2447 is beyond float64: ∂L/∂s overflows, though every probability is about 0.1 or more.
    for output in ([], ["-f", "json"]):
        result = sce("grad", "2", "3", "4", "-l", "1", "-w", "1e308,1e308,1e308", "--jacobian", *output)
        assert result.exit_code == 0, result.stderr
        assert "probability with target mass is 0" not in result.stdout
        assert "beyond float64's range" in result.stdout
    masked = sce("grad", "-1e308", "1e308", "0", "-l", "0", "--jacobian")
    assert "A probability with target mass is 0 in float64" in masked.stdout


def test_the_installed_command_prints_no_raw_warning_at_the_edges():
    import subprocess
    import sys

    for args in (
        ["grad", "2", "3", "4", "-l", "1", "-w", "1e308,1e308,1e308", "--jacobian"],
        ["grad", "1e308", "-1e308", "0", "-l", "1", "--smoothing", "1", "--steps"],
    ):
        done = subprocess.run([sys.executable, "-m", "sce", *args], capture_output=True, text=True)
        assert done.returncode in (0, 2), (args, done.returncode)
        assert all(line.startswith(("sce: warning: ", "sce: error: ")) for line in done.stderr.splitlines()), (
            args,
            done.stderr,
        )
