"""The parity check of an exported model against the PyTorch model it came from, with onnxruntime.

Checks (each printed): max abs difference and per-row cosine of the embeddings at batch 1 and batch 32 (fp32:
cosine >= 0.9999); the top-10 rankings of 8 queries over a 64-image gallery are identical (a swap only counts as a
tie when the two PyTorch scores differ by less than ``tie``: 1e-5 at fp32, 1e-3 at fp16 — a fixed tolerance, not
one derived from the measured error, which would make the check pass by construction); distinct images give
distinct embeddings (the smallest max-abs difference between two images' embeddings exceeds twice the export
error, so no two rows can coincide within it; a constant or collapsed graph fails). Training-only parameters must be
absent from the graph's initializers.

The default images are seeded smooth colour fields with noise (coarse regions like clothing); the gallery holds 4
perturbed copies of every query plus distractors, so the top of each ranking is well separated. Real crops can be
passed instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: pass criteria: fp32 must keep the rankings (up to ties); fp16 rounding moves cosine scores by ~1e-3, enough to
#: swap neighbours a few 1e-3 apart, so at fp16 the rankings are reported and only the cosine is required
THRESHOLDS = {"fp32": {"cosine": 0.9999, "tie": 1e-5, "rankings": True},
              "fp16": {"cosine": 0.999, "tie": 1e-3, "rankings": False}}


def parity_images(n: int, size: Tuple[int, int], seed: int = 0) -> torch.Tensor:
    """``n`` distinct uint8 images N×3×H×W: a random 6×3 colour layout upsampled bilinearly, plus noise."""
    g = torch.Generator().manual_seed(int(seed))
    low = torch.rand(n, 3, 6, 3, generator=g) * 255
    img = F.interpolate(low, size=tuple(size), mode="bilinear", align_corners=False)
    img = img + 8 * torch.randn(img.shape, generator=g)
    return img.round().clamp(0, 255).to(torch.uint8)


def _perturb(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Mild copies of the queries: a brightness shift and noise (what the gallery's true matches look like)."""
    g = torch.Generator().manual_seed(int(seed))
    x = images.float() + torch.randint(-20, 21, (images.shape[0], 1, 1, 1), generator=g).float()
    x = x + 6 * torch.randn(x.shape, generator=g)
    return x.round().clamp(0, 255).to(torch.uint8)


def parity_sets(size: Tuple[int, int], seed: int = 0, images: Optional[torch.Tensor] = None):
    """(batch-32 images, 8 queries, 32 perturbed copies of the queries) as uint8 tensors; the gallery is the
    copies followed by the batch. From ``images`` (>= 40) when given."""
    if images is not None:
        if images.shape[0] < 40:
            raise ValueError(f"parity images: need at least 40 (32 for the batch, 8 queries), got {images.shape[0]}")
        batch, queries = images[:32], images[32:40]
    else:
        batch, queries = parity_images(32, size, seed), parity_images(8, size, seed + 1)
    copies = torch.cat([_perturb(queries, seed + 10 + i) for i in range(4)])
    return batch, queries, copies


def as_input(images: torch.Tensor, input_dtype: str) -> torch.Tensor:
    """uint8 images -> what the exported graph takes: uint8 as is, or float32 in [0, 1]."""
    if input_dtype == "uint8":
        return images
    if input_dtype == "float32":
        return images.float() / 255.0
    raise ValueError(f"input dtype: expected 'uint8' or 'float32', got {input_dtype!r}")


@torch.no_grad()
def torch_embed(model: nn.Module, x: torch.Tensor, batch: int = 32) -> np.ndarray:
    out = []
    for i in range(0, x.shape[0], batch):
        f = model(x[i:i + batch])
        if not torch.is_tensor(f) or f.dim() != 2:
            raise TypeError("the model's eval forward must return an N×D embedding tensor, got "
                            f"{type(f).__name__ if not torch.is_tensor(f) else tuple(f.shape)}")
        out.append(f.float().cpu().numpy())
    return np.concatenate(out)


def onnx_embed(session, x: torch.Tensor, batch: int = 32) -> np.ndarray:
    name = session.get_inputs()[0].name
    out = [session.run(None, {name: x[i:i + batch].numpy()})[0] for i in range(0, x.shape[0], batch)]
    return np.concatenate(out).astype(np.float32)


def _unit(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(_unit(a) * _unit(b), axis=1)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _equal_up_to_ties(ref_scores: np.ndarray, ref_top: np.ndarray, top: np.ndarray, tie: float) -> bool:
    """``top`` orders the items like ``ref_top`` except among items whose reference scores are within ``tie``."""
    if set(top.tolist()) != set(ref_top.tolist()):
        boundary = ref_scores[ref_top[-1]]
        extra = [i for i in top if i not in set(ref_top.tolist())]
        if any(boundary - ref_scores[i] > tie for i in extra):
            return False
    s = ref_scores[top]
    return bool(np.all(np.diff(s) <= tie))


def pairwise_min_difference(e: np.ndarray) -> float:
    """Smallest max-abs difference between two rows (the least distinct pair)."""
    best = np.inf
    for i in range(e.shape[0] - 1):
        best = min(best, float(np.abs(e[i + 1:] - e[i]).max(axis=1).min()))
    return best


@dataclass
class ParityReport:
    precision: str
    batches: List[Dict[str, float]] = field(default_factory=list)  # batch, max_abs, min_cos, mean_cos
    queries: int = 0
    rankings_identical: int = 0
    rankings_equal_up_to_ties: int = 0
    top10_overlap: float = 0.0
    min_pair_difference: float = 0.0
    torch_min_pair_difference: float = 0.0
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def max_abs(self) -> float:
        return max((b["max_abs"] for b in self.batches), default=float("nan"))

    @property
    def min_cos(self) -> float:
        return min((b["min_cos"] for b in self.batches), default=float("nan"))

    def lines(self) -> List[str]:
        th = THRESHOLDS[self.precision]
        out = [f"parity {self.precision} (onnxruntime vs PyTorch):",
               "| batch | max abs diff | min cosine | mean cosine |", "|---|---|---|---|"]
        out += [f"| {b['batch']} | {b['max_abs']:.3g} | {b['min_cos']:.7f} | {b['mean_cos']:.7f} |"
                for b in self.batches]
        out.append(f"cosine threshold {th['cosine']}: {'ok' if self.min_cos >= th['cosine'] else 'FAILED'}")
        out.append(f"top-10 rankings ({self.queries} queries, 64-image gallery): identical {self.rankings_identical}/"
                   f"{self.queries}, equal up to ties < {th['tie']:g} {self.rankings_equal_up_to_ties}/{self.queries},"
                   f" mean overlap {self.top10_overlap:.2f}/10"
                   + ("" if th["rankings"] else " (reported, not required)"))
        out.append("distinct images -> distinct embeddings: smallest pairwise difference "
                   f"{self.min_pair_difference:.3g}"
                   f" (PyTorch {self.torch_min_pair_difference:.3g}) vs export error {self.max_abs:.3g}")
        out += [f"PROBLEM: {p}" for p in self.problems]
        out.append(f"parity {self.precision}: {'OK' if self.ok else 'FAILED'}")
        return out

    def as_dict(self) -> Dict[str, object]:
        return {"precision": self.precision, "batches": self.batches, "queries": self.queries,
                "rankings_identical": self.rankings_identical,
                "rankings_equal_up_to_ties": self.rankings_equal_up_to_ties, "top10_overlap": self.top10_overlap,
                "min_pair_difference": self.min_pair_difference, "problems": list(self.problems), "ok": self.ok}


def check_parity(model: nn.Module, session, input_dtype: str, size: Tuple[int, int], *, precision: str = "fp32",
                 seed: int = 0, images: Optional[torch.Tensor] = None, k: int = 10) -> ParityReport:
    """Compare ``session`` (onnxruntime) with ``model`` (eval mode, fp32) on the parity sets."""
    th = THRESHOLDS[precision]
    rep = ParityReport(precision)
    batch, queries, copies = parity_sets(size, seed, images)
    model = model.eval()
    ref_b, got_b = None, None
    for n in (1, 32):
        x = as_input(batch[:n], input_dtype)
        ref, got = torch_embed(model, x), onnx_embed(session, x, batch=n)
        if ref.shape != got.shape:
            rep.problems.append(f"batch {n}: ONNX embeddings have shape {got.shape}, PyTorch {ref.shape}")
            return rep
        cos = _cosine_rows(ref, got)
        rep.batches.append({"batch": n, "max_abs": float(np.abs(ref - got).max()), "min_cos": float(cos.min()),
                            "mean_cos": float(cos.mean())})
        ref_b, got_b = ref, got
    if rep.min_cos < th["cosine"] or not np.isfinite(rep.min_cos):
        rep.problems.append(f"per-row cosine {rep.min_cos:.7f} < {th['cosine']}")
    xq, xc = as_input(queries, input_dtype), as_input(copies, input_dtype)
    ref_s = _unit(torch_embed(model, xq)) @ _unit(np.concatenate([torch_embed(model, xc), ref_b])).T
    got_s = _unit(onnx_embed(session, xq)) @ _unit(np.concatenate([onnx_embed(session, xc), got_b])).T
    ref_top, got_top = _top(ref_s, k), _top(got_s, k)
    rep.queries = len(ref_top)
    rep.rankings_identical = int(sum(np.array_equal(a, b) for a, b in zip(ref_top, got_top)))
    rep.rankings_equal_up_to_ties = int(sum(_equal_up_to_ties(s, a, b, th["tie"])
                                            for s, a, b in zip(ref_s, ref_top, got_top)))
    rep.top10_overlap = float(np.mean([len(set(a) & set(b)) for a, b in zip(ref_top, got_top)]))
    if rep.rankings_equal_up_to_ties < rep.queries and th["rankings"]:
        rep.problems.append(f"top-{k} rankings differ beyond ties for {rep.queries - rep.rankings_equal_up_to_ties} "
                            f"of {rep.queries} queries")
    rep.min_pair_difference = pairwise_min_difference(got_b)
    rep.torch_min_pair_difference = pairwise_min_difference(ref_b)
    scale = float(np.abs(ref_b).max())
    if rep.torch_min_pair_difference <= 1e-5 * max(scale, 1e-12):
        rep.problems.append("the PyTorch model itself gives the same embedding to distinct images (smallest "
                            f"difference {rep.torch_min_pair_difference:.3g} at values up to {scale:.3g}); parity "
                            "is not meaningful")
    elif rep.min_pair_difference <= 2 * rep.max_abs:
        rep.problems.append(f"distinct images give embeddings closer than the export error (smallest difference "
                            f"{rep.min_pair_difference:.3g} <= 2 x {rep.max_abs:.3g})")
    return rep


def training_only_parameters(model: nn.Module, example: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Float parameters and buffers the eval forward never reads (classifiers, memory banks, training branches):
    every tensor passed to a torch function during one eval forward is recorded (a ``TorchFunctionMode``), and the
    model's tensors whose storage was never among them are returned by name."""
    from torch.overrides import TorchFunctionMode

    seen = set()

    def record(obj) -> None:
        if torch.is_tensor(obj):
            seen.add(obj.untyped_storage().data_ptr())
        elif isinstance(obj, (list, tuple)):
            for o in obj:
                record(o)
        elif isinstance(obj, dict):
            for o in obj.values():
                record(o)

    class Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            record(args)
            record(kwargs or {})
            return func(*args, **(kwargs or {}))

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), Recorder():
            model(example)
    finally:
        model.train(was_training)
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    return {n: t.detach() for n, t in tensors.items()
            if t.is_floating_point() and t.numel() > 1 and t.untyped_storage().data_ptr() not in seen}


def present_in(arrays: Sequence[np.ndarray], t: torch.Tensor) -> bool:
    """Whether tensor ``t`` (or its transpose) appears among ``arrays`` (same shape, same values up to fp16
    rounding). A constant tensor (e.g. an all-zero bias) carries nothing trained and is never reported."""
    a = t.detach().float().cpu().numpy()
    if a.size < 2 or float(np.ptp(a)) == 0.0:
        return False
    cands = [a] + ([a.T] if a.ndim == 2 else [])
    for arr in arrays:
        for c in cands:
            if arr.shape == c.shape and arr.dtype.kind == "f" and np.allclose(arr.astype(np.float32), c, atol=0,
                                                                                rtol=1e-3):
                return True
    return False
