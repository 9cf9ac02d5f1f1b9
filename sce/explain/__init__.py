"""Explanations built as data from a loss result: the derivation of ``--steps``, the proofs behind
``--verify``, ``--jacobian`` and ``--hessian``, and central finite differences.

Once ``sce`` is imported, this package is also callable: ``sce.explain(logits, label=…)`` is
:func:`sce.notebook.explain`, the derivation as a value a notebook displays.
"""
