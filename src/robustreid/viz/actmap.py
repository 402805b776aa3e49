"""Activation maps: where a layer of the model responds, as the activation energy per position.

The energy of a spatial layer at a position is the mean over channels of the squared activation (``mean_c A²``),
so a position the layer ignores reads exactly zero. A per-stripe score layer (FED's occlusion scores) is shown as
its scores, one band per stripe. Maps come back at the layer's resolution and unnormalised; the sheet scales one
query's row (clean and corrupted versions) together, so a corruption that weakens the response shows darker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping

import torch
from torch import nn

from .layers import capture, is_bands, to_map


@dataclass
class LayerMaps:
    """Maps of one layer for a batch: ``values`` N×h×w (N×K×1 for stripe scores), ``bands`` True for scores."""

    layer: str
    values: torch.Tensor
    bands: bool = False


def energy(feature_map: torch.Tensor) -> torch.Tensor:
    """N×C×h×w -> N×h×w mean over channels of the squared activation."""
    return feature_map.float().pow(2).mean(dim=1)


def as_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×H×W -> float in [0, 1] (a new tensor; float input must already be in [0, 1])."""
    if images.dtype == torch.uint8:
        return images.float().div(255.0)
    return images.float().clone()


@torch.no_grad()
def activation_maps(model: nn.Module, images: torch.Tensor, layers: Mapping[str, str]) -> Dict[str, LayerMaps]:
    """{label: LayerMaps} of the named layers (``{label: module name}``) for ``images`` (uint8 N×3×H×W at the
    model's input size), from one forward pass in eval mode."""
    was = model.training
    model.eval()
    names = list(dict.fromkeys(layers.values()))
    try:
        with capture(model, names) as store:
            model(as_images(images))
    finally:
        model.train(was)
    out: Dict[str, LayerMaps] = {}
    hw = tuple(images.shape[-2:])
    for label, name in layers.items():
        if name not in store:
            raise ValueError(f"layer {name!r} did not run in the eval forward pass (a training-only module?)")
        m = to_map(store[name], model, hw, name)
        if is_bands(m):
            out[label] = LayerMaps(name, m[:, 0].float(), bands=True)
        else:
            out[label] = LayerMaps(name, energy(m))
    return out
