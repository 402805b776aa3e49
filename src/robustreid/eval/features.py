"""The feature file: what ``robustreid extract`` writes and ``robustreid eval --features`` reads.

A safetensors file with tensors ``features`` (N×D float32 or float16), ``pids`` (N int64), ``camids`` (N int64),
``split`` (N int8: 0 = query, 1 = gallery, 2 = train) and the metadata entry ``paths`` (a JSON list of N strings)
plus free-form string metadata (model, dataset, ...). Loaded without unpickling anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

SPLIT_CODES = {"query": 0, "gallery": 1, "train": 2}


@dataclass
class FeatureSet:
    features: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    split: np.ndarray
    paths: List[str]
    meta: Dict[str, str] = field(default_factory=dict)

    def select(self, split_name: str) -> "FeatureSet":
        m = self.split == SPLIT_CODES[split_name]
        idx = np.nonzero(m)[0]
        return FeatureSet(self.features[idx], self.pids[idx], self.camids[idx], self.split[idx],
                          [self.paths[i] for i in idx], dict(self.meta))

    def __len__(self) -> int:
        return int(self.features.shape[0])


def save_features(path: Union[str, Path], features, pids, camids, split, paths: Sequence[str],
                  meta: Optional[Dict[str, str]] = None) -> None:
    """Write a feature file atomically. ``split`` may be codes or names ('query', 'gallery', 'train')."""
    import torch
    from safetensors.torch import save_file

    from ..utils.io import atomic_path

    feats = torch.as_tensor(np.asarray(features)).contiguous()
    if feats.dtype not in (torch.float32, torch.float16):
        feats = feats.float()
    split_arr = np.asarray([SPLIT_CODES[s] if isinstance(s, str) else int(s) for s in split], dtype=np.int8)
    n = feats.shape[0]
    for name, arr in (("pids", pids), ("camids", camids), ("split", split_arr), ("paths", paths)):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} entries but there are {n} feature rows")
    tensors = {
        "features": feats,
        "pids": torch.as_tensor(np.asarray(pids, dtype=np.int64)),
        "camids": torch.as_tensor(np.asarray(camids, dtype=np.int64)),
        "split": torch.as_tensor(split_arr),
    }
    metadata = {str(k): str(v) for k, v in (meta or {}).items()}
    metadata["paths"] = json.dumps(list(map(str, paths)))
    metadata["format"] = "robustreid.features/1"
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_features(path: Union[str, Path]) -> FeatureSet:
    """Read a feature file written by :func:`save_features`; clear errors for a wrong or damaged file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} does not exist")
    try:
        with safe_open(str(path), framework="np") as f:
            meta = dict(f.metadata() or {})
            keys = set(f.keys())
            missing = {"features", "pids", "camids", "split"} - keys
            if missing:
                raise ValueError(f"{path}: not a robustreid feature file (missing {', '.join(sorted(missing))})")
            arrays = {k: f.get_tensor(k) for k in ("features", "pids", "camids", "split")}
    except (OSError, RuntimeError, Exception) as e:  # safetensors raises its own error types
        if isinstance(e, ValueError) and "robustreid" in str(e):
            raise
        raise ValueError(f"{path}: cannot read as a safetensors feature file ({e})") from None
    paths = json.loads(meta.pop("paths", "[]"))
    return FeatureSet(arrays["features"], arrays["pids"], arrays["camids"], arrays["split"], paths, meta)
