"""IGOAS (Zhao et al., "Incremental Generative Occlusion Adversarial Suppression Network for Person ReID", TIP 2021).

A shared trunk (stem + every stage but the last) and two branches, each with its own copy of the last stage
(both start from the same weights, pretrained or not) and one extra bottleneck block::

    clean image    -> trunk -> last stage (global copy)        -> block -> GAP -> Linear+BN+ReLU (512) = v1 -> cls 1
    occluded image -> trunk -> CBAM -> last stage (own copy)   -> block -> CBAM -> GMP -> Linear+BN+ReLU = v2 -> cls 2
                                                                       [v1, v2] (1024) -> cls 3

The occluded image and its mask come from the IGO batch augmentation (``data.augs: [{name: igo}]``), which keeps
the clean batch as ``clean_images``; the model names that key in ``train_inputs`` and the engine passes it. Both
views go through the trunk in one batch (as the released code does). Training outputs: ``logits_global``,
``logits_occ``, ``logits`` (classifier 3), ``feat_global``, ``feat_occ``, ``feat`` (= [v1, v2], for the optional
triplet loss), ``map_global`` / ``map_occ`` (channel-mean maps N×1×h×w of the two branches, read by the mask loss),
``feat_map`` (the global branch's map).

Inference (eval mode): the one (clean) image goes through both branches; v1 and v2 are each L2-normalised and
concatenated (N×1024). Backbone-agnostic: any backbone with ``trunk_and_tail()`` (ResNet, EfficientNet-Lite).
``model.method_kwargs``: ``dim`` (reduction size, 512 as the paper), ``cbam_reduction`` (16), ``block_reduction``
(4: the extra block's inner width is C/4, the paper's ``Bottleneck(2048, 512)``).
``model.pooling`` / ``neck`` / ``embed_dim`` are not used.
"""

from __future__ import annotations

import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..config.loader import ConfigError
from .attention import CBAM
from .backbones.resnet import Bottleneck
from .base import ReidModel
from .build import build_backbone
from .config import ModelConfig
from .heads import init_classifier
from .options import method_options
from .registry import MODELS

OPTIONS = {"dim": 512, "cbam_reduction": 16, "block_reduction": 4}


class ExtraBlock(Bottleneck):
    """A bottleneck C -> C/r -> C/r -> C with an identity shortcut (``Bottleneck`` fixes the expansion at 4)."""

    def __init__(self, channels: int, mid: int):
        super().__init__(channels, mid)
        self.conv3 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)


def extra_block(channels: int, reduction: int = 4) -> nn.Module:
    """The extra bottleneck block of each branch (C -> C/r -> C/r -> C, identity shortcut), Kaiming-initialised."""
    if channels % reduction:
        raise ConfigError(f"model.method_kwargs.block_reduction: IGOAS's extra bottleneck needs channels ({channels}) "
                          f"divisible by {reduction}")
    block = ExtraBlock(channels, channels // reduction)
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return block


def reduction(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear (bias) + BatchNorm1d + ReLU, initialised as the released code (Kaiming fan-out, BN weight
    ~ N(1, 0.02))."""
    lin, bn = nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim)
    nn.init.kaiming_normal_(lin.weight, a=0, mode="fan_out")
    nn.init.zeros_(lin.bias)
    nn.init.normal_(bn.weight, 1.0, 0.02)
    nn.init.zeros_(bn.bias)
    return nn.Sequential(lin, bn, nn.ReLU())


class IGOAS(ReidModel):
    train_inputs = ("clean_images",)

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        self.backbone = build_backbone(cfg)
        if not callable(getattr(self.backbone, "trunk_and_tail", None)):
            raise ConfigError(f"model.backbone: IGOAS needs a backbone that splits into trunk and last stage "
                              f"(trunk_and_tail: resnet*, efficientnet_lite*); {cfg.backbone!r} has none")
        trunk, tail = self.backbone.trunk_and_tail()
        self._split: Tuple[nn.Module, nn.Module] = (trunk, tail)  # views of self.backbone, not registered twice
        mid, channels = int(trunk.out_channels), int(tail.out_channels)
        opts = method_options(getattr(cfg, "method_kwargs", {}) or {}, OPTIONS, "igoas")
        dim, r = opts["dim"], opts["cbam_reduction"]
        self.occ_stage = copy.deepcopy(tail)  # the suppression branch's own last stage, same initial weights
        self.global_block = extra_block(channels, opts["block_reduction"])
        self.occ_block = extra_block(channels, opts["block_reduction"])
        self.occ_att_in = CBAM(mid, r)
        self.occ_att_out = CBAM(channels, r)
        self.global_reduce = reduction(channels, dim)
        self.occ_reduce = reduction(channels, dim)
        self.branch_dim = dim
        self.feat_dim = 2 * dim
        self.classifier1: Optional[nn.Linear] = None
        self.classifier2: Optional[nn.Linear] = None
        self.classifier3: Optional[nn.Linear] = None
        self.reset_classifier(num_classes)

    # -- weights ------------------------------------------------------------------------------------------------
    def after_pretrained_load(self) -> None:
        """Pretrained weights load into ``backbone`` (the global branch's last stage); copy them to the suppression
        branch's stage so both branches start equal, as in the paper."""
        self.occ_stage.load_state_dict(self._split[1].state_dict())

    def pretrained_modules(self) -> List[nn.Module]:
        """The modules that come from the (pretrained) backbone: frozen first by ``solver.freeze_backbone_epochs``."""
        return [self.backbone, self.occ_stage]

    def reset_classifier(self, num_classes: int) -> None:
        if num_classes < 0:
            raise ValueError(f"num_classes: expected >= 0, got {num_classes}")
        self.num_classes = int(num_classes)
        if num_classes == 0:
            self.classifier1 = self.classifier2 = self.classifier3 = None
            return
        ref = next(self.backbone.parameters())
        def make(d: int) -> nn.Linear:  # the released init: N(0, 0.01) weights, zero bias
            return init_classifier(nn.Linear(d, num_classes), std=0.01).to(device=ref.device, dtype=ref.dtype)

        self.classifier1, self.classifier2 = make(self.branch_dim), make(self.branch_dim)
        self.classifier3 = make(self.feat_dim)

    # -- branches -----------------------------------------------------------------------------------------------
    def global_branch(self, t: torch.Tensor) -> torch.Tensor:
        """Trunk output -> the global branch's map (last stage, extra block)."""
        return self.global_block(self._split[1](t))

    def occ_branch(self, t: torch.Tensor) -> torch.Tensor:
        """Trunk output -> the suppression branch's map (CBAM, own last stage, extra block, CBAM)."""
        return self.occ_att_out(self.occ_block(self.occ_stage(self.occ_att_in(t))))

    def branch_maps(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Images -> (global map, suppression map), both branches on the same images (what inference uses)."""
        t = self._split[0](self.normalize(x))
        return self.global_branch(t), self.occ_branch(t)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the global branch's last map N×C×h×w."""
        return self.global_branch(self._split[0](self.normalize(x)))

    def _vectors(self, f1: torch.Tensor, f2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.global_reduce(f1.mean(dim=(2, 3))), self.occ_reduce(f2.amax(dim=(2, 3)))

    def forward(self, x: torch.Tensor, clean_images: Optional[torch.Tensor] = None
                ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        if not self.training:
            v1, v2 = self._vectors(*self.branch_maps(x))
            return torch.cat([F.normalize(v1, dim=1), F.normalize(v2, dim=1)], dim=1)
        if clean_images is None:
            raise ValueError("IGOAS in train mode takes the occluded images and their clean view (clean_images): "
                             "put the IGO augmentation in data.augs ([{name: igo}])")
        if clean_images.shape != x.shape:
            raise ValueError(f"IGOAS: clean_images {tuple(clean_images.shape)} and the occluded images "
                             f"{tuple(x.shape)} must have the same shape")
        n = x.shape[0]
        t = self._split[0](self.normalize(torch.cat([clean_images, x])))
        f1, f2 = self.global_branch(t[:n]), self.occ_branch(t[n:])
        v1, v2 = self._vectors(f1, f2)
        feat = torch.cat([v1, v2], dim=1)
        out: Dict[str, torch.Tensor] = {
            "feat_global": v1, "feat_occ": v2, "feat": feat, "feat_map": f1,
            "map_global": f1.mean(dim=1, keepdim=True), "map_occ": f2.mean(dim=1, keepdim=True),
        }
        if self.classifier1 is not None:
            out["logits_global"] = self.classifier1(v1)
            out["logits_occ"] = self.classifier2(v2)
            out["logits"] = self.classifier3(feat)
        return out


@MODELS.register("igoas")
def build_igoas(cfg: ModelConfig, num_classes: int) -> IGOAS:
    return IGOAS(cfg, num_classes)
