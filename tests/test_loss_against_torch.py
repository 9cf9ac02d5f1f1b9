"""The semantics of torch.nn.functional.cross_entropy, checked against torch itself.

Runs only where torch is installed (it is never a dependency of sce: `pip install
torch==2.13.0` beside it). 300 random combinations of every option PyTorch has:
class labels with ignored rows or probability targets, class weights (zeros
included), label smoothing, each reduction. Gradients agree to 1e-9 of the
largest entry; losses to 1e-6 plus PyTorch's own rounding (a few eps·max|z|),
as PyTorch's log-sum-exp rounds a confident
row's small loss (1.45998547e-10 where the exact value, and sce's, is
1.4599850089e-10: an mpmath check of that one case is below).
"""

from __future__ import annotations

import warnings

import mpmath as mp
import numpy as np
import pytest

from sce.loss import softmax_cross_entropy

torch = pytest.importorskip("torch")
functional = pytest.importorskip("torch.nn.functional")


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, dict, dict]:
    n, k = int(rng.integers(1, 5)), int(rng.integers(1, 7))
    z = rng.normal(scale=rng.choice([0.5, 3, 30]), size=(n, k))
    weight = rng.uniform(0, 2, size=k) if rng.random() < 0.5 else None
    if weight is not None and rng.random() < 0.3:
        weight[rng.integers(k)] = 0.0
    options = dict(weight=weight, label_smoothing=float(rng.choice([0.0, 0.1, 0.5, 1.0])))
    options["reduction"] = str(rng.choice(["none", "mean", "sum"]))
    if rng.random() < 0.4:
        targets = rng.random((n, k))
        return z, dict(targets=targets / targets.sum(axis=1, keepdims=True)), options
    labels = rng.integers(0, k, size=n)
    if rng.random() < 0.3:
        labels[rng.integers(n)] = -100
    return z, dict(labels=labels), options


@pytest.mark.parametrize("seed", range(300))
def test_every_option_follows_pytorch(seed):
    z, target, options = random_case(np.random.default_rng(seed))
    given = torch.tensor(target.get("labels", target.get("targets")))
    logits = torch.tensor(z, requires_grad=True)
    weight = None if options["weight"] is None else torch.tensor(options["weight"])
    theirs = functional.cross_entropy(
        logits, given, weight=weight, label_smoothing=options["label_smoothing"], reduction=options["reduction"]
    )
    if not torch.isfinite(theirs).all():
        pytest.skip("PyTorch's mean over no counted rows is NaN; tested elsewhere")
    theirs.sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = softmax_cross_entropy(z, target.get("labels"), targets=target.get("targets"), **options)
    # PyTorch's log-sum-exp rounds with an absolute error of a few eps·max|z|
    # per row: a loss of 5e-14 beside logits of 30 carries it in its third digit.
    roundoff = (
        1e-14
        * (1 + np.abs(z).max())
        * len(z)
        * max(1.0, float(np.max(options["weight"])) if options["weight"] is not None else 1.0)
    )
    np.testing.assert_allclose(np.asarray(ours.loss, dtype=float), theirs.detach().numpy(), rtol=1e-6, atol=roundoff)
    scale = max(1e-12, float(np.abs(logits.grad.numpy()).max()))
    assert np.abs(ours.gradient - logits.grad.numpy()).max() <= 1e-9 * scale


def test_where_pytorch_rounds_sce_keeps_the_digits():
    mp.mp.dps = 50
    z = [[41.46120962, 18.81378486]]
    exact = mp.log(mp.exp(mp.mpf(z[0][0])) + mp.exp(mp.mpf(z[0][1]))) - mp.mpf(z[0][0])
    ours = softmax_cross_entropy(z, [0]).losses[0]
    theirs = functional.cross_entropy(torch.tensor(z), torch.tensor([0])).item()
    assert abs(ours - float(exact)) <= 4e-16 * float(exact)
    assert abs(theirs - float(exact)) > abs(ours - float(exact))


def test_the_default_reduction_is_pytorchs():
    z = np.random.default_rng(1).normal(size=(5, 4))
    y = np.array([0, 3, -100, 1, 1])
    logits = torch.tensor(z, requires_grad=True)
    theirs = functional.cross_entropy(logits, torch.tensor(y), weight=torch.tensor([1.0, 2.0, 0.5, 1.0]).double())
    theirs.backward()
    ours = softmax_cross_entropy(z, y, weight=[1.0, 2.0, 0.5, 1.0])
    assert abs(ours.loss - theirs.item()) <= 1e-12 * abs(theirs.item())
    assert np.abs(ours.gradient - logits.grad.numpy()).max() <= 1e-12


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(
    "shape, target_shape",
    [((3,), ()), ((2, 3), (2,)), ((2, 3, 4), (2, 4)), ((2, 3, 2, 5), (2, 2, 5))],
    ids=["unbatched", "N,C", "N,C,d", "N,C,d1,d2"],
)
@pytest.mark.parametrize("probabilities", [False, True])
def test_every_layout_has_pytorchs_shapes(reduction, shape, target_shape, probabilities):
    rng = np.random.default_rng(len(shape))
    z = rng.normal(size=shape)
    if probabilities:
        q = rng.random(shape)
        given = q / q.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    else:
        given = rng.integers(0, 3, target_shape)
    logits = torch.tensor(z, requires_grad=True)
    theirs = functional.cross_entropy(logits, torch.tensor(given), reduction=reduction)
    theirs.sum().backward()
    target = {"targets": given} if probabilities else {"labels": given}
    ours = softmax_cross_entropy(z, **target, reduction=reduction, class_axis=0 if len(shape) == 1 else 1)
    assert np.shape(ours.loss) == tuple(theirs.shape)
    assert ours.gradient.shape == tuple(logits.grad.shape)
    np.testing.assert_allclose(np.asarray(ours.loss), theirs.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.gradient, logits.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_the_differences_the_conventions_page_lists_are_real():
    from sce import InvalidInput

    z = np.array([[1.0, 2.0, 3.0]])
    # Negative label smoothing: PyTorch reads it as 0; sce refuses it.
    assert functional.cross_entropy(torch.tensor(z), torch.tensor([1]), label_smoothing=-0.1).item() == pytest.approx(
        functional.cross_entropy(torch.tensor(z), torch.tensor([1])).item(), rel=1e-15
    )
    with pytest.raises(InvalidInput):
        softmax_cross_entropy(z, [1], label_smoothing=-0.1)
    # A probability target of 0 on a −inf logit: 0·∞ is NaN in PyTorch, nothing in sce.
    masked = np.array([[1.0, -np.inf, 3.0]])
    soft = np.array([[0.5, 0.0, 0.5]])
    assert np.isnan(functional.cross_entropy(torch.tensor(masked), torch.tensor(soft)).item())
    assert round(softmax_cross_entropy(masked, targets=soft).loss, 4) == 1.1269
    # (N, C, d) logits: PyTorch's classes are on axis 1; sce's default is the last axis.
    x = np.random.default_rng(3).normal(size=(2, 3, 3))
    y = np.array([[0, 1, 2], [2, 1, 0]])
    theirs = functional.cross_entropy(torch.tensor(x), torch.tensor(y)).item()
    assert softmax_cross_entropy(x, y, class_axis=1).loss == pytest.approx(theirs, rel=1e-14)
    assert softmax_cross_entropy(x, y).loss != pytest.approx(theirs, rel=1e-6)
