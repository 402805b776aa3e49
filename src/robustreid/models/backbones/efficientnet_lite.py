"""EfficientNet-Lite0/1/2 in plain torch, loadable from the packaged ImageNet weights by a simple key mapping.

EfficientNet-Lite is EfficientNet-B without squeeze-excitation, with ReLU6 instead of swish, and with the stem
(32 channels), the head (1280 channels) and the depth of the first and last stages kept fixed when the variant
scales width and depth (the TF release's ``efficientnet_lite_builder``; the PyPI reference implementation
``efficientnet-lite-pytorch`` does the same with ``fix_head_stem``). BatchNorm eps is 1e-3 as in the TF weights.
Strided convolutions use TensorFlow's "SAME" padding (``pad = max((ceil(i/s) - 1)·s + k - i, 0)``, the smaller
half before): on even sizes one more row/column at the bottom/right. The weights were trained with it, so it is
reproduced exactly (stride-1 convolutions: the usual symmetric ``k // 2``).

Layout (every stage its own module, so methods can split the network)::

    stem      _conv_stem, _bn0, ReLU6                      1/2,  32 channels
    stages.0  MBConv k3 s1 e1  ×1   16 ch                  1/2
    stages.1  MBConv k3 s2 e6  ×2   24 ch                  1/4
    stages.2  MBConv k5 s2 e6  ×2   40 ch                  1/8
    stages.3  MBConv k3 s2 e6  ×3   80 ch                  1/16
    stages.4  MBConv k5 s1 e6  ×3  112 ch                  1/16
    stages.5  MBConv k5 s2 e6  ×4  192 ch                  1/32  (stride = last_stride)
    stages.6  MBConv k3 s1 e6  ×1  320 ch                  1/32
    head      _conv_head (1×1), _bn1, ReLU6              1280 ch  = forward's output (the reference's
                                                                    ``extract_features``)

(Lite0's widths and repeats; Lite1/2 multiply widths by 1.0/1.1 and the middle repeats by 1.1/1.2, rounded up.)
The packaged state dicts use ``_conv_stem``, ``_bn0``, ``_blocks.N.{_expand_conv,_bn0,_depthwise_conv,_bn1,
_project_conv,_bn2}``, ``_conv_head``, ``_bn1``, ``_fc``: :func:`map_checkpoint_key` maps them to ours
(``stem._conv_stem``, ``stages.S.J._expand_conv`` ..., ``head._conv_head``); ``_fc`` is the ImageNet classifier.

``trunk_and_tail()`` splits the backbone for two-branch methods: the tail is the last strided stage
(``stages.5``, built with ``last_stride``) plus ``stages.6`` and the head, the trunk everything before (1/16,
112·width channels).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import BACKBONES

BN_EPS = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (repeats, kernel, stride, expand ratio, output channels) of EfficientNet-Lite0 / B0
BASE_STAGES: Tuple[Tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
LAST_STRIDED_STAGE = 5
# variant -> (width multiplier, depth multiplier, resolution of the ImageNet training)
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
}


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale ``channels`` by ``width`` and round to a multiple of ``divisor`` (never more than 10 % down), as the
    TF EfficientNet builder."""
    if width == 1.0:
        return channels
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one spatial dimension: output ``ceil(size / stride)``."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """A strided convolution with TensorFlow "SAME" padding computed from the input size (no bias)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = same_padding(x.shape[-2], k, s)
        left, right = same_padding(x.shape[-1], k, s)
        return super().forward(F.pad(x, (left, right, top, bottom)))


def conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """TF-"SAME" convolution without bias: symmetric padding at stride 1, :class:`Conv2dSame` when strided."""
    if stride == 1:
        return nn.Conv2d(cin, cout, kernel, 1, kernel // 2, groups=groups, bias=False)
    return Conv2dSame(cin, cout, kernel, stride, groups)


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth ("drop connect"): zero whole samples' residual branch with probability p, scale by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0], 1, 1, 1)).bernoulli_(keep)
    return x * mask / keep


class MBConv(nn.Module):
    """Inverted residual without squeeze-excitation: [1×1 expand, BN, ReLU6], k×k depthwise, BN, ReLU6,
    1×1 project, BN; identity shortcut when the stride is 1 and the channels stay."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop_path: float = 0.0):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = bn(mid)
        self._depthwise_conv = conv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout
        self.drop_path = float(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        if self.residual:
            out = drop_path(out, self.drop_path, self.training) + x
        return out


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """Depthwise convolutions in the default (NCHW) memory format take the slow reference path on the CPU: a
    Lite0 training step at 128×64, batch 64, 2 threads, took 34.9 s in NCHW and 2.0 s in channels-last (one run,
    2026-12-02, loaded 2-core VM). So every Lite part runs channels-last, whatever format the caller passes (the
    values are the same up to float rounding)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


class Part(nn.Module):
    """A run of the backbone's own modules (shared, not copied) with an ``out_channels`` attribute."""

    def __init__(self, modules: Sequence[nn.Module], out_channels: int):
        super().__init__()
        self.body = nn.Sequential(*modules)
        self.out_channels = int(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(to_channels_last(x))


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite trunk; ``forward(x)`` returns the head activation N×1280×H/32×W/32 (last stride 2)
    or N×1280×H/16×W/16 (last stride 1)."""

    def __init__(self, width: float = 1.0, depth: float = 1.0, last_stride: int = 2, drop_path: float = 0.0,
                 in_chans: int = 3):
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride: expected 1 or 2, got {last_stride}")
        if not (width > 0 and depth > 0):
            raise ValueError(f"width/depth: expected positive multipliers, got {width}/{depth}")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path: expected a rate in [0, 1), got {drop_path}")
        self.last_stride = last_stride
        self.stem = nn.Sequential(OrderedDict(
            _conv_stem=conv(in_chans, STEM_CHANNELS, 3, 2), _bn0=bn(STEM_CHANNELS), act=nn.ReLU6(inplace=True)))
        plan = self._plan(width, depth, last_stride)
        n_blocks = sum(len(stage) for stage in plan)
        stages, cin, index = [], STEM_CHANNELS, 0
        self.block_names: List[str] = []  # packaged ``_blocks.N`` -> our ``stages.S.J``
        for s, stage in enumerate(plan):
            blocks = []
            for j, (kernel, stride, expand, cout) in enumerate(stage):
                # the reference's drop-connect schedule: rate · (block index / number of blocks)
                blocks.append(MBConv(cin, cout, kernel, stride, expand, drop_path * index / n_blocks))
                self.block_names.append(f"stages.{s}.{j}")
                cin, index = cout, index + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.stage_channels = [stage[-1][3] for stage in plan]
        self.head = nn.Sequential(OrderedDict(
            _conv_head=nn.Conv2d(cin, HEAD_CHANNELS, 1, bias=False), _bn1=bn(HEAD_CHANNELS),
            act=nn.ReLU6(inplace=True)))
        self.out_channels = HEAD_CHANNELS
        self._init_weights()

    @staticmethod
    def _plan(width: float, depth: float, last_stride: int) -> List[List[Tuple[int, int, int, int]]]:
        """Per stage, per block: (kernel, stride, expand, out channels). First and last stages keep their depth."""
        plan = []
        for s, (repeats, kernel, stride, expand, cout) in enumerate(BASE_STAGES):
            if 0 < s < len(BASE_STAGES) - 1:
                repeats = round_repeats(repeats, depth)
            if s == LAST_STRIDED_STAGE:
                stride = last_stride
            cout = round_channels(cout, width)
            plan.append([(kernel, stride if j == 0 else 1, expand, cout) for j in range(repeats)])
        return plan

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(to_channels_last(x))))

    def trunk_and_tail(self) -> Tuple[Part, Part]:
        """(trunk, tail) with ``tail(trunk(x)) == self(x)``, sharing this backbone's modules. The tail is the last
        strided stage (``stages.5``, stride ``last_stride``), ``stages.6`` and the head; the trunk the stem and
        ``stages.0-4`` (1/16 resolution, ``stage_channels[4]`` channels)."""
        k = LAST_STRIDED_STAGE
        trunk = Part([self.stem, *self.stages[:k]], self.stage_channels[k - 1])
        tail = Part([*self.stages[k:], self.head], self.out_channels)
        return trunk, tail


_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(.+)$")


def map_checkpoint_key(key: str, block_names: Sequence[str]) -> Optional[str]:
    """A packaged EfficientNet-Lite key -> ours; None for the ImageNet classifier ``_fc.*``. Blocks beyond
    ``block_names`` (a deeper variant's file) keep their name, so the loader lists them as unexpected."""
    if key.startswith("_fc."):
        return None
    if key.startswith(("_conv_stem.", "_bn0.")):
        return "stem." + key
    if key.startswith(("_conv_head.", "_bn1.")):
        return "head." + key
    m = _BLOCK_KEY.match(key)
    if m and int(m.group(1)) < len(block_names):
        return f"{block_names[int(m.group(1))]}.{m.group(2)}"
    return key


def _builder(variant: str):
    width, depth, _ = VARIANTS[variant]

    def build(last_stride: int = 2, drop_path: float = 0.0, input_size=None, in_chans: int = 3) -> EfficientNetLite:
        return EfficientNetLite(width, depth, last_stride=last_stride, drop_path=drop_path, in_chans=in_chans)

    build.__doc__ = f"{variant} (width {width}, depth {depth}): kwargs last_stride, drop_path."
    return build


for _variant in VARIANTS:
    BACKBONES.add(_variant, _builder(_variant))
