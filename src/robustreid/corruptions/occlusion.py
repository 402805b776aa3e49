"""Corruptions: occlusion (being written)."""
