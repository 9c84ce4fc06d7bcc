"""OpenVINO IR (``.xml`` + ``.bin``) through ``openvino.convert_model`` + ``openvino.save_model``.

The PyTorch model is captured with ``torch.export`` (OpenVINO's modern PyTorch front end; handing it
the ``nn.Module`` would go through the deprecated ``torch.jit.trace``) and the input shape is set
explicitly, because the captured program leaves the spatial dims open. ``save_model`` compresses
weights to FP16 unless told not to: FP32 export passes ``compress_to_fp16=False``.

Running is the runtime's job (``edgecls.runtime.engines.OpenVinoEngine``): it pins
``INFERENCE_PRECISION_HINT=f32``, since the CPU plugin otherwise runs bf16 (or fp16) on CPUs that
have it; the parity gate reports the default-precision result too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .job import ExportJob
from .metadata import stamp_openvino
from .onnx_export import INPUT_NAME, OUTPUT_NAME

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
