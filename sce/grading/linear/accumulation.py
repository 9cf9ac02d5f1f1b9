"""The classifier's gradient as a kernel that accumulates it over chunks of rows in the input's
type forms it: the baseline a kernel with that mistake is within (bfloat16 and float16 only)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from sce.grading.linear.answers import LinearAnswer, LinearInputs
from sce.grading.linear.baseline import LinearBaseline, block_gradient
from sce.grading.linear.profiles import Profile

#: Rows per chunk tried: errors shrink about √8 from one to the next, within the allowance's 4×.
CHUNK_ROWS = (1, 8, 64, 512)


def input_type_accumulations(
    inputs: LinearInputs, profile: Profile, answer: LinearAnswer, baseline: LinearBaseline
) -> Iterator[LinearBaseline]:
    """The baseline with ∂L/∂C summed over chunks of CHUNK_ROWS rows, rounded to the input's type
    after each chunk, for each chunk size below N."""
    given = inputs.e.dtype
    e32, c32 = inputs.e.astype(np.float32), inputs.c.astype(np.float32)
    b32 = None if inputs.b is None else inputs.b.astype(given).astype(np.float32)
    n = len(e32)
    for rows_per_chunk in CHUNK_ROWS:
        if rows_per_chunk >= n:
            return
        total = np.zeros(c32.shape, given)
        with np.errstate(all="ignore"):
            for start in range(0, n, rows_per_chunk):
                rows = slice(start, min(start + rows_per_chunk, n))
                g, _ = block_gradient(e32[rows], c32, b32, inputs.terms, rows, profile, given)
                total = (total.astype(np.float32) + g.T @ e32[rows]).astype(given)
        yield dataclasses.replace(baseline, grad_classifier=total.astype(answer.types["grad_classifier"]))
