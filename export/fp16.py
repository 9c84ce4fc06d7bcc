"""FP16 files: half the size of FP32 (and what GPUs and NPUs want), not faster on a CPU.

ONNX: ``onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True)`` on the FP32 ONNX
file, so inputs and logits stay float32 and the runtime feeds it like every other file; onnxruntime's
CPU provider casts FP16 weights and activations back to FP32 around its kernels, so on a CPU it runs
slower than FP32. OpenVINO: the same IR as FP32 saved with ``compress_to_fp16=True`` (FP16 weights,
decompressed at load); the engine still computes in f32 (``INFERENCE_PRECISION_HINT``), so only the
rounding of the weights shows.
"""

from __future__ import annotations

from pathlib import Path

from edgecls.format_table import FP16

from .job import ExportJob
from .metadata import stamp_onnx_file, stamp_openvino, with_precision
from .onnx_export import build_onnx
from .sources import built_or_scratch


def build_onnx_fp16(job: ExportJob, path: Path) -> None:
    import onnx
    from onnxconverter_common import float16

    with built_or_scratch(job, "onnx", build_onnx) as fp32:
        model = onnx.load(str(fp32))
    half = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.save(half, str(path))
    stamp_onnx_file(path, with_precision(job.metadata, FP16))


def build_openvino_fp16(job: ExportJob, path: Path) -> None:
    import openvino as ov

    from .openvino_export import convert_to_openvino

    model = convert_to_openvino(job)
    stamp_openvino(model, with_precision(job.metadata, FP16))
    ov.save_model(model, str(path), compress_to_fp16=True)
