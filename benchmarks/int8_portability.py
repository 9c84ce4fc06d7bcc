"""Which onnxruntime INT8 settings hold on every x86 CPU class, whatever CPU builds the file (issue 33).

    python benchmarks/int8_portability.py prepare DIR [--images 10000] [--shipped-only]  # torch
    python benchmarks/int8_portability.py score DIR [--images N]     # torch-free: agreement, accuracy
    python benchmarks/int8_portability.py speed DIR [--rounds 5]     # batch-64 img/s, batch-1 p50, interleaved
    qemu-x86_64 -cpu Haswell .venv/bin/python benchmarks/int8_portability.py score DIR --images 500  # AVX2, no VNNI
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/int8_portability.py score DIR --only openvino  # OpenVINO's AVX2 kernels
    python benchmarks/int8_portability.py compare DIR --classes logits-<class A> logits-<class B>

``prepare`` decodes the CIFAR-10 test set once (the exporter's own loader and normalization), keeps PyTorch's
FP32 logits for it, and builds one ONNX INT8 file per candidate setting from each shipped bundle's ONNX FP32
file, calibrated on the exporter's own 300 seeded training images. It also copies in every INT8 file the
shipped bundles hold, so one ``score`` run covers every INT8 row.

``score`` runs each file in the runtime's own engines (``edgecls.runtime.engines``) and prints, per file, top-1
agreement with PyTorch and accuracy and its change from FP32 (``speed``: batch-64 throughput and batch-1 p50,
files interleaved in rounds, on an idle machine); both label the
CPU class by what the CPU reports through CPUID (numpy's dispatch detection, which sees qemu's emulated CPU;
/proc/cpuinfo under qemu-user shows the host's). Throughput under qemu is the emulator's, not the CPU's. It
keeps each file's logits in ``DIR/logits-<class>/``; ``compare`` says, per file, whether two classes gave the
same top-1 and bit-identical logits on the images both ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = str(REPO.parent / "shared/datasets/cifar10")
MODELS = ("resnet20", "airbench")  # shipped models (edgecls.shipped)
# name → quantize_static options; QDQ (unless named) and MinMax (unless named), on the same calibration images.
CANDIDATES = {
    "u8s8": dict(activation_type="QUInt8", weight_type="QInt8", per_channel=True, reduce_range=False),
    "u8s8-reduce-range": dict(activation_type="QUInt8", weight_type="QInt8", per_channel=True, reduce_range=True),
    "s8s8": dict(activation_type="QInt8", weight_type="QInt8", per_channel=True, reduce_range=False),
    "u8u8": dict(activation_type="QUInt8", weight_type="QUInt8", per_channel=True, reduce_range=False),
    "u8s8-reduce-range-fp32-first": dict(activation_type="QUInt8", weight_type="QInt8", per_channel=True,
                                         reduce_range=True, fp32_first_conv=True),
    # the exporter's choices (export/quantize.py): 7-bit weights, percentile ranges, the first convolution
    # in FP32 where that pays (airbench) or not (ResNet-20)
    "u8s8-reduce-range-percentile": dict(activation_type="QUInt8", weight_type="QInt8", per_channel=True,
                                         reduce_range=True, calibrate_method="Percentile"),
    "u8s8-reduce-range-fp32-first-percentile": dict(activation_type="QUInt8", weight_type="QInt8", per_channel=True,
                                                    reduce_range=True, fp32_first_conv=True,
                                                    calibrate_method="Percentile"),
    "s8s8-qoperator": dict(activation_type="QInt8", weight_type="QInt8", per_channel=True, reduce_range=False,
                           quant_format="QOperator"),
}
SHIPPED_INT8 = ("onnx-int8", "openvino-int8", "litert-int8", "executorch-int8")


def prepare(out: Path, images: int, candidates: bool) -> None:
    from edgecls.bundle import read_manifest
    from edgecls.export.data import load_calibration, load_check_set
    from edgecls.export.parity import reference_logits
    from edgecls.export.pipeline import load_export_source
    from edgecls.format_table import FORMATS
    from edgecls.shipped import reference_bundle, reference_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        _, net, spec = load_export_source(reference_checkpoint(model))
        check = load_check_set(DATA, spec, images, 0, None, None)
        np.save(out / f"{model}.x.npy", check.images)
        np.save(out / f"{model}.labels.npy", check.labels)
        np.save(out / f"{model}.pytorch.npy", reference_logits(net, check.images))
        bundle = reference_bundle(model)
        fp32 = bundle / f"{model}.onnx"
        calibration = load_calibration(DATA, spec, 300, 0, False, None, None).images
        for name, options in CANDIDATES.items() if candidates else ():
            build_onnx_int8(fp32, calibration, out / f"{model}.onnx-int8.{name}.onnx", options)
        for entry in read_manifest(bundle)["files"]:
            if entry["format"] in SHIPPED_INT8:
                for suffix in FORMATS[entry["format"]].suffixes:
                    shutil.copy(bundle / f"{model}{suffix}", out / f"{model}.{entry['format']}.shipped{suffix}")


def build_onnx_int8(fp32: Path, calibration: np.ndarray, path: Path, options: dict) -> None:
    import tempfile

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgecls.export.onnx_export import INPUT_NAME

    options = dict(options)
    fmt = QuantFormat[options.pop("quant_format", "QDQ")]
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared))
        if options.pop("fp32_first_conv", False):
            options["nodes_to_exclude"] = _first_conv(prepared)
        reader = iter([{INPUT_NAME: calibration[i:i + 1]} for i in range(len(calibration))])
        quantize_static(str(prepared), str(path), _Reader(reader), quant_format=fmt,
                        activation_type=QuantType[options.pop("activation_type")],
                        weight_type=QuantType[options.pop("weight_type")],
                        calibrate_method=CalibrationMethod[options.pop("calibrate_method", "MinMax")], **options)


def _first_conv(model: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(model)).graph.node if n.op_type == "Conv"][:1]


class _Reader:
    def __init__(self, items):
        self.items = items

    def get_next(self):
        return next(self.items, None)


def cpu_class() -> str:
    """What the CPU itself reports through CPUID (qemu's emulated CPU under qemu-user), and any ISA cap."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return _cpuid_class() + (f", oneDNN capped to {cap}" if cap else "")


def _cpuid_class() -> str:
    features = np._core._multiarray_umath.__cpu_features__
    if platform.machine() not in ("x86_64", "AMD64"):
        return platform.machine()
    have = [f for f in ("AVX2", "AVX512F", "AVX512VNNI", "AVX512_SPR") if features.get(f)]
    return "x86 " + (" ".join(have) or "no AVX2") + ("" if features.get("AVX512VNNI") else " (no VNNI)")


def engine_for(path: Path) -> str:
    name = path.name
    return ("openvino" if name.endswith(".xml") else "litert" if name.endswith(".tflite")
            else "executorch" if name.endswith(".pte") else "onnxruntime")


def score(folder: Path, images: int | None, threads: int, only: str = "") -> list[dict]:
    from edgecls.runtime.engines import open_engine

    rows = []
    saved = folder / f"logits-{_slug(cpu_class())}"
    saved.mkdir(exist_ok=True)
    for model in MODELS:
        x = np.load(folder / f"{model}.x.npy")[:images]
        labels = np.load(folder / f"{model}.labels.npy")[:images]
        ref = np.load(folder / f"{model}.pytorch.npy")[:images]
        fp32_acc = float((ref.argmax(1) == labels).mean())
        for path in model_files(folder, model, only):
            engine = open_engine(engine_for(path), path, threads)
            logits = np.concatenate([engine.run(x[i:i + 64]) for i in range(0, len(x), 64)])
            np.save(saved / f"{path.name}.npy", logits)
            top1 = logits.argmax(1)
            row = {"model": model, "file": path.name.split(".", 1)[1], "engine": engine.name,
                   "engine_version": engine.version, "cpu": cpu_class(), "images": len(x),
                   "agreement": float((top1 == ref.argmax(1)).mean()), "accuracy": float((top1 == labels).mean()),
                   "fp32_accuracy": fp32_acc}
            row["change_points"] = 100 * (row["accuracy"] - fp32_acc)
            rows.append(row)
            print(f"{model:<9} {row['file']:<44} {row['cpu']:<34} agreement {row['agreement']:.2%}  accuracy "
                  f"{row['accuracy']:.2%} ({row['change_points']:+.2f} pts)", flush=True)
    return rows


def model_files(folder: Path, model: str, only: str) -> list[Path]:
    return sorted(p for p in folder.glob(f"{model}.*") if p.suffix in (".onnx", ".xml", ".tflite", ".pte")
                  and only in p.name)


def speed(folder: Path, threads: int, only: str, rounds: int, seconds: float) -> list[dict]:
    """Batch-64 throughput and batch-1 p50 of every file, in interleaved rounds (a noisy moment hits each
    file alike); medians over rounds."""
    from edgecls.runtime.engines import open_engine

    engines = {(model, path.name.split(".", 1)[1]): open_engine(engine_for(path), path, threads)
               for model in MODELS for path in model_files(folder, model, only)}
    batches = {model: np.load(folder / f"{model}.x.npy", mmap_mode="r")[:64].copy() for model in MODELS}
    measured: dict = {key: ([], []) for key in engines}
    for _ in range(rounds):
        for (model, name), engine in engines.items():
            rate, p50 = _throughput(engine, batches[model], seconds), _latency(engine, batches[model][:1])
            measured[(model, name)][0].append(rate)
            measured[(model, name)][1].append(p50)
    rows = []
    for (model, name), (rates, p50s) in measured.items():
        row = {"model": model, "file": name, "cpu": cpu_class(), "threads": threads, "rounds": rounds,
               "img_per_s_64": float(np.median(rates)), "p50_ms_1": float(np.median(p50s))}
        rows.append(row)
        print(f"{model:<9} {name:<44} {row['cpu']:<34} batch 64 {row['img_per_s_64']:7,.0f} img/s  "
              f"batch 1 p50 {row['p50_ms_1']:.3f} ms", flush=True)
    return rows


def _slug(text: str) -> str:
    return "-".join(text.lower().replace("(", "").replace(")", "").split())


def compare(folder: Path, a: str, b: str) -> None:
    """Per file scored on both CPU classes: the same top-1 and logits on the images both ran?"""
    for left in sorted((folder / a).glob("*.npy")):
        right = folder / b / left.name
        if not right.is_file():
            continue
        x, y = np.load(left), np.load(right)
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        same = float((x.argmax(1) == y.argmax(1)).mean())
        identical = int(np.all(x == y, axis=1).sum())
        print(f"{left.name[:-4]:<52} {n} images: top-1 equal {same:.2%}, logits bit-identical on {identical}, "
              f"max |Δlogit| {float(np.abs(x - y).max()):.2e}")


def _latency(engine, one: np.ndarray, runs: int = 200) -> float:
    engine.run(one)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine.run(one)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _throughput(engine, batch: np.ndarray, seconds: float) -> float:
    """Median img/s of batch-64 runs over ``seconds``, after a warm-up run."""
    engine.run(batch)
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        engine.run(batch)
        rates.append(len(batch) / (time.perf_counter() - t0))
    return float(np.median(rates))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("prepare", "score", "speed", "compare"))
    ap.add_argument("folder", type=Path)
    ap.add_argument("--images", type=int, default=None, help="prepare: test images (10,000); score: the first N")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0, help="speed: seconds of batch-64 runs per file and round")
    ap.add_argument("--rounds", type=int, default=5, help="speed: interleaved rounds")
    ap.add_argument("--shipped-only", action="store_true", help="prepare: only the shipped bundles' INT8 files")
    ap.add_argument("--json", type=Path, help="score: also write the rows here")
    ap.add_argument("--only", default="", help="score: files whose name holds this text")
    ap.add_argument("--classes", nargs=2, help="compare: two logits-<class> folders that score wrote")
    args = ap.parse_args()
    if args.step == "prepare":
        prepare(args.folder, args.images or 10_000, not args.shipped_only)
        return
    if args.step == "compare":
        compare(args.folder, *args.classes)
        return
    if args.step == "speed":
        rows = speed(args.folder, args.threads, args.only, args.rounds, args.seconds)
    else:
        rows = score(args.folder, args.images, args.threads, args.only)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
