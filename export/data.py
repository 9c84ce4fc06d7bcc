"""Images for calibration (training split) and the parity check (held-out test split).

Both come through the trainer's ``load_data`` at the checkpoint's input size and are normalized
with the trainer's own ``to_model_input``, so every engine and PyTorch see identical tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgecls.errors import EdgeclsError
from edgecls.spec import ModelSpec
from edgecls.trainer.augment import to_model_input
from edgecls.trainer.data import ImageSet, load_data

from .job import Calibration

VALIDATION_IMAGES = 1000  # --max-drop's accuracy estimate: 1 image = 0.1 points


@dataclass
class CheckSet:
    images: np.ndarray  # float32 NCHW, normalized
    labels: np.ndarray
    source: str


def normalize(images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    x = to_model_input(torch.from_numpy(images), torch.tensor(spec.mean), torch.tensor(spec.std))
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


def _split(data: str, spec: ModelSpec, split: str, data_dir: str | None, cache_dir: str | None) -> ImageSet:
    splits = load_data(data, spec.input_size, data_dir, cache_dir, need_train=split == "train")
    splits.require_classes(spec.classes)
    return splits.train if split == "train" else splits.test


def load_check_set(data: str, spec: ModelSpec, count: int, seed: int, data_dir: str | None,
                   cache_dir: str | None) -> CheckSet:
    test = _split(data, spec, "test", data_dir, cache_dir).subset(count, seed)
    return CheckSet(normalize(test.images, spec), test.labels, f"{data} test split")


def golden_images(data: str, spec: ModelSpec, count: int, seed: int, data_dir: str | None,
                  cache_dir: str | None) -> ImageSet:
    """A seeded draw of test images, uint8, with their source files where the data has files."""
    return _split(data, spec, "test", data_dir, cache_dir).subset(count, seed)


def load_calibration(data: str, spec: ModelSpec, count: int, seed: int, with_validation: bool,
                     data_dir: str | None, cache_dir: str | None) -> Calibration:
    """A seeded random draw; the --max-drop validation slice is disjoint from the calibration images."""
    train = _split(data, spec, "train", data_dir, cache_dir)
    order = np.random.default_rng(seed).permutation(len(train))
    calib = np.sort(order[:count])
    result = Calibration(normalize(train.images[calib], spec), seed, f"{data} train split")
    if with_validation:
        val = np.sort(order[count:count + VALIDATION_IMAGES])
        if len(val) == 0:
            raise EdgeclsError(f"--max-drop needs training images beyond the {count} used for calibration")
        result.val_images, result.val_labels = normalize(train.images[val], spec), train.labels[val]
    return result
