"""BoT ("Bag of Tricks and a Strong Baseline"): backbone -> pooling -> [embedding] -> BNNeck -> classifier.

Triplet / center losses read ``feat`` (before the BNNeck), the ID loss reads ``logits``; inference uses ``feat_bn``.
Later methods reuse it: CIL is this model with GeM pooling and mean = std = 0.5 (a config + one registration).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import torch
from torch import nn

from .base import ReidModel
from .build import build_backbone, build_pooling
from .config import ModelConfig
from .heads import BNNeck, init_classifier, init_kaiming
from .registry import MODELS


class BoT(ReidModel):
    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        from ..config.loader import ConfigError

        self.backbone = build_backbone(cfg)
        channels = int(self.backbone.out_channels)
        self.use_cls_token = cfg.pooling == "cls"
        if self.use_cls_token:
            if not getattr(self.backbone, "has_cls_token", False):
                raise ConfigError(f"model.pooling: 'cls' needs a transformer backbone, {cfg.backbone!r} has no class token")
            self.pool: Optional[nn.Module] = None
        else:
            self.pool = build_pooling(cfg.pooling, channels)
        self.embed: Optional[nn.Module] = None
        if cfg.embed_dim > 0:
            self.embed = init_kaiming(nn.Linear(channels, cfg.embed_dim, bias=False))
            channels = cfg.embed_dim
        self.feat_dim = channels
        if cfg.neck == "bnneck":
            self.neck: nn.Module = BNNeck(channels)
        elif cfg.neck == "none":
            self.neck = nn.Identity()
        else:
            raise ConfigError(f"model.neck: expected 'bnneck' or 'none', got {cfg.neck!r}")
        self.classifier: Optional[nn.Linear] = None
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """New classifier for ``num_classes`` identities (0 = none: the model only embeds)."""
        if num_classes < 0:
            raise ValueError(f"num_classes: expected >= 0, got {num_classes}")
        self.num_classes = int(num_classes)
        if num_classes == 0:
            self.classifier = None
            return
        ref = next(self.backbone.parameters())
        lin = nn.Linear(self.feat_dim, num_classes, bias=self.config.neck == "none")
        self.classifier = init_classifier(lin).to(device=ref.device, dtype=ref.dtype)

    def _backbone_kwargs(self, camids: Optional[torch.Tensor]) -> Dict[str, Any]:
        return {"camids": camids} if getattr(self.backbone, "has_cls_token", False) else {}

    def forward_features(self, x: torch.Tensor, camids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Images -> last backbone feature map N×C×h×w (normalisation included)."""
        return self.backbone(self.normalize(x), **self._backbone_kwargs(camids))

    def forward(self, x: torch.Tensor, camids: Optional[torch.Tensor] = None) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        xn = self.normalize(x)
        extra: Dict[str, torch.Tensor] = {}
        if self.use_cls_token:
            cls, patches = self.backbone.forward_tokens(xn, camids)
            h, w = self._grid(x)
            feat_map = patches.transpose(1, 2).reshape(x.shape[0], patches.shape[-1], h, w)
            pooled = cls
            extra = {"cls_token": cls, "patch_tokens": patches}
        else:
            feat_map = self.backbone(xn, **self._backbone_kwargs(camids))
            pooled = self.pool(feat_map)
        feat = self.embed(pooled) if self.embed is not None else pooled
        feat_bn = self.neck(feat)
        if not self.training:
            return feat_bn if self.config.feat_bn_for_inference else feat
        out: Dict[str, torch.Tensor] = {"feat": feat, "feat_bn": feat_bn, "feat_map": feat_map, **extra}
        if self.classifier is not None:
            out["logits"] = self.classifier(feat_bn)
        return out

    def _grid(self, x: torch.Tensor):
        from .backbones.vit import grid_size

        return grid_size(x.shape[-2:], self.backbone.patch_size, self.backbone.patch_stride)


@MODELS.register("bot")
def build_bot(cfg: ModelConfig, num_classes: int) -> BoT:
    return BoT(cfg, num_classes)
