"""Outputs written without losing data: whole or not at all, in bounded memory."""
