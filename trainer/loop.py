"""One training epoch and batched prediction: the hot path, nothing else."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .augment import AugmentConfig, augment_batch, epoch_flips, to_model_input
from .distributed import World, unwrap
from .ema import update_ema
from .freeze import FreezePlan, set_train_mode
from .lookahead import Lookahead
from .policy import ExecPolicy


# Images per inference batch, and the chunk each rank scores in sharded evaluation: one constant,
# so every image meets the same batch whatever the number of processes (oneDNN's fp32 results
# depend on the batch).
EVAL_BATCH = 500


@dataclass
class DeviceData:
    """A split resident on the training device as uint8 NHWC, plus normalization constants."""

    images: torch.Tensor
    labels: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def from_numpy(cls, images, labels, mean, std, device: torch.device) -> "DeviceData":
        return cls(torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device),
                   torch.tensor(mean, device=device), torch.tensor(std, device=device))

    def __len__(self) -> int:
        return len(self.labels)

    def slice(self, start: int, stop: int) -> "DeviceData":
        return DeviceData(self.images[start:stop], self.labels[start:stop], self.mean, self.std)


@dataclass
class StepParts:
    model: nn.Module  # possibly torch.compile'd
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: nn.Module | None
    ema_decay: float
    label_smoothing: float
    freeze: FreezePlan | None = None
    lookahead: Lookahead | None = None


def train_one_epoch(parts: StepParts, data: DeviceData, batch_size: int, policy: ExecPolicy,
                    aug: AugmentConfig, gen: torch.Generator, seed: int, epoch: int,
                    on_step: Callable[[int, int, float], None] | None = None,
                    world: World = World()) -> tuple[float, float]:
    """Returns (mean train loss, images/s). Drops the last partial batch so shapes stay static.

    ``batch_size`` is global: every rank augments the whole batch the same way and keeps its slice.
    """
    n = len(data)
    bs = min(batch_size, n)
    perm = torch.randperm(n, generator=gen, device=gen.device).to(data.images.device)
    flips = epoch_flips(n, aug.flip, seed, epoch, gen)

    def batches():
        for i in range(n // bs):
            idx = perm[i * bs:(i + 1) * bs]
            x = to_model_input(augment_batch(data.images[idx], aug, gen, flips[idx] if flips is not None else None),
                               data.mean, data.std)
            x = world.shard(x)
            yield (x if policy.channels_last else x.contiguous()), world.shard(data.labels[idx])

    return fit_batches(parts, parts.model, batches(), n // bs, bs, policy, on_step)


def fit_batches(parts: StepParts, forward: nn.Module, batches, steps: int, batch_size: int, policy: ExecPolicy,
                on_step: Callable[[int, int, float], None] | None = None) -> tuple[float, float]:
    """One optimizer step per (input, label) batch through ``forward`` (the model, or its trainable tail)."""
    set_train_mode(unwrap(parts.model), parts.freeze)
    loss_sum = torch.zeros((), device=policy.device)
    start = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        with policy.autocast():
            loss = F.cross_entropy(forward(x), y, label_smoothing=parts.label_smoothing)
        parts.optimizer.zero_grad(set_to_none=True)
        parts.scaler.scale(loss).backward()
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        parts.scheduler.step()
        if parts.lookahead is not None:
            parts.lookahead.after_step(unwrap(parts.model), parts.scheduler.last_epoch)
        if parts.ema is not None:
            update_ema(parts.ema, unwrap(parts.model), parts.ema_decay)
        loss_sum += loss.detach()
        if on_step is not None and (i % 10 == 9 or i == steps - 1):
            on_step(i + 1, steps, loss.item())
    return loss_sum.item() / steps, steps * batch_size / (time.perf_counter() - start)


def tta_logits(model: nn.Module, x: torch.Tensor, tta: str) -> torch.Tensor:
    """``flip``: the mean over the image and its mirror. ``flip-translate`` (airbench): half that,
    half the same over copies shifted one pixel up-left and down-right (reflect-padded)."""
    def mirrored(v: torch.Tensor) -> torch.Tensor:
        return (model(v).float() + model(v.flip(3)).float()) / 2

    if tta == "none":
        return model(x).float()
    logits = mirrored(x)
    if tta == "flip":
        return logits
    h, w = x.shape[2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = (mirrored(padded[:, :, :h, :w]) + mirrored(padded[:, :, 2:, 2:])) / 2
    return (logits + shifted) / 2


@torch.no_grad()
def predict_logits(model: nn.Module, data: DeviceData, policy: ExecPolicy, batch_size: int = EVAL_BATCH,
                   tta: str = "none", amp: bool = False) -> torch.Tensor:
    """Float32 logits on the CPU.

    ``amp=False`` computes in fp32, so accuracy equals the exported FP32 models'; the per-epoch
    check during training uses the policy's autocast (2-3× faster on the CPU).
    """
    model.eval()
    outs = []
    for start in range(0, len(data), batch_size):
        x = to_model_input(data.images[start:start + batch_size], data.mean, data.std)
        if not policy.channels_last:
            x = x.contiguous()
        with policy.autocast() if amp else torch.autocast(policy.device.type, enabled=False):
            logits = tta_logits(model, x, tta)
        outs.append(logits.cpu())
    return torch.cat(outs) if outs else torch.empty(0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels.cpu()).float().mean().item() if len(labels) else 0.0
