"""THE table of export formats: it drives CLI validation, build order, parity checks and the manifest.

A row names its files, how to build them, how to run them (a loader returning ``run(x) -> logits``
on float32 NCHW numpy input), its precision and engine. INT8 rows point at the FP32 row they
quantize (``int8_of``) and are built after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgecls.errors import EdgeclsError

from .job import ExportJob
from .onnx_export import build_onnx, load_onnx
from .openvino_export import build_openvino, load_openvino, load_openvino_default_precision
from .quantize import build_onnx_int8, build_openvino_int8, onnx_int8_settings, openvino_int8_settings
from .torchscript_export import build_torchscript, load_torchscript

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]  # files written, model file first (stem = model name)
    build: Callable[[ExportJob, Path], None]
    load: Callable[[Path], Runner]  # the runner whose result gates FP32 parity
    precision: str  # fp32 | int8
    engine: str
    int8_of: str | None = None  # the FP32 format this row quantizes
    fixes_batch: bool = True  # False: the file accepts any batch even with --static-batch
    extra_checks: tuple[tuple[str, Callable[[Path], Runner]], ...] = ()  # reported, never gating
    settings: Callable[[ExportJob], dict] | None = None  # recorded in the manifest (quantizer options)


_OV_DEFAULT = (("cpu-default-precision", load_openvino_default_precision),)

FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("torchscript", (".torchscript.pt",), build_torchscript, load_torchscript, "fp32", "torch",
           fixes_batch=False),
    Format("onnx", (".onnx",), build_onnx, load_onnx, "fp32", "onnxruntime"),
    Format("openvino", (".xml", ".bin"), build_openvino, load_openvino, "fp32", "openvino",
           extra_checks=_OV_DEFAULT),
    Format("onnx-int8", ("-int8.onnx",), build_onnx_int8, load_onnx, "int8", "onnxruntime",
           int8_of="onnx", settings=onnx_int8_settings),
    Format("openvino-int8", ("-int8.xml", "-int8.bin"), build_openvino_int8, load_openvino, "int8", "openvino",
           int8_of="openvino", extra_checks=_OV_DEFAULT, settings=openvino_int8_settings),
)}

FP32_NAMES = tuple(n for n, f in FORMATS.items() if f.precision == "fp32")


def resolve_formats(spec: str, int8: bool) -> list[Format]:
    """``spec`` is ``all`` or comma-separated FP32 format names; ``int8`` adds each one's INT8 row."""
    names = FP32_NAMES if spec.strip() == "all" else tuple(n.strip() for n in spec.split(",") if n.strip())
    unknown = [n for n in names if n not in FP32_NAMES]
    if unknown or not names:
        raise EdgeclsError(f"unknown --format {spec!r}; choose from {', '.join(FP32_NAMES)}, all "
                           "(comma-separated for several)")
    chosen = [FORMATS[n] for n in dict.fromkeys(names)]
    if int8:
        variants = [f for f in FORMATS.values() if f.int8_of in names]
        if not variants:
            raise EdgeclsError(f"--int8 has no INT8 variant of {spec!r}; INT8 exists for "
                               f"{', '.join(f.int8_of for f in FORMATS.values() if f.int8_of)}")
        chosen += variants
    return chosen
