"""A function that never returns."""


def softmax_loss(logits, labels):
    while True:
        pass
