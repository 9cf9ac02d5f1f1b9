"""A worksheet in Markdown, and its answer key as CSV in the columns ``sce check --csv`` reads."""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import re

from sce.explain.derivation import Stage
from sce.grading.catalogue import Mistake
from sce.number_text import DISPLAY_DIGITS, display, exact, given, latex
from sce.render.markdown_format import NumberWriter, steps_markdown
from sce.teaching.exercises import Exercise, Sheet, choice_text

#: The letters that name a derivation's blanks, in order.
BLANK_NAMES = "abcdefghijklmnopqrstuvwxyz"
#: The key's column of exercise numbers, ahead of the logits.
EXERCISE_COLUMN = "exercise"
#: The key's columns for multiple choice and for the blanks.
CHOICE_COLUMN, WRONG_CHOICES_COLUMN, BLANKS_COLUMN = "choice", "wrong_choices", "blanks"


def logit_columns(sheet: Sheet) -> list[str]:
    return [f"z{k}" for k in range(sheet.classes)]


def target_columns(sheet: Sheet) -> list[str]:
    return [f"t{k}" for k in range(sheet.classes)] if sheet.has_targets else []


def _vector(values: tuple[float, ...]) -> str:
    return "\\left(" + ", ".join(given(value) for value in values) + "\\right)"


def _level_words(sheet: Sheet) -> str:
    """What the level adds to the plain loss, with the sheet's own numbers."""
    options, level = sheet.options, sheet.request.level
    if level == "targets":
        return (
            "Each exercise gives a target distribution $\\mathbf{t}$ in place of a label: "
            "$L = -\\sum_k t_k \\log s_k$."
        )
    if level == "smoothing":
        epsilon = given(options.label_smoothing)
        return (
            f"Label smoothing $\\varepsilon = {epsilon}$: the target is $(1 - {epsilon})\\,\\mathbf{{y}} + "
            f"{epsilon}/K$ on every class, and $L = -\\sum_k t_k \\log s_k$."
        )
    if level == "weights":
        assert options.weight is not None
        return (
            f"Class weights $\\mathbf{{w}} = {_vector(options.weight)}$: each exercise's loss and gradient are "
            "scaled by the weight of its label, $w_c$."
        )
    if level == "temperature":
        temperature = given(options.temperature)
        softmax = f"\\operatorname{{softmax}}(\\mathbf{{z}} / {temperature})"
        return f"Temperature $T = {temperature}$: $\\mathbf{{s}} = {softmax}$."
    if level == "language-model":
        cap, weight = given(options.softcap or 0.0), given(options.z_loss)
        return (
            f"The logits are soft-capped first, $a_k = {cap} \\tanh(z_k / {cap})$, and $\\mathbf{{s}} = "
            f"\\operatorname{{softmax}}(\\mathbf{{a}})$; the z-loss adds "
            f"${weight} \\left(\\log \\sum_j e^{{a_j}}\\right)^2$ to each loss."
        )
    return "Each exercise gives the logits $\\mathbf{z}$ and the correct class $c$: $L = -\\log s_c$."


def sheet_markdown(sheet: Sheet) -> str:
    """The worksheet: what to compute, then each exercise (its choices, its derivation with blanks).

    Examples
    --------
    >>> from sce.teaching import SheetRequest, make_sheet
    >>> text = sheet_markdown(make_sheet(SheetRequest(count=1, seed=3, classes=3)))
    >>> text.splitlines()[0]
    '# Softmax cross-entropy: worksheet'
    """
    request = sheet.request
    lines = [
        "# Softmax cross-entropy: worksheet",
        "",
        f"Level: {request.level} · {sheet.classes} classes · {request.count} "
        f"{'exercise' if request.count == 1 else 'exercises'} · seed {request.seed}",
        "",
        "For each exercise, compute the probabilities $\\mathbf{s} = \\operatorname{softmax}(\\mathbf{z})$, the "
        "loss $L$ and its gradient $\\partial L / \\partial \\mathbf{z}$, to at least 4 significant digits. "
        "Classes are numbered from 0.",
        "",
        _level_words(sheet),
        "",
    ]
    for exercise in sheet.exercises:
        lines += _exercise_lines(sheet, exercise)
    return "\n".join(lines).rstrip("\n") + "\n"


def _exercise_lines(sheet: Sheet, exercise: Exercise) -> list[str]:
    given_line = f"$\\mathbf{{z}} = {_vector(exercise.logits)}$"
    if exercise.targets is not None:
        given_line += f", target $\\mathbf{{t}} = {_vector(exercise.targets)}$."
    else:
        given_line += f", label $c = {exercise.label}$."
    lines = [f"## Exercise {exercise.number}", "", given_line, ""]
    if exercise.choices:
        lines += ["Which is $\\partial L / \\partial \\mathbf{z}$?", ""]
        for choice in exercise.choices:
            lines.append(f"- **{choice.letter}** $\\left({', '.join(choice_text(choice.gradient))}\\right)$")
        lines.append("")
    if exercise.blanks:
        lines += [
            "### Fill in the blanks",
            "",
            "The derivation with your numbers; each box is a number to work out (the same box wherever the "
            "same number appears).",
            "",
        ]
        in_prose = _blanks_in_prose(exercise)
        stages = [_notes_blanked(stage, in_prose) for stage in exercise.derivation]
        lines += [steps_markdown(stages, DISPLAY_DIGITS, _blank_writer(exercise), heading="####"), ""]
    return lines


def _box(name: str) -> str:
    return f"\\boxed{{\\;\\text{{({name})}}\\;}}"


#: How the derivation's note on digits kept for a line to check by hand opens: on a sheet the line's
#: operand is the learner's own number, and the note would show a near neighbour of the answer.
ROUNDING_NOTE = "Rounding first would mislead"


#: A number as prose writes one, whole (not the tail of another): sign, digits, point, exponent.
_PROSE_NUMBER = re.compile(r"(?<![\d.])(-?)(\d+(?:\.\d+)?(?:e[+-]\d+)?)(?!\d)")


def _blanks_in_prose(exercise: Exercise) -> dict[str, str]:
    """How the prose writes each blank's number (with its digits, or one or two more), and the blank
    each text is (the first blank whose number it writes)."""
    names: dict[str, str] = {}
    for name, value in zip(BLANK_NAMES, exercise.blanks, strict=False):
        for digits in range(DISPLAY_DIGITS, DISPLAY_DIGITS + 3):
            names.setdefault(display(value, digits), name)
    return names


def _notes_blanked(stage: Stage, names: dict[str, str]) -> Stage:
    """The stage with a blank's number, where its prose writes it (a sanity check's L = 6.3151),
    boxed too, and without the note on rounding: the prose must not give the answer away."""

    def blanked(found: re.Match[str]) -> str:
        if found.group(0) in names:
            return _boxed_in_prose(found, names[found.group(0)])
        if found.group(2) in names:  # a positive blank's number after a minus
            return found.group(1) + _boxed_in_prose(found, names[found.group(2)])
        return found.group(0)

    notes = tuple(_PROSE_NUMBER.sub(blanked, note) for note in stage.notes if not note.startswith(ROUNDING_NOTE))
    return dataclasses.replace(stage, notes=notes)


def _boxed_in_prose(found: re.Match[str], name: str) -> str:
    """The box, between dollars where the number stood outside the prose's inline math."""
    in_math = found.string.count("$", 0, found.start()) % 2 == 1
    return _box(name) if in_math else f"${_box(name)}$"


def _blank_writer(exercise: Exercise) -> NumberWriter:
    """Each number that is written as a blank's value is (another route to the gradient may
    reach it in its last bit otherwise, and would give it away)."""

    @functools.lru_cache(maxsize=32)
    def boxes(digits: int) -> dict[str, str]:
        return {latex(blank, digits): _box(name) for name, blank in zip(BLANK_NAMES, exercise.blanks, strict=False)}

    def write(value: float, digits: int) -> str:
        text = latex(value, digits)
        return boxes(digits).get(text, text)

    return write


def blanks_key(exercise: Exercise) -> str:
    """The blanks' answers as the derivation shows them: ``(a) 0.13534; (b) 1.5032``."""
    return "; ".join(
        f"({name}) {display(value, DISPLAY_DIGITS)}" for name, value in zip(BLANK_NAMES, exercise.blanks, strict=False)
    )


def _named(mistake: Mistake | None) -> str:
    return "right" if mistake is None else mistake.name


def key_header(sheet: Sheet) -> list[str]:
    """The key's columns: the exercise, the logits, the label or targets, the gradient, the loss, and
    the choice and the blanks where the sheet has them."""
    logits = logit_columns(sheet)
    target = target_columns(sheet) or ["label"]
    extra = [CHOICE_COLUMN, WRONG_CHOICES_COLUMN] if sheet.request.choices else []
    extra += [BLANKS_COLUMN] if sheet.request.blanks else []
    return [EXERCISE_COLUMN, *logits, *target, *(f"grad_{name}" for name in logits), "loss", *extra]


def answer_key_csv(sheet: Sheet) -> str:
    """The answer key: one row per exercise, every answer at full precision (float64's shortest text).

    Examples
    --------
    >>> from sce.teaching import SheetRequest, make_sheet
    >>> key = answer_key_csv(make_sheet(SheetRequest(count=1, seed=3, classes=3)))
    >>> key.splitlines()[0]
    'exercise,z0,z1,z2,label,grad_z0,grad_z1,grad_z2,loss'
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(key_header(sheet))
    for exercise in sheet.exercises:
        target = [given(t) for t in exercise.targets] if exercise.targets is not None else [str(exercise.label)]
        row = [str(exercise.number), *(given(z) for z in exercise.logits), *target]
        row += [exact(g) for g in exercise.gradient] + [exact(exercise.loss)]
        if sheet.request.choices:
            wrong = [f"{c.letter}: {_named(c.mistake)}" for c in exercise.choices if not c.correct]
            row += [exercise.right_letter or "", "; ".join(wrong)]
        if sheet.request.blanks:
            row.append(blanks_key(exercise))
        writer.writerow(row)
    return out.getvalue()
