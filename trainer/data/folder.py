"""Image-folder datasets (``ROOT/{train,test}/<class>/*``), decoded once into a uint8 cache."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from edgecls.atomic import atomic_path
from edgecls.errors import EdgeclsError
from edgecls.host import usable_cores
from edgecls.imagefolder import class_folders, image_files
from edgecls.imageops import UnreadableImage, open_rgb, resize_shorter_center_crop

from .types import DataSplits, ImageSet

CACHE_FORMAT = 1


def scan_split(split_dir: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """List image files by class; classes are the sorted sub-folder names."""
    if not split_dir.is_dir():
        raise EdgeclsError(f"missing folder {split_dir} (expected <data>/train/<class>/* and <data>/test/<class>/*)")
    classes = tuple(d.name for d in class_folders(split_dir))
    if not classes:
        raise EdgeclsError(f"no class folders in {split_dir}")
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = image_files(split_dir / name)
        if not found:
            raise EdgeclsError(f"class folder {split_dir / name} has no images")
        files += found
        labels += [index] * len(found)
    return files, labels, classes


def fingerprint(files: list[Path], root: Path, size: int) -> str:
    """Changes whenever a file is added, removed, renamed or rewritten."""
    h = hashlib.sha256(f"edgecls-cache-v{CACHE_FORMAT}:{size}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def decode_one(args: tuple[str, int]) -> np.ndarray:
    path, size = args
    try:
        img = resize_shorter_center_crop(open_rgb(path), size)
    except UnreadableImage as e:  # whatever Pillow raised on this file; a bug of ours propagates
        raise EdgeclsError(f"cannot decode image {path}: {e}") from None
    return np.asarray(img, dtype=np.uint8)


def decode_files(files: list[Path], size: int, desc: str) -> np.ndarray:
    """Decode in worker processes: JPEG decoding is the only slow part and it parallelises."""
    from edgecls.progress import track

    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    jobs = [(str(p), size) for p in files]
    workers = min(usable_cores(), 8)
    if len(files) < 2000 or workers < 2:
        for i, arr in enumerate(track(map(decode_one, jobs), total=len(files), desc=desc)):
            out[i] = arr
        return out
    with ProcessPoolExecutor(workers) as pool:
        try:
            for i, arr in enumerate(track(pool.map(decode_one, jobs, chunksize=256), total=len(files), desc=desc)):
                out[i] = arr
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return out


def load_split(root: Path, split: str, size: int, cache_dir: Path) -> ImageSet:
    files, labels, classes = scan_split(root / split)
    key = fingerprint(files, root, size)
    cache_file = cache_dir / f"{key}.npz"
    if cache_file.exists():
        with np.load(cache_file) as z:
            return ImageSet(z["images"], z["labels"], tuple(json.loads(str(z["classes"]))), tuple(files))
    images = decode_files(files, size, desc=f"decoding {split} ({len(files)} images)")
    data = ImageSet(images, np.asarray(labels, dtype=np.int64), classes, tuple(files))
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache_file) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, images=data.images, labels=data.labels, classes=json.dumps(list(classes)))
    return data


def load_image_folder(root: str | os.PathLike, size: int, cache_dir: Path, need_train: bool = True) -> DataSplits:
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise EdgeclsError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise EdgeclsError(f"--data {root} is not a folder")
    test = load_split(root, "test", size, cache_dir)
    if not need_train:
        return DataSplits(None, test, source=str(root))
    train = load_split(root, "train", size, cache_dir)
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_test = sorted(set(test.classes) - set(train.classes))
        raise EdgeclsError(f"train and test class folders differ (only in train: {only_train}, only in test: {only_test})")
    return DataSplits(train, test, source=str(root))
