"""The bundle's format names and engine names, in one torch-free table: the exporter builds by it, the runtime
picks and runs by it, the CLI's help text is written from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FP32, FP16, INT8 = "fp32", "fp16", "int8"
TORCH, ONNXRUNTIME, OPENVINO = "torch", "onnxruntime", "openvino"
LITERT, NCNN, EXECUTORCH = "litert", "ncnn", "executorch"
# LiteRT files have no dynamic axes: the batch they are converted at (phones run one image at a time), recorded
# in the manifest's input_shape; the engine feeds any number of images this many at a time.
LITERT_BATCH = 1
# Files whose format has no place for edgecls's metadata (NCNN's .param, LiteRT and ExecuTorch as converted)
# carry it beside them: the model file's name plus this suffix, a companion with its own sha256.
META_SIDECAR = ".json"


@dataclass(frozen=True)
class FormatInfo:
    name: str
    label: str  # for tables
    precision: str
    engines: tuple[str, ...]  # engines that can run the file, preferred first
    suffixes: tuple[str, ...]  # files written, model file first (stem = model name)
    int8_of: str | None = None  # the FP32 format this one quantizes
    converted_from: str | None = None  # the file this one is converted from (built in scratch if not chosen)
    fixed_batch: int | None = None  # the batch the file is fixed at whatever --dynamic-batch says

    @property
    def engine(self) -> str:
        return self.engines[0]

    def files(self, model_file: Path) -> list[Path]:
        """The model file and the companions written beside it (an IR's .bin, a sidecar), by ``suffixes``."""
        stem = model_file.name[:len(model_file.name) - len(self.suffixes[0])]
        return [model_file.with_name(stem + suffix) for suffix in self.suffixes]


FORMATS: dict[str, FormatInfo] = {f.name: f for f in (
    FormatInfo("torchscript", "TorchScript", FP32, (TORCH,), (".torchscript.pt",)),
    FormatInfo("onnx", "ONNX FP32", FP32, (ONNXRUNTIME, OPENVINO), (".onnx",)),
    FormatInfo("openvino", "OpenVINO FP32", FP32, (OPENVINO,), (".xml", ".bin")),
    FormatInfo("onnx-int8", "ONNX INT8", INT8, (ONNXRUNTIME, OPENVINO), ("-int8.onnx",), int8_of="onnx"),
    FormatInfo("openvino-int8", "OpenVINO INT8", INT8, (OPENVINO,), ("-int8.xml", "-int8.bin"), int8_of="openvino"),
    FormatInfo("onnx-fp16", "ONNX FP16", FP16, (ONNXRUNTIME, OPENVINO), ("-fp16.onnx",), converted_from="onnx"),
    FormatInfo("openvino-fp16", "OpenVINO FP16", FP16, (OPENVINO,), ("-fp16.xml", "-fp16.bin")),
    FormatInfo("litert", "LiteRT FP32", FP32, (LITERT,), (".tflite", ".tflite" + META_SIDECAR),
               fixed_batch=LITERT_BATCH),
    FormatInfo("litert-int8", "LiteRT INT8", INT8, (LITERT,), ("-int8.tflite", "-int8.tflite" + META_SIDECAR),
               int8_of="litert", fixed_batch=LITERT_BATCH),
    FormatInfo("ncnn", "NCNN FP32", FP32, (NCNN,), (".ncnn.param", ".ncnn.bin", ".ncnn.param" + META_SIDECAR),
               converted_from="onnx"),
    FormatInfo("executorch", "ExecuTorch FP32", FP32, (EXECUTORCH,), (".pte", ".pte" + META_SIDECAR)),
    FormatInfo("executorch-int8", "ExecuTorch INT8", INT8, (EXECUTORCH,), ("-int8.pte", "-int8.pte" + META_SIDECAR),
               int8_of="executorch"),
)}

# The engines the runtime can run a file in (every engine of the table but PyTorch's), in the table's order.
RUNTIME_ENGINES = tuple(dict.fromkeys(e for f in FORMATS.values() for e in f.engines if e != TORCH))


def runtime_preference() -> tuple[tuple[str, str], ...]:
    """(format, engine) in the order the runtime picks from a bundle: INT8 before FP32, table order."""
    return tuple((f.name, f.engine) for precision in (INT8, FP32) for f in FORMATS.values()
                 if f.precision == precision and f.engine != TORCH)
