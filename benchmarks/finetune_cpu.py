"""Partial fine-tuning of ResNet-18 on this CPU: speed against full fine-tuning, and accuracy.

    python benchmarks/finetune_cpu.py --data ../shared/datasets/cifar10 [--backbone-epochs 3]

1. Speed, side by side in one run: train img/s of full fine-tuning and of partial fine-tuning
   (frozen stem..layer3, cached features, layer4 + head trained) of the same model at the same
   input size; medians over interleaved repeats. The target is a time-per-image ratio <= 0.3.
2. Accuracy: ImageNet weights cannot be downloaded here, so a backbone is trained on CIFAR-10
   classes 0-4 and partially fine-tuned on classes 5-9 (AdamW + plateau, the tutorials' recipe);
   validation accuracy after 1, 3 and 10 epochs, and wall times, come from the runs' metrics.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from edgecls.trainer.config import TrainConfig
from edgecls.trainer.data import load_data
from edgecls.trainer.feature_cache import build_feature_bank, feature_batches
from edgecls.trainer.fit import build_parts, build_spec
from edgecls.trainer.loop import DeviceData, fit_batches, train_one_epoch
from edgecls.trainer.policy import resolve_policy, set_cpu_threads


def speed(data_path: str, images: int, repeats: int) -> tuple[float, float]:
    """(full img/s, partial img/s), medians; both start from the same random backbone."""
    policy = resolve_policy("cpu", "auto")
    splits = load_data(data_path, 32)
    train = splits.train.subset(images, seed=0)
    spec = build_spec(TrainConfig(model="resnet18"), splits)
    data = DeviceData.from_numpy(train.images, train.labels, spec.mean, spec.std, policy.device)
    steps = len(data) // 128
    full_cfg = TrainConfig(model="resnet18", freeze="none").validate()
    part_cfg = TrainConfig(model="resnet18", freeze="stem,layer1,layer2,layer3").validate()
    full = build_parts(full_cfg, spec, policy, steps)
    part = build_parts(part_cfg, spec, policy, steps)
    bank = build_feature_bank(part.freeze.trunk(), data, data, policy, part_cfg.augment, 0, 1, None)
    gen = torch.Generator().manual_seed(0)
    rates = {"full": [], "partial": []}
    for _ in range(repeats):
        rates["full"].append(train_one_epoch(full, data, 128, policy, full_cfg.augment, gen, 0, 1)[1])
        batches = feature_batches(bank.views[0], data.labels, 128, gen)
        rates["partial"].append(fit_batches(part, part.freeze.tail(), batches, steps, 128, policy)[1])
    print(f"  img/s per repeat: {json.dumps({k: [round(v) for v in r] for k, r in rates.items()})}")
    return statistics.median(rates["full"]), statistics.median(rates["partial"])


def class_split(src: Path, dst: Path, classes: list[str]) -> Path:
    """An image folder holding only ``classes`` (symlinks to the shared copy)."""
    for split in ("train", "test"):
        (dst / split).mkdir(parents=True)
        for name in classes:
            (dst / split / name).symlink_to((src / split / name).resolve(), target_is_directory=True)
    return dst


def edgecls_train(*args: str) -> dict:
    out = args[args.index("--out") + 1]
    subprocess.run([sys.executable, "-m", "edgecls", "train", *args], check=True)
    return json.loads((Path(out) / "metrics.json").read_text())


def accuracy_runs(data_path: str, work: Path, backbone_epochs: int, finetune_epochs: int) -> None:
    classes = sorted(p.name for p in (Path(data_path) / "train").iterdir())
    first = class_split(Path(data_path), work / "first", classes[:5])
    second = class_split(Path(data_path), work / "second", classes[5:])
    base = edgecls_train("--model", "resnet18", "--data", str(first), "--epochs", str(backbone_epochs),
                         "--out", str(work / "backbone"))
    print(f"backbone on {classes[:5]}: {base['test_acc']:.2%} after {backbone_epochs} epochs, {base['wall_s']:.0f} s")
    tuned = edgecls_train("--model", "resnet18", "--data", str(second), "--init", str(work / "backbone" / "best.pt"),
                          "--optimizer", "adamw", "--schedule", "plateau", "--epochs", str(finetune_epochs),
                          "--out", str(work / "partial"))
    cache = tuned["feature_cache"]
    print(f"partial fine-tune on {classes[5:]}: feature cache {cache['views']} views, "
          f"{cache['bytes'] / 1e9:.2f} GB, built in {cache['build_s']:.0f} s")
    print("| epoch | val acc | train img/s | wall s (since start, incl. cache) |")
    print("|---:|---:|---:|---:|")
    for row in tuned["epochs"]:
        if row["epoch"] in (1, 3, finetune_epochs):
            print(f"| {row['epoch']} | {row['val_acc']:.2%} | {row['train_img_per_s']:.0f} | {row['wall_s']:.0f} |")
    print(f"best.pt on test (fp32, once): {tuned['test_acc']:.2%}; total wall {tuned['wall_s']:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/cifar10")
    ap.add_argument("--images", type=int, default=1536, help="training images per speed measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backbone-epochs", type=int, default=3)
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    print(f"threads {set_cpu_threads(None)}")
    full, partial = speed(args.data, args.images, args.repeats)
    print(f"| resnet18, 32×32 | full fine-tune {full:.0f} img/s | partial, cached {partial:.0f} img/s | "
          f"time per image ratio {full / partial:.3f} |", flush=True)
    if not args.skip_accuracy:
        with tempfile.TemporaryDirectory() as tmp:
            accuracy_runs(args.data, Path(tmp), args.backbone_epochs, args.finetune_epochs)


if __name__ == "__main__":
    main()
