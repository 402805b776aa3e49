"""Shared helpers of the viz tests: a tiny Market-layout dataset and tiny untrained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from robustreid.config import to_dict
from robustreid.engine.checkpoint import save_weights
from robustreid.engine.config import load_train_config
from robustreid.models import build_model


def make_market(root: Path, ids: int = 6) -> Path:
    """32×16 crops: one query per identity (camera 1), two gallery crops in each of cameras 2 and 3."""
    rng = np.random.default_rng(0)
    for split, cams in (("bounding_box_train", (1,)), ("query", (1,)), ("bounding_box_test", (2, 3))):
        (root / split).mkdir(parents=True)
        for pid in range(1, ids + 1):
            base = rng.integers(0, 255, size=(4, 1, 3))
            for cam in cams:
                for j in range(2 if split == "bounding_box_test" else 1):
                    img = np.repeat(np.repeat(base, 8, 0), 16, 1).astype(float)
                    img = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
                    Image.fromarray(img).save(root / split / f"{pid:04d}_c{cam}s1_{j:06d}_00.jpg", quality=95)
    return root


def make_checkpoint(path: Path, overrides: Sequence[str], num_classes: int = 6) -> Path:
    """An untrained model of the demo preset with ``overrides``, saved as a robustreid checkpoint."""
    cfg = load_train_config("demo", list(overrides))
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=num_classes).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(path, model, config=to_dict(cfg))
    return path
