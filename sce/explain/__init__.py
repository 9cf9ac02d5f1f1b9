"""Explanations built as data from a loss result: the derivation of ``--steps``, the proofs behind
``--verify``, ``--jacobian`` and ``--hessian``, and central finite differences."""
