"""Ends its process with os._exit: sce carries on."""

import os


def softmax_loss(logits, labels):
    os._exit(7)
