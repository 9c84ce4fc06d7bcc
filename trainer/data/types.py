"""In-memory decoded datasets: uint8 NHWC arrays plus labels and class names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecls.imagefolder import subset_indices


@dataclass
class ImageSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    classes: tuple[str, ...]
    files: tuple[Path, ...] | None = None  # the encoded source files, where the data came from files

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, count: int | None, seed: int) -> "ImageSet":
        """A seeded random subset in the original order (all of it when ``count`` is None or not smaller)."""
        idx = subset_indices(len(self), count, seed)
        if idx is None:
            return self
        files = tuple(self.files[i] for i in idx) if self.files is not None else None
        return ImageSet(self.images[idx], self.labels[idx], self.classes, files)


@dataclass
class DataSplits:
    train: ImageSet | None  # None when only the test split was asked for
    test: ImageSet
    source: str

    @property
    def classes(self) -> tuple[str, ...]:
        return self.test.classes

    def require_classes(self, expected) -> None:
        """A model can only be scored on data with its own class list, in its own order."""
        if tuple(self.classes) != tuple(expected):
            from edgecls.errors import EdgeclsError

            raise EdgeclsError(f"the classes of {self.source} {list(self.classes)} differ from the model's "
                               f"{list(expected)}")

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean/std of the training images in [0, 1]; becomes the model's normalization."""
        flat = self.train.images.reshape(-1, 3)
        step = max(1, len(flat) // 4_000_000)  # a strided sample is exact enough and bounded in cost
        sample = flat[::step].astype(np.float64) / 255.0
        return tuple(sample.mean(0).round(4).tolist()), tuple(sample.std(0).round(4).tolist())
