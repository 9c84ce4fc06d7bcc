"""manifest.json: what was written, from what, and how well it matches PyTorch.

One entry per format: its model file's path (relative to the export folder), size and sha256,
``companions`` with the same for its other files (an OpenVINO IR's ``.bin``), precision, engine,
input shape (``"batch"`` marks a dynamic axis), the source checkpoint's sha256 and the format's
parity result. ``golden`` describes the golden vectors (``edgecls.golden_file.GOLDEN``): their file,
what they hold and the tolerances ``edgecls verify`` applies. The contract's names live in
``edgecls.bundle`` and ``edgecls.tolerance``; this module only writes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from edgecls import __version__
from edgecls.atomic import write_text_atomic
from edgecls.bundle import MANIFEST, MANIFEST_FORMAT, SCHEMA_VERSION, file_entry
from edgecls.spec import META_SOURCE_SHA256, ModelSpec

from .formats import Format
from .job import ExportJob


def input_shape(fmt: Format, job: ExportJob) -> list:
    size = job.spec.input_size
    if fmt.info.fixed_batch:  # fixed by the format whatever --dynamic-batch says (LiteRT)
        return [fmt.info.fixed_batch, 3, size, size]
    return ["batch" if job.dynamic_batch or not fmt.fixes_batch else 1, 3, size, size]


def format_entry(fmt: Format, job: ExportJob, parity: dict | None) -> dict:
    model_file, *companions = (job.path(s) for s in fmt.suffixes)
    return {
        "format": fmt.name, **file_entry(model_file), "companions": [file_entry(p) for p in companions],
        "precision": fmt.precision, "engine": fmt.engine, "input_shape": input_shape(fmt, job),
        "source_sha256": job.metadata[META_SOURCE_SHA256],
        **(fmt.describe(model_file) if fmt.describe else {}),
        "parity": parity["results"][fmt.name] if parity else None,
    }


def build_manifest(formats: list[Format], job: ExportJob, source: dict, parity: dict | None,
                   golden: dict | None, timings: dict[str, float]) -> dict:
    spec: ModelSpec = job.spec
    return {
        "format": MANIFEST_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "edgecls_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": source,
        "spec": spec.to_dict(),
        "dynamic_batch": job.dynamic_batch,
        "onnx_opset": job.opset if any(f.engine == "onnxruntime" for f in formats) else None,
        "files": [format_entry(f, job, parity) for f in formats],
        "quantization": _quantization(formats, job),
        "parity": parity,
        "golden": golden,
        "build_seconds": {k: round(v, 3) for k, v in timings.items()},
    }


def _quantization(formats: list[Format], job: ExportJob) -> dict | None:
    rows = {f.name: {**f.settings(job), "ladder": job.ladders.get(f.name)} for f in formats if f.settings}
    if not rows:
        return None
    c = job.calibration
    return {"calibration_images": len(c.images), "calibration_seed": c.seed, "calibration_data": c.source, **rows}


def write_manifest(folder: Path, manifest: dict) -> Path:
    path = folder / MANIFEST
    write_text_atomic(path, json.dumps(manifest, indent=2) + "\n")
    return path
