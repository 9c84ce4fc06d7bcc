"""Image loading and the evaluation resize, in Pillow only.

Shared by the trainer (decoding datasets) and the torch-free runtime, so both feed a model
exactly the same pixels. ``resize_shorter_center_crop`` mirrors torchvision's
``Resize(size)`` + ``CenterCrop(size)`` on PIL images, size arithmetic included.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Iterator

from PIL import ExifTags, Image, UnidentifiedImageError

from .errors import EdgeclsError

INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                  "nearest": Image.Resampling.NEAREST}
# Formats Pillow opens through another format's opener, so they are missing from Image.OPEN: an .mpo file
# (a JPEG with more frames) is opened by the JPEG plugin.
OPENED_AS = {"MPO": "JPEG"}
REASON_CHARS = 300  # a refusal reason is one line of at most this many characters


class UnreadableImage(EdgeclsError):
    """Pillow could not parse or decode one image; the message is a one-line reason for that image alone."""


@contextlib.contextmanager
def pillow_decoding() -> Iterator[None]:
    """Around Pillow's work on an image's bytes (open, header, EXIF, decode): any exception is that image's
    `UnreadableImage`.

    Why every ``Exception`` and not a list: Pillow's plugins raise far more than OSError and ValueError on
    damaged or merely unusual files (EOFError, NotImplementedError for DDS pixel formats it lacks,
    struct.error, IndexError, TypeError, ZeroDivisionError, KeyError, MemoryError), and a list that missed
    one stopped a whole batch. Only calls into Pillow go inside this guard: our own conversions and resize
    math run outside it, so a bug of ours still propagates (and fails a test) instead of becoming a
    "bad image".
    """
    try:
        yield
    except UnreadableImage:
        raise
    except Exception as e:
        raise UnreadableImage(decode_reason(e)) from e


def decode_reason(e: BaseException) -> str:
    """One line saying why an image was refused, for a person reading `infer`'s output or a server response."""
    if isinstance(e, UnidentifiedImageError):
        return "not an image Pillow can read"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    message = " ".join(str(e).split())
    if isinstance(e, Image.DecompressionBombError):
        message = f"refused: {message}"
    elif not isinstance(e, (OSError, ValueError, SyntaxError)) or not message:  # a bare KeyError says only '3'
        message = f"{type(e).__name__}: {message}" if message else type(e).__name__
    return message if len(message) <= REASON_CHARS else message[:REASON_CHARS - 1] + "…"


@lru_cache(maxsize=1)
def image_suffixes() -> frozenset[str]:
    """Every file extension Pillow can open here (its plugins are loaded on first call, ~50 ms).

    ``preinit`` first: `Image.open` tries formats in registration order, and loading every plugin at once
    registers them alphabetically, which puts JPEG 25th, behind three (IM, IMT, IPTC) that have no header
    check and parse every file they are offered: ~80 us more per CIFAR JPEG, a sixth of `infer`'s time.
    """
    Image.preinit()
    Image.init()
    return _openable_suffixes()


@lru_cache(maxsize=1)
def _preinit_suffixes() -> frozenset[str]:
    """The extensions of the formats `Image.preinit` loads (BMP, GIF, JPEG, PPM, PNG)."""
    Image.preinit()
    return _openable_suffixes()


def _openable_suffixes() -> frozenset[str]:
    """The extensions of the formats Pillow has registered so far that it can open (not only save)."""
    return frozenset(ext for ext, fmt in Image.EXTENSION.items() if OPENED_AS.get(fmt, fmt) in Image.OPEN)


def is_image_suffix(suffix: str) -> bool:
    """Whether Pillow opens files with this extension (any case). The common formats answer without
    loading every plugin, which costs ~35 ms of a cold run; anything else asks `image_suffixes`."""
    suffix = suffix.lower()
    return suffix in _preinit_suffixes() or suffix in image_suffixes()


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparent pixels are composited on white.

    Pillow opens lazily, so the pixels of an image fresh from `Image.open` are decoded here, under
    `pillow_decoding`; the conversions after that are ours and stay outside it.
    """
    with pillow_decoding():
        img.load()
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _high_depth_to_rgb(img)
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """Scale 16-bit / int32 / float images by their own range instead of clipping at 255.

    Float images (SPIDER, TIFF, PFM) may hold NaN or infinities: the range is that of the finite values,
    NaN counts as the low end and infinities as the ends they point to.
    """
    import numpy as np

    arr = np.asarray(img.convert("F") if img.mode.startswith("I;16") else img, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
    scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
    gray = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    return gray.convert("RGB")


def open_rgb(path, draft_size: int | None = None) -> Image.Image:
    """Open an image file as upright RGB (EXIF orientation applied, first frame of animations, the composite
    of a layered PSD); `UnreadableImage` for anything Pillow cannot parse or decode."""
    with pillow_decoding():
        img = Image.open(path)
    with img:
        return upright_rgb(img, draft_size)


def upright_rgb(img: Image.Image, draft_size: int | None = None) -> Image.Image:
    """Decode an opened image as upright RGB; apart from `open_rgb`, for callers that look at the header first.

    No seek: `Image.open` leaves every format at its first image already. Seeking to frame 0 raised
    EOFError for a layered PSD (it opens on its composite, numbers its frames from 1 and has no frame 0)
    and for SPIDER (which refuses any seek outside a stack).
    """
    with pillow_decoding():
        if draft_size is not None and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # exif_transpose would copy an upright image
            from PIL import ImageOps  # here: 2 ms of a cold `infer`, and most images are upright

            img = ImageOps.exif_transpose(img)
        img.load()
    return to_rgb(img)


# Large JPEGs are decoded at a reduced DCT scale, but never below this multiple of the model's
# input size: the final antialiased resize then removes the (tiny) difference scaling makes.
DRAFT_MARGIN = 4


def model_pixels(source, size: int, interpolation: str = "bilinear") -> Image.Image:
    """A file (path or binary file object) as the model sees it: decoded upright (JPEG at a draft scale),
    shorter side resized to ``size``, center-cropped. The one decode the trainer's caches and the runtime's
    `infer`/`serve` share, so a photo gives a model the same pixels in training and on the device."""
    return resize_shorter_center_crop(open_rgb(source, draft_size=size * DRAFT_MARGIN), size, interpolation)


def resize_shorter_center_crop(img: Image.Image, size: int, interpolation: str = "bilinear") -> Image.Image:
    """Resize the shorter side to ``size`` (long side truncated as torchvision does), then center-crop."""
    w, h = img.size
    if (w, h) != (size, size):
        if w <= h:
            new_w, new_h = size, int(size * h / w)
        else:
            new_w, new_h = int(size * w / h), size
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), INTERPOLATIONS[interpolation])
        left = int(round((new_w - size) / 2.0))
        top = int(round((new_h - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    return img
