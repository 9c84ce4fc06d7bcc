"""Name → builder registry, in the spirit of timm's ``@register_model``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from edgecls.errors import EdgeclsError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    description: str
    input_size: int = 32


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, family: str, description: str, input_size: int = 32):
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, fn, family, description, input_size)
        return fn

    return wrap


def model_names() -> list[str]:
    return list(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EdgeclsError(f"unknown model {name!r}; choose from: {', '.join(_REGISTRY)}") from None


def build_model(name: str, num_classes: int, head: str = "linear", **kwargs) -> nn.Module:
    """``kwargs`` go to the builder (e.g. ``stem`` for the torchvision ResNets)."""
    from .heads import set_head

    return set_head(get_entry(name).builder(num_classes=num_classes, **kwargs), head)
