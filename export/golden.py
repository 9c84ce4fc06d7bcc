"""Golden vectors: held-out images and the logits PyTorch and every built file gave for them.

They go into the bundle (``edgecls.golden_file.GOLDEN``) so a device without PyTorch can prove that
its engines, versions and CPU reproduce the model (``edgecls verify``). Images are the uint8
pixels PyTorch was fed (lossless); the original encoded files ride along for the end-to-end row.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from edgecls.bundle import file_entry
from edgecls.format_table import ONNXRUNTIME, OPENVINO
from edgecls.golden_file import GOLDEN, Golden, write_golden
from edgecls.host import instruction_sets
from edgecls.runtime.engines import engine_available, engine_version
from edgecls.tolerance import REFERENCE, TOLERANCE

from edgecls.trainer.data import SplitPlan

from .data import golden_images, normalize
from .formats import Format
from .job import ExportJob
from .parity import reference_logits, run_batched


def build_golden(formats: list[Format], job: ExportJob, data: str, count: int, seed: int,
                 data_dir: str | None, cache_dir: str | None, plan: SplitPlan) -> dict:
    """Write golden.npz into the staging folder; returns its manifest section."""
    test = golden_images(data, job.spec, count, seed, data_dir, cache_dir, plan)
    x = normalize(test.images, job.spec)
    logits = {REFERENCE: reference_logits(job.model, x)}
    batch = len(x) if job.dynamic_batch else 1
    for fmt in formats:
        logits[fmt.name] = run_batched(fmt.load(job.built[fmt.name]), x, batch, f"golden {fmt.name}")
    names = [str(Path(*f.parts[-3:])) for f in test.files] if test.files else [f"#{i}" for i in range(len(x))]
    encoded = [f.read_bytes() for f in test.files] if test.files else [_png(a) for a in test.images]
    path = job.workdir / GOLDEN
    write_golden(path, Golden(test.images, test.labels, names, encoded, logits))
    return {**file_entry(path), "images": int(len(x)), "seed": seed, "source": f"{data} test split",
            "encoded": "original files" if test.files else "png (the data had no files)",
            "reference": REFERENCE, "tolerance": TOLERANCE, "built_on": _build_machine()}


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _build_machine() -> dict:
    versions = {e: engine_version(e) for e in (ONNXRUNTIME, OPENVINO) if engine_available(e)}
    return {**versions, "cpu_instruction_sets": instruction_sets()}
