"""Checkpoints: one dict of tensors and primitives, written atomically, read with weights_only."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgecls import __version__
from edgecls.atomic import atomic_path
from edgecls.digest import file_sha256
from edgecls.errors import EdgeclsError
from edgecls.spec import ModelSpec

from .distributed import unwrap
from .models import build_model

CHECKPOINT_FORMAT = "edgecls-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: Path, model: nn.Module, spec: ModelSpec, epoch: int, **state) -> None:
    """``state`` holds optimizer/scheduler/EMA state, metrics history, config: primitives and tensors only."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "edgecls_version": __version__,
        "spec": spec.to_dict(),
        "epoch": epoch,
        "state_dict": _cpu_state(model),
        **state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _cpu_state(model: nn.Module) -> dict:
    model = unwrap(model)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_weights_only(path: Path, kind: str):
    """``torch.load(weights_only=True)`` on the CPU; a missing or unreadable file is one clear error."""
    if not path.is_file():
        raise EdgeclsError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types on foreign or damaged files (KeyError, EOFError, ...)
        raise EdgeclsError(f"{path} is not a readable {kind} ({type(e).__name__})") from None


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict; anything that is not an edgecls checkpoint is one clear error."""
    path = Path(path)
    payload = load_weights_only(path, "edgecls checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise EdgeclsError(f"{path} is not an edgecls checkpoint")
    if payload.get("version", 0) > CHECKPOINT_VERSION:
        raise EdgeclsError(f"{path} was written by a newer edgecls (checkpoint version {payload['version']})")
    return payload


def model_from_payload(payload: dict) -> tuple[nn.Module, ModelSpec]:
    spec = ModelSpec.from_dict(payload["spec"])
    model = build_model(spec.model, spec.num_classes, **payload.get("model_kwargs", {}))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), spec


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """Model in eval mode on CPU, and its metadata (model, classes, mean, std, input_size, epoch, …)."""
    payload = read_checkpoint(path)
    model, spec = model_from_payload(payload)
    meta = spec.to_dict()
    meta.update(epoch=payload.get("epoch"), best_val_acc=payload.get("best_val_acc"), sha256=file_sha256(path),
                edgecls_version=payload.get("edgecls_version"))
    return model, meta

