"""``ReidModel``: the base of every model — input normalisation inside, the parameter-group helper,
``reset_classifier``. Subclasses implement ``forward_features`` and ``forward``."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Tuple

import torch
from torch import nn

from .config import ModelConfig


def to_normalized(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (0..255) or float in [0, 1] N×3×H×W -> ``(x - mean) / std`` as a new float tensor (the caller's
    tensor is never modified; the memory format, e.g. channels-last, is kept)."""
    if not torch.is_tensor(x):
        raise TypeError(f"images: expected a torch tensor N×3×H×W, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != mean.numel():
        raise ValueError(f"images: expected shape N×{mean.numel()}×H×W, got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.to(mean.dtype).div(255.0)
    elif x.is_floating_point():
        x = x.to(mean.dtype) if x.dtype != mean.dtype else x
    else:
        raise TypeError(f"images: expected uint8 (0..255) or float in [0, 1], got dtype {x.dtype}")
    return (x - mean) / std  # out of place


class ReidModel(nn.Module):
    """Base of the ReID models.

    ``model.eval()(x)`` -> embedding N×D; ``model.train()(x)`` -> dict (``logits``, ``feat``, ``feat_bn``,
    ``feat_map``, ...). Attributes: ``config``, ``num_classes``, ``feat_dim``, ``input_size``."""

    #: batch keys (besides the images) the engine passes to ``forward`` as keyword arguments in train mode, e.g.
    #: ``("clean_images",)`` for a two-branch model fed the clean and the occluded view, ``("pids",)`` for a
    #: model whose training forward needs the labels. Empty for BoT.
    train_inputs: Tuple[str, ...] = ()

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes: expected >= 0, got {num_classes}")
        self.config = cfg
        self.num_classes = int(num_classes)
        self.input_size = tuple(cfg.input_size)
        self.feat_dim = 0
        # non-persistent: they come from the config, so checkpoints and pretrained files stay backbone-only
        self.register_buffer("pixel_mean", torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    # -- input ------------------------------------------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return to_normalized(x, self.pixel_mean, self.pixel_std)

    # -- to implement -----------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- optimiser groups -------------------------------------------------------------------------------------
    def no_weight_decay_names(self) -> set:
        """Names of parameters treated like norms (weight decay ``wd_norm``): tokens, embeddings, GeM p."""
        names = set()
        for n, _ in self.named_parameters():
            leaf = n.rsplit(".", 1)[-1]
            if leaf in ("cls_token", "pos_embed", "cam_embed", "p"):
                names.add(n)
        return names

    def param_groups(self, base_lr: float, weight_decay: float, bias_lr_factor: float = 1.0,
                     wd_norm: float = 0.0) -> List[Dict[str, Any]]:
        """Optimiser parameter groups.

        - ``decay``: conv / linear weights: ``lr=base_lr``, ``weight_decay``;
        - ``norm``: norm weights, tokens, position/camera embeddings, GeM p (every other 1-d parameter):
          ``lr=base_lr``, ``weight_decay=wd_norm``;
        - ``bias``: every bias (norms' too): ``lr=base_lr * bias_lr_factor``, ``weight_decay=wd_norm``.
        Frozen parameters (the BNNeck bias) are left out; empty groups are dropped. Each group carries a
        ``name`` key (optimisers keep extra keys)."""
        norm_types = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
        norm_params = set()
        for m in self.modules():
            if isinstance(m, norm_types):
                norm_params.update(id(p) for p in m.parameters(recurse=False))
        special = self.no_weight_decay_names()
        groups: Dict[str, List[nn.Parameter]] = {"decay": [], "norm": [], "bias": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.endswith(".bias"):
                groups["bias"].append(p)
            elif id(p) in norm_params or name in special or p.dim() <= 1:
                groups["norm"].append(p)
            else:
                groups["decay"].append(p)
        settings = {
            "decay": dict(lr=base_lr, weight_decay=weight_decay),
            "norm": dict(lr=base_lr, weight_decay=wd_norm),
            "bias": dict(lr=base_lr * bias_lr_factor, weight_decay=wd_norm),
        }
        return [dict(name=k, params=v, **settings[k]) for k, v in groups.items() if v]

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, feat_dim={self.feat_dim}, input_size={self.input_size}"


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def calibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Every BatchNorm's running statistics recomputed as the plain average over ``batches`` (images as the model
    takes them), for a model that has not been trained on such images (an untrained model in a speed or parity
    benchmark). Only the norms run in training mode, so the forward is the inference one (no dropout, no training
    outputs); ``torch.optim.swa_utils.update_bn`` switches the whole model to training mode and cannot serve here.
    The model is returned in eval mode, the norms' momentum restored."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        m.eval()
    return model
