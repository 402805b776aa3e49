"""Vision Transformer (ViT-S/16, ViT-B/16) for person crops, with timm's parameter names.

Options of ReID transformers (TransReID): overlapping patches (``patch_stride`` < 16), a learnable camera embedding
added to every token with a coefficient (``num_cameras``, ``camera_coef``), position embeddings resized to the
input grid (bicubic), stochastic depth (``drop_path``). ``forward_tokens`` returns the global (class) token and the
patch tokens (FED pools the latter into stripes); ``forward`` returns the patch tokens as a map N×C×h×w.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import BACKBONES


def grid_size(input_size: Sequence[int], patch_size: int, stride: int) -> Tuple[int, int]:
    """Number of patch rows and columns for an input (H, W): ``(H - P) // S + 1`` each."""
    h, w = int(input_size[0]), int(input_size[1])
    if h < patch_size or w < patch_size:
        raise ValueError(f"input {h}×{w} is smaller than one {patch_size}×{patch_size} patch")
    return (h - patch_size) // stride + 1, (w - patch_size) // stride + 1


def resize_pos_embed(pos_embed: torch.Tensor, new_grid: Sequence[int], old_grid: Optional[Sequence[int]] = None,
                     num_prefix: int = 1) -> torch.Tensor:
    """Resize a (1, prefix + h*w, C) position embedding to ``new_grid`` with bicubic interpolation.

    The prefix tokens (class token) are kept as they are. ``old_grid`` defaults to a square grid (timm's 224×224
    checkpoints: 14×14)."""
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed: expected shape (1, tokens, dim), got {tuple(pos_embed.shape)}")
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    n = grid.shape[1]
    if old_grid is None:
        side = int(round(math.sqrt(n)))
        if side * side != n:
            raise ValueError(f"pos_embed has {n} patch positions, not a square grid; pass old_grid=(h, w)")
        old_grid = (side, side)
    oh, ow = int(old_grid[0]), int(old_grid[1])
    if oh * ow != n:
        raise ValueError(f"pos_embed has {n} patch positions, which is not a {oh}×{ow} grid")
    nh, nw = int(new_grid[0]), int(new_grid[1])
    if (oh, ow) == (nh, nw):
        return pos_embed
    dim = grid.shape[-1]
    g = grid.reshape(1, oh, ow, dim).permute(0, 3, 1, 2).float()
    g = F.interpolate(g, size=(nh, nw), mode="bicubic", align_corners=False)
    g = g.permute(0, 2, 3, 1).reshape(1, nh * nw, dim).to(pos_embed.dtype)
    return torch.cat([prefix, g], dim=1)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples' residual branch with probability p, scale the rest by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, stride: int, in_chans: int, dim: int):
        super().__init__()
        self.patch_size, self.stride = patch_size, stride
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # N×C×h×w


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(n, t, c)))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """ViT trunk. ``forward_tokens(x, camids=None) -> (cls N×C, patches N×L×C)`` (after the final LayerNorm);
    ``forward(x) -> patches as a map N×C×h×w``. ``out_channels`` = embedding size; ``grid`` = (h, w) at
    ``input_size``; another input size works too (position embeddings are resized on the fly)."""

    has_cls_token = True

    def __init__(self, input_size: Sequence[int] = (256, 128), patch_size: int = 16, patch_stride: Optional[int] = None,
                 in_chans: int = 3, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path: float = 0.0,
                 num_cameras: int = 0, camera_coef: float = 3.0):
        super().__init__()
        stride = int(patch_stride or patch_size)
        if not 0 < stride <= patch_size:
            raise ValueError(f"patch_stride: expected 1..{patch_size}, got {stride}")
        self.patch_size, self.patch_stride = patch_size, stride
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.grid = grid_size(self.input_size, patch_size, stride)
        self.out_channels = self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(patch_size, stride, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.num_cameras, self.camera_coef = int(num_cameras), float(camera_coef)
        if self.num_cameras > 0:
            self.cam_embed = nn.Parameter(torch.zeros(self.num_cameras, 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [float(drop_path) * i / max(1, depth - 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            [Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, r) for r in rates]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init()

    def _init(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.num_cameras > 0:
            nn.init.trunc_normal_(self.cam_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_tokens(self, x: torch.Tensor, camids: Optional[torch.Tensor] = None):
        x = self.patch_embed(x)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        pos = self.pos_embed if grid == self.grid else resize_pos_embed(self.pos_embed, grid, self.grid)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos
        if self.num_cameras > 0 and camids is not None:
            camids = torch.as_tensor(camids, device=x.device).long().reshape(-1)
            if camids.numel() != x.shape[0]:
                raise ValueError(f"camids: expected {x.shape[0]} camera ids, got {camids.numel()}")
            if camids.numel() and (int(camids.min()) < 0 or int(camids.max()) >= self.num_cameras):
                raise ValueError(f"camids must be in [0, {self.num_cameras}); got {camids.min()}..{camids.max()}")
            x = x + self.camera_coef * self.cam_embed[camids]
        x = self.pos_drop(x)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x[:, 0], x[:, 1:]

    def forward(self, x: torch.Tensor, camids: Optional[torch.Tensor] = None) -> torch.Tensor:
        h, w = grid_size(x.shape[-2:], self.patch_size, self.patch_stride)
        _, patches = self.forward_tokens(x, camids)
        return patches.transpose(1, 2).reshape(x.shape[0], self.embed_dim, h, w)


_VITS = {
    "vit_small_patch16": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16": dict(embed_dim=768, depth=12, num_heads=12),
    "vit_tiny_patch16": dict(embed_dim=192, depth=12, num_heads=3),
}


def _vit_builder(arch: str):
    defaults = _VITS[arch]

    def build(last_stride: int = 1, input_size=(256, 128), **kw) -> VisionTransformer:
        # last_stride has no meaning for a ViT (use patch_stride); accepted so every backbone takes the same args
        args = dict(defaults)
        args.update(kw)
        return VisionTransformer(input_size=input_size, **args)

    build.__doc__ = f"{arch}: kwargs patch_stride, drop_path, num_cameras, camera_coef, depth, embed_dim, num_heads."
    return build


for _name in _VITS:
    BACKBONES.add(_name, _vit_builder(_name))
    BACKBONES.add(_name.replace("_patch16", "16"), _vit_builder(_name))  # vit_small16 / vit_base16 aliases
