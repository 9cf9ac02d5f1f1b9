"""The operands' size of the fused reference, bounded over groups of SIZE_GROUP rows or classes: each
group's sum added in order, whatever numpy's reduceat does, and its largest |value|."""

from __future__ import annotations

import numpy as np
import pytest

from sce.loss.linear_blocks import SIZE_GROUP, RowBlocks, group_maxima, group_sums


def _looped_sums(values: np.ndarray, axis: int) -> np.ndarray:
    """Each group summed left to right, one float32 addition at a time."""
    moved = np.moveaxis(values, axis, 0)
    groups = []
    for start in range(0, len(moved), SIZE_GROUP):
        total = moved[start].copy()
        for row in moved[start + 1 : start + SIZE_GROUP]:
            total = (total + row).astype(np.float32)
        groups.append(total)
    return np.moveaxis(np.array(groups, np.float32).reshape(-1, *moved.shape[1:]), 0, axis)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (4, 4), (9, 7), (33, 2), (2, 33)])
@pytest.mark.parametrize("axis", [0, 1])
def test_group_sums_add_each_group_in_order_and_keep_a_shorter_last_group(shape, axis):
    values = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32) * np.float32(1e3)
    found = group_sums(values, axis)
    assert found.dtype == np.float32
    assert found.tobytes() == np.ascontiguousarray(_looped_sums(values, axis)).tobytes()


def test_group_maxima_are_the_largest_magnitudes_of_each_group_of_rows():
    values = np.zeros((SIZE_GROUP + 1, 2))
    values[:3] = [[-3.0, 1.0], [2.0, -5.0], [0.5, 0.0]]
    values[SIZE_GROUP] = [-7.0, 0.25]  # the second group, of one row
    assert group_maxima(values).tolist() == [[3.0, 5.0], [7.0, 0.25]]


def test_row_blocks_copy_each_block_to_float64_once_and_keep_its_maxima():
    e = np.arange(20, dtype=np.float32).reshape(10, 2) - 9
    blocks = RowBlocks(e, 4)
    assert [(s.start, s.stop) for s in blocks.slices] == [(0, 4), (4, 8), (8, 10)]
    assert blocks.float64(2).dtype == np.float64 and blocks.float64(2).tolist() == e[8:].tolist()
    assert blocks.group_maxima(0) is blocks.group_maxima(0)
    assert blocks.group_maxima(1).tolist() == [[5.0, 6.0]]  # rows 4–7 are [−1, 0], [1, 2], [3, 4], [5, 6]
