"""The identity of a model: a SHA-256 over what decides its embeddings (weights, buffers, input size).

An index records the identity of the model that embedded its gallery, an exported ONNX file the identity of the
model it came from; a search refuses a model whose identity differs. The hash is over the tensors (names, dtypes,
shapes, bytes in name order) rather than the file's bytes, so a copy or a re-save of the same weights keeps it,
while any changed weight, normalisation constant or input size changes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Union

import torch
from torch import nn

from ..engine.checkpoint import load_model, resolve_checkpoint, unwrap


def model_identity(model: nn.Module) -> str:
    """Hex SHA-256 of the model's state dict plus its non-persistent buffers (input normalisation) and input size."""
    m = unwrap(model)
    tensors: Dict[str, torch.Tensor] = dict(m.state_dict())
    for name, buf in m.named_buffers():
        tensors.setdefault(name, buf)
    h = hashlib.sha256()
    h.update(repr(tuple(getattr(m, "input_size", ()) or ())).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def short_id(identity: str) -> str:
    """The first 12 hex digits, for messages."""
    return identity[:12]


def load_with_identity(checkpoint: Union[str, Path, nn.Module], device: str = "cpu"):
    """(model in eval mode, identity, source) for a run directory, a ``.safetensors`` file or a loaded model."""
    if isinstance(checkpoint, nn.Module):
        model = checkpoint.to(device).eval()
        return model, model_identity(model), type(unwrap(model)).__name__
    file = resolve_checkpoint(checkpoint)
    model = load_model(file, device=device)
    return model, model_identity(model), str(Path(file).resolve())
