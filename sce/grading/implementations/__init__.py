"""Grading a user's implementation of the softmax cross-entropy loss and gradient.

``cases`` builds the deterministic battery of inputs, ``worker`` runs the
user's function in a child process, ``runner`` drives that child with a time
limit per case, and ``grade`` compares each answer with the core's exact
result, within a fair allowance, and names the mistake it matches. Nothing in
this package prints.
"""
