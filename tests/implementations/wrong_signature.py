"""The CS231n signature: (W, X, y, reg), not (logits, labels)."""


def softmax_loss(W, X, y, reg):
    return 0.0, W
