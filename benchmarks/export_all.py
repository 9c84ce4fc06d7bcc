"""Wall time of `edgecls export --format all --int8` with default settings, per stage.

    python benchmarks/export_all.py [CKPT] [--data PATH] [--out DIR]

Runs the same library call as the CLI (default: 300 calibration images, 1000 check images,
dynamic batch) in this process, timing the library imports separately (a CLI run pays both).
The issue's target for the reference ResNet-20: <= 60 s on this CPU. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path


def warm_imports() -> float:
    start = time.perf_counter()
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # as export.quantize does
    import nncf  # noqa: F401
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import openvino  # noqa: F401
    import torch  # noqa: F401

    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", type=Path, help="default: as `edgecls export` picks it")
    ap.add_argument("--data", default=None, help="default: the checkpoint's training data")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", type=Path, default=None, help="default: a temporary folder, deleted afterwards")
    args = ap.parse_args()

    imports_s = warm_imports()
    from edgecls.export.pipeline import ExportOptions, export_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        opts = ExportOptions(checkpoint=args.checkpoint, formats="all", int8=True, data=args.data,
                             cache_dir=args.cache_dir, out=args.out or Path(tmp) / "export")
        start = time.perf_counter()
        result = export_checkpoint(opts, log=lambda m: None)
        total = time.perf_counter() - start
    stages = result.manifest["build_seconds"]
    print(f"{'imports':<18} {imports_s:6.1f} s")
    for stage, seconds in stages.items():
        print(f"{stage:<18} {seconds:6.1f} s")
    print(f"{'other':<18} {total - sum(stages.values()):6.1f} s  (checkpoint, hashing, manifest)")
    print(f"{'export':<18} {total:6.1f} s  (target <= 60 s; {total + imports_s:.1f} s with imports)")


if __name__ == "__main__":
    main()
