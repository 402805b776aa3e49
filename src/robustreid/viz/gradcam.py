"""Grad-CAM and Grad-CAM++ for embedding models, with a similarity target.

A ReID model has no class score at test time, so the score explained is the **cosine similarity of the image's
embedding to a reference embedding** (the true match's in the gallery, or the clean image's own for its corrupted
versions): ``s = cos(f(x), r)``. For the layer's activations ``A`` (N×C×h×w; transformer tokens reshaped to the
patch grid) and ``G = ∂s/∂A``:

- Grad-CAM (Selvaraju et al. 2017): ``w_c = mean_ij G_cij``, map ``= ReLU(Σ_c w_c A_c)``;
- Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential-score simplification): ``α = G² / (2G² +
  Σ_ij A · G³)`` (0 where G = 0), ``w_c = Σ_ij α ReLU(G)``, map ``= ReLU(Σ_c w_c A_c)``.

These are the definitions the maintained ``grad-cam`` package (pytorch-grad-cam) implements; it could not serve
here (docs/viz.md says why), so this module computes them with a forward hook and ``torch.autograd.grad``.

The cosine is flat at its maximum: with the clean image's own embedding as reference, the clean image's gradient
is exactly zero. Rows marked in ``project`` therefore explain the projection ``f(x)·r/|r|`` instead (its gradient
is the reference direction), which is what the clean column of a ``--reference self`` sheet shows.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .actmap import LayerMaps, as_images
from .layers import capture, is_bands, to_map

METHODS = ("gradcam", "gradcam++")


def similarity_score(emb: torch.Tensor, reference: torch.Tensor, project: Optional[torch.Tensor] = None):
    """Per row: cosine similarity of ``emb`` to ``reference`` (or the projection on it where ``project``)."""
    r = F.normalize(reference.to(emb).detach(), dim=1)
    cos = (F.normalize(emb, dim=1) * r).sum(dim=1)
    if project is None:
        return cos
    return torch.where(project.to(emb.device), (emb * r).sum(dim=1), cos)


def cam_weights(acts: torch.Tensor, grads: torch.Tensor, method: str = "gradcam") -> torch.Tensor:
    """Channel weights N×C from activations and gradients N×C×h×w."""
    if method == "gradcam":
        return grads.mean(dim=(2, 3))
    if method == "gradcam++":
        g2 = grads.pow(2)
        denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g2 * grads + 1e-6
        alpha = torch.where(grads != 0, g2 / denom, torch.zeros_like(g2))
        return (alpha * grads.clamp_min(0)).sum(dim=(2, 3))
    raise ValueError(f"unknown CAM method {method!r}; expected one of {', '.join(METHODS)}")


def cam_from(acts: torch.Tensor, grads: torch.Tensor, method: str = "gradcam") -> torch.Tensor:
    """N×h×w map ``ReLU(Σ_c w_c A_c)``."""
    w = cam_weights(acts, grads, method)
    return (w[:, :, None, None] * acts).sum(dim=1).clamp_min(0)


def grad_cams(model: nn.Module, images: torch.Tensor, reference: torch.Tensor, layers: Sequence[str], *,
              method: str = "gradcam", project: Optional[torch.Tensor] = None) -> Dict[str, LayerMaps]:
    """{layer: Grad-CAM (or ``method="gradcam++"``) maps} for ``images`` (uint8 N×3×H×W at the model's input
    size) explaining the similarity of each image's embedding to ``reference`` (N×D), from one forward and one
    backward pass. Maps at each layer's resolution, not normalised."""
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; expected one of {', '.join(METHODS)}")
    if reference.dim() != 2 or reference.shape[0] != images.shape[0]:
        raise ValueError(f"reference: expected {images.shape[0]}×D embeddings, got shape {tuple(reference.shape)}")
    names = list(dict.fromkeys(layers))
    was = model.training
    model.eval()
    try:
        with capture(model, names, keep_graph=True) as store, torch.enable_grad():
            emb = model(as_images(images).requires_grad_(True))
            missing = [n for n in names if n not in store]
            if missing:
                raise ValueError(f"layer {missing[0]!r} did not run in the eval forward pass (a training-only module?)")
            score = similarity_score(emb.float(), reference, project)
            grads = torch.autograd.grad(score.sum(), [store[n] for n in names], allow_unused=True)
            acts = [store[n].detach() for n in names]
    finally:
        model.train(was)
    hw = tuple(images.shape[-2:])
    return {n: _cam(model, n, a, g, hw, method) for n, a, g in zip(names, acts, grads)}


def _cam(model: nn.Module, name: str, acts: torch.Tensor, grads: Optional[torch.Tensor], hw, method: str) -> LayerMaps:
    if grads is None:
        raise ValueError(f"the embedding does not depend on layer {name!r} (e.g. the patch tokens after a ViT's "
                         f"final norm when the class token is the embedding); pick an earlier layer")
    a, g = to_map(acts, model, hw, name).float(), to_map(grads, model, hw, name).float()
    if is_bands(a):
        raise ValueError(f"layer {name!r} outputs per-stripe scores; Grad-CAM needs a spatial layer")
    return LayerMaps(name, cam_from(a, g, method))


def grad_cam(model: nn.Module, images: torch.Tensor, reference: torch.Tensor, layer: str, *,
             method: str = "gradcam", project: Optional[torch.Tensor] = None) -> LayerMaps:
    """:func:`grad_cams` of one layer."""
    return grad_cams(model, images, reference, [layer], method=method, project=project)[layer]
