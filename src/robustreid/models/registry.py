"""Registries of the model family.

- ``BACKBONES``: name -> builder(last_stride=..., input_size=(H, W), **backbone_kwargs) -> nn.Module whose
  ``forward(x)`` returns a feature map N×C×h×w and which has ``out_channels``; transformer backbones also have
  ``forward_tokens(x, camids=None) -> (cls N×C, patches N×L×C)`` and ``grid`` (h, w).
- ``POOLINGS`` (alias ``HEADS``): name -> builder(in_channels) -> nn.Module mapping N×C×h×w to N×C.
- ``MODELS``: name -> builder(cfg: ModelConfig, num_classes: int) -> ReidModel.
"""

from __future__ import annotations

from ..registry import Registry

BACKBONES = Registry("backbone")
POOLINGS = Registry("pooling")
HEADS = POOLINGS
MODELS = Registry("model")
