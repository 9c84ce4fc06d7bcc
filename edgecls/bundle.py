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
REFERENCE = "pytorch"  # PyTorch eager FP32: the logits every format is compared with, by this one name

FP32, FP16, INT8 = "fp32", "fp16", "int8"
TORCH, ONNXRUNTIME, OPENVINO = "torch", "onnxruntime", "openvino"
LITERT, NCNN, EXECUTORCH = "litert", "ncnn", "executorch"
# LiteRT files have no dynamic axes: the batch they are converted at (phones run one image at a time), recorded
# in the manifest's input_shape; the engine feeds any number of images this many at a time.
LITERT_BATCH = 1
# Files whose format has no place for edgecls's metadata (NCNN's .param, LiteRT and ExecuTorch as converted)
# carry it beside them: the model file's name plus this suffix, a companion with its own sha256.
META_SIDECAR = ".json"


@dataclass(frozen=True)
class FormatInfo:
    name: str
    label: str  # for tables
    precision: str
    engines: tuple[str, ...]  # engines that can run the file, preferred first
    suffixes: tuple[str, ...]  # files written, model file first (stem = model name)
    int8_of: str | None = None  # the FP32 format this one quantizes
    converted_from: str | None = None  # the file this one is converted from (built in scratch if not chosen)
    fixed_batch: int | None = None  # the batch the file is fixed at whatever --dynamic-batch says

    @property
    def engine(self) -> str:
        return self.engines[0]


FORMATS: dict[str, FormatInfo] = {f.name: f for f in (
    FormatInfo("torchscript", "TorchScript", FP32, (TORCH,), (".torchscript.pt",)),
    FormatInfo("onnx", "ONNX FP32", FP32, (ONNXRUNTIME, OPENVINO), (".onnx",)),
    FormatInfo("openvino", "OpenVINO FP32", FP32, (OPENVINO,), (".xml", ".bin")),
    FormatInfo("onnx-int8", "ONNX INT8", INT8, (ONNXRUNTIME, OPENVINO), ("-int8.onnx",), int8_of="onnx"),
    FormatInfo("openvino-int8", "OpenVINO INT8", INT8, (OPENVINO,), ("-int8.xml", "-int8.bin"), int8_of="openvino"),
    FormatInfo("onnx-fp16", "ONNX FP16", FP16, (ONNXRUNTIME, OPENVINO), ("-fp16.onnx",), converted_from="onnx"),
    FormatInfo("openvino-fp16", "OpenVINO FP16", FP16, (OPENVINO,), ("-fp16.xml", "-fp16.bin")),
    FormatInfo("litert", "LiteRT FP32", FP32, (LITERT,), (".tflite", ".tflite" + META_SIDECAR),
               fixed_batch=LITERT_BATCH),
    FormatInfo("litert-int8", "LiteRT INT8", INT8, (LITERT,), ("-int8.tflite", "-int8.tflite" + META_SIDECAR),
               int8_of="litert", fixed_batch=LITERT_BATCH),
    FormatInfo("ncnn", "NCNN FP32", FP32, (NCNN,), (".ncnn.param", ".ncnn.bin", ".ncnn.param" + META_SIDECAR),
               converted_from="onnx"),
    FormatInfo("executorch", "ExecuTorch FP32", FP32, (EXECUTORCH,), (".pte", ".pte" + META_SIDECAR)),
    FormatInfo("executorch-int8", "ExecuTorch INT8", INT8, (EXECUTORCH,), ("-int8.pte", "-int8.pte" + META_SIDECAR),
               int8_of="executorch"),
)}

# --- what "equal to PyTorch" means: one rule for the export gate, verify, benchmark and the tests ----------

# FP32 files: logits within this fraction of the reference's largest |logit|. Kernels differ by instruction
# set (oneDNN eager, MLAS, OpenVINO; AVX2, AVX-512, AMX; batch 1 to 500; channels_last): the shipped bundles'
# parity rows measured 3.3e-6 (ResNet-20) and 4.3e-6 (airbench) absolute on 1,000 and 10,000 test images,
# 4e-7 and 8e-7 of their largest |logit| (8.1 and 5.5), so 1e-4 leaves >100x headroom and still catches a
# changed weight.
FP32_MAX_REL_DLOGIT = 1e-4
# A top-1 that moved is a near-tie, and excused, when the reference scores the two classes within this
# fraction of its largest |logit|: within the logit bound each may move by FP32_MAX_REL_DLOGIT, in opposite ways.
NEAR_TIE_REL = 2 * FP32_MAX_REL_DLOGIT
# Near-ties are rare: 3 and 2 of the 10,000 CIFAR-10 test images sit that close for the shipped ResNet-20 and
# airbench (benchmarks/results/near-ties-2026-12-04.txt). More than this fraction of the images (and at least
# one) excused says the logits are not honest rounding, so the row fails.
NEAR_TIE_MAX_FRACTION = 0.01


@dataclass(frozen=True)
class Agreement:
    """Top-1 of a file against the reference, with the near-ties it excused counted, not hidden."""
    images: int
    same: int  # identical top-1
    near_ties: tuple[int, ...]  # image indices whose top-1 moved between two classes the reference nearly ties
    flips: tuple[int, ...]  # image indices whose top-1 moved for real

    @property
    def rate(self) -> float:
        """Plain top-1 agreement, as tables quote it."""
        return self.same / self.images if self.images else 1.0

    @property
    def near_tie_cap(self) -> int:
        return near_tie_cap(self.images)

    @property
    def holds(self) -> bool:
        """Every top-1 equal, near-ties excused up to the cap."""
        return not self.flips and len(self.near_ties) <= self.near_tie_cap

    def describe(self) -> str:
        text = f"top-1 agreement {self.rate:.2%} ({self.same}/{self.images})"
        if self.near_ties:
            text += f", {len(self.near_ties)} near-tie(s) excused (cap {self.near_tie_cap})"
        if self.flips:
            text += f", {len(self.flips)} real flip(s), first at image {self.flips[0]}"
        return text


def near_tie_cap(images: int) -> int:
    """How many near-ties a row of ``images`` may excuse."""
    return max(1, int(NEAR_TIE_MAX_FRACTION * images))


def top1_agreement(pred: np.ndarray, ref: np.ndarray, near_tie_rel: float = NEAR_TIE_REL) -> Agreement:
    """``pred``: logits (N, C) or top-1 labels (N,). A moved top-1 is a near-tie when ``ref`` scores its own
    class and ``pred``'s within ``near_tie_rel`` of its largest |logit|."""
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64)
    pred = np.asarray(pred)
    pred = pred.argmax(1) if pred.ndim == 2 else pred
    ref_pred = ref.argmax(1)
    moved = np.flatnonzero(pred != ref_pred)
    gaps = ref[moved, ref_pred[moved]] - ref[moved, pred[moved]]
    near = gaps <= _near_tie_bound(ref, near_tie_rel)
    return Agreement(len(ref), len(ref) - len(moved), tuple(int(i) for i in moved[near]),
                     tuple(int(i) for i in moved[~near]))


def near_tie_images(ref: np.ndarray, near_tie_rel: float = NEAR_TIE_REL) -> np.ndarray:
    """Indices of the images whose top-1 the rule would excuse moving: ``ref``'s top two within the bound."""
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64)
    top2 = np.sort(ref, axis=1)[:, -2:]
    return np.flatnonzero(top2[:, 1] - top2[:, 0] <= _near_tie_bound(ref, near_tie_rel))


def _near_tie_bound(ref: np.ndarray, near_tie_rel: float) -> float:
    import numpy as np

    return near_tie_rel * (float(np.abs(ref).max()) or 1.0)


def max_rel_dlogit(logits: np.ndarray, ref: np.ndarray) -> float:
    """max |Δlogit| over the reference's largest |logit|: the scale-free FP32 logit bar."""
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(np.asarray(logits, dtype=np.float64) - ref).max()) / (float(np.abs(ref).max()) or 1.0)


def fp32_failures(logits: np.ndarray, ref: np.ndarray, bar: dict | None = None) -> list[str]:
    """Why an FP32 file is not PyTorch's equal (empty: it is), under ``bar`` (a bundle's recorded TOLERANCE[FP32])."""
    bar = {**TOLERANCE[FP32], **(bar or {})}
    agreement = top1_agreement(logits, ref, bar["near_tie_rel"])
    rel = max_rel_dlogit(logits, ref)
    return [f for f in (
        "" if agreement.holds else agreement.describe(),
        f"max relative |Δlogit| {rel:.1e} > {bar['max_rel_dlogit']:.0e}" if rel > bar["max_rel_dlogit"] else "")
        if f]


# FP16 files (ONNX FP16, OpenVINO FP16): the FP32 rule with a bar for half-precision weights (and, for ONNX,
# activations rounded to FP16 between kernels). Measured on the shipped bundles' parity rows: see FP16 below.
FP16_MAX_REL_DLOGIT = 1e-2

# What verify holds each row to; written into the manifest so a bundle carries its own bar.
# FP32: the rule above. INT8: integer kernels differ between CPUs (VNNI or not), so top-1 agreement is the
# gate: with its own build-machine logits, and with PyTorch no worse than the build machine's agreement by
# more than a few images; a loose logit bound catches a broken kernel.
# End to end: JPEG decoders differ between builds, so a few labels may move.
TOLERANCE = {
    FP32: {"max_rel_dlogit": FP32_MAX_REL_DLOGIT, "near_tie_rel": NEAR_TIE_REL},
    INT8: {"min_agreement_build": 0.95, "max_rel_dlogit_build": 0.10, "max_agreement_drop": 0.05},
    FP16: {"max_rel_dlogit": FP16_MAX_REL_DLOGIT, "near_tie_rel": 2 * FP16_MAX_REL_DLOGIT},
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


def reference_checkpoint() -> Path:
    """The shipped ResNet-20's checkpoint (package data: a wheel has it too), the default of `edgecls export`."""
    import edgecls.reference

    return Path(edgecls.reference.__file__).parent / f"{DEFAULT_SHIPPED}.pt"


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


def read_golden(folder: Path, manifest: dict, formats: tuple[str, ...] | None = None) -> Golden:
    """The bundle's golden vectors; a bundle exported before they existed gets a clear message.

    ``formats``: only the images, their names and the logits of PyTorch and of these formats, no labels and no
    encoded files (np.load decompresses a member only when it is read): what proving one file needs.
    """
    if not manifest.get("golden"):
        raise UsageError(f"{folder} carries no golden vectors (exported by edgecls "
                         f"{manifest.get('edgecls_version', '< 0.2')}); re-export it with `edgecls export` "
                         "to make it verifiable on a device")
    import numpy as np

    try:
        with np.load(Path(folder) / manifest["golden"]["path"], allow_pickle=False) as z:
            wanted = [k for k in z.files if k.startswith("logits.") and
                      (formats is None or k.split(".", 1)[1] in (REFERENCE, *formats))]
            golden = Golden(images=z["images"], labels=np.zeros(0, np.int64), names=[str(n) for n in z["names"]],
                            encoded=[], logits={k.split(".", 1)[1]: z[k] for k in wanted})
            if formats is None:
                offsets, blob = z["encoded_offsets"], z["encoded"].tobytes()
                golden.labels = z["labels"]
                golden.encoded = [blob[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            return golden
    except (OSError, KeyError, ValueError) as e:
        raise EdgeclsError(f"cannot read the golden vectors of {folder}: {e}") from None


def bundle_tolerance(manifest: dict) -> dict[str, dict]:
    """The bar a bundle's files are held to: what its manifest recorded, over TOLERANCE for what it did not."""
    recorded = (manifest.get("golden") or {}).get("tolerance") or {}
    return {kind: {**bar, **recorded.get(kind, {})} for kind, bar in TOLERANCE.items()}
