"""A dump graded in tiles (runs of blocks graded apart, as a cluster grades them) gets the verdict one
process gives, text and JSON, byte for byte: for 1, 3 and 7 uneven tiles returned in shuffled order.

The answers are made here in plain numpy (right in float32 or float64, and with the textbook's
mistakes); the verdict compared with is the one the same process gives block by block, and each
case also asserts the verdict its answer deserves, so that two equally wrong verdicts cannot pass.
"""

from __future__ import annotations

import io
import json
import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from sce.cli.declarations import FLAG_OF_FIELD
from sce.grading.dump import check, tiles
from sce.grading.dump.check import check_dump
from sce.grading.dump.kernel_mistakes import denominators
from sce.grading.dump.tiles import InMemory, TileEngine, TilePlan, combined, grade_tile, split
from sce.io.arrays import ArrayDump
from sce.options import LossOptions
from sce.render.dtype_check import print_dtype_check
from sce.render.json_format import dtype_check_document

ROWS, CLASSES = 61, 9
#: 3 rows a block: 21 blocks, the last of one row.
BLOCK_ENTRIES = 3 * CLASSES


def plain(z: np.ndarray, labels: np.ndarray, dtype: type, reduction: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """p − onehot over the counted rows (the gradient) and −log p_y (the row losses), in ``dtype``."""
    x = z.astype(dtype)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    counted = labels != -100
    g = p.copy()
    g[np.flatnonzero(counted), labels[counted]] -= 1
    g[~counted] = 0
    losses = np.where(counted, -np.log(p[np.arange(len(z)), np.where(counted, labels, 0)]), 0).astype(dtype)
    if reduction == "mean":
        g = g / dtype(counted.sum())
    return g.astype(dtype), losses


def inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(ROWS, CLASSES)) * 3
    labels = rng.integers(0, CLASSES, ROWS)
    labels[rng.integers(0, ROWS, 5)] = -100
    return z, labels


def dumps() -> dict[str, tuple[ArrayDump, LossOptions, str, bool]]:
    """Each case: the dump, the options, the claimed type, and whether the answer is right."""
    z, y = inputs(0)
    g32, l32 = plain(z, y, np.float32)
    g64, l64 = plain(z, y, np.float64, "sum")
    counted = int((y != -100).sum())
    mean = np.float32(l32.astype(np.float64).sum() / counted)
    return {
        "float32 gradient": (ArrayDump(z, y, None, g32, None, {}), LossOptions(), "float32", True),
        "float32 gradient and mean loss": (ArrayDump(z, y, None, g32, mean, {}), LossOptions(), "float32", True),
        "float64 gradient and row losses": (
            ArrayDump(z, y, None, g64, l64, {}),
            LossOptions(reduction="none"),
            "float64",
            True,
        ),
        "sum not mean": (ArrayDump(z, y, None, g32 * np.float32(counted), None, {}), LossOptions(), "float32", False),
        "sign flipped": (ArrayDump(z, y, None, -g32, mean, {}), LossOptions(), "float32", False),
        "one entry off": (ArrayDump(z, y, None, _one_entry_off(g32), None, {}), LossOptions(), "float32", False),
        "smoothed, wrong loss": (
            ArrayDump(z, y, None, None, np.float32(2 * mean), {}),
            LossOptions(label_smoothing=0.1),
            "float32",
            False,
        ),
        "sequential sums": (ArrayDump(z, y, None, g32, None, {}), LossOptions(), "float32", True),
        "row losses alone, z-loss": (  # the losses of no z-loss: a mistake the catalogue names
            ArrayDump(z, y, None, None, l32, {}),
            LossOptions(reduction="none", z_loss=1e-4),
            "float32",
            False,
        ),
    }


def _one_entry_off(gradient: np.ndarray) -> np.ndarray:
    wrong = gradient.copy()
    wrong[40, 3] *= 1.5
    return wrong


def shuffled(seed: int) -> tiles.TileRunner:
    """Tiles run in a shuffled order, each sent through pickle as a worker receives it."""

    def run(work, parts):
        order = list(range(len(parts)))
        random.Random(seed).shuffle(order)
        return [pickle.loads(pickle.dumps(work))(parts[index]) for index in order]

    return run


def shown(found) -> tuple[str, str]:
    """The verdict as the command line prints it: text, and JSON."""
    out = io.StringIO()
    print_dtype_check(Console(file=out, width=100, color_system=None), found, 5, FLAG_OF_FIELD)
    return out.getvalue(), json.dumps(dtype_check_document(found, FLAG_OF_FIELD), sort_keys=True)


@pytest.mark.parametrize("case", sorted(dumps()))
@pytest.mark.parametrize("count", [1, 3, 7])
def test_a_dump_in_tiles_gets_one_processs_verdict(case, count, monkeypatch):
    monkeypatch.setattr(check, "BLOCK_ENTRIES", BLOCK_ENTRIES)
    dump, options, claimed, right = dumps()[case]
    order = "sequential" if case == "sequential sums" else "parallel"
    alone = check_dump(dump, options, claimed, sum_order=order)
    assert alone.correct is right
    assert bool(alone.mistakes) == (case in ("sum not mean", "sign flipped", "row losses alone, z-loss"))
    engine = TileEngine(shuffled(count), count)
    in_tiles = check_dump(dump, options, claimed, sum_order=order, engine=engine)
    assert shown(in_tiles) == shown(alone)
    assert in_tiles.mistakes == alone.mistakes and in_tiles.hints == alone.hints


@pytest.mark.parametrize("cut", [[21], [1, 20], [12, 1, 8], [2, 3, 1, 5, 1, 4, 5]])
def test_uneven_tiles_merge_to_the_blocks_merged_in_order(cut):
    """Any cut into runs of blocks, merged in any order, is the whole pass's partials, exactly."""
    z, y = inputs(1)
    gradient, losses = plain(z, y, np.float32, "none")
    dump = ArrayDump(z, y, None, gradient, losses, {})
    options = LossOptions(reduction="none")
    plan = TilePlan(InMemory(dump), options, "float32", denominators(y, ROWS, options), True, False)
    blocks = [(start, min(ROWS, start + 3)) for start in range(0, ROWS, 3)]
    whole = grade_tile(plan, blocks)
    starts = np.cumsum([0, *cut])
    parts = [grade_tile(plan, blocks[a:b]) for a, b in zip(starts[:-1], starts[1:])]
    merged = combined(reversed(parts))
    for mine, theirs in ((merged.gradient, whole.gradient), (merged.losses, whole.losses)):
        assert mine is not None and theirs is not None
        assert (mine.entries, mine.counts.tolist(), mine.max_ulps) == (theirs.entries, theirs.counts.tolist(), theirs.max_ulps)
        assert (mine.squares, mine.baseline_squares, mine.zero_squares) == (
            theirs.squares,
            theirs.baseline_squares,
            theirs.zero_squares,
        )
        assert mine.worst == theirs.worst
    assert merged.rows == ROWS


def test_worst_entries_with_equal_errors_go_to_the_earliest_whatever_the_order():
    """Ties among the worst errors are broken by place in the dump, not by which tile came back first."""
    z, y = inputs(2)
    gradient, _ = plain(z, y, np.float64)
    wrong = gradient.copy()
    wrong[[5, 30, 55], 2] = 1.0  # three entries off by about as much; the earliest ranks first on ties
    dump = ArrayDump(z, y, None, wrong, None, {})
    options = LossOptions()
    plan = TilePlan(InMemory(dump), options, "float64", denominators(y, ROWS, options), False, False)
    blocks = [(start, min(ROWS, start + 3)) for start in range(0, ROWS, 3)]
    forward = combined([grade_tile(plan, blocks[:10]), grade_tile(plan, blocks[10:])])
    backward = combined([grade_tile(plan, blocks[10:]), grade_tile(plan, blocks[:10])])
    assert forward.gradient is not None and backward.gradient is not None
    assert forward.gradient.worst == backward.gradient.worst
    assert {entry.row for entry in forward.gradient.worst[:3]} == {5, 30, 55}


def test_a_dump_of_no_rows_with_its_reduced_loss_is_graded_in_tiles_too():
    z, y = np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
    dump = ArrayDump(z, y, None, None, np.float64(0.0), {})
    options = LossOptions(reduction="sum")
    alone = check_dump(dump, options, "float64")
    in_tiles = check_dump(dump, options, "float64", engine=TileEngine(shuffled(0), 3))
    assert alone.correct and shown(in_tiles) == shown(alone)


def test_bad_data_in_a_tile_is_placed_at_its_row_of_the_dump(monkeypatch):
    monkeypatch.setattr(check, "BLOCK_ENTRIES", BLOCK_ENTRIES)
    z, y = inputs(3)
    gradient, _ = plain(z, y, np.float64)
    z[47, 4] = np.nan
    dump = ArrayDump(z, y, None, gradient, None, {"logits": "dump.npz: array 'logits'"})
    with pytest.raises(Exception) as alone:
        check_dump(dump, LossOptions(), "float64")
    with pytest.raises(type(alone.value)) as in_tiles:
        check_dump(dump, LossOptions(), "float64", engine=TileEngine(shuffled(1), 7))
    assert "row 47" in str(alone.value) and str(in_tiles.value) == str(alone.value)


def test_split_keeps_every_block_once_in_order():
    blocks = [(i, i + 1) for i in range(10)]
    for count in range(1, 14):
        found = split(blocks, count)
        assert [block for tile in found for block in tile] == blocks
        assert len(found) == min(count, 10) and all(found)
        assert max(map(len, found)) - min(map(len, found)) <= 1


def test_the_mistake_is_named_by_the_engine_not_in_the_clients_threads(monkeypatch):
    """On an engine, every block the search misses is compared in the engine's tiles."""
    from sce.grading.dump import mistake_pass

    monkeypatch.setattr(check, "BLOCK_ENTRIES", BLOCK_ENTRIES)

    def here(*_):
        raise AssertionError("compared in the client's threads")

    monkeypatch.setattr(mistake_pass.MistakeSearch, "_catch_up", here)
    dump, options, claimed, _ = dumps()["sum not mean"]
    told: list[tuple[str, int]] = []
    found = check_dump(dump, options, claimed, engine=TileEngine(shuffled(2), 3), progress=lambda *a: told.append(a))
    assert [name for name in found.mistakes if "1/N missing" in name]
    assert sum(rows for phase, rows in told if phase == "checking") == ROWS
    assert sum(rows for phase, rows in told if phase == "naming the mistake") == ROWS


@pytest.fixture(scope="module")
def per_block():
    """A wrong float32 answer with per-row losses, each of its 21 blocks graded as a tile of its own."""
    z, y = inputs(8)
    gradient, losses = plain(z, y, np.float32, "none")
    gradient[::5] *= np.float32(1.001)
    dump = ArrayDump(z, y, None, gradient, losses, {})
    options = LossOptions(reduction="none")
    plan = TilePlan(InMemory(dump), options, "float32", denominators(y, ROWS, options), True, False)
    blocks = [(start, min(ROWS, start + 3)) for start in range(0, ROWS, 3)]
    return [grade_tile(plan, [block]) for block in blocks], grade_tile(plan, blocks)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_tiles_merge_to_the_same_partials_in_any_grouping_and_order(per_block, data):
    import copy

    blocks, whole = per_block
    cuts = sorted(data.draw(st.sets(st.integers(1, len(blocks) - 1), max_size=8)))
    groups = [blocks[a:b] for a, b in zip([0, *cuts], [*cuts, len(blocks)])]
    groups = data.draw(st.permutations(groups))
    merged = combined(combined(data.draw(st.permutations(copy.deepcopy(group)))) for group in groups)
    for mine, theirs in ((merged.gradient, whole.gradient), (merged.losses, whole.losses)):
        assert mine is not None and theirs is not None
        assert (mine.entries, mine.counts.tolist(), mine.max_ulps, mine.worst) == (
            theirs.entries,
            theirs.counts.tolist(),
            theirs.max_ulps,
            theirs.worst,
        )
        assert (mine.squares, mine.baseline_squares, mine.zero_squares) == (
            theirs.squares,
            theirs.baseline_squares,
            theirs.zero_squares,
        )
