"""CIFAR-10 through torchvision's own downloader, for users who have the internet."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np

from edgecls.errors import EdgeclsError

from .types import DataSplits, ImageSet


def load_cifar10(data_dir: Path, need_train: bool = True) -> DataSplits:
    """Download (once) into ``data_dir`` and return both splits; offline gives one clear error."""
    from torchvision.datasets import CIFAR10

    data_dir = Path(data_dir).expanduser()
    try:
        test = CIFAR10(str(data_dir), train=False, download=True)
        train = CIFAR10(str(data_dir), train=True, download=True) if need_train else None
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        raise EdgeclsError(
            f"CIFAR-10 is not in {data_dir} and could not be downloaded ({type(e).__name__}: {e}). "
            f"Put cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/) in {data_dir}, "
            "pass --data-dir to where it is, or pass --data PATH to an image folder with train/ and test/."
        ) from None
    return DataSplits(_to_imageset(train) if train is not None else None, _to_imageset(test),
                      source=f"cifar10:{data_dir}")


def _to_imageset(ds) -> ImageSet:
    return ImageSet(np.ascontiguousarray(ds.data), np.asarray(ds.targets, dtype=np.int64), tuple(ds.classes))
