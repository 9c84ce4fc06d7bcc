"""Starting weights for fine-tuning: torchvision's ImageNet weights or a file on disk.

The classifier head is never taken from the source: fine-tuning rebuilds it for the new classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgecls.errors import EdgeclsError

from .checkpoint import CHECKPOINT_FORMAT, load_weights_only

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_PREFIX = "fc."


@dataclass(frozen=True)
class InitWeights:
    """A backbone state_dict (head removed) and what the weights imply about the input."""

    state_dict: dict
    stem: str | None  # "imagenet" | "cifar" for torchvision ResNets, None for other models
    mean: tuple[float, float, float] | None  # None: use the dataset's statistics
    std: tuple[float, float, float] | None
    source: str
    arch: dict | None = None  # an edgecls checkpoint's builder switches (width, ...): its weights fit only them


def imagenet_weights(model: str) -> InitWeights:
    """torchvision's IMAGENET1K_V1 weights through torch hub's normal cache (downloaded once)."""
    from torchvision import models as tvm

    enums = {"resnet18": tvm.ResNet18_Weights, "resnet34": tvm.ResNet34_Weights}
    if model not in enums:
        raise EdgeclsError(f"--init imagenet is available for {', '.join(enums)}, not {model!r}")
    weights = enums[model].IMAGENET1K_V1
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        state = weights.get_state_dict(progress=True, weights_only=True)
    except Exception as e:  # urllib raises URLError, HTTPError, socket errors, ... when offline
        name = weights.url.rsplit("/", 1)[-1]
        raise EdgeclsError(f"could not download {weights.url} ({type(e).__name__}); offline, put {name} "
                           f"into {folder} (torch hub's cache; TORCH_HOME moves it)") from None
    return InitWeights(_without_head(state), "imagenet", IMAGENET_MEAN, IMAGENET_STD, f"imagenet:{model}")


def file_weights(path: str | Path) -> InitWeights:
    """An edgecls checkpoint (its stem and normalization come along) or a torchvision state_dict."""
    path = Path(path)
    if not path.is_file():
        raise EdgeclsError(f"--init {path}: no such file (or use --init imagenet)")
    payload = load_weights_only(path, "checkpoint or state_dict for --init")
    if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT:
        spec, kwargs = payload["spec"], dict(payload.get("model_kwargs", {}))
        kwargs.pop("head", None)
        return InitWeights(_without_head(payload["state_dict"]), kwargs.pop("stem", None), tuple(spec["mean"]),
                           tuple(spec["std"]), str(path), kwargs)
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        conv1 = payload.get("conv1.weight")
        stem = None if conv1 is None else ("imagenet" if conv1.shape[-1] == 7 else "cifar")
        return InitWeights(_without_head(payload), stem, IMAGENET_MEAN, IMAGENET_STD, str(path))
    raise EdgeclsError(f"--init {path} is neither an edgecls checkpoint nor a state_dict of tensors")


def resolve_init(init: str, model: str) -> InitWeights:
    return imagenet_weights(model) if init == "imagenet" else file_weights(init)


def load_backbone(model: nn.Module, init: InitWeights) -> None:
    """Load every non-head tensor; any other mismatch is an error, not a silent partial load."""
    own = {k for k in model.state_dict() if not k.startswith(HEAD_PREFIX)}
    missing, unexpected = sorted(own - init.state_dict.keys()), sorted(init.state_dict.keys() - own)
    if missing or unexpected:
        raise EdgeclsError(f"--init {init.source} does not fit this model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]} (is it the same architecture and stem?)")
    try:
        model.load_state_dict(init.state_dict, strict=False)
    except RuntimeError as e:
        raise EdgeclsError(f"--init {init.source} does not fit this model: {str(e).splitlines()[-1].strip()}") from None


def _without_head(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
