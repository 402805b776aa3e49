"""The typed training configuration: ``TrainConfig`` = model + data + solver + losses + train + eval sections.

Presets live in ``configs/*.yaml`` (``_base_`` inheritance); load one with overrides::

    cfg = load_train_config("cpu_small", ["solver.lr=3e-4", "data.root=/data/market"])

Every key is checked against these dataclasses: a typo or a value of the wrong type is a ``ConfigError`` naming
the field (``cpu_small: unknown key 'lrr'; did you mean 'lr'?``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Literal, Union

from ..config import ConfigError, from_dict, load_config, to_dict
from ..models.config import ModelConfig


@dataclass
class DataConfig:
    """Where the training data comes from and how a training batch is drawn and augmented.

    The crop size is the model's ``model.input_size``. ``p`` identities × ``k`` images per batch (PK sampler).
    ``repeats``: how many times an epoch visits every identity (0 = auto: about one pass over the training images,
    round(images / (identities · k)), as BoT's identity sampler; Market-1501: 4).
    ``flip`` / ``pad`` are the basic augmentations applied on the training device (horizontal flip with
    probability ``flip``; zero padding by ``pad`` pixels then a random crop back to the input size). ``augs`` are
    batch augmentations (``robustreid.transforms.augment``), e.g. ``[{name: random_erasing, p: 0.5}]``.
    """

    dataset: str = "synthetic"
    root: str = "data/synthetic"
    options: Dict[str, Any] = field(default_factory=dict)
    p: int = 16
    k: int = 4
    repeats: int = 0
    num_workers: int = 0
    cache: bool = True
    flip: float = 0.5
    pad: int = 10
    augs: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class SolverConfig:
    """Optimiser and learning-rate schedule (per iteration, a pure function of (epoch, iteration)).

    ``warmup_epochs``: linear warm-up from ``warmup_factor``·lr to lr. ``schedule``: ``multistep`` (× ``gamma`` at
    each epoch in ``steps``) or ``cosine`` (from lr at the end of warm-up to ``min_lr_factor``·lr at ``epochs``).
    ``center_lr``: learning rate of the center-loss centres (their own SGD, as BoT).
    ``freeze_backbone_epochs``: during the first N epochs only the new layers train; the model's pretrained part
    (its ``pretrained_modules()``, else ``model.backbone``) gets no update and keeps its BatchNorm statistics.
    """

    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = 3.5e-4
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    wd_norm: float = 0.0
    bias_lr_factor: float = 1.0
    schedule: Literal["multistep", "cosine"] = "multistep"
    warmup_epochs: float = 10.0
    warmup_factor: float = 0.1
    steps: List[int] = field(default_factory=lambda: [40, 70])
    gamma: float = 0.1
    min_lr_factor: float = 0.0
    epochs: int = 120
    clip_grad: float = 0.0
    center_lr: float = 0.5
    freeze_backbone_epochs: int = 0


@dataclass
class TrainOptions:
    """How the loop runs. ``checkpoint_period``: also save every N iterations (0 = only at the end of each epoch);
    ``eval_period``: evaluate every N epochs (0 = only at the end); ``max_iters_per_epoch``: cap (0 = all); ``threads``: torch CPU threads (0 = torch's default)."""

    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    log_period: int = 20
    checkpoint_period: int = 0
    eval_period: int = 0
    max_iters_per_epoch: int = 0
    tensorboard: bool = False
    progress: bool = True
    compile: bool = False
    threads: int = 0


@dataclass
class EvalConfig:
    flip: bool = False
    metric: Literal["cosine", "euclidean"] = "cosine"
    batch_size: int = 128


def _default_losses() -> List[Dict[str, Any]]:
    return [{"name": "ce", "weight": 1.0, "epsilon": 0.1}, {"name": "triplet", "weight": 1.0, "margin": 0.3}]


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    losses: List[Dict[str, Any]] = field(default_factory=_default_losses)
    train: TrainOptions = field(default_factory=TrainOptions)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> "TrainConfig":
        """Cross-field checks; raises :class:`ConfigError` naming the field."""
        s, d = self.solver, self.data
        if s.epochs < 1:
            raise ConfigError(f"solver.epochs: expected >= 1, got {s.epochs}")
        if s.lr <= 0:
            raise ConfigError(f"solver.lr: expected > 0, got {s.lr}")
        if s.warmup_epochs < 0 or s.warmup_epochs > s.epochs:
            raise ConfigError(f"solver.warmup_epochs: expected 0..epochs ({s.epochs}), got {s.warmup_epochs}")
        if not 0 < s.warmup_factor <= 1:
            raise ConfigError(f"solver.warmup_factor: expected in (0, 1], got {s.warmup_factor}")
        if not 0 <= s.freeze_backbone_epochs <= s.epochs:
            raise ConfigError(f"solver.freeze_backbone_epochs: expected 0..epochs ({s.epochs}), "
                              f"got {s.freeze_backbone_epochs}")
        if list(s.steps) != sorted(s.steps):
            raise ConfigError(f"solver.steps: expected increasing epochs, got {s.steps}")
        if d.repeats < 0:
            raise ConfigError(f"data.repeats: expected >= 0 (0 = auto), got {d.repeats}")
        if d.p < 1 or d.k < 1:
            raise ConfigError(f"data.p / data.k: expected >= 1, got p={d.p}, k={d.k}")
        if not 0 <= d.flip <= 1:
            raise ConfigError(f"data.flip: expected a probability in [0, 1], got {d.flip}")
        if d.pad < 0:
            raise ConfigError(f"data.pad: expected >= 0, got {d.pad}")
        size = list(self.model.input_size)
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"model.input_size: expected [height, width], got {self.model.input_size}")
        for i, spec in enumerate(self.losses):
            if not isinstance(spec, dict) or "name" not in spec:
                raise ConfigError(f"losses[{i}]: expected a mapping with a 'name', got {spec!r}")
        self._check_can_learn()
        for i, spec in enumerate(d.augs):
            if not isinstance(spec, dict) or "name" not in spec:
                raise ConfigError(f"data.augs[{i}]: expected a mapping with a 'name', got {spec!r}")
        if self.train.device not in ("auto", "cpu", "cuda") and not self.train.device.startswith("cuda:"):
            raise ConfigError(f"train.device: expected auto, cpu, cuda or cuda:N, got {self.train.device!r}")
        return self

    def _check_can_learn(self) -> None:
        """A batch-hard triplet loss needs a positive (data.k >= 2) and a negative (data.p >= 2) in every batch;
        without them it is 0 throughout and the run would end with a model that learnt nothing from it."""
        d = self.data
        for i, spec in enumerate(self.losses):
            if str(spec["name"]).lower() != "triplet" or spec.get("weight", 1.0) == 0:
                continue
            if d.k < 2:
                raise ConfigError(f"data.k=1 with the triplet loss (losses[{i}]): a batch holds one image per "
                                  f"identity, so there is no positive pair and the loss is 0 throughout; use "
                                  f"data.k >= 2 or drop the triplet loss")
            if d.p < 2:
                raise ConfigError(f"data.p=1 with the triplet loss (losses[{i}]): a batch holds one identity, so "
                                  f"there is no negative and the loss is 0 throughout; use data.p >= 2 or drop the "
                                  f"triplet loss")

    def to_dict(self) -> Dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any], where: str = "config") -> "TrainConfig":
        return from_dict(cls, data, where).validate()


def load_train_config(preset: Union[str, Path, None] = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """A preset name (``cpu_small``) or YAML path, plus ``key=value`` overrides -> validated :class:`TrainConfig`."""
    return load_config(TrainConfig, preset, list(overrides)).validate()


def model_config_from_dict(data: Dict[str, Any], where: str = "model") -> ModelConfig:
    return from_dict(ModelConfig, data, where)


__all__ = [
    "ModelConfig",
    "DataConfig",
    "SolverConfig",
    "TrainOptions",
    "EvalConfig",
    "TrainConfig",
    "load_train_config",
    "model_config_from_dict",
    "ConfigError",
]
