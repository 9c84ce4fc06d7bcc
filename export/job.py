"""What every builder needs for one export, gathered once by the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from edgecls.spec import ModelSpec

MAX_BATCH = 65536


@dataclass
class Calibration:
    """Training-split images, already normalized to float32 NCHW; ``val_*``: the validation images the INT8
    ladder measures its drop on (None when the data has no validation split)."""

    images: np.ndarray
    seed: int
    source: str
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    draw: Callable[[int], np.ndarray] | None = None  # a larger seeded draw of the same split (a superset)


@dataclass
class ExportJob:
    model: nn.Module  # eval mode, CPU, FP32
    spec: ModelSpec
    metadata: dict[str, str]  # see export.metadata.model_metadata
    workdir: Path  # the staging folder; files move to --out only when everything succeeded
    stem: str
    dynamic_batch: bool
    opset: int
    calibration: Calibration | None = None
    max_drop: float | None = None  # accuracy points for every INT8 row (export.int8_ladder)
    built: dict[str, Path] = field(default_factory=dict)  # format name → model file, in build order
    ladders: dict[str, dict] = field(default_factory=dict)  # INT8 format name → its climb (export.int8_ladder)
    log: Callable[[str], None] = print

    @property
    def example_batch(self) -> int:
        """Trace/export with 2 images when the batch is dynamic: a batch-1 trace can silently fix it."""
        return 2 if self.dynamic_batch else 1

    def example_input(self) -> torch.Tensor:
        size = self.spec.input_size
        return torch.randn(self.example_batch, 3, size, size, generator=torch.Generator().manual_seed(0))

    def dynamic_shapes(self):
        """``torch.export``-style spec for the single input: a named, open batch axis (or None)."""
        return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},) if self.dynamic_batch else None

    def path(self, suffix: str) -> Path:
        return self.workdir / f"{self.stem}{suffix}"
