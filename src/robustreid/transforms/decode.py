"""Decoding image files to uint8 RGB tensors (3×H×W), whatever the file's colour mode."""

from __future__ import annotations

import os
from typing import Union

import numpy as np
import torch

__all__ = ["ImageReadError", "read_image", "decode_to_array"]

PathLike = Union[str, "os.PathLike[str]"]


class ImageReadError(ValueError):
    """An image file is missing, unreadable, truncated or not an image. The message names the file."""

    def __init__(self, path: PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path!s}: {reason} (expected a readable JPEG/PNG/BMP/TIFF image)")


def _to_rgb_array(img) -> np.ndarray:
    """A PIL image of any mode -> H×W×3 uint8 RGB array."""
    from PIL import Image

    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if arr.dtype.kind == "f":
            a = arr.astype(np.float64)
            scale = 255.0 if a.size and np.nanmax(a) <= 1.0 else 1.0
            a = np.nan_to_num(a * scale)
        else:
            a = arr.astype(np.float64)
            # 16-bit data (PNG) -> 8 bit by the full-range scale; 8-bit data stored in I mode stays as it is
            if a.size and a.max() > 255:
                a = a / 257.0
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        # composite on black: what a detector crop with an alpha channel shows in practice is the colour data;
        # compositing keeps fully transparent pixels from leaking arbitrary colours
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_to_array(path: PathLike) -> np.ndarray:
    """Decode ``path`` to an H×W×3 uint8 RGB numpy array; raises :class:`ImageReadError` on any failure."""
    from PIL import Image, UnidentifiedImageError

    p = os.fspath(path)
    if not os.path.exists(p):
        raise ImageReadError(p, "file does not exist")
    if os.path.isdir(p):
        raise ImageReadError(p, "is a directory, not an image file")
    try:
        with Image.open(p) as img:
            img.load()  # raises OSError on a truncated file (LOAD_TRUNCATED_IMAGES is left False)
            arr = _to_rgb_array(img)
    except UnidentifiedImageError:
        raise ImageReadError(p, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated data, broken headers, ...
        raise ImageReadError(p, f"corrupt or truncated image data ({e})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(p, f"decoded to an unexpected shape {arr.shape}")
    return arr


def read_image(path: PathLike) -> torch.Tensor:
    """Read an image file as a uint8 RGB tensor 3×H×W.

    Grayscale, RGBA/LA (composited on black), CMYK, palette, 1-bit and 16-bit images are converted to 8-bit RGB.
    A missing, unreadable or truncated file raises :class:`ImageReadError` (a ``ValueError``) naming the file.
    """
    arr = np.ascontiguousarray(decode_to_array(path).transpose(2, 0, 1))
    # a 1×1 image's transpose is already contiguous, so it may still be PIL's read-only buffer: torch needs a
    # writable one
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())
