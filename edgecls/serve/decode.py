"""Encoded image bytes → the model's normalized input row.

An upload is opened (its header read) on the event loop. Small images are decoded right there: for
them a hop to the decode pool (queueing, waking a thread, then fighting the loop for the GIL) costs
more than the decode itself. Larger ones go to the pool, where Pillow releases the GIL while it
decodes, so the loop stays free for other requests. Several images in one request are decoded by the
runtime's `decode_all`, in the pool, after their headers passed here.

Whatever Pillow raises on an upload's bytes is that upload's `BadImage` (a 4xx), never a 500: the
runtime's `pillow_decoding` guard turns it into an `UnreadableImage` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from concurrent.futures import Executor

import numpy as np
from PIL import Image

from edgecls.imageops import pillow_decoding
from edgecls.runtime.classifier import DECODE_ERRORS, Failure
from edgecls.runtime.classifier import decode_all
from edgecls.runtime.preprocess import decode_opened, normalize, resize_for_model
from edgecls.spec import ModelSpec

# Images up to this many pixels decode on the event loop. A 32x32 PNG costs ~90-110 us of CPU decoded
# there; through the pool, under 32 concurrent clients, its two threads took ~260 us per request.
INLINE_PIXELS = 128 * 128


class BadImage(ValueError):
    """An upload that is not a usable image; the message is one line for the client."""


@contextlib.contextmanager
def _as_bad_image():
    try:
        yield
    except BadImage:
        raise
    except DECODE_ERRORS as e:
        raise BadImage(str(e)) from None


def open_upload(data: bytes) -> Image.Image:
    """The upload opened, its header read and its size checked; nothing decoded yet. BadImage if unusable."""
    if not data:
        raise BadImage("empty image (zero bytes)")
    with _as_bad_image(), pillow_decoding():
        img = Image.open(io.BytesIO(data))
    refuse_bomb(*img.size)
    return img


def decode_upload(img: Image.Image, spec: ModelSpec) -> np.ndarray:
    """float32 (1, 3, H, W) from an opened upload, normalized as the model expects; BadImage if unusable."""
    with img, _as_bad_image():
        pixels = resize_for_model(decode_opened(img, spec.input_size), spec)
    return normalize(pixels[None], spec)


def decodes_inline(img: Image.Image) -> bool:
    width, height = img.size
    return width * height <= INLINE_PIXELS


def refuse_bomb(width: int, height: int) -> None:
    """Refuse decompression bombs from the header alone, at Pillow's warning limit rather than twice it.

    Pillow only refuses images over 2 x MAX_IMAGE_PIXELS; a server should not decode a 170-megapixel
    PNG that arrived as a few hundred kilobytes.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        raise BadImage(f"refused: {width}x{height} pixels is over the {limit} pixel limit (decompression bomb?)")


async def decode_uploads(pool: Executor, blobs: list[bytes], spec: ModelSpec) -> list[np.ndarray | BadImage]:
    """Several uploads: each one's header checked here (empty, not an image, a bomb), then the rest decoded
    by the runtime's `decode_all` in one trip to ``pool``; a normalized row, or a BadImage, per upload."""
    checked: list[bytes | BadImage] = []
    for data in blobs:
        try:
            open_upload(data).close()
            checked.append(data)
        except BadImage as e:
            checked.append(e)
    usable = [c for c in checked if not isinstance(c, BadImage)]
    rows = await asyncio.get_running_loop().run_in_executor(pool, _decode_rows, usable, spec) if usable else []
    decoded = iter(rows)
    return [c if isinstance(c, BadImage) else next(decoded) for c in checked]


def _decode_rows(blobs: list[bytes], spec: ModelSpec) -> list[np.ndarray | BadImage]:
    return [BadImage(r.error) if isinstance(r, Failure) else normalize(r[None], spec) for r in decode_all(blobs, spec)]
