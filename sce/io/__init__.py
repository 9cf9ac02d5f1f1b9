"""Bytes to arrays and back: CSV records and columns, tensor files, atomic writers, and the
shielded sections that keep a write whole through a signal. Nothing here calls the loss."""
