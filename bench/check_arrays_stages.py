"""Where `sce check --arrays` spends its time: ns per entry of each stage of the verdict's pass,
in one process, on blocks of a float32 .npy dump (bench/check_arrays_large.py --keep DIR
writes one), each stage by the plain numpy way and by the faster way sce takes.

    python bench/check_arrays_stages.py DIR [--blocks 16] [--repeats 3]

Stages are timed block by block over the first --blocks blocks (2^20 entries each), the
best and the median of --repeats runs, interleaved, in CPU time (user + system: the
kernel's zeroing of fresh pages counts, a busy machine's other work does not); the whole
pass with the dense coefficients and with the sparse labels' path. (What keeping the heap
saves is measured by whole processes, bench/check_arrays_large.py run on two checkouts:
inside one process glibc's thresholds depend on what ran earlier.)
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sce import softmax_cross_entropy
from sce.grading.dump import check, histogram, verdict_pass
from sce.grading.dump import sparse_labels as label_block
from sce.grading.dump.baseline import baseline, coefficients, gradient_magnitude, ulp_unit, ulps_if_finite
from sce.grading.dump.block_errors import grade_gradient_compiled
from sce.grading.dump.kernel_mistakes import denominators, exact_rows
from sce.io.arrays import ArrayDump
from sce.io.arrays.heap import reused_heap
from sce.io.arrays.mapped_rows import block_bounds, read_rows
from sce.options import LossOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(args.folder)
    logits = np.load(folder / "logits.npy", mmap_mode="r")
    labels = np.load(folder / "labels.npy")
    grad = np.load(folder / "grad.npy", mmap_mode="r")
    dump = ArrayDump(logits, labels, None, grad, None, {})
    options = LossOptions(reduction="mean").replace(dtype="float64")
    d = denominators(labels, len(labels), options)
    bounds = block_bounds(*dump.shape, check.BLOCK_ENTRIES)[: args.blocks]
    entries = sum(stop - start for start, stop in bounds) * dump.shape[1]
    first = exact_rows(dump, *bounds[0], options, d)[0]
    assert first.labels is not None
    dense = coefficients(first.labels, None, dump.shape[1], options, d.total)
    sparse = label_block.label_coefficients(first.labels, dump.shape[1], options, d.total)
    stored = read_rows(logits, *bounds[0])
    given = read_rows(grad, *bounds[0])
    unit = ulp_unit(gradient_magnitude(first.exact.probabilities, dense), "float32")
    errors = ulps_if_finite(given, first.exact.gradient, unit)
    assert errors is not None

    def job(sparse_labels: bool, compiled: bool = True) -> Callable[[tuple[int, int]], object]:
        def grade(bound: tuple[int, int]) -> object:
            verdict_pass.SPARSE_LABELS, verdict_pass.COMPILED = sparse_labels, compiled
            return verdict_pass.BlockJob(dump, options, "float32", d, False, False).grade(bound)

        return grade

    def exact(as_float64: bool) -> Callable[[tuple[int, int]], object]:
        def compute(bound: tuple[int, int]) -> object:
            rows = read_rows(logits, *bound)
            return softmax_cross_entropy(
                rows.astype(np.float64) if as_float64 else rows,
                labels[bound[0] : bound[1]],
                options=options,
                mean_denominator=d.total,
            )

        return compute

    label_base = label_block.baseline(stored, sparse, options, "float32", False)
    assert label_base is not None

    stages: dict[str, Callable[[tuple[int, int]], object]] = {
        "read logits and gradient": lambda b: (read_rows(logits, *b), read_rows(grad, *b)),
        "exact (sce's core), float64 copy: TwoSum": exact(True),
        "exact (sce's core), float32: exact shift": exact(False),
        "baseline, dense c, via float64": lambda b: baseline(first.logits, dense, options, "float32"),
        "baseline, sparse c, as stored": lambda b: label_block.baseline(stored, sparse, options, "float32", False),
        "magnitude + unit, dense c": lambda b: ulp_unit(
            gradient_magnitude(first.exact.probabilities, dense), "float32"
        ),
        "magnitude + unit, sparse c": lambda b: ulp_unit(
            label_block.gradient_magnitude(first.exact.probabilities, sparse), "float32"
        ),
        "one quantity's errors": lambda b: ulps_if_finite(given, first.exact.gradient, unit),
        "histogram, exponent formula": lambda b: np.bincount(
            histogram.bins(errors.ravel()), minlength=len(histogram.EDGES) + 1
        ),
        "histogram, looked up": lambda b: histogram.bin_counts(errors.ravel()),
        "graded by the compiled loop": lambda b: grade_gradient_compiled(first, sparse, label_base, given, "float32"),
        "whole block, dense c": job(False),
        "whole block, sparse c (in slices), numpy": job(True, False),
        "whole block, sparse c, compiled loop": job(True),
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    warnings.simplefilter("ignore")
    for _ in range(args.repeats):
        for name, stage in stages.items():
            with reused_heap():
                began = time.process_time()
                for bound in bounds:
                    stage(bound)
                times[name].append(time.process_time() - began)
    verdict_pass.SPARSE_LABELS, verdict_pass.COMPILED = True, True
    print(f"{len(bounds)} blocks of {dump.shape[1]:,} classes, {entries:,} entries; load {os.getloadavg()[0]:.1f}")
    for name, spent in times.items():
        best, median = min(spent) / entries * 1e9, sorted(spent)[len(spent) // 2] / entries * 1e9
        print(f"{name:44s} {best:6.2f} ns/entry (median {median:6.2f})")


if __name__ == "__main__":
    main()
