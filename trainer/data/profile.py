"""What kind of images a dataset holds, read from a sample of file headers before anything is decoded.

Torch-free: the CLI asks it to pick a recipe's photo or thumbnail settings (input size, crop, epochs)
before the trainer starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecls.imagefolder import class_files, class_folders

# Images whose median shorter side is at least this many pixels are photos: random-resized crops and a
# larger input suit them. CIFAR's 32-pixel thumbnails (and anything up to 63 px) keep pad-and-crop.
PHOTO_MIN_SIDE = 64
HEADERS_READ = 200  # a seeded sample: the median of 200 shorter sides is stable, and costs ~20 ms


@dataclass(frozen=True)
class DataProfile:
    kind: str  # "photo" or "thumbnail"
    median_shorter_side: int


def profile_data(data: str, seed: int = 0) -> DataProfile:
    if data == "cifar10":
        return DataProfile("thumbnail", 32)
    root = Path(data).expanduser()
    folder = root / "train" if (root / "train").is_dir() else root
    if not folder.is_dir():
        return DataProfile("thumbnail", 0)  # load_data gives the clear error
    files = [f for d in class_folders(folder) for f in class_files(d)[0]]
    pick = np.random.default_rng(seed).permutation(len(files))[:HEADERS_READ]
    sides = [side for side in (_shorter_side(files[i]) for i in pick) if side]
    median = int(np.median(sides)) if sides else 0
    return DataProfile("photo" if median >= PHOTO_MIN_SIDE else "thumbnail", median)


def _shorter_side(path: Path) -> int:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return min(img.size)
    except Exception:  # junk is counted when the folder is decoded; here it only leaves the sample
        return 0


def crop_for(profile: DataProfile) -> str:
    """Random-resized crops for photos; pad-and-crop for thumbnails, where a few pixels of shift is the
    augmentation that works (airbench, the CIFAR ResNets)."""
    return "resized" if profile.kind == "photo" else "pad"
