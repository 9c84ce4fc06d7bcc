"""ExecuTorch (``.pte``) lowered to the XNNPACK delegate, and its PT2E INT8 variant.

FP32: ``torch.export`` (batch axis dynamic with --dynamic-batch) → ``to_edge_transform_and_lower`` with
``XnnpackPartitioner`` → ``to_executorch``. INT8: PT2E static quantization with ExecuTorch's
``XNNPACKQuantizer`` (symmetric, per-channel int8 weights, int8 activations), calibrated on the same
seeded training images as the other INT8 rows, then the same lowering; input and logits stay float32.

ExecuTorch plans memory for the largest batch it was asked to accept, and the bound it keeps may be
lower than the one asked for (ResNet-20 asked for 65,536 or 64 keeps 15): the engine reads the bound
from the file and the manifest records it (``max_batch``), so nothing trusts the request.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import torch

from edgecls.format_table import INT8

from .int8_ladder import ptq_rung
from .job import ExportJob
from .metadata import with_precision, write_sidecar

CALIBRATION_BATCH = 8


def _lower(program, path: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(lowered.buffer)


def _quiet():
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    return contextlib.redirect_stdout(io.StringIO())


def executorch_limits(path: Path) -> dict:
    """What the file accepts, read back from it: the manifest records this, not what export asked for."""
    from edgecls.runtime.engines import ExecuTorchEngine

    return {"max_batch": ExecuTorchEngine(path, threads=1).max_batch}


def build_executorch(job: ExportJob, path: Path) -> None:
    with _quiet():
        program = torch.export.export(job.model, (job.example_input(),), dynamic_shapes=job.dynamic_shapes())
        _lower(program, path)
    write_sidecar(path, job.metadata)


def executorch_int8_settings(job: ExportJob) -> dict:
    return {"quantizer": "XNNPACKQuantizer", "config": "symmetric, per-channel weights", "flow": "PT2E",
            "calibration_images": len(job.calibration.images)}


def quantize_executorch(job: ExportJob, path: Path) -> None:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = (job.example_input(),)
    with _quiet():
        captured = torch.export.export(job.model, example, dynamic_shapes=job.dynamic_shapes()).module()
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(captured, quantizer)
        images = torch.from_numpy(job.calibration.images)
        step = CALIBRATION_BATCH if job.dynamic_batch else 1
        with torch.no_grad():
            for start in range(0, len(images), step):
                prepared(images[start:start + step])
        converted = convert_pt2e(prepared)
        program = torch.export.export(converted, example, dynamic_shapes=job.dynamic_shapes())
        _lower(program, path)
    write_sidecar(path, with_precision(job.metadata, INT8))


EXECUTORCH_RUNGS = (ptq_rung(quantize_executorch),)
