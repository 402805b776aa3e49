"""The training engine: typed config, one trainer for every method, checkpoints, DDP, feature extraction.

Public API::

    from robustreid.engine import load_train_config, train, Trainer, load_model, FeatureExtractor
    cfg = load_train_config("demo", ["solver.epochs=5"])
    train(cfg, "runs/demo")                         # or Trainer(cfg, "runs/demo").train()
    model = load_model("runs/demo")                 # ReidModel in eval mode (best.safetensors)
    fx = FeatureExtractor("runs/demo"); f = fx(["a.jpg", "b.jpg"])
"""

from .checkpoint import CheckpointError, load_model, load_state, read_weights, save_state, save_weights
from .config import DataConfig, EvalConfig, SolverConfig, TrainConfig, TrainOptions, load_train_config
from .extract import FeatureExtractor, extract_dataset_features, extract_features
from .schedule import lr_factor, lr_factor_from_config
from .trainer import Trainer, train

__all__ = [
    "CheckpointError", "DataConfig", "EvalConfig", "FeatureExtractor", "SolverConfig", "TrainConfig", "TrainOptions",
    "Trainer", "extract_dataset_features", "extract_features", "load_model", "load_state", "load_train_config",
    "lr_factor", "lr_factor_from_config", "read_weights", "save_state", "save_weights", "train",
]
