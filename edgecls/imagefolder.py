"""Labelled image folders (``ROOT/<class>/*``), listed and subsampled one way for the trainer and the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .imageops import is_image_suffix


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of ``root``, sorted by name (hidden ones aside)."""
    return sorted(d for d in Path(root).iterdir() if d.is_dir() and not d.name.startswith("."))


def image_files(folder: Path) -> list[Path]:
    """The images of one class folder, sorted by name (the order labels and caches are kept in)."""
    return class_files(folder)[0]


def class_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) of one class folder, each sorted by name. Other files (``.DS_Store``,
    ``Thumbs.db``, notes) are never read, only counted: photo folders hold them, and a run should say so."""
    images, others = [], []
    for p in sorted(Path(folder).iterdir()):
        if p.is_file():
            (images if is_image_suffix(p.suffix) else others).append(p)
    return images, others


def subset_indices(total: int, count: int | None, seed: int) -> np.ndarray | None:
    """A seeded random draw of ``count`` of ``total`` items, kept in their original order; None for all of
    them (``count`` None or not smaller)."""
    if count is None or count >= total:
        return None
    return np.sort(np.random.default_rng(seed).permutation(total)[:count])
