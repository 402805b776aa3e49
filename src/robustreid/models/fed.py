"""FED — Feature Erasing and Diffusion Network (Wang et al., CVPR 2022) on any backbone of the registry.

Training sees two views of every sample (the NPO augmentation writes ``clean_images`` and the occluded
``images``; both go through the backbone in one pass)::

    backbone ─► global feature (ViT: class token, or the first patch token as the released code; CNN: average)
             │      └► global classifier ─► global_logits
             └► 4 horizontal stripes ─► OEM score per stripe (Linear D→D/4, LayerNorm, Linear →1, sigmoid)
                 ─► stripe × score ─► [CNN variant: bias-free Linear to ``stripe_dim``] ─► per-stripe BN ─► f′
    f′ ─► classifier ─► logits;  cosine(f′, memory bank) / T ─► bank_logits
    f′ ─► FDM: the k most similar centres of *other* identities ─► cross-attention (f′ the query, the centres
          keys and values) ─► feed-forward ─► × OEM score per stripe, + f′ ─► feed-forward ─► per-stripe BN
          ─► fdm_logits, fdm_bank_logits

Eval mode returns f′ and never touches the FDM or the memory bank, so they never reach an export; with
``method_kwargs.eval_feature: fdm`` (or ``model.eval_feature = "fdm"`` on a loaded model) it returns the FDM
output instead (diffused with the 8 nearest centres, as the released test code does).

The memory bank is a model buffer (saved in the weights, so a resumed run continues exactly), initialised before
training from the identity means of f′ over the training set (:meth:`FED.on_train_start`, called by the trainer on a
fresh start) and updated after every forward, as the released code, by ``c ← m·c + (1-m)·x`` (m = 0.2) for each
clean sample in batch order; under DDP every rank gathers all ranks' features first, so the banks stay identical.
Facts and the differences from the released code: docs/fed.md.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..config.loader import ConfigError, from_dict
from .backbones.vit import grid_size
from .base import ReidModel
from .build import build_backbone
from .config import ModelConfig
from .heads import BNNeck, init_classifier, init_kaiming
from .registry import MODELS

log = logging.getLogger("robustreid.train")

EVAL_FEATURES = ("fprime", "fdm")
GLOBAL_FEATURES = ("auto", "cls", "first_patch", "gap")


@dataclass
class FEDOptions:
    """``model.method_kwargs`` of the ``fed`` model.

    - ``num_stripes``: horizontal stripes of the last feature map (4).
    - ``stripe_dim``: 0 = the backbone's channels (ViT-B: 768 per stripe, f′ 3072-d, as released); > 0 = a
      bias-free Linear per stripe to this size after the OEM (our CNN variant: keeps the FDM small on a CPU).
    - ``global_feature``: ``auto`` (ViT: class token, CNN: average), ``cls``, ``first_patch`` (the released code's
      choice: its backbone returns ``x[:, 1]``), ``gap``.
    - ``oem`` / ``bank`` / ``fdm``: the parts (the ablation switches them off; the FDM needs the bank).
    - ``neighbours`` (8), ``heads`` (8), ``ffn_mult`` (4): the FDM. ``temperature`` (0.05), ``momentum`` (0.2):
      the memory bank (``c ← momentum·c + (1 - momentum)·x``).
    - ``bank_from_fdm``: the bank is also moved by the clean FDM output (true: the released code's two memories
      share one tensor, so both updates land in it; the FDM output's first, then f′'s).
    - ``fdm_bn``: ``shared`` (the FDM output goes through f′'s per-stripe BN, as released) or ``own``.
    - ``eval_feature``: ``fprime`` (the inference feature) or ``fdm``.
    """

    num_stripes: int = 4
    stripe_dim: int = 0
    global_feature: str = "auto"
    oem: bool = True
    bank: bool = True
    fdm: bool = True
    neighbours: int = 8
    heads: int = 8
    ffn_mult: int = 4
    temperature: float = 0.05
    momentum: float = 0.2
    bank_from_fdm: bool = True
    fdm_bn: str = "shared"
    eval_feature: str = "fprime"

    def validate(self) -> "FEDOptions":
        where = "model.method_kwargs"
        if self.num_stripes < 1 or self.stripe_dim < 0:
            raise ConfigError(f"{where}: num_stripes >= 1 and stripe_dim >= 0 expected, got "
                              f"{self.num_stripes} / {self.stripe_dim}")
        if self.global_feature not in GLOBAL_FEATURES:
            raise ConfigError(f"{where}.global_feature: expected one of {GLOBAL_FEATURES}, got {self.global_feature!r}")
        if self.fdm and not self.bank:
            raise ConfigError(f"{where}: fdm=true needs bank=true (the FDM diffuses with the memory bank's centres)")
        if self.neighbours < 1 or self.heads < 1 or self.ffn_mult < 1:
            raise ConfigError(f"{where}: neighbours, heads and ffn_mult must be >= 1")
        if self.temperature <= 0 or not 0.0 <= self.momentum <= 1.0:
            raise ConfigError(f"{where}: temperature > 0 and momentum in [0, 1] expected, got "
                              f"{self.temperature} / {self.momentum}")
        if self.fdm_bn not in ("shared", "own"):
            raise ConfigError(f"{where}.fdm_bn: expected 'shared' or 'own', got {self.fdm_bn!r}")
        if self.eval_feature not in EVAL_FEATURES:
            raise ConfigError(f"{where}.eval_feature: expected one of {EVAL_FEATURES}, got {self.eval_feature!r}")
        if self.eval_feature == "fdm" and not self.fdm:
            raise ConfigError(f"{where}: eval_feature=fdm needs fdm=true")
        return self


# ---------------------------------------------------------------- pure functions


def stripe_pool(feat_map: torch.Tensor, num_stripes: int) -> torch.Tensor:
    """N×C×h×w -> N×S×C: the mean of each of ``num_stripes`` horizontal stripes (whole rows; when h is not a
    multiple of S, adaptive pooling's overlapping windows)."""
    n, c, h, w = feat_map.shape
    if h < num_stripes:
        raise ValueError(f"fed: the feature map has {h} rows, fewer than {num_stripes} stripes "
                         "(raise model.input_size, or use last_stride=1)")
    if h % num_stripes == 0:  # plain reshape + mean: exports to any ONNX opset
        pooled = feat_map.reshape(n, c, num_stripes, (h // num_stripes) * w).mean(dim=3)
    else:
        pooled = F.adaptive_avg_pool2d(feat_map, (num_stripes, 1)).flatten(2)
    return pooled.transpose(1, 2)


def cosine_logits(feats: torch.Tensor, bank: torch.Tensor, temperature: float) -> torch.Tensor:
    """cos(feature, every centre) / T, N×K (float32). Gradients reach ``feats`` only."""
    return F.normalize(feats.float(), dim=1) @ F.normalize(bank.detach().float(), dim=1).t() / temperature


def neighbour_indices(query: torch.Tensor, bank: torch.Tensor, k: int,
                      exclude: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Indices N×k of the ``k`` centres most cosine-similar to each query row, most similar first; with
    ``exclude`` (one centre index per row: the sample's own identity) that centre is never picked."""
    sim = F.normalize(query.detach().float(), dim=1) @ F.normalize(bank.detach().float(), dim=1).t()
    if exclude is not None:
        sim = sim.scatter(1, exclude.long().view(-1, 1), float("-inf"))
    available = bank.shape[0] - (1 if exclude is not None else 0)
    if not 1 <= k <= available:
        raise ValueError(f"fed: cannot pick {k} neighbour centres among {available}")
    return sim.topk(k, dim=1).indices


def momentum_update(bank: torch.Tensor, feats: torch.Tensor, pids: torch.Tensor, momentum: float) -> torch.Tensor:
    """The released update as a new tensor: for each sample in order, ``bank[y] ← m·bank[y] + (1-m)·x``.

    In closed form an identity seen n times gets ``m^n·c + Σ_j (1-m)·m^(later_j)·x_j`` (later_j = how many of its
    samples come after j)."""
    feats = feats.detach().to(bank.dtype)
    pids = pids.long().view(-1)
    if feats.shape[0] != pids.numel() or feats.shape[1:] != bank.shape[1:]:
        raise ValueError(f"fed: memory update with features {tuple(feats.shape)} and {pids.numel()} labels "
                         f"for a bank {tuple(bank.shape)}")
    m = torch.tensor(float(momentum), dtype=bank.dtype, device=bank.device)
    same = pids.view(-1, 1) == pids.view(1, -1)
    later = torch.triu(same, diagonal=1).sum(dim=1)
    weights = (1.0 - m) * m.pow(later)
    counts = torch.bincount(pids, minlength=bank.shape[0])
    out = bank * m.pow(counts).unsqueeze(1)
    return out.index_add(0, pids, feats * weights.unsqueeze(1))


def identity_means(feats: torch.Tensor, pids: torch.Tensor, num_classes: int) -> torch.Tensor:
    """K×D mean feature of each identity 0..K-1 (every identity must have a sample)."""
    pids = pids.long().view(-1)
    counts = torch.bincount(pids, minlength=num_classes)
    if counts.numel() != num_classes or bool((counts == 0).any()):
        missing = torch.nonzero(counts[:num_classes] == 0).flatten().tolist()
        raise ValueError(f"fed: memory bank init: training identities {missing[:5]} have no image "
                         f"(or labels exceed {num_classes - 1})")
    sums = torch.zeros(num_classes, feats.shape[1], dtype=torch.float32, device=feats.device)
    sums.index_add_(0, pids, feats.float())
    return sums / counts.unsqueeze(1).float()


def _rank_world() -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every rank's rows concatenated in rank order, on every rank (``t`` itself in one process)."""
    rank, world = _rank_world()
    if world == 1:
        return t
    device = t.device if dist.get_backend() == "nccl" else torch.device("cpu")
    local = t.detach().to(device).contiguous()
    n = torch.tensor([local.shape[0]], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    counts = [int(s.item()) for s in sizes]
    if local.shape[0] < max(counts):
        pad = local.new_zeros((max(counts) - local.shape[0],) + tuple(local.shape[1:]))
        local = torch.cat([local, pad])
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).to(t.device)


# ---------------------------------------------------------------- modules


class OEM(nn.Module):
    """Occlusion Erasing Module: per stripe Linear(D→D/4) → LayerNorm → Linear(→1) → sigmoid = visibility score."""

    def __init__(self, dim: int, num_stripes: int):
        super().__init__()
        if dim < 4:
            raise ValueError(f"fed: OEM needs stripes of at least 4 channels, got {dim}")
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim // 4), nn.LayerNorm(dim // 4), nn.Linear(dim // 4, 1), nn.Sigmoid())
            for _ in range(num_stripes))

    def forward(self, stripes: torch.Tensor) -> torch.Tensor:  # N×S×D -> N×S
        return torch.cat([head(stripes[:, i]) for i, head in enumerate(self.heads)], dim=1)


class FeedForward(nn.Module):
    """LayerNorm → Linear(D, 2·mult·D) → GEGLU → Linear(mult·D, D), without a residual (the released FDM's
    feed-forward block)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mult * 2)
        self.fc2 = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.fc1(self.norm(x)).chunk(2, dim=-1)
        return self.fc2(value * F.gelu(gate))


class CrossAttention(nn.Module):
    """Multi-head attention of one query vector (N×dim) over K memory vectors (N×K×dim): bias-free q and kv
    projections, scaled dot product per head, output projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"fed: feature size {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        n, k, d = memory.shape
        h = self.heads
        q = self.q(query).view(n, h, 1, d // h)
        kv = self.kv(memory).view(n, k, 2, h, d // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])  # N×h×1×(d/h)
        return self.proj(out.reshape(n, d))


class FDM(nn.Module):
    """Feature Diffusion Module (training only): f′ attends to centres of other identities; the result, weighted
    per stripe by the OEM scores, is added to f′ (other pedestrians' features synthesised on the visible parts)."""

    def __init__(self, num_stripes: int, dim: int, heads: int = 8, mult: int = 4):
        super().__init__()
        self.num_stripes, self.dim = num_stripes, dim
        self.attn = CrossAttention(num_stripes * dim, heads)
        self.ffn1 = FeedForward(dim, mult)
        self.ffn2 = FeedForward(dim, mult)

    def forward(self, fprime: torch.Tensor, centres: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """f′ N×(S·D), centres N×K×(S·D), OEM scores N×S -> N×(S·D) (before the per-stripe BN)."""
        n = fprime.shape[0]
        stripes = fprime.view(n, self.num_stripes, self.dim)
        r = self.attn(fprime, centres).view(n, self.num_stripes, self.dim)
        r = self.ffn1(r)
        return self.ffn2(r * scores.unsqueeze(-1) + stripes).flatten(1)


def _bn_per_view(neck: nn.Module, x: torch.Tensor, split: Optional[int]) -> torch.Tensor:
    """BN over each view separately in training (clean rows ``[:split]``, occluded ``[split:]``), as released."""
    if split is None or not neck.training:
        return neck(x)
    return torch.cat([neck(x[:split]), neck(x[split:])])


class FED(ReidModel):
    #: the clean view and the labels (own identity excluded from the FDM's centres) come from the batch
    train_inputs = ("clean_images", "pids")
    #: the inference features a checkpoint can be evaluated with (``robustreid eval --feature``)
    eval_features = EVAL_FEATURES

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        opts = from_dict(FEDOptions, dict(cfg.method_kwargs), where="model.method_kwargs").validate()
        self.options = opts
        self.backbone = build_backbone(cfg)
        self.is_vit = bool(getattr(self.backbone, "has_cls_token", False))
        self.global_feature = opts.global_feature
        if opts.global_feature == "auto":
            self.global_feature = "cls" if self.is_vit else "gap"
        elif opts.global_feature in ("cls", "first_patch") and not self.is_vit:
            raise ConfigError(f"model.method_kwargs.global_feature={opts.global_feature!r} needs a transformer "
                              f"backbone; {cfg.backbone!r} is a CNN (use gap or auto)")
        channels = int(self.backbone.out_channels)
        s = opts.num_stripes
        self.channels, self.num_stripes = channels, s
        self.stripe_dim = opts.stripe_dim or channels
        self.oem = OEM(channels, s) if opts.oem else None
        self.reduce: Optional[nn.ModuleList] = None
        if opts.stripe_dim:
            self.reduce = nn.ModuleList(init_kaiming(nn.Linear(channels, self.stripe_dim, bias=False)) for _ in range(s))
        self.feat_dim = s * self.stripe_dim
        self.neck = BNNeck(self.feat_dim)  # one BN per feature = a BN per stripe
        self.fdm = FDM(s, self.stripe_dim, opts.heads, opts.ffn_mult) if opts.fdm else None
        self.fdm_neck = BNNeck(self.feat_dim) if opts.fdm and opts.fdm_bn == "own" else None
        self._eval_feature = opts.eval_feature
        self.reset_classifier(num_classes)

    # -- classifiers and the memory bank (one centre per training identity) -------------------------------------
    def reset_classifier(self, num_classes: int) -> None:
        if num_classes < 0:
            raise ValueError(f"num_classes: expected >= 0, got {num_classes}")
        self.num_classes = int(num_classes)
        ref = next(self.backbone.parameters())
        n = self.num_classes

        def head(dim: int) -> Optional[nn.Linear]:
            return init_classifier(nn.Linear(dim, n, bias=False)).to(ref.device, ref.dtype) if n else None

        self.classifier = head(self.feat_dim)
        self.global_classifier = head(self.channels)
        self.fdm_classifier = head(self.feat_dim) if self.fdm is not None else None
        bank = torch.zeros(n, self.feat_dim, device=ref.device) if self.options.bank and n else None
        if "bank" in self._buffers:
            self._buffers["bank"] = bank
        else:
            self.register_buffer("bank", bank)

    # -- the evaluation feature ----------------------------------------------------------------------------------
    @property
    def eval_feature(self) -> str:
        return self._eval_feature

    @eval_feature.setter
    def eval_feature(self, value: str) -> None:
        if value not in EVAL_FEATURES:
            raise ValueError(f"fed: eval_feature must be one of {EVAL_FEATURES}, got {value!r}")
        if value == "fdm" and (self.fdm is None or self.bank is None):
            raise ValueError("fed: eval_feature='fdm' needs a model built with the FDM and the memory bank")
        self._eval_feature = value

    @contextlib.contextmanager
    def using_eval_feature(self, value: str) -> Iterator["FED"]:
        old = self._eval_feature
        self.eval_feature = value
        try:
            yield self
        finally:
            self._eval_feature = old

    # -- shared pieces -------------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Images -> last feature map N×C×h×w (ViT: the patch tokens on their grid)."""
        return self._encode(x)[1]

    def _encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images -> (global feature N×C, feature map N×C×h×w, stripes N×S×C)."""
        xn = self.normalize(x)
        if self.is_vit:
            cls, patches = self.backbone.forward_tokens(xn)
            h, w = grid_size(x.shape[-2:], self.backbone.patch_size, self.backbone.patch_stride)
            fmap = patches.transpose(1, 2).reshape(x.shape[0], patches.shape[-1], h, w)
            glob = {"cls": cls, "first_patch": patches[:, 0]}.get(self.global_feature)
        else:
            fmap = self.backbone(xn)
            glob = None
        if glob is None:
            glob = fmap.mean(dim=(2, 3))
        return glob, fmap, stripe_pool(fmap, self.num_stripes)

    def _fprime(self, stripes: torch.Tensor, split: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Stripes N×S×C -> (OEM scores N×S, f′ N×(S·D))."""
        if self.oem is not None:
            scores = self.oem(stripes)
        else:
            scores = stripes.new_ones(stripes.shape[:2])
        weighted = stripes * scores.unsqueeze(-1)
        if self.reduce is not None:
            weighted = torch.stack([lin(weighted[:, i]) for i, lin in enumerate(self.reduce)], dim=1)
        return scores, _bn_per_view(self.neck, weighted.flatten(1), split)

    def _diffuse(self, fprime: torch.Tensor, scores: torch.Tensor, idx: torch.Tensor,
                 split: Optional[int] = None) -> torch.Tensor:
        centres = self.bank[idx].to(fprime.dtype)  # N×k×dim, a copy: the bank never joins the graph
        out = self.fdm(fprime, centres, scores)
        return _bn_per_view(self.fdm_neck or self.neck, out, split)

    def occlusion_scores(self, x: torch.Tensor) -> torch.Tensor:
        """OEM visibility score per stripe (N×S, top stripe first; ones without an OEM) in the current mode."""
        return self._fprime(self._encode(x)[2])[0]

    # -- forward -------------------------------------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The inference feature: f′, or the FDM output when ``eval_feature == 'fdm'``."""
        scores, f = self._fprime(self._encode(x)[2])
        if self._eval_feature == "fdm":
            idx = neighbour_indices(f, self.bank, min(self.options.neighbours, self.bank.shape[0]))
            return self._diffuse(f, scores, idx)
        return f

    def forward(self, x: torch.Tensor, clean_images: Optional[torch.Tensor] = None,
                pids: Optional[torch.Tensor] = None):
        if not self.training:
            return self.embed(x)
        if clean_images is None:
            raise ValueError("fed: training needs the clean view of every sample ('clean_images' in the batch): "
                             "add the NPO augmentation, data.augs: [{name: npo}]")
        if clean_images.shape != x.shape:
            raise ValueError(f"fed: clean_images {tuple(clean_images.shape)} and images {tuple(x.shape)} differ")
        if pids is None and self.bank is not None:
            raise ValueError("fed: training with the memory bank needs the batch's 'pids'")
        n = x.shape[0]
        glob, fmap, stripes = self._encode(torch.cat([clean_images, x]))
        scores, f = self._fprime(stripes, split=n)
        out: Dict[str, torch.Tensor] = {
            "feat": f[:n], "feat_occ": f[n:], "oem_scores": scores[:n], "oem_scores_occ": scores[n:],
            "global_feat": glob[:n], "feat_map": fmap[:n],
        }
        if self.classifier is not None:
            out["logits"], out["logits_occ"] = self.classifier(f).split(n)
            out["global_logits"], out["global_logits_occ"] = self.global_classifier(glob).split(n)
        if self.bank is None:
            return out
        pids = torch.as_tensor(pids, device=f.device).long().view(-1)
        out["bank_logits"], out["bank_logits_occ"] = cosine_logits(f, self.bank, self.options.temperature).split(n)
        diffused = None
        if self.fdm is not None:
            k = min(self.options.neighbours, self.bank.shape[0] - 1)
            idx = neighbour_indices(f, self.bank, k, exclude=pids.repeat(2))
            diffused = self._diffuse(f, scores, idx, split=n)
            out["fdm_feat"], out["fdm_neighbours"] = diffused[:n], idx[:n]
            out["fdm_logits"], out["fdm_logits_occ"] = self.fdm_classifier(diffused).split(n)
            out["fdm_bank_logits"], out["fdm_bank_logits_occ"] = cosine_logits(
                diffused, self.bank, self.options.temperature).split(n)
        self._update_bank(f[:n], None if diffused is None else diffused[:n], pids)
        return out

    @torch.no_grad()
    def _update_bank(self, fprime: torch.Tensor, diffused: Optional[torch.Tensor], pids: torch.Tensor) -> None:
        """After the logits (they saw the old bank): every rank's clean features, in rank order, move the bank."""
        m = self.options.momentum
        all_pids = all_gather_rows(pids)
        bank = self.bank
        if diffused is not None and self.options.bank_from_fdm:
            bank = momentum_update(bank, all_gather_rows(diffused.float()), all_pids, m)
        bank = momentum_update(bank, all_gather_rows(fprime.float()), all_pids, m)
        self.bank.copy_(bank)

    # -- the engine's hook on a fresh (not resumed) start --------------------------------------------------------
    def on_train_start(self, trainer: Any) -> None:
        """Check the recipe gives two views, then set every centre to its identity's mean f′ over the training
        set (one pass, eval mode, no augmentation; shards over ranks, gathered on every rank)."""
        augs = [str(a.get("name", "")).lower() for a in trainer.cfg.data.augs]
        if "npo" not in augs:
            raise ConfigError("model fed: training needs the NPO augmentation (clean + occluded views and the "
                              "stripe targets): add data.augs: [{name: npo}]")
        if self.bank is None:
            return
        # the engine calls this hook; importing it at module level would be circular (engine -> models)
        from ..engine.extract import extract_features

        samples = list(trainer.dataset.train)
        rank, world = _rank_world()
        lo, hi = len(samples) * rank // world, len(samples) * (rank + 1) // world
        device = trainer.device
        with self.using_eval_feature("fprime"):
            feats = torch.zeros(0, self.feat_dim)
            if hi > lo:
                feats = torch.from_numpy(extract_features(
                    self, samples[lo:hi], batch_size=trainer.cfg.eval.batch_size, device=device, flip=False,
                    num_workers=trainer.cfg.data.num_workers, progress=bool(trainer.progress and trainer.is_main),
                    desc="memory bank"))
        feats = all_gather_rows(feats.to(device))
        pids = torch.tensor([s.pid for s in samples], device=device)
        self.bank.copy_(identity_means(feats, pids, self.num_classes))
        log.info("fed: memory bank initialised from %d training images of %d identities (mean f′ per identity)",
                 len(samples), self.num_classes)

    def extra_repr(self) -> str:
        o = self.options
        return (f"{super().extra_repr()}, stripes={o.num_stripes}×{self.stripe_dim}, global={self.global_feature}, "
                f"oem={o.oem}, bank={o.bank}, fdm={o.fdm}, eval_feature={self._eval_feature!r}")


@MODELS.register("fed")
def build_fed(cfg: ModelConfig, num_classes: int) -> FED:
    return FED(cfg, num_classes)
