"""A generator function by accident."""


def softmax_loss(logits, labels):
    for row in logits:
        yield row
