"""Grading a dump by its float type: the verdict's pass, then, for a wrong answer, the mistake's.

A dump is processed in blocks of rows read from the file (a memory-mapped 4 GB
array costs one block of memory), in one pass that computes the verdict
(:mod:`.verdict_pass`). Which mistake a wrong answer made is asked once it looks
wrong: the pass then tries the few mistakes that fit a few rows on each further
block, and :mod:`.mistake_pass` names the one that fits every entry.
"""

from __future__ import annotations

import warnings

from sce.errors import NothingToGrade, OptionProblem, option_problem
from sce.grading import catalogue
from sce.grading.dump.implementation_choices import NARROWER, consistent_choices
from sce.grading.dump.kernel_mistakes import denominators
from sce.grading.dump.mistake_pass import Allowance, Allowed, MistakeSearch
from sce.grading.dump.signs import WHY_LOSS, why_sign
from sce.grading.dump.tiles import (
    InMemory,
    TileEngine,
    TileGrade,
    TilePlan,
    compared_in_tiles,
    graded_in_tiles,
    split,
)
from sce.grading.dump.verdict import DtypeCheck, QuantityVerdict, ReducedLoss
from sce.grading.dump.verdict_pass import BlockGrade, BlockJob, Progress, in_order
from sce.io.arrays import ArrayDump
from sce.io.arrays.dump import float_name
from sce.io.arrays.heap import reused_heap
from sce.io.arrays.mapped_rows import block_bounds
from sce.loss import InvalidInput
from sce.loss.validation import class_weights, validated_options
from sce.options import LossOptions

#: Entries of logits per block: 2^20 (8 MB per float64 array; the block's ~20 arrays stay under 200 MB).
BLOCK_ENTRIES = 1 << 20


def check_dump(
    dump: ArrayDump,
    options: LossOptions,
    claimed_dtype: str,
    progress: Progress | None = None,
    tune_heap: bool = False,
    sum_order: str = "parallel",
    engine: TileEngine | None = None,
) -> DtypeCheck:
    """Grade the dump's gradient and loss by their type, block by block; name the mistake that fits.

    Parameters
    ----------
    dump : ArrayDump
        The logits, the labels or targets, and the answer: a gradient, a loss, or both.
    options : LossOptions
        The loss the answer claims to compute (its ``dtype`` is ignored: the exact result is float64's).
    claimed_dtype : str
        The type the answer was computed in: "float16", "bfloat16", "float32" or "float64".
    progress : callable, optional
        Told ("checking", rows) after each block, then ("naming the mistake", rows) for each
        block compared after it (those graded before the answer looked wrong).
    tune_heap : bool
        Keep freed blocks in the heap (glibc's malloc settings, :mod:`sce.io.arrays.heap`): for
        the command line's own process, never a library caller's.
    sum_order : str
        "parallel" (frameworks' sums in lanes or pairs), or "sequential": each row's
        probabilities may share one factor 1 + δ, |δ| ≤ (K − 1)·u, as one running sum over the
        classes gives them (:mod:`.sequential_sums`).
    engine : TileEngine, optional
        Grade the dump in tiles of blocks run by ``engine`` (a cluster: :mod:`.cluster_tiles`), to
        the same verdict, bit for bit, as this process alone gives (:mod:`.tiles`).

    Returns
    -------
    DtypeCheck
        Each quantity's verdict, and the names of the mistakes that fit a wrong answer.

    Raises
    ------
    sce.errors.SceError
        An option the loss does not accept, or logits, labels or targets it is not defined for
        (placed at their row of the dump), or a damaged file; no rows and no reduced loss
        (:class:`~sce.errors.NothingToGrade`); a claimed type the answer's stored
        type cannot hold (float64 for a float32 array: its digits were lost when it was stored).

    Examples
    --------
    >>> import numpy as np
    >>> from sce import softmax_cross_entropy
    >>> from sce.io.arrays import ArrayDump
    >>> z, labels = np.array([[2.0, 3.0, 4.0]]), np.array([1])
    >>> right = softmax_cross_entropy(z, labels).gradient
    >>> check_dump(ArrayDump(z, labels, None, right, None, {}), LossOptions(), "float64").correct
    True
    >>> check_dump(ArrayDump(z, labels, None, 2 * right, None, {}), LossOptions(), "float64").correct
    False
    """
    options = options.replace(dtype="float64")
    _check_claim(dump, claimed_dtype)
    if dump.shape[0] == 0 and (dump.loss is None or dump.loss.ndim != 0):
        where = dump.where.get("logits", "the logits array")
        raise NothingToGrade(
            f"{where} has no rows: nothing to grade (a batch of no rows is graded by its reduced loss alone)"
        )
    check = _graded(dump, options, claimed_dtype, progress, tune_heap, sum_order, True, engine)
    signs_alone = _only_signs(check.quantities)  # no type or sum order makes a sign no rounding gives
    if check.wrong and not check.mistakes and not signs_alone and not any(q.counts[-1] for q in check.quantities):
        # NaN or infinity where the truth is finite is wrong however it was computed.

        def regrade(kind: str, order: str) -> bool:
            return _graded(dump, options, kind, None, tune_heap, order, False, engine).correct

        bounds = block_bounds(*dump.shape, BLOCK_ENTRIES)
        gradient = check.quantities[0] if dump.grad is not None else None
        check.hints = consistent_choices(dump, claimed_dtype, sum_order, bounds, regrade, gradient)
    return check


def _graded(
    dump: ArrayDump,
    options: LossOptions,
    claimed_dtype: str,
    progress: Progress | None,
    tune_heap: bool,
    sum_order: str,
    name_mistakes: bool,
    engine: TileEngine | None = None,
) -> DtypeCheck:
    """:func:`check_dump`'s verdict, and with ``name_mistakes`` the mistakes that fit a wrong answer."""
    rows, classes = dump.shape
    check_options(options, classes)
    d = denominators(dump.labels, rows, options)
    why = why_sign("gradient", options, dump.labels is not None)
    grad = QuantityVerdict("gradient", sign_reason=why) if dump.grad is not None else None
    per_row_loss = dump.loss is not None and dump.loss.ndim == 1
    loss = QuantityVerdict("loss", sign_reason=WHY_LOSS) if per_row_loss else None
    scalar = ReducedLoss() if dump.loss is not None and not per_row_loss else None
    bounds = block_bounds(rows, classes, BLOCK_ENTRIES)
    tune = tune_heap and rows * classes > BLOCK_ENTRIES
    source = (engine.source if engine is not None else None) or InMemory(dump)
    plan = TilePlan(source, options, claimed_dtype, d, per_row_loss, scalar is not None, sum_order, tune)
    search = MistakeSearch(dump, options, d, claimed_dtype, bounds, progress) if name_mistakes else None
    if search is not None and engine is not None:
        search.elsewhere = compared_in_tiles(plan, bounds, engine)
    with warnings.catch_warnings(), reused_heap(tune):
        # Here, not in each block: catch_warnings is not thread-safe. An infinite loss is graded, not warned about.
        warnings.simplefilter("ignore")
        if engine is None:
            suspects = search.suspects if search is not None else None
            job = BlockJob(dump, options, claimed_dtype, d, per_row_loss, scalar is not None, sum_order, suspects)
            sum_bound = _in_blocks(job, bounds, (grad, loss, scalar), search, progress)
        else:
            whole = graded_in_tiles(plan, split(bounds, engine.tiles), engine.run, progress)
            sum_bound = _merged_tiles(whole, grad, loss, scalar)
        dump.verify()  # a damaged file is a data error, not an answer judged wrong
        quantities = [q for q in (grad, loss) if q is not None]
        scalar_verdict = None
        if scalar is not None and dump.loss is not None:
            scalar_verdict = scalar.verdict(float(dump.loss), claimed_dtype, options, d)
            quantities.append(scalar_verdict)
        check = DtypeCheck(claimed_dtype, rows, classes, options, quantities, [], sum_order, sum_bound=sum_bound)
        if check.wrong and search is not None and _only_signs(quantities):
            check.mistakes = _sign_mistakes(quantities)
        elif check.wrong and search is not None:
            reduced = None
            if scalar is not None and scalar_verdict is not None:
                reduced = (scalar.given, scalar.size, scalar_verdict.allowed_ulps)
            allowed = _allowed(grad, loss, reduced)
            check.mistakes = search.matching(allowed)
            if not check.mistakes and len(quantities) > 1:
                check.mistakes = _by_quantity(search, allowed, quantities)
    return check


def _in_blocks(
    job: BlockJob,
    bounds: list[tuple[int, int]],
    verdicts: tuple[QuantityVerdict | None, QuantityVerdict | None, ReducedLoss | None],
    search: MistakeSearch | None,
    progress: Progress | None,
) -> float:
    """The verdict's pass in this process, block by block into ``verdicts``; the largest bound of
    a sequential sum. The mistakes are suspected as soon as the answer looks wrong (:mod:`.mistake_pass`)."""
    grad, loss, scalar = verdicts
    sum_bound = 0.0
    for index, graded in enumerate(in_order(job.grade, bounds)):
        _merge(graded, grad, loss, scalar)
        sum_bound = max(sum_bound, graded.sum_bound)
        if search is not None:
            so_far = [q for q in (grad, loss) if q is not None]
            search.after_block(index, graded, _allowed(grad, loss), any(not q.correct for q in so_far))
        if progress is not None:
            progress("checking", graded.rows)
    return sum_bound


def _merged_tiles(
    whole: TileGrade, grad: QuantityVerdict | None, loss: QuantityVerdict | None, scalar: ReducedLoss | None
) -> float:
    """The tiles' grade merged into the verdicts (empty, and worded for their quantity); the
    largest bound of a sequential sum."""
    for mine, theirs in ((grad, whole.gradient), (loss, whole.losses)):
        if mine is not None and theirs is not None:
            mine.combine(theirs)
    if scalar is not None and whole.reduced is not None:
        scalar.extend(whole.reduced)
    return whole.sum_bound


def _only_signs(quantities: list[QuantityVerdict]) -> bool:
    """Wrong by signs alone: every entry within its allowance, but some of a sign no rounding gives.
    The catalogue's what-ifs are then as near the truth as the answer is (a confident row's
    entries are fractions of an ulp of their operands), so any would fit and none explains it."""
    return all(
        q.correct or (q.sign_flips and not (q.wrong or q.typical_beyond or q.beyond_rounding or q.counts[-1]))
        for q in quantities
    )


def _sign_mistakes(quantities: list[QuantityVerdict]) -> list[str]:
    """A negative loss is the catalogue's; a gradient's wrong signs are said by its own line."""
    negative = any(q.sign_flips for q in quantities if q.name == "loss")
    return [catalogue.NEGATIVE_LOSS.described()] if negative else []


def _merge(
    graded: BlockGrade, grad: QuantityVerdict | None, loss: QuantityVerdict | None, scalar: ReducedLoss | None
) -> None:
    if grad is not None and graded.gradient is not None:
        grad.merge(graded.gradient)
    if loss is not None and graded.losses is not None:
        loss.merge(graded.losses)
    if scalar is not None and graded.reduced is not None:
        scalar.add(*graded.reduced)


def _allowed(
    grad: QuantityVerdict | None, loss: QuantityVerdict | None, reduced: tuple[float, float, float] | None = None
) -> Allowed:
    """What the verdicts (so far) allow each quantity."""
    return Allowed(
        None if grad is None else Allowance(grad.allowed_ulps, grad.allowed_rms_ulps),
        None if loss is None else Allowance(loss.allowed_ulps, loss.allowed_rms_ulps),
        reduced,
    )


def _by_quantity(search: MistakeSearch, allowed: Allowed, quantities: list[QuantityVerdict]) -> list[str]:
    """Where no mistake fits the gradient and the loss together, one that fits a wrong one alone
    (the loss logged with one denominator while the backward uses another), named with it."""
    found = []
    for verdict, alone in (
        (quantities[0], Allowed(allowed.gradient, None, None)),
        (quantities[-1], Allowed(None, allowed.row_losses, allowed.reduced_loss)),
    ):
        if verdict.correct or (alone.gradient is None and alone.row_losses is None and alone.reduced_loss is None):
            continue
        found += [f"{verdict.name}: {name}" for name in search.matching(alone)]
    return found


def _check_claim(dump: ArrayDump, claimed_dtype: str) -> None:
    """The claimed type must be one the answer's stored type holds (itself or a narrower one): a
    float32 array cannot hold a float64 computation's digits, so that claim cannot judge it."""
    for name, answer in (("gradient", dump.grad), ("loss", dump.loss)):
        stored = None if answer is None else float_name(answer.dtype)
        if stored is None or stored == claimed_dtype or claimed_dtype in NARROWER[stored]:
            continue
        held = ", ".join((stored, *NARROWER[stored]))
        raise OptionProblem(
            "claimed_dtype",
            f"{claimed_dtype} for a {name} stored as {stored}, which cannot hold every {claimed_dtype} value: "
            f"give the type it was computed in ({held})",
        )


def check_options(options: LossOptions, classes: int) -> None:
    """Every option checked before the first block (a weight per class among them), as the core checks them;
    a caller that starts a cluster first calls it before (:class:`~sce.errors.OptionProblem`)."""
    try:
        dtype, weights = validated_options(options)
        class_weights(weights, classes, dtype)
    except InvalidInput as problem:
        raise option_problem(problem) from None
