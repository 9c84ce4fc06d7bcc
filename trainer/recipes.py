"""Each model's default recipe: the settings `edgecls train --model M` uses for flags not given.

Torch-free, like config.py. Models without an entry take :class:`TrainConfig`'s defaults (the
classic ResNet recipe). The airbench recipe follows airbench94, converted from its summed loss
to our mean loss: lr 11.5 / (1024·(1 + 1/(1−0.85))) per summed example × 1024 = 1.5, and a
per-step decay of lr·wd = 0.0153·1024 / 7851 ≈ 2.0e-3, i.e. weight decay 1.33e-3 at lr 1.5. We run it at
batch 512 and lr 0.75: the same step per example and, with twice the steps, the same decay per epoch.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

from .config import OPTIMIZER_DEFAULTS, AugmentConfig, TrainConfig
from .data.profile import DataProfile, crop_for

DEFAULT_MODEL = "airbench"  # wins time-to-accuracy on a CPU: benchmarks/results/time-to-accuracy-*.csv

RECIPES: dict[str, dict] = {
    "airbench": {
        # Batch 512, not airbench's 1024: 1.26x the img/s on AVX2 kernels (fp32, ~415 vs ~330 in full runs)
        # at the same accuracy (benchmarks/results/time-to-accuracy-airbench-cpu-avx2-*-b512*.csv).
        "epochs": 12, "batch_size": 512, "lr": 0.75, "momentum": 0.85, "weight_decay": 1.33e-3,
        "label_smoothing": 0.2, "schedule": "triangle", "bias_lr_scale": 64.0, "lookahead": True,
        "tta": "flip-translate", "augment": AugmentConfig(crop_padding=2, flip="alternate"),
        # 48/192/192 channels: 1.6x the full net's speed on AVX2 kernels (1.64x on AVX-512-BF16) for 0.47 points
        # (90.32% vs 90.79%, bf16): what reaches 90% within the hour on AVX2. `--arch width=1`: the full net.
        "arch": {"width": 0.75},
    },
}

AUGMENT_FLAGS = tuple(f.name for f in fields(AugmentConfig))

# Photos (`DataProfile.kind`): a recipe's thumbnail settings changed where photos need it. The numbers
# and the runs that chose them: benchmarks/results/photos-*.md.
PHOTO_IMG_SIZE = 64
PHOTO_BATCH = 64  # a few thousand photos make a few dozen steps per epoch, not 3 at batch 512
PHOTO_IMAGES_SEEN = 100_000  # epochs = this / training images, within [recipe epochs, PHOTO_MAX_EPOCHS]
PHOTO_MAX_EPOCHS = 100


def epochs_for(images_seen: int, train_images: int, floor: int) -> int:
    """Epochs to see ``images_seen`` training images: counted once the split is cut, from the readable
    images alone, so junk files in a folder never change the schedule."""
    return min(PHOTO_MAX_EPOCHS, max(floor, math.ceil(images_seen / max(1, train_images))))


def photo_settings(recipe: dict, given: dict, profile: DataProfile) -> dict:
    """Input size, batch and epochs for a photo folder. The learning rate follows the batch (linear
    scaling), so the recipe's step per image is kept; values the user gave stay as given."""
    base = TrainConfig(model=DEFAULT_MODEL)
    batch = given.get("batch_size") or PHOTO_BATCH
    settings = {"img_size": PHOTO_IMG_SIZE, "batch_size": batch, "tta": "flip"}
    if not given.get("epochs"):
        settings["images_seen"] = PHOTO_IMAGES_SEEN
    optimizer = given.get("optimizer") or recipe.get("optimizer", base.optimizer)
    peak = recipe["lr"] if "lr" in recipe else OPTIMIZER_DEFAULTS[optimizer][0]
    if optimizer == "sgd":
        settings["lr"] = peak * batch / recipe.get("batch_size", base.batch_size)
    return settings


def recipe_config(model: str | None = None, profile: DataProfile | None = None, **given) -> TrainConfig:
    """A config for ``model`` (default :data:`DEFAULT_MODEL`): its recipe, changed for photos when
    ``profile`` says the data is photos, then every ``given`` value that is not None. Augmentation flags
    (crop, crop_padding, min_scale, flip, cutout) may be given flat; a given ``arch`` changes only the
    builder switches it names."""
    model = model or DEFAULT_MODEL
    recipe = dict(RECIPES.get(model, {}))
    augment = recipe.pop("augment", AugmentConfig())
    if profile is not None:
        if profile.kind == "photo":
            recipe.update(photo_settings(recipe, given, profile))
        augment = replace(augment, crop=crop_for(profile))
    flat_augment = {k: given.pop(k) for k in AUGMENT_FLAGS if k in given}
    augment = replace(augment, **{k: v for k, v in flat_augment.items() if v is not None})
    arch = {**recipe.pop("arch", {}), **(given.pop("arch", None) or {})}
    values = {**recipe, **{k: v for k, v in given.items() if v is not None}}
    return TrainConfig(model=model, augment=augment, arch=arch, **values)
