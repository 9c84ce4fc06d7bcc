"""A confusion matrix as a PNG, drawn with Pillow alone (the base install has no matplotlib).

Cells are shaded by their share of the true class's images (row-normalized, so every class's
recall reads the same however many images it has) and print the raw count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgecls.atomic import atomic_path

FONT_SIZE = 13
PAD = 8
WHITE, INK, DARK = (255, 255, 255), (20, 20, 20), (8, 48, 107)  # DARK: the colour of a full row


def _font(size: int = FONT_SIZE):
    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _shade(share: float) -> tuple[int, int, int]:
    return tuple(int(round(w + (d - w) * share)) for w, d in zip(WHITE, DARK))


def _text_size(font, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return int(right - left), int(bottom - top)


def _centred(draw, x: float, y: float, text: str, font, fill, align: str = "centre") -> None:
    """Text centred vertically on y and horizontally on x ("centre") or ending at x ("right")."""
    left, top, right, bottom = font.getbbox(text)
    start = x - (right - left) if align == "right" else x - (right - left) / 2
    draw.text((start - left, y - (top + bottom) / 2), text, fill=fill, font=font)


def _vertical_label(text: str, font) -> Image.Image:
    w, h = _text_size(font, text)
    img = Image.new("RGB", (w + 4, h + 6), WHITE)
    _centred(ImageDraw.Draw(img), img.width / 2, img.height / 2, text, font, INK)
    return img.rotate(90, expand=True)


def render_confusion(confusion, classes, title: str = "") -> Image.Image:
    """Rows are true classes, columns predicted; ``title`` goes above, with the accuracy appended."""
    cm = np.asarray(confusion, dtype=np.int64)
    font, bold = _font(), _font(FONT_SIZE + 2)
    cell = max(34, _text_size(font, str(cm.max()))[0] + 2 * PAD)
    label_w = max(_text_size(font, c)[0] for c in classes) + 2 * PAD
    label_h = label_w  # the column labels are the same words, turned upright
    head = 2 * (FONT_SIZE + 2) + 3 * PAD
    k = len(classes)
    width, height = label_w + k * cell + 2 * PAD + FONT_SIZE, head + label_h + k * cell + PAD + FONT_SIZE + PAD
    img = Image.new("RGB", (max(width, _text_size(bold, title)[0] + 2 * PAD), height), WHITE)
    draw = ImageDraw.Draw(img)
    accuracy = np.trace(cm) / max(1, cm.sum())
    draw.text((PAD, PAD), f"{title}accuracy {accuracy:.2%} on {cm.sum()} images", fill=INK, font=bold)
    draw.text((PAD, PAD + FONT_SIZE + 6), "rows: true class · columns: predicted", fill=INK, font=font)
    x0, y0 = label_w, head + label_h
    rows = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    for i, name in enumerate(classes):
        _centred(draw, label_w - PAD, y0 + i * cell + cell / 2, name, font, INK, align="right")
        upright = _vertical_label(name, font)
        img.paste(upright, (x0 + i * cell + (cell - upright.width) // 2, y0 - PAD // 2 - upright.height))
        for j in range(k):
            box = (x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell, y0 + (i + 1) * cell)
            draw.rectangle(box, fill=_shade(shares[i, j]), outline=(200, 200, 200))
            _centred(draw, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, str(cm[i, j]), font,
                     WHITE if shares[i, j] > 0.5 else INK)
    return img


def write_confusion_png(confusion, classes, path: Path, title: str = "") -> None:
    with atomic_path(path) as tmp:
        render_confusion(confusion, classes, title).save(tmp, format="PNG")
