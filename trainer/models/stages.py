"""A ResNet as an ordered list of stages, so a frozen prefix can run once and be cached.

Running the stages in order computes exactly ``model(x)``; the stages share modules with the
model, so training a stage trains the model.
"""

from __future__ import annotations

import sys

from torch import nn

from edgecls.errors import EdgeclsError

from .cifar_resnet import CifarResNet


def is_torchvision_resnet(model: nn.Module) -> bool:
    """Asked without importing torchvision (tv_resnet.py says why): a torchvision ResNet exists only once
    torchvision.models has been imported."""
    tv = sys.modules.get("torchvision.models")
    return tv is not None and isinstance(model, tv.ResNet)


def split_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``[("stem", …), ("layer1", …), …, ("head", pool + flatten + fc)]``."""
    if is_torchvision_resnet(model):
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        layers = ["layer1", "layer2", "layer3", "layer4"]
    elif isinstance(model, CifarResNet):
        stem = nn.Sequential(model.conv1, model.bn1, nn.ReLU())
        layers = ["layer1", "layer2", "layer3"]
    else:
        raise EdgeclsError(f"{type(model).__name__} cannot be split into stages; "
                           "freezing and feature caching work on the ResNets")
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.fc)
    return [("stem", stem), *((name, getattr(model, name)) for name in layers), ("head", head)]


def stage_names(model: nn.Module) -> list[str]:
    return [name for name, _ in split_stages(model)]


def default_frozen(model: nn.Module) -> tuple[str, ...]:
    """The tutorial recipe: everything but the last residual stage and the head stays fixed."""
    return tuple(stage_names(model)[:-2])
