"""Optimizer and per-step learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# airbench's triangle: from 20% of the peak up to it at 23% of the steps, then down to 7%.
TRIANGLE = (0.2, 0.23, 0.07)


def param_groups(model: nn.Module, weight_decay: float, lr: float, bias_lr_scale: float = 1.0) -> list[dict]:
    """Weight decay on conv/linear weights only; BN parameters and biases are left alone and
    learn ``bias_lr_scale`` times faster (airbench trains its BN biases at 64× the LR).

    Frozen parameters (``requires_grad=False``) are left out, so nothing can move them.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "lr": lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": lr * bias_lr_scale}]


def make_optimizer(model: nn.Module, name: str, lr: float, momentum: float, weight_decay: float,
                   bias_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """``name``: one of config.OPTIMIZER_DEFAULTS (checked there, with the flag's name)."""
    groups = param_groups(model, weight_decay, lr, bias_lr_scale)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Linear warm-up from 10% of the peak, then linear ("onecycle"), cosine or no decay ("plateau");
    "triangle" ignores ``warmup_steps`` and follows :data:`TRIANGLE`."""
    if schedule == "triangle":
        start, peak_at, end = TRIANGLE
        peak = int(peak_at * total_steps)
        if step < peak:
            return start + (1.0 - start) * step / peak
        return 1.0 - (1.0 - end) * min(1.0, (step - peak) / max(1, total_steps - peak))
    if step < warmup_steps:
        return 0.1 + 0.9 * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "plateau":
        return 1.0
    return 1.0 - progress


@dataclass
class LrSchedule:
    """The LR multiplier per step. A callable object, not a lambda: LambdaLR saves its fields in
    ``state_dict()``, so the plateau state survives a resume."""

    total_steps: int
    warmup_steps: int
    schedule: str
    plateau_factor: float = 0.1
    plateau_patience: int = 2
    scale: float = 1.0
    best_acc: float = -1.0
    bad_epochs: int = 0

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total_steps, self.warmup_steps, self.schedule) * self.scale

    def end_epoch(self, acc: float) -> None:
        """ReduceLROnPlateau on validation accuracy (mode max): cut the LR after ``patience`` flat epochs."""
        if self.schedule != "plateau":
            return
        if acc > self.best_acc:
            self.best_acc, self.bad_epochs = acc, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.plateau_patience:
            self.scale *= self.plateau_factor
            self.bad_epochs = 0


def make_scheduler(opt: torch.optim.Optimizer, total_steps: int, warmup_steps: int, schedule: str):
    return torch.optim.lr_scheduler.LambdaLR(opt, LrSchedule(total_steps, warmup_steps, schedule))


def end_epoch(scheduler: torch.optim.lr_scheduler.LambdaLR, acc: float) -> None:
    for fn in {id(f): f for f in scheduler.lr_lambdas}.values():  # one object shared by all groups
        fn.end_epoch(acc)
