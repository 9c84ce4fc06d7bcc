"""`edgecls train`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgecls.errors import UsageError
from edgecls.extras import require_extra
from edgecls.trainer.config import TTA_LEVELS, TrainConfig
from edgecls.trainer.recipes import DEFAULT_MODEL, recipe_config

from .options import TORCH_DEVICE_HELP, device_option, threads_option

Opt = typer.Option
D = TrainConfig(model=DEFAULT_MODEL)
RECIPE = "[default: the model's recipe]"


def train_command(
    model: Annotated[str, Opt(help="Model name (see `edgecls models`); flags not given come from its recipe.")] = DEFAULT_MODEL,
    data: Annotated[str, Opt(help="'cifar10' (torchvision download), PATH with train/<class>/* and test/<class>/* (and val/<class>/*), or PATH/<class>/* (split by the run: --val-fraction, --test-fraction).")] = "cifar10",
    data_dir: Annotated[Optional[str], Opt(help="Where torchvision's CIFAR-10 lives / is downloaded (default: user cache).")] = None,
    cache_dir: Annotated[Optional[str], Opt(help="Where decoded image-folder caches go (default: user cache).")] = None,
    epochs: Annotated[Optional[int], Opt(help=f"Epochs {RECIPE}.", show_default=False)] = None,
    batch_size: Annotated[Optional[int], Opt(help=f"Batch size {RECIPE}.", show_default=False)] = None,
    optimizer: Annotated[str, Opt(help="sgd (Nesterov momentum) or adamw.")] = D.optimizer,
    lr: Annotated[Optional[float], Opt(help="Peak learning rate [default: the recipe's, else 0.2 for sgd, 1e-3 for adamw].", show_default=False)] = None,
    momentum: Annotated[Optional[float], Opt(help=f"SGD (Nesterov) momentum {RECIPE}.", show_default=False)] = None,
    weight_decay: Annotated[Optional[float], Opt(help="Weight decay on conv/linear weights, not BN or biases [default: the recipe's, else 5e-4 for sgd, 1e-4 for adamw].", show_default=False)] = None,
    bias_lr_scale: Annotated[Optional[float], Opt(help=f"BN parameters and biases learn this many times faster {RECIPE}.", show_default=False)] = None,
    label_smoothing: Annotated[Optional[float], Opt(help=f"Label smoothing {RECIPE}.", show_default=False)] = None,
    schedule: Annotated[Optional[str], Opt("--schedule", "--scheduler", help=f"LR after warm-up: onecycle (linear decay), cosine, plateau (÷10 after 3 epochs without a better validation accuracy), or triangle (airbench: up over 23% of the steps, down to 7%) {RECIPE}.", show_default=False)] = None,
    warmup_epochs: Annotated[Optional[float], Opt(help=f"Linear warm-up length in epochs (not for triangle) {RECIPE}.", show_default=False)] = None,
    ema: Annotated[Optional[float], Opt(help=f"EMA decay per step for evaluated/saved weights; 0 disables {RECIPE}.", show_default=False)] = None,
    lookahead: Annotated[Optional[bool], Opt("--lookahead/--no-lookahead", help=f"Pull the weights toward their slow average every 5 steps (airbench) {RECIPE}.", show_default=False)] = None,
    tta: Annotated[Optional[str], Opt(help=f"Test-time augmentation for the final score of best.pt: {', '.join(TTA_LEVELS)} {RECIPE}.", show_default=False)] = None,
    patience: Annotated[int, Opt(help="Stop after this many epochs without a better validation accuracy; 0 disables.")] = D.patience,
    device: device_option(TORCH_DEVICE_HELP, show_default=True) = D.device,
    precision: Annotated[str, Opt(help="auto (bf16 where supported, fp16 on older GPUs, else fp32), fp32, bf16, fp16.")] = D.precision,
    channels_last: Annotated[bool, Opt(help="channels_last memory format.")] = D.channels_last,
    compile: Annotated[bool, Opt("--compile", help="torch.compile the model (pays off on GPUs).")] = False,
    threads: threads_option("CPU threads") = None,
    seed: Annotated[int, Opt(help="Seed for init, shuffling and augmentation; CPU runs repeat exactly.")] = D.seed,
    limit_train: Annotated[Optional[int], Opt(help="Use a seeded random subset of N training images.")] = None,
    limit_val: Annotated[Optional[int], Opt(help="Use a seeded random subset of N validation images.")] = None,
    limit_test: Annotated[Optional[int], Opt(help="Use a seeded random subset of N test images.")] = None,
    val_fraction: Annotated[float, Opt(help="Share of each class held out of train for validation (selection) when the data has no val/ folder.")] = D.val_fraction,
    test_fraction: Annotated[float, Opt(help="Share of each class held out for the test score when the data is one folder of class folders.")] = D.test_fraction,
    crop: Annotated[Optional[str], Opt(help="Training crops: pad (pad-and-crop, for thumbnails) or resized (random-resized, for photos) [default: from the images: resized when their median shorter side is 64 px or more].", show_default=False)] = None,
    min_scale: Annotated[Optional[float], Opt(help="Random-resized crops keep at least this share of the image's area.", show_default=False)] = None,
    crop_padding: Annotated[Optional[int], Opt(help=f"Random-crop padding (translation) in pixels; 0 disables {RECIPE}.", show_default=False)] = None,
    flip: Annotated[Optional[str], Opt(help=f"Horizontal flips: alternate (each image mirrored every other epoch), random, none {RECIPE}.", show_default=False)] = None,
    cutout: Annotated[Optional[int], Opt(help=f"Cutout square side in pixels; 0 disables {RECIPE}.", show_default=False)] = None,
    arch: Annotated[Optional[str], Opt(help="Model builder settings as key=value pairs, e.g. width=0.5,whiten=false (airbench: width, whiten, dirac, bn_momentum, bn_eps, frozen_bn_scale; its recipe sets width=0.75, width=1 is the full net). With --init CHECKPOINT the checkpoint's own settings apply.", show_default=False)] = None,
    init: Annotated[Optional[str], Opt(help="Fine-tune from 'imagenet' (torchvision weights, resnet18/34) or an edgecls checkpoint / torchvision state_dict; the head is rebuilt.", rich_help_panel="Fine-tuning")] = None,
    freeze: Annotated[str, Opt(help="Stages kept fixed: auto (with --init: all but the last stage and the head), none, or a comma list such as stem,layer1,layer2,layer3.", rich_help_panel="Fine-tuning")] = D.freeze,
    head: Annotated[str, Opt(help="Classifier head: auto (dropout-linear with --init, else linear), linear, dropout-linear.", rich_help_panel="Fine-tuning")] = D.head,
    img_size: Annotated[Optional[int], Opt(help="Input size images are resized to (shorter side, then center crop) [default: the model's (32) for thumbnails, 64 for photos].")] = None,
    feature_cache: Annotated[str, Opt(help="Keep the frozen trunk's outputs in memory, on disk, or off (recompute every epoch).", rich_help_panel="Fine-tuning")] = D.feature_cache,
    cache_views: Annotated[int, Opt(help="Augmented views of the training set in the feature cache; epoch e uses view (e-1) mod N.", rich_help_panel="Fine-tuning")] = D.cache_views,
    out: Annotated[Optional[str], Opt(help="Run folder (default artifacts/runs/<model>-<time>).")] = None,
    resume: Annotated[Optional[str], Opt(help="Continue the run saved in this last.pt (its own settings are used).")] = None,
    tensorboard: Annotated[bool, Opt("--tensorboard", help="Also log to TensorBoard (needs tensorboard).")] = False,
    sync_bn: Annotated[bool, Opt("--sync-bn", help="Under torchrun on GPUs: synchronize BatchNorm statistics across processes.")] = False,
) -> None:
    """Train a model; writes best.pt, last.pt, metrics.json, curves.png, confusion.png.

    Runs unchanged under `torchrun --nproc-per-node N -m edgecls train …` (DDP; --batch-size is the
    global batch, split evenly across the processes).
    """
    require_extra("train", "train")
    from edgecls.trainer.data.profile import profile_data

    profile = profile_data(data, seed) if resume is None else None
    cfg = recipe_config(
        model, profile, data=data, data_dir=data_dir, cache_dir=cache_dir, out=out, epochs=epochs,
        batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
        bias_lr_scale=bias_lr_scale, label_smoothing=label_smoothing, schedule=schedule, warmup_epochs=warmup_epochs,
        ema_decay=ema, lookahead=lookahead, tta=tta, patience=patience,
        device=device, precision=precision, channels_last=channels_last, compile=compile, threads=threads,
        seed=seed, limit_train=limit_train, limit_val=limit_val, limit_test=limit_test,
        val_fraction=val_fraction, test_fraction=test_fraction, crop=crop, min_scale=min_scale,
        crop_padding=crop_padding, flip=flip, cutout=cutout, arch=parse_arch(arch), tensorboard=tensorboard,
        init=init, freeze=freeze, head=head, img_size=img_size, feature_cache=feature_cache, cache_views=cache_views,
        sync_bn=sync_bn,
    ).validate()
    from edgecls.trainer import train  # torch: after the options are checked, so a bad one costs no import

    metrics = train(cfg, resume=resume, log=print)  # plain print: rich keeps it above the progress bar
    if metrics:  # empty on torchrun ranks other than 0
        typer.echo(f"best.pt: epoch {metrics['best_epoch']} (selected on validation, {metrics['val_acc']:.2%}); "
                   f"test accuracy {metrics['test_acc']:.2%} (scored once); wall {metrics['wall_s']:.0f}s")


def parse_arch(text: str | None) -> dict | None:
    """``width=0.5,whiten=false`` → ``{"width": 0.5, "whiten": False}`` (numbers and booleans typed)."""
    if not text:
        return None
    values = {}
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--arch takes key=value pairs separated by commas, got {item!r}")
        values[key.strip()] = _typed(raw.strip())
    return values


def _typed(raw: str):
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw
