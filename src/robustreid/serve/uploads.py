"""Checks on uploaded images: how many per request, bytes per file, image type (from the bytes, not the declared
type), pixel count (read from the header before decoding, so a decompression bomb is refused unread). Each failure is
an :class:`UploadError` with the HTTP status and a message that names the file and the limit."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..transforms.decode import _to_rgb_array

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}


class UploadError(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class UploadLimits:
    max_images: int = 32            # files per request
    max_bytes: int = 4 * 2**20      # bytes per file
    max_pixels: int = 4_000_000     # width × height per image
    min_side: int = 8               # smallest accepted width / height

    def as_dict(self) -> Dict[str, int]:
        return asdict(self)

    def max_request_bytes(self) -> int:
        return self.max_images * (self.max_bytes + 4096) + 65536


def check_count(n: int, limits: UploadLimits, field: str = "images") -> None:
    if n == 0:
        raise UploadError(400, f"no image uploaded: send one or more files in the multipart form field {field!r}")
    if n > limits.max_images:
        raise UploadError(413, f"{n} images in one request; at most {limits.max_images} are accepted")


def decode_upload(name: str, data: bytes, limits: UploadLimits) -> torch.Tensor:
    """Bytes of one uploaded file -> uint8 RGB 3×H×W tensor, or an UploadError."""
    from PIL import Image, UnidentifiedImageError

    if len(data) == 0:
        raise UploadError(400, f"{name}: empty file")
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"{name}: {len(data):,} bytes; at most {limits.max_bytes:,} bytes per image")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UploadError(415, f"{name}: not an image of an accepted type ({', '.join(FORMATS.values())})") from None
    except Exception as e:
        raise UploadError(400, f"{name}: cannot read the image header ({e})") from None
    with img:
        if img.format not in FORMATS:
            raise UploadError(415, f"{name}: {img.format or 'unknown'} images are not accepted; send "
                                   f"{', '.join(FORMATS.values())}")
        w, h = img.size
        if w * h > limits.max_pixels:
            raise UploadError(413, f"{name}: {w}×{h} = {w * h:,} pixels; at most {limits.max_pixels:,} per image")
        if min(w, h) < limits.min_side:
            raise UploadError(422, f"{name}: {w}×{h} is too small; both sides must be >= {limits.min_side} pixels")
        try:
            img.load()
            arr = _to_rgb_array(img)
        except Exception as e:
            raise UploadError(400, f"{name}: corrupt or truncated {img.format} data ({e})") from None
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def decode_uploads(files: Sequence[Tuple[str, bytes]], limits: UploadLimits) -> List[torch.Tensor]:
    check_count(len(files), limits)
    return [decode_upload(name, data, limits) for name, data in files]


def extension_of(data: bytes) -> str:
    """File extension for bytes that :func:`decode_upload` accepted."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp"}[img.format]
