"""The feature file: what ``robustreid extract`` writes and ``robustreid eval --features`` reads.

A safetensors file with tensors ``features`` (N×D float32 or float16), ``pids`` (N int64), ``camids`` (N int64),
``split`` (N int8: 0 = query, 1 = gallery, 2 = train) and the metadata entry ``paths`` (a JSON list of N strings)
plus free-form string metadata (model, dataset, ...). Loaded without unpickling anything, and checked on load: a
field of the wrong shape, type or length, an unknown split code or metadata that is not JSON is a ``ValueError``
naming the file and the field.
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
    split_arr = np.asarray([_split_code(s) for s in split], dtype=np.int8)
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


def _split_code(s) -> int:
    code = SPLIT_CODES.get(s) if isinstance(s, str) else int(s)
    if code not in SPLIT_CODES.values():
        raise ValueError(f"split: unknown split {s!r}; expected query, gallery, train or their codes 0, 1, 2")
    return code


def _check_arrays(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    f = arrays["features"]
    if f.ndim != 2:
        raise ValueError(f"{path}: features: expected an N×D matrix, got shape {f.shape}")
    if f.dtype.kind != "f":
        raise ValueError(f"{path}: features: expected floating-point values, got {f.dtype}")
    n = f.shape[0]
    for name in ("pids", "camids", "split"):
        a = arrays[name]
        if a.ndim != 1:
            raise ValueError(f"{path}: {name}: expected one value per row, got shape {a.shape}")
        if a.dtype.kind not in "iu":
            raise ValueError(f"{path}: {name}: expected integers, got {a.dtype}")
        if len(a) != n:
            raise ValueError(f"{path}: {name} has {len(a)} entries but features has {n} rows")
    split = arrays["split"]
    unknown = sorted(set(np.unique(split).tolist()) - set(SPLIT_CODES.values()))
    if unknown:
        k = int(np.isin(split, unknown).sum())
        raise ValueError(f"{path}: split: {k} row{'s have' if k > 1 else ' has'} an unknown code "
                         f"({', '.join(map(str, unknown))}); expected 0 = query, 1 = gallery, 2 = train")


def _paths(path: Path, meta: Dict[str, str], n: int) -> List[str]:
    if "paths" not in meta:
        raise ValueError(f"{path}: metadata 'paths' is missing (expected a JSON list of {n} image paths)")
    try:
        paths = json.loads(meta.pop("paths"))
    except ValueError:
        paths = None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ValueError(f"{path}: metadata 'paths' is not a JSON list of strings (expected {n} image paths)")
    if len(paths) != n:
        raise ValueError(f"{path}: paths has {len(paths)} entries but features has {n} rows")
    return paths


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
    _check_arrays(path, arrays)
    paths = _paths(path, meta, arrays["features"].shape[0])
    return FeatureSet(arrays["features"], arrays["pids"], arrays["camids"], arrays["split"], paths, meta)
