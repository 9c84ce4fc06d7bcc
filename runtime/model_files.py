"""Which file to run: a model file as given, or the preferred verified file of an export folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecls.bundle import FORMATS, ONNXRUNTIME, OPENVINO, read_manifest, runtime_preference, verify_files
from edgecls.errors import EdgeclsError, UsageError

from .engines import ORT_PROVIDERS, PINNED, open_engine, openvino_available

BACKENDS = ("auto", ONNXRUNTIME, OPENVINO)


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    format: str
    engine: str
    folder: Path | None = None  # the export folder it came from (its manifest was sha256-verified)

    def open(self, threads: int | None = None, device: str | None = None, precision: str = PINNED):
        return open_engine(self.engine, self.path, threads, device, precision)


def choose_model(path: Path, backend: str = "auto", device: str | None = None) -> ModelChoice:
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not path.exists():
        raise EdgeclsError(f"model {path} does not exist")
    if path.is_dir():
        return choose_from_folder(path, backend, device)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        use_openvino = backend == OPENVINO or (backend == "auto" and not _ort_device(device))
        return ModelChoice(path, format_of(path), OPENVINO if use_openvino else ONNXRUNTIME)
    if suffix == ".xml":
        if backend == ONNXRUNTIME:
            raise UsageError(f"{path} is an OpenVINO model; onnxruntime cannot run it")
        return ModelChoice(path, format_of(path), OPENVINO)
    raise EdgeclsError(f"{path}: expected an .onnx file, an OpenVINO .xml or an export folder with manifest.json")


def _ort_device(device: str | None) -> bool:
    """Whether a device name is one onnxruntime knows (any other, e.g. GPU or NPU, means OpenVINO)."""
    return device is None or device.lower() in ORT_PROVIDERS or device.endswith("ExecutionProvider")


def choose_from_folder(folder: Path, backend: str, device: str | None = None) -> ModelChoice:
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    by_format = {e["format"]: e for e in manifest.get("files", [])}
    for fmt, engine in runtime_preference():
        if fmt not in by_format or backend not in ("auto", engine):
            continue
        if engine == OPENVINO and not openvino_available():
            continue
        if backend == "auto" and engine == ONNXRUNTIME and not _ort_device(device):
            continue
        return ModelChoice(folder / by_format[fmt]["path"], fmt, engine, folder)
    raise EdgeclsError(f"{folder} has no model the {backend} backend can run (formats: {', '.join(by_format)})")


def format_of(path: Path) -> str:
    """The bundle format name of a model file, from its suffixes."""
    name = path.name.lower()
    matches = [f.name for f in FORMATS.values() if name.endswith(f.suffixes[0])]
    return max(matches, key=lambda n: len(FORMATS[n].suffixes[0])) if matches else path.suffix.lstrip(".")
