"""Feature extraction: samples -> N×D features, datasets -> feature files, and the ``FeatureExtractor`` API.

``extract_features(model, samples, transform=...)`` decodes images at their native size, applies ``transform``
there (the robustness benchmark passes its corruption this way: corruptions act at native resolution), resizes to
the model's input size and runs the model (which normalises internally). Features come back in the order of
``samples``.

Under ``torchrun`` (a joined process group), ``extract_dataset_features`` splits each split's images across the
ranks in whole batches and all-gathers the features: every rank returns the same features as one process would.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..utils.progress import progress_bar
from . import distributed as D

Transform = Callable[[List[torch.Tensor], List[Any]], List[torch.Tensor]]


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def model_input_size(model: nn.Module) -> Tuple[int, int]:
    from .checkpoint import unwrap

    m = unwrap(model)
    size = getattr(m, "input_size", None)
    if size is None and getattr(m, "config", None) is not None:
        size = getattr(m.config, "input_size", None)
    if size is None:
        raise ValueError("the model has no input_size attribute; cannot resize images for it")
    return int(size[0]), int(size[1])


def resize_batch(images: Sequence[torch.Tensor], size: Tuple[int, int]) -> torch.Tensor:
    """List of 3×H×W tensors (any sizes; uint8 or float) -> one N×3×h×w tensor at ``size``.

    Uses ``robustreid.transforms.functional.resize`` (bilinear, antialiased when shrinking, uint8 stays uint8), the
    same resize the data loader applies, so extraction sees exactly what training saw."""
    from ..transforms.functional import resize

    out = []
    for img in images:
        if img.dim() != 3 or img.shape[0] != 3:
            raise ValueError(f"expected a 3×H×W image tensor, got shape {tuple(img.shape)}")
        if tuple(img.shape[-2:]) == tuple(size):
            out.append(img)
        else:
            out.append(resize(img.unsqueeze(0), size)[0])
    return torch.stack(out)


@torch.no_grad()
def forward_features(model: nn.Module, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """Embeddings of a batch (uint8 or [0,1] float) in eval mode; with ``flip`` the mean of image and its mirror."""
    f = model(images)
    if isinstance(f, dict):
        raise TypeError("the model returned a dict: call model.eval() before extracting features")
    if flip:
        f = (f + model(images.flip(-1))) / 2
    return f.float()


def _check_finite_rows(feats: np.ndarray, samples: Sequence[Any]) -> None:
    """NaN / inf features mean broken weights or inputs: stop where they are made, naming an image."""
    bad = ~np.isfinite(feats).all(axis=1)
    if bad.any():
        first = samples[int(np.argmax(bad))]
        raise ValueError(f"the model produced non-finite (NaN or inf) features for {int(bad.sum())} of {len(samples)} "
                         f"images of a batch, e.g. {getattr(first, 'path', first)}; its weights are broken (a "
                         f"diverged run?) or the images are")


def _image_batch(t: torch.Tensor, what: str) -> List[torch.Tensor]:
    """N×3×H×W uint8, or float in [0, 1] -> list of 3×H×W images; a clear error for anything else."""
    if t.shape[-2] == 0 or t.shape[-1] == 0:
        raise ValueError(f"empty image ({t.shape[-2]}×{t.shape[-1]}): expected at least 1×1 pixels")
    if t.dtype == torch.uint8:
        return list(t.unbind(0))
    if not t.is_floating_point():
        raise ValueError(f"integer image {what} must be uint8 (0..255), got {t.dtype}; convert them to uint8, or "
                         f"pass floats in [0, 1]")
    t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"float image {what} hold NaN or inf values (expected values in [0, 1])")
    if t.numel() and (t.min() < 0 or t.max() > 1):
        raise ValueError(f"float image {what} must hold values in [0, 1] (uint8 for 0..255)")
    return list(t.unbind(0))


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def extract_features(
    model: nn.Module,
    samples: Sequence[Any],
    *,
    batch_size: int = 128,
    device: Union[str, torch.device, None] = None,
    flip: bool = False,
    transform: Optional[Transform] = None,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "extract",
) -> np.ndarray:
    """Features (float32 N×D numpy, in the order of ``samples``) of every sample's image.

    ``transform(images, samples)``, if given, receives the list of decoded native-size uint8 3×H×W tensors of a
    batch and their samples, and returns a list of uint8 tensors (any size) that are then resized to the model's
    input size."""
    from ..data import build_loader

    if len(samples) == 0:
        raise ValueError("extract_features: no samples")
    device = torch.device(device) if device is not None else model_device(model)
    model = model.to(device)
    size = model_input_size(model)
    loader = build_loader(list(samples), batch_size=batch_size, size=None if transform is not None else size,
                          train=False, num_workers=num_workers)
    out: Optional[np.ndarray] = None
    filled = np.zeros(len(samples), dtype=bool)
    bar = None
    if progress:
        bar = progress_bar(total=len(samples), desc=desc, unit="img", leave=False)
    with _eval_mode(model):
        for batch in loader:
            idx = torch.as_tensor(batch["index"]).long().numpy()
            images = batch["images"]
            if transform is not None:
                imgs = list(images) if not torch.is_tensor(images) else list(images.unbind(0))
                imgs = transform(imgs, [samples[i] for i in idx])
                if len(imgs) != len(idx):
                    raise ValueError(f"transform returned {len(imgs)} images for a batch of {len(idx)}")
                images = resize_batch(imgs, size)
            elif not torch.is_tensor(images):
                images = resize_batch(list(images), size)
            feats = forward_features(model, images.to(device, non_blocking=True), flip=flip).cpu().numpy()
            _check_finite_rows(feats, [samples[i] for i in idx])
            if out is None:
                out = np.zeros((len(samples), feats.shape[1]), dtype=np.float32)
            out[idx] = feats
            filled[idx] = True
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    if out is None or not filled.all():
        raise RuntimeError(f"extract_features: {int((~filled).sum())} samples were not extracted")
    return out


def extract_dataset_features(
    checkpoint: Union[str, Path, nn.Module],
    dataset: Union[str, Any],
    root: Union[str, Path, None] = None,
    *,
    splits: Sequence[str] = ("query", "gallery"),
    device: Union[str, torch.device, None] = None,
    batch_size: int = 128,
    flip: bool = False,
    transform: Optional[Transform] = None,
    num_workers: int = 0,
    progress: bool = True,
    feature: Optional[str] = None,
):
    """Extract the features of a dataset's splits with a checkpoint -> :class:`robustreid.eval.features.FeatureSet`.

    ``checkpoint`` is a run directory, a ``.safetensors`` file or an already loaded model; ``dataset`` a registered
    dataset name (loaded from ``root``) or a ``ReidDataset``; ``feature`` the inference feature of a model with
    several (FED: ``fprime`` or ``fdm``). In a torch.distributed process group each rank extracts a share of the
    images (whole batches) and every rank returns the whole, identical FeatureSet."""
    from ..eval.features import SPLIT_CODES, FeatureSet
    from .checkpoint import load_model, select_feature

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if isinstance(checkpoint, nn.Module):
        model, model_name = checkpoint.to(device).eval(), type(checkpoint).__name__
        if feature is not None:  # on the caller's model for this call only
            before = getattr(model, "eval_feature", None)
            select_feature(model, feature)
            try:
                return extract_dataset_features(model, dataset, root, splits=splits, device=device,
                                                batch_size=batch_size, flip=flip, transform=transform,
                                                num_workers=num_workers, progress=progress)
            finally:
                model.eval_feature = before
    else:
        model, model_name = load_model(checkpoint, device=device, feature=feature), str(checkpoint)
    if isinstance(dataset, str):
        from ..data import load_dataset

        if root is None:
            raise ValueError("extract_dataset_features: a dataset name needs root")
        ds = load_dataset(dataset, str(root))
    else:
        ds = dataset
    feats, pids, camids, split, paths = [], [], [], [], []
    for name in splits:
        if name not in SPLIT_CODES:
            raise ValueError(f"unknown split {name!r}; expected query, gallery or train")
        samples = ds.split(name)
        if not samples:
            raise ValueError(f"dataset {ds.name!r} has no {name} images")
        # each rank a share in whole batches (same batches as one process), every rank all the rows, in order
        feats.append(D.sharded_rows(lambda idx, samples=samples, name=name: extract_features(
            model, [samples[i] for i in idx], batch_size=batch_size, device=device, flip=flip, transform=transform,
            num_workers=num_workers, progress=progress and D.get_rank() == 0, desc=name), len(samples), batch_size))
        pids += [s.pid for s in samples]
        camids += [s.camid for s in samples]
        split += [SPLIT_CODES[name]] * len(samples)
        paths += [s.path for s in samples]
    meta = {"model": model_name, "dataset": getattr(ds, "name", str(dataset)), "flip": str(bool(flip)),
            "splits": ",".join(splits)}
    if hasattr(model, "eval_features"):
        meta["feature"] = str(model.eval_feature)
    return FeatureSet(np.concatenate(feats).astype(np.float32), np.asarray(pids, dtype=np.int64),
                      np.asarray(camids, dtype=np.int64), np.asarray(split, dtype=np.int8), paths, meta)


# ---------------------------------------------------------------- the Python API


class FeatureExtractor:
    """Embeddings from a trained checkpoint for anything that holds images::

        fx = FeatureExtractor("runs/demo", device="cpu")
        f = fx(["a.jpg", "b.jpg"])          # torch.FloatTensor 2×D
        f = fx(pil_image)                   # 1×D
        f = fx(np_uint8_hwc)                # 1×D
        f = fx(torch_uint8_n3hw)            # N×D (also float in [0,1])

    Inputs: a path (str/Path), a PIL image, a numpy array H×W×3 (uint8, or float in [0,1]) or N×H×W×3, a tensor
    3×H×W or N×3×H×W (uint8, or float in [0,1]), or a list mixing these. Images are resized to the model's input
    size. ``normalize=True`` L2-normalises the rows (cosine-ready)."""

    def __init__(self, checkpoint: Union[str, Path, nn.Module], device: Union[str, torch.device] = "cpu",
                 batch_size: int = 64, flip: bool = False, normalize: bool = False):
        from .checkpoint import load_model

        self.device = torch.device(device)
        if isinstance(checkpoint, nn.Module):
            self.model = checkpoint.to(self.device).eval()
        else:
            self.model = load_model(checkpoint, device=self.device)
        self.size = model_input_size(self.model)
        self.batch_size = int(batch_size)
        self.flip = bool(flip)
        self.normalize = bool(normalize)

    @property
    def feat_dim(self) -> int:
        from .checkpoint import unwrap

        return int(getattr(unwrap(self.model), "feat_dim", 0))

    # -- input conversion -------------------------------------------------------------------------------------
    @staticmethod
    def _to_images(x: Any) -> List[torch.Tensor]:
        """Any supported input -> list of 3×H×W tensors (uint8, or float32 in [0,1])."""
        if isinstance(x, (str, Path)):
            from ..data import read_image

            return [read_image(x)]
        if torch.is_tensor(x):
            t = x.detach().cpu()
            if t.dim() == 3:
                t = t.unsqueeze(0)
            if t.dim() != 4 or t.shape[1] != 3:
                raise ValueError(f"expected a tensor 3×H×W or N×3×H×W, got shape {tuple(x.shape)}")
            return _image_batch(t, "tensors")
        if isinstance(x, np.ndarray):
            a = x
            if a.ndim == 3:
                a = a[None]
            if a.ndim != 4 or a.shape[-1] != 3:
                raise ValueError(f"expected a numpy array H×W×3 or N×H×W×3 (RGB), got shape {x.shape}")
            if a.dtype.kind in "iub" and a.dtype != np.uint8:
                raise ValueError(f"integer image arrays must be uint8 (0..255), got {a.dtype}; convert with "
                                 f".astype(np.uint8), or pass floats in [0, 1]")
            if a.dtype.kind not in "uf":
                raise ValueError(f"image arrays must be uint8 (0..255) or float in [0, 1], got {a.dtype}")
            a = np.ascontiguousarray(a)
            t = torch.from_numpy(a if a.flags.writeable else a.copy()).permute(0, 3, 1, 2)
            return _image_batch(t, "arrays")
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover
            Image = None
        if Image is not None and isinstance(x, Image.Image):
            a = np.asarray(x.convert("RGB"), dtype=np.uint8)
            return [torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()]
        if isinstance(x, (list, tuple)):
            out: List[torch.Tensor] = []
            for item in x:
                out += FeatureExtractor._to_images(item)
            return out
        raise TypeError(f"cannot make an image of {type(x).__name__}; expected a path, PIL image, numpy array "
                        "or tensor (or a list of them)")

    def _prepare(self, images: List[torch.Tensor]) -> torch.Tensor:
        from ..transforms.functional import resize

        out = []
        for img in images:
            if tuple(img.shape[-2:]) != self.size:
                img = resize(img.unsqueeze(0), self.size)[0]
            out.append(img.float() / 255.0 if img.dtype == torch.uint8 else img.float())
        return torch.stack(out)

    @torch.no_grad()
    def __call__(self, inputs: Any, normalize: Optional[bool] = None) -> torch.Tensor:
        images = self._to_images(inputs)
        if not images:
            raise ValueError("FeatureExtractor: no images given")
        feats = []
        for i in range(0, len(images), self.batch_size):
            x = self._prepare(images[i:i + self.batch_size]).to(self.device)
            feats.append(forward_features(self.model, x, flip=self.flip).cpu())
        f = torch.cat(feats)
        bad = int((~torch.isfinite(f).all(dim=1)).sum())
        if bad:
            raise ValueError(f"FeatureExtractor: the model produced non-finite (NaN or inf) features for {bad} of "
                             f"{f.shape[0]} images; its weights are broken (a diverged run?)")
        if self.normalize if normalize is None else normalize:
            f = torch.nn.functional.normalize(f, dim=1)
        return f

    def __repr__(self) -> str:
        return f"FeatureExtractor(size={self.size}, device={self.device}, flip={self.flip})"
