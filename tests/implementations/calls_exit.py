"""Calls sys.exit in the middle of a call."""

import sys


def softmax_loss(logits, labels):
    sys.exit(3)
