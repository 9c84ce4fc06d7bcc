"""Numpy/Pillow twin of the trainer's evaluation transform (proven equal by tests).

resize (shorter side) → center crop → /255 → (x - mean) / std → NCHW float32.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from typing import Union

import numpy as np
from PIL import Image

from edgecls.errors import EdgeclsError
from edgecls.imageops import DRAFT_MARGIN, open_rgb, resize_shorter_center_crop, to_rgb, upright_rgb
from edgecls.spec import SHORTER_SIDE_CENTER_CROP, ModelSpec

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


def load_rgb(item: ImageInput, size: int) -> Image.Image:
    """Any supported input (a path, encoded bytes, a Pillow image, an array) as an upright RGB Pillow image."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return open_rgb(io.BytesIO(item), draft_size=size * DRAFT_MARGIN)
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if isinstance(item, np.ndarray):
        return _array_to_rgb(item)
    return open_rgb(os.fspath(item), draft_size=size * DRAFT_MARGIN)  # a str: a Path per file costs ~5 us


def decode_opened(img: Image.Image, size: int) -> Image.Image:
    """An image already opened (its header read) decoded as `load_rgb` decodes a file or bytes."""
    return upright_rgb(img, draft_size=size * DRAFT_MARGIN)


def _array_to_rgb(arr: np.ndarray) -> Image.Image:
    if arr.dtype != np.uint8:
        raise EdgeclsError(f"image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
        return to_rgb(Image.fromarray(arr.squeeze(2) if arr.ndim == 3 and arr.shape[2] == 1 else arr))
    raise EdgeclsError(f"image arrays must be HxW, HxWx1, HxWx3 or HxWx4, got shape {arr.shape}")


def resize_for_model(img: Image.Image, spec: ModelSpec) -> np.ndarray:
    """uint8 HxWx3 at the model's input size, using the spec's resize policy."""
    if spec.resize != SHORTER_SIDE_CENTER_CROP:
        raise EdgeclsError(f"unsupported resize policy {spec.resize!r} in the model's metadata")
    return np.asarray(resize_shorter_center_crop(img, spec.input_size, spec.interpolation), dtype=np.uint8)


def normalize(batch: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 NHWC → float32 NCHW, normalized like the trainer (same op order, float32 throughout).

    Writes straight into the NCHW output: half the time of convert-then-transpose, same bits.
    """
    mean, std = _channel_constants(spec.mean, spec.std)
    x = np.empty((batch.shape[0], 3, batch.shape[1], batch.shape[2]), dtype=np.float32)
    np.divide(batch.transpose(0, 3, 1, 2), np.float32(255.0), out=x, dtype=np.float32)
    x -= mean
    x /= std
    return x


@lru_cache(maxsize=8)
def _channel_constants(mean: tuple, std: tuple) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(mean, dtype=np.float32)[:, None, None], np.asarray(std, dtype=np.float32)[:, None, None])
