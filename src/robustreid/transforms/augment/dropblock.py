"""Batch DropBlock (Dai et al., "Batch DropBlock Network", ICCV 2019) and Slow-DropBlock, the batch-occlusion
baselines IGOAS is compared with.

- :class:`BatchDropBlock`: zero the same feature-map region for every sample of a batch. A model-side
  ``nn.Module``: put it on a feature map (e.g. after the last stage); it is active only in training mode and the
  identity in eval mode. The region is ``round(h_ratio·H)`` rows by ``round(w_ratio·W)`` columns (defaults 0.3
  and 1.0: a horizontal band), at a uniform position, redrawn at every forward pass. Randomness from ``generator``
  when given, else from torch's global generator (seeded per iteration by the engine). The last mask (1 kept,
  0 dropped; 1×1×H×W) is kept in ``last_mask``. :func:`attach_dropblock` places it on named layers of a model
  (``model.dropblock: [{layer: backbone, h_ratio: 0.3}]`` in a config; the engine attaches it).
- :class:`SlowDropBlock` (batch augmentation ``slow_dropblock``): the same band moved to the input image, i.e.
  "dropped" to 0 in the model's normalised space = the dataset mean colour ``ctx.mean`` in pixels; adds
  ``occ_mask``. ``every`` redraws the position only every N iterations (the released IGOAS code's ``Threshold``:
  a block that moves slowly; 1 = every iteration, its default). With ``every > 1`` the position of the iterations
  ``k·every ... (k+1)·every - 1`` is drawn from a generator seeded by ``(seed, k)``, so a resumed run draws the
  same blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence

import torch
from torch import nn

from ...utils.seed import derive_seed
from ._util import Batch, check_batch, fill_region, randint
from .base import AUGMENTATIONS, AugContext


def _check_ratios(who: str, h_ratio: float, w_ratio: float) -> None:
    if not (0.0 <= h_ratio <= 1.0 and 0.0 <= w_ratio <= 1.0):
        raise ValueError(f"{who}: h_ratio and w_ratio must be in [0, 1], got {h_ratio}, {w_ratio}")


class BatchDropBlock(nn.Module):
    def __init__(self, h_ratio: float = 0.3, w_ratio: float = 1.0, generator: Optional[torch.Generator] = None):
        super().__init__()
        _check_ratios("BatchDropBlock", h_ratio, w_ratio)
        self.h_ratio, self.w_ratio = float(h_ratio), float(w_ratio)
        self.generator = generator
        self.last_mask: Optional[torch.Tensor] = None

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with one band zeroed for the whole batch (whatever the mode)."""
        H, W = x.shape[-2:]
        rh, rw = int(round(self.h_ratio * H)), int(round(self.w_ratio * W))
        top = int(torch.randint(0, H - rh + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, W - rw + 1, (1,), generator=self.generator))
        mask = x.new_ones((1, 1, H, W))
        mask[..., top:top + rh, left:left + rw] = 0
        self.last_mask = mask
        return x * mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x) if self.training else x

    def extra_repr(self) -> str:
        return f"h_ratio={self.h_ratio}, w_ratio={self.w_ratio}"


@dataclass
class DropBlockHandle:
    """What :func:`attach_dropblock` returns per spec: the layer name, the block and ``remove()``."""

    layer: str
    block: BatchDropBlock
    hook: Any

    def remove(self) -> None:
        self.hook.remove()


SPEC_KEYS = ("layer", "h_ratio", "w_ratio")


def attach_dropblock(model: nn.Module, specs: Optional[Sequence[Mapping[str, Any]]]) -> List[DropBlockHandle]:
    """A :class:`BatchDropBlock` on the output of each named layer (``""`` = the model's output is not allowed),
    active while that layer is in training mode. Specs: ``{layer, h_ratio (0.3), w_ratio (1.0)}``."""
    names = dict(model.named_modules())
    handles: List[DropBlockHandle] = []
    for i, spec in enumerate(specs or []):
        if not isinstance(spec, Mapping) or not spec.get("layer"):
            raise ValueError(f"model.dropblock[{i}]: expected a mapping with a 'layer' (a module name such as "
                             f"'backbone'), got {spec!r}")
        unknown = [k for k in spec if k not in SPEC_KEYS]
        if unknown:
            raise ValueError(f"model.dropblock[{i}]: unknown key(s) {unknown}; expected: {', '.join(SPEC_KEYS)}")
        layer = str(spec["layer"])
        if layer not in names:
            near = [n for n in names if n and n.split(".")[0] == layer.split(".")[0]][:6]
            raise ValueError(f"model.dropblock[{i}].layer: no module {layer!r} in the model"
                             + (f" (e.g. {', '.join(near)})" if near else ""))
        block = BatchDropBlock(float(spec.get("h_ratio", 0.3)), float(spec.get("w_ratio", 1.0)))

        def hook(mod, inputs, output, block=block):
            return block.drop(output) if mod.training and torch.is_tensor(output) else output

        handles.append(DropBlockHandle(layer, block, names[layer].register_forward_hook(hook)))
    return handles


class SlowDropBlock:
    """Batch DropBlock on the input images: one band per batch set to the dataset mean (see module doc)."""

    def __init__(self, h_ratio: float = 0.3, w_ratio: float = 1.0, every: int = 1, seed: int = 0,
                 mean: Optional[Sequence[float]] = None):
        _check_ratios("slow_dropblock", h_ratio, w_ratio)
        if int(every) < 1:
            raise ValueError(f"slow_dropblock.every: expected >= 1 iteration, got {every}")
        self.h_ratio, self.w_ratio = float(h_ratio), float(w_ratio)
        self.every, self.seed = int(every), int(seed)
        self.mean = None if mean is None else tuple(float(v) for v in mean)

    def position_generator(self, ctx: AugContext) -> torch.Generator:
        if self.every == 1:
            return ctx.generator
        period = int(ctx.iteration) // self.every
        return torch.Generator().manual_seed(derive_seed("slow_dropblock", self.seed, period))

    def __call__(self, batch: Batch, ctx: AugContext) -> Batch:
        x = check_batch(batch, "slow_dropblock")
        n, _, H, W = x.shape
        rh, rw = int(round(self.h_ratio * H)), int(round(self.w_ratio * W))
        g = self.position_generator(ctx)
        top, left = randint(g, 0, H - rh), randint(g, 0, W - rw)
        mask = x.new_zeros((n, 1, H, W))
        mask[..., top:top + rh, left:left + rw] = 1
        return fill_region(batch, x, mask, self.mean or tuple(ctx.mean))

    def __repr__(self) -> str:
        return f"SlowDropBlock(h_ratio={self.h_ratio}, w_ratio={self.w_ratio}, every={self.every})"


@AUGMENTATIONS.register("slow_dropblock")
def build_slow_dropblock(**kw) -> SlowDropBlock:
    return SlowDropBlock(**kw)


__all__ = ["BatchDropBlock", "DropBlockHandle", "SlowDropBlock", "attach_dropblock"]
