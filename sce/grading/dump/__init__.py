"""Grading dumped tensors by their float type (``sce check --arrays``): is a gradient, and a loss,
as accurate as its type allows, and if not, which mistake explains it."""
