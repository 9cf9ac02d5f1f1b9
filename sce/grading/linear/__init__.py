"""Grading a fused linear cross-entropy kernel's loss and gradients (∂L/∂E, ∂L/∂C, ∂L/∂b)
against the exact blocked reference (:mod:`sce.loss.linear_cross_entropy`), allowed what a
same-type kernel errs (:mod:`.baseline`), under a kernel family's conventions (:mod:`.profiles`),
naming the mistake where there is one (:mod:`.mistakes`)."""
