"""What was typed, read into the core's inputs: one vector, its target, one LossOptions.

Every problem becomes a :class:`UsageProblem` that names the argument.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from sce.cli.commandline import say_warning
from sce.errors import OptionDataProblem, OptionProblem, UsageProblem, option_problem
from sce.number_text import (
    BEYOND_FLOAT64,
    EmptyField,
    beyond_float64,
    count_of,
    normalise_minus,
    quoted_cell,
    read_number,
    split_numbers,
)
from sce.options import LossOptions

if TYPE_CHECKING:
    from sce.loss import SoftmaxCrossEntropyResult


def parse_number(token: str, what: str) -> float:
    value = read_number(token)
    if value is None:
        raise UsageProblem(f"{what}: {token!r} is not a number; write numbers such as 2, -1.5 or 3e-2")
    if beyond_float64(token, value):
        raise UsageProblem(f"{what}: {token} {BEYOND_FLOAT64}")
    return value


def parse_numbers(texts: list[str] | str, what: str) -> list[float]:
    """Parse a list of numbers; ``what`` names the argument in errors (``--weight``)."""
    try:
        tokens = split_numbers(texts)
    except EmptyField as error:
        raise UsageProblem(f"{what}: {error}") from None
    if not tokens:
        raise UsageProblem(f"{what}: no numbers given")
    return [parse_number(token, f"{what} (entry {i})") for i, token in enumerate(tokens)]


def parse_label(text: str) -> int:
    token = normalise_minus(text.strip())
    if not re.fullmatch(r"[+-]?\d+", token):
        raise UsageProblem(f"--label: {text!r} is not a class index; labels are 0-based integers such as 0, 1, 2")
    return int(token)


def read_logits_file(path: str, field: str = "logits_file") -> list[float]:
    """One vector of logits from a text file or stdin: every number in it, in order.

    The way past the shell's limit on the length of an argument (about
    128 KiB: some 10,000 logits), up to a vocabulary of a million classes.
    ``field``: the option whose file it is, for errors (``weight`` for ``-w @FILE``).
    """
    from sce.io.arrays.formats import is_array_path, is_regular_file
    from sce.io.arrays.vector import array_suffix, read_vector, read_vector_bytes

    try:
        if path == "-" or not is_regular_file(path):
            # Read once: a pipe, FIFO or <(…) gives its bytes to the first reader only.
            with contextlib.nullcontext(sys.stdin) if path == "-" else open(path, "rb") as stream:
                raw = _bounded_read(stream.buffer if hasattr(stream, "buffer") else stream, path, field)
            suffix = array_suffix(raw[:8])
            if suffix is not None:  # numpy, zip (.npz), Parquet or Arrow bytes
                return read_vector_bytes(raw, suffix, "stdin" if path == "-" else path)
            text = raw.decode("utf-8-sig")
        else:
            with open(path, "rb") as binary:
                head = binary.read(8)
            if is_array_path(path) or array_suffix(head) is not None:
                return read_vector(path)
            if os.path.getsize(path) > LOGITS_FILE_BYTES:
                raise OptionDataProblem(field, _too_long(path))
            with open(path, encoding="utf-8-sig") as handle:
                text = handle.read()
    except OSError as error:
        raise OptionProblem(field, f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        where = "stdin" if path == "-" else path
        raise OptionDataProblem(field, f"{where} is not UTF-8 text (byte {error.start + 1})") from None
    return _numbers_in_text(text, path, field)


#: The most a --stage @FILE may hold: a Jacobian of some thousand classes written out in full.
STAGE_FILE_BYTES = 64 << 20


def read_stage_file(path: str, what: str) -> str:
    """The text of a ``--stage NAME=@FILE`` (its numbers as written: their digits set the tolerance);
    ``what`` names the option in errors."""
    if not path:
        raise UsageProblem(f"{what}: no file named after @; write @FILE, e.g. {what.split()[-1]}=@jacobian.txt")
    try:
        with open(path, "rb") as stream:
            raw = stream.read(STAGE_FILE_BYTES + 1)
    except OSError as error:
        raise UsageProblem(f"{what}: cannot read {quoted_cell(path)}: {error.strerror}") from None
    if len(raw) > STAGE_FILE_BYTES:
        raise UsageProblem(f"{what}: {quoted_cell(path)} holds more than {STAGE_FILE_BYTES >> 20} MB of numbers")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageProblem(f"{what}: {quoted_cell(path)} is not UTF-8 text (byte {error.start + 1})") from None


#: The most a --logits-file of text (or a stream) may hold: one vector of some ten million
#: logits. A vocabulary of a million is about 20 MB; /dev/zero or a producer that never ends
#: would otherwise take all the memory there is.
LOGITS_FILE_BYTES = 256 << 20


def _bounded_read(stream: Any, path: str, field: str) -> bytes:
    """A stream's bytes, read in pieces (a signal is acted on between them) up to LOGITS_FILE_BYTES."""
    pieces: list[bytes] = []
    total = 0
    while piece := stream.read(1 << 20):
        piece = piece if isinstance(piece, bytes) else piece.encode()
        total += len(piece)
        if total > LOGITS_FILE_BYTES:
            raise OptionDataProblem(field, _too_long("stdin" if path == "-" else path))
        pieces.append(piece)
    return b"".join(pieces)


def _too_long(where: str) -> str:
    return (
        f"{where} holds more than {LOGITS_FILE_BYTES >> 20} MB; the file is read as one vector, one number per "
        "class (a million classes is about 20 MB): for many rows use sce batch"
    )


def _numbers_in_text(text: str, path: str, field: str) -> list[float]:
    """Every number of a logits text, in order; a bad one named with its line."""
    values = []
    first_row = None  # the first line of several numbers: a second one means rows, not one vector
    for line_number, line in enumerate(text.splitlines(), start=1):
        try:
            tokens = split_numbers(line)
        except EmptyField as error:
            raise OptionDataProblem(field, f"line {line_number}: {error}") from None
        if len(tokens) > 1 and field == "logits_file":
            if first_row is not None:
                raise OptionDataProblem(field, _rows_problem(first_row, line_number))
            first_row = line_number
        for token in tokens:
            value = read_number(token)
            if value is None:
                problem = f"line {line_number}: {quoted_cell(token)} is not a number; the file holds numbers only"
                raise OptionDataProblem(field, problem)
            if beyond_float64(token, value):
                problem = f"line {line_number}: {token} is beyond float64's range (±1.8e308)"
                raise OptionDataProblem(field, problem)
            values.append(value)
    if not values:
        raise OptionDataProblem(field, f"{'stdin' if path == '-' else path} holds no numbers")
    return values


def _rows_problem(first: int, second: int) -> str:
    return (
        f"lines {first} and {second} each hold several numbers, as rows do; the file is read as one vector "
        "(one line, or one number per line): for a file of rows use sce batch"
    )


@dataclass(frozen=True)
class VectorInput:
    """One vector of logits and its target, as typed on the command line."""

    logits: list[float]
    label: int | None
    targets: list[float] | None
    logits_field: str = "logits"
    """Where the logits came from, for errors: typed (LOGITS) or from --logits-file."""


def parse_vector_input(
    logit_texts: list[str] | None, label: str | None, target: str | None, logits_file: str | None = None
) -> VectorInput:
    if logit_texts and logits_file is not None:
        raise UsageProblem("give the logits as LOGITS or with --logits-file, not both")
    if logits_file is not None:
        logits = read_logits_file(logits_file)
    elif not logit_texts:
        raise UsageProblem("no logits given; type them after the command, e.g. sce grad 2 3 4 --label 1")
    else:
        logits = parse_numbers(logit_texts, "LOGITS")
    if label is not None and target is not None:
        raise UsageProblem("give either --label or --target, not both")
    if label is None and target is None:
        raise UsageProblem(
            "say which class is correct with --label C (0-based), or give probabilities with --target P1,P2,..."
        )
    targets = None if target is None else parse_numbers(target, "--target")
    _check_count("--target", targets, len(logits))
    source = "logits" if logits_file is None else "logits_file"
    return VectorInput(logits, None if label is None else parse_label(label), targets, source)


def loss_options_from(given: Mapping[str, Any]) -> LossOptions:
    """The one options object every command builds, from the loss options given on
    its command line by field (the others keep LossOptions' defaults, the mean among
    them; the core checks the values)."""
    values = {field: value.value if isinstance(value, Enum) else value for field, value in given.items()}
    if "weight" in values:
        values["weight"] = tuple(_weights(values["weight"]))
    if values.get("smoothing_style", "uniform") != "uniform" and not values.get("label_smoothing"):
        # Accepted, it would change nothing: the user meant some smoothing.
        raise UsageProblem(
            "--smoothing-style changes only how label smoothing spreads ε: give --smoothing too (e.g. --smoothing 0.1)"
        )
    return LossOptions(**values)


def row_loss_options_from(given: Mapping[str, Any]) -> LossOptions:
    """:func:`loss_options_from` for a command that writes one row per input row (grad,
    batch, check): each row's own loss unless --reduction says otherwise."""
    return loss_options_from({"reduction": "none", **given})


def _weights(text: str) -> list[float]:
    """--weight W1,W2,… or --weight @FILE: a vocabulary's K weights (text or an array file)
    would not fit in one argument (the shell's limit is about 128 KiB: some 20,000 weights)."""
    if text.startswith("@") and len(text) > 1:
        return read_logits_file(text[1:], "weight")
    return parse_numbers(text, "--weight")


def check_class_counts(vector: VectorInput, options: LossOptions) -> None:
    """One weight per logit (the core would say so too, but in its own words)."""
    _check_count("--weight", None if options.weight is None else list(options.weight), len(vector.logits))


def _check_count(option: str, values: list[float] | None, classes: int) -> None:
    if values is not None and len(values) != classes:
        raise UsageProblem(
            f"{option}: {count_of(len(values), 'number')} for {count_of(classes, 'logit')}; give one per class"
        )


def run_core(vector: VectorInput, options: LossOptions) -> SoftmaxCrossEntropyResult:
    """Run the core as asked; each of its warnings becomes one line on stderr."""
    from sce.loss import InvalidInput, softmax_cross_entropy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # One row of a batch (1×K): the renderers and graders read results as rows.
            result = softmax_cross_entropy(
                [vector.logits],
                None if vector.label is None else [vector.label],
                targets=None if vector.targets is None else [vector.targets],
                options=options,
            )
        except InvalidInput as error:
            problem = option_problem(error)
            if error.field == "logits" and vector.logits_field == "logits_file":
                # Bad data in a file (status 1), named by the file's option, not LOGITS.
                problem = OptionDataProblem("logits_file", problem.problem, column=error.column)
            raise problem from None
    for warning in caught:
        say_warning(str(warning.message))
    return result


def check_digits(digits: int) -> None:
    if not 1 <= digits <= 17:
        raise UsageProblem(f"--digits: {digits} is out of range; use 1 to 17")
