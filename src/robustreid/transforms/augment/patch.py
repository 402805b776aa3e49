"""Random Patch: paste a patch taken from another training image.

The field's implementation (torchreid's ``RandomPatch``) is a per-sample transform that keeps its patch pool inside
the transform object; with ``num_workers > 0`` every loader worker holds its own copy, so each worker only ever
pastes patches cut by itself, and the pools differ with the number of workers. Ours runs on the batch in the main
process, with ONE pool: a ring buffer of patches cut from the previous batches (``pool_size`` entries, the oldest
replaced first). At each call:

1. each image, with probability ``p`` and once the pool holds at least ``min_pool`` patches, receives a patch drawn
   uniformly from the pool (only patches of *previous* batches: an image never receives its own patch), flipped
   left-right with probability ``flip``, at a uniform position; ``occ_mask`` marks the pasted pixels;
2. one patch per image is cut from the *clean* images of this batch (area ``area`` of the image, aspect h/w in
   ``aspect``, strictly smaller than the image) and pushed to the pool.

All draws come from ``ctx.generator``: the same seeds and batches give the same pool and the same outputs,
whatever the number of loader workers. ``state_dict()`` / ``load_state_dict()`` carry the pool across a resume.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch

from ._util import Batch, as_range, check_batch, check_prob, merge_mask, rand, randint, sample_rects
from .base import AUGMENTATIONS, AugContext


class PatchPool:
    """A fixed-capacity ring buffer of image patches (float 3×h×w tensors, detached)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"patch pool capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.items: List[torch.Tensor] = []
        self.next = 0  # slot overwritten by the next push once full
        self.pushed = 0

    def __len__(self) -> int:
        return len(self.items)

    def push(self, patch: torch.Tensor) -> None:
        patch = patch.detach().clone()
        if len(self.items) < self.capacity:
            self.items.append(patch)
        else:
            self.items[self.next] = patch
        self.next = (self.next + 1) % self.capacity
        self.pushed += 1

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.items[i]

    def state_dict(self) -> Dict[str, Any]:
        return {"capacity": self.capacity, "items": [p.cpu() for p in self.items], "next": self.next,
                "pushed": self.pushed}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.capacity = int(state["capacity"])
        self.items = [torch.as_tensor(p) for p in state["items"]]
        self.next, self.pushed = int(state["next"]), int(state["pushed"])


class RandomPatch:
    def __init__(self, p: float = 0.5, area: Sequence[float] = (0.01, 0.5), aspect: Sequence[float] = (0.1, 10.0),
                 pool_size: int = 1000, min_pool: int = 16, flip: float = 0.5, attempts: int = 10):
        self.p = check_prob(p)
        self.flip = check_prob(flip, "random_patch.flip")
        self.area = as_range(area, "random_patch.area", 0.0, 1.0)
        self.aspect = as_range(aspect, "random_patch.aspect", 1e-6)
        self.pool = PatchPool(pool_size)
        self.min_pool = max(1, int(min_pool))
        self.attempts = max(1, int(attempts))

    def __call__(self, batch: Batch, ctx: AugContext) -> Batch:
        x = check_batch(batch, "random_patch")
        n, _, H, W = x.shape
        g = ctx.generator
        out = x.clone()
        mask = torch.zeros(n, 1, H, W, dtype=x.dtype, device=x.device)
        sources: List[int] = [-1] * n
        if len(self.pool) >= self.min_pool:
            use = rand(g, n) < self.p
            for i in range(n):
                if not bool(use[i]):
                    continue
                k = randint(g, 0, len(self.pool) - 1)
                patch = self.pool[k].to(device=x.device, dtype=x.dtype)
                ph, pw = min(patch.shape[1], H), min(patch.shape[2], W)
                patch = patch[:, :ph, :pw]
                if float(rand(g, 1)[0]) < self.flip:
                    patch = patch.flip(-1)
                top, left = randint(g, 0, H - ph), randint(g, 0, W - pw)
                out[i, :, top:top + ph, left:left + pw] = patch
                mask[i, :, top:top + ph, left:left + pw] = 1
                sources[i] = k
        # cut this batch's patches from the clean images, for the next batches
        top, left, h, w, ok = sample_rects(g, n, H, W, self.area, self.aspect, self.attempts, log_aspect=False)
        for i in range(n):
            if bool(ok[i]):
                t, l_, hh, ww = int(top[i]), int(left[i]), int(h[i]), int(w[i])
                self.pool.push(x[i, :, t:t + hh, l_:l_ + ww])
        new = dict(batch)
        new["images"] = out
        new["occ_mask"] = merge_mask(batch, mask)
        info = dict(batch.get("aug_info") or {})
        info["random_patch"] = {"pool": len(self.pool), "pool_slots": sources}
        new["aug_info"] = info
        return new

    def state_dict(self) -> Dict[str, Any]:
        return self.pool.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.pool.load_state_dict(state)

    def __repr__(self) -> str:
        return f"RandomPatch(p={self.p}, area={self.area}, pool={len(self.pool)}/{self.pool.capacity})"


@AUGMENTATIONS.register("random_patch")
def build_random_patch(**kw) -> RandomPatch:
    return RandomPatch(**kw)


__all__ = ["RandomPatch", "PatchPool"]
