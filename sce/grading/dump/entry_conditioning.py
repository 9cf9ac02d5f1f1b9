"""What a half-type kernel's rounding can cost at one entry: a bound per entry, from its conditioning.

The verdict's worst-entry allowance is one for all entries: 4 × the worst
error of a straightforward computation + 8 ulps. In bfloat16 the worst is
at the smallest probabilities, whose logits or log-probabilities round by a
quarter (e^0.25 is 28 % off, some 70 ulp), and 4 × that is more than every
entry is of itself (128 to 256 ulp of bfloat16): a gradient with −1 at the
predicted class instead of the label, two entries a row off by their whole
size, passed. The entries near the row's largest probability are precise in
every correct kernel, whatever the others.

Rounding x to the type moves it by up to 2^-(m+1)·|x|, and e^x, a probability
or a gradient entry made from it, by that relatively: some |x| ulps of the
entry. So an entry's error is bounded by the sizes of what a kernel rounds
on its way, |log p_j| (the log-probability, PyTorch's route), z_max − z_j (the
shifted logit, the textbook's), the row's entropy (the sum's share, Σ p_k
times theirs), the scaled logits z/T or the capped c·tanh(z/c) where these are
rounded (not at the row's maximum itself: its shift is exactly 0), lse with a
z-loss, and ENTRY_ROUNDINGS for the few operations after them. An entry
further off than 4 × that + 8 ulps, as the verdict allows its baseline, is
wrong whatever the baseline's worst. Half types only: in float32 the
allowance is thousands of times smaller than the values.
"""

from __future__ import annotations

import numpy as np

from sce.grading.dump.kernel_mistakes import Block

#: Roundings of an entry after its logit and log-probability (the exponential, the division,
#: p·s − c, the scale, the cap's factor), in ulps of the entry.
ENTRY_ROUNDINGS = 8.0
#: As the verdict's allowance: 4 × the bound + 8 ulps.
FACTOR, MARGIN = 4.0, 8.0
HALF_TYPES = ("bfloat16", "float16")


def beyond_rounding(errors: np.ndarray, block: Block, dtype: str) -> int:
    """The entries (of a block's gradient, errors in ulps) further off than a ``dtype`` kernel's
    rounding at that entry allows; 0 for float32 and float64.

    Examples
    --------
    >>> from sce import softmax_cross_entropy
    >>> from sce.grading.dump.kernel_mistakes import Block
    >>> exact = softmax_cross_entropy(np.array([[0.0, 30.0]]), np.array([0]))
    >>> block = Block(0, np.array([[0.0, 30.0]]), np.array([0]), None, exact, np.zeros(1))
    >>> beyond_rounding(np.array([[128.0, 128.0]]), block, "bfloat16")  # the predicted class's entry
    1
    >>> beyond_rounding(np.array([[100.0, 20.0]]), block, "bfloat16")
    0
    """
    if dtype not in HALF_TYPES:
        return 0
    bound = _bound(block)
    with np.errstate(invalid="ignore"):
        beyond = np.nan_to_num(np.asarray(errors, dtype=np.float64), nan=np.inf) > FACTOR * bound + MARGIN
    return int(np.count_nonzero(beyond))


def _bound(block: Block) -> np.ndarray:
    """Each entry's bound, in ulps of the entry (inf where its probability is 0: anything goes)."""
    exact = block.exact
    options = exact.options
    p = np.asarray(exact.probabilities, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_p = np.log(p)
        top = log_p.max(axis=1, keepdims=True)
        entropy = -np.where(p > 0, p * log_p, 0.0).sum(axis=1, keepdims=True)
        bound = ENTRY_ROUNDINGS + np.abs(log_p) + (top - log_p) + entropy
        if options.temperature != 1.0 or options.softcap is not None:
            x = np.asarray(block.logits, dtype=np.float64)
            if options.softcap is not None:
                x = options.softcap * np.tanh(x / options.softcap)
            x = x / options.temperature
            x_top = x.max(axis=1, keepdims=True)
            bound = bound + np.where(x == x_top, 0.0, np.abs(x) + np.abs(x_top))
        if options.z_loss and exact.log_sum_exp is not None:
            bound = bound + np.abs(np.asarray(exact.log_sum_exp, dtype=np.float64)).reshape(-1, 1)
    return np.where(np.isnan(bound), np.inf, bound)
