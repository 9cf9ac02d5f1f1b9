"""A learner's derivation written stage by stage: each intermediate returned by its name."""

import numpy as np


def softmax_stages(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    probs = exp / sum_exp
    loss = -np.log(probs[np.arange(n), labels]).mean()
    grad = probs.copy()
    grad[np.arange(n), labels] -= 1
    return {"shifted": shifted, "exp": exp, "sum_exp": sum_exp, "probs": probs, "loss": loss, "grad": grad / n}
