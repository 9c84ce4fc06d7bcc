"""Outputs of a frozen trunk, computed once, so fine-tuning epochs run only the trainable tail.

The trunk is deterministic (eval mode, no dropout), so its output for an augmented image can be
stored and reused. Each of ``views`` augmented copies of the training set is passed through the
trunk once; epoch ``e`` trains on view ``(e - 1) % views``. Trade-off: with ``views`` equal to
the number of epochs this is exactly the uncached schedule, computed up front; fewer views cost
fewer trunk passes and less memory, but the tail sees only that many distinct augmentations of
each image. Features are stored NHWC in the autocast dtype (bf16 here), in memory or in a
memory-mapped file.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgecls.progress import track

from .augment import AugmentConfig, augment_batch, epoch_flips, to_model_input
from .distributed import World
from .loop import DeviceData
from .policy import ExecPolicy

BATCH = 256


@dataclass
class FeatureBank:
    views: list[torch.Tensor]  # (N, H, W, C) per augmented view of the training set
    val: torch.Tensor  # (N_val, H, W, C), un-augmented: what each epoch is scored on
    folder: Path | None  # where the memory-mapped files live (disk mode)

    def view_for_epoch(self, epoch: int) -> torch.Tensor:
        return self.views[(epoch - 1) % len(self.views)]

    @property
    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in [*self.views, self.val])

    def close(self) -> None:
        self.views, self.val = [], self.val[:0]
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def view_seed(seed: int, view: int) -> int:
    return seed * 1_000_003 + 500_009 + view


@torch.no_grad()
def encode(trunk: nn.Module, data: DeviceData, policy: ExecPolicy, store, desc: str,
           aug: AugmentConfig | None = None, seed: int = 0, view: int = 0) -> torch.Tensor:
    """Trunk outputs for every image (augmented when ``aug`` is given), written into ``store(shape)``."""
    gen = torch.Generator(device=data.images.device).manual_seed(view_seed(seed, view))
    flips = epoch_flips(len(data), aug.flip, seed, view + 1, gen) if aug else None
    out = None
    starts = range(0, len(data), BATCH)
    for start in track(starts, len(starts), desc):
        images = data.images[start:start + BATCH]
        if aug is not None:
            images = augment_batch(images, aug, gen, flips[start:start + BATCH] if flips is not None else None)
        with policy.autocast():
            feats = trunk(to_model_input(images, data.mean, data.std))
        feats = feats.permute(0, 2, 3, 1)  # NHWC: reading a batch back is a free channels_last NCHW view
        if out is None:
            out = store((len(data), *feats.shape[1:]), feats.dtype)
        out[start:start + len(feats)] = feats
    return out


def build_feature_bank(trunk: nn.Module, train: DeviceData, val: DeviceData, policy: ExecPolicy,
                       aug: AugmentConfig, seed: int, views: int, folder: Path | None) -> FeatureBank:
    """``folder`` None keeps features in memory; otherwise they go to memory-mapped files there."""
    trunk.eval()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)

    def store(name: str):
        def make(shape, dtype):
            if folder is None:
                return torch.empty(shape, dtype=dtype, device=train.images.device)
            path = folder / f"{name}.bin"
            return torch.from_file(str(path), shared=True, size=math.prod(shape), dtype=dtype).view(shape)
        return make

    bank = [encode(trunk, train, policy, store(f"view{v}"), f"caching view {v + 1}/{views}", aug, seed, v)
            for v in range(views)]
    val_feats = encode(trunk, val, policy, store("val"), "caching validation set")
    return FeatureBank(bank, val_feats, folder)


def feature_batches(features: torch.Tensor, labels: torch.Tensor, batch_size: int, gen: torch.Generator,
                    world: World = World()):
    """Shuffled (features NCHW channels_last view, labels) batches; drops the last partial batch."""
    n = len(labels)
    perm = torch.randperm(n, generator=gen, device=gen.device).to(features.device)
    for i in range(n // batch_size):
        idx = world.shard(perm[i * batch_size:(i + 1) * batch_size])
        yield features[idx].permute(0, 3, 1, 2), labels[idx]


@torch.no_grad()
def predict_features(tail: nn.Module, features: torch.Tensor, policy: ExecPolicy,
                     batch_size: int = 500) -> torch.Tensor:
    tail.eval()
    outs = []
    for start in range(0, len(features), batch_size):
        with policy.autocast():
            outs.append(tail(features[start:start + batch_size].permute(0, 3, 1, 2)).float().cpu())
    return torch.cat(outs)
