"""LiteRT (``.tflite``) by ``litert-torch``, and its static INT8 variant by ``ai-edge-quantizer``.

``litert_torch.convert`` captures the PyTorch model with ``torch.export`` and lowers it to TFLite ops
(no TensorFlow install; it pulls jax). The input stays NCHW float32 as the other files take it (the
converter inserts the transposes). LiteRT has no dynamic shapes: the file is fixed at
``edgecls.format_table.LITERT_BATCH`` images, recorded in the manifest's ``input_shape``, and the engine feeds
any number of images that many at a time.

INT8: ``ai-edge-quantizer``'s ``static_wi8_ai8`` recipe (per-channel int8 weights, int8 activations,
min/max calibration) on the FP32 file, calibrated on the same seeded training images as the other INT8
rows; the model's input and output stay float32 (``NO_QUANTIZE`` on INPUT and OUTPUT), so the runtime
feeds it like every other file. The head (global average pool and final linear layer, ``FLOAT_OPS``) stays
FP32, as OpenVINO INT8 keeps its final linear layer: on a barely trained ResNet-20 (27% accurate, 200
test images) agreement with the FP32 file went 69% → 90.5% and max |Δlogit| 2.4 → 1.2.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import numpy as np
import torch

from edgecls.format_table import INT8, LITERT_BATCH

from .int8_ladder import ptq_rung
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


def quantize_litert(job: ExportJob, path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    source = job.built["litert"]
    signatures = Interpreter(model_path=str(source)).get_signature_list()
    signature = next(iter(signatures))
    input_name = signatures[signature]["inputs"][0]
    qt = quantizer.Quantizer(str(source))
    qt.load_quantization_recipe(getattr(recipe, RECIPE)())
    for op in ("INPUT", "OUTPUT", *FLOAT_OPS):
        qt.update_quantization_recipe(regex=".*", operation_name=qtyping.TFLOperationName[op],
                                      algorithm_key=AlgorithmName.NO_QUANTIZE)
    images = job.calibration.images
    batches = [{input_name: np.ascontiguousarray(images[i:i + LITERT_BATCH])}
               for i in range(0, len(images) - LITERT_BATCH + 1, LITERT_BATCH)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        calibration = qt.calibrate({signature: batches}, num_threads=1)
        qt.quantize(calibration, enable_progress_report=False).export_model(str(path), overwrite=True)
    path.chmod(0o644)  # the quantizer writes through mmap with the executable bit set
    write_sidecar(path, with_precision(job.metadata, INT8))


LITERT_RUNGS = (ptq_rung(quantize_litert),)
