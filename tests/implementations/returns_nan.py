"""Returns NaN everywhere."""

import numpy as np


def softmax_loss(logits, labels):
    return float("nan"), np.full(logits.shape, np.nan)
