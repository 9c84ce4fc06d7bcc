"""LiteRT (``.tflite``) by ``litert-torch``, and its static INT8 variant by ``ai-edge-quantizer``.

``litert_torch.convert`` captures the PyTorch model with ``torch.export`` and lowers it to TFLite ops
(no TensorFlow install; it pulls jax). The input stays NCHW float32 as the other files take it (the
converter inserts the transposes). LiteRT has no dynamic shapes: the file is fixed at
``edgecls.format_table.LITERT_BATCH`` images, recorded in the manifest's ``input_shape``, and the engine feeds
any number of images that many at a time.

INT8: ``ai-edge-quantizer``'s ``static_wi8_ai8`` recipe (per-channel int8 weights, int8 activations,
min/max calibration) on the FP32 file, calibrated on the same seeded training images as the other INT8
rows; the model's input and output stay float32 (``NO_QUANTIZE`` on INPUT and OUTPUT), so the runtime
feeds it like every other file. The head (global average pool and final linear layer, ``FLOAT_OPS``)
stays FP32, as OpenVINO INT8 keeps its final linear layer: on a barely trained ResNet-20 (27% accurate,
200 test images) agreement with the FP32 file went 69% → 90.5% and max |Δlogit| 2.4 → 1.2. Its INT8
ladder (export.int8_ladder): ``ptq``, then ``float-layers``, the most sensitive convolutions' ops left
float, found by name (``layer_scope``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from edgecls.format_table import INT8, LITERT, LITERT_BATCH
from edgecls.progress import track

from .int8_ladder import PTQ, SENSITIVITY_IMAGES, Candidate, Ladder, float_layer_candidates, rms_logit_error
from .job import ExportJob
from .metadata import with_precision, write_sidecar

RECIPE = "static_wi8_ai8"
FLOAT_OPS = ("MEAN", "FULLY_CONNECTED")


def build_litert(job: ExportJob, path: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converter's C++ INFO lines on stderr
    logging.getLogger("absl").setLevel(logging.ERROR)
    import litert_torch

    size = job.spec.input_size
    example = torch.randn(LITERT_BATCH, 3, size, size, generator=torch.Generator().manual_seed(0))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        litert_torch.convert(job.model, (example,)).export(str(path))
    write_sidecar(path, job.metadata)


def litert_int8_settings(job: ExportJob) -> dict:
    """The quantizer's options as plain values, recorded in the manifest."""
    return {"recipe": RECIPE, "algorithm": "min_max_uniform_quant", "weights": "int8 per-channel",
            "activations": "int8", "input_output": "float32", "float_ops": list(FLOAT_OPS),
            "calibration_images": len(job.calibration.images)}


@dataclass(frozen=True)
class Calibrated:
    """The FP32 file's activation ranges on the calibration images, computed once for every INT8 candidate."""

    source: Path
    ranges: dict


def calibrate(job: ExportJob) -> Calibrated:
    from ai_edge_litert.interpreter import Interpreter

    source = job.built["litert"]
    signatures = Interpreter(model_path=str(source)).get_signature_list()
    signature = next(iter(signatures))
    input_name = signatures[signature]["inputs"][0]
    images = job.calibration.images
    batches = [{input_name: np.ascontiguousarray(images[i:i + LITERT_BATCH])}
               for i in range(0, len(images) - LITERT_BATCH + 1, LITERT_BATCH)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        ranges = _quantizer(source).calibrate({signature: batches}, num_threads=1)
    return Calibrated(source, ranges)


def layer_scope(module_name: str) -> str:
    """The regex that finds a PyTorch layer's ops in a litert-torch file. Each op's output tensor is named after
    the module paths of the nodes fused into it, one ``<class>_<attribute>`` segment per module level
    (``…CifarResNet/…Sequential_layer1/…BasicBlock_0/…Conv2d_conv2;2``), so ``layer1.0.conv2`` is those three
    segments in a row, ending at a ``;``."""
    return "/" + "/".join(f"[^/;]*_{re.escape(part)}" for part in module_name.split(".")) + "(;|$)"


def _quantizer(source: Path, only: str | None = None, float_layers: tuple[str, ...] = ()):
    """The quantizer with the recipe: every op (``only``: that layer's ops alone), less the float ops, the
    model's input and output, and ``float_layers``."""
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    qt = quantizer.Quantizer(str(source))
    entries = getattr(recipe, RECIPE)()
    if only is not None:
        entries = [{**entry, "regex": layer_scope(only)} for entry in entries]  # unmatched ops stay float
    qt.load_quantization_recipe(entries)
    for op in ("INPUT", "OUTPUT", *FLOAT_OPS):
        qt.update_quantization_recipe(regex=".*", operation_name=qtyping.TFLOperationName[op],
                                      algorithm_key=AlgorithmName.NO_QUANTIZE)
    for name in float_layers:
        qt.update_quantization_recipe(regex=layer_scope(name), operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                      algorithm_key=AlgorithmName.NO_QUANTIZE)
    return qt


def write_int8(job: ExportJob, calibrated: Calibrated, path: Path, only: str | None = None,
               float_layers: tuple[str, ...] = ()) -> None:
    qt = _quantizer(calibrated.source, only, float_layers)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        qt.quantize(calibrated.ranges, enable_progress_report=False).export_model(str(path), overwrite=True)
    path.chmod(0o644)  # the quantizer writes through mmap with the executable bit set
    write_sidecar(path, with_precision(job.metadata, INT8))


def ptq(job: ExportJob, ladder: Ladder | None) -> Iterator[Candidate]:
    yield Candidate(PTQ, {}, lambda path: write_int8(job, calibrate(job), path))


def float_layers(job: ExportJob, ladder: Ladder) -> Iterator[Candidate]:
    calibrated = calibrate(job)
    yield from float_layer_candidates(_sensitivity(job, calibrated), {},
                                      lambda names: lambda path: write_int8(job, calibrated, path,
                                                                            float_layers=tuple(names)))


def _sensitivity(job: ExportJob, calibrated: Calibrated) -> list[tuple[str, float]]:
    """Each convolution's RMS logit error with its ops alone quantized, largest first (the linear head is
    float already: ``FLOAT_OPS``)."""
    from edgecls.runtime.engines import open_engine

    x = job.calibration.images[:SENSITIVITY_IMAGES]
    reference = open_engine(LITERT, calibrated.source).run(x)
    names = [n for n, m in job.model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    errors = []
    with tempfile.TemporaryDirectory(dir=job.workdir, prefix=".litert-probes-") as scratch:
        for i, name in enumerate(track(names, len(names), "litert-int8 layer sensitivity")):
            probe = Path(scratch) / f"probe-{i}.tflite"
            write_int8(job, calibrated, probe, only=name)
            errors.append((name, rms_logit_error(open_engine(LITERT, probe).run(x), reference)))
    return sorted(errors, key=lambda item: -item[1])


LITERT_RUNGS = (ptq, float_layers)
