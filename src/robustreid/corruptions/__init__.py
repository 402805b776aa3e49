"""The corruption suite: the 20 benchmark corruptions (19 ImageNet-C + rain) and an occlusion family.

    >>> from robustreid.corruptions import corrupt, CORRUPTIONS
    >>> out = corrupt(images_uint8_nchw, "fog", severity=3, seed=0)
"""

from .base import (
    CORRUPTION_REGISTRY,
    CORRUPTIONS,
    FAMILIES,
    OCCLUSIONS,
    corrupt,
    family_of,
    image_seed,
    register_corruption,
)

# importing the implementation modules registers their corruptions
from . import noise, blur, digital, weather, rain, occlusion  # noqa: E402,F401

__all__ = [
    "CORRUPTION_REGISTRY", "CORRUPTIONS", "FAMILIES", "OCCLUSIONS", "corrupt", "family_of", "image_seed",
    "register_corruption",
]
