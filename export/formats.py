"""The exporter's build rows, keyed by the bundle's format names (``edgecls.bundle.FORMATS``).

A row adds to the bundle's description of a format (precision, engines, files) how to build it,
how to run it for the parity gate and what to record about it. ONNX and OpenVINO files run
through the runtime's own engines (``edgecls.runtime.engines``), with the options ``Classifier``
and ``edgecls infer`` use, so what the gate proves is what a device runs; TorchScript keeps its own
loader, being torch by nature. INT8 rows quantize the FP32 row named by ``int8_of`` and are built
after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgecls.bundle import FORMATS as BUNDLE_FORMATS
from edgecls.bundle import FormatInfo
from edgecls.errors import EdgeclsError
from edgecls.runtime.engines import DEFAULT_PRECISION, PINNED, open_engine

from .job import ExportJob
from .onnx_export import build_onnx
from .openvino_export import build_openvino
from .quantize import build_onnx_int8, build_openvino_int8, onnx_int8_settings, openvino_int8_settings
from .torchscript_export import build_torchscript, load_torchscript

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Format:
    info: FormatInfo
    build: Callable[[ExportJob, Path], None]
    load: Callable[[Path], Runner]  # the runner whose result gates FP32 parity
    fixes_batch: bool = True  # False: the file accepts any batch even with --static-batch
    extra_checks: tuple[tuple[str, Callable[[Path], Runner]], ...] = ()  # reported, never gating
    settings: Callable[[ExportJob], dict] | None = None  # recorded in the manifest (quantizer options)

    name = property(lambda self: self.info.name)
    suffixes = property(lambda self: self.info.suffixes)
    precision = property(lambda self: self.info.precision)
    engine = property(lambda self: self.info.engine)
    int8_of = property(lambda self: self.info.int8_of)


def engine_runner(engine: str, precision: str = PINNED) -> Callable[[Path], Runner]:
    """Open a file in the runtime's engine, exactly as ``Classifier.load`` would on this machine."""
    return lambda path: open_engine(engine, path, precision=precision).run


_OV_DEFAULT = (("cpu-default-precision", engine_runner("openvino", DEFAULT_PRECISION)),)


def _row(name: str, build, **kw) -> Format:
    info = BUNDLE_FORMATS[name]
    load = kw.pop("load", None) or engine_runner(info.engine)
    return Format(info, build, load, **kw)


FORMATS: dict[str, Format] = {f.name: f for f in (
    _row("torchscript", build_torchscript, load=load_torchscript, fixes_batch=False),
    _row("onnx", build_onnx),
    _row("openvino", build_openvino, extra_checks=_OV_DEFAULT),
    _row("onnx-int8", build_onnx_int8, settings=onnx_int8_settings),
    _row("openvino-int8", build_openvino_int8, extra_checks=_OV_DEFAULT, settings=openvino_int8_settings),
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
