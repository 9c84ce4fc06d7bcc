"""Runtime speed: cold `edgecls infer` on a 12 MP JPEG, CIFAR-10 test-set throughput, per-image overhead.

    python benchmarks/runtime_speed.py [--model artifacts/reference/exports] [--data ../shared/datasets/cifar10]

1. Cold CLI: a new `edgecls infer photo.jpg` process per run (median of --cold-runs), wall time.
2. Throughput: all CIFAR-10 test JPEGs through `Classifier.classify` (decode + preprocess + model), img/s.
3. Overhead at batch 1: preprocess + postprocess time vs the engine call, per 32×32 image.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_photo(data: Path, folder: Path) -> Path:
    """A 4000×3000 (12 MP) JPEG made from a real test image, with noise so it compresses like a photo."""
    base = Image.open(sorted((data / "test" / "ship").iterdir())[0]).convert("RGB").resize((4000, 3000))
    noisy = np.asarray(base, dtype=np.int16) + np.random.default_rng(0).integers(-12, 12, (3000, 4000, 3))
    path = folder / "photo.jpg"
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def cold_cli(model: Path, photo: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "edgecls", "infer", str(photo), "--model", str(model)],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def throughput(model: Path, data: Path, backend: str) -> tuple[float, str]:
    from edgecls.runtime import Classifier

    clf = Classifier.load(model, backend=backend)
    paths = sorted((data / "test").rglob("*.jpg"))
    list(clf.classify(paths[:256], batch_size=256))  # warm-up
    t0 = time.perf_counter()
    n = sum(1 for _ in clf.classify(paths, batch_size=256))
    return n / (time.perf_counter() - t0), f"{clf.choice.format} via {clf.choice.engine}"


def overhead(model: Path, data: Path, backend: str, runs: int = 300) -> tuple[float, float]:
    from edgecls.runtime import Classifier
    from edgecls.runtime.classifier import softmax
    from edgecls.runtime.preprocess import load_rgb, normalize, resize_for_model

    clf = Classifier.load(model, backend=backend)
    img = load_rgb(sorted((data / "test" / "cat").iterdir())[0], 32)
    pre, eng = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        x = normalize(resize_for_model(img, clf.spec)[None], clf.spec)
        t1 = time.perf_counter()
        logits = clf.engine.run(x)
        t2 = time.perf_counter()
        probs = softmax(logits)
        np.argsort(-probs, axis=1)[:, :5]
        t3 = time.perf_counter()
        pre.append((t1 - t0) + (t3 - t2))
        eng.append(t2 - t1)
    return statistics.median(pre) * 1e3, statistics.median(eng) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="artifacts/reference/exports")
    ap.add_argument("--data", default="../shared/datasets/cifar10")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--cold-runs", type=int, default=7)
    args = ap.parse_args()
    model, data = Path(args.model), Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        photo = make_photo(data, Path(tmp))
        cold = cold_cli(model, photo, args.cold_runs)
    print(f"cold `edgecls infer photo.jpg` (12 MP JPEG): median {statistics.median(cold):.3f} s, "
          f"min {min(cold):.3f} s over {len(cold)} runs")
    ips, what = throughput(model, data, args.backend)
    print(f"CIFAR-10 test set (10,000 JPEGs, decode included), {what}: {ips:.0f} images/s")
    pre, eng = overhead(model, data, args.backend)
    print(f"batch 1, 32×32: preprocess+postprocess {pre:.3f} ms vs engine {eng:.3f} ms "
          f"(overhead {100 * pre / eng:.0f}% of the engine call)")


if __name__ == "__main__":
    main()
