"""What the pictures are made of: models from checkpoints, queries of a dataset, and their corrupted versions.

Corrupted versions are made exactly as the benchmark makes them: the suite's corruption at the crop's native size
with the per-image seed ``image_seed(dataset, relative path, corruption, severity, pass 0, seed)``, then resized
to the model's input size — so a picture shows the pixels the benchmark scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..corruptions import CORRUPTION_REGISTRY
from ..data import load_dataset, read_image
from ..engine.checkpoint import load_model
from ..engine.extract import model_input_size, resize_batch
from ..robustness.apply import CorruptionTransform
from ..robustness.runner import default_model_name

CLEAN = "clean"
#: the default corrupted / occluded versions: the worst families on Market-1501 (docs/benchmarks.md) + occluders
DEFAULT_VARIANTS = "fog:3,frost:3,gaussian_noise:3,occlusion_solid:3,occlusion_object:3"


@dataclass(frozen=True)
class Variant:
    """One version of a crop: ``clean`` or a registered corruption at a severity."""

    corruption: str = CLEAN
    severity: int = 0

    @property
    def label(self) -> str:
        if self.corruption == CLEAN:
            return CLEAN
        return f"{self.corruption.replace('_', ' ')} s{self.severity}"


def parse_variants(spec: str, *, with_clean: bool = True) -> List[Variant]:
    """``"fog:3,occlusion_solid"`` -> [clean, fog s3, occlusion_solid s3] (severity 3 when omitted)."""
    out = [Variant()] if with_clean else []
    for item in [s.strip() for s in (spec or "").split(",") if s.strip()]:
        name, _, sev = item.partition(":")
        if name == CLEAN:
            continue
        if name not in CORRUPTION_REGISTRY:
            raise ValueError(f"corruption {name!r} is not registered; known: {', '.join(sorted(CORRUPTION_REGISTRY))}")
        try:
            s = int(sev) if sev else 3
        except ValueError:
            raise ValueError(f"corruption {item!r}: severity must be an integer 1..5") from None
        if not 1 <= s <= 5:
            raise ValueError(f"corruption {item!r}: severity must be 1..5, got {s}")
        if Variant(name, s) not in out:
            out.append(Variant(name, s))
    return out


def parse_checkpoints(specs: Sequence[str]) -> Dict[str, str]:
    """``["A=runs/a", "runs/b"]`` -> {"A": "runs/a", "b": "runs/b"} (a path that exists is never split at '=')."""
    out: Dict[str, str] = {}
    for c in specs:
        if "=" in c and not c.startswith("=") and not Path(c).exists():
            name, path = c.split("=", 1)
        else:
            name, path = default_model_name(c), c
            base, k = name, 2
            while name in out:
                name, k = f"{base}_{k}", k + 1
        if name in out:
            raise ValueError(f"two models named {name!r}")
        out[name] = path
    return out


def load_models(specs: Sequence[str], device: str = "cpu") -> Dict[str, nn.Module]:
    return {name: load_model(path, device=device) for name, path in parse_checkpoints(specs).items()}


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def open_dataset(name: str, root: str):
    ds = load_dataset(name, root)
    if not ds.query:
        raise ValueError(f"dataset {name!r} at {root} has no query images")
    return ds


def spread_queries(samples: Sequence, n: int) -> List[int]:
    """Indices of ``n`` samples of ``n`` different identities spread over the list (deterministic)."""
    first: Dict[int, int] = {}
    for i, s in enumerate(samples):
        first.setdefault(s.pid, i)
    cand = list(first.values())
    step = max(1, len(cand) // max(1, n))
    return cand[::step][:n]


def pick_queries(query: Sequence, spec: str) -> List[int]:
    """``"6"`` -> 6 queries of different identities spread over the query list; ``"0,12"`` -> those indices;
    ``"0001_c1s1_001051_00.jpg,..."`` -> those files (by name)."""
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    if len(items) == 1 and items[0].isdigit() and "," not in str(spec):
        return spread_queries(query, int(items[0]))
    by_name = {Path(s.path).name: i for i, s in enumerate(query)}
    out = []
    for it in items:
        if it.isdigit():
            if int(it) >= len(query):
                raise ValueError(f"query index {it} out of range (the query set has {len(query)} images)")
            out.append(int(it))
        elif Path(it).name in by_name:
            out.append(by_name[Path(it).name])
        else:
            raise ValueError(f"query {it!r} is neither an index nor a query file name")
    return out


def true_matches(query_sample, gallery: Sequence) -> List[int]:
    """Gallery indices of the query's identity seen by another camera."""
    return [j for j, g in enumerate(gallery) if g.pid == query_sample.pid and g.camid != query_sample.camid
            and g.pid >= 0]


def read_crops(samples: Sequence) -> List[torch.Tensor]:
    return [read_image(s.path) for s in samples]


def make_variant(crops: Sequence[torch.Tensor], paths: Sequence[str], variant: Variant, dataset: str,
                 root: Optional[str], seed: int = 0) -> List[torch.Tensor]:
    """The crops (native size, uint8) under ``variant``, seeded like the benchmark's pass 0."""
    if variant.corruption == CLEAN:
        return [c.clone() for c in crops]
    t = CorruptionTransform(dataset, root, variant.corruption, variant.severity, 0, seed)
    return t.apply(list(crops), list(paths))


def model_batch(model: nn.Module, crops: Sequence[torch.Tensor]) -> torch.Tensor:
    """Crops resized to the model's input size, on its device: uint8 N×3×H×W."""
    dev = next(model.parameters()).device
    return resize_batch(list(crops), model_input_size(model)).to(dev)


@torch.no_grad()
def embed(model: nn.Module, crops: Sequence[torch.Tensor], batch_size: int = 64) -> torch.Tensor:
    """Eval-mode embeddings (float N×D, CPU) of crops of any size."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(crops), batch_size):
        out.append(model(model_batch(model, crops[i:i + batch_size])).float().cpu())
    model.train(was)
    return torch.cat(out)


def variant_crops(samples: Sequence, variants: Sequence[Variant], dataset: str, root: Optional[str],
                  seed: int = 0) -> Dict[Variant, List[torch.Tensor]]:
    """{variant: native-size crops} of the samples."""
    crops = read_crops(samples)
    paths = [s.path for s in samples]
    return {v: make_variant(crops, paths, v, dataset, root, seed) for v in variants}


def short_name(path: str) -> str:
    return Path(path).stem
