"""An output handed to a check in the memory of an input (an in-place kernel wrote its gradient over what it was
given, as fused cross-entropy backwards write ∂L/∂z over the logits) is refused, naming both: graded, the input
would be the answer itself, not what the kernel read."""

from __future__ import annotations

import numpy as np
import pytest

from sce.testing import check_cross_entropy, check_linear_cross_entropy

F32 = np.float32


def inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    hidden, classifier = rng.standard_normal((6, 4)).astype(F32), rng.standard_normal((5, 4)).astype(F32)
    return hidden, classifier, rng.integers(0, 5, 6), rng.standard_normal(5).astype(F32)


@pytest.mark.parametrize(
    ("output", "written_over"),
    [("grad_hidden", "hidden"), ("grad_classifier", "classifier"), ("grad_bias", "bias")],
)
def test_a_gradient_written_over_its_input_is_refused(output, written_over) -> None:
    hidden, classifier, labels, bias = inputs()
    given = {"hidden": hidden, "classifier": classifier, "bias": bias}
    with pytest.raises(ValueError, match=f"^{output} shares its memory with {written_over}: the kernel wrote it"):
        check_linear_cross_entropy(hidden, classifier, labels, bias=bias, **{output: given[written_over]})


def test_a_view_of_an_input_is_refused_and_a_copy_is_graded() -> None:
    hidden, classifier, labels, _ = inputs()
    with pytest.raises(ValueError, match="^grad_hidden shares its memory with hidden"):
        check_linear_cross_entropy(hidden, classifier, labels, grad_hidden=hidden[:, :][::1])
    report = check_linear_cross_entropy(hidden, classifier, labels, grad_hidden=hidden.copy())
    assert not report.passed  # graded (and wrong): E is not ∂L/∂E


def test_a_shard_of_the_gradient_written_over_a_shard_of_the_classifier_is_refused() -> None:
    hidden, classifier, labels, _ = inputs()
    shards = [classifier[:2], classifier[2:]]
    with pytest.raises(ValueError, match="^grad_classifier shares its memory with classifier"):
        check_linear_cross_entropy(hidden, shards, labels, grad_classifier=[np.zeros((2, 4), F32), shards[1]])


def test_a_gradient_written_over_the_logits_is_refused_and_a_kept_copy_is_graded() -> None:
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 4)).astype(F32)
    labels = rng.integers(0, 4, 5)
    kept = logits.copy()
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    logits[...] = p / p.sum(axis=1, keepdims=True)  # the backward writes ∂L/∂z over its input, in place
    logits[np.arange(5), labels] -= 1
    logits /= 5
    with pytest.raises(ValueError, match="^grad shares its memory with logits: the kernel wrote it over its input"):
        check_cross_entropy(logits, labels, logits)
    assert check_cross_entropy(kept, labels, logits).passed
