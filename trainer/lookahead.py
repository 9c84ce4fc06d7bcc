"""Lookahead-style weight averaging (airbench94): every few steps the weights are pulled toward a
slow average of themselves, more strongly as training ends; the last step hands over the average.

Unlike an EMA kept beside the model (0.999 cost ResNet-20 five points in 25 epochs), the pull
acts on the weights being trained, so the average never lags behind a short schedule.
"""

from __future__ import annotations

import torch
from torch import nn

EVERY = 5
MAX_DECAY = 0.95 ** EVERY


def lookahead_decay(step: int, total_steps: int) -> float:
    """Weight of the slow average at ``step``: 0 at the start, growing with the cube of progress."""
    return MAX_DECAY * (step / total_steps) ** 3


class Lookahead:
    """Slow copies of every floating-point entry of the model's state (weights and BN statistics)."""

    def __init__(self, model: nn.Module, total_steps: int):
        self.total_steps = total_steps
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        """Call after optimizer step number ``step`` (1-based)."""
        if step >= self.total_steps:
            self.pull(model, 1.0)
        elif step % EVERY == 0:
            self.pull(model, lookahead_decay(step, self.total_steps))

    @torch.no_grad()
    def pull(self, model: nn.Module, decay: float) -> None:
        """slow ← decay·slow + (1−decay)·weights; weights ← slow."""
        state = model.state_dict()
        for k, slow in self.slow.items():
            slow.lerp_(state[k], 1.0 - decay)
            state[k].copy_(slow)

    def state_dict(self) -> dict:
        return {k: v.cpu() for k, v in self.slow.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            self.slow[k].copy_(v)
