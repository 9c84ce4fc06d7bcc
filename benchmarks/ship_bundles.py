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
# name → (formats, check images, formats dropped after the export); paths: edgecls.shipped
BUNDLES = {
    "resnet20": ("onnx,openvino,onnx-fp16,openvino-fp16,litert,ncnn,executorch", "1000", ()),
    "airbench": ("onnx,litert,executorch", "10000", ("litert", "executorch")),
}


def ship(name: str) -> None:
    from edgecls.export.prune import drop_formats
    from edgecls.shipped import reference_bundle, reference_checkpoint

    formats, check_images, dropped = BUNDLES[name]
    folder = reference_bundle(name)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bundle" if dropped else folder
        subprocess.run([sys.executable, "-m", "edgecls", "export", str(reference_checkpoint(name)), "--format",
                        formats, "--int8", "--data", DATA, "--check-images", check_images, "--out", str(out)],
                       cwd=REPO, check=True)
        if dropped:
            drop_formats(out, list(dropped))
            shutil.rmtree(folder)
            shutil.copytree(out, folder)


if __name__ == "__main__":
    for model in sys.argv[1:] or list(BUNDLES):
        ship(model)
