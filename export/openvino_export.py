"""OpenVINO IR (``.xml`` + ``.bin``) through ``openvino.convert_model`` + ``openvino.save_model``.

The PyTorch model is captured with ``torch.export`` (OpenVINO's modern PyTorch front end; handing it
the ``nn.Module`` would go through the deprecated ``torch.jit.trace``) and the input shape is set
explicitly, because the captured program leaves the spatial dims open. ``save_model`` compresses
weights to FP16 unless told not to: FP32 export passes ``compress_to_fp16=False``.

Running: ``INFERENCE_PRECISION_HINT=f32`` is pinned for the parity check, since the CPU plugin
otherwise runs bf16 (or fp16) on CPUs that have it; the default-precision result is reported too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .job import ExportJob
from .metadata import stamp_openvino
from .onnx_export import INPUT_NAME, OUTPUT_NAME

PINNED_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def convert_to_openvino(job: ExportJob):
    """An ``openvino.Model`` of the job's PyTorch model, with named input/output and the job's shape."""
    import openvino as ov

    size = job.spec.input_size
    program = torch.export.export(job.model, (job.example_input(),), dynamic_shapes=job.dynamic_shapes())
    shape = ov.PartialShape([-1 if job.dynamic_batch else 1, 3, size, size])
    model = ov.convert_model(program, input=[shape])
    model.inputs[0].get_tensor().set_names({INPUT_NAME})
    model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    return model


def build_openvino(job: ExportJob, path: Path) -> None:
    import openvino as ov

    model = convert_to_openvino(job)
    stamp_openvino(model, job.metadata)
    ov.save_model(model, str(path), compress_to_fp16=False)


def load_openvino(path: Path, config: dict | None = None):
    """A runner with f32 pinned; ``config={}`` gives the CPU plugin's default precision."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", PINNED_CONFIG if config is None else config)
    output = compiled.output(0)

    def run(x: np.ndarray) -> np.ndarray:
        return compiled(x)[output]

    return run


def load_openvino_default_precision(path: Path):
    return load_openvino(path, {})
