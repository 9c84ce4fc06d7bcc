"""Mobile networks (depthwise separable convolutions) from maintained libraries, adapted to 32×32 inputs (issue 35).

MobileNetV2 and MobileNetV3-Small come from torchvision, EfficientNet-Lite0 and MobileNetV4-Conv-Small from timm:
their own blocks, not a re-implementation, so they stay what edge devices run. Each reduces its input 32×; at
32×32 that leaves 1×1 maps whose depthwise 3×3 and 5×5 kernels see only padding. The CIFAR variant
(``stem="cifar"``, the default) makes the first two strided convolutions stride 1, as the CIFAR ports of
MobileNetV2 do (kuangliu/pytorch-cifar: stem and first downsampling block), so 32×32 ends at 4×4.
``stem="imagenet"`` leaves the library network untouched, so its pretrained weights would load.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .registry import register_model

STEMS = ("cifar", "imagenet")
CIFAR_UNSTRIDED = 2  # strided convolutions made stride 1: total stride 32 → 8


def strided_convs(model: nn.Module) -> list[nn.Conv2d]:
    """Convolutions with a stride above 1, in module (registration) order, which is forward order for these
    sequential networks (tests/test_mobile.py checks it by running them)."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]


def unstride_first(model: nn.Module, count: int = CIFAR_UNSTRIDED) -> nn.Module:
    """Stride 1 for the first ``count`` strided convolutions. Their padding stays: torchvision and timm pad a
    k×k convolution by (k-1)//2 at stride 1 and 2 alike, so each keeps a map's size instead of halving it."""
    convs = strided_convs(model)
    if len(convs) < count:
        raise ValueError(f"{type(model).__name__} has {len(convs)} strided convolutions, fewer than {count}")
    for conv in convs[:count]:
        conv.stride = (1, 1)
    return model


def _adapt(model: nn.Module, stem: str) -> nn.Module:
    if stem not in STEMS:
        raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
    return unstride_first(model) if stem == "cifar" else model


def _torchvision(factory: Callable[..., nn.Module], num_classes: int, stem: str) -> nn.Module:
    return _adapt(factory(weights=None, num_classes=num_classes), stem)


def _timm(name: str, num_classes: int, stem: str) -> nn.Module:
    import timm  # the train extra's; imported here so the other models build without it

    return _adapt(timm.create_model(name, pretrained=False, num_classes=num_classes), stem)


CIFAR_NOTE = "CIFAR variant: stem and first downsampling block at stride 1 (32×32 → 4×4)"


@register_model("mobilenetv2", "torchvision-mobile", f"torchvision MobileNetV2 1.0; {CIFAR_NOTE}")
def mobilenetv2(num_classes: int = 10, stem: str = "cifar") -> nn.Module:
    from torchvision.models import mobilenet_v2

    return _torchvision(mobilenet_v2, num_classes, stem)


@register_model("mobilenetv3small", "torchvision-mobile", f"torchvision MobileNetV3-Small 1.0; {CIFAR_NOTE}")
def mobilenetv3small(num_classes: int = 10, stem: str = "cifar") -> nn.Module:
    from torchvision.models import mobilenet_v3_small

    return _torchvision(mobilenet_v3_small, num_classes, stem)


@register_model("efficientnetlite0", "timm-mobile", f"timm efficientnet_lite0; {CIFAR_NOTE}")
def efficientnetlite0(num_classes: int = 10, stem: str = "cifar") -> nn.Module:
    return _timm("efficientnet_lite0", num_classes, stem)


@register_model("mobilenetv4convsmall", "timm-mobile", f"timm mobilenetv4_conv_small; {CIFAR_NOTE}")
def mobilenetv4convsmall(num_classes: int = 10, stem: str = "cifar") -> nn.Module:
    return _timm("mobilenetv4_conv_small", num_classes, stem)
