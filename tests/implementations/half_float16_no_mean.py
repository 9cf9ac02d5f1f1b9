"""The half-precision kernel with its gradient missing the mean's 1/N."""

import numpy as np

from half_float16 import softmax_loss as right


def softmax_loss(logits, labels):
    loss, g = right(logits, labels)
    return loss, (g.astype(np.float32) * np.float32(len(g))).astype(np.float16)
