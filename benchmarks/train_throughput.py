"""Training images/s: the edgecls loop vs a plain fp32 eager loop, interleaved in one run.

    python benchmarks/train_throughput.py --data ../shared/datasets/cifar10 [--models airbench resnet20]
        [--compile] [--arch width=0.75]

Every loop sees the same real CIFAR-10 images and the model's own recipe (batch size, augmentation);
"plain" is fp32, NCHW, no autocast — what a hand-written loop does. ``--compile`` adds the edgecls
loop under torch.compile (compilation happens in the warm-up, outside the timing). Medians over
--repeats alternating measurements; the ratios are the numbers to quote.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from edgecls.cli.train import parse_arch
from edgecls.spec import ModelSpec
from edgecls.trainer.recipes import recipe_config
from edgecls.trainer.data import load_data
from edgecls.trainer.fit import build_parts
from edgecls.trainer.loop import DeviceData, train_one_epoch
from edgecls.trainer.policy import resolve_policy, set_cpu_threads


def measure(model: str, policy, images: int, splits, batch_size: int | None, arch: dict | None = None) -> float:
    train = splits.train.subset(images, seed=0)
    spec = ModelSpec(model, splits.classes, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), 32)
    cfg = recipe_config(model, batch_size=batch_size, arch=arch).validate()
    bs = cfg.batch_size
    data = DeviceData.from_numpy(train.images, train.labels, spec.mean, spec.std, policy.device)
    parts = build_parts(cfg, spec, policy, len(data) // bs)
    gen = torch.Generator().manual_seed(0)
    warm = DeviceData(data.images[:2 * bs], data.labels[:2 * bs], data.mean, data.std)
    train_one_epoch(parts, warm, bs, policy, cfg.augment, gen, 0, 1)
    _, img_s = train_one_epoch(parts, data, bs, policy, cfg.augment, gen, 0, 1)
    return img_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/cifar10")
    ap.add_argument("--models", nargs="+", default=["airbench", "resnet20"])
    ap.add_argument("--images", type=int, nargs="+", default=[6144], help="images per measurement, per model")
    ap.add_argument("--batch-size", type=int, help="default: each model's recipe")
    ap.add_argument("--compile", action="store_true", help="also time the edgecls loop under torch.compile")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--arch", type=parse_arch, help="model builder switches, as `edgecls train --arch`")
    args = ap.parse_args()
    threads = set_cpu_threads(None)
    splits = load_data(args.data, 32)
    loops = {"plain fp32 eager (NCHW)": resolve_policy("cpu", "fp32", channels_last=False),
             "edgecls (auto policy)": resolve_policy("cpu", "auto", channels_last=True)}
    if args.compile:
        loops["edgecls + torch.compile"] = resolve_policy("cpu", "auto", channels_last=True, compile=True)
    print(f"threads {threads}; edgecls policy: {loops['edgecls (auto policy)'].describe()}")
    print(f"| model | {' | '.join(loops)} | {' | '.join(f'{name} ÷ plain' for name in list(loops)[1:])} |")
    print("|---|" + "---|" * (2 * len(loops) - 1))
    for model, images in zip(args.models, args.images * len(args.models)):
        runs = {name: [] for name in loops}
        for _ in range(args.repeats):
            for name, policy in loops.items():
                runs[name].append(measure(model, policy, images, splits, args.batch_size, args.arch))
        med = {name: statistics.median(v) for name, v in runs.items()}
        plain, *others = med.values()
        print(f"| {model} | {' | '.join(f'{v:.0f} img/s' for v in med.values())} | "
              f"{' | '.join(f'{v / plain:.2f}×' for v in others)} |", flush=True)


if __name__ == "__main__":
    main()
