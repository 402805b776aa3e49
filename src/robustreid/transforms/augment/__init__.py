"""Training augmentations that act on a batch (noise and occlusion as a regulariser). See :mod:`.base`.

Importing this package registers: ``random_erasing`` (fills mean / random / soft / self), ``soft_erasing``,
``self_erasing``, ``batch_random_erasing``, ``random_patch``, ``augmix``, ``igo``, ``npo``, ``corruption_aug``,
``slow_dropblock``. ``BatchDropBlock`` is a model-side module (feature maps), not a batch augmentation: the engine
places it with ``attach_dropblock`` from ``model.dropblock``.
"""

from .base import AUGMENTATIONS, AugContext, Compose, build_batch_augment

# importing the implementation modules registers them
from .erasing import BatchRandomErasing, RandomErasing  # noqa: E402
from .patch import PatchPool, RandomPatch  # noqa: E402
from .augmix import AUGMIX_OPS, AugMix  # noqa: E402
from .igo import IGO, igo_area_fraction  # noqa: E402
from .npo import NPO, stripe_targets  # noqa: E402
from .corrupt_aug import CorruptionAug  # noqa: E402
from .dropblock import BatchDropBlock, SlowDropBlock, attach_dropblock  # noqa: E402

__all__ = [
    "AUGMENTATIONS", "AugContext", "Compose", "build_batch_augment", "RandomErasing", "BatchRandomErasing",
    "RandomPatch", "PatchPool", "AugMix", "AUGMIX_OPS", "IGO", "igo_area_fraction", "NPO", "stripe_targets",
    "CorruptionAug", "BatchDropBlock", "SlowDropBlock", "attach_dropblock",
]
