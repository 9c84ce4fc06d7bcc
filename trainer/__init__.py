"""edgecls.trainer: CIFAR-style classifiers trained from one optimized loop.

Names are imported lazily so that reading ``edgecls.trainer.config`` does not import torch.
"""

from importlib import import_module

_EXPORTS = {
    "TrainConfig": "config",
    "load_checkpoint": "checkpoint",
    "read_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "build_model": "models",
    "model_names": "models",
    "train": "fit",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edgecls.trainer' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
