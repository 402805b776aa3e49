"""Corruption augmentation: train on random corruptions of the suite, with a named set held out.

Each image, with probability ``p``, gets one corruption drawn uniformly from the *seen* set at a severity drawn
uniformly from ``severity`` (inclusive range), applied with :func:`robustreid.corruptions.corrupt` on the 8-bit
version of the image (the result is converted back to float; untouched images stay bit-identical). The seen set
is ``corruptions`` (default: the 20 benchmark corruptions) minus ``holdout``; ``holdout`` entries may be
corruption names or family names (``noise``, ``blur``, ``weather``, ``digital``, ``occlusion``).

``seen_corruptions`` / ``held_out`` (attributes) and ``batch["aug_info"]["corruption"]`` (seen, held out, and what
each image got) let reports say which corruptions a model saw in training.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ._util import Batch, check_batch, check_prob, rand
from .base import AUGMENTATIONS, AugContext


def _suite():
    try:
        from ... import corruptions as C
    except ImportError as e:  # pragma: no cover
        raise ImportError(f"corruption augmentation needs robustreid.corruptions: {e}") from None
    return C


def expand_names(names: Sequence[str], what: str) -> List[str]:
    """Corruption or family names -> corruption names (order kept, duplicates dropped)."""
    C = _suite()
    known = list(C.CORRUPTIONS) + list(C.OCCLUSIONS)
    known += [k for k in C.CORRUPTION_REGISTRY.names() if k not in known]
    out: List[str] = []
    for name in names:
        key = str(name).strip().lower().replace("-", "_")
        if key in C.FAMILIES:
            items = list(C.FAMILIES[key])
        elif key in known:
            items = [key]
        else:
            raise ValueError(f"corruption_aug.{what}: unknown corruption or family {name!r}; families: "
                             f"{', '.join(C.FAMILIES)}; corruptions: {', '.join(known)}")
        out += [i for i in items if i not in out]
    return out


class CorruptionAug:
    def __init__(self, p: float = 0.5, corruptions: Optional[Sequence[str]] = None,
                 holdout: Sequence[str] = (), severity: Sequence[int] = (1, 5)):
        C = _suite()
        self.p = check_prob(p)
        pool = expand_names(corruptions, "corruptions") if corruptions else list(C.CORRUPTIONS)
        self.held_out: Tuple[str, ...] = tuple(expand_names(holdout, "holdout")) if holdout else ()
        self.seen_corruptions: Tuple[str, ...] = tuple(c for c in pool if c not in self.held_out)
        if not self.seen_corruptions:
            raise ValueError("corruption_aug: every corruption is held out; nothing left to train on")
        missing = [c for c in self.seen_corruptions if c not in C.CORRUPTION_REGISTRY]
        if missing:
            raise ValueError(f"corruption_aug: corruption(s) {missing} are not implemented (registered: "
                             f"{', '.join(sorted(C.CORRUPTION_REGISTRY.names()))}); hold them out or list others")
        lo, hi = (int(s) for s in severity)
        if not 1 <= lo <= hi <= 5:
            raise ValueError(f"corruption_aug.severity: expected [min, max] within 1..5, got {list(severity)}")
        self.severity = (lo, hi)

    def __call__(self, batch: Batch, ctx: AugContext) -> Batch:
        x = check_batch(batch, "corruption_aug")
        C = _suite()
        n = x.shape[0]
        g = ctx.generator
        use = rand(g, n) < self.p
        which = torch.randint(0, len(self.seen_corruptions), (n,), generator=g)
        sev = torch.randint(self.severity[0], self.severity[1] + 1, (n,), generator=g)
        seeds = torch.randint(0, 2 ** 62, (n,), generator=g)
        out = x.clone()
        applied: List[Optional[Tuple[str, int]]] = [None] * n
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i in range(n):
            if bool(use[i]):
                groups.setdefault((int(which[i]), int(sev[i])), []).append(i)
        for (k, s), idx in groups.items():
            name = self.seen_corruptions[k]
            sel = torch.tensor(idx, device=x.device)
            u8 = (x[sel] * 255.0).round().clamp(0, 255).to(torch.uint8)
            cor = C.corrupt(u8, name, s, seed=[int(seeds[i]) for i in idx])
            out[sel] = cor.to(device=x.device, dtype=x.dtype) / 255.0
            for i in idx:
                applied[i] = (name, s)
        new = dict(batch)
        new["images"] = out
        info = dict(batch.get("aug_info") or {})
        info["corruption"] = {"seen": list(self.seen_corruptions), "held_out": list(self.held_out),
                              "applied": applied}
        new["aug_info"] = info
        return new

    def __repr__(self) -> str:
        return f"CorruptionAug(p={self.p}, seen={len(self.seen_corruptions)}, held_out={list(self.held_out)})"


@AUGMENTATIONS.register("corruption_aug")
def build_corruption_aug(**kw) -> CorruptionAug:
    return CorruptionAug(**kw)


__all__ = ["CorruptionAug", "expand_names"]
