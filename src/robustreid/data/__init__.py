"""robustreid.data: samples, datasets by name, the synthetic person generator, the PK sampler and data loaders."""

from ..transforms.decode import ImageReadError, read_image
from .datasets import DATASETS, DatasetError, detect_dataset, list_images, load_dataset, register_dataset
from .sample import ReidDataset, Sample

__all__ = [
    "Sample", "ReidDataset", "DATASETS", "DatasetError", "load_dataset", "detect_dataset", "register_dataset",
    "list_images", "read_image", "ImageReadError", "PKSampler", "build_loader", "ImageDataset",
]


def __getattr__(name):  # lazy: the sampler and loader import torch.utils.data
    if name == "PKSampler":
        from .sampler import PKSampler

        return PKSampler
    if name in ("build_loader", "ImageDataset"):
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'robustreid.data' has no attribute {name!r}")
