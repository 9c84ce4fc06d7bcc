"""Numpy/Pillow twin of the trainer's evaluation transform (proven equal by tests).

resize (shorter side) → center crop → /255 → (x - mean) / std → NCHW float32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from edgecls.errors import EdgeclsError
from edgecls.imageops import open_rgb, resize_shorter_center_crop, to_rgb
from edgecls.spec import ModelSpec

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]

# Large JPEGs are decoded at a reduced DCT scale, but never below this multiple of the model's
# input size: the final antialiased resize then removes the (tiny) difference scaling makes.
DRAFT_MARGIN = 4


def load_rgb(item: ImageInput, size: int) -> Image.Image:
    """Any supported input as an upright RGB Pillow image."""
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if isinstance(item, np.ndarray):
        return _array_to_rgb(item)
    path = Path(item)
    return open_rgb(path, draft_size=size * DRAFT_MARGIN)


def _array_to_rgb(arr: np.ndarray) -> Image.Image:
    if arr.dtype != np.uint8:
        raise EdgeclsError(f"image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
        return to_rgb(Image.fromarray(arr.squeeze(2) if arr.ndim == 3 and arr.shape[2] == 1 else arr))
    raise EdgeclsError(f"image arrays must be HxW, HxWx1, HxWx3 or HxWx4, got shape {arr.shape}")


def resize_for_model(img: Image.Image, spec: ModelSpec) -> np.ndarray:
    """uint8 HxWx3 at the model's input size, using the spec's resize policy."""
    if spec.resize != "shorter-side-center-crop":
        raise EdgeclsError(f"unsupported resize policy {spec.resize!r} in the model's metadata")
    return np.asarray(resize_shorter_center_crop(img, spec.input_size, spec.interpolation), dtype=np.uint8)


def normalize(batch: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 NHWC → float32 NCHW, normalized like the trainer (same op order, float32 throughout)."""
    x = batch.astype(np.float32) / np.float32(255.0)
    x -= np.asarray(spec.mean, dtype=np.float32)
    x /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
