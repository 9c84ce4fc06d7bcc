"""Accuracy against wall time: `edgecls train` with each model's default recipe, one CSV row per epoch.

    python benchmarks/time_to_accuracy.py --data ../shared/datasets/cifar10 [--models airbench resnet20]
        [--isa avx2] [-- extra edgecls train flags]

Each model trains in its own `edgecls train` process (the command a user types), then its
metrics.json becomes benchmarks/results/time-to-accuracy-<model>-<device>-<date>.csv with columns
epoch,wall_s,train_img_per_s,val_acc (the per-epoch check on the validation split: autocast, no TTA)
and `#` lines holding the exact command, the CPU's instruction sets, and best.pt's one score on the
test split (fp32, the recipe's test-time augmentation). A PNG puts the curves side by side.

``--isa avx2`` caps oneDNN and ATen at AVX2 (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY) and trains
in fp32: an AVX2-class laptop's kernels on this CPU's cores and clock, not a real AVX2 machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from edgecls.atomic import write_text_atomic
from edgecls.host import cpu_class, cpu_flags, cpu_name, usable_cores
from edgecls.trainer.recipes import DEFAULT_MODEL

CSV_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
COLUMNS = ("epoch", "wall_s", "train_img_per_s", "val_acc")
ISA_CAPS = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def device_label(isa: str | None) -> tuple[str, list[str]]:
    """(file-name label, the CSV_FLAGS the kernels may use): a --isa cap is what they may use."""
    if isa:
        return f"cpu-{isa}", [isa]
    return f"cpu-{cpu_class()}", [f for f in CSV_FLAGS if f in cpu_flags()]


def train(model: str, args, extra: list[str], out: Path) -> tuple[list[str], float]:
    cmd = [sys.executable, "-m", "edgecls", "train", "--model", model, "--data", args.data, "--out", str(out)]
    if args.isa:
        cmd += ["--precision", "fp32"]
    cmd += extra
    env = {**os.environ, **ISA_CAPS.get(args.isa, {})}
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return cmd, time.perf_counter() - started


def write_csv(path: Path, cmd: list[str], env_note: str, flags: list[str], metrics: dict, process_s: float) -> None:
    lines = [f"# command: {env_note}{shlex.join(['edgecls', *cmd[3:]])}",
             f"# cpu_flags={','.join(flags)}",
             f"# cpu={cpu_name()}; cores={usable_cores()}; policy={metrics['policy']}",
             ",".join(COLUMNS)]
    lines += [",".join(str(row[c]) for c in COLUMNS) for row in metrics["epochs"]]
    lines.append(f"# final: best.pt (epoch {metrics['best_epoch']}) fp32 with tta={metrics.get('tta', 'none')}: "
                 f"val_acc={metrics['val_acc']:.4f}, test_acc={metrics['test_acc']:.4f}; "
                 f"whole process {process_s:.0f} s")
    write_text_atomic(path, "\n".join(lines) + "\n")


def plot(csvs: list[Path], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for csv in csvs:
        lines = csv.read_text().splitlines()
        rows = [line.split(",") for line in lines if line and line[0].isdigit()]
        line, = ax.plot([float(r[1]) / 60 for r in rows], [100 * float(r[3]) for r in rows], marker=".",
                        label=csv.stem.removeprefix("time-to-accuracy-"))
        final = re.search(r"test_acc=([\d.]+); whole process (\d+) s", lines[-1])
        if final:  # the final fp32 score with TTA, at the end of the whole process
            ax.plot(float(final[2]) / 60, 100 * float(final[1]), marker="*", ms=12, color=line.get_color())
    for target in (87.4, 90.0):
        ax.axhline(target, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="wall time (minutes)", ylabel="accuracy (%): per-epoch check on val; ★ test, once, with TTA",
           ylim=(40, 95))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/cifar10")
    ap.add_argument("--models", nargs="+", default=[DEFAULT_MODEL])
    ap.add_argument("--isa", choices=sorted(ISA_CAPS), help="cap oneDNN/ATen at this instruction set (fp32)")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--runs", type=Path, default=Path("artifacts/runs"))
    ap.add_argument("--tag", default="", help="appended to the file names, e.g. a recipe switch")
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    device, flags = device_label(args.isa)
    env_note = " ".join(f"{k}={v}" for k, v in ISA_CAPS.get(args.isa, {}).items())
    date = time.strftime("%Y-%m-%d")
    csvs = []
    for model in args.models:
        name = f"{model}-{device}-{date}{'-' + args.tag if args.tag else ''}"
        out = args.runs / f"tta-{name}"
        cmd, process_s = train(model, args, extra, out)
        metrics = json.loads((out / "metrics.json").read_text())
        csv = args.results / f"time-to-accuracy-{name}.csv"
        write_csv(csv, cmd, env_note + " " if env_note else "", flags, metrics, process_s)
        csvs.append(csv)
        print(f"{csv}: test {metrics['test_acc']:.2%} (tta {metrics.get('tta', 'none')}), process {process_s:.0f} s")
    png = args.results / f"time-to-accuracy-{device}-{date}{'-' + args.tag if args.tag else ''}.png"
    plot(csvs, png)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
