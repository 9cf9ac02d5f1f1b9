"""Exact sums: every term added exactly, the total rounded once, whatever the grouping.

The reference is Python's fractions (exact), and ``math.fsum`` (correctly rounded).
"""

from __future__ import annotations

import json
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sce.batch import BatchRequest, run_batch
from sce.io.csv import records
from sce.loss import LossOptions, softmax_cross_entropy
from sce.loss.exact_sum import ExactSum, exact_ratio

finite_floats = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True, width=64)


def exact(values) -> Fraction:
    return sum((Fraction(float(v)) for v in values), Fraction(0))


def nearest_float32(value: Fraction) -> float:
    """``value`` rounded to nearest float32, ties to even, by exact comparison with its neighbours."""
    start = np.float32(float(value))
    candidates = {start, np.nextafter(start, np.float32(-np.inf)), np.nextafter(start, np.float32(np.inf))}
    finite = [c for c in candidates if np.isfinite(c)]
    return float(min(finite, key=lambda c: (abs(Fraction(float(c)) - value), int(c.view(np.uint32)) & 1)))


@settings(max_examples=300)
@given(arrays(np.float64, st.integers(0, 300), elements=finite_floats))
def test_the_sum_is_exact_and_rounded_once(values):
    total = ExactSum.of(values)
    assert total.exact() == exact(values)
    try:
        expected = math.fsum(values.tolist())
    except OverflowError:  # fsum's intermediate overflow: round the exact sum by hand
        total_exact, limit = exact(values), Fraction(2**1024 - 2**970)  # halfway from the largest float to 2^1024
        expected = float(total_exact) if abs(total_exact) < limit else (math.inf if total_exact > 0 else -math.inf)
    assert total.value() == expected


@settings(max_examples=200)
@given(
    arrays(np.float64, st.integers(1, 200), elements=finite_floats | st.sampled_from([math.inf, -math.inf, math.nan])),
    st.lists(st.integers(0, 200), max_size=6),
    st.randoms(use_true_random=False),
)
def test_no_grouping_or_order_changes_the_sum(values, cuts, random):
    pieces = np.split(values, sorted({c % (len(values) + 1) for c in cuts}))
    random.shuffle(pieces)
    merged = ExactSum()
    for piece in pieces:
        shuffled = piece.copy()
        random.shuffle(shuffled)
        merged = merged + ExactSum.of(shuffled)
    assert merged == ExactSum.of(values)
    whole, grouped = ExactSum.of(values).value(), merged.value()
    assert whole == grouped or (math.isnan(whole) and math.isnan(grouped))


def test_infinities_and_nans_sum_as_ieee_adds_them():
    assert ExactSum.of(np.array([1.0, math.inf])).value() == math.inf
    assert ExactSum.of(np.array([-math.inf, 1.0])).value() == -math.inf
    assert math.isnan(ExactSum.of(np.array([math.inf, -math.inf])).value())
    assert math.isnan(ExactSum.of(np.array([math.nan, 1.0])).value())
    assert ExactSum.of(np.array([1.7e308, 1.7e308])).value() == math.inf  # finite terms, a sum past the range
    assert exact_ratio([(ExactSum.of(np.array([1.7e308, 1.7e308])), 2.0)]) == 1.7e308


@settings(max_examples=300)
@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(0, 1e30)), st.floats(1e-3, 1e6))
def test_a_ratio_is_rounded_once_in_float32_too(values, denominator):
    value = exact(values) / Fraction(denominator)
    assert exact_ratio([(ExactSum.of(values), denominator)]) == float(value)
    assert exact_ratio([(ExactSum.of(values), denominator)], np.float32) == nearest_float32(value)


def test_float32_rounding_is_not_double_rounding():
    # 1 + 2^-24 + 2^-60 is just above the float32 midpoint 1 + 2^-24: float64 rounds it onto the
    # midpoint, and float32 would then round that to even (1.0); once, it rounds up.
    terms = np.array([1.0, 2.0**-24, 2.0**-60])
    assert exact_ratio([(ExactSum.of(terms), 1.0)], np.float32) == 1.0 + 2.0**-23


def test_the_mean_of_many_rows_is_rounded_once():
    # Regression: the API's mean was a float sum of the rows, rounded at every addition.
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 4, (20_000, 5))
    labels = rng.integers(0, 5, 20_000)
    result = softmax_cross_entropy(logits, labels, options=LossOptions(reduction="mean"))
    assert result.loss == float(exact(result.losses) / len(labels))
    summed = softmax_cross_entropy(logits, labels, options=LossOptions(reduction="sum"))
    assert summed.loss == math.fsum(summed.losses.tolist())


def test_the_mean_with_weights_divides_the_exact_sum_by_the_weight_sum():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 4, (5_000, 3))
    labels = rng.integers(0, 3, 5_000)
    weights = (0.1, 0.7, 2.3)
    result = softmax_cross_entropy(logits, labels, options=LossOptions(reduction="mean", weight=weights))
    denominator = sum((Fraction(weights[k]) for k in labels.tolist()), Fraction(0))
    assert result.denominator == float(denominator)
    assert result.loss == float(exact(result.losses) / Fraction(result.denominator))


def test_a_float32_mean_is_rounded_once_to_float32():
    rng = np.random.default_rng(5)
    logits = rng.normal(0, 4, (3_000, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 3_000)
    result = softmax_cross_entropy(logits, labels, options=LossOptions(reduction="mean", dtype="float32"))
    assert result.loss == nearest_float32(exact(result.losses) / len(labels))


def scored(tmp_path, text: str, block_bytes: int, monkeypatch, **options) -> tuple[bytes, dict, str]:
    monkeypatch.setattr(records, "BLOCK_BYTES", block_bytes)
    (tmp_path / "in.csv").write_text(text)
    for name in ("out.csv", "summary.json"):
        (tmp_path / name).unlink(missing_ok=True)
    request = BatchRequest(
        str(tmp_path / "in.csv"),
        str(tmp_path / "out.csv"),
        options=LossOptions(**options),
        summary_path=str(tmp_path / "summary.json"),
    )
    summary = run_batch(request)
    document = (tmp_path / "summary.json").read_text()
    return (tmp_path / "out.csv").read_bytes(), json.loads(document), repr(summary.reduced_loss)


def generated_file(rng: np.random.Generator, rows: int, classes: int) -> str:
    logits = rng.normal(0, 6, (rows, classes)) * rng.choice([1e-3, 1.0, 30.0], (rows, 1))
    labels = rng.integers(-1, classes, rows)  # -1: ignored under ignore_index=-1
    lines = [",".join([*(f"z{k}" for k in range(classes)), "label"])]
    lines += [",".join([*map(repr, row.tolist()), str(label)]) for row, label in zip(logits, labels)]
    return "\n".join(lines) + "\n"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 60),
    classes=st.integers(2, 5),
    options=st.sampled_from(
        [
            dict(reduction="mean", ignore_index=-1),
            dict(reduction="mean", ignore_index=-1, weight="random"),
            dict(reduction="sum", ignore_index=-1),
            dict(reduction="none", ignore_index=-1),
            dict(reduction="mean", ignore_index=-1, z_loss=1e-3, label_smoothing=0.1),
        ]
    ),
)
def test_block_size_never_changes_the_bits_of_the_mean_or_of_the_summary(
    tmp_path_factory, monkeypatch, seed, rows, classes, options
):
    rng = np.random.default_rng(seed)
    options = dict(options)
    if options.get("weight") == "random":
        options["weight"] = tuple(rng.uniform(0.1, 3, classes).tolist())
    text = generated_file(rng, rows, classes)
    folder = tmp_path_factory.mktemp("blocks")
    runs = [scored(folder, text, block_bytes, monkeypatch, **options) for block_bytes in (1 << 20, 97, 31)]
    assert runs[1] == runs[0] and runs[2] == runs[0]
    # And one call of the core with every row gives the summary's mean, bit for bit.
    data = np.array([line.split(",") for line in text.splitlines()[1:]], dtype=float)
    if options["reduction"] == "mean":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # every row ignored: a mean of nothing, NaN
            core = softmax_cross_entropy(data[:, :-1], data[:, -1].astype(int), options=LossOptions(**options))
        assert runs[0][1]["mean_loss"] == core.loss or (math.isnan(core.loss) and runs[0][1]["mean_loss"] == "nan")


def test_the_summary_of_the_rows_in_another_order_has_the_same_bits(tmp_path, monkeypatch):
    rng = np.random.default_rng(9)
    text = generated_file(rng, 200, 4)
    header, *lines = text.splitlines()
    shuffled = "\n".join([header, *rng.permutation(lines).tolist()]) + "\n"
    _, first, _ = scored(tmp_path, text, 1 << 20, monkeypatch, reduction="mean", ignore_index=-1)
    _, second, _ = scored(tmp_path, shuffled, 500, monkeypatch, reduction="mean", ignore_index=-1)
    assert first == second


@pytest.mark.parametrize("reduction", ["mean", "none", "sum"])
def test_the_summary_holds_round_trip_floats_and_nothing_that_varies(tmp_path, monkeypatch, reduction):
    text = "z0,z1,z2,label\n2,3,4,1\n1,1,1,0\n0,0,9,2\n"
    _, document, _ = scored(tmp_path, text, 1 << 20, monkeypatch, reduction=reduction)
    losses = softmax_cross_entropy(np.array([[2, 3, 4], [1, 1, 1], [0, 0, 9.0]]), np.array([1, 0, 2])).losses
    assert list(document) == [
        "reduction", "rows", "counted_rows", "ignored_rows", "classes", "denominator", "loss_sum", "z_loss_sum",
        "mean_loss", "correct_predictions", "accuracy", "infinite_losses",
    ]  # fmt: skip
    assert document["reduction"] == reduction
    assert (document["rows"], document["counted_rows"], document["ignored_rows"]) == (3, 3, 0)
    assert document["denominator"] == 3.0
    assert document["loss_sum"] == float(exact(losses))
    assert document["mean_loss"] == float(exact(losses) / 3)
    assert document["accuracy"] == 2 / 3


def test_a_mean_over_no_counted_rows_is_written_as_the_string_nan(tmp_path, monkeypatch):
    _, document, _ = scored(tmp_path, "z0,z1,label\n1,2,-100\n", 1 << 20, monkeypatch, reduction="mean")
    assert (document["mean_loss"], document["accuracy"], document["denominator"]) == ("nan", "nan", 0.0)
    text = (tmp_path / "summary.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in the summary"))  # strict JSON


def test_block_size_never_changes_the_summary_of_a_dump_of_arrays(tmp_path, monkeypatch):
    from sce.batch import array_source
    from sce.io.arrays import DumpRequest

    rng = np.random.default_rng(21)
    logits = (rng.normal(0, 5, (301, 7)) * rng.choice([1e-2, 1.0, 40.0], (301, 1))).astype(np.float32)
    np.savez(tmp_path / "dump.npz", logits=logits, labels=rng.integers(0, 7, 301))
    documents = []
    for entries in (1 << 18, 7 * 13, 7):  # one block, blocks of 13 rows, a row at a time
        monkeypatch.setattr(array_source, "BLOCK_ENTRIES", entries)
        request = BatchRequest(
            str(tmp_path / "dump.npz"),
            str(tmp_path / "out.npz"),
            options=LossOptions(reduction="mean"),
            arrays=DumpRequest(str(tmp_path / "dump.npz")),
            summary_path=str(tmp_path / "summary.json"),
            output_format="npz",
        )
        run_batch(request)
        documents.append((tmp_path / "summary.json").read_text())
    assert documents[0] == documents[1] == documents[2]
    core = softmax_cross_entropy(logits, np.load(tmp_path / "dump.npz")["labels"], options=LossOptions(reduction="mean"))
    assert json.loads(documents[0])["mean_loss"] == core.loss


def test_summaries_of_partitions_merge_to_the_whole_files_bits(tmp_path, monkeypatch):
    # The seam a cluster's engine combines: each partition's summary, added in any grouping.
    from sce.batch import BatchSummary

    rng = np.random.default_rng(17)
    logits = rng.normal(0, 8, (500, 6))
    labels = rng.integers(-1, 6, 500)
    options = LossOptions(reduction="mean", ignore_index=-1, z_loss=1e-3)
    whole = softmax_cross_entropy(logits, labels, options=options)

    def summary_of(rows: slice) -> BatchSummary:
        part = BatchSummary(reduction="mean", denominator=whole.denominator)
        denominators = dict(mean_denominator=whole.denominator, z_loss_denominator=whole.z_loss_denominator)
        part.add(softmax_cross_entropy(logits[rows], labels[rows], options=options, **denominators))
        return part

    parts = [summary_of(slice(start, start + 70)) for start in range(0, 500, 70)]
    left = parts[0]
    for part in parts[1:]:
        left = left + part
    right = parts[-1]
    for part in reversed(parts[:-1]):
        right = part + right
    assert left.document() == right.document() == summary_of(slice(0, 500)).document()
    assert left.mean_loss == whole.loss
