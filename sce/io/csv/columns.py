"""The column plan: which input columns are the logits, the label or targets,
and (for `sce check --csv`) the given gradient and loss."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cached_property

from sce.errors import DataProblem, OptionDataProblem, OptionProblem, UsageProblem, option


@dataclass(frozen=True)
class ColumnPlan:
    """Which input columns are what."""

    names: tuple[str, ...]
    logits: tuple[str, ...]
    label: str | None
    targets: tuple[str, ...] | None
    logits_by_default: bool = False
    grads: tuple[str, ...] | None = None
    """Given gradient columns, for `sce check --csv`."""
    loss: str | None = None
    """A given loss column, for `sce check --csv`."""

    @cached_property
    def positions(self) -> dict[str, int]:
        """Each input column's position: looked up, not searched for, in a row of 100,000 columns."""
        return {name: position for position, name in enumerate(self.names)}

    @property
    def output_names(self) -> tuple[str, ...]:
        return (
            *(f"p_{name}" for name in self.logits),
            "loss",
            *(f"grad_{name}" for name in self.logits),
        )


def plan_columns(
    names: list[str],
    *,
    label_col: str | None,
    logit_cols: str | None,
    target_cols: str | None,
    has_header: bool,
    grad_cols: str | None = None,
    loss_col: str | None = None,
    delimiter: str = ",",
) -> ColumnPlan:
    """Which input columns are what: the options that name columns, checked
    against the header's names (or 0..n-1 without a header)."""
    listing = _listing(names)
    _check_unique(names)
    if target_cols is not None and label_col is not None:
        raise UsageProblem(f"give {option('label_col')} or {option('target_cols')}, not both")
    if target_cols is None and label_col is None and len(names) == 1:
        _check_one_column(names[0], delimiter)
    label, targets = _label_or_targets(names, label_col, target_cols, has_header, listing)
    grads = None if grad_cols is None else _select(grad_cols, names, "grad_cols")
    if loss_col is not None and loss_col not in names:
        raise OptionDataProblem("loss_col", f"there is no column {loss_col!r}; the columns are {listing}")
    taken = {label} | set(targets or ()) | set(grads or ()) | {loss_col}
    known = set(names)
    if logit_cols is None and grads and all(name.startswith("grad_") and name[5:] in known for name in grads):
        # Checking sce batch's output: grad_z0 is the gradient of column z0.
        logit_cols = ",".join(name[5:] for name in grads)
    logits = _logit_columns(names, logit_cols, taken, listing)
    _check_counts(logits, targets, grads)
    plan = ColumnPlan(
        tuple(names), logits, label, targets, logits_by_default=logit_cols is None, grads=grads, loss=loss_col
    )
    clash = set(plan.output_names) & set(names)
    if clash and grads is None and loss_col is None:
        raise DataProblem(
            f"the input already has a column {sorted(clash)[0]!r}, which sce batch writes; "
            f"rename it, or choose the logit columns with {option('logit_cols')}"
        )
    return plan


def _check_unique(names: list[str]) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise DataProblem(
                f"line 1: column name {name!r} appears twice (columns {seen[name]} and {position}); "
                "column names must be unique"
            )
        seen[name] = position


#: Separators a one-column header may hide: (character, in words).
_SEPARATORS = ((",", "commas"), ("\t", "tabs"), (";", "semicolons"), ("|", "vertical bars"))


def _check_one_column(name: str, delimiter: str) -> None:
    """A header read as one column whose name holds another separator: the file is separated
    by that one (a comma-separated file named .tsv, a semicolon-separated .csv)."""
    words = dict(_SEPARATORS)
    found = next((each for each in _SEPARATORS if each[0] != delimiter and each[0] in name), None)
    if found is not None:
        expected = words.get(delimiter, repr(delimiter))
        raise DataProblem(
            f"the file has one column, {name!r}: it looks separated by {found[1]}, not {expected}; "
            f"say {option('delimiter', found[0])}"
        )


def _label_or_targets(
    names: list[str], label_col: str | None, target_cols: str | None, has_header: bool, listing: str
) -> tuple[str | None, tuple[str, ...] | None]:
    if target_cols is not None:
        return None, _select(target_cols, names, "target_cols")
    label = label_col if label_col is not None else ("label" if has_header else names[-1])
    if label not in names:
        if label_col is None:
            raise DataProblem(
                f"there is no column named 'label'; the columns are {listing}. "
                f"Name the label column with {option('label_col')}, or give soft targets with {option('target_cols')}"
            )
        raise OptionDataProblem("label_col", f"there is no column {label!r}; the columns are {listing}")
    return label, None


def _logit_columns(names: list[str], logit_cols: str | None, taken: set[str | None], listing: str) -> tuple[str, ...]:
    if logit_cols is not None:
        logits = _select(logit_cols, names, "logit_cols")
        overlap = set(logits) & taken
        if overlap:
            raise OptionProblem("logit_cols", f"column {sorted(overlap)[0]!r} is also the label or a target column")
        return logits
    logits = tuple(name for name in names if name not in taken)
    if not logits:
        raise DataProblem(f"no logit columns: the only columns are {listing}")
    return logits


def _check_counts(logits: tuple[str, ...], targets: tuple[str, ...] | None, grads: tuple[str, ...] | None) -> None:
    if targets is not None and len(targets) != len(logits):
        raise OptionProblem(
            "target_cols",
            f"{len(targets)} target columns for {len(logits)} logit columns; give one target column per logit column",
        )
    if grads is not None and len(grads) != len(logits):
        raise OptionProblem(
            "grad_cols",
            f"{len(grads)} gradient columns for {len(logits)} logit columns; give one gradient column per logit column",
        )


def _listing(names: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f", … ({len(names)} in all)" if len(names) > 20 else "")


def _select(pattern: str, names: list[str], option: str) -> tuple[str, ...]:
    # Sets beside the lists: a glob over 100,000 columns must not search a list for each.
    known = set(names)
    chosen: list[str] = []
    seen: set[str] = set()
    for item in (part.strip() for part in pattern.split(",")):
        if not item:
            continue
        if any(ch in item for ch in "*?["):
            matches = [name for name in names if fnmatch.fnmatchcase(name, item)]
            if not matches:
                raise OptionDataProblem(option, f"{item!r} matches no column; the columns are {_listing(names)}")
        elif item in known:
            matches = [item]
        else:
            raise OptionDataProblem(option, f"there is no column {item!r}; the columns are {_listing(names)}")
        for name in matches:
            if name not in seen:
                seen.add(name)
                chosen.append(name)
    if not chosen:
        raise OptionProblem(option, "no columns named")
    return tuple(chosen)
