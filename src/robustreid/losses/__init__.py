"""Losses (ID with label smoothing, triplet, center, JSD, mask, OEM, memory bank). See :mod:`.base`."""

from .base import LOSSES, CombinedLoss, build_losses

__all__ = ["LOSSES", "CombinedLoss", "build_losses"]
