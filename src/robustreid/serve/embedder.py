"""Embedders: uint8 images -> L2-normalised embeddings, from a PyTorch checkpoint or an exported ONNX file, each
carrying the identity of the model (:mod:`robustreid.export.identity`) so that an index refuses another model.

Both resize exactly as extraction does (``transforms.functional.resize``, antialiased bilinear, to uint8) and feed
raw pixels: the model (or the exported graph) normalises them itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..engine.extract import forward_features, resize_batch
from ..export.identity import load_with_identity, short_id
from ..utils.progress import progress_bar


def _unit(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


class Embedder:
    """Base: ``embed_batch`` (uint8 B×3×H×W at ``input_size`` -> B×D) is what a backend implements."""

    identity: str = ""
    source: str = ""
    backend: str = ""
    input_size: Tuple[int, int] = (0, 0)
    flip: bool = False
    batch_size: int = 32

    def embed_batch(self, x: torch.Tensor) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Native-size uint8 3×H×W tensors -> one uint8 B×3×h×w batch at the model's input size."""
        return resize_batch(list(images), self.input_size)

    def embed(self, x: torch.Tensor) -> np.ndarray:
        """uint8 B×3×h×w at the input size -> L2-normalised float32 B×D (in chunks of ``batch_size``)."""
        if x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[-2:]) != tuple(self.input_size):
            raise ValueError(f"expected uint8 B×3×{self.input_size[0]}×{self.input_size[1]} images, got "
                             f"{x.dtype} {tuple(x.shape)}")
        out = []
        for i in range(0, x.shape[0], self.batch_size):
            f = self.embed_batch(x[i:i + self.batch_size])
            if self.flip:
                f = (f + self.embed_batch(x[i:i + self.batch_size].flip(-1))) / 2
            out.append(f)
        return _unit(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)

    def embed_images(self, images: Sequence[torch.Tensor]) -> np.ndarray:
        return self.embed(self.prepare(images))

    def embed_paths(self, paths: Sequence[str], *, progress: bool = True, desc: str = "embed", bar=None) -> np.ndarray:
        """Decode, resize and embed image files in batches (the extraction loader), in order. ``bar``: an open
        progress bar to advance instead of a new one."""
        from ..data import build_loader
        from ..data.sample import Sample

        if not paths:
            raise ValueError("no images to embed")
        samples = [Sample(str(p), -1, -1) for p in paths]
        loader = build_loader(samples, batch_size=self.batch_size, size=self.input_size, train=False)
        own = bar is None and progress
        if own:
            bar = progress_bar(total=len(samples), desc=desc, unit="img")
        out: List[np.ndarray] = []
        for batch in loader:
            out.append(self.embed(batch["images"]))
            if bar is not None:
                bar.update(len(batch["index"]))
        if own:
            bar.close()
        return np.concatenate(out)

    def describe(self) -> str:
        return (f"{self.backend} model {short_id(self.identity)} ({self.source}), input "
                f"{self.input_size[0]}×{self.input_size[1]}{', flip' if self.flip else ''}")


class TorchEmbedder(Embedder):
    backend = "pytorch"

    def __init__(self, checkpoint: Union[str, Path, nn.Module], *, device: str = "cpu", flip: bool = False,
                 batch_size: int = 32):
        self.model, self.identity, self.source = load_with_identity(checkpoint, device)
        self.device = torch.device(device)
        self.input_size = tuple(int(v) for v in self.model.input_size)
        self.flip, self.batch_size = bool(flip), int(batch_size)

    @torch.no_grad()
    def embed_batch(self, x: torch.Tensor) -> np.ndarray:
        return forward_features(self.model, x.to(self.device)).cpu().numpy()


class OnnxEmbedder(Embedder):
    backend = "onnx"

    def __init__(self, path: Union[str, Path], *, flip: bool = False, batch_size: int = 32, threads: int = 1):
        import json

        from ..export import read_metadata, session

        meta = read_metadata(path)
        self.session = session(path, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.identity = meta["robustreid.model_identity"]
        self.source = str(path)
        self.input_size = tuple(int(v) for v in json.loads(meta["robustreid.input_size"]))
        self.input_dtype = meta.get("robustreid.input_dtype", "uint8")
        self.precision = meta.get("robustreid.precision", "fp32")
        if self.precision != "fp32":
            self.backend = f"onnx-{self.precision}"
        self.flip, self.batch_size = bool(flip), int(batch_size)

    def embed_batch(self, x: torch.Tensor) -> np.ndarray:
        a = x.numpy() if self.input_dtype == "uint8" else x.float().div(255.0).numpy()
        return self.session.run(None, {self.input_name: np.ascontiguousarray(a)})[0].astype(np.float32)


def open_embedder(checkpoint: Union[str, Path, nn.Module, None] = None, onnx: Union[str, Path, None] = None, *,
                  flip: bool = False, device: str = "cpu", batch_size: int = 32, threads: int = 1) -> Embedder:
    """A PyTorch (``checkpoint``) or onnxruntime (``onnx``) embedder; exactly one must be given."""
    if (checkpoint is None) == (onnx is None):
        raise ValueError("give exactly one of a checkpoint (run directory / .safetensors) or an ONNX file")
    if onnx is not None:
        return OnnxEmbedder(onnx, flip=flip, batch_size=batch_size, threads=threads)
    return TorchEmbedder(checkpoint, device=device, flip=flip, batch_size=batch_size)


def check_same_model(expected: str, embedder: Embedder, where: str, built_from: Optional[str] = None) -> None:
    """Refuse to embed queries for an index with a different model (a ValueError naming both)."""
    if expected and embedder.identity != expected:
        src = f" (built from {built_from})" if built_from else ""
        raise ValueError(f"{where} was built with model {short_id(expected)}{src}, but {embedder.source} is model "
                         f"{short_id(embedder.identity)}: embeddings of different models are not comparable; search "
                         f"with the model that built the index, or rebuild the index with this one")
