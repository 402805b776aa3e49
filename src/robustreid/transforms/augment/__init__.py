"""Training augmentations that act on a batch (noise and occlusion as a regulariser). See :mod:`.base`."""

from .base import AUGMENTATIONS, AugContext, Compose, build_batch_augment

__all__ = ["AUGMENTATIONS", "AugContext", "Compose", "build_batch_augment"]
