"""The battery of cases: inputs that break naive code, each with a name a learner understands."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sce.options import LossOptions


@dataclass(frozen=True)
class Case:
    """One input to the user's function: N×K logits and N labels (or N×K targets)."""

    name: str
    logits: np.ndarray
    labels: np.ndarray
    targets: np.ndarray | None = None
    #: Large or very negative logits: exp(z) overflows or underflows without the max shift.
    overflow_prone: bool = False
    #: The label's probability rounds to 0, so -log(p) is inf where the loss is finite.
    label_probability_underflows: bool = False
    #: The inputs are passed read-only, so that a function writing into them fails loudly.
    read_only: bool = False

    @property
    def rows(self) -> int:
        return int(self.logits.shape[0])

    @property
    def classes(self) -> int:
        return int(self.logits.shape[1])


def _random(rng: np.random.Generator, rows: int, classes: int, scale: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(0.0, scale, size=(rows, classes))
    labels = rng.integers(0, classes, size=rows)
    return logits, labels


def _fixed(logits: list[list[float]], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(logits, dtype=np.float64), np.array(labels, dtype=np.int64)


def label_cases(seed: int = 0) -> list[Case]:
    """The battery for functions that take class labels, easiest first: the first
    failing case is the one to fix first. ``seed`` varies the random ones."""
    rng = np.random.default_rng(seed)
    edge_logits, _ = _random(rng, 4, 6)
    int32_logits, int32_labels = _random(rng, 5, 4)
    float32_logits, float32_labels = _random(rng, 5, 4)
    read_only_logits, read_only_labels = _random(rng, 4, 3)
    return [
        Case("the textbook example: [2, 3, 4], label 1", *_fixed([[2, 3, 4]], [1])),
        Case("small random batch (4 rows, 3 classes)", *_random(rng, 4, 3)),
        Case("small random batch (8 rows, 5 classes)", *_random(rng, 8, 5)),
        Case("two classes (K = 2)", *_random(rng, 6, 2)),
        Case("a thousand classes (K = 1000)", *_random(rng, 3, 1000)),
        Case("a batch of one row (10 classes)", *_random(rng, 1, 10)),
        Case("all logits equal", *_fixed([[5, 5, 5, 5], [0, 0, 0, 0]], [0, 3])),
        Case("labels at the first and last class", edge_logits, np.array([0, 5, 5, 0])),
        Case(INT32_LABELS, int32_logits, int32_labels.astype(np.int32)),
        Case("labels as int64", *_random(rng, 5, 4)),
        Case("float32 logits", float32_logits.astype(np.float32), float32_labels),
        Case("a confident row: [0, 40], label 1", *_fixed([[0, 40], [40, 0]], [1, 0])),
        Case("large logits: 1000 and 0", *_fixed([[1000, 0], [0, 1000], [1000, 999]], [0, 1, 1]), overflow_prone=True),
        Case("huge logits: 1e4", *_fixed([[1e4, 0, -1e4], [1e4, 1e4 - 1, 1e4 - 2]], [0, 2]), overflow_prone=True),
        Case(
            "very negative logits: -1000",
            *_fixed([[-1000, -1001, -1002], [-1000, -1000, -2000]], [2, 0]),
            overflow_prone=True,
        ),
        Case(
            "the label's probability rounds to 0: [0, 1000], label 0",
            *_fixed([[0, 1000]], [0]),
            label_probability_underflows=True,
        ),
        Case("read-only inputs", read_only_logits, read_only_labels, read_only=True),
    ]


def target_cases(seed: int = 0) -> list[Case]:
    """The same battery for functions that take probability targets (N×K) instead
    of labels: each target is 0.7 on the label's class and 0.3 spread evenly, so
    that a one-hot shortcut does not pass. Label dtypes do not apply."""
    cases = []
    for case in label_cases(seed):
        if case.name.startswith("labels as"):
            continue
        name = case.name.replace(", label 1", "").replace(", label 0", "")
        name = name.replace("labels at the first and last class", "targets peaked at the first and last class")
        with_targets = _with_targets(case)
        cases.append(
            Case(
                name,
                case.logits,
                case.labels,
                None if with_targets.targets is None else with_targets.targets.astype(case.logits.dtype),
                case.overflow_prone,
                False,
                case.read_only,
            )
        )
    return cases


def option_cases(options: LossOptions) -> list[Case]:
    """Cases where the loss's options are hard: logits far beyond the cap, where
    1 − tanh²(z/c) is tiny and 1 minus a tanh near 1 loses its digits; a row whose
    log-sum-exp is near 0, where the z-loss and its gradient 2λ·lse·p nearly vanish."""
    found = []
    if options.softcap is not None:
        c = float(options.softcap)
        far = [[0.5 * c, 5 * c, -5 * c, 0.0], [20 * c, -20 * c, 10 * c, 2 * c]]
        if np.all(np.isfinite(far)):
            found.append(
                Case(
                    f"logits far beyond the cap: 5c and 20c (c = {c:g})",
                    *_fixed(far, [1, 3]),
                    overflow_prone=c / options.temperature > 700,  # the capped logits' range
                )
            )
    if options.z_loss:
        # b = log p gives lse(b) = log Σ p = 0 (up to rounding); z from b through T and the cap.
        b = np.log(np.array([[0.5, 0.3, 0.2], [0.25, 0.25, 0.5]]))
        a = b * options.temperature
        cap = options.softcap
        if cap is None or np.all(np.abs(a) < 0.9 * cap):
            z = a if cap is None else cap * np.arctanh(a / cap)
            if np.all(np.isfinite(z)):
                found.append(Case("rows whose log-sum-exp is near 0 (the z-loss's lse ≈ 0)", z, np.array([0, 2])))
    return found


def build_cases(seed: int = 0, *, targets: bool = False, options: LossOptions | None = None) -> list[Case]:
    cases = target_cases(seed) if targets else label_cases(seed)
    extra = option_cases(options) if options is not None else []
    if targets:
        extra = [_with_targets(case) for case in extra]
    return cases + extra


#: The case PyTorch's own cross_entropy refuses ("expected target dtype to be Long"): its class
#: indices are int64 tensors, so a PyTorch function is never handed int32 labels.
INT32_LABELS = "labels as int32"


def for_framework(cases: list[Case], framework: str) -> list[Case]:
    """The cases that apply to a function of ``framework`` (numpy, torch or jax)."""
    if framework == "torch":
        return [case for case in cases if case.name != INT32_LABELS]
    return cases


def _with_targets(case: Case) -> Case:
    targets = np.full(case.logits.shape, 0.3 / case.classes)
    targets[np.arange(case.rows), case.labels] += 0.7
    return Case(case.name, case.logits, case.labels, targets, case.overflow_prone)
