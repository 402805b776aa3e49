"""robustreid.transforms: decoding to uint8 RGB tensors and batched tensor transforms.

Training augmentations (erasing, AugMix, IGO, NPO, ...) live in :mod:`robustreid.transforms.augment`.
"""

from .decode import ImageReadError, decode_to_array, read_image
from .functional import hflip, parse_size, random_hflip, random_pad_crop, resize, to_float, to_uint8

__all__ = [
    "ImageReadError", "read_image", "decode_to_array",
    "resize", "hflip", "random_hflip", "random_pad_crop", "to_float", "to_uint8", "parse_size",
]
