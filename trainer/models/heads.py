"""Classifier heads that replace a model's ``fc`` (fine-tuning recipes add dropout before it)."""

from __future__ import annotations

from torch import nn

from edgecls.errors import EdgeclsError

HEADS = ("linear", "dropout-linear")
HEAD_DROPOUT = 0.2


def set_head(model: nn.Module, kind: str) -> nn.Module:
    """Replace ``model.fc`` in place; ``linear`` keeps the model as built."""
    if kind not in HEADS:
        raise EdgeclsError(f"--head must be one of {', '.join(HEADS)}, got {kind!r}")
    if kind == "linear":
        return model
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise EdgeclsError(f"--head {kind} needs a model with an fc layer (the ResNets)")
    model.fc = nn.Sequential(nn.Dropout(HEAD_DROPOUT), fc)
    return model
