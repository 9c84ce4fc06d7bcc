"""Datasets decoded once into uint8 arrays; see ``load_data``."""

from __future__ import annotations

from pathlib import Path

from .types import DataSplits, ImageSet


def default_cache_dir() -> Path:
    from edgecls.host import user_cache_dir

    return user_cache_dir()


def load_data(data: str, size: int, data_dir: Path | None = None, cache_dir: Path | None = None,
              need_train: bool = True) -> DataSplits:
    """``data`` is ``cifar10`` (torchvision download) or a path to an image folder.

    With ``need_train=False`` only the test split is read (``train`` is None).
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "decoded"
    if data == "cifar10":
        from .cifar import load_cifar10

        splits = load_cifar10(Path(data_dir) if data_dir else default_cache_dir() / "cifar10", need_train)
        if size != 32:
            splits = _resize_splits(splits, size)
        return splits
    from .folder import load_image_folder

    return load_image_folder(data, size, cache_dir, need_train)


def _resize_splits(splits: DataSplits, size: int) -> DataSplits:
    import numpy as np
    from PIL import Image

    from edgecls.imageops import resize_shorter_center_crop

    def resize(s: ImageSet | None) -> ImageSet | None:
        if s is None:
            return None
        imgs = np.stack([np.asarray(resize_shorter_center_crop(Image.fromarray(a), size)) for a in s.images])
        return ImageSet(imgs, s.labels, s.classes)

    return DataSplits(resize(splits.train), resize(splits.test), splits.source)


__all__ = ["DataSplits", "ImageSet", "default_cache_dir", "load_data"]
