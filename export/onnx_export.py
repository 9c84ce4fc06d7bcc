"""ONNX through ``torch.onnx.export(dynamo=True)`` (the torch.export-based exporter).

``dynamo`` is passed explicitly because its default flipped in PyTorch 2.9. The batch axis is made
dynamic with ``dynamic_shapes`` (the dynamo path's own mechanism; ``dynamic_axes`` is the legacy
TorchScript exporter's) and the export runs on a batch of 2, so no batch-1 specialisation can
sneak in. Weights are stored inside the ``.onnx`` file (``external_data=False``), so one file is
the whole model. Default opset 18: the lowest the dynamo exporter emits natively, and read by
onnxruntime >= 1.14 and OpenVINO >= 2023.0. The exporter's own graph optimizer runs
(``optimize=True``); no separate simplifier, so nothing can change the graph after parity holds.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from .job import ExportJob
from .metadata import stamp_onnx_file

DEFAULT_OPSET = 18
MIN_OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def max_opset() -> int:
    """The newest opset this torch emits (a private constant, hence the fallback)."""
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET
    except ImportError:
        return DEFAULT_OPSET
    return ONNX_MAX_OPSET


def build_onnx(job: ExportJob, path: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its steps to stdout
        program = torch.onnx.export(
            job.model, (job.example_input(),), dynamo=True, opset_version=job.opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=job.dynamic_shapes(),
            external_data=False, optimize=True, verbose=False,
        )
    program.save(str(path), external_data=False)
    stamp_onnx_file(path, job.metadata)
