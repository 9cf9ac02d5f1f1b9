"""Hard cases for a fused linear cross-entropy kernel: the inputs the pytest plugin's ``sce_case`` hands a test.

Each case is a batch of hidden states E (N×D), a classifier C (V×D), labels and perhaps a bias,
in the type a kernel is run in (float32 or bfloat16, stored as that type: the check grades the
answer as that type). They are the inputs on which kernels have been seen to go wrong:

* confident rows: the label's probability from 0.99 to 0.99998, so p − 1 at the label keeps few
  of p's digits, and a kernel that rounds p to bfloat16 before subtracting 1 loses them all;
* ignored runs: long runs of ``ignore_index`` among counted rows (a mean over every row, or a
  row's gradient not zeroed, shows);
* padding-only rows: rows of zero hidden states labelled ``ignore_index``, as a padded batch
  has them (their logits are the bias alone, and must contribute nothing);
* extreme logits: logits of size ~100 (float32) or ~60 (bfloat16) beside small ones, with a
  bias: exp overflows without the max shift;
* long sums: 4,096 rows sharing a large component, nearly all of one frequent label, so that
  each entry of ∂L/∂C and ∂L/∂b is a long sum of one sign: summed over chunks of rows in
  bfloat16 (not float32), it drifts by several ulps;
* per-row upstream: reduction 'none', each row's loss given its own upstream gradient (0.5 to
  2), as a loss weighted per token gives it: a backward that scales every row by the first
  row's shows;
* past 2³¹ logits: N·V > 2³¹ (a 32-bit index overflows), only under the ``sce_slow`` marker
  and graded in quick mode.

Every case is built from a fixed seed, only when asked for (the large one is not allocated when
the tests are collected).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sce.io.arrays.dump import bfloat16_dtype

#: The types each case is given in.
DTYPES = ("float32", "bfloat16")
IGNORE_INDEX = -100
#: N × V of the large case: one more row than 2³¹ / V, so N·V passes 2³¹.
LARGE_CLASSES = 131_072
LARGE_ROWS = 2**31 // LARGE_CLASSES + 1


#: What a case's builder returns: hidden states, classifier, labels and a bias (or None), in float64.
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"]


@dataclass(frozen=True)
class LinearCase:
    """One case's inputs, in the type the kernel is run in, and the options it is graded with."""

    name: str
    dtype: str
    hidden: np.ndarray
    """E, N×D."""
    classifier: np.ndarray
    """C, V×D."""
    labels: np.ndarray
    """N int64 labels; ``ignore_index`` where a row is not counted."""
    bias: np.ndarray | None = None
    """b, V (or None)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The loss's options (keywords of ``check_linear_cross_entropy``: reduction, ignore_index, …)."""
    mode: str = "full"
    """"full", or "quick" for the case too large to check in full on a small machine."""
    grad_output: float | np.ndarray = 1.0
    """The upstream gradient the backward pass is given: 1, or one per row (reduction 'none')."""


@dataclass(frozen=True)
class CaseSpec:
    """A case not yet built: its name, its type, and how to build it."""

    name: str
    dtype: str
    build_arrays: Callable[[np.random.Generator], Arrays]
    slow: bool = False
    mode: str = "full"
    per_row: bool = False
    """reduction 'none', with an upstream gradient that differs from row to row."""

    @property
    def id(self) -> str:
        """The pytest id: "confident-rows-float32"."""
        return f"{self.name.replace(' ', '-')}-{self.dtype}"

    def build(self) -> LinearCase:
        hidden, classifier, labels, bias = self.build_arrays(np.random.default_rng(sum(map(ord, self.id))))
        kind = as_dtype(self.dtype)
        # Weights per token, as a loss weighted per row hands its backward: 0.5 to 2, exact in bfloat16.
        upstream = np.resize([0.5, 1.25, 2.0, 0.75], len(labels)).astype(kind) if self.per_row else 1.0
        return LinearCase(
            self.name,
            self.dtype,
            np.ascontiguousarray(hidden.astype(kind)),
            np.ascontiguousarray(classifier.astype(kind)),
            labels.astype(np.int64),
            None if bias is None else bias.astype(kind),
            {"reduction": "none" if self.per_row else "mean", "ignore_index": IGNORE_INDEX},
            self.mode,
            upstream,
        )


def kept_apart(case: LinearCase) -> tuple[LinearCase, LinearCase]:
    """Two copies of ``case`` that share no array: the one to grade against, its arrays read-only,
    and the one to hand a kernel, its arrays its own to change.

    Examples
    --------
    >>> case = LinearCase("tiny", "float32", np.ones((1, 2), np.float32), np.ones((3, 2), np.float32),
    ...                   np.zeros(1, np.int64))
    >>> graded, handed = kept_apart(case)
    >>> handed.hidden[...] = 0
    >>> float(graded.hidden.sum()), graded.hidden.flags.writeable
    (2.0, False)
    """
    arrays = ("hidden", "classifier", "labels", "bias", "grad_output")

    def copies(writeable: bool) -> LinearCase:
        found = {}
        for name in arrays:
            array = getattr(case, name)
            if isinstance(array, np.ndarray):
                array = array.copy()
                array.flags.writeable = writeable
            found[name] = array
        return dataclasses.replace(case, options=dict(case.options), **found)

    return copies(False), copies(True)


def as_dtype(name: str) -> np.dtype:
    """numpy's type of that name; bfloat16 is ml_dtypes' (an ImportError naming the extra without it)."""
    return bfloat16_dtype() if name == "bfloat16" else np.dtype(name)


def confident_rows(rng: np.random.Generator) -> Arrays:
    """Each row's label logit 8 to 14 above the others': p at the label from 0.99 to 0.99998, where
    p − 1 keeps few of p's digits, and none once p is rounded to bfloat16 first."""
    rows, width, classes = 16, 32, 24
    labels = rng.integers(0, classes, rows)
    classifier = np.zeros((classes, width))
    classifier[:, :classes] = 4.0 * np.eye(classes)
    classifier += rng.normal(0.0, 0.02, classifier.shape)
    margin = np.resize([2.0, 2.5, 3.0, 3.5], rows)[:, None]  # × 4: label logits 8, 10, 12, 14
    hidden = margin * np.eye(width)[labels] + rng.normal(0.0, 0.05, (rows, width))
    return hidden, classifier, labels, None


def ignored_runs(rng: np.random.Generator) -> Arrays:
    """Runs of ignored rows at the start, in the middle and at the end, between counted ones."""
    rows, width, classes = 24, 16, 40
    labels = rng.integers(0, classes, rows)
    labels[:3] = labels[9:15] = labels[-4:] = IGNORE_INDEX
    return rng.normal(0.0, 1.0, (rows, width)), rng.normal(0.0, 0.5, (classes, width)), labels, None


def padding_rows(rng: np.random.Generator) -> Arrays:
    """Rows of zeros labelled ignore_index, as padding, between and after the counted rows; a bias."""
    rows, width, classes = 20, 16, 33
    hidden = rng.normal(0.0, 1.0, (rows, width))
    labels = rng.integers(0, classes, rows)
    padding = np.zeros(rows, bool)
    padding[[2, 3, 11]] = padding[-6:] = True
    hidden[padding] = 0.0
    labels[padding] = IGNORE_INDEX
    return hidden, rng.normal(0.0, 0.5, (classes, width)), labels, rng.normal(0.0, 0.5, classes)


def long_sums(rng: np.random.Generator) -> Arrays:
    """4,096 rows near (1, …, 1) + noise, as hidden states sharing a component, labelled one
    frequent class but a few: ∂L/∂C's and ∂L/∂b's sums over the rows have one sign per class."""
    rows, width, classes = 4096, 8, 10
    labels = np.zeros(rows, np.int64)
    labels[rng.choice(rows, 16, replace=False)] = rng.integers(1, classes, 16)
    hidden = 1.0 + rng.normal(0.0, 0.1, (rows, width))
    return hidden, rng.normal(0.0, 1.0, (classes, width)), labels, rng.normal(0.0, 0.1, classes)


def extreme_logits(scale: float) -> Callable[[np.random.Generator], Arrays]:
    """Logits up to ~``scale`` in size, of both signs, beside small ones; a bias of the same size."""

    def build(rng: np.random.Generator) -> Arrays:
        rows, width, classes = 12, 8, 28
        hidden = rng.normal(0.0, 1.0, (rows, width))
        hidden[::3] *= scale / 4
        classifier = rng.normal(0.0, 1.0, (classes, width))
        bias = rng.normal(0.0, 1.0, classes)
        bias[::5] = scale / 2
        labels = rng.integers(0, classes, rows)
        return hidden, classifier, labels, bias

    return build


def past_int32(rng: np.random.Generator) -> Arrays:
    """N·V just past 2³¹ logits, with a narrow hidden size so that the inputs stay small (~10 MB)."""
    width = 8
    hidden = rng.normal(0.0, 1.0, (LARGE_ROWS, width))
    classifier = rng.normal(0.0, 0.5, (LARGE_CLASSES, width))
    return hidden, classifier, rng.integers(0, LARGE_CLASSES, LARGE_ROWS), None


def case_specs() -> tuple[CaseSpec, ...]:
    """Every case, each in float32 and bfloat16; the large one last, marked slow."""
    specs: list[CaseSpec] = []
    for dtype in DTYPES:
        extreme = extreme_logits(100.0 if dtype == "float32" else 60.0)
        specs += [
            CaseSpec("confident rows", dtype, confident_rows),
            CaseSpec("ignored runs", dtype, ignored_runs),
            CaseSpec("padding-only rows", dtype, padding_rows),
            CaseSpec("extreme logits", dtype, extreme),
            CaseSpec("long sums", dtype, long_sums),
            CaseSpec("per-row upstream", dtype, ignored_runs, per_row=True),
        ]
    specs.append(CaseSpec("past 2^31 logits", "float32", past_int32, slow=True, mode="quick"))
    return tuple(specs)
