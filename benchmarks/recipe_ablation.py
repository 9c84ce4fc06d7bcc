"""What each airbench recipe switch is worth: one `edgecls train` per switch turned off, same seed.

    python benchmarks/recipe_ablation.py --data ../shared/datasets/cifar10 [--epochs 4] [--width 0.5]

Every run is the default model and recipe, at --width and --epochs, plus one change, on this
CPU, one after another; the table goes to stdout and benchmarks/results/recipe-ablation-<device>-<date>.md.
A proxy (narrower net, fewer epochs) keeps the sweep short; its differences, not its absolute
accuracies, are what it measures. Seed-to-seed spread is measured by the last rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from edgecls.atomic import write_text_atomic
from edgecls.host import cpu_class, instruction_sets

SWITCHES = {
    "full recipe": [],
    "no patch whitening (learned 2×2 stem)": ["--arch", "whiten=false"],
    "no identity (Dirac) init": ["--arch", "dirac=false"],
    "PyTorch BN (momentum 0.1, eps 1e-5, learned scale)":
        ["--arch", "bn_momentum=0.1,bn_eps=1e-5,frozen_bn_scale=false"],
    "BN/bias LR ×1 instead of ×64": ["--bias-lr-scale", "1"],
    "no lookahead averaging": ["--no-lookahead"],
    "label smoothing 0 instead of 0.2": ["--label-smoothing", "0"],
    "random flip instead of alternating": ["--flip", "random"],
    "no translate (crop padding 0)": ["--crop-padding", "0"],
    "one-cycle schedule instead of triangle": ["--schedule", "onecycle", "--warmup-epochs", "1"],
    "batch 512 (LR 0.75)": ["--batch-size", "512", "--lr", "0.75"],
    "full recipe, seed 1": ["--seed", "1"],
}


def with_width(flags: list[str], width: float) -> list[str]:
    """The proxy's width joined to a switch's own --arch settings."""
    if "--arch" not in flags:
        return ["--arch", f"width={width}", *flags]
    i = flags.index("--arch") + 1
    return [*flags[:i], f"width={width},{flags[i]}", *flags[i + 1:]]


def run(name: str, flags: list[str], args, out: Path) -> dict:
    cmd = [sys.executable, "-m", "edgecls", "train", "--data", args.data, "--epochs", str(args.epochs),
           "--out", str(out), *with_width(flags, args.width)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    m = json.loads((out / "metrics.json").read_text())
    last = m["epochs"][-1]
    return {"switch": name, "flags": " ".join(flags), "tta_acc": m["test_acc"], "acc": last["val_acc"],
            "wall_s": wall, "img_s": sorted(e["train_img_per_s"] for e in m["epochs"])[len(m["epochs"]) // 2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/cifar10")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--width", type=float, default=0.5, help="the proxy net's width (1.0: the default model)")
    ap.add_argument("--only", nargs="*", help="run only the switches whose name starts with one of these")
    ap.add_argument("--runs", type=Path, default=Path("artifacts/runs/ablation"))
    args = ap.parse_args()
    date = time.strftime("%Y-%m-%d")
    device = f"cpu-{cpu_class()}"
    rows = []
    header = ("| switch | flags | val acc, last epoch (no TTA) | best.pt on test, fp32 + flip-translate TTA | "
              "median train img/s | process wall s |\n|---|---|---:|---:|---:|---:|")
    print(header)
    for i, (name, flags) in enumerate(SWITCHES.items()):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        row = run(name, flags, args, args.runs / f"s{i:02d}")
        rows.append(row)
        print(f"| {name} | `{row['flags']}` | {row['acc']:.2%} | {row['tta_acc']:.2%} | {row['img_s']:.0f} | "
              f"{row['wall_s']:.0f} |", flush=True)
    out = Path(__file__).parent / "results" / f"recipe-ablation-{device}-{date}.md"
    lines = [f"# airbench recipe ablation, {date}", "",
             f"`python benchmarks/recipe_ablation.py --epochs {args.epochs} --width {args.width}` on a CPU with "
             f"{', '.join(instruction_sets())}; "
             f"every run: `edgecls train --epochs {args.epochs} --arch width={args.width}` + the flags.", "",
             header]
    lines += [f"| {r['switch']} | `{r['flags']}` | {r['acc']:.2%} | {r['tta_acc']:.2%} | {r['img_s']:.0f} | "
              f"{r['wall_s']:.0f} |" for r in rows]
    write_text_atomic(out, "\n".join(lines) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
