"""Feature extraction used by the benchmark: the engine's extractor, or a small stand-in for plain callables.

The benchmark calls ``extract(model, samples, batch_size=..., device=..., flip=..., transform=..., num_workers=...)``.
By default that is :func:`robustreid.engine.extract.extract_features` (which decodes, applies ``transform`` at native
size, resizes to the model input and runs the model). :func:`simple_extract` is used when the engine's extractor is
not installed or when the "model" is a plain function (tests, quick experiments): it reads the images, applies
``transform``, resizes to ``model.input_size`` when the model has one, and stacks the outputs.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np
import torch


def read_image_any(path: str) -> torch.Tensor:
    """uint8 3×H×W RGB, via robustreid.data.read_image when present (PIL otherwise)."""
    try:
        from ..data import read_image  # type: ignore[attr-defined]
    except ImportError:
        read_image = None
    if read_image is not None:
        return read_image(path)
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read image {path}: {e}; expected an RGB/grayscale image file") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _resize(batch: torch.Tensor, size) -> torch.Tensor:
    h, w = int(size[0]), int(size[1])
    if tuple(batch.shape[-2:]) == (h, w):
        return batch
    x = torch.nn.functional.interpolate(batch.float(), size=(h, w), mode="bilinear", align_corners=False,
                                        antialias=bool(batch.shape[-2] > h or batch.shape[-1] > w))
    return x.round_().clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def simple_extract(model: Callable, samples: Sequence, *, batch_size: int = 128, device=None, flip: bool = False,
                   transform: Optional[Callable] = None, num_workers: int = 0, progress: bool = False,
                   image_loader: Optional[Callable[[str], torch.Tensor]] = None) -> np.ndarray:
    """Features (float32 N×D, in the order of ``samples``) of ``model`` on the samples' images."""
    loader = image_loader or read_image_any
    size = getattr(model, "input_size", None)
    dev = torch.device(device) if device is not None else None
    out: List[np.ndarray] = []
    for start in range(0, len(samples), max(1, int(batch_size))):
        chunk = list(samples[start:start + batch_size])
        imgs = [loader(s.path) for s in chunk]
        if transform is not None:
            imgs = transform(imgs, chunk)
        if dev is not None:
            imgs = [im.to(dev) for im in imgs]
        if size is not None:
            imgs = [_resize(im.unsqueeze(0), size)[0] for im in imgs]
        shapes = {tuple(im.shape) for im in imgs}
        if len(shapes) != 1:
            raise ValueError(f"images of different sizes {sorted(shapes)} and the model has no input_size to resize to")
        batch = torch.stack(imgs)
        f = model(batch)
        if flip:
            f = (f + model(batch.flip(-1))) / 2
        out.append(torch.as_tensor(f).detach().float().cpu().numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def default_extractor(model) -> Callable:
    """The engine's extract_features for real models; :func:`simple_extract` for plain callables or when the
    engine's extractor is unavailable."""
    if isinstance(model, torch.nn.Module):
        try:
            from ..engine.extract import extract_features  # type: ignore
            return extract_features
        except ImportError:
            pass
    return simple_extract
