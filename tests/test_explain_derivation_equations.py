"""Every substituted equation of `--steps` gives its own displayed value.

The JSON of `sce grad --steps` writes each equation's substitution at full
precision (`substituted`: "-\\log(0.24472847105479764) = 1.4076060240540763").
Here the left side is evaluated at 60 digits from the numbers as written, by an
evaluator of our own (tests/latex_eval.py), and compared with the right side,
for many combinations of options and hostile inputs.
"""

from __future__ import annotations

import json
import math

import mpmath as mp
import pytest

from .latex_eval import NotArithmetic, evaluate

CASES = {
    "seed": ["2", "3", "4", "-l", "1"],
    "seed label 0": ["2", "3", "4", "-l", "0"],
    "confident": ["0", "40", "-l", "1"],
    "confident, against it": ["0", "40", "-l", "0"],
    "soft, confident": ["0", "40", "-1", "-t", "0,1,0"],
    "soft, spread": ["1", "2", "3", "-t", "0.2,0.3,0.5"],
    "soft, the inherent case": ["0", "1e-9", "-t", "0.5,0.5"],
    "weights, temperature, mean": ["2", "3", "4", "-l", "1", "-w", "0.5,2,1", "-T", "2", "--reduction", "mean"],
    "weights with a zero, smoothing": ["-inf", "3", "4", "-l", "1", "--smoothing", "0.1", "-w", "0,1,1"],
    "smoothing, sum": ["1", "-2", "0.5", "7", "-l", "3", "--smoothing", "0.2", "--reduction", "sum"],
    "small temperature": ["2", "3", "4", "-l", "1", "-T", "0.01"],
    "large temperature": ["2", "3", "4", "-l", "2", "-T", "1000"],
    "logits 600 apart": ["0", "600", "-l", "0"],
    "huge logits": ["1e300", "-1e300", "-l", "1"],
    "close logits": ["1", "1.000000000001", "-l", "0"],
    "one class": ["5", "-l", "0"],
    "a masked class": ["-inf", "1", "2", "-l", "2"],
    "mean over nothing": ["2", "3", "4", "-l", "0", "-w", "0,1,1", "--reduction", "mean"],
    "twelve classes": [str(k * 0.7 - 3) for k in range(12)] + ["-l", "7"],
    "twelve classes, soft": [str(k * 0.3) for k in range(12)] + ["-t", ",".join(["0.1"] * 10 + ["0", "0"])],
    "float32": ["2", "3", "4", "-l", "1", "--dtype", "float32"],
    # The language-model options, alone and together.
    "softcap": ["2", "3", "4", "-l", "1", "--softcap", "3"],
    "softcap, saturated": ["-60", "25", "40", "-l", "0", "--softcap", "5"],
    "softcap, a masked class": ["-inf", "1", "2", "-l", "2", "--softcap", "2"],
    "z-loss": ["2", "3", "4", "-l", "1", "--z-loss", "0.001"],
    "z-loss, large logits": ["30", "31", "35", "-l", "0", "--z-loss", "0.5"],
    "off-target smoothing": ["1", "-2", "0.5", "7", "-l", "3", "--smoothing", "0.2", "--smoothing-style", "off-target"],
    "off-target smoothing, soft": ["1", "2", "3", "-t", "0.2,0.3,0.5", "--smoothing", "0.1",
                                   "--smoothing-style", "off-target"],
    "softcap and z-loss": ["2", "3", "4", "-l", "1", "--softcap", "3", "--z-loss", "0.01"],
    "softcap, z-loss, temperature": ["2", "-3", "4", "-l", "0", "--softcap", "5", "--z-loss", "0.1", "-T", "2"],
    "everything, mean": ["2", "3", "4", "-l", "1", "-w", "0.5,2,1", "-T", "0.7", "--softcap", "4",
                         "--z-loss", "0.01", "--smoothing", "0.1", "--smoothing-style", "off-target",
                         "--reduction", "mean"],
    "everything, sum, soft": ["0.5", "8", "-1", "-t", "0.1,0.6,0.3", "--softcap", "6", "--z-loss", "0.2",
                              "--smoothing", "0.3", "--smoothing-style", "off-target", "--reduction", "sum"],
    "softcap, z-loss, float32": ["2", "3", "4", "-l", "1", "--dtype", "float32", "--softcap", "3", "--z-loss", "0.01"],
    "huge logits, softcap, z-loss": ["1e300", "-1e300", "-l", "1", "--softcap", "30", "--z-loss", "1e-4"],
    "tiny cap": ["2", "3", "4", "-l", "1", "--softcap", "1e-3"],
    "small temperature, softcap, z-loss": ["2", "3", "4", "-l", "1", "-T", "0.01", "--softcap", "3", "--z-loss", "0.01"],
    "confident, z-loss": ["0", "40", "-l", "1", "--z-loss", "1e-4"],
    "one class, softcap, z-loss": ["5", "-l", "0", "--softcap", "2", "--z-loss", "0.1"],
    "z-loss, mean over nothing": ["2", "3", "4", "-l", "0", "-w", "0,1,1", "--z-loss", "0.1", "--reduction", "mean"],
    "z-loss, soft, mean, weights": ["1", "2", "3", "-t", "0.2,0.3,0.5", "-w", "1,2,3", "--z-loss", "0.3",
                                   "--reduction", "mean", "-T", "3"],
    "z-loss, twelve classes": [str(k * 0.7 - 3) for k in range(12)] + ["-l", "7", "--z-loss", "0.05",
                                                                        "--softcap", "2.5"],
}


def equations(sce, args: list[str]) -> list[tuple[str, str]]:
    result = sce("grad", *args, "--steps", "-f", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    return [
        (stage["title"], item["substituted"])
        for stage in document["steps"]
        for item in stage["items"]
        if item["type"] == "equation" and " = " in item["substituted"]
    ]


def checked(substituted: str) -> tuple[mp.mpf, mp.mpf] | None:
    """(left side evaluated, right side as written), or None where there is no arithmetic."""
    left, _, right = substituted.rpartition(" = ")
    if any(word in substituted for word in ("inf", "nan", "infty")):
        return None
    try:
        return evaluate(left, {}), mp.mpf(right)
    except (NotArithmetic, ValueError, SyntaxError):
        return None


@pytest.mark.parametrize("name", list(CASES))
def test_every_substituted_equation_gives_its_displayed_value(name, sce):
    tolerance = 1e-6 if "float32" in CASES[name] else 1e-12
    found = 0
    failures = []
    for title, substituted in equations(sce, CASES[name]):
        pair = checked(substituted)
        if pair is None:
            continue
        found += 1
        left, right = pair
        scale = max(abs(left), abs(right))
        if abs(left - right) > tolerance * scale + mp.mpf("1e-300"):
            failures.append(f"{title}: {substituted} (left side = {mp.nstr(left, 17)})")
    assert found >= 3, "too few arithmetic equations to check"
    assert not failures, "\n".join(failures)


def test_the_evaluator_is_independent_and_strict():
    # It evaluates what it is given, including the cases the derivation writes.
    assert evaluate("-\\log(0.5)", {}) == -mp.log(mp.mpf(0.5))
    assert evaluate("\\frac{1}{⟨a⟩}", {"a": 4.0}) == mp.mpf("0.25")
    assert evaluate("e^{-1} \\times (1 - 0.5)", {}) == mp.exp(-1) / 2
    assert math.isclose(float(evaluate("-\\left(-2 - \\log 3\\right)", {})), 2 + math.log(3))
    assert evaluate("⟨c⟩ \\times \\tanh\\left(\\frac{1}{⟨c⟩}\\right)", {"c": 2.0}) == 2 * mp.tanh(mp.mpf("0.5"))
    with pytest.raises(NotArithmetic):
        evaluate("\\text{(case } i = c \\text{ above)}", {})


@pytest.mark.parametrize("name", [name for name in CASES if "mean over nothing" not in name])
def test_no_step_shows_nan_where_the_result_is_defined(name, sce):
    # A class of weight 0 at -inf once showed "-0 × 0.0333 × log(0) = nan" in the loss terms.
    assert not [s for _, s in equations(sce, CASES[name]) if "nan" in s]


@pytest.mark.parametrize("name", [name for name in CASES if "--softcap" in CASES[name] or "--z-loss" in CASES[name]])
def test_the_jacobian_route_covers_the_language_model_options(name, sce):
    # The route's per-class equations are among those checked above; here: it is there,
    # and where it does not fail (∞ × 0) it lands on the core's gradient.
    result = sce("grad", *CASES[name], "--steps", "-f", "json")
    document = json.loads(result.stdout)
    route = next(stage for stage in document["steps"] if stage["title"] == "The Jacobian route")
    formulas = [item.get("formula", "") for item in route["items"]]
    infinite = any("inf" in item.get("substituted", "") for item in route["items"][:1])
    assert infinite or any(formula.startswith("\\frac{\\partial L}{\\partial z_") for formula in formulas)
    for item in route["items"]:
        if "route" in item.get("formula", ""):
            scale = max(1.0, max(abs(float(g)) for g in document["gradient"]))
            assert item["values"]["diff"] <= (1e-6 if "float32" in name else 4e-16) * scale
