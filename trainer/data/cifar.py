"""CIFAR-10 through torchvision's own downloader, for users who have the internet."""

from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

import numpy as np

from edgecls.errors import EdgeclsError

from .types import ImageSet


def cifar10_pools(data_dir: Path, size: int, need: tuple[str, ...]) -> dict[str, ImageSet]:
    """torchvision's train and test sets (train only when a split drawn from it is needed), resized to
    ``size`` the way image folders are."""
    from torchvision.datasets import CIFAR10

    data_dir = Path(data_dir).expanduser()
    wanted = ["test"] + (["train"] if {"train", "val"} & set(need) else [])
    try:
        raw = {name: CIFAR10(str(data_dir), train=name == "train", download=True) for name in wanted}
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        raise EdgeclsError(
            f"CIFAR-10 is not in {data_dir} and could not be downloaded ({type(e).__name__}: {e}). "
            f"Put cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/) in {data_dir}, "
            "pass --data-dir to where it is, or pass --data PATH to an image folder."
        ) from None
    return {name: _to_imageset(name, ds, size) for name, ds in raw.items()}


def _to_imageset(name: str, ds, size: int) -> ImageSet:
    """Keys ``train/<index>`` in torchvision's order; each image's digest is that of its raw pixels."""
    images = np.ascontiguousarray(ds.data)
    if size != images.shape[1]:
        images = _resized(images, size)
    return ImageSet(images, np.asarray(ds.targets, dtype=np.int64), tuple(ds.classes),
                    keys=tuple(f"{name}/{i}" for i in range(len(images))),
                    digests=tuple(hashlib.sha256(row.tobytes()).hexdigest() for row in ds.data))


def _resized(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    from edgecls.imageops import resize_shorter_center_crop

    return np.stack([np.asarray(resize_shorter_center_crop(Image.fromarray(a), size)) for a in images])
