"""Inference engines behind one tiny interface: float32 NCHW in, logits out.

The only code that runs a model file: ``Classifier``, ``edgecls infer``, ``verify``, ``eval``,
``benchmark`` and the exporter's parity gate all open files here, with the same session options,
threads and precision hints. onnxruntime is the base install's engine; OpenVINO, LiteRT, NCNN and
ExecuTorch are extras of the same names (``ENGINE_EXTRAS``). None imports torch but ExecuTorch, whose
Python runtime links libtorch. Engines whose file fixes or bounds its batch feed any number of images
in chunks of that size.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from edgecls.errors import EdgeclsError, UsageError
from edgecls.extras import EXTRAS, missing_of
from edgecls.format_table import EXECUTORCH, LITERT, META_SIDECAR, NCNN, ONNXRUNTIME, OPENVINO, TORCH
from edgecls.host import thread_budget
from edgecls.spec import META_SOURCE_SHA256, META_SPEC, META_VERSION

META_KEYS = (META_SPEC, META_VERSION, META_SOURCE_SHA256)
# OpenVINO's CPU plugin runs FP32 models in bf16 (or fp16) where the CPU has it; parity needs f32.
PINNED, DEFAULT_PRECISION = "f32", "default"
PRECISIONS = (PINNED, DEFAULT_PRECISION)
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider", "openvino": "OpenVINOExecutionProvider",
                 "dml": "DmlExecutionProvider", "coreml": "CoreMLExecutionProvider"}


class OnnxRuntimeEngine:
    """``streaming``: the pool's threads stop spinning when a run returns, so that decode threads beside a
    stream, or a server's event loop, get the cores between engine calls. Otherwise they spin on, as
    onnxruntime's default, which answers back-to-back single images sooner but takes the core from a stream's
    decoder (benchmarks/results/stream-pipeline-records-2026-12-05.md)."""

    name = ONNXRUNTIME

    def __init__(self, path: Path, threads: int | None = None, device: str | None = None,
                 precision: str = PINNED, streaming: bool = False):
        import onnxruntime as ort

        provider = ort_provider(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or thread_budget()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if streaming:
            options.add_session_config_entry("session.force_spinning_stop", "1")
        self.streaming, self._opened_with = streaming, (path, threads, device, precision)
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
        self.version = engine_version(ONNXRUNTIME)
        self.precision = "f32"  # float ops: onnxruntime's CPU provider has no reduced-precision mode

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def for_streaming(self) -> "OnnxRuntimeEngine":
        """The same model opened for a stream (see the class); this engine if it already is."""
        return self if self.streaming else OnnxRuntimeEngine(*self._opened_with, streaming=True)

    def replicas(self) -> list["OnnxRuntimeEngine"]:
        """For a stream: one single-thread session per thread of this engine, opened for streaming, that run
        whole batches side by side. A batch split over threads waits at every operator for the thread a
        decoder took the core from; replicas ran faster beside a decoder
        (benchmarks/results/stream-pipeline-records-2026-12-05.md, engine lanes)."""
        path, _, device, precision = self._opened_with
        if self.threads <= 1 or self.device != ORT_PROVIDERS["cpu"]:
            return [self.for_streaming()]
        return [OnnxRuntimeEngine(path, 1, device, precision, streaming=True) for _ in range(self.threads)]


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
        self.threads = threads or thread_budget()
        config = {"INFERENCE_NUM_THREADS": self.threads} if self.device == "CPU" else {}
        if precision == PINNED:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self.compiled = core.compile_model(model, self.device, config)
        self.request = self.compiled.create_infer_request()
        self.version = engine_version(OPENVINO)
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


def sidecar_metadata(path: Path) -> dict[str, str]:
    """edgecls's metadata for a format with no place for it inside the file (``edgecls.format_table.META_SIDECAR``)."""
    import json

    side = Path(str(path) + META_SIDECAR)
    try:
        data = json.loads(side.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise EdgeclsError(f"cannot read {side}: {e}") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def run_in_chunks(run, x: np.ndarray, size: int, pad: bool) -> np.ndarray:
    """``run`` on at most ``size`` images at a time; ``pad``: the last chunk is zero-padded to ``size``."""
    if len(x) == size or (len(x) < size and not pad):
        return run(x)
    outs = []
    for start in range(0, len(x), size):
        chunk = x[start:start + size]
        if pad and len(chunk) < size:
            filler = np.zeros((size - len(chunk), *chunk.shape[1:]), chunk.dtype)
            outs.append(run(np.concatenate([chunk, filler]))[:len(chunk)])
        else:
            outs.append(run(chunk))
    return np.concatenate(outs)


class LiteRtEngine:
    """LiteRT (the TFLite runtime, ``ai-edge-litert``) with its default XNNPACK delegate in FP32.

    A .tflite file has a fixed batch (``fixed_batch``, read from the file); ``run`` takes any number of
    images and feeds them that many at a time, the last chunk zero-padded.
    """

    name = LITERT

    def __init__(self, path: Path, threads: int | None = None, device: str | None = None,
                 precision: str = PINNED):
        Interpreter = _import_engine(LITERT, "ai_edge_litert.interpreter").Interpreter
        _cpu_only(LITERT, device)
        self.threads = threads or thread_budget()
        try:
            with quiet_native_stderr():
                self.interpreter = Interpreter(model_path=str(path), num_threads=self.threads)
                self.interpreter.allocate_tensors()
                self.interpreter.invoke()  # the delegate's first-run set-up (and its log line) happen here
        except (ValueError, RuntimeError) as e:
            raise EdgeclsError(f"LiteRT cannot load {path}: {str(e).splitlines()[0]}") from None
        model_input = self.interpreter.get_input_details()[0]
        self.input_index = model_input["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.fixed_batch = int(model_input["shape"][0])
        self.metadata = sidecar_metadata(path)
        self.device, self.version = "cpu", engine_version(LITERT)
        self.precision = "f32"  # XNNPACK's float kernels; FP16 only when a file asks for it

    def run(self, x: np.ndarray) -> np.ndarray:
        return run_in_chunks(self._invoke, x, self.fixed_batch, pad=True)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(x, dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).copy()


# NCNN's default options store (and on ARM compute) in fp16 wherever the CPU converts it, x86 included.
NCNN_REDUCED = ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage", "use_bf16_packed")
NCNN_INPUT, NCNN_OUTPUT = "in0", "out0"  # the blob names pnnx gives a one-input, one-output graph


class NcnnEngine:
    """NCNN (``ncnn``) on the CPU, fp16/bf16 storage and arithmetic off unless ``precision="default"``.

    NCNN's Mat is one image (C, H, W): ``run`` feeds a batch image by image, on ``threads`` threads.
    """

    name = NCNN
    fixed_batch = None

    def __init__(self, path: Path, threads: int | None = None, device: str | None = None,
                 precision: str = PINNED):
        self._ncnn = ncnn = _import_engine(NCNN, "ncnn")
        _cpu_only(NCNN, device)
        path = Path(path)
        weights = path.with_suffix(".bin")
        self.net = ncnn.Net()
        self.threads = threads or thread_budget()
        self.net.opt.num_threads = self.threads
        self.net.opt.use_vulkan_compute = False
        if precision == PINNED:
            for option in NCNN_REDUCED:
                if hasattr(self.net.opt, option):
                    setattr(self.net.opt, option, False)
        if self.net.load_param(str(path)) != 0 or self.net.load_model(str(weights)) != 0:
            raise EdgeclsError(f"NCNN cannot load {path} with {weights.name}")
        if NCNN_INPUT not in self.net.input_names() or NCNN_OUTPUT not in self.net.output_names():
            raise EdgeclsError(f"{path} has no {NCNN_INPUT} → {NCNN_OUTPUT} graph (not a pnnx conversion of an "
                               "edgecls model, or NCNN could not build every layer)")
        self.metadata = sidecar_metadata(path)
        self.device, self.version = "cpu", engine_version(NCNN)
        storage = [o for o in NCNN_REDUCED if getattr(self.net.opt, o, False)]
        self.precision = "f32" if not storage else ("bf16" if all("bf16" in o for o in storage) else "f16")

    def run(self, x: np.ndarray) -> np.ndarray:
        out = []
        for image in np.ascontiguousarray(x, dtype=np.float32):
            extractor = self.net.create_extractor()
            extractor.input(NCNN_INPUT, self._ncnn.Mat(image))
            status, logits = extractor.extract(NCNN_OUTPUT)
            if status != 0:
                raise EdgeclsError(f"NCNN failed to run the model (status {status})")
            out.append(np.array(logits).reshape(-1))
        return np.stack(out)


class ExecuTorchEngine:
    """ExecuTorch's Python runtime on a .pte lowered to XNNPACK; needs torch (the runtime links libtorch).

    The file bounds its batch (``max_batch``, read from the file: a bound asked for at export may come out
    lower); ``run`` feeds any number of images at most that many at a time.
    """

    name = EXECUTORCH
    fixed_batch = None

    def __init__(self, path: Path, threads: int | None = None, device: str | None = None,
                 precision: str = PINNED):
        with quiet_native_stderr():
            runtime = _import_engine(EXECUTORCH, "executorch.runtime")
        _cpu_only(EXECUTORCH, device)
        import torch

        self._torch = torch
        self.threads = threads or thread_budget()
        try:
            with quiet_native_stderr():
                _executorch_threads(self.threads)
                program = runtime.Runtime.get().load_program(str(path))
                self.method = program.load_method("forward")
        except (RuntimeError, ValueError) as e:
            raise EdgeclsError(f"ExecuTorch cannot load {path}: {str(e).splitlines()[0]}") from None
        self.max_batch = int(self.method.metadata.input_tensor_meta(0).sizes()[0])
        self.fixed_batch = 1 if self.max_batch == 1 else None  # a --static-batch export
        self.metadata = sidecar_metadata(path)
        self.device, self.version = "cpu", engine_version(EXECUTORCH)
        self.precision = "f32"  # XNNPACK's float kernels

    def run(self, x: np.ndarray) -> np.ndarray:
        return run_in_chunks(self._execute, x, self.max_batch, pad=False)

    def _execute(self, x: np.ndarray) -> np.ndarray:
        out = self.method.execute([self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))])[0]
        return out.numpy().copy()


def _executorch_threads(threads: int) -> None:
    """XNNPACK's thread pool is process-wide in ExecuTorch: size it like the other engines' pools."""
    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool, threadpool_get_thread_count
    except ImportError:
        return
    if threadpool_get_thread_count() != threads:  # each reset logs a line on stderr
        _unsafe_reset_threadpool(threads)


@contextlib.contextmanager
def quiet_native_stderr():
    """LiteRT's and ExecuTorch's C++ code print INFO lines to the process's stderr when a model loads ("Created
    TensorFlow Lite XNNPACK delegate", cpuinfo probes): hidden around the load, as onnxruntime's are by its log
    level. Failures still surface as the exceptions the callers turn into one-line errors."""
    import logging
    import sys

    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # torchao's import-time notice
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (a captured one): nothing to hide
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _cpu_only(engine: str, device: str | None) -> None:
    if device is not None and device.lower() != "cpu":
        raise UsageError(f"the {engine} engine runs on the CPU here; --device {device} is not available to it")


# The extra that installs each optional engine; onnxruntime is the base install's, torch the train extra's.
ENGINE_EXTRAS = {OPENVINO: "openvino", LITERT: "litert", NCNN: "ncnn", EXECUTORCH: "executorch"}
BASE_ENGINE_MODULES = {ONNXRUNTIME: ("onnxruntime",), TORCH: ("torch",)}
# The distribution whose version an edge engine reports (they have no version attribute of their own).
ENGINE_DISTRIBUTIONS = {LITERT: "ai-edge-litert", NCNN: "ncnn", EXECUTORCH: "executorch"}


def engine_version(engine: str) -> str:
    """The version an engine reports, known before a file is opened: a proof's cached verdict is looked up by it
    (``runtime.proof``) and must name the version that then answers."""
    if engine == ONNXRUNTIME:
        import onnxruntime

        return onnxruntime.__version__
    if engine == OPENVINO:
        return import_openvino().get_version().split("-")[0]
    return distribution_version(ENGINE_DISTRIBUTIONS[engine], "unknown")


def distribution_version(distribution: str, absent: str | None = None) -> str | None:
    """An installed distribution's version by metadata (nothing imported), else ``absent``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return absent
ENGINE_LABELS = {OPENVINO: "OpenVINO", LITERT: "LiteRT", NCNN: "NCNN", EXECUTORCH: "ExecuTorch"}


def engine_available(engine: str) -> bool:
    """Whether ``engine``'s packages are installed, for every engine of the format table: looked up, not imported
    (importing OpenVINO costs a tenth of a second; a package that is found but fails to import is refused by
    name when a file is opened)."""
    modules = EXTRAS[ENGINE_EXTRAS[engine]] if engine in ENGINE_EXTRAS else BASE_ENGINE_MODULES[engine]
    return not missing_of(modules)


def missing_engine(engine: str) -> str:
    """One line naming what ``engine`` lacks here and the extra that brings it."""
    extra = ENGINE_EXTRAS[engine]
    missing = ", ".join(missing_of(EXTRAS[extra])) or "a module it imports"
    why = " (its Python runtime links PyTorch)" if engine == EXECUTORCH else ""
    return f"{ENGINE_LABELS[engine]} not usable here ({missing} missing){why}: pip install 'edgecls[{extra}]'"


def _import_engine(engine: str, module: str):
    import importlib

    if not engine_available(engine):
        raise UsageError(f"this model needs {missing_engine(engine)}")
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"this model needs {missing_engine(engine)}") from None


ENGINES = {ONNXRUNTIME: OnnxRuntimeEngine, OPENVINO: OpenVinoEngine, LITERT: LiteRtEngine, NCNN: NcnnEngine,
           EXECUTORCH: ExecuTorchEngine}


def open_engine(engine: str, path: Path, threads: int | None = None, device: str | None = None,
                precision: str = PINNED, streaming: bool = False):
    """``streaming``: opened for streams of batches (see `OnnxRuntimeEngine`; the other engines' threads do not
    spin between runs, so they open alike either way)."""
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cls = ENGINES[engine]
    options = {"streaming": True} if streaming and hasattr(cls, "for_streaming") else {}
    return cls(path, threads, device, precision, **options)
