"""Which file to run: a model file as given, or the best verified file of an export folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgecls.digest import file_sha256
from edgecls.errors import EdgeclsError

from .engines import OnnxRuntimeEngine, OpenVinoEngine, openvino_available

BACKENDS = ("auto", "onnxruntime", "openvino")
# Preference inside an export folder: INT8 first, then FP32; (manifest format, engine). onnxruntime
# leads: same throughput as OpenVINO on this model, a quarter of the start-up time, and no extra install.
PREFERENCE = (("onnx-int8", "onnxruntime"), ("openvino-int8", "openvino"), ("onnx", "onnxruntime"),
              ("openvino", "openvino"))
ENGINES = {"onnxruntime": OnnxRuntimeEngine, "openvino": OpenVinoEngine}


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    format: str
    engine: str

    def open(self, threads: int | None):
        return ENGINES[self.engine](self.path, threads)


def choose_model(path: Path, backend: str = "auto") -> ModelChoice:
    if backend not in BACKENDS:
        raise EdgeclsError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not path.exists():
        raise EdgeclsError(f"model {path} does not exist")
    if path.is_dir():
        return choose_from_folder(path, backend)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        if backend == "openvino":
            return ModelChoice(path, "onnx", "openvino")
        return ModelChoice(path, "onnx", "onnxruntime")
    if suffix == ".xml":
        if backend == "onnxruntime":
            raise EdgeclsError(f"{path} is an OpenVINO model; onnxruntime cannot run it")
        return ModelChoice(path, "openvino", "openvino")
    raise EdgeclsError(f"{path}: expected an .onnx file, an OpenVINO .xml or an export folder with manifest.json")


def read_manifest(folder: Path) -> dict:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise EdgeclsError(f"{folder} has no manifest.json (is it an edgecls export folder?)")
    try:
        return json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgeclsError(f"{manifest} is not valid JSON: {e}") from None


def verify_files(folder: Path, manifest: dict) -> None:
    """Refuse a tampered or half-copied export: every listed file must match its sha256."""
    for entry in manifest.get("files", []):
        for rel, expected in file_digests(entry):
            target = folder / rel
            if not target.is_file():
                raise EdgeclsError(f"{target} is listed in manifest.json but missing")
            if file_sha256(target) != expected:
                raise EdgeclsError(f"{target} does not match the sha256 in manifest.json (modified or incomplete copy)")


def file_digests(entry: dict) -> list[tuple[str, str]]:
    """(relative path, sha256) of a manifest entry and of its companion files (an IR's .bin)."""
    pairs = [(entry["path"], entry["sha256"])]
    pairs += [(c["path"], c["sha256"]) for c in entry.get("companions", [])]
    return pairs


def choose_from_folder(folder: Path, backend: str) -> ModelChoice:
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    by_format = {e["format"]: e for e in manifest.get("files", [])}
    for fmt, engine in PREFERENCE:
        if fmt not in by_format or backend not in ("auto", engine):
            continue
        if engine == "openvino" and not openvino_available():
            continue
        return ModelChoice(folder / by_format[fmt]["path"], fmt, engine)
    raise EdgeclsError(f"{folder} has no model the {backend} backend can run (formats: {', '.join(by_format)})")

