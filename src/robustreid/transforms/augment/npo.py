"""NPO: Non-Pedestrian Occlusion augmentation (FED, Wang et al., CVPR 2022).

Every sample gives a clean view and an occluded view made by pasting an occluder patch at a random corner:

- tall patches (h/w > 2) are resized to the full image height and ``U(1/4, 1/2)`` of its width (left or right
  side, i.e. the top-left / top-right corner);
- other patches to ``U(1/4, 1/2)`` of the height and the full width (top or bottom).

The stripe targets follow FED's rule: the absolute pixel difference between the two views, averaged per
horizontal stripe (4 stripes), says which stripes were touched (mean difference > ``threshold``); if all 4 or
none are touched all targets are 1 (visible); if one is touched it is 0; if 2–3 are touched, only the most
changed stripe is 0 when its difference is more than ``ratio`` (3)× the second largest, else all touched
stripes are 0.

Occluder pool (``source``):

- ``"folder"``: image files under ``folder`` (png/jpg/bmp/webp, read once with Pillow); an alpha channel, when
  present, is the occluder's shape (only pixels with alpha > 0 are pasted);
- ``"batch"`` (default): cut automatically from training images, kept in a ring buffer of ``pool_size``
  patches taken from *previous* batches. If the batch carries ``"occluder_masks"`` (float N×1×H×W, 1 on the
  occluder; the synthetic generator writes such masks next to its occluded images and the data pipeline can load
  them), the occluder is cut exactly: its bounding box, with the mask as alpha. Otherwise a background strip is
  cut from a side border of the image (``strip`` of the width, full height or a vertical part of it): an
  approximation, since person crops usually have background at their left and right edges.

Returns ``clean_images`` (the input), ``images`` (the occluded view), ``occ_mask`` (1 where pasted) and
``stripe_targets`` (float N×4). Model-side use (OEM loss) belongs to the FED model; on its own NPO is an input
augmentation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from ._util import Batch, check_batch, check_prob, merge_mask, rand, randint, uniform
from .base import AUGMENTATIONS, AugContext
from .patch import PatchPool

_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def stripe_targets(clean: torch.Tensor, occluded: torch.Tensor, num_stripes: int = 4, ratio: float = 3.0,
                   threshold: float = 0.0) -> torch.Tensor:
    """FED's visibility target per horizontal stripe (float N×num_stripes, 1 visible / 0 occluded)."""
    d = (occluded.float() - clean.float()).abs().mean(dim=1)  # N×H×W
    n, H, _ = d.shape
    bounds = [round(i * H / num_stripes) for i in range(num_stripes + 1)]
    per = torch.stack([d[:, bounds[i]:bounds[i + 1]].mean(dim=(1, 2)) for i in range(num_stripes)], dim=1)
    touched = per > threshold
    k = touched.sum(dim=1)
    target = torch.ones_like(per)
    top2 = torch.where(touched, per, torch.full_like(per, -1.0)).topk(2, dim=1)
    largest_idx = top2.indices[:, 0]
    dominant = top2.values[:, 0] > ratio * top2.values[:, 1].clamp_min(0)
    one_hot = F.one_hot(largest_idx, num_stripes).bool()
    # one stripe touched: that one is 0
    target = torch.where((k == 1).view(-1, 1) & touched, torch.zeros_like(target), target)
    partial = ((k >= 2) & (k < num_stripes)).view(-1, 1)
    zero_largest = partial & dominant.view(-1, 1) & one_hot
    zero_all = partial & ~dominant.view(-1, 1) & touched
    target = torch.where(zero_largest | zero_all, torch.zeros_like(target), target)
    return target


def load_occluder_folder(folder: str) -> List[torch.Tensor]:
    """Float 4×h×w tensors (RGB + alpha in [0, 1]) of every image under ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"npo.folder: {folder!r} is not a directory of occluder images")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        raise ImportError("npo with source='folder' needs Pillow: pip install pillow") from None
    out = []
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() not in _IMAGE_EXT:
            continue
        try:
            with Image.open(p) as im:
                im = im.convert("RGBA")
                t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(im.height, im.width, 4)
        except OSError as e:
            raise ValueError(f"npo.folder: cannot read occluder image {p}: {e}") from None
        out.append(t.permute(2, 0, 1).float() / 255.0)
    if not out:
        raise ValueError(f"npo.folder: no images ({', '.join(_IMAGE_EXT)}) under {folder!r}")
    return out


class NPO:
    def __init__(self, p: float = 1.0, source: str = "batch", folder: Optional[str] = None,
                 size: Sequence[float] = (0.25, 0.5), tall_ratio: float = 2.0, pool_size: int = 512,
                 strip: float = 0.25, ratio: float = 3.0, num_stripes: int = 4, threshold: float = 0.0):
        self.p = check_prob(p)
        if source not in ("batch", "folder"):
            raise ValueError(f"npo.source: expected 'batch' or 'folder', got {source!r}")
        if source == "folder" and not folder:
            raise ValueError("npo: source='folder' needs folder=<directory of occluder images>")
        self.source, self.size, self.tall_ratio = source, (float(size[0]), float(size[1])), float(tall_ratio)
        self.strip, self.ratio, self.num_stripes, self.threshold = float(strip), float(ratio), int(num_stripes), threshold
        self.pool = PatchPool(pool_size)
        if source == "folder":
            for t in load_occluder_folder(folder):  # type: ignore[arg-type]
                self.pool.push(t)

    # --- pool from the batch --------------------------------------------------------------------------------
    def _cut(self, x: torch.Tensor, batch: Batch, g: torch.Generator) -> None:
        n, _, H, W = x.shape
        masks = batch.get("occluder_masks")
        for i in range(n):
            if isinstance(masks, torch.Tensor) and masks[i].sum() > 0:
                m = masks[i, 0] > 0.5
                rows, cols = torch.nonzero(m.any(dim=1)).flatten(), torch.nonzero(m.any(dim=0)).flatten()
                t, b, l_, r = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
                rgba = torch.cat([x[i, :, t:b, l_:r], m[t:b, l_:r].to(x.dtype).unsqueeze(0)], dim=0)
                self.pool.push(rgba.cpu())
                continue
            sw = max(1, int(round(self.strip * W)))
            left = 0 if float(rand(g, 1)[0]) < 0.5 else W - sw
            if float(rand(g, 1)[0]) < 0.5:  # full-height strip: a tall occluder
                t, b = 0, H
            else:  # a vertical part of it, about as high as wide: a short occluder
                hh = min(H, max(1, int(round(float(uniform(g, 1.0, 2.0, 1)[0]) * sw))))
                t = randint(g, 0, H - hh)
                b = t + hh
            rgb = x[i, :, t:b, left:left + sw]
            self.pool.push(torch.cat([rgb, torch.ones_like(rgb[:1])], dim=0).cpu())

    def __call__(self, batch: Batch, ctx: AugContext) -> Batch:
        x = check_batch(batch, "npo")
        n, _, H, W = x.shape
        g = ctx.generator
        out = x.clone()
        mask = torch.zeros(n, 1, H, W, dtype=x.dtype, device=x.device)
        if len(self.pool) > 0:
            use = rand(g, n) < self.p
            for i in range(n):
                if not bool(use[i]):
                    continue
                patch = self.pool[randint(g, 0, len(self.pool) - 1)].to(device=x.device, dtype=x.dtype)
                ph, pw = patch.shape[1:]
                frac = float(uniform(g, self.size[0], self.size[1], 1)[0])
                if ph / max(pw, 1) > self.tall_ratio:
                    th, tw = H, max(1, int(round(frac * W)))
                else:
                    th, tw = max(1, int(round(frac * H))), W
                resized = F.interpolate(patch.unsqueeze(0), size=(th, tw), mode="bilinear",
                                        align_corners=False)[0].clamp(0, 1)
                corner = randint(g, 0, 3)  # 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
                top = 0 if corner in (0, 1) else H - th
                left = 0 if corner in (0, 2) else W - tw
                alpha = (resized[3:4] > 0.5).to(x.dtype)
                region = out[i, :, top:top + th, left:left + tw]
                out[i, :, top:top + th, left:left + tw] = alpha * resized[:3] + (1 - alpha) * region
                mask[i, :, top:top + th, left:left + tw] = torch.maximum(mask[i, :, top:top + th, left:left + tw], alpha)
        if self.source == "batch":
            self._cut(x, batch, g)
        new = dict(batch)
        new["clean_images"] = x
        new["images"] = out
        new["occ_mask"] = merge_mask(batch, mask)
        new["stripe_targets"] = stripe_targets(x, out, self.num_stripes, self.ratio, self.threshold).to(x.device)
        return new

    def state_dict(self) -> Dict[str, Any]:
        return self.pool.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.pool.load_state_dict(state)

    def __repr__(self) -> str:
        return f"NPO(source={self.source!r}, size={self.size}, pool={len(self.pool)})"


@AUGMENTATIONS.register("npo")
def build_npo(**kw) -> NPO:
    return NPO(**kw)


__all__ = ["NPO", "stripe_targets", "load_occluder_folder"]
