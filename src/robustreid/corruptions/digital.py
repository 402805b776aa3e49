"""Corruptions: digital (being written)."""
