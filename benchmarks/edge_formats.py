"""Every format × engine of a bundle side by side, on the whole CIFAR-10 test set, in one run (issue 25).

    python benchmarks/edge_formats.py [--models resnet20,airbench] [--data ../shared/datasets/cifar10]
                                      [--out benchmarks/results/edge-formats-<cpu>-<date>.md]

For each shipped model's checkpoint: export every format (`--format all --int8`, the default 300 seeded
calibration images), then run every file in every runtime engine that can run it on all 10,000 test images
(preprocessed once, exactly as PyTorch was fed), against PyTorch eager FP32 on the same tensors. Per row:
file size, load time (opening the file; the engine's library already imported), batch-1 p50 latency, batch-64
throughput, top-1 agreement with PyTorch (near-ties counted under the bundle's rule), accuracy and its change,
and the issue's target:
FP32 rows under the FP32 rule (every top-1 equal but for counted near-ties), FP16 rows >= 99.9% agreement,
INT8 rows >= 99% agreement and within 0.5 points of PyTorch's accuracy. The default-precision checks
(OpenVINO at the CPU's own precision, NCNN at its default fp16) are extra rows, not targets.

Timings are on this machine only: the results file states its CPU flags and thread count. Run it on an idle
machine (`nice` does not keep other work from skewing the timings).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecls.shipped import reference_checkpoint

REPO = Path(__file__).resolve().parents[1]
TEST_IMAGES = 10_000
TARGET_FP16, TARGET_INT8, TARGET_INT8_POINTS = 0.999, 0.99, 0.5


def measure_model(name: str, data: str, workdir: Path, latency_runs: int, throughput_runs: int) -> list[dict]:
    return measure_checkpoint(name, reference_checkpoint(name), data, workdir, latency_runs, throughput_runs)


def measure_checkpoint(name: str, checkpoint: Path, data: str, workdir: Path, latency_runs: int,
                       throughput_runs: int, images: int = TEST_IMAGES, extra_checks: bool = True) -> list[dict]:
    """Every file of ``checkpoint``'s ``--format all --int8`` export, in every engine that runs it, on the first
    ``images`` test images; ``extra_checks``: the default-precision rows too."""
    from edgecls.export.data import load_check_set
    from edgecls.export.parity import reference_logits
    from edgecls.export.pipeline import ExportOptions, export_checkpoint, load_export_source
    from edgecls.format_table import FORMATS, TORCH
    from edgecls.runtime.engines import DEFAULT_PRECISION, PINNED, engine_available
    from edgecls.spec import ModelSpec

    out = workdir / name
    result = export_checkpoint(ExportOptions(checkpoint=checkpoint, formats="all", int8=True, out=out, data=data,
                                             check_images=0), log=print)
    manifest = result.manifest
    spec = ModelSpec.from_dict(manifest["spec"])
    check = load_check_set(data, spec, images, 0, None, None)
    _, model, _ = load_export_source(checkpoint)
    ref = reference_logits(model, check.images)
    rows = []
    for entry in manifest["files"]:
        info = FORMATS[entry["format"]]
        size = entry["size"] + sum(c["size"] for c in entry["companions"])
        for engine in info.engines:
            if engine == TORCH or not engine_available(engine):
                continue
            extra = extra_checks and engine in ("openvino", "ncnn") and info.precision != "int8"
            for precision in [PINNED] + ([DEFAULT_PRECISION] if extra else []):
                rows.append(measure_row(name, entry, engine, precision, out, size, check, ref, latency_runs,
                                        throughput_runs))
    return rows


def measure_row(model: str, entry: dict, engine: str, precision: str, folder: Path, size: int, check, ref,
                latency_runs: int, throughput_runs: int) -> dict:
    from edgecls.export.parity import run_batched
    from edgecls.format_table import FORMATS
    from edgecls.runtime.engines import PINNED, open_engine
    from edgecls.runtime.measure import speed
    from edgecls.tolerance import TOLERANCE, top1_agreement

    info = FORMATS[entry["format"]]
    start = time.perf_counter()
    opened = open_engine(engine, folder / entry["path"], precision=precision)
    load_s = time.perf_counter() - start
    label = f"{model} {entry['format']} ({engine}, {precision})"
    logits = run_batched(opened.run, check.images, 64, label)
    bar = TOLERANCE.get(info.precision, TOLERANCE["fp32"])
    agreement = top1_agreement(logits, ref, bar.get("near_tie_rel", 2 * TOLERANCE["fp32"]["max_rel_dlogit"]))
    accuracy = float((logits.argmax(1) == check.labels).mean())
    ref_accuracy = float((ref.argmax(1) == check.labels).mean())
    timing = speed(opened.run, check.images[:64], label, latency_runs, throughput_runs)
    rel = float(np.abs(logits.astype(np.float64) - ref).max() / np.abs(ref).max())
    if precision != PINNED:
        target = "extra check"
    elif info.precision == "fp32":
        target = "met" if agreement.holds and rel <= bar["max_rel_dlogit"] else "MISSED"
    elif info.precision == "fp16":
        target = "met" if agreement.rate >= TARGET_FP16 and rel <= bar["max_rel_dlogit"] else "MISSED"
    else:
        target = ("met" if agreement.rate >= TARGET_INT8 and abs(accuracy - ref_accuracy) * 100 <= TARGET_INT8_POINTS
                  else "MISSED")
    return {"model": model, "format": entry["format"], "path": entry["path"], "engine": engine,
            "precision": info.precision, "math": opened.precision, "size": size, "load_ms": 1000 * load_s,
            "p50_ms": timing["latency_ms_p50"],
            "ips": timing["throughput_ips"], "agreement": agreement.rate, "near_ties": len(agreement.near_ties),
            "rel": rel, "accuracy": accuracy, "delta": (accuracy - ref_accuracy) * 100, "ref_accuracy": ref_accuracy,
            "target": target, "threads": opened.threads}


def markdown(rows: list[dict]) -> str:
    head = ("| model | format | engine | math | size | load | p50 @1 | img/s @64 | agreement (near-ties) | "
            "max rel Δlogit | accuracy | Δ pts | target |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['format']} | {r['engine']} | {r['math']} | {r['size'] / 2**20:.2f} MB | "
                     f"{r['load_ms']:.0f} ms | {r['p50_ms']:.2f} ms | {r['ips']:,.0f} | {r['agreement']:.2%} "
                     f"({r['near_ties']}) | {r['rel']:.1e} | {r['accuracy']:.2%} | {r['delta']:+.2f} | {r['target']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet20,airbench")
    ap.add_argument("--data", default=str(REPO.parent / "shared/datasets/cifar10"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--throughput-runs", type=int, default=20)
    args = ap.parse_args()

    from edgecls import __version__
    from edgecls.atomic import write_text_atomic
    from edgecls.host import cpu_name, instruction_sets, usable_cores

    rows = []
    flags = ", ".join(instruction_sets())
    stamp = time.strftime("%Y-%m-%d")
    out = args.out or REPO / "benchmarks/results" / f"edge-formats-{stamp}.md"
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):  # the file is rewritten after each model: a long run keeps its part
            rows += measure_model(name.strip(), args.data, Path(tmp), args.latency_runs, args.throughput_runs)
            text = (f"# Every format × engine, side by side ({stamp})\n\n"
                    f"`python benchmarks/edge_formats.py --models {args.models}` (edgecls {__version__}) on "
                    f"{cpu_name()}, {usable_cores()} cores, instruction sets: {flags}. All {TEST_IMAGES:,} CIFAR-10 "
                    "test images per row, against PyTorch eager FP32 on the same tensors; load = opening the file "
                    f"(the engine's library already imported); p50 at batch 1 ({args.latency_runs} runs), img/s at "
                    f"batch 64 ({args.throughput_runs} runs).\n\n" + markdown(rows) + "\n")
            write_text_atomic(out, text)
            print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
