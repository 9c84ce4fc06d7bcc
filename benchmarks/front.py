"""The accuracy–latency front: shipped and mobile networks, every format and engine, side by side (issue 35).

    python benchmarks/front.py [NAME=CHECKPOINT ...] [--shipped resnet20,airbench] [--images 10000]
                               [--training "mobilenetv3small: 25 epochs, fp32"] [--workdir DIR]
                               [--data ../shared/datasets/cifar10]
                               [--out benchmarks/results/front-cpu-<class>-<date>.md]

Each network (the shipped models' checkpoints, then each NAME=CHECKPOINT) goes through the default export,
`--format all --int8`: every INT8 file climbs export/int8_ladder.py's steps past plain PTQ only where PTQ misses
the 1.0-point target on the validation images. Every file then runs in every engine that can run it on the test
images, against PyTorch eager FP32 on the same tensors (`edge_formats.measure_checkpoint`: size, batch-1 p50,
batch-64 img/s, agreement, accuracy). Added here:

- the INT8 drop: each INT8 file's test accuracy minus its own FP32 file's, in the same engine, with the ladder
  step the export kept and plain PTQ's drop on the validation images (from the manifest);
- peak memory at load: the peak RSS of a fresh process that opens the file and classifies one image;
- the front: per network, the file `auto` answers from (`runtime.model_files.choose_model`) and the LiteRT
  INT8 file, a network being on the front when no other is both as accurate and as fast; and a PNG of it.

Formats a converter cannot express are listed with the exporter's reason. Timings are this machine's: run it on
an idle machine (`nice` does not keep other work from skewing them).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

from edge_formats import REPO, TEST_IMAGES, markdown, measure_checkpoint

SKIP_MARK = "  skipped "  # how export_checkpoint logs a format left out, with its reason
LITERT_INT8 = "litert-int8"
# Run in a fresh interpreter: open one file in one engine, classify one image, print the peak RSS in KiB. VmHWM,
# not getrusage's ru_maxrss: a child keeps the high-water mark of the parent it was forked from across exec.
PEAK_AT_LOAD = """
import re, sys
from pathlib import Path
import numpy as np
from edgecls.runtime.engines import open_engine
opened = open_engine(sys.argv[1], Path(sys.argv[2]))
side = int(sys.argv[3])
opened.run(np.zeros((1, 3, side, side), np.float32))
print(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
"""


def peak_load_mb(engine: str, path: Path, side: int) -> float:
    run = subprocess.run([sys.executable, "-c", PEAK_AT_LOAD, engine, str(path), str(side)], capture_output=True,
                         text=True, check=True)
    return int(run.stdout.split()[-1]) / 1024


def network_facts(name: str, checkpoint: Path) -> dict:
    """Parameters and FLOPs of the checkpoint's network at its input size, and its export's input side."""
    from edgecls.export.pipeline import load_export_source
    from edgecls.trainer.models.summary import count_flops, count_params

    _, model, spec = load_export_source(checkpoint)
    return {"params": count_params(model), "mflops": count_flops(model, spec.input_size) / 1e6,
            "side": spec.input_size}


def measure(name: str, checkpoint: Path, data: str, workdir: Path, images: int, latency_runs: int,
            throughput_runs: int) -> tuple[list[dict], list[str]]:
    """The rows of one network, with peak memory at load, and the export's skipped-format lines."""
    log = io.StringIO()
    with redirect_stdout(log):
        rows = measure_checkpoint(name, checkpoint, data, workdir, latency_runs, throughput_runs, images=images,
                                  extra_checks=False)
    skips = [line.strip().removeprefix("skipped ") for line in log.getvalue().splitlines()
             if line.startswith(SKIP_MARK)]
    return rows, skips


def add_int8_columns(rows: list[dict], folder: Path) -> None:
    """Each INT8 row gains ``drop`` (test accuracy minus its FP32 file's in the same engine, points), ``step``
    (the ladder step kept) and ``ptq_val_drop`` (plain PTQ's drop on the validation images)."""
    from edgecls.bundle import read_manifest
    from edgecls.format_table import FORMATS

    ladders = {fmt: q.get("ladder") for fmt, q in read_manifest(folder).get("quantization", {}).items()
               if isinstance(q, dict)}
    fp32 = {(r["format"], r["engine"]): r["accuracy"] for r in rows}
    for r in rows:
        source = FORMATS[r["format"]].int8_of
        r["drop"] = (r["accuracy"] - fp32[(source, r["engine"])]) * 100 if (source, r["engine"]) in fp32 else None
        ladder = ladders.get(r["format"]) or {}
        attempts = ladder.get("attempts") or []
        r["step"] = ladder.get("kept")
        r["ptq_val_drop"] = attempts[0]["drop_points"] if attempts else None


def front_entry(name: str, facts: dict, rows: list[dict], folder: Path) -> dict:
    """One network's line of the front: its FP32 PyTorch accuracy, the `auto` row and the LiteRT INT8 row."""
    from edgecls.runtime.model_files import choose_model

    auto = choose_model(folder)
    picked = next(r for r in rows if r["format"] == auto.format and r["engine"] == auto.engine)
    litert = next((r for r in rows if r["format"] == LITERT_INT8), None)
    return {"model": name, **facts, "pytorch": picked["ref_accuracy"], "auto": picked, "litert": litert}


def on_front(entries: list[dict], key: str) -> set[str]:
    """Networks no other network matches or beats on both accuracy and batch-1 p50 in column ``key``."""
    points = {e["model"]: (e[key]["accuracy"], e[key]["p50_ms"]) for e in entries if e[key]}
    return {m for m, (acc, ms) in points.items()
            if not any(o != m and a >= acc and t <= ms and (a, t) != (acc, ms) for o, (a, t) in points.items())}


def front_markdown(entries: list[dict]) -> str:
    fronts = {key: on_front(entries, key) for key in ("auto", "litert")}
    head = ("| model | params | MFLOPs | PyTorch FP32 | `auto` file (engine) | accuracy | p50 @1 | img/s @64 | size | "
            "peak MB | LiteRT INT8 accuracy | p50 @1 | img/s @64 | size | peak MB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def cells(r: dict | None, key: str, model: str) -> str:
        if r is None:
            return "not built | | | | "
        star = " (front)" if model in fronts[key] else ""
        return (f"{r['accuracy']:.2%}{star} | {r['p50_ms']:.2f} ms | {r['ips']:,.0f} | {r['size'] / 2**20:.2f} MB | "
                f"{r['peak_mb']:.0f}")

    for e in entries:
        a = e["auto"]
        lines.append(f"| {e['model']} | {e['params'] / 1e6:.2f}M | {e['mflops']:.0f} | {e['pytorch']:.2%} | "
                     f"{a['format']} ({a['engine']}) | {cells(a, 'auto', e['model'])} | "
                     f"{cells(e['litert'], 'litert', e['model'])} |")
    return "\n".join(lines)


def int8_markdown(rows: list[dict]) -> str:
    head = ("| model | format | engine | test accuracy | INT8 − FP32 (pts, test) | step kept | "
            "plain PTQ drop (pts, val) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if r["drop"] is None:
            continue
        ptq = "" if r["ptq_val_drop"] is None else f"{r['ptq_val_drop']:+.1f}"
        lines.append(f"| {r['model']} | {r['format']} | {r['engine']} | {r['accuracy']:.2%} | {r['drop']:+.2f} | "
                     f"{r['step'] or ''} | {ptq} |")
    return "\n".join(lines)


def plot(entries: list[dict], path: Path) -> None:
    import matplotlib

    from edgecls.atomic import atomic_path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, marker, label in (("auto", "o", "`auto` file"), ("litert", "s", "LiteRT INT8")):
        for e in entries:
            if e[key]:
                ax.scatter(e[key]["p50_ms"], 100 * e[key]["accuracy"], marker=marker, label=f"{e['model']}, {label}")
                ax.annotate(e["model"], (e[key]["p50_ms"], 100 * e[key]["accuracy"]), fontsize=7)
    ax.set_xlabel("batch-1 p50 latency (ms)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def checkpoints(pairs: list[str], shipped: str) -> dict[str, Path]:
    from edgecls.shipped import reference_checkpoint

    parsed = {name: reference_checkpoint(name) for name in shipped.split(",") if name}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"error: {pair!r}: expected NAME=CHECKPOINT with an existing checkpoint file")
        parsed[name] = Path(path)
    return parsed


def report(args, rows: list[dict], entries: list[dict], skips: dict[str, list[str]], png: Path) -> str:
    from edgecls import __version__
    from edgecls.host import cpu_name, instruction_sets, usable_cores

    listed = [f"- {model}: {skip}" for model, found in skips.items() for skip in found] or ["- none"]
    return (f"# The accuracy–latency front ({time.strftime('%Y-%m-%d')})\n\n"
            f"`python benchmarks/front.py {' '.join(args.checkpoints)} --shipped {args.shipped}` (edgecls "
            f"{__version__}) on {cpu_name()}, {usable_cores()} cores, instruction sets: "
            f"{', '.join(instruction_sets())}. Training: {args.training}. {args.images:,} CIFAR-10 test images per "
            "row; default export (`--format all --int8`, 300 calibration images, the INT8 ladder's 1.0-point "
            f"target on 1,000 validation images); p50 at batch 1 ({args.latency_runs} runs), img/s at batch 64 "
            f"({args.throughput_runs} runs); peak MB: peak RSS of a fresh process opening the file and classifying "
            f"one image. Plot: [{png.name}]({png.name}).\n\n## The front\n\n" + front_markdown(entries)
            + "\n\n## INT8 against FP32, per engine\n\n" + int8_markdown(rows)
            + "\n\n## Every file in every engine\n\n" + markdown(rows)
            + "\n\n## Formats left out (the exporter's reason)\n\n" + "\n".join(listed) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*", help="NAME=CHECKPOINT, one per network")
    ap.add_argument("--shipped", default="resnet20,airbench", help="shipped models measured first ('' for none)")
    ap.add_argument("--images", type=int, default=TEST_IMAGES, help="test images per row")
    ap.add_argument("--training", default="shipped recipes", help="what training the checkpoints had, for the header")
    ap.add_argument("--data", default=str(REPO.parent / "shared/datasets/cifar10"))
    ap.add_argument("--workdir", type=Path, default=None, help="keep the exports here (default: a temp folder)")
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--throughput-runs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    runs = checkpoints(args.checkpoints, args.shipped)

    from edgecls.atomic import write_text_atomic
    from edgecls.host import cpu_class

    out = args.out or REPO / "benchmarks/results" / f"front-cpu-{cpu_class()}-{time.strftime('%Y-%m-%d')}.md"
    png = out.with_suffix(".png")
    rows, entries, skips = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        for name, checkpoint in runs.items():  # the file is rewritten after each network: a long run keeps its part
            found, skips[name] = measure(name, checkpoint, args.data, workdir, args.images, args.latency_runs,
                                         args.throughput_runs)
            facts = network_facts(name, checkpoint)
            for r in found:
                r["peak_mb"] = peak_load_mb(r["engine"], workdir / name / r["path"], facts["side"])
            add_int8_columns(found, workdir / name)
            rows += found
            entries.append(front_entry(name, facts, found, workdir / name))
            plot(entries, png)
            write_text_atomic(out, report(args, rows, entries, skips, png))
    print(out.read_text())
    print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
