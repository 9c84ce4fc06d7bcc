"""Runtime speed on this CPU: cold start, streaming a folder, batch-1 overhead, and which engine to prefer.

    python benchmarks/runtime_speed.py [--python .venv-base/bin/python] [--model artifacts/reference/exports]
                                       [--data ../shared/datasets/cifar10] [--skip backends,...]
                                       [--stream-backend onnxruntime]

Every figure is measured side by side in one run (medians of interleaved repeats) and printed with
the CPU's instruction sets. ``--python`` is the interpreter of the install to time (the base install
is what a device has: `python3 -m venv .venv-base && .venv-base/bin/pip install .`).

1. cold: `edgecls infer` on a CIFAR JPEG and a 12 MP JPEG vs a bare `import numpy, PIL.Image,
   onnxruntime`, plus the import-time breakdown of one cold run (`python -X importtime`).
2. stream: `edgecls infer test/ --json --batch-size 64 > file` over the 10,000 test JPEGs (whole command)
   vs in-process `Classifier.predict(paths)` in a fresh process of the same interpreter (timed after
   load and a warm-up), and vs a script doing the CLI's whole job (start, import, load, list, predict);
   also the CLI's streaming rate with its start-up taken out (the same command on one image, subtracted).
3. overhead: the shipped INT8 model at batch 1 through `Classifier.predict(array)` vs a bare engine call.
4. backends: onnxruntime vs OpenVINO, FP32 and INT8, batch 1 latency and batch 64 throughput, load time.
5. ceiling: each stream (`auto`, each engine and precision; CIFAR JPEGs and 640x480 photos) as a fraction
   of the bound this machine's cores set, decoding and the engine each timed alone (`stream_ceiling.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IN_PROCESS = """
import sys, time
from pathlib import Path
from edgecls.runtime import Classifier
paths = sorted(Path(sys.argv[2]).rglob('*.jpg'))
clf = Classifier.load(sys.argv[1], backend=sys.argv[3], throughput=True)  # what `infer` asks for from 5,000 images on
clf.predict(paths[:256], batch_size=64)
t = time.perf_counter()
clf.predict(paths, batch_size=64)
print(len(paths) / (time.perf_counter() - t))
"""


def make_photo(data: Path, folder: Path) -> Path:
    """A 4000×3000 (12 MP) JPEG made from a real test image, with noise so it compresses like a photo."""
    base = Image.open(sorted((data / "test" / "ship").iterdir())[0]).convert("RGB").resize((4000, 3000))
    noisy = np.asarray(base, dtype=np.int16) + np.random.default_rng(0).integers(-12, 12, (3000, 4000, 3))
    path = folder / "photo.jpg"
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


# Child processes run outside the checkout, so `python -m edgecls` imports the install being timed, not ./edgecls.
OUTSIDE = tempfile.gettempdir()


def edgecls_command(python: str) -> list[str]:
    """The install's own `edgecls` script, as a user types it; `python -m edgecls` where it has none."""
    script = Path(python).with_name("edgecls")
    return [str(script)] if script.is_file() else [python, "-m", "edgecls"]


def wall(cmd: list[str]) -> float:
    """Seconds for the whole command, its stdout going to a file as in `edgecls infer … > out.jsonl`
    (reading a pipe here would take CPU from the command on a 2-core box: ~3% of the 10,000-image stream)."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.PIPE, cwd=OUTSIDE)
        return time.perf_counter() - t0


def cold(python: str, model: Path, images: dict[str, Path], runs: int) -> dict[str, float]:
    """Interleaved runs, so a noisy moment hits every row alike; medians in seconds."""
    cmds = {"bare import numpy, PIL.Image, onnxruntime": [python, "-c", "import numpy, PIL.Image, onnxruntime"]}
    cmds |= {f"edgecls infer {name}": [*edgecls_command(python), "infer", str(p), "--model", str(model)]
             for name, p in images.items()}
    times = {k: [] for k in cmds}
    for _ in range(runs):
        for k, cmd in cmds.items():
            times[k].append(wall(cmd))
    return {k: statistics.median(v) for k, v in times.items()}


def import_breakdown(python: str, model: Path, image: Path, top: int = 8) -> list[tuple[str, float]]:
    """Top-level imports of one cold `edgecls infer` by cumulative milliseconds."""
    err = subprocess.run([python, "-X", "importtime", "-m", "edgecls", "infer", str(image), "--model", str(model)],
                         capture_output=True, text=True, cwd=OUTSIDE).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
            if not name.startswith(" ") and cumulative.isdigit():
                rows.append((name, int(cumulative) / 1000))
    return sorted(rows, key=lambda r: -r[1])[:top]


# The same work as the CLI's, start to finish, as a library user's script: start, import, load, list, predict.
WHOLE_SCRIPT = """
import sys
from pathlib import Path
from edgecls.runtime import Classifier
Classifier.load(sys.argv[1], backend=sys.argv[3], throughput=True).predict(sorted(Path(sys.argv[2]).rglob('*.jpg')),
                                                                        batch_size=64)
"""


def stream(python: str, model: Path, data: Path, runs: int, backend: str = "auto") -> dict[str, float]:
    """The CLI's whole command against predict alone (warm, in its own process) and against a script doing
    the CLI's whole job; interleaved runs, medians. ``backend``: onnxruntime is what `auto` streams on a CPU
    without VNNI (the proxy for that class here)."""
    test = data / "test"
    count = sum(1 for _ in test.rglob("*.jpg"))
    cli, lib, whole, streaming = [], [], [], []
    one = next((test / "cat").iterdir())
    for _ in range(runs):
        command = [*edgecls_command(python), "infer", "--json", "--batch-size", "64", "--model", str(model),
                   "--backend", backend]
        cli_s = wall([*command, str(test)])
        cli.append(count / cli_s)
        streaming.append((count - 1) / (cli_s - wall([*command, str(one)])))
        out = subprocess.run([python, "-c", IN_PROCESS, str(model), str(test), backend], check=True,
                             capture_output=True, text=True, cwd=OUTSIDE).stdout
        lib.append(float(out))
        whole.append(count / wall([python, "-c", WHOLE_SCRIPT, str(model), str(test), backend]))
    return {"cli_img_s": statistics.median(cli), "in_process_img_s": statistics.median(lib),
            "script_img_s": statistics.median(whole), "cli_streaming_img_s": statistics.median(streaming),
            "images": count}


def batch1_overhead(model: Path, data: Path, runs: int = 2000) -> dict[str, float]:
    from edgecls.runtime import Classifier
    from edgecls.runtime.preprocess import load_rgb, normalize, resize_for_model

    clf = Classifier.load(model)
    pixels = resize_for_model(load_rgb(sorted((data / "test" / "cat").iterdir())[0], 32), clf.spec)
    x = normalize(pixels[None], clf.spec)
    full, bare = [], []
    for _ in range(50):
        clf.predict(pixels), clf.engine.run(x)
    for _ in range(runs):
        t0 = time.perf_counter()
        clf.predict(pixels)
        t1 = time.perf_counter()
        clf.engine.run(x)
        t2 = time.perf_counter()
        full.append(t1 - t0)
        bare.append(t2 - t1)
    return {"classifier_ms": statistics.median(full) * 1e3, "engine_ms": statistics.median(bare) * 1e3,
            "format": clf.choice.format, "engine": clf.choice.engine}


def backends(model: Path, runs: int = 300) -> list[dict]:
    from edgecls.bundle import read_manifest
    from edgecls.format_table import FORMATS
    from edgecls.runtime.engines import engine_available, open_engine

    manifest = read_manifest(model)
    rng = np.random.default_rng(0)
    rows = []
    for entry in manifest["files"]:
        info = FORMATS[entry["format"]]
        for engine in info.engines:
            if not engine_available(engine):
                continue
            t0 = time.perf_counter()
            eng = open_engine(engine, model / entry["path"])
            load_s = time.perf_counter() - t0
            one = rng.standard_normal((1, 3, 32, 32), dtype=np.float32)
            many = rng.standard_normal((64, 3, 32, 32), dtype=np.float32)
            for _ in range(30):
                eng.run(one)
            lat = []
            for _ in range(runs):
                t = time.perf_counter()
                eng.run(one)
                lat.append(time.perf_counter() - t)
            eng.run(many)
            t = time.perf_counter()
            for _ in range(30):
                eng.run(many)
            rows.append({"format": info.name, "engine": engine, "load_ms": load_s * 1e3,
                         "p50_ms": statistics.median(lat) * 1e3, "img_s_64": 64 * 30 / (time.perf_counter() - t)})
    return rows


def auto_choices(model: Path) -> dict[str, str]:
    """What `backend="auto"` runs here, for one image and for a stream (the README's rule)."""
    from edgecls.runtime.model_files import choose_model

    return {work: f"{c.format} via {c.engine}" for work, c in
            (("one image", choose_model(model)), ("a stream", choose_model(model, throughput=True)))}


def main() -> None:
    from edgecls.host import cpu_name, instruction_sets
    from edgecls.runtime.model_files import STREAM_IMAGES
    from edgecls.shipped import reference_bundle

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--model", type=Path, default=reference_bundle())
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets/cifar10")
    ap.add_argument("--cold-runs", type=int, default=9)
    ap.add_argument("--stream-runs", type=int, default=3)
    ap.add_argument("--photos", type=int, default=STREAM_IMAGES,
                    help="640x480 photos for the ceiling's second folder (from this many on, `infer` streams as `auto` "
                         "in-process does)")
    ap.add_argument("--ceiling-runs", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma-separated: cold, stream, overhead, backends, ceiling")
    ap.add_argument("--stream-backend", default="auto",
                    help="the stream part's backend (onnxruntime: what `auto` streams on a CPU without VNNI)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    report: dict = {"cpu": cpu_name(), "instruction_sets": instruction_sets(), "python": args.python}
    print(f"{report['cpu']}: {' '.join(report['instruction_sets']) or 'no AVX2'}; python {args.python}")
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA")
    # the proxy for a CPU without int8 dot products: OpenVINO's oneDNN obeys it, onnxruntime's MLAS has no such knob
    if capped:
        report["onednn_max_cpu_isa"] = capped
        print(f"OpenVINO capped at ONEDNN_MAX_CPU_ISA={capped}; onnxruntime (MLAS) has no such knob and runs as "
              "this CPU allows")
    if "cold" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            images = {"cifar.jpg": sorted((args.data / "test" / "cat").iterdir())[0],
                      "photo-12mp.jpg": make_photo(args.data, Path(tmp))}
            report["cold_s"] = cold(args.python, args.model, images, args.cold_runs)
            report["imports_ms"] = import_breakdown(args.python, args.model, images["cifar.jpg"])
        bare = report["cold_s"]["bare import numpy, PIL.Image, onnxruntime"]
        for name, s in report["cold_s"].items():
            print(f"cold {name:<45} median {s:.3f} s  ({s / bare:.2f}× bare imports)")
        print("import breakdown (cumulative ms): " + ", ".join(f"{n} {ms:.0f}" for n, ms in report["imports_ms"]))
    if "stream" not in skip:
        s = report["stream"] = stream(args.python, args.model, args.data, args.stream_runs, args.stream_backend)
        print(f"stream {s['images']} JPEGs ({args.stream_backend}): CLI {s['cli_img_s']:.0f} img/s (whole command) "
              f"vs in-process predict {s['in_process_img_s']:.0f} img/s: "
              f"{s['cli_img_s'] / s['in_process_img_s']:.1%}; vs a script doing the same whole job "
              f"{s['script_img_s']:.0f} img/s: {s['cli_img_s'] / s['script_img_s']:.1%}; the CLI's "
              f"start-up taken out {s['cli_streaming_img_s']:.0f} img/s: "
              f"{s['cli_streaming_img_s'] / s['in_process_img_s']:.1%} of predict")
    if "overhead" not in skip:
        o = report["overhead"] = batch1_overhead(args.model, args.data)
        print(f"batch 1 ({o['format']} via {o['engine']}): Classifier.predict {o['classifier_ms']:.3f} ms vs bare "
              f"engine {o['engine_ms']:.3f} ms: +{o['classifier_ms'] / o['engine_ms'] - 1:.0%}")
    if "backends" not in skip:
        report["auto"] = auto_choices(args.model)
        print("auto picks: " + ", ".join(f"{work}: {c}" for work, c in report["auto"].items()))
        report["backends"] = backends(args.model)
        for r in report["backends"]:
            print(f"  {r['format']:<14} {r['engine']:<12} load {r['load_ms']:7.1f} ms  batch 1 p50 {r['p50_ms']:.3f} ms"
                  f"  batch 64 {r['img_s_64']:7.0f} img/s")
    if "ceiling" not in skip:
        from edgecls.host import usable_cores
        from stream_ceiling import ceiling, print_rows

        cores = usable_cores()
        rows = ceiling(args.python, edgecls_command(args.python), args.model, args.data, args.photos,
                       args.ceiling_runs, cores, OUTSIDE)
        report["ceiling"] = rows
        print_rows(rows, cores)
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
