"""The batch convention in PyTorch (needs torch installed; sce converts arrays in and out).

    sce test implementation_torch.py:softmax_cross_entropy

sce sees `import torch` and passes torch tensors (float64 logits, integer labels).
"""

import torch


def softmax_cross_entropy(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(dim=1, keepdim=True).values
    log_sums = torch.logsumexp(shifted, dim=1)
    rows = torch.arange(n)
    loss = (log_sums - shifted[rows, labels.long()]).mean()
    grad = torch.softmax(shifted, dim=1)
    grad[rows, labels.long()] -= 1
    return loss, grad / n
