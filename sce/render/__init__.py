"""Rendering: results and derivations to text, one module per format."""
