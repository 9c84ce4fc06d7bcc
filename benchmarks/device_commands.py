"""The device commands side by side in one run (issue 12): eval, verify, benchmark, base-install size.

    python benchmarks/device_commands.py [--model artifacts/reference/exports]
        [--checkpoint artifacts/reference/resnet20.pt] [--data ../shared/datasets/cifar10]
        [--rounds 3] [--latency-rounds 6] [--sections eval,verify,latency,venv]

1. `edgecls eval EXPORT_DIR --data DIR` without PyTorch (a subprocess where importing torch fails) on the
   test JPEGs: its own images/s against in-process ``Classifier.predict(paths)`` on the same files,
   rounds interleaved (target >= 95%); its accuracy against the exporter's parity path on the same file
   (trainer decode + torch normalization + the engine, argmax), which must be equal.
2. Cold `edgecls verify` (the shipped bundle), wall time per process (target <= 1.0 s).
3. `edgecls benchmark EXPORT_DIR` (torch-free) against `edgecls benchmark CKPT --export EXPORT_DIR`: batch-1
   p50 latency of the same files on the same engines, best of the rounds, the two sides alternating
   (target within 10%); peak RSS beside it.
4. The base install (`pip install .`, no extras) in a fresh venv: `du -sm` (target < 260 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "torchvision", "onnx", "nncf", "matplotlib")
TARGETS = {"eval": 0.95, "verify_s": 1.0, "latency": 0.10, "venv_mb": 260}


def edgecls(*args: str, torch_free: bool = False) -> subprocess.CompletedProcess:
    """`edgecls ARGS` in a new process; ``torch_free``: importing torch & co. raises there."""
    if torch_free:
        code = (f"import sys\nfor n in {BLOCKED!r}:\n    sys.modules[n] = None\n"
                f"sys.argv = ['edgecls', *{list(args)!r}]\nfrom edgecls.cli import main\nmain()\n")
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "edgecls", *args]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"edgecls {' '.join(args)} failed:\n{result.stderr}")
    return result


def verdict(ok: bool) -> str:
    return "target met" if ok else "TARGET MISSED"


def eval_vs_predict(model: Path, data: Path, rounds: int) -> dict:
    """Interleaved rounds: in-process predict on every test JPEG, then the torch-free eval CLI on the same."""
    from edgecls.runtime import Classifier
    from edgecls.runtime.evaluate import labelled_files

    clf = Classifier.load(model, backend="onnxruntime")
    paths = labelled_files(data, clf.classes).paths
    clf.predict(paths[:256])  # warm-up: engine, page cache
    predict_ips, eval_ips, result = [], [], {}
    for _ in range(rounds):
        start = time.perf_counter()
        clf.predict(paths)
        predict_ips.append(len(paths) / (time.perf_counter() - start))
        result = json.loads(edgecls("eval", str(model), "--data", str(data), "--backend", "onnxruntime", "--json",
                                    torch_free=True).stdout)
        eval_ips.append(result["images_per_s"])
    return {"images": len(paths), "format": clf.choice.format, "predict_ips": predict_ips, "eval_ips": eval_ips,
            "eval": result}


def parity_accuracy(model_file: Path, data: Path, spec) -> dict:
    """The exporter's way: trainer's decode cache, torch normalization, the runtime engine at its check batch."""
    import numpy as np

    from edgecls.export.benchmark import CHECK_BATCH
    from edgecls.export.data import load_check_set
    from edgecls.runtime.engines import open_engine

    check = load_check_set(str(data), spec, None, 0, None, None)
    run = open_engine("onnxruntime", model_file).run
    logits = np.concatenate([run(check.images[i:i + CHECK_BATCH]) for i in range(0, len(check.labels), CHECK_BATCH)])
    top2 = np.sort(logits, axis=1)[:, -2:]
    return {"accuracy": float((logits.argmax(1) == check.labels).mean()), "images": len(check.labels),
            "tied_top1": int((top2[:, 0] == top2[:, 1]).sum())}


def cold_verify(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        edgecls("verify", torch_free=True)
        times.append(time.perf_counter() - start)
    return times


def latency_side_by_side(model: Path, checkpoint: Path, data: Path, rounds: int) -> dict:
    """Best p50 and peak RSS per (format, engine) over the rounds, and each side's accuracy on the same 1000
    test images (the first of them is the one timed); the two sides alternate (ABBA) against drift."""
    from edgecls.bundle import read_manifest
    from edgecls.runtime.benchmark import PYTORCH

    formats = ",".join(e["format"] for e in read_manifest(model)["files"])
    same = ("--data", str(data), "--check-images", "1000", "--json")
    sides = {"device": ("benchmark", str(model), *same),
             "torch": ("benchmark", str(checkpoint), "--export", str(model), "--formats", formats, *same)}
    rows: dict[str, dict] = {"device": {}, "torch": {}}
    for i in range(rounds):
        for side in ("device", "torch") if i % 2 == 0 else ("torch", "device"):
            for row in json.loads(edgecls(*sides[side], torch_free=side == "device").stdout):
                if row["format"] != PYTORCH:
                    rows[side].setdefault((row["format"], row["engine"]), []).append(row)
    best = lambda rs, key: min(r[key] for r in rs)  # noqa: E731
    return {key: {side: (best(rows[side][key], "latency_ms_p50"), best(rows[side][key], "peak_rss_bytes"),
                         rows[side][key][0]["accuracy"]) for side in rows}
            for key in rows["torch"] if key in rows["device"]}


def base_venv_mb(venv: Path) -> tuple[int, list[str]]:
    """A fresh venv with `pip install REPO` (no extras): total MB and the largest installed packages."""
    subprocess.run(["python3", "-m", "venv", "--clear", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(REPO)], capture_output=True, text=True)
    if pip.returncode != 0:
        raise SystemExit(f"pip install {REPO} failed:\n{pip.stderr}")
    total = int(subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True).stdout.split()[0])
    site = next(venv.glob("lib/python*/site-packages"))
    sizes = subprocess.run(["du", "-sm", *map(str, site.iterdir())], capture_output=True, text=True).stdout
    largest = sorted((line.split("\t") for line in sizes.splitlines()), key=lambda p: -int(p[0]))[:6]
    return total, [f"{Path(p).name} {mb} MB" for mb, p in largest]


def report_eval(args) -> None:
    from edgecls.runtime import Classifier

    ev = eval_vs_predict(args.model, args.data, args.rounds)
    ratio = statistics.median(ev["eval_ips"]) / statistics.median(ev["predict_ips"])
    best = max(ev["eval_ips"]) / max(ev["predict_ips"])
    print(f"\n1. eval vs predict, {ev['images']} JPEGs, {ev['format']} via onnxruntime, {args.rounds} rounds:")
    print(f"   in-process Classifier.predict: {', '.join(f'{v:,.0f}' for v in ev['predict_ips'])} img/s")
    print(f"   torch-free `edgecls eval`:     {', '.join(f'{v:,.0f}' for v in ev['eval_ips'])} img/s")
    print(f"   ratio of medians {ratio:.1%}, of bests {best:.1%} (>= {TARGETS['eval']:.0%}: "
          f"{verdict(min(ratio, best) >= TARGETS['eval'])})")
    clf = Classifier.load(args.model, backend="onnxruntime")
    parity = parity_accuracy(clf.choice.path, args.data, clf.spec)
    same = parity["accuracy"] == ev["eval"]["accuracy"]
    recorded = ev["eval"]["recorded"]
    print(f"   accuracy: eval {ev['eval']['accuracy']:.2%}, parity path {parity['accuracy']:.2%} on "
          f"{parity['images']} images ({'equal' if same else 'DIFFERENT'}; {parity['tied_top1']} images have "
          f"exactly tied top-2 logits); manifest recorded {recorded['accuracy']:.2%} on {recorded['images']} images")


def report_verify(args) -> None:
    if "verify" not in edgecls("--help").stdout:
        print("\n2. `edgecls verify` is not registered yet: skipped")
        return
    times = cold_verify(max(5, args.rounds))
    median = statistics.median(times)
    print(f"\n2. cold `edgecls verify` (shipped bundle, torch blocked): median {median:.2f} s, min {min(times):.2f} s "
          f"over {len(times)} runs ({verdict(median <= TARGETS['verify_s'])})")


def report_latency(args) -> None:
    print(f"\n3. batch-1 p50 latency, best of {args.latency_rounds} rounds: torch-free `benchmark EXPORT_DIR` vs "
          "`benchmark CKPT --export EXPORT_DIR`; accuracy of each on the same 1000 test images")
    for (fmt, engine), side in latency_side_by_side(args.model, args.checkpoint, args.data,
                                                    args.latency_rounds).items():
        (dev, dev_rss, dev_acc), (tor, tor_rss, tor_acc) = side["device"], side["torch"]
        change = dev / tor - 1
        print(f"   {fmt:<14} {engine:<12} {dev:.3f} ms vs {tor:.3f} ms ({change:+.1%}, "
              f"{verdict(abs(change) <= TARGETS['latency'])}); peak RSS {dev_rss / 1e6:.0f} MB vs "
              f"{tor_rss / 1e6:.0f} MB; accuracy {dev_acc:.2%} vs {tor_acc:.2%} "
              f"({'equal' if dev_acc == tor_acc else 'DIFFERENT'})")


def report_venv(args) -> None:
    total, largest = base_venv_mb(args.venv)
    print(f"\n4. base install (`pip install {REPO}`, no extras) in {args.venv}: {total} MB "
          f"({verdict(total < TARGETS['venv_mb'])}); largest: {', '.join(largest)}")


SECTIONS = {"eval": report_eval, "verify": report_verify, "latency": report_latency, "venv": report_venv}


def main() -> None:
    from edgecls.host import cpu_name, instruction_sets
    from edgecls.host import usable_cores
    from edgecls.shipped import reference_bundle, reference_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=reference_bundle())
    ap.add_argument("--checkpoint", type=Path, default=reference_checkpoint())
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets/cifar10")
    ap.add_argument("--rounds", type=int, default=3, help="eval vs predict rounds")
    ap.add_argument("--latency-rounds", type=int, default=6, help="benchmark rounds per side")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/base"))
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma list of " + ", ".join(SECTIONS))
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}, {usable_cores()} cores usable, flags {', '.join(instruction_sets()) or 'none'}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    for name in args.sections.split(","):
        SECTIONS[name.strip()](args)


if __name__ == "__main__":
    main()
