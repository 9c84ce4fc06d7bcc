"""Images for calibration (training split), --max-drop (validation split) and the parity check and golden
vectors (test split): the run's own splits, as its split record lists them.

All come through the trainer's ``load_data`` at the checkpoint's input size and are normalized
with the trainer's own ``to_model_input``, so every engine and PyTorch see identical tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgecls.errors import EdgeclsError
from edgecls.spec import ModelSpec
from edgecls.trainer.augment import to_model_input
from edgecls.trainer.data import DEFAULT_PLAN, ImageSet, SplitPlan, load_data

from .job import Calibration

VALIDATION_IMAGES = 1000  # the INT8 ladder's accuracy estimate: 1 image = 0.1 points


@dataclass
class CheckSet:
    images: np.ndarray  # float32 NCHW, normalized
    labels: np.ndarray
    source: str


def normalize(images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    x = to_model_input(torch.from_numpy(images), torch.tensor(spec.mean), torch.tensor(spec.std))
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


def _split(data: str, spec: ModelSpec, split: str, data_dir: str | None, cache_dir: str | None,
           plan: SplitPlan) -> ImageSet:
    splits = load_data(data, spec.input_size, data_dir, cache_dir, plan, need=(split,))
    splits.require_classes(spec.classes)
    return getattr(splits, split)


def load_check_set(data: str, spec: ModelSpec, count: int, seed: int, data_dir: str | None, cache_dir: str | None,
                   plan: SplitPlan = DEFAULT_PLAN) -> CheckSet:
    test = _split(data, spec, "test", data_dir, cache_dir, plan).subset(count, seed)
    return CheckSet(normalize(test.images, spec), test.labels, f"{data} test split")


def golden_images(data: str, spec: ModelSpec, count: int, seed: int, data_dir: str | None, cache_dir: str | None,
                  plan: SplitPlan = DEFAULT_PLAN) -> ImageSet:
    """A seeded draw of test images, uint8, with their source files where the data has files."""
    return _split(data, spec, "test", data_dir, cache_dir, plan).subset(count, seed)


def load_calibration(data: str, spec: ModelSpec, count: int, seed: int, require_validation: bool,
                     data_dir: str | None, cache_dir: str | None, plan: SplitPlan = DEFAULT_PLAN) -> Calibration:
    """A seeded random draw of training images, and the validation images the INT8 ladder measures its drop
    on: the split the run selected on, never test. Without validation images the ladder is not climbed, which
    is an error only when a drop was asked for (``require_validation``, --max-drop)."""
    train = _split(data, spec, "train", data_dir, cache_dir, plan)
    result = Calibration(normalize(train.subset(count, seed).images, spec), seed, f"{data} train split",
                         draw=lambda n: normalize(train.subset(n, seed).images, spec))
    val = _split(data, spec, "val", data_dir, cache_dir, plan)
    val = val.subset(VALIDATION_IMAGES, seed) if val is not None else None
    if val is not None and len(val):
        result.val_images, result.val_labels = normalize(val.images, spec), val.labels
    elif require_validation:
        raise EdgeclsError(f"--max-drop needs validation images, and {data} has none")
    return result
