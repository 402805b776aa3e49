"""Contract of the training augmentations that act on a batch on the training device.

The engine builds the configured list once (``build_batch_augment(specs)``) and, every iteration, calls it on the
batch dict after decoding/resizing and the basic flip / pad+crop::

    batch = {"images": float32 N×3×H×W in [0, 1] (on the device), "pids": int64 N, "camids": int64 N}
    batch = augment(batch, ctx)

Each augmentation returns a NEW dict (never modifies the tensors it was given) and may add keys:

- ``"views"``: list of extra image tensors (same shape as images) that go through the model too (AugMix/JSD);
- ``"occ_mask"``: float N×1×H×W, 1 where the image is occluded by the augmentation, else 0 (IGO, NPO, erasing);
- ``"clean_images"``: the un-occluded view when the occluded one replaced ``images`` (NPO);
- ``"stripe_targets"``: float N×4, visibility target of each horizontal stripe (NPO, FED's rule).

All randomness comes from ``ctx.generator`` (a CPU ``torch.Generator`` seeded by the engine per iteration), so a
run is reproducible and independent of the device. ``ctx.progress`` is the training progress in [0, 1] and
``ctx.epoch`` the 0-based epoch (for schedules such as IGO's growing area); ``ctx.mean`` / ``ctx.std`` are the
model's normalisation constants (for fills defined in normalised space).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import torch

from ...registry import Registry

#: name -> builder(**kwargs) -> callable(batch: dict, ctx: AugContext) -> dict
AUGMENTATIONS = Registry("augmentation")

Batch = Dict[str, Any]


@dataclass
class AugContext:
    generator: torch.Generator
    epoch: int = 0
    max_epochs: int = 1
    progress: float = 0.0
    iteration: int = 0
    mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: Tuple[float, float, float] = (0.229, 0.224, 0.225)
    extra: Dict[str, Any] = field(default_factory=dict)


class Compose:
    """Apply batch augmentations in order."""

    def __init__(self, augs: Sequence[Callable[[Batch, AugContext], Batch]]):
        self.augs = list(augs)

    def __call__(self, batch: Batch, ctx: AugContext) -> Batch:
        for aug in self.augs:
            batch = aug(batch, ctx)
        return batch

    def __len__(self) -> int:
        return len(self.augs)

    def state_dict(self) -> Dict[str, Any]:
        """The state of every stateful augmentation (an occluder pool, ...), by position, so that a resumed run
        continues with what the interrupted one had gathered: ``{"augs": [name or None, ...], "states": {i: ...}}``."""
        names = [type(a).__name__ for a in self.augs]
        states = {str(i): a.state_dict() for i, a in enumerate(self.augs) if hasattr(a, "state_dict")}
        return {"augs": names, "states": states}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        names = [type(a).__name__ for a in self.augs]
        if list(state.get("augs", [])) != names:
            raise ValueError(f"augmentation state: saved for {list(state.get('augs', []))}, the config builds "
                             f"{names} (data.augs changed?)")
        for key, sub in dict(state.get("states", {})).items():
            aug = self.augs[int(key)]
            if not hasattr(aug, "load_state_dict"):
                raise ValueError(f"augmentation state: data.augs[{key}] ({names[int(key)]}) has no state to load")
            aug.load_state_dict(sub)

    def __repr__(self) -> str:
        return f"Compose({self.augs})"


def build_batch_augment(specs: Sequence[Mapping[str, Any]]) -> Compose:
    """``[{"name": "random_erasing", "p": 0.5}, ...]`` -> :class:`Compose` (the list may be empty)."""
    augs: List[Callable[[Batch, AugContext], Batch]] = []
    for i, spec in enumerate(specs or []):
        spec = dict(spec)
        if "name" not in spec:
            raise ValueError(f"augmentation #{i}: missing 'name' (known: {', '.join(AUGMENTATIONS.names())})")
        name = spec.pop("name")
        try:
            augs.append(AUGMENTATIONS.build(name, **spec))
        except TypeError as e:
            raise ValueError(f"augmentation {name!r}: bad arguments {spec}: {e}") from None
    return Compose(augs)
