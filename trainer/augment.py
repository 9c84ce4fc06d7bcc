"""Batched augmentation on uint8 NHWC tensors, on whatever device holds the data.

A whole batch is cropped, flipped and cut out with a few tensor ops, so an epoch is never
bound by per-sample Python transforms (airbench's approach).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentConfig


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and take one random crop of the original size per image."""
    if padding <= 0:
        return x
    n, h, w, _ = x.shape
    padded = F.pad(x, (0, 0, padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None], rows, cols]


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """Per image, a random box of ``scale`` of its area and an aspect ratio in [3/4, 4/3] (log-uniform),
    resized back to the full size bilinearly: torchvision's RandomResizedCrop for a whole batch in one
    ``grid_sample``. For photos decoded at the input size, where a 4-pixel pad-crop is a shift of a few
    per cent and teaches little."""
    n, h, w, _ = x.shape
    area = torch.empty(n, device=gen.device).uniform_(*scale, generator=gen)
    log_ratio = torch.empty(n, device=gen.device).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)
    ratio = log_ratio.exp()
    bw = (area * ratio).sqrt().clamp(max=1.0)  # box width and height as fractions of the image's
    bh = (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=gen, device=gen.device) * 2 - 1) * (1 - bw)  # centre, in [-1, 1] coordinates
    cy = (torch.rand(n, generator=gen, device=gen.device) * 2 - 1) * (1 - bh)
    theta = torch.zeros(n, 2, 3, device=gen.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = bw, cx, bh, cy
    theta = theta.to(x.device)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    out = F.grid_sample(x.permute(0, 3, 1, 2).float(), grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def epoch_flips(n: int, mode: str, seed: int, epoch: int, gen: torch.Generator) -> torch.Tensor | None:
    """Which of the ``n`` training images to mirror this epoch.

    ``alternate`` (airbench's derandomised flip): a seeded random half in odd epochs, the other
    half in even ones, so every image is seen both ways every two epochs. ``random``: a fresh
    coin per image and epoch. ``none``: no flips.
    """
    if mode == "none":
        return None
    if mode == "random":
        return torch.rand(n, generator=gen, device=gen.device) < 0.5
    if mode == "alternate":
        base = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5
        return (base ^ bool(epoch % 2 == 0)).to(gen.device)
    raise ValueError(f"flip mode must be alternate, random or none, got {mode!r}")


def apply_flips(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    return torch.where(flips.to(x.device)[:, None, None, None], x.flip(2), x)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero one ``size``×``size`` square per image (centre uniform, clipped at borders)."""
    n, h, w, _ = x.shape
    cy = torch.randint(0, h, (n,), generator=gen, device=gen.device).to(x.device)
    cx = torch.randint(0, w, (n,), generator=gen, device=gen.device).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= (cy - size // 2)[:, None]) & (ys < (cy - size // 2 + size)[:, None])
    in_x = (xs >= (cx - size // 2)[:, None]) & (xs < (cx - size // 2 + size)[:, None])
    mask = in_y[:, :, None] & in_x[:, None, :]
    return x.masked_fill(mask[..., None], 0)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator,
                  flips: torch.Tensor | None) -> torch.Tensor:
    """``flips`` is this batch's slice of :func:`epoch_flips` (None: no flipping)."""
    if cfg.crop == "resized":
        x = random_resized_crop(x, (cfg.min_scale, 1.0), gen)
    else:
        x = random_crop(x, cfg.crop_padding, gen)
    if flips is not None:
        x = apply_flips(x, flips)
    if cfg.cutout > 0:
        x = cutout(x, cfg.cutout, gen)
    return x


def to_model_input(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC → normalized float NCHW in channels_last memory (a free permute)."""
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    return x.sub_(mean[:, None, None]).div_(std[:, None, None])
