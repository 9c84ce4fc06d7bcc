"""Encoded image bytes → the model's normalized input row, run in the decode thread pool.

Pillow releases the GIL while it decodes, so a few threads keep the event loop free.
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import Executor

import numpy as np
from PIL import Image

from edgecls.runtime.classifier import DECODE_ERRORS, describe_decode_error
from edgecls.runtime.preprocess import decode_opened, normalize, resize_for_model
from edgecls.spec import ModelSpec


class BadImage(ValueError):
    """An upload that is not a usable image; the message is one line for the client."""


def decode_image(data: bytes, spec: ModelSpec) -> np.ndarray:
    """float32 (1, 3, H, W), normalized as the model expects; BadImage for anything unusable.

    The upload is opened once: its header answers the size check, then the same object decodes.
    """
    if not data:
        raise BadImage("empty image (zero bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            refuse_bomb(*img.size)
            pixels = resize_for_model(decode_opened(img, spec.input_size), spec)
    except BadImage:
        raise
    except DECODE_ERRORS as e:
        raise BadImage(describe_decode_error(e)) from None
    return normalize(pixels[None], spec)


def refuse_bomb(width: int, height: int) -> None:
    """Refuse decompression bombs from the header alone, at Pillow's warning limit rather than twice it.

    Pillow only refuses images over 2 x MAX_IMAGE_PIXELS; a server should not decode a 170-megapixel
    PNG that arrived as a few hundred kilobytes.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        raise BadImage(f"refused: {width}x{height} pixels is over the {limit} pixel limit (decompression bomb?)")


async def decode_all(pool: Executor, blobs: list[bytes], spec: ModelSpec) -> list[np.ndarray | BadImage]:
    """Every blob decoded in ``pool`` (side by side when several), a BadImage in place of each unusable one."""
    loop = asyncio.get_running_loop()

    async def one(data: bytes) -> np.ndarray | BadImage:
        try:
            return await loop.run_in_executor(pool, decode_image, data, spec)
        except BadImage as e:
            return e

    if len(blobs) == 1:  # no gather (and its tasks) for the common case
        return [await one(blobs[0])]
    return list(await asyncio.gather(*(one(data) for data in blobs)))
