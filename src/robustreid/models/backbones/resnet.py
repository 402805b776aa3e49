"""ResNet-18/34/50/101 (and IBN-a) with a last-stride option and a width multiplier.

Parameter names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), and the
IBN-a norm follows the IBN-Net release (``bn1.IN.*`` / ``bn1.BN.*``), so pretrained files load by name. The
classifier ``fc`` is not built: a ReID head replaces it.

``width`` scales every stage's channels (``width=0.5`` on ResNet-18: 32-64-128-256 channels, the CPU model);
``ibn`` puts IBN-a (half InstanceNorm, half BatchNorm on the first norm of each block) in stages 1-3.

``trunk_and_tail()`` splits the network for two-branch methods (IGOAS): trunk = stem + stages 1-3, tail = stage 4
(built with ``last_stride``); both share this backbone's modules.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn

from ..registry import BACKBONES


class IBN(nn.Module):
    """IBN-a norm: InstanceNorm (affine) on the first ``ratio`` of the channels, BatchNorm on the rest."""

    def __init__(self, planes: int, ratio: float = 0.5):
        super().__init__()
        self.half = max(1, int(planes * ratio))
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous() else torch.contiguous_format
        a, b = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        out = torch.cat([self.IN(a.contiguous()), self.BN(b.contiguous(memory_format=fmt))], dim=1)
        return out.contiguous(memory_format=fmt)


def _norm1(planes: int, ibn: bool) -> nn.Module:
    return IBN(planes) if ibn else nn.BatchNorm2d(planes)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 ibn: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _norm1(planes, ibn)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 ibn: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _norm1(planes, ibn)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # stride on the 3×3 (torchvision "v1.5")
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class Part(nn.Sequential):
    """A run of the backbone's own modules (shared, not copied), keeping their names, with ``out_channels``."""

    def __init__(self, named: Sequence[Tuple[str, nn.Module]], out_channels: int):
        super().__init__(OrderedDict(named))
        self.out_channels = int(out_channels)


class ResNet(nn.Module):
    """ResNet trunk (stem + 4 stages); ``forward(x)`` returns the last feature map N×C×H/16×W/16 (last stride 1)
    or N×C×H/32×W/32 (last stride 2)."""

    def __init__(self, block: Type[Union[BasicBlock, Bottleneck]], layers: Sequence[int], last_stride: int = 1,
                 width: float = 1.0, ibn: bool = False, in_chans: int = 3):
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride: expected 1 or 2, got {last_stride}")
        if not width > 0:
            raise ValueError(f"width: expected a positive multiplier, got {width}")
        widths = [max(4, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(in_chans, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        # IBN-a: stages 1-3 (the IBN-Net release skips the 512-plane stage)
        self.layer1 = self._make_layer(block, widths[0], layers[0], 1, ibn)
        self.layer2 = self._make_layer(block, widths[1], layers[1], 2, ibn)
        self.layer3 = self._make_layer(block, widths[2], layers[2], 2, ibn)
        self.layer4 = self._make_layer(block, widths[3], layers[3], last_stride, False)
        self.out_channels = widths[3] * block.expansion
        self.stage_channels = [c * block.expansion for c in widths]
        self.last_stride = last_stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int, ibn: bool) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers: List[nn.Module] = [block(self.inplanes, planes, stride, downsample, ibn)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, 1, None, ibn))
        return nn.Sequential(*layers)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def trunk_and_tail(self) -> Tuple[Part, Part]:
        """(trunk, tail) with ``tail(trunk(x)) == self(x)``, sharing this backbone's modules (no copy): the trunk is
        the stem and stages 1-3 (1/16 resolution, ``stage_channels[2]`` channels), the tail stage 4."""
        trunk = Part([("conv1", self.conv1), ("bn1", self.bn1), ("relu", self.relu), ("maxpool", self.maxpool),
                      ("layer1", self.layer1), ("layer2", self.layer2), ("layer3", self.layer3)],
                     self.stage_channels[2])
        tail = Part([("layer4", self.layer4)], self.out_channels)
        return trunk, tail


_SPECS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}


def _builder(arch: str, ibn_default: bool):
    block, layers = _SPECS[arch]

    def build(last_stride: int = 1, width: float = 1.0, ibn: bool = ibn_default, input_size=None,
              in_chans: int = 3) -> ResNet:
        return ResNet(block, layers, last_stride=last_stride, width=width, ibn=ibn, in_chans=in_chans)

    build.__doc__ = f"{arch}{'_ibn_a' if ibn_default else ''}: kwargs last_stride, width, ibn."
    return build


for _arch in _SPECS:
    BACKBONES.add(_arch, _builder(_arch, False))
    BACKBONES.add(f"{_arch}_ibn_a", _builder(_arch, True))
