"""Inference engines behind one tiny interface: float32 NCHW in, logits out.

Neither engine imports torch. OpenVINO is optional (``pip install edgecls[openvino]``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgecls.errors import EdgeclsError
from edgecls.spec import META_SOURCE_SHA256, META_SPEC, META_VERSION

META_KEYS = (META_SPEC, META_VERSION, META_SOURCE_SHA256)


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class OnnxRuntimeEngine:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise EdgeclsError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0]}") from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.fixed_batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.threads = options.intra_op_num_threads

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class OpenVinoEngine:
    """OpenVINO CPU plugin. FP32 models are pinned to f32 inference (the CPU would pick bf16)."""

    name = "openvino"

    def __init__(self, path: Path, threads: int | None = None, f32: bool = True):
        try:
            import openvino as ov
        except ImportError:
            raise EdgeclsError("this model needs OpenVINO: pip install 'edgecls[openvino]'") from None
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except RuntimeError as e:
            raise EdgeclsError(f"OpenVINO cannot read {path}: {str(e).splitlines()[0]}") from None
        if Path(path).suffix.lower() == ".onnx":  # OpenVINO does not surface ONNX metadata_props
            self.metadata = onnx_metadata(path)
        else:
            self.metadata = {k: model.get_rt_info([k]).astype(str) for k in META_KEYS if model.has_rt_info([k])}
        batch = model.inputs[0].get_partial_shape()[0]
        self.fixed_batch = batch.get_length() if batch.is_static else None
        self.threads = threads or default_threads()
        config = {"INFERENCE_NUM_THREADS": self.threads}
        if f32:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer({0: x})[0]


def onnx_metadata(path: Path) -> dict[str, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True
