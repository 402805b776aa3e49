"""Checkpoints: model weights in safetensors (config embedded), training state in a weights-only torch file.

- ``model.safetensors`` / ``best.safetensors``: the model's ``state_dict`` plus metadata ``config`` (the full
  resolved training config as JSON), ``num_classes``, ``epoch``, ``iteration``, ``global_step``. One file is enough
  to rebuild the model: :func:`load_model`.
- ``state.pt``: optimiser(s), GradScaler, epoch and iteration within the epoch, RNG states (torch, CUDA, numpy,
  python), sampler state, best score, loss-module state (center-loss centres). Only tensors, dicts, lists, numbers
  and strings, so it is loaded with ``torch.load(weights_only=True)``.

Every file is written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..models.pretrained import weights_only_refusal
from ..utils.io import atomic_path

PathLike = Union[str, Path]
FORMAT = "robustreid.model/1"
WEIGHTS_NAME = "model.safetensors"
BEST_NAME = "best.safetensors"
STATE_NAME = "state.pt"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or does not fit; the message names the file."""


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def save_weights(path: PathLike, model: nn.Module, config: Optional[Mapping[str, Any]] = None,
                 meta: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``model``'s state dict as safetensors with ``config`` (a dict) and ``meta`` in the metadata."""
    from safetensors.torch import save_file

    model = unwrap(model)
    sd = model.state_dict()
    tensors: Dict[str, torch.Tensor] = {}
    seen: Dict[Tuple[int, int], str] = {}
    for k, v in sd.items():
        t = v.detach().to("cpu")
        key = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else None
        if key is not None and key in seen:  # shared storage: safetensors refuses aliases, store a copy
            t = t.clone()
        elif key is not None:
            seen[key] = k
        tensors[k] = t.contiguous()
    metadata = {"format": FORMAT}
    if config is not None:
        metadata["config"] = json.dumps(config, sort_keys=True)
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None:
        metadata["num_classes"] = str(int(num_classes))
    for k, v in (meta or {}).items():
        metadata[str(k)] = v if isinstance(v, str) else json.dumps(v)
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_weights(path: PathLike) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """(state dict, metadata) of a safetensors weights file, with clear errors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read as a safetensors checkpoint ({e})") from None
    return sd, meta


def resolve_checkpoint(path: PathLike, prefer_best: bool = True) -> Path:
    """A run directory -> its ``best.safetensors`` (else ``model.safetensors``); a file -> itself."""
    p = Path(path)
    if p.is_dir():
        names = (BEST_NAME, WEIGHTS_NAME) if prefer_best else (WEIGHTS_NAME, BEST_NAME)
        for name in names:
            if (p / name).is_file():
                return p / name
        raise CheckpointError(f"{p}: run directory without {WEIGHTS_NAME} or {BEST_NAME}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist (expected a .safetensors file or a run directory)")
    if p.suffix in (".pt", ".pth", ".pkl", ".pickle"):
        raise CheckpointError(f"{p}: expected a robustreid .safetensors checkpoint or a run directory "
                              f"(training state files and pickles are not model checkpoints)")
    return p


def load_state_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load weights after checking them with ``robustreid.models.check_state_dict`` (a readable message)."""
    target = unwrap(model)
    try:
        from ..models import check_state_dict
    except ImportError:  # pragma: no cover - models package not installed
        check_state_dict = None
    if check_state_dict is not None:
        try:
            check_state_dict(target, state_dict)
        except ValueError as e:
            raise CheckpointError(f"{source}: does not fit the model: {e}") from None
    try:
        target.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as e:  # fallback when check_state_dict is unavailable or missed something
        raise CheckpointError(f"{source}: does not fit the model: {e}") from None


def config_from_meta(meta: Mapping[str, str], source: str = "checkpoint") -> Dict[str, Any]:
    if "config" not in meta:
        raise CheckpointError(f"{source}: no training config in its metadata (not written by robustreid train?)")
    try:
        return json.loads(meta["config"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{source}: damaged config metadata ({e})") from None


def build_model_from_meta(meta: Mapping[str, str], source: str = "checkpoint") -> nn.Module:
    """Rebuild the (untrained) model described by a checkpoint's metadata."""
    from ..models import build_model
    from .config import model_config_from_dict

    cfg = config_from_meta(meta, source)
    model_dict = dict(cfg.get("model", {}))
    model_dict["pretrained"] = ""  # the weights come from the checkpoint, not from the ImageNet file
    mcfg = model_config_from_dict(model_dict, f"{source}: model")
    num_classes = int(meta.get("num_classes", "0") or 0)
    model = build_model(mcfg, max(num_classes, 1))
    if mcfg.noise:
        from ..models.noise import attach_noise

        attach_noise(model, mcfg.noise)  # same module tree as in training (noise is inactive in eval mode)
    return model


def check_finite(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Refuse weights holding NaN or inf (a diverged or damaged run): they can only produce NaN features."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} weight tensor{'s hold' if len(bad) > 1 else ' holds'} NaN or "
                              f"inf values ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); the model "
                              f"diverged or the file is damaged — use an earlier checkpoint")


def load_model(path: PathLike, device: Union[str, torch.device] = "cpu", feature: Optional[str] = None) -> nn.Module:
    """A run directory or ``.safetensors`` file -> the ReidModel with its weights, in eval mode on ``device``.
    Weights holding NaN or inf are refused (:func:`check_finite`). ``feature``: which inference feature the model
    returns, for a model with several (:func:`select_feature`)."""
    file = resolve_checkpoint(path)
    sd, meta = read_weights(file)
    check_finite(sd, str(file))
    model = build_model_from_meta(meta, str(file))
    load_state_into(model, sd, str(file))
    if feature is not None:
        select_feature(model, feature, str(file))
    return model.to(device).eval()


def select_feature(model: nn.Module, feature: str, where: str = "model") -> nn.Module:
    """Make ``model`` return its inference feature ``feature``: one of ``model.eval_features`` (FED: ``fprime``, the
    default, or ``fdm``); a model with a single inference feature is refused rather than silently used as is."""
    names = tuple(getattr(model, "eval_features", ()) or ())
    if not names:
        raise ValueError(f"{where}: a {type(model).__name__} model has one inference feature; a feature choice "
                         f"applies to models with several (FED: fprime, fdm)")
    if feature not in names:
        raise ValueError(f"{where}: unknown feature {feature!r} for a {type(model).__name__} model; expected one of "
                         f"{', '.join(names)}")
    try:
        model.eval_feature = feature
    except ValueError as e:  # e.g. FED's fdm on a model trained without the FDM
        raise ValueError(f"{where}: {e}") from None
    return model


# ---------------------------------------------------------------- training state


def rng_state() -> Dict[str, Any]:
    """RNG states of torch (CPU and CUDA), numpy and python, as weights-only-loadable objects."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]),
                   "gauss": py_state[2] if py_state[2] is None else float(py_state[2])},
    }
    if torch.cuda.is_available():
        out["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def save_state(path: PathLike, state: Mapping[str, Any]) -> Path:
    """``torch.save`` a training-state dict atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(dict(state), str(tmp))
    return path


def load_state(path: PathLike) -> Dict[str, Any]:
    """Load a training-state file with ``weights_only=True`` (no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state {path} does not exist; nothing to resume")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{weights_only_refusal(path, e)} (expected a weights-only training state)") from None


__all__ = [
    "CheckpointError",
    "save_weights",
    "read_weights",
    "resolve_checkpoint",
    "load_state_into",
    "build_model_from_meta",
    "load_model",
    "check_finite",
    "rng_state",
    "set_rng_state",
    "save_state",
    "load_state",
    "unwrap",
    "WEIGHTS_NAME",
    "BEST_NAME",
    "STATE_NAME",
]
