"""CIFAR ResNets of He et al. 2016 (Sec. 4.2, Table 6): 6n+2 layers, 16/32/64 channels.

Shortcuts use option A of the paper: identity, with stride-2 subsampling and zero-padded
channels where the shape changes, so the network has no projection parameters
(ResNet-20: 0.27M parameters, as in Table 6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad the extra channels."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A 1x1 max-pool with this stride is the same subsampling, value for value, as x[:, :, ::s, ::s]; unlike a
        # strided slice, every runtime has it (NCNN has no layer for a slice with steps, so pnnx could not convert it).
        x = F.max_pool2d(x, 1, self.stride)
        half = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if stride != 1 or in_ch != out_ch:
            self.shortcut: nn.Module = PadShortcut(stride, out_ch - in_ch)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, zero_init_residual: bool = False):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, n, 1)
        self.layer2 = self._stage(16, 32, n, 2)
        self.layer3 = self._stage(32, 64, n, 2)
        self.fc = nn.Linear(64, num_classes)
        self._init_weights(zero_init_residual)

    @staticmethod
    def _stage(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_ch, out_ch, stride)]
        layers += [BasicBlock(out_ch, out_ch, 1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # Off by default: with option-A shortcuts it cost ResNet-20 about 2.5 points at 25 epochs
            # (84.6% vs 87.1%, benchmarks/results/recipe-sweep-h100.md).
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def _register(depth: int) -> None:
    @register_model(f"resnet{depth}", "cifar-resnet", f"CIFAR ResNet-{depth} (He et al. 2016, option-A shortcuts)")
    def build(num_classes: int = 10, **kwargs) -> nn.Module:
        return CifarResNet(depth, num_classes, **kwargs)


for _depth in (20, 32, 44, 56, 110):
    _register(_depth)
