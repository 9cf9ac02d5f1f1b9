"""Verdicts the float64 reference's error bound cannot decide, decided by recomputing the entries
that matter exactly (:mod:`.exact_rows`).

The blocked reference is off by at most its bound, ``band`` ulps of the graded type, at every
entry. So an answer's worst error against it is its true worst error to within ± band, and so is
the baseline's, which sets the allowance. Where the answer's worst plus the band is within the
least allowance the baseline's errors allow, or its worst minus the band beyond the largest,
the bound decides (the common case: in float32 the band is ~10⁻⁴ ulp). Otherwise the entries
that could change the verdict are recomputed exactly: the answer's whose error could reach the
allowance, the baseline's that could be its worst, and, where the typical error is that close
to its allowance, every entry held. Then the verdict is decided again with their exact errors
and the band on the rest. At most :data:`MAX_ENTRIES` entries are recomputed, and only where
the exact rows they need cost at most :data:`MAX_EXACT_PRODUCTS` products; past that, an output
is graded as the bound allows (its allowance widened by the band), and the report says so.

An :class:`EntryStore` keeps, as the blocks are graded, only the entries that could lie in the
band: the answer's above the least allowance the baseline seen so far allows, the baseline's
within two bands of its worst so far; a block whose worst errors are below both is passed over
after reading two numbers. A float64 answer's band is hundreds of ulps or more, so its entries are
kept during the blocked pass. A narrower type's band (~10⁻⁴ ulp) is read after the pass and keeps
nothing: only where it leaves a verdict open does the check run again, keeping them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sce.grading.dump.verdict import LEAST_MARGIN_ULPS, QuantityVerdict, allowance
from sce.grading.linear.answers import LinearInputs

#: The most entries recomputed exactly in one check (the answer's and the baseline's together).
MAX_ENTRIES = 4096
#: The most products of exact logits formed (rows × V × D): under a second of Python's integers.
MAX_EXACT_PRODUCTS = 1 << 22
#: The most exact rows' logits carried through mpmath's exponentials (rows × V).
MAX_EXACT_LOGITS = 1 << 15
#: The most terms of the recomputed entries' sums (V for an entry of ∂L/∂E, N for one of ∂L/∂C or
#: ∂L/∂b), each an exact product in mpmath: a second or two.
MAX_EXACT_TERMS = 1 << 19

#: How a verdict was decided: by the reference's bound alone, by entries recomputed exactly, or
#: (past the cap) by the bound, the allowance widened by it.
BY_BOUND, BY_EXACT, PAST_CAP = "bound", "exact", "bound_past_cap"

#: The outputs in the order a report names them.
_REPORTED = ("loss", "grad_hidden", "grad_classifier", "grad_bias")
_FIELDS = ("row", "column", "given", "base", "expected", "unit", "excuse", "error", "base_error")


@dataclass
class EntryStore:
    """The entries of one output that could lie in the band, kept during the blocked pass."""

    band: float
    """The reference's bound, in ulps of the output's type."""
    cap: int = MAX_ENTRIES
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)
    dropped_error: float = 0.0
    """The largest answer error among entries let go for the cap."""
    dropped_base: float = 0.0
    dropped: int = 0
    """How many entries were let go for the cap."""

    def floors(self, verdict: QuantityVerdict) -> tuple[float, float]:
        """The answer's error above which an entry could reach the least allowance, and the
        baseline's above which it could be the baseline's worst (both only rise as blocks come)."""
        base = verdict.baseline_ulps
        return allowance(max(base - self.band, 0.0), LEAST_MARGIN_ULPS) - self.band, base - 2 * self.band

    def wants(self, verdict: QuantityVerdict, worst: float, base_worst: float) -> bool:
        """Whether a block just graded, whose answer's worst error is ``worst`` and the baseline's
        ``base_worst``, may hold entries to keep (the common case reads two numbers and stops)."""
        floor_a, floor_b = self.floors(verdict)
        return base_worst >= floor_b or (verdict.max_ulps > floor_a and worst > floor_a)

    def offer(
        self, verdict: QuantityVerdict, errors: np.ndarray, base_errors: np.ndarray, block: dict[str, Any]
    ) -> None:
        """One graded block: ``block`` holds its ``given``, ``base``, ``expected``, ``unit`` and
        ``excuse`` (arrays shaped as ``errors``) and its ``start``."""
        floor_a, floor_b = self.floors(verdict)
        with np.errstate(invalid="ignore"):
            take = base_errors >= floor_b
            if verdict.max_ulps > floor_a:
                take |= errors > floor_a
            take &= np.isfinite(errors) & np.isfinite(base_errors)
        index = self._fewest(np.flatnonzero(take), errors.ravel(), base_errors.ravel())
        if not index.size:
            return
        position = np.unravel_index(index, errors.shape)
        columns = position[1] if errors.ndim == 2 else np.full(index.size, -1)
        part = {"row": block["start"] + position[0], "column": columns}
        for name in ("given", "base", "expected", "unit", "excuse"):
            part[name] = np.broadcast_to(np.asarray(block[name], np.float64), errors.shape).ravel()[index]
        part["error"], part["base_error"] = errors.ravel()[index], base_errors.ravel()[index]
        self.parts.append(part)
        if sum(len(p["row"]) for p in self.parts) > 4 * self.cap:
            self.prune(verdict)

    def _fewest(self, index: np.ndarray, errors: np.ndarray, base_errors: np.ndarray) -> np.ndarray:
        """At most ``cap`` of a block's answer's worst and of its baseline's (a float64 block
        holds millions in the band); the largest errors let go are remembered."""
        if index.size <= 2 * self.cap:
            return index
        keep = np.zeros(index.size, bool)
        keep[np.argpartition(-errors[index], self.cap)[: self.cap]] = True
        keep[np.argpartition(-base_errors[index], self.cap)[: self.cap]] = True
        self.dropped_error = max(self.dropped_error, float(errors[index[~keep]].max()))
        self.dropped_base = max(self.dropped_base, float(base_errors[index[~keep]].max()))
        self.dropped += int((~keep).sum())
        return index[keep]

    def prune(self, verdict: QuantityVerdict) -> dict[str, np.ndarray]:
        """The entries held, below the floors let go, then at most ``cap`` of the answer's worst
        and of the baseline's (the largest errors let go are remembered)."""
        held = self.held()
        floor_a, floor_b = self.floors(verdict)
        held = _where(held, (held["error"] > floor_a) | (held["base_error"] >= floor_b))
        if len(held["row"]) > self.cap:
            keep = np.zeros(len(held["row"]), bool)
            keep[np.argsort(-held["error"], kind="stable")[: self.cap]] = True
            keep[np.argsort(-held["base_error"], kind="stable")[: self.cap]] = True
            self.dropped_error = max(self.dropped_error, float(held["error"][~keep].max(initial=0.0)))
            self.dropped_base = max(self.dropped_base, float(held["base_error"][~keep].max(initial=0.0)))
            self.dropped += int((~keep).sum())
            held = _where(held, keep)
        self.parts = [held]
        return held

    def held(self) -> dict[str, np.ndarray]:
        if not self.parts:
            return {name: np.zeros(0, np.int64 if name in ("row", "column") else np.float64) for name in _FIELDS}
        return {name: np.concatenate([p[name] for p in self.parts]) for name in _FIELDS}


def _where(held: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[keep] for name, values in held.items()}


@dataclass(frozen=True)
class Span:
    low: float
    high: float


@dataclass(frozen=True)
class Settled:
    """One output's verdict after the band is accounted for: how it was decided, and its figures."""

    decided_by: str
    passed: bool
    worst_ulp: float
    allowed_ulp: float
    baseline_ulp: float
    rms_ulp: float
    allowed_rms_ulp: float
    recomputed: int = 0
    worst_entry: tuple[tuple[int, ...], float, float] | None = None
    """Where the worst error is, with the exact value and the answer's there, where it was recomputed."""


def bound_decides(verdict: QuantityVerdict, band: float) -> bool | None:
    """True or False where the band cannot change the verdict; None where it can."""
    if verdict.counts[-1]:
        return False  # not finite where the truth is: wrong whatever the reference's last digits
    worst = Span(max(verdict.max_ulps - band, 0.0), verdict.max_ulps + band)
    rms = Span(max(verdict.rms_ulps - band, 0.0), verdict.rms_ulps + band)
    base = Span(max(verdict.baseline_ulps - band, 0.0), verdict.baseline_ulps + band)
    base_rms = Span(max(verdict.baseline_rms_ulps - band, 0.0), verdict.baseline_rms_ulps + band)
    return _decided(verdict, band, worst, rms, base, base_rms)


def _decided(verdict: QuantityVerdict, band: float, worst: Span, rms: Span, base: Span, base_rms: Span) -> bool | None:
    zero = verdict.zero_rms_ulps
    least, least_rms = allowed_at(verdict, base.low, base_rms.low, max(zero - band, 0.0))
    most, most_rms = allowed_at(verdict, base.high, base_rms.high, zero + band)
    if worst.low > most or rms.low > most_rms:
        return False
    if worst.high <= least and rms.high <= least_rms:
        return True
    return None


def allowed_at(verdict: QuantityVerdict, base: float, base_rms: float, zero_rms: float) -> tuple[float, float]:
    """The worst and typical errors the verdict's rules allow, were the baseline's worst and
    typical errors and the values' own size these (each rule only rises with them)."""
    n = max(verdict.entries, 1)
    moved = dataclasses.replace(
        verdict, baseline_ulps=base, baseline_squares=(base_rms * base_rms * n,), zero_squares=zero_rms * zero_rms * n
    )
    return moved.allowed_ulps, moved.allowed_rms_ulps


def by_bound(verdict: QuantityVerdict, passed: bool) -> Settled:
    """The verdict's own figures, the allowance without the band (the band decided nothing)."""
    return Settled(BY_BOUND, passed, verdict.max_ulps, verdict.allowed_ulps, verdict.baseline_ulps,
                   verdict.rms_ulps, verdict.allowed_rms_ulps)  # fmt: skip


def in_band(verdict: QuantityVerdict, store: EntryStore) -> dict[str, np.ndarray]:
    """The held entries whose exact errors could change the verdict, the likeliest first: all
    held where the typical error is within the band of its allowance, else those near the worst."""
    held = store.prune(verdict)
    r = store.band
    least = allowed_at(verdict, max(verdict.baseline_ulps - r, 0.0), 0.0, 0.0)[0]
    near = (held["error"] + r > least) | (held["base_error"] >= verdict.baseline_ulps - 2 * r)
    chosen = _where(held, np.ones(len(held["row"]), bool) if typical_close(verdict, r) else near)
    order = np.argsort(-np.maximum(chosen["error"], chosen["base_error"]), kind="stable")
    return {name: values[order] for name, values in chosen.items()}


def typical_close(verdict: QuantityVerdict, band: float) -> bool:
    """Whether the typical error is within the band of what its allowance may be: then only
    every entry's exact error decides it."""
    base_rms, zero = verdict.baseline_rms_ulps, verdict.zero_rms_ulps
    least_rms = allowed_at(verdict, 0.0, max(base_rms - band, 0.0), max(zero - band, 0.0))[1]
    most_rms = allowed_at(verdict, verdict.baseline_ulps + band, base_rms + band, zero + band)[1]
    return verdict.rms_ulps + band > least_rms and verdict.rms_ulps - band <= most_rms


def settled_with(
    verdict: QuantityVerdict, store: EntryStore, chosen: dict[str, np.ndarray], exact: np.ndarray
) -> Settled:
    """The verdict with ``chosen``'s exact values (``exact``, float64, in their order; the
    first ``len(exact)`` of them), the band on every other entry."""
    r, k = store.band, len(exact)
    known = {name: values[:k] for name, values in chosen.items()}
    with np.errstate(invalid="ignore"):
        error = np.maximum(np.abs(known["given"] - exact) - known["excuse"], 0.0) / known["unit"]
        base_error = np.abs(known["base"] - exact) / known["unit"]
    others = held_others(store, known)
    rest_a, rest_b = _rest_bounds(verdict, store, others)
    worst = Span(max(verdict.max_ulps - r, _top(error)), max(_top(error), rest_a + r))
    base_span = Span(max(verdict.baseline_ulps - r, _top(base_error)), max(_top(base_error), rest_b + r))
    n, left = max(verdict.entries, 1), max(verdict.entries - k, 0)
    rms = _rms_span(verdict.squares, known["error"], error, r, n, left)
    base_squares = max(verdict.baseline_squares, default=0.0)
    base_rms = _rms_span(base_squares, known["base_error"], base_error, r, n, left)
    decided = _decided(verdict, r, worst, rms, base_span, base_rms)
    shown_worst, where = _shown_worst(verdict, known, exact, error, others)
    shown_base = max(_top(base_error), store.dropped_base, _top(others["base_error"]))
    shown_rms = _root(verdict.squares - float(np.sum(known["error"] ** 2)) + float(np.sum(error**2)), n)
    shown_base_rms = _root(base_squares - float(np.sum(known["base_error"] ** 2)) + float(np.sum(base_error**2)), n)
    allowed, allowed_rms = allowed_at(verdict, shown_base, shown_base_rms, verdict.zero_rms_ulps)
    if decided is None:  # past the cap: as the bound allows
        allowed, allowed_rms = allowed + r, allowed_rms + r
        passed = shown_worst <= allowed and shown_rms <= allowed_rms
        return Settled(PAST_CAP, passed, shown_worst, allowed, shown_base, shown_rms, allowed_rms, k, where)
    return Settled(BY_EXACT, decided, shown_worst, allowed, shown_base, shown_rms, allowed_rms, k, where)


def _rest_bounds(verdict: QuantityVerdict, store: EntryStore, others: dict[str, np.ndarray]) -> tuple[float, float]:
    """The largest measured errors (the answer's, the baseline's) of the entries not recomputed:
    those held, those let go for the cap, and those never held (below the final floors); −inf
    where every entry was recomputed."""
    floor_a, floor_b = store.floors(verdict)
    never_held = verdict.entries - len(store.held()["row"]) - store.dropped
    answer = [float(e) for e in others["error"]] + ([store.dropped_error] if store.dropped else [])
    base = [float(e) for e in others["base_error"]] + ([store.dropped_base] if store.dropped else [])
    if never_held > 0:
        answer.append(min(verdict.max_ulps, floor_a))
        base.append(min(verdict.baseline_ulps, floor_b))
    return max(answer, default=-math.inf), max(base, default=-math.inf)


def held_others(store: EntryStore, known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The held entries not among ``known`` (by place)."""
    held = store.held()
    places = set(zip(known["row"].tolist(), known["column"].tolist()))
    keep = np.array([(r, c) not in places for r, c in zip(held["row"].tolist(), held["column"].tolist())], bool)
    return _where(held, keep.reshape(-1)) if len(keep) else held


def _shown_worst(
    verdict: QuantityVerdict,
    known: dict[str, np.ndarray],
    exact: np.ndarray,
    error: np.ndarray,
    others: dict[str, np.ndarray],
) -> tuple[float, tuple[tuple[int, ...], float, float] | None]:
    """The worst error to show and where: a recomputed entry's exact error, else the largest measured
    one among the entries held and the verdict's worst that were not recomputed."""
    found: list[tuple[float, int, int, float, float]] = []
    if len(error):
        at = int(np.argmax(error))
        found.append((float(error[at]), int(known["row"][at]), int(known["column"][at]), float(exact[at]),
                      float(known["given"][at])))  # fmt: skip
    if len(others["error"]):
        at = int(np.argmax(others["error"]))
        found.append((float(others["error"][at]), int(others["row"][at]), int(others["column"][at]),
                      float(others["expected"][at]), float(others["given"][at])))  # fmt: skip
    places = set(zip(known["row"].tolist(), known["column"].tolist()))
    for e in verdict.worst:
        column = -1 if e.column is None else e.column
        if (e.row, column) not in places and math.isfinite(e.ulps):
            found.append((e.ulps, e.row, column, e.expected, e.given))
            break
    if not found:
        return 0.0, None
    ulps, row, column, expected, given = max(found, key=lambda entry: entry[0])  # ties: the recomputed, first
    return ulps, ((row,) if column < 0 else (row, column), expected, given)


def _rms_span(squares: float, measured: np.ndarray, exact: np.ndarray, band: float, n: int, left: int) -> Span:
    """The typical error's span: the recomputed entries' exact errors, the rest's norm ± the band."""
    known = float(np.sum(exact**2))
    rest = math.sqrt(max(squares - float(np.sum(measured**2)), 0.0))
    spread = band * math.sqrt(left)
    return Span(_root(known + max(rest - spread, 0.0) ** 2, n), _root(known + (rest + spread) ** 2, n))


def _root(squares: float, n: int) -> float:
    return math.sqrt(max(squares, 0.0) / n)


def _top(values: np.ndarray) -> float:
    return float(values.max(initial=0.0))


def settle(
    graded: dict[str, tuple[QuantityVerdict, EntryStore | None, float]], inputs: LinearInputs
) -> dict[str, Settled]:
    """Each output's verdict: by the bound (``band`` ulps) where it decides, else by its entries in
    the band recomputed exactly (an output left open has its store), within :data:`MAX_ENTRIES` and
    the exact rows' budget."""
    found: dict[str, Settled] = {}
    undecided: dict[str, dict[str, np.ndarray]] = {}
    stores: dict[str, tuple[QuantityVerdict, EntryStore]] = {}
    for name, (verdict, store, band) in graded.items():
        decided = bound_decides(verdict, band)
        if decided is not None:
            found[name] = by_bound(verdict, decided)
            continue
        assert store is not None, "an output the bound leaves open has its entries kept"
        undecided[name], stores[name] = in_band(verdict, store), (verdict, store)
    if not undecided:
        return found
    from sce.grading.linear.exact_rows import ExactRows

    rows: ExactRows | None = None  # its integers are V×D: formed only where some entry fits the budget
    n, d = inputs.e.shape
    v = len(inputs.c)
    budget = _Budget(min(MAX_EXACT_PRODUCTS // max(1, v * d), MAX_EXACT_LOGITS // max(1, v)), MAX_ENTRIES,
                     MAX_EXACT_TERMS)  # fmt: skip
    for name in ("loss", "grad_hidden", "grad_bias", "grad_classifier"):
        if name not in undecided:
            continue
        verdict, store = stores[name]
        chosen = undecided[name]
        places = list(zip(chosen["row"].tolist(), chosen["column"].tolist()))
        whole = name in ("grad_bias", "grad_classifier") or (name == "loss" and inputs.terms.reduction != "none")
        length = {"grad_hidden": v, "grad_classifier": n, "grad_bias": n}.get(name, 1)
        every = typical_close(verdict, store.band)
        if every and (len(places) < verdict.entries or not budget.covers(len(places), length)):
            places = []  # every entry is needed (the typical error is that close) and not all fit: none help
        places = budget.take(places, list(range(n)) if whole else None, length)
        if places:
            rows = rows or ExactRows(inputs)
            rows.ensure(list(range(n)) if whole else sorted({r for r, _ in places}))
        exact = np.array([float(_exact_value(rows, name, r, c)) for r, c in places], dtype=np.float64)
        chosen, exact = _finite_first(chosen, exact)
        found[name] = settled_with(verdict, store, chosen, exact)
    return found


def _finite_first(chosen: dict[str, np.ndarray], exact: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The entries whose exact value is finite first, with those values; the others (a mean over no
    counted weight is 0/0) are left to the bound, as if past the cap."""
    finite = np.isfinite(exact)
    if finite.all():
        return chosen, exact
    k = len(exact)
    order = np.concatenate([np.flatnonzero(finite), np.flatnonzero(~finite), np.arange(k, len(chosen["row"]))])
    return {name: values[order] for name, values in chosen.items()}, exact[finite]


@dataclass
class _Budget:
    """What is left of the exact rows and entries a check may recompute."""

    rows: int
    entries: int
    terms: int
    used: set[int] = field(default_factory=set)

    def covers(self, count: int, length: int) -> bool:
        """Whether ``count`` entries of sums of ``length`` terms fit in what is left."""
        return count <= self.entries and count * length <= self.terms

    def take(self, places: list[tuple[int, int]], every_row: list[int] | None, length: int) -> list[tuple[int, int]]:
        """The first of ``places`` within the budget, each a sum of ``length`` terms (none where
        the rows all of them need do not fit)."""
        places = places[: min(self.entries, self.terms // max(1, length))]
        if every_row is not None:
            if len(self.used | set(every_row)) > self.rows:
                return []
            self.used |= set(every_row)
        else:
            fitting = []
            for place in places:
                if place[0] not in self.used and len(self.used) >= self.rows:
                    break
                self.used.add(place[0])
                fitting.append(place)
            places = fitting
        self.entries -= len(places)
        self.terms -= len(places) * length
        return places


def _exact_value(rows: Any, name: str, row: int, column: int) -> Any:
    if name == "grad_hidden":
        return rows.grad_hidden(row, column)
    if name == "grad_classifier":
        return rows.grad_classifier(row, column)
    if name == "grad_bias":
        return rows.grad_bias(row)
    return rows.loss((row,))


def summary(settled: dict[str, Settled]) -> dict[str, Any]:
    """What the report says of the entries recomputed exactly: how many, of which output, the cap,
    and which outputs (past it) the bound decided with their allowance widened by it."""
    ordered = [(name, settled[name]) for name in _REPORTED if name in settled]
    by_output = {name: s.recomputed for name, s in ordered if s.recomputed}
    past = [name for name, s in ordered if s.decided_by == PAST_CAP]
    total = sum(by_output.values())
    if total:
        parts = ", ".join(f"{name} {count}" for name, count in by_output.items())
        entries = "entry" if total == 1 else "entries"
        said = f"{total} {entries} recomputed exactly, where the reference's bound could not decide ({parts})"
    else:
        said = "no entry recomputed" + ("" if past else ": the reference's error bound decided every verdict")
    if past:
        said += (
            f"; past the cap ({MAX_ENTRIES} entries, {MAX_EXACT_PRODUCTS:,} products of exact logits, "
            f"{MAX_EXACT_TERMS:,} terms of exact sums), "
            f"{', '.join(past)} decided by the bound, its allowance widened by the reference's bound"
        )
    return {"recomputed": total, "by_output": by_output, "cap": MAX_ENTRIES, "past_cap": past, "statement": said}
