"""How the shipped bundles (package data, in the wheel) are made; rerun after a format or model changes.

    python benchmarks/ship_bundles.py [resnet20] [airbench]

ResNet-20 ships every runtime format (FP32, FP16, INT8; the 8.3 MB folder). airbench's FP32 files are 8 MB
each, so within the wheel's 25 MB budget it ships ONNX FP32 + INT8 and the phone runtimes' INT8 files
(LiteRT INT8, ExecuTorch INT8); the rest builds from its checkpoint, which the repository holds:
``edgecls export artifacts/reference/airbench/airbench.pt --format all --int8``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = "../shared/datasets/cifar10"
BUNDLES = {
    "resnet20": ("artifacts/reference/resnet20.pt", "artifacts/reference/exports",
                 "onnx,openvino,onnx-fp16,openvino-fp16,litert,ncnn,executorch", "1000", ()),
    "airbench": ("artifacts/reference/airbench/airbench.pt", "artifacts/reference/airbench/exports",
                 "onnx,litert,executorch", "10000", ("litert", "executorch")),
}


def ship(name: str) -> None:
    from edgecls.export.prune import drop_formats

    checkpoint, folder, formats, check_images, dropped = BUNDLES[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bundle" if dropped else REPO / folder
        subprocess.run([sys.executable, "-m", "edgecls", "export", checkpoint, "--format", formats, "--int8",
                        "--data", DATA, "--check-images", check_images, "--out", str(out)], cwd=REPO, check=True)
        if dropped:
            drop_formats(out, list(dropped))
            shutil.rmtree(REPO / folder)
            shutil.copytree(out, REPO / folder)


if __name__ == "__main__":
    for model in sys.argv[1:] or list(BUNDLES):
        ship(model)
