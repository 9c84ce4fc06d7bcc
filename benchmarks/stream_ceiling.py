"""How close a stream of images comes to what this machine's cores can do (the `ceiling` part of runtime_speed.py).

For a folder, each side alone is timed in this process: decoding (the runtime's own file → model-size
pixels, one thread; bare Pillow ``open → RGB array`` beside it) and the engine (batch 64, the threads it
opens with). Their core-milliseconds per image add up to what one image costs, so ``cores / (d + e)`` is
the bound no stream can pass. Each stream is then a fraction of that bound:

- in-process ``Classifier.predict(paths)``, in a fresh process, timed after load and a warm-up;
- ``edgecls infer DIR --json``: the stream rate the command reports (first image to last), and the whole
  command's wall time (start-up, imports and loading included).

Every engine and precision runs over the 10,000 CIFAR test JPEGs and over 640x480 photos made from them
with Pillow (upscaled, with sensor-like noise, saved as camera JPEGs at quality 90).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PHOTO_SIZE = (640, 480)
BATCH = 64
DECODE_SAMPLE = 2000  # images of a folder timed for decoding alone, spread over it
SUMMARY_RATE = re.compile(r" ([\d,]+) img/s$")

IN_PROCESS = """
import sys, time
from pathlib import Path
from edgecls.runtime import Classifier
paths = sorted(str(p) for p in Path(sys.argv[2]).rglob('*.jpg'))
clf = Classifier.load(sys.argv[1], backend=sys.argv[3], throughput=True)
clf.predict(paths[:256], batch_size=64)
t = time.perf_counter()
clf.predict(paths, batch_size=64)
print(len(paths) / (time.perf_counter() - t))
"""


@dataclass(frozen=True)
class Stream:
    label: str
    model: Path
    backend: str


def streams(export: Path) -> list[Stream]:
    """`auto` on the export folder, then each engine and precision on its own file."""
    from edgecls.bundle import read_manifest
    from edgecls.runtime.engines import engine_available

    files = {e["format"]: export / e["path"] for e in read_manifest(export)["files"]}
    wanted = [("onnxruntime", "onnx-int8"), ("onnxruntime", "onnx")]
    if engine_available("openvino"):
        wanted += [("openvino", "openvino-int8"), ("openvino", "openvino")]
    return [Stream("auto", export, "auto")] + [Stream(f"{fmt} via {engine}", files[fmt], engine)
                                              for engine, fmt in wanted if fmt in files]


def make_photos(data: Path, folder: Path, count: int) -> Path:
    """``count`` 640x480 camera-like JPEGs made from test images spread over every class."""
    rng = np.random.default_rng(0)
    sources = sorted((data / "test").rglob("*.jpg"))
    for i, src in enumerate(sources[::max(1, len(sources) // count)][:count]):
        big = np.asarray(Image.open(src).convert("RGB").resize(PHOTO_SIZE, Image.BICUBIC), dtype=np.int16)
        noisy = np.clip(big + rng.integers(-8, 9, big.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def decode_rates(paths: list[str], spec) -> dict[str, float]:
    """Images per second on one thread: the runtime's decoding, and bare Pillow open → RGB array."""
    from edgecls.runtime.classifier import decode_one

    t0 = time.perf_counter()
    for n, p in enumerate(paths):
        decode_one(n, p, spec)
    t1 = time.perf_counter()
    for p in paths:
        with Image.open(p) as img:
            np.asarray(img.convert("RGB"))
    t2 = time.perf_counter()
    return {"runtime": len(paths) / (t1 - t0), "pillow": len(paths) / (t2 - t1)}


def engine_alone(clf, calls: int = 20, rounds: int = 3) -> float:
    """Images per second of the engine a stream runs on, on batches of 64: the better of the one engine
    `Classifier.load` opened and the replicas a stream runs side by side (onnxruntime's), median of rounds."""
    from edgecls.runtime.pipeline import EngineLanes

    size = clf.spec.input_size
    x = np.random.default_rng(0).standard_normal((BATCH, 3, size, size), dtype=np.float32)
    lanes = EngineLanes(clf.stream_engines())
    ways = {"one": lambda: [clf.logits_from_input(x) for _ in range(calls)],
            "lanes": lambda: [f.result() for f in [lanes.submit(clf.logits_from_input, x) for _ in range(calls)]]}
    rates = {way: [] for way in ways}
    try:
        for run in ways.values():
            run()
        for _ in range(rounds):
            for way, run in ways.items():
                t0 = time.perf_counter()
                run()
                rates[way].append(BATCH * calls / (time.perf_counter() - t0))
    finally:
        lanes.close()
    return max(statistics.median(r) for r in rates.values())


def run_streams(python: str, edgecls: list[str], stream: Stream, folder: Path, outside: str) -> dict[str, float]:
    """One interleaved round: in-process predict, then the CLI (its own stream rate and its whole wall time)."""
    lib = subprocess.run([python, "-c", IN_PROCESS, str(stream.model), str(folder), stream.backend], check=True,
                         capture_output=True, text=True, cwd=outside).stdout
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        cli = subprocess.run([*edgecls, "infer", str(folder), "--json", "--batch-size", str(BATCH), "--model",
                              str(stream.model), "--backend", stream.backend], stdout=out, stderr=subprocess.PIPE,
                             text=True, cwd=outside)
        whole = time.perf_counter() - t0
    summary = cli.stderr.strip().splitlines()[-1] if cli.stderr.strip() else ""
    match = SUMMARY_RATE.search(summary)
    if cli.returncode != 0 or match is None:
        raise RuntimeError(f"edgecls infer failed ({cli.returncode}): {cli.stderr[-500:]}")
    images = int(summary.split(" classified")[0])
    return {"predict": float(lib), "cli_stream": float(match.group(1).replace(",", "")), "cli_whole": images / whole}


def ceiling(python: str, edgecls: list[str], export: Path, data: Path, photos: int, runs: int, cores: int,
            outside: str) -> list[dict]:
    """Interleaved rounds: in each, decoding alone, every engine alone and every stream, so that a noisy
    moment of the host moves the bound and the streams alike; medians over the rounds."""
    from edgecls.runtime import Classifier

    chosen = streams(export)
    loaded = {s: Classifier.load(s.model, backend=s.backend, throughput=True) for s in chosen}
    spec = next(iter(loaded.values())).spec
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"CIFAR 32x32 JPEGs": data / "test",
                   f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} photos": make_photos(data, Path(tmp), photos)}
        for name, folder in folders.items():
            paths = sorted(str(p) for p in folder.rglob("*.jpg"))
            sample = paths[::max(1, len(paths) // DECODE_SAMPLE)]
            decode, engine, measured = [], {s: [] for s in chosen}, {s: [] for s in chosen}
            for _ in range(runs):
                decode.append(decode_rates(sample, spec))
                for s in chosen:
                    engine[s].append(engine_alone(loaded[s]))
                    measured[s].append(run_streams(python, edgecls, s, folder, outside))
            d_rate = statistics.median(r["runtime"] for r in decode)
            for s in chosen:
                clf, e_rate = loaded[s], statistics.median(engine[s])
                e_ms = 1000 * clf.engine.threads / e_rate
                bound = cores / ((1000 / d_rate + e_ms) / 1000)
                rates = {k: statistics.median(r[k] for r in measured[s]) for k in measured[s][0]}
                rows.append({"folder": name, "images": len(paths), "stream": s.label,
                             "runs": f"{clf.choice.format} via {clf.choice.engine}", "decode_img_s": d_rate,
                             "pillow_img_s": statistics.median(r["pillow"] for r in decode),
                             "decode_core_ms": 1000 / d_rate, "engine_img_s": e_rate,
                             "engine_threads": clf.engine.threads,
                             "engine_core_ms": e_ms, "bound_img_s": bound, **rates,
                             **{f"{k}_of_bound": v / bound for k, v in rates.items()}})
    return rows


def print_rows(rows: list[dict], cores: int) -> None:
    folder = None
    for r in rows:
        if r["folder"] != folder:
            folder = r["folder"]
            print(f"\nceiling, {folder} ({r['images']:,} images), {cores} cores: decoding "
                  f"{r['decode_img_s']:,.0f} img/s on one thread = {r['decode_core_ms']:.3f} core-ms/img "
                  f"(bare Pillow open → RGB {r['pillow_img_s']:,.0f} img/s)")
            print(f"  {'stream':<30} {'engine alone':>13} {'core-ms':>8} {'bound':>7} {'predict':>14} "
                  f"{'CLI stream':>14} {'CLI whole':>14}")
        name = r["stream"] if r["stream"] != "auto" else f"auto ({r['runs']})"
        print(f"  {name:<30} {r['engine_img_s']:>9,.0f} x{r['engine_threads']:<2} {r['engine_core_ms']:>8.3f} "
              f"{r['bound_img_s']:>7,.0f} " + " ".join(f"{r[k]:>6,.0f} {r[k + '_of_bound']:>6.1%}"
                                                     for k in ("predict", "cli_stream", "cli_whole")))
