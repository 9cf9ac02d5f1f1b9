"""Raises KeyboardInterrupt itself."""


def softmax_loss(logits, labels):
    raise KeyboardInterrupt
