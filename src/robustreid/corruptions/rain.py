"""Corruptions: rain (being written)."""
