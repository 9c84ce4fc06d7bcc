"""`edgecls eval`: accuracy, per-class accuracy and confusion matrix of a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecls.errors import EdgeclsError
from edgecls.scores import scores

from .checkpoint import load_checkpoint, read_checkpoint
from .config import TTA_LEVELS
from .data import load_data, run_split_plan
from .loop import DeviceData, predict_logits
from .plots import plot_grid
from .policy import resolve_policy, set_cpu_threads


def evaluate_checkpoint(ckpt: str | Path, data: str = "cifar10", data_dir: str | None = None,
                        cache_dir: str | None = None, device: str = "cpu", tta: str = "none",
                        grid: str | Path | None = None, grid_count: int = 32, limit: int | None = None) -> dict:
    """``limit``: a seeded random subset of the test images in their order (`ImageSet.subset`, seed 0)."""
    if tta not in TTA_LEVELS:
        raise EdgeclsError(f"--tta must be one of {', '.join(TTA_LEVELS)}, got {tta!r}")
    model, meta = load_checkpoint(ckpt)
    set_cpu_threads(None)
    policy = resolve_policy(device, "fp32")
    plan = run_split_plan(Path(ckpt), read_checkpoint(ckpt).get("config") or {}, data)
    splits = load_data(data, meta["input_size"], data_dir, cache_dir, plan, need=("test",))
    classes = list(meta["classes"])
    splits.require_classes(classes)
    split = splits.test.subset(limit, 0)
    test = DeviceData.from_numpy(split.images, split.labels, meta["mean"], meta["std"], policy.device)
    model = model.to(policy.device)
    pred = predict_logits(model, test, policy, tta=tta).argmax(1).numpy()
    true = split.labels
    if grid is not None:
        pick = np.random.default_rng(0).permutation(len(true))[:grid_count]
        plot_grid(split.images[pick], true[pick], pred[pick], classes, Path(grid))
    return {**scores(pred, true, classes), "checkpoint": str(ckpt), "sha256": meta["sha256"]}
