"""Correct, in plain Python, returning lists."""

import math


def softmax_loss(logits, labels):
    rows = logits.tolist()
    loss, grad = 0.0, []
    for z, label in zip(rows, labels.tolist()):
        top = max(z)
        exps = [math.exp(v - top) for v in z]
        total = math.fsum(exps)
        loss += math.log(total) - (z[label] - top)
        grad.append([(e / total - (j == label)) / len(rows) for j, e in enumerate(exps)])
    return [loss / len(rows), grad]
