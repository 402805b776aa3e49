"""PCB (Sun et al., "Beyond Part Models: Person Retrieval with Refined Part Pooling", ECCV 2018), the uniform
partition without refinement: the part-based baseline of the occlusion studies.

The backbone's last map (last stride 1: 24×8 at 384×128 on ResNet-50) is average-pooled into ``PARTS`` = 6
horizontal stripes (``adaptive_avg_pool2d`` to 6×1; when the map has fewer than 6 rows, or a number not divisible
by 6, neighbouring stripes share rows). Each stripe has its own 1×1 conv reduction (C -> 256, no bias) + BN + ReLU
and its own classifier. Training outputs: ``part_logits`` N×6×K (read by the ``parts_ce`` loss), ``part_feat``
N×6×256, ``feat`` = their concatenation (for an optional triplet loss), ``feat_map``. Inference: each stripe's
256-d feature L2-normalised, the six concatenated (N×1536). ``model.method_kwargs``: ``parts`` (6), ``part_dim``
(256). ``model.pooling`` / ``neck`` / ``embed_dim`` are not used.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .base import ReidModel
from .build import build_backbone
from .config import ModelConfig
from .heads import init_classifier
from .options import method_options
from .registry import MODELS

OPTIONS = {"parts": 6, "part_dim": 256}


def part_reduction(in_channels: int, dim: int) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, dim, 1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(conv, nn.BatchNorm2d(dim), nn.ReLU(inplace=True))


def stripe_pool(feat_map: torch.Tensor, parts: int = 6) -> torch.Tensor:
    """N×C×H×W -> N×C×parts×1: the mean of each horizontal stripe."""
    return F.adaptive_avg_pool2d(feat_map, (parts, 1))


class PCB(ReidModel):
    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        self.backbone = build_backbone(cfg)
        channels = int(self.backbone.out_channels)
        opts = method_options(getattr(cfg, "method_kwargs", {}) or {}, OPTIONS, "pcb")
        self.parts, self.part_dim = opts["parts"], opts["part_dim"]
        self.reduce = nn.ModuleList([part_reduction(channels, self.part_dim) for _ in range(self.parts)])
        self.feat_dim = self.parts * self.part_dim
        self.classifiers: Optional[nn.ModuleList] = None
        self.reset_classifier(num_classes)

    def pretrained_modules(self) -> List[nn.Module]:
        return [self.backbone]

    def reset_classifier(self, num_classes: int) -> None:
        if num_classes < 0:
            raise ValueError(f"num_classes: expected >= 0, got {num_classes}")
        self.num_classes = int(num_classes)
        if num_classes == 0:
            self.classifiers = None
            return
        ref = next(self.backbone.parameters())
        self.classifiers = nn.ModuleList([init_classifier(nn.Linear(self.part_dim, num_classes))
                                          for _ in range(self.parts)]).to(device=ref.device, dtype=ref.dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the backbone's last map N×C×h×w."""
        return self.backbone(self.normalize(x))

    def part_features(self, feat_map: torch.Tensor) -> torch.Tensor:
        """Last map -> N×parts×part_dim stripe features (after reduction, BN, ReLU)."""
        stripes = stripe_pool(feat_map, self.parts)
        return torch.stack([r(stripes[:, :, i:i + 1]).flatten(1) for i, r in enumerate(self.reduce)], dim=1)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        feat_map = self.forward_features(x)
        parts = self.part_features(feat_map)
        if not self.training:
            return F.normalize(parts, dim=2).flatten(1)
        out: Dict[str, torch.Tensor] = {"part_feat": parts, "feat": parts.flatten(1), "feat_map": feat_map}
        if self.classifiers is not None:
            out["part_logits"] = torch.stack([c(parts[:, i]) for i, c in enumerate(self.classifiers)], dim=1)
        return out


@MODELS.register("pcb")
def build_pcb(cfg: ModelConfig, num_classes: int) -> PCB:
    return PCB(cfg, num_classes)
