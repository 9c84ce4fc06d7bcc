"""Small baselines: a LeNet-style CNN and VGG-16 with batch norm for 32×32 inputs."""

from __future__ import annotations

from torch import nn

from .registry import register_model

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def conv_bn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


@register_model("simplecnn", "baseline", "conv-bn-relu-pool ×2, fc 120-84 with dropout")
def simplecnn(num_classes: int = 10, dropout: float = 0.3) -> nn.Module:
    return nn.Sequential(
        *conv_bn_relu(3, 32), nn.MaxPool2d(2),
        *conv_bn_relu(32, 64), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(64 * 8 * 8, 120), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(120, 84), nn.ReLU(inplace=True),
        nn.Linear(84, num_classes),
    )


@register_model("vgg16", "baseline", "VGG-16 with batch norm, 32×32 variant (512-d classifier)")
def vgg16(num_classes: int = 10) -> nn.Module:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += conv_bn_relu(in_ch, item)
            in_ch = item
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, num_classes))
