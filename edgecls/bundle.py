"""The export bundle's contract, in one torch-free place: the exporter writes with it, the runtime reads with it.

A bundle is a folder holding model files, ``manifest.json`` (what each file is, its sha256, how it
matched PyTorch) and ``golden.npz``: a fixed, seeded sample of held-out images with PyTorch's FP32
logits for them and the logits every file produced on the build machine, so any device can
re-prove the bundle without PyTorch (``edgecls verify``).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .digest import file_sha256
from .errors import EdgeclsError, UsageError

if TYPE_CHECKING:  # numpy is imported where golden vectors are read or written: the CLI starts without it
    import numpy as np

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "edgecls-export"
SCHEMA_VERSION = 2  # 1: no schema_version key and no golden vectors
GOLDEN = "golden.npz"
GOLDEN_IMAGES = 64
REFERENCE = "pytorch"  # the golden logits every format is compared with: PyTorch eager FP32

FP32, INT8 = "fp32", "int8"
TORCH, ONNXRUNTIME, OPENVINO = "torch", "onnxruntime", "openvino"


@dataclass(frozen=True)
class FormatInfo:
    name: str
    label: str  # for tables
    precision: str
    engines: tuple[str, ...]  # engines that can run the file, preferred first
    suffixes: tuple[str, ...]  # files written, model file first (stem = model name)
    int8_of: str | None = None  # the FP32 format this one quantizes

    @property
    def engine(self) -> str:
        return self.engines[0]


FORMATS: dict[str, FormatInfo] = {f.name: f for f in (
    FormatInfo("torchscript", "TorchScript", FP32, (TORCH,), (".torchscript.pt",)),
    FormatInfo("onnx", "ONNX FP32", FP32, (ONNXRUNTIME, OPENVINO), (".onnx",)),
    FormatInfo("openvino", "OpenVINO FP32", FP32, (OPENVINO,), (".xml", ".bin")),
    FormatInfo("onnx-int8", "ONNX INT8", INT8, (ONNXRUNTIME, OPENVINO), ("-int8.onnx",), int8_of="onnx"),
    FormatInfo("openvino-int8", "OpenVINO INT8", INT8, (OPENVINO,), ("-int8.xml", "-int8.bin"), int8_of="openvino"),
)}

# What verify holds each row to; written into the manifest so a bundle carries its own bar.
# FP32: the same top-1 on every golden image and logits within 1e-4 of the largest |logit|.
# INT8: integer kernels differ between CPUs (VNNI or not), so top-1 agreement is the gate: with
# its own build-machine logits, and with PyTorch no worse than the build machine's agreement by
# more than a few images; a loose logit bound catches a broken kernel.
# End to end: JPEG decoders differ between builds, so a few labels may move.
TOLERANCE = {
    FP32: {"min_agreement": 1.0, "max_rel_dlogit": 1e-4},
    INT8: {"min_agreement_build": 0.95, "max_rel_dlogit_build": 0.10, "max_agreement_drop": 0.05},
    "end_to_end": {"min_agreement": 0.95},
}


# Bundles shipped as package data (edgecls.reference, so a wheel has them too): name → folder.
SHIPPED = {"resnet20": "exports", "airbench": "airbench/exports"}
# The runtime's default: airbench is 2.3 points more accurate, but its INT8 runs at half ResNet-20's
# throughput on a CPU (artifacts/reference/airbench/MODEL_CARD.md).
DEFAULT_SHIPPED = "resnet20"


def reference_bundle(name: str = DEFAULT_SHIPPED) -> Path:
    """A shipped model's export folder. From the package's own path, not importlib.resources (4 ms of a
    cold `infer`): onnxruntime and OpenVINO need real files, so a zipped install could not run it anyway."""
    import edgecls.reference

    return Path(edgecls.reference.__file__).parent / SHIPPED[name]


def model_location(model: Path | None) -> Path:
    """Where a command's model argument points: the default shipped bundle for None, a shipped
    model's bundle for its name (``resnet20``, ``airbench``) when no such path exists, else the path."""
    if model is None:
        return reference_bundle()
    if str(model) in SHIPPED and not model.exists():
        return reference_bundle(str(model))
    return model


def runtime_preference() -> tuple[tuple[str, str], ...]:
    """(format, engine) in the order the runtime picks from a bundle: INT8 before FP32, table order."""
    return tuple((f.name, f.engine) for precision in (INT8, FP32) for f in FORMATS.values()
                 if f.precision == precision and f.engine != TORCH)


# --- manifest -------------------------------------------------------------------------------------

def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise EdgeclsError(f"{folder} has no {MANIFEST} (is it an edgecls export folder?)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgeclsError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise EdgeclsError(f"{path} is not an edgecls export manifest")
    return manifest


def is_export_folder(folder: Path) -> bool:
    """True for a folder an earlier export wrote (safe to replace); protects anything else."""
    try:
        read_manifest(folder)
    except (EdgeclsError, OSError):
        return False
    return True


def file_digests(entry: dict) -> list[tuple[str, str]]:
    """(relative path, sha256) of a manifest entry and of its companion files (an IR's .bin)."""
    return [(entry["path"], entry["sha256"])] + [(c["path"], c["sha256"]) for c in entry.get("companions", [])]


def verify_files(folder: Path, manifest: dict) -> None:
    """Refuse a tampered or half-copied export: every listed file must match its sha256."""
    entries = list(manifest.get("files", []))
    if manifest.get("golden"):
        entries.append(manifest["golden"])
    for entry in entries:
        verify_entry(folder, entry)


def verify_entry(folder: Path, entry: dict) -> None:
    """One manifest entry's files against their sha256: what loading a model needs, whatever else the
    folder holds."""
    for rel, expected in file_digests(entry):
        target = Path(folder) / rel
        if not target.is_file():
            raise EdgeclsError(f"{target} is listed in {MANIFEST} but missing")
        if file_sha256(target) != expected:
            raise EdgeclsError(f"{target} does not match the sha256 in {MANIFEST} (modified or incomplete copy)")


def file_entry(path: Path) -> dict:
    return {"path": path.name, "size": path.stat().st_size, "sha256": file_sha256(path)}


# --- golden vectors -------------------------------------------------------------------------------

@dataclass
class Golden:
    images: np.ndarray  # uint8 NHWC at the model's input size, exactly what PyTorch was fed
    labels: np.ndarray  # int64 ground truth
    names: list[str]  # where each image came from (e.g. test/cat/0042.jpg)
    encoded: list[bytes]  # the original encoded files, for the end-to-end row
    logits: dict[str, np.ndarray] = field(default_factory=dict)  # REFERENCE and format name → float32 (N, C)


def write_golden(path: Path, golden: Golden) -> None:
    import numpy as np

    blobs = [np.frombuffer(b, dtype=np.uint8) for b in golden.encoded]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    arrays = {"images": golden.images, "labels": golden.labels.astype(np.int64),
              "names": np.asarray(golden.names, dtype=str), "encoded": np.concatenate(blobs) if blobs else
              np.zeros(0, np.uint8), "encoded_offsets": offsets,
              **{f"logits.{k}": v.astype(np.float32) for k, v in golden.logits.items()}}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    Path(path).write_bytes(buffer.getvalue())


def read_golden(folder: Path, manifest: dict) -> Golden:
    """The bundle's golden vectors; a bundle exported before they existed gets a clear message."""
    if not manifest.get("golden"):
        raise UsageError(f"{folder} carries no golden vectors (exported by edgecls "
                         f"{manifest.get('edgecls_version', '< 0.2')}); re-export it with `edgecls export` "
                         "to make it verifiable on a device")
    import numpy as np

    try:
        with np.load(Path(folder) / manifest["golden"]["path"], allow_pickle=False) as z:
            offsets = z["encoded_offsets"]
            blob = z["encoded"].tobytes()
            return Golden(images=z["images"], labels=z["labels"], names=[str(n) for n in z["names"]],
                          encoded=[blob[a:b] for a, b in zip(offsets[:-1], offsets[1:])],
                          logits={k.split(".", 1)[1]: z[k] for k in z.files if k.startswith("logits.")})
    except (OSError, KeyError, ValueError) as e:
        raise EdgeclsError(f"cannot read the golden vectors of {folder}: {e}") from None
