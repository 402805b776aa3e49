"""Corruptions: blur (being written)."""
