"""The corruption registry and the seeding rules every corruption follows.

A corruption is registered as ``fn(images, severity, seeds) -> images`` where ``images`` is a uint8 tensor
N×3×H×W (RGB, any device, never modified), ``severity`` is 1..5 and ``seeds`` is a list of N ints, one per image.
All randomness for image i must come from ``seeds[i]`` alone (use :func:`image_generator` /
:func:`rand_per_image`), drawn on the CPU and then moved to the images' device, so that the output of one image
does not depend on the batch it is in, on the thread count or on the device.
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Sequence, Tuple, Union

import torch

from ..registry import Registry
from ..utils.seed import derive_seed

#: name -> fn(images uint8 N×3×H×W, severity 1..5, seeds list[int]) -> uint8 N×3×H×W
CORRUPTION_REGISTRY = Registry("corruption")

#: the 20 benchmark corruptions, in the benchmark's order
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate", "rain",
)

#: families used by summaries and reports
FAMILIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"),
    "weather": ("snow", "frost", "fog", "spatter", "rain"),
    "digital": ("brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"),
}

#: the occlusion family (not in the published benchmark); see robustreid.corruptions.occlusion
OCCLUSIONS = ("occlusion_solid", "occlusion_noise", "occlusion_object", "occlusion_pedestrian")
FAMILIES["occlusion"] = OCCLUSIONS

Seeds = Union[int, Sequence[int]]


def parse_severities(spec: Iterable[int] | str | int) -> Tuple[int, ...]:
    """``"1-5"``, ``"3"``, ``"1,3,5"`` or a sequence of ints -> sorted unique severities in 1..5."""
    if isinstance(spec, int):
        vals = [spec]
    elif isinstance(spec, str):
        vals = []
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            try:
                if "-" in part:
                    a, b = part.split("-", 1)
                    vals.extend(range(int(a), int(b) + 1))
                else:
                    vals.append(int(part))
            except ValueError:
                raise ValueError(f"severities: cannot read {part!r}; expected e.g. 3, 1-5 or 1,3,5") from None
    else:
        vals = [int(v) for v in spec]
    bad = [v for v in vals if not 1 <= v <= 5]
    if bad or not vals:
        raise ValueError(f"severities must be integers in 1..5, got {spec!r}")
    return tuple(sorted(set(vals)))


def parse_corruptions(spec: Iterable[str] | str | None) -> Tuple[str, ...]:
    """``"all"`` (the 20 benchmark corruptions), ``"occlusion"`` (the occlusion family), a family name
    (noise, blur, weather, digital), ``"all+occlusion"``, or a comma list of names (checked against the registry)."""
    if spec is None:
        return tuple(CORRUPTIONS)
    items = [s for s in spec.replace(" ", "").split(",") if s] if isinstance(spec, str) else list(spec)
    out: List[str] = []
    for item in items:
        if item == "all":
            names: Sequence[str] = CORRUPTIONS
        elif item == "all+occlusion":
            names = tuple(CORRUPTIONS) + tuple(FAMILIES["occlusion"])
        elif item in FAMILIES:
            names = FAMILIES[item]
        else:
            if item not in CORRUPTION_REGISTRY:
                known = ", ".join(sorted(CORRUPTION_REGISTRY.names()))
                raise ValueError(f"unknown corruption {item!r}; known: all, occlusion, "
                                 f"{', '.join(FAMILIES)}, {known}")
            names = (item,)
        for n in names:
            if n not in out:
                out.append(n)
    if not out:
        raise ValueError("no corruption given")
    return tuple(out)


def family_of(name: str) -> str:
    for fam, names in FAMILIES.items():
        if name in names:
            return fam
    return "other"


def register_corruption(name: str, *, override: bool = False) -> Callable:
    """Decorator: register ``fn(images, severity, seeds)`` under ``name``."""
    return CORRUPTION_REGISTRY.register(name, override=override)


def resolve_seeds(seed: Seeds, n: int) -> List[int]:
    """An int seed gives image i the seed ``derive_seed(seed, i)``; a sequence gives each image its own."""
    if isinstance(seed, int):
        return [derive_seed(int(seed), i) for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} images; pass one seed per image or a single int")
    return seeds


def image_generator(seed: int) -> torch.Generator:
    """A CPU generator for one image's randomness."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed) & ((1 << 63) - 1))
    return g


def rand_per_image(kind: str, shape: Sequence[int], seeds: Sequence[int], device=None,
                   dtype=torch.float32) -> torch.Tensor:
    """Stack per-image draws: ``kind`` 'rand' (U[0,1)) or 'randn' of ``shape`` for each seed -> N×shape.

    Drawn on the CPU from each image's own generator, then moved to ``device``: identical on every device.
    """
    fn = {"rand": torch.rand, "randn": torch.randn}[kind]
    out = torch.stack([fn(*shape, generator=image_generator(s), dtype=dtype) for s in seeds])
    return out.to(device) if device is not None else out


def check_images(images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor (uint8 N×3×H×W), got {type(images).__name__}")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be uint8 N×3×H×W (RGB), got {images.dtype} {tuple(images.shape)}")


def corrupt(images: torch.Tensor, name: str, severity: int, seed: Seeds = 0) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1..5) to uint8 N×3×H×W ``images``; returns a new tensor.

    ``seed`` is an int (image i then uses ``derive_seed(seed, i)``) or one seed per image (see
    :func:`robustreid.corruptions.image_seed` for the dataset-wide rule). The input is never modified.
    """
    check_images(images)
    if not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer 1..5, got {severity!r}")
    fn = CORRUPTION_REGISTRY.get(name)
    if images.shape[0] == 0:
        return images.clone()
    seeds = resolve_seeds(seed, images.shape[0])
    out = fn(images, severity, seeds)
    if out is images:
        out = out.clone()
    if out.dtype != torch.uint8 or out.shape != images.shape:
        raise RuntimeError(f"corruption {name!r} returned {out.dtype} {tuple(out.shape)}; expected uint8 {tuple(images.shape)}")
    return out


def image_seed(dataset: str, path: str, corruption: str, severity: int, pass_index: int = 0, seed: int = 0) -> int:
    """The per-image seed of a corrupted dataset copy: the same (dataset, path, corruption, severity, pass, seed)
    gives the same corrupted image anywhere. ``path`` should be relative to the dataset root."""
    return derive_seed("robustreid.corrupt", dataset, str(path).replace("\\", "/"), corruption, int(severity),
                       int(pass_index), int(seed))
