"""The half-precision kernel with its gradient 5 % too large: wrong in float16 too."""

import numpy as np

from half_float16 import softmax_loss as right


def softmax_loss(logits, labels):
    loss, g = right(logits, labels)
    return loss, (g.astype(np.float32) * np.float32(1.05)).astype(np.float16)
