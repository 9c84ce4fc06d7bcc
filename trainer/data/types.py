"""In-memory decoded datasets: uint8 NHWC arrays plus labels and class names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecls.imagefolder import subset_indices
from edgecls.splits import SplitRecord


ROWS_PER_COPY = 1024


def take_rows(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``images[rows]``; for a memory-mapped cache, a mapped file of its own beside it, copied in chunks so
    memory never holds the rows (`edgecls.trainer.data.folder.MEMORY_SHARE`)."""
    if not isinstance(images, np.memmap) or images.filename is None:
        return images[rows]
    rows = np.asarray(rows, dtype=np.int64)
    source = Path(images.filename)
    key = hashlib.sha256(rows.tobytes() + source.name.encode()).hexdigest()[:16]
    path = source.with_name(f"rows-{key}.npy")
    if not path.is_file():
        tmp = path.with_name(path.name + ".partial")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=images.dtype, shape=(len(rows), *images.shape[1:]))
        for start in range(0, len(rows), ROWS_PER_COPY):
            out[start:start + ROWS_PER_COPY] = images[rows[start:start + ROWS_PER_COPY]]
        out.flush()
        del out
        tmp.rename(path)
    return np.load(path, mmap_mode="c")


@dataclass
class ImageSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    classes: tuple[str, ...]
    files: tuple[Path, ...] | None = None  # the encoded source files, where the data came from files
    keys: tuple[str, ...] | None = None  # each image's name in the split record
    digests: tuple[str, ...] | None = None  # sha256 of each image's source bytes

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> "ImageSet":
        def pick(values):
            return tuple(values[i] for i in idx) if values is not None else None

        return ImageSet(take_rows(self.images, idx), self.labels[idx], self.classes, pick(self.files),
                        pick(self.keys), pick(self.digests))

    def subset(self, count: int | None, seed: int) -> "ImageSet":
        """A seeded random subset in the original order (all of it when ``count`` is None or not smaller)."""
        idx = subset_indices(len(self), count, seed)
        return self if idx is None else self.take(idx)


@dataclass
class DataSplits:
    """A run's splits: ``train`` to learn from, ``val`` to select on, ``test`` to score once. A split
    that was not asked for is None."""

    train: ImageSet | None
    val: ImageSet | None
    test: ImageSet | None
    source: str
    record: SplitRecord | None = None
    info: dict = field(default_factory=dict)  # what the data looked like: sizes, skipped files

    @property
    def classes(self) -> tuple[str, ...]:
        return next(s.classes for s in (self.train, self.val, self.test) if s is not None)

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
