"""torchvision ResNet-18/34 adapted to 32×32 inputs the way CIFAR tutorials do.

Built from ``torchvision.models`` and keeping its module names, so torchvision-format
state_dicts load (except ``conv1`` when the stem shapes differ, and ``fc`` when the class
count differs). torchvision is imported by the builders, not here: importing it costs about as much as
importing torch, and every other model (and every `edgecls` command that only loads a checkpoint of one)
does without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from .registry import register_model

if TYPE_CHECKING:
    from torchvision.models import ResNet


def adapt_stem_to_cifar(model: ResNet) -> ResNet:
    """3×3 stride-1 stem and no max-pool: keeps 32×32 feature maps large enough."""
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def _build(factory_name: str, num_classes: int, stem: str = "cifar", **kwargs) -> nn.Module:
    from torchvision import models as tvm

    model = getattr(tvm, factory_name)(weights=None, num_classes=num_classes, **kwargs)
    if stem == "cifar":
        adapt_stem_to_cifar(model)
    elif stem != "imagenet":
        raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
    return model


@register_model("resnet18", "torchvision-resnet", "torchvision ResNet-18, CIFAR stem (3×3 conv, no max-pool)")
def resnet18(num_classes: int = 10, **kwargs) -> nn.Module:
    return _build("resnet18", num_classes, **kwargs)


@register_model("resnet34", "torchvision-resnet", "torchvision ResNet-34, CIFAR stem (3×3 conv, no max-pool)")
def resnet34(num_classes: int = 10, **kwargs) -> nn.Module:
    return _build("resnet34", num_classes, **kwargs)
