"""Parameter and FLOP counts for `edgecls models`."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import build_model, get_entry, model_names


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: torch.nn.Module, size: int) -> int:
    """Forward FLOPs for one image (a multiply-add counts as 2)."""
    counter = FlopCounterMode(display=False)
    with counter:
        model.eval()(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def model_table(num_classes: int = 10) -> list[dict]:
    rows = []
    for name in model_names():
        entry = get_entry(name)
        model = build_model(name, num_classes)
        rows.append({"name": name, "family": entry.family, "params": count_params(model),
                     "flops": count_flops(model, entry.input_size), "input_size": entry.input_size,
                     "description": entry.description})
    return rows
