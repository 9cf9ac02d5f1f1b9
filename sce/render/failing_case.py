"""`sce test`: a failing case shown to the learner: its inputs, the expected answer beside the given one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from rich import box
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from sce.grading.implementations.captured import CapturedOutput, escaped
from sce.grading.implementations.evidence import CaseEvidence
from sce.grading.implementations.report import CaseResult
from sce.number_text import count_of, json_number, shown

#: Failing cases shown in full in the terminal; JSON shows every one.
SHOWN_IN_TERMINAL = 3
#: Lines of each stream of a case's output shown in the terminal.
SHOWN_LINES = 20
#: Characters of each such line shown in the terminal.
SHOWN_CHARACTERS = 200


def _value(value: Any) -> str:
    return shown(float(value))


def _mark(agrees: bool) -> Text:
    return Text("✓", style="green") if agrees else Text("✗", style="bold red")


def entry_table(evidence: CaseEvidence) -> Table:
    """One line per shown entry of the gradient (or per shown logit, without one): row, class,
    logit, label or target, expected and given ∂L/∂z, ✓ or ✗."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("row", "class", "logit"):
        table.add_column(name, justify="right")
    table.add_column("label" if evidence.targets is None else "target", justify="right")
    has_gradient = "gradient" in evidence.expected
    given = evidence.given.get("gradient")
    if has_gradient:
        table.add_column("expected ∂L/∂z", justify="right")
    if given is not None:
        table.add_column("given ∂L/∂z", justify="right")
        table.add_column("")
    for i, row in enumerate(evidence.rows):
        for j, column in enumerate(evidence.classes):
            if evidence.targets is not None:
                target = _value(evidence.targets[i, j])
            else:
                target = "●" if evidence.labels is not None and int(evidence.labels[i]) == column else ""
            cells: list[str | Text] = [str(row), str(column), _value(evidence.logits[i, j]), target]
            if has_gradient:
                cells.append(_value(evidence.expected["gradient"][i, j]))
            if given is not None:
                cells += [_value(given[i, j]), _mark(bool(evidence.agrees["gradient"][i, j]))]
            table.add_row(*cells)
    return table


def loss_lines(evidence: CaseEvidence) -> list[Text]:
    if "loss" not in evidence.expected:
        return []
    expected = np.asarray(evidence.expected["loss"])
    given = evidence.given.get("loss")
    if expected.ndim == 0:
        places: list[tuple[str, Any]] = [("loss", ())]
    else:
        places = [(f"loss of row {row}", (i,)) for i, row in enumerate(evidence.rows)]
    lines = []
    for name, where in places:
        line = Text(f"{name}: expected {_value(expected[where])}")
        if given is not None:
            line.append(f", given {_value(np.asarray(given)[where])} ")
            line.append_text(_mark(bool(np.asarray(evidence.agrees["loss"])[where])))
        lines.append(line)
    return lines


def cut_line(evidence: CaseEvidence) -> Text | None:
    """What is left out of a large case, and how many wrong entries it holds."""
    if evidence.whole:
        return None
    parts = []
    if len(evidence.rows) < evidence.total_rows:
        parts.append(f"row {evidence.rows[0]} of {evidence.total_rows}, the one with the most wrong entries")
    if len(evidence.classes) < evidence.total_classes:
        parts.append(f"{len(evidence.classes)} of its {evidence.total_classes} classes (the label's and the worst)")
    wrong = sum(evidence.wrong_elsewhere.values())
    tail = f"; {count_of(wrong, 'wrong entry', 'wrong entries')} elsewhere" if evidence.given else ""
    return Text(f"shown: {', '.join(parts)}{tail}")


def output_lines(output: CapturedOutput) -> list[Text]:
    """Each stream the function wrote to, its lines escaped and marked "│ ", at most :data:`SHOWN_LINES` of them."""
    lines = []
    for name, text, left_out in (
        ("stdout", output.stdout, output.stdout_left_out),
        ("stderr", output.stderr, output.stderr_left_out),
    ):
        if not text and not left_out:
            continue
        lines.append(Text(f"{name}:"))
        printed = text.removesuffix("\n").split("\n")  # not splitlines(): a "\r" is shown, not obeyed
        lines += [Text(f"│ {_cut(escaped(line))}") for line in printed[:SHOWN_LINES]]
        if len(printed) > SHOWN_LINES:
            lines.append(Text(f"│ … {count_of(len(printed) - SHOWN_LINES, 'more line')} (in --format json)"))
        if left_out:
            lines.append(Text(f"│ … {count_of(left_out, 'more byte')} not kept"))
    return lines


def _cut(line: str) -> str:
    if len(line) <= SHOWN_CHARACTERS:
        return line
    return f"{line[:SHOWN_CHARACTERS]} … ({count_of(len(line) - SHOWN_CHARACTERS, 'more character')})"


def output_block(case: CaseResult) -> RenderableType:
    """The output of a case not otherwise shown (--show-output)."""
    title = Text(f"{'✓' if case.passed else '✗'} {case.name}: what the function printed", style="bold")
    return Group(title, Padding(Group(*output_lines(case.output)), (0, 0, 0, 2), expand=False), Text(""))


def failing_case_block(case: CaseResult, flag_of: Mapping[str, str] | None = None) -> RenderableType:
    """A failing case: its name and message, then its entries and loss, indented."""
    title = Text(f"✗ {case.name}", style="bold")
    if case.note:
        title.append(f": {escaped(case.worded_message(flag_of))}", style="")  # an exception's message is theirs
    assert case.evidence is not None
    evidence = case.evidence
    body: list[RenderableType] = [entry_table(evidence), *loss_lines(evidence)]
    cut = cut_line(evidence)
    if cut is not None:
        body.append(cut)
    body += output_lines(case.output)
    return Group(title, Padding(Group(*body), (0, 0, 0, 2), expand=False), Text(""))


def failing_case_blocks(
    cases: tuple[CaseResult, ...], flag_of: Mapping[str, str] | None = None, show_output: bool = False
) -> list[RenderableType]:
    """The first few failing cases, in full; a line for the rest. With ``show_output``, also the
    output of every other case that printed."""
    failing = [case for case in cases if not case.passed and case.evidence is not None]
    in_full = failing[:SHOWN_IN_TERMINAL]
    blocks = []
    for case in cases:
        if case in in_full:
            blocks.append(failing_case_block(case, flag_of))
        elif show_output and case.output:
            blocks.append(output_block(case))
    rest = len(failing) - SHOWN_IN_TERMINAL
    if rest > 0:
        blocks.append(Text(f"{count_of(rest, 'other failing case')} shown in full by --format json\n"))
    return blocks


def _json_array(values: np.ndarray) -> Any:
    array = np.asarray(values)
    if array.dtype == bool:
        return array.tolist()
    if array.dtype.kind in "iu":
        return array.astype(np.int64).tolist()
    if array.ndim == 0:
        return json_number(float(array))
    return [_json_array(item) for item in array]


def output_document(output: CapturedOutput) -> dict[str, Any]:
    """The case's ``output``: what the function wrote (as written: JSON escapes it), and the bytes left out."""
    return {
        "stdout": output.stdout,
        "stderr": output.stderr,
        "stdout_left_out": output.stdout_left_out,
        "stderr_left_out": output.stderr_left_out,
    }


def evidence_document(evidence: CaseEvidence | None) -> dict[str, Any]:
    """``inputs``, ``expected``, ``given`` and ``agrees`` (null for a passing case)."""
    if evidence is None:
        return {"inputs": None, "expected": None, "given": None, "agrees": None}
    inputs: dict[str, Any] = {
        "rows": list(evidence.rows),
        "classes": list(evidence.classes),
        "logits": _json_array(evidence.logits),
    }
    if evidence.targets is not None:
        inputs["targets"] = _json_array(evidence.targets)
    elif evidence.labels is not None:
        inputs["labels"] = _json_array(evidence.labels)
    return {
        "inputs": inputs,
        "expected": {quantity: _json_array(values) for quantity, values in evidence.expected.items()},
        "given": {quantity: _json_array(values) for quantity, values in evidence.given.items()},
        "agrees": {quantity: _json_array(values) for quantity, values in evidence.agrees.items()},
    }
