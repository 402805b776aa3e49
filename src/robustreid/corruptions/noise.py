"""Corruptions: noise (being written)."""
