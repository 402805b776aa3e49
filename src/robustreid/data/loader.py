"""The data-loader builder used by training, extraction and the benchmark."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..transforms.decode import read_image
from ..transforms.functional import parse_size, resize
from .sample import Sample

__all__ = ["ImageDataset", "build_loader", "collate"]


class ImageDataset(Dataset):
    """Decodes ``samples`` to uint8 3×H×W tensors (resized to ``size`` when given).

    ``cache=True`` keeps every decoded (resized) crop in memory once: with a size, in one uint8 N×3×H×W tensor
    (filled lazily, or all at once by :meth:`precompute`, which the loader calls before starting workers so that
    they share it); without a size, in a list.
    """

    def __init__(self, samples: Sequence[Sample], size: Optional[Union[int, Sequence[int], str]] = None,
                 cache: bool = False):
        self.samples = list(samples)
        self.size: Optional[Tuple[int, int]] = parse_size(size) if size is not None else None
        self.cache = bool(cache)
        self._store: Optional[torch.Tensor] = None
        self._filled: Optional[torch.Tensor] = None
        self._list: Optional[List[Optional[torch.Tensor]]] = None
        if self.cache:
            if self.size is not None:
                h, w = self.size
                self._store = torch.empty((len(self.samples), 3, h, w), dtype=torch.uint8)
                self._filled = torch.zeros(len(self.samples), dtype=torch.bool)
            else:
                self._list = [None] * len(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, i: int) -> torch.Tensor:
        img = read_image(self.samples[i].path)
        if self.size is not None and tuple(img.shape[-2:]) != self.size:
            img = resize(img, self.size)
        return img

    def image(self, i: int) -> torch.Tensor:
        if not self.cache:
            return self._decode(i)
        if self._store is not None:
            if not bool(self._filled[i]):
                self._store[i] = self._decode(i)
                self._filled[i] = True
            return self._store[i]
        img = self._list[i]
        if img is None:
            img = self._list[i] = self._decode(i)
        return img

    def precompute(self) -> None:
        """Decode every image now (only meaningful with ``cache=True``)."""
        if self.cache:
            for i in range(len(self)):
                self.image(i)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        s = self.samples[i]
        return {"image": self.image(i), "pid": s.pid, "camid": s.camid, "index": i}


def collate(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack a batch: images as one uint8 B×3×H×W tensor when they share a size, else a list."""
    imgs = [it["image"] for it in items]
    same = all(im.shape == imgs[0].shape for im in imgs)
    return {
        "images": torch.stack(imgs) if same and imgs else imgs,
        "pids": torch.tensor([it["pid"] for it in items], dtype=torch.long),
        "camids": torch.tensor([it["camid"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
    }


def _collate_list(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    out = collate(items)
    out["images"] = [it["image"] for it in items]
    return out


def build_loader(samples: Sequence[Sample], *, batch_size: int, size=None, train: bool = False,
                 sampler: Optional[Sampler] = None, num_workers: int = 0, cache: bool = False, seed: int = 0,
                 drop_last: bool = False, pin_memory: bool = False) -> DataLoader:
    """A DataLoader yielding ``{"images", "pids", "camids", "index"}`` batches.

    ``images`` is uint8 B×3×H×W resized to ``size`` = (H, W); with ``size=None`` it is a LIST of native-size
    3×H×W uint8 tensors. ``train=True`` without a sampler shuffles with a generator seeded by ``seed``; with a
    ``sampler`` (e.g. :class:`~robustreid.data.sampler.PKSampler`, ``batch_size = p * k``) its order is used.
    ``cache=True`` decodes every image once and keeps it in memory (precomputed in this process when
    ``num_workers > 0`` so that the workers share one tensor).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = ImageDataset(samples, size=size, cache=cache)
    if cache and num_workers > 0:
        ds.precompute()
        if ds._store is not None:
            ds._store.share_memory_()
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    shuffle = bool(train and sampler is None)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate if size is not None else _collate_list, drop_last=drop_last,
                      generator=gen if shuffle else None, pin_memory=pin_memory,
                      persistent_workers=num_workers > 0)
