"""What proving a file on this machine costs (issue 33): the first load's proof, and a proven file's cold start.

    python benchmarks/proof_cost.py [--base REV] [--runs 15] [--models resnet20,airbench] [--out FILE] [--note …]

1. proof: the shipped ResNet-20's and airbench's INT8 files (what `auto` answers from), each loaded in a fresh
   process with an empty proof cache, so the proof runs on an engine just opened, as on a machine's first
   load; the seconds `Classifier.load` spent proving (the verdict's own record), median of ``--runs``.
2. cold: `edgecls infer <one CIFAR JPEG> --model <bundle>` start to finish, interleaved: this checkout with the
   file's verdict cached (every load after the first), with an empty cache (the first load), and ``--base``
   (default: the commit before the proof, 4b33f4b) unpacked beside it with the same interpreter and the same
   model files; medians of wall time and of the CPU time each command used (on a shared host, what the command
   itself cost). Child processes run outside the checkout, from bytecode as an installed package does (each
   variant runs once untimed first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "datasets" / "cifar10"
BASE = "4b33f4b"  # the last commit whose runtime answered without a proof
MODELS = ("resnet20", "airbench")

PROVE = """
import json, sys
from pathlib import Path
from edgecls.runtime import Classifier
clf = Classifier.load(sys.argv[1])
(record,) = [json.loads(p.read_text()) for p in Path(sys.argv[2]).glob('*.json')]
print(json.dumps({"seconds": record["seconds"], "format": clf.choice.format, "engine": clf.choice.engine,
                  "status": clf.proof.status}))
"""


def unpack(rev: str, into: Path) -> Path:
    """``rev`` of this repository laid out as its package imports it (pyproject's package-dir), for PYTHONPATH."""
    src = into / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    pkg = into / "pkg"
    shutil.copytree(src / "edgecls", pkg / "edgecls")
    for name, folder in (("runtime", "runtime"), ("trainer", "trainer"), ("export", "export"),
                         ("reference", "artifacts/reference")):
        (pkg / "edgecls" / name).symlink_to(src / folder, target_is_directory=True)
    return pkg


def run(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and the CPU seconds (user + system) the command used: on a shared host the second is
    what the command itself cost, whatever else ran."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{' '.join(cmd)} failed ({status})")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def proof_seconds(model: Path, runs: int) -> dict:
    seconds, last = [], {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run([sys.executable, "-c", PROVE, str(model), cache], check=True, capture_output=True,
                                 text=True, env={**os.environ, "EDGECLS_CACHE_DIR": cache},
                                 cwd=tempfile.gettempdir()).stdout
        last = json.loads(out)
        seconds.append(last["seconds"])
    return {**last, "median_ms": 1000 * statistics.median(seconds), "min_ms": 1000 * min(seconds),
            "max_ms": 1000 * max(seconds)}


def cold_starts(model: Path, image: Path, base: str, base_pkg: Path, runs: int) -> dict[str, tuple[float, float]]:
    warm_cache, empty = tempfile.mkdtemp(), tempfile.mkdtemp()
    infer = [sys.executable, "-m", "edgecls", "infer", str(image), "--model", str(model)]
    # As an installed package runs: from bytecode (pip compiles at install), so no variant pays for compiling.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    variants = {f"before the proof ({base})": {**env, "PYTHONPATH": str(base_pkg)},
                "proven, verdict cached": {**env, "EDGECLS_CACHE_DIR": warm_cache},
                "first load, proof runs": {**env, "EDGECLS_CACHE_DIR": empty}}
    for variant_env in variants.values():  # bytecode written, files cached, the verdict every later load reads
        run(infer, variant_env)
    times = {k: [] for k in variants}
    for _ in range(runs):
        for name, variant_env in variants.items():
            for stale in Path(empty).glob("*.json"):
                stale.unlink()
            times[name].append(run(infer, variant_env))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}


def header(args) -> list[str]:
    from edgecls.host import cpu_name, instruction_sets, usable_cores

    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if shutil.which("lscpu") else ""
    flag_line = next((line.split(":", 1)[1].split() for line in flags.splitlines() if line.startswith("Flags")), [])
    return [f"# proof cost, {date.today()}: python benchmarks/proof_cost.py --base {args.base} --runs {args.runs} "
            f"--models {args.models}",
            f"# cpu: {cpu_name()}, {usable_cores()} cores usable; instruction sets: {', '.join(instruction_sets())}",
            f"# lscpu flags ({len(flag_line)}): "
            + " ".join(f for f in flag_line if f.startswith(("avx", "amx", "fma", "sse4", "f16c"))),
            f"# python {platform.python_version()}, {platform.platform()}",
            f"# load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"] + \
        ([f"# note: {args.note}"] if args.note else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--note", help="a line for the header: what else the host was doing")
    parser.add_argument("--models", default=",".join(MODELS), help="shipped models to measure, comma-separated")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from edgecls.shipped import reference_bundle

    lines = header(args)
    image = sorted((CIFAR / "test" / "dog").iterdir())[0]
    with tempfile.TemporaryDirectory() as tmp:
        base_pkg = unpack(args.base, Path(tmp))
        for name in args.models.split(","):
            model = reference_bundle(name)
            p = proof_seconds(model, args.runs)
            lines.append(f"proof   {name:<9} {p['format']} via {p['engine']} ({p['status']}): median "
                         f"{p['median_ms']:.1f} ms (min {p['min_ms']:.1f}, max {p['max_ms']:.1f}) over {args.runs} "
                         "first loads, 64 golden images")
            cold = cold_starts(model, image, args.base, base_pkg, args.runs)
            wall0, cpu0 = cold[next(iter(cold))]
            for variant, (wall, cpu) in cold.items():
                lines.append(f"cold    {name:<9} edgecls infer {image.name}: {variant:<24} median wall "
                             f"{1000 * wall:6.1f} ms ({wall / wall0:.3f}x before), CPU {1000 * cpu:6.1f} ms "
                             f"({cpu / cpu0:.3f}x before)")
            print("\n".join(lines[-4:]), flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
