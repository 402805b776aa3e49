"""Batched image transforms on tensors (N×3×H×W, uint8 or float), seeded with a ``torch.Generator``.

Every function returns a new tensor and never modifies its input. Random draws are made on the CPU from the given
generator and then moved to the images' device, so the result is the same on every device for the same seed.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

__all__ = ["resize", "hflip", "random_hflip", "random_pad_crop", "to_float", "to_uint8", "parse_size"]

Size = Union[int, Sequence[int]]


def parse_size(size: Size) -> Tuple[int, int]:
    """``(H, W)`` from an int (square), a pair, or a string ``"HxW"``."""
    if isinstance(size, str):
        parts = size.lower().replace("×", "x").split("x")
        if len(parts) != 2:
            raise ValueError(f"size {size!r}: expected 'HxW', e.g. '256x128'")
        size = (int(parts[0]), int(parts[1]))
    if isinstance(size, int):
        size = (size, size)
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {(h, w)}")
    return h, w


def _check(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor N×C×H×W, got {shape}")


def resize(images: torch.Tensor, size: Size) -> torch.Tensor:
    """Bilinear resize to ``size`` = (H, W), antialiased when shrinking. uint8 in -> uint8 out (rounded)."""
    squeeze = images.ndim == 3
    if squeeze:
        images = images.unsqueeze(0)
    _check(images)
    h, w = parse_size(size)
    if tuple(images.shape[-2:]) == (h, w):
        out = images.clone()
    else:
        shrink = h < images.shape[-2] or w < images.shape[-1]
        x = images.float() if images.dtype == torch.uint8 or not images.is_floating_point() else images
        y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
        if images.dtype == torch.uint8:
            out = y.round_().clamp_(0, 255).to(torch.uint8)
        else:
            out = y.to(images.dtype)
    return out.squeeze(0) if squeeze else out


def hflip(images: torch.Tensor) -> torch.Tensor:
    """Mirror left-right."""
    return images.flip(-1)


def _uniform(n: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.rand(n, generator=generator, device="cpu")


def random_hflip(images: torch.Tensor, p: float = 0.5, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Mirror each image independently with probability ``p``."""
    _check(images)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    flip = (_uniform(images.shape[0], generator) < p).to(images.device)
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def random_pad_crop(images: torch.Tensor, pad: int = 10, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels on each side, then crop each image back to its size at a random offset."""
    _check(images)
    pad = int(pad)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if pad == 0:
        return images.clone()
    n, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), value=0)
    offs = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device="cpu").to(images.device)
    rows = offs[:, 0:1] + torch.arange(h, device=images.device)  # N×H
    cols = offs[:, 1:2] + torch.arange(w, device=images.device)  # N×W
    idx_n = torch.arange(n, device=images.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # N×H×W×C
    return out.permute(0, 3, 1, 2).contiguous()


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; floating input is returned as float32 unchanged in value."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8 (rounded, clamped); uint8 input is copied."""
    if images.dtype == torch.uint8:
        return images.clone()
    return (images.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
