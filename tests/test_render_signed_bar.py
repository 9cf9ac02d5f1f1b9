"""The grad table's signed gradient bar: drawn by hand-counted half cells, and the same whether drawn one by one
or for a million classes at once."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sce.render.table import SIGNED_BAR_SIDE, gradient_bar_scale, signed_bar, signed_bars


def test_a_bar_is_half_cells_left_or_right_of_the_centre_line():
    assert signed_bar(-1.0) == "█████│     "  # 10 halves to the left: the whole side
    assert signed_bar(0.7) == "     │███▌ "  # 7 halves: 3 cells and a half
    assert signed_bar(-0.3) == "   ▐█│     "  # 3 halves, the half at the bar's far end
    assert signed_bar(0.04) == "     │     "  # under a quarter cell: nothing
    assert signed_bar(-3.0, scale=3.0) == signed_bar(-1.0)
    assert signed_bar(5.0) == signed_bar(1.0)  # beyond the scale: the whole side, never wider
    assert signed_bar(math.nan) == signed_bar(0.0)
    assert all(len(signed_bar(v)) == 2 * SIGNED_BAR_SIDE + 1 for v in (-2, -0.5, -0.0, 0, 0.5, 2, math.inf))


def test_the_scale_is_one_unless_an_entry_is_larger():
    assert gradient_bar_scale(np.array([0.09, -0.75, 0.66])) == 1.0
    assert gradient_bar_scale(np.array([0.45, -3.78, 3.33])) == 3.78
    assert gradient_bar_scale(np.array([np.inf, -2.0, np.nan])) == 2.0
    assert gradient_bar_scale(np.array([np.nan])) == 1.0


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50),
       st.floats(min_value=1.0, max_value=1e6))
def test_bars_at_once_are_the_bars_one_by_one(values, scale):
    assert signed_bars(np.array(values), scale) == [signed_bar(v, scale) for v in values]
