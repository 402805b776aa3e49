"""Corruptions: weather (being written)."""
