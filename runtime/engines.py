"""Inference engines behind one tiny interface: float32 NCHW in, logits out.

The only code that runs a model file: ``Classifier``, ``edgecls infer``, ``verify``, ``eval``,
``benchmark`` and the exporter's parity gate all open files here, with the same session options,
threads and precision hints. Neither engine imports torch. OpenVINO is optional
(``pip install edgecls[openvino]``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgecls.bundle import ONNXRUNTIME, OPENVINO
from edgecls.errors import EdgeclsError, UsageError
from edgecls.spec import META_SOURCE_SHA256, META_SPEC, META_VERSION

META_KEYS = (META_SPEC, META_VERSION, META_SOURCE_SHA256)
# OpenVINO's CPU plugin runs FP32 models in bf16 (or fp16) where the CPU has it; parity needs f32.
PINNED, DEFAULT_PRECISION = "f32", "default"
PRECISIONS = (PINNED, DEFAULT_PRECISION)
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
                 "openvino": "OpenVINOExecutionProvider", "dml": "DmlExecutionProvider",
                 "coreml": "CoreMLExecutionProvider"}


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class OnnxRuntimeEngine:
    name = ONNXRUNTIME

    def __init__(self, path: Path, threads: int | None = None, device: str | None = None,
                 precision: str = PINNED):
        import onnxruntime as ort

        provider = ort_provider(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=[provider])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise EdgeclsError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0]}") from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.fixed_batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.threads = options.intra_op_num_threads
        self.device = self.session.get_providers()[0]
        self.version = ort.__version__
        self.precision = "f32"  # float ops: onnxruntime's CPU provider has no reduced-precision mode

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


def ort_provider(device: str | None) -> str:
    """An execution provider by short name (cpu, cuda, …) or full name; only installed ones."""
    import onnxruntime as ort

    wanted = ORT_PROVIDERS.get((device or "cpu").lower(), device)
    available = ort.get_available_providers()
    if wanted not in available:
        raise UsageError(f"onnxruntime has no device {device!r} here (available: "
                         f"{', '.join(_short_provider(p) for p in available)})")
    return wanted


def _short_provider(provider: str) -> str:
    return next((k for k, v in ORT_PROVIDERS.items() if v == provider), provider)


class OpenVinoEngine:
    """OpenVINO on any device it lists; FP32 inference precision pinned unless ``precision="default"``."""

    name = OPENVINO

    def __init__(self, path: Path, threads: int | None = None, device: str | None = None,
                 precision: str = PINNED):
        ov = import_openvino()
        core = ov.Core()
        self.device = openvino_device(core, device)
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
        config = {"INFERENCE_NUM_THREADS": self.threads} if self.device == "CPU" else {}
        if precision == PINNED:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self.compiled = core.compile_model(model, self.device, config)
        self.request = self.compiled.create_infer_request()
        self.version = ov.get_version().split("-")[0]
        self.precision = _inference_precision(self.compiled)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer({0: x})[0]


def import_openvino():
    try:
        import openvino as ov
    except ImportError:
        raise UsageError("this model needs OpenVINO: pip install 'edgecls[openvino]'") from None
    return ov


def openvino_device(core, device: str | None) -> str:
    """CPU by default; any device the Core lists, or a virtual one (AUTO, MULTI:…, HETERO:…)."""
    name = (device or "CPU").upper()
    available = core.available_devices
    if name in available or name.split(":")[0] in ("AUTO", "MULTI", "HETERO"):
        return name
    raise UsageError(f"OpenVINO has no device {device!r} here (available: {', '.join(available)}, AUTO)")


def _inference_precision(compiled) -> str:
    """What the device actually computes in (``f32``, ``bf16``, ``f16``), read back from the compiled model."""
    try:
        return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    except (RuntimeError, AttributeError):
        return "unknown"


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


ENGINES = {ONNXRUNTIME: OnnxRuntimeEngine, OPENVINO: OpenVinoEngine}


def open_engine(engine: str, path: Path, threads: int | None = None, device: str | None = None,
                precision: str = PINNED):
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return ENGINES[engine](path, threads, device, precision)
