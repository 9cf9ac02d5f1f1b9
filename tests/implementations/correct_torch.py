"""Correct, in PyTorch, with autograd (skipped in the tests when torch is absent)."""

import torch


def softmax_loss(logits, labels):
    z = logits.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(z, labels.long())
    loss.backward()
    return loss.detach(), z.grad
