"""Model registry; importing this package registers every built-in model."""

from . import airbench, baselines, cifar_resnet, mobile, tv_resnet  # noqa: F401  (registration side effect)
from .registry import ModelEntry, build_model, get_entry, model_names, register_model

__all__ = ["ModelEntry", "build_model", "get_entry", "model_names", "register_model"]
