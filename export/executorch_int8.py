"""ExecuTorch INT8: PT2E static quantization with ExecuTorch's ``XNNPACKQuantizer`` (symmetric, per-channel
int8 weights, int8 activations), calibrated on the same seeded training images as the other INT8 rows, then
lowered to XNNPACK like the FP32 file (export.executorch_export); input and logits stay float32.

Its INT8 ladder (export.int8_ladder): ``ptq``, then ``float-layers``: the quantizer's filter leaves the
convolutions and linear layers most sensitive to quantization in float. A layer's sensitivity is the RMS
logit error, against the float model on SENSITIVITY_IMAGES calibration images, of the model with that layer
alone quantized (with everything that is no layer: additions, pooling), run as PT2E's reference
(quantize/dequantize) graph in PyTorch; the rung offers the top 1, 2, 4, ... layers in float, up to half of
them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from edgecls.format_table import INT8
from edgecls.progress import track

from .executorch_export import lower, quiet
from .int8_ladder import PTQ, SENSITIVITY_IMAGES, Candidate, Ladder, float_layer_candidates, rms_logit_error
from .job import ExportJob
from .metadata import with_precision, write_sidecar

CALIBRATION_BATCH = 8
LAYER_OPS = ("aten.conv", "aten.linear")  # the nodes a layer's sensitivity is measured for


def executorch_int8_settings(job: ExportJob) -> dict:
    return {"quantizer": "XNNPACKQuantizer", "config": "symmetric, per-channel weights", "flow": "PT2E",
            "calibration_images": len(job.calibration.images)}


def ptq(job: ExportJob, ladder: Ladder | None) -> Iterator[Candidate]:
    yield Candidate(PTQ, {}, lambda path: quantize_executorch(job, path))


def float_layers(job: ExportJob, ladder: Ladder) -> Iterator[Candidate]:
    yield from float_layer_candidates(_sensitivity(job), {}, lambda names: _with_float(job, names))


def _with_float(job: ExportJob, names: list[str]) -> Callable[[Path], None]:
    inside = [_inside(name) for name in names]
    return lambda path: quantize_executorch(job, path, lambda node: not any(f(node) for f in inside))


def quantize_executorch(job: ExportJob, path: Path, keep: Callable | None = None) -> None:
    """``keep``: the quantizer's node filter (None: every node it can quantize)."""
    example = (job.example_input(),)
    with quiet():
        converted = _quantized(job, keep, job.calibration.images)
        program = torch.export.export(converted, example, dynamic_shapes=job.dynamic_shapes())
        lower(program, path)
    write_sidecar(path, with_precision(job.metadata, INT8))


def _capture(job: ExportJob) -> nn.Module:
    return torch.export.export(job.model, (job.example_input(),), dynamic_shapes=job.dynamic_shapes()).module()


def _quantized(job: ExportJob, keep: Callable | None, images: np.ndarray, captured: nn.Module | None = None
               ) -> nn.Module:
    """PT2E's converted (reference quantize/dequantize) graph of the model, calibrated on ``images``;
    ``captured``: the model's torch.export graph to start from (copied, as PT2E changes it in place)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    captured = copy.deepcopy(captured) if captured is not None else _capture(job)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    if keep is not None:
        quantizer.set_filter_function(keep)
    prepared = prepare_pt2e(captured, quantizer)
    x = torch.from_numpy(images)
    step = CALIBRATION_BATCH if job.dynamic_batch else 1
    with torch.no_grad():
        for start in range(0, len(x), step):
            prepared(x[start:start + step])
    return convert_pt2e(prepared)


def _sensitivity(job: ExportJob) -> list[tuple[str, float]]:
    """Each convolution's and linear layer's RMS logit error with it alone quantized, largest first."""
    images = job.calibration.images[:SENSITIVITY_IMAGES]
    x = torch.from_numpy(images)
    with torch.no_grad():
        reference = job.model(x).numpy()
    names = [n for n, m in job.model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    errors = []
    with quiet():
        captured = _capture(job)
        for name in track(names, len(names), "executorch-int8 layer sensitivity"):
            probe = _quantized(job, _alone(name), images, captured)
            step = CALIBRATION_BATCH if job.dynamic_batch else 1
            with torch.no_grad():
                logits = torch.cat([probe(x[i:i + step]) for i in range(0, len(x), step)])
            errors.append((name, rms_logit_error(logits.numpy(), reference)))
    return sorted(errors, key=lambda item: -item[1])


def _alone(module_name: str) -> Callable:
    """The probe's filter: the layer ``module_name`` and every node that is no convolution or linear layer.
    A pattern is quantized only when all its nodes pass, and conv + BatchNorm is one pattern whose BatchNorm
    node lives in another module, so admitting only the layer's own nodes would quantize nothing."""
    inside = _inside(module_name)
    return lambda node: inside(node) or not str(node.target).startswith(LAYER_OPS)


def _inside(module_name: str) -> Callable:
    from torchao.quantization.pt2e.quantizer.utils import get_module_name_filter

    return get_module_name_filter(module_name)


EXECUTORCH_RUNGS = (ptq, float_layers)
