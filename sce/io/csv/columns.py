"""The column plan: which input columns are the logits, the label or targets,
and (for `sce check --csv`) the given gradient and loss."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from sce.errors import DataProblem, OptionDataProblem, OptionProblem, UsageProblem, option

#: How `sce batch` names the gradient column of logit column X, which `sce check --csv` pairs by.
GRADIENT_PREFIX = "grad_"


@dataclass(frozen=True)
class ColumnPlan:
    """Which input columns are what."""

    names: tuple[str, ...]
    logits: tuple[str, ...]
    label: str | None
    targets: tuple[str, ...] | None
    logits_by_default: bool = False
    grads: tuple[str, ...] | None = None
    """Given gradient columns to grade, for `sce check --csv`."""
    grad_classes: tuple[int, ...] | None = None
    """The class (the position in ``logits``) whose gradient each of ``grads`` holds."""
    loss: str | None = None
    """A given loss column, for `sce check --csv`."""
    learner: str | None = None
    """The column of each row's learner id, for `sce check --csv --id-col`."""

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
    id_col: str | None = None,
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
    if grads is not None:
        _check_gradients_are_gradients(grads, grad_cols or "", names, loss_given=loss_col is not None)
    if loss_col is not None and loss_col not in names:
        raise OptionDataProblem("loss_col", f"there is no column {loss_col!r}; the columns are {listing}")
    if id_col is not None and id_col not in names:
        raise OptionDataProblem("id_col", f"there is no column {id_col!r}; the columns are {listing}")
    roles = _roles(label, label_col is None, targets, grads, loss_col, id_col)
    logits = None
    if logit_cols is None and (grads is not None or loss_col is not None):
        logits = _logits_named_by_gradients(names, roles)
    if logits is None:
        logits = _logit_columns(names, logit_cols, roles, listing)
    _check_counts(logits, targets)
    _check_numbered_in_order(logits, "logit_cols", logit_cols, by_option=logit_cols is not None)
    if targets is not None:
        _check_numbered_in_order(targets, "target_cols", target_cols, by_option=True)
    classes = None if grads is None else _gradient_classes(grads, grad_cols or "", logits, names, logit_cols is None)
    plan = ColumnPlan(
        tuple(names),
        logits,
        label,
        targets,
        logits_by_default=logit_cols is None,
        grads=grads,
        grad_classes=classes,
        loss=loss_col,
        learner=id_col,
    )
    clash = set(plan.output_names) & set(names)
    if clash and grads is None and loss_col is None:
        raise DataProblem(
            f"the input already has a column {sorted(clash)[0]!r}, which sce batch writes; "
            f"rename it, or choose the logit columns with {option('logit_cols')}"
        )
    return plan


def _check_gradients_are_gradients(grads: tuple[str, ...], grad_cols: str, names: list[str], loss_given: bool) -> None:
    """A column given as a gradient that the file's names say is something else: a logit X whose
    gradient grad_X is there, or one of the other columns sce batch writes (loss, p_X)."""
    known = set(names)
    items = [item.strip() for item in grad_cols.split(",") if item.strip()]
    for column in grads:
        if GRADIENT_PREFIX + column in known:
            # One item (a name or a pattern): its gradient columns are the same item prefixed.
            chosen = GRADIENT_PREFIX + (items[0] if len(items) == 1 else column)
            raise OptionProblem(
                "grad_cols",
                f"column {column!r} is a logit column (its gradient column is {GRADIENT_PREFIX + column!r}); "
                f"give the gradient columns to grade, as {option('grad_cols', chosen)}",
            )
        if column == "loss" and not loss_given:
            raise OptionProblem(
                "grad_cols",
                f"column 'loss' is the loss column sce batch writes, not a gradient; grade it with "
                f"{option('loss_col', 'loss')}",
            )
        if column.startswith("p_") and column[2:] in known:
            raise OptionProblem(
                "grad_cols",
                f"column {column!r} is the probability of {column[2:]!r} that sce batch writes, not a gradient; "
                f"the gradient columns are {GRADIENT_PREFIX}<logit column>",
            )


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


class _Role(NamedTuple):
    words: str
    """What the column is, in words: "the label column"."""
    from_file: bool
    """Chosen by the file's own names (the column called label), not by an option."""


def _roles(
    label: str | None,
    label_by_default: bool,
    targets: tuple[str, ...] | None,
    grads: tuple[str, ...] | None,
    loss: str | None,
    learner: str | None = None,
) -> dict[str, _Role]:
    """The columns that are something other than a logit, with what they are; one thing each."""
    roles: dict[str, _Role] = {}
    if label is not None:
        roles[label] = _Role("the label column", label_by_default)
    for name in targets or ():
        roles[name] = _Role("a target column", False)
    for field, names, role in (
        ("id_col", (learner,) if learner is not None else (), _Role("the id column", False)),
        ("grad_cols", grads or (), _Role("a gradient column being graded", False)),
        ("loss_col", (loss,) if loss is not None else (), _Role("the loss column", False)),
    ):
        for name in names:
            if name in roles:
                kind = OptionDataProblem if roles[name].from_file else OptionProblem
                raise kind(field, f"column {name!r} is already {roles[name].words}; a column is one thing only")
            roles[name] = role
    return roles


def _logit_columns(names: list[str], logit_cols: str | None, roles: dict[str, _Role], listing: str) -> tuple[str, ...]:
    if logit_cols is not None:
        logits = _select(logit_cols, names, "logit_cols")
        taken = next((name for name in logits if name in roles), None)
        if taken is not None:
            role = roles[taken]
            # A clash with the column the file calls label is the file's, as a column it lacks is.
            kind = OptionDataProblem if role.from_file else OptionProblem
            fix = f"name the label column with {option('label_col')}, or " if role.from_file else ""
            raise kind("logit_cols", f"column {taken!r} is {role.words}; {fix}leave it out of {option('logit_cols')}")
        return logits
    logits = tuple(name for name in names if name not in roles)
    if not logits:
        raise DataProblem(f"no logit columns: the only columns are {listing}")
    return logits


def _logits_named_by_gradients(names: list[str], roles: dict[str, _Role]) -> tuple[str, ...] | None:
    """The logit columns of a file that `sce batch` wrote, or that is written as it writes:
    every column X that has a column grad_X, in the file's order. None where no column has one.

    Every other column must be the label, a target, the loss or an output of `sce batch`
    (p_X, grad_X): a column without its gradient column may be a logit whose gradient was
    left out, and leaving a logit out of the softmax would fail a right answer."""
    known = set(names)
    logits = tuple(name for name in names if GRADIENT_PREFIX + name in known and name not in roles)
    if not logits:
        return None
    accounted = {*logits, "loss", *(f"{prefix}{name}" for name in logits for prefix in ("p_", GRADIENT_PREFIX))}
    stray = next((name for name in names if name not in roles and name not in accounted), None)
    if stray is None:
        return logits
    fix = f"{option('logit_cols')} (every logit column joins the softmax, graded or not; "
    if stray.startswith(GRADIENT_PREFIX):
        raise DataProblem(
            f"column {stray!r} is the gradient of no column (there is no column {stray[len(GRADIENT_PREFIX) :]!r}); "
            f"name the logit columns with {fix}those with a gradient column are {_listing(logits)})"
        )
    raise DataProblem(
        f"column {stray!r} has no gradient column {GRADIENT_PREFIX + stray}: say whether it is a logit with "
        f"{fix}those with a gradient column are {_listing(logits)})"
    )


def _gradient_classes(
    grads: tuple[str, ...], grad_cols: str, logits: tuple[str, ...], names: list[str], logits_by_default: bool
) -> tuple[int, ...]:
    """The class of each gradient column: grad_X is the gradient of logit column X. Columns named
    otherwise are paired in order with --logit-cols, both lists written out (a pattern would pair
    them by the file's order of columns)."""
    class_of = {name: k for k, name in enumerate(logits)}
    known = set(names)
    by_name, by_order = [], []
    for column in grads:
        of = column[len(GRADIENT_PREFIX) :] if column.startswith(GRADIENT_PREFIX) else None
        if of in class_of:
            by_name.append(column)
        elif of in known:
            raise OptionProblem(
                "logit_cols",
                f"column {of!r} is left out, but its gradient column {column!r} is graded; add it "
                "(every logit column joins the softmax, graded or not)",
            )
        else:
            by_order.append(column)
    if not by_order:
        return tuple(class_of[column[len(GRADIENT_PREFIX) :]] for column in grads)
    _check_pairing_in_order(by_order[0], by_name, grad_cols, len(grads), len(logits), logits_by_default)
    return tuple(range(len(logits)))


def _check_pairing_in_order(
    column: str, by_name: list[str], grad_cols: str, count: int, classes: int, logits_by_default: bool
) -> None:
    if column.startswith(GRADIENT_PREFIX):
        of = column[len(GRADIENT_PREFIX) :]
        named = f"column {column!r} is the gradient of no column (there is no column {of!r})"
    else:
        named = f"column {column!r} is not named {GRADIENT_PREFIX}<logit column>"
    if by_name:
        raise OptionProblem(
            "grad_cols",
            f"{named}, but {by_name[0]!r} is; name every gradient column {GRADIENT_PREFIX}<logit column>, "
            "or none of them",
        )
    if logits_by_default:
        raise OptionProblem(
            "grad_cols",
            f"{named}; name the logit columns with {option('logit_cols')} too, and the gradient columns "
            "are paired with them in the order both are written",
        )
    if any(_is_pattern(item) for item in grad_cols.split(",")):
        raise OptionProblem(
            "grad_cols",
            f"{named}, and a pattern would pair the gradient columns with the logits by the file's order; "
            f"write them out one by one, in the order of {option('logit_cols')}",
        )
    if count != classes:
        raise OptionProblem(
            "grad_cols",
            f"{count} gradient {'column' if count == 1 else 'columns'} for {classes} logit columns: "
            f"columns not named {GRADIENT_PREFIX}<logit column> are paired with {option('logit_cols')} in order, "
            "so give one per logit column",
        )


def _check_numbered_in_order(columns: tuple[str, ...], field: str, listed: str | None, by_option: bool) -> None:
    """Columns numbered as classes (z0, z1, …: one stem, each its own number) that the file holds
    in another order, taken in the file's order (by default or by a pattern), are refused: a
    label is a position among the logit columns, and the names say another class than the
    position. A list written out one by one is the user's own order, and is kept."""
    if listed is not None and not any(_is_pattern(item) for item in listed.split(",")):
        return
    numbers = _class_numbers(columns)
    if numbers is None or numbers == sorted(numbers):
        return
    before = next(k for k in range(len(numbers) - 1) if numbers[k] > numbers[k + 1])
    ordered = [name for _, name in sorted(zip(numbers, columns, strict=True))]
    written = ",".join(ordered) if len(ordered) <= 20 else f"{','.join(ordered[:3])},…,{ordered[-1]} (each one)"
    flag = option("target_cols") if field == "target_cols" else option("logit_cols")
    message = (
        f"the {'target' if field == 'target_cols' else 'logit'} columns are numbered out of order "
        f"({columns[before]!r} before {columns[before + 1]!r}): a class is a column's place among them, so sce "
        f"will not guess whether {columns[before]!r} is class {before} (its place) or {numbers[before]} (its name); "
        f"write them out in class order, {flag} {written}"
    )
    raise OptionDataProblem(field, message) if by_option else DataProblem(message)


def _class_numbers(columns: tuple[str, ...]) -> list[int] | None:
    """Each column's number where every one is one stem and its own decimal number (z0, z1, …),
    else None."""
    stems, numbers = set(), []
    for name in columns:
        digits = len(name) - len(name.rstrip("0123456789"))
        if digits == 0:
            return None
        stems.add(name[:-digits])
        numbers.append(int(name[-digits:]))
    if len(stems) != 1 or len(set(numbers)) != len(numbers) or len(numbers) < 2:
        return None
    return numbers


def _check_counts(logits: tuple[str, ...], targets: tuple[str, ...] | None) -> None:
    if targets is not None and len(targets) != len(logits):
        raise OptionProblem(
            "target_cols",
            f"{len(targets)} target columns for {len(logits)} logit columns; give one target column per logit column",
        )


def _listing(names: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(names[:20])
    return shown + (f", … ({len(names)} in all)" if len(names) > 20 else "")


def _is_pattern(item: str) -> bool:
    return any(ch in item for ch in "*?[")


def _select(pattern: str, names: list[str], option: str) -> tuple[str, ...]:
    # Sets beside the lists: a glob over 100,000 columns must not search a list for each.
    known = set(names)
    chosen: dict[str, str] = {}  # each column chosen, with the item of the list that chose it
    for item in (part.strip() for part in pattern.split(",")):
        if not item:
            continue
        if _is_pattern(item):
            matches = [name for name in names if fnmatch.fnmatchcase(name, item)]
            if not matches:
                raise OptionDataProblem(option, f"{item!r} matches no column; the columns are {_listing(names)}")
        elif item in known:
            matches = [item]
        else:
            raise OptionDataProblem(option, f"there is no column {item!r}; the columns are {_listing(names)}")
        for name in matches:
            if name in chosen:
                # Twice in one list would make a class of it twice, or grade one answer twice.
                by = "" if chosen[name] == item else f" (by {chosen[name]!r} and by {item!r})"
                raise OptionProblem(option, f"column {name!r} is named twice{by}; name each column once")
            chosen[name] = item
    if not chosen:
        raise OptionProblem(option, "no columns named")
    return tuple(chosen)
