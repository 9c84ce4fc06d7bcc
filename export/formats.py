"""The exporter's build rows, keyed by the bundle's format names (``edgecls.format_table.FORMATS``).

A row adds to the bundle's description of a format (precision, engines, files) how to build it,
how to run it for the parity gate and what to record about it. ONNX and OpenVINO files run
through the runtime's own engines (``edgecls.runtime.engines``), with the options ``Classifier``
and ``edgecls infer`` use, so what the gate proves is what a device runs; TorchScript keeps its own
loader, being torch by nature. INT8 rows quantize the FP32 row named by ``int8_of`` and are built
after it. FP16 rows and NCNN are converted from the ONNX file (``converted_from``), reusing it when
it is among the chosen formats. Rows whose converter lives in an optional extra name it (``needs``):
``--format all`` builds every row whose converter is installed and lists the others with why; a row
named explicitly without its converter is a one-line error naming the extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgecls.errors import EdgeclsError, UsageError
from edgecls.extras import EXTRAS, missing_of
from edgecls.format_table import FORMATS as BUNDLE_FORMATS
from edgecls.format_table import INT8, FormatInfo
from edgecls.runtime.engines import DEFAULT_PRECISION, PINNED, open_engine

from .executorch_export import build_executorch, executorch_limits
from .executorch_int8 import EXECUTORCH_RUNGS, executorch_int8_settings
from .fp16 import build_onnx_fp16, build_openvino_fp16
from .job import ExportJob
from .int8_ladder import climb
from .litert_export import LITERT_RUNGS, build_litert, litert_int8_settings
from .ncnn_export import build_ncnn
from .onnx_export import build_onnx
from .openvino_export import build_openvino
from .onnx_int8 import ONNX_RUNGS, onnx_int8_settings
from .quantize import OPENVINO_RUNGS, openvino_int8_settings
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
    needs: tuple[str, tuple[str, ...]] | None = None  # (extra, import names) its converter needs beyond `export`
    describe: Callable[[Path], dict] | None = None  # manifest keys read back from the built file (max_batch)

    name = property(lambda self: self.info.name)
    suffixes = property(lambda self: self.info.suffixes)
    precision = property(lambda self: self.info.precision)
    engine = property(lambda self: self.info.engine)
    int8_of = property(lambda self: self.info.int8_of)


def engine_runner(engine: str, precision: str = PINNED) -> Callable[[Path], Runner]:
    """Open a file in the runtime's engine, exactly as ``Classifier.load`` would on this machine."""
    return lambda path: open_engine(engine, path, precision=precision).run


_OV_DEFAULT = (("cpu-default-precision", engine_runner("openvino", DEFAULT_PRECISION)),)
_NCNN_DEFAULT = (("ncnn-default-fp16", engine_runner("ncnn", DEFAULT_PRECISION)),)
_FP16 = ("export", ("onnxconverter_common",))
_NCNN = ("export", ("pnnx", "ncnn"))
_LITERT = ("litert-export", EXTRAS["litert-export"])
_EXECUTORCH = ("executorch", EXTRAS["executorch"])


def _int8_row(name: str, rungs: tuple, **kw) -> Format:
    """An INT8 row climbs its quantizer's rungs (export.int8_ladder), scored in the engine the gate runs."""
    runner = engine_runner(BUNDLE_FORMATS[name].engine)
    return _row(name, lambda job, path: climb(name, rungs, job, path, runner), **kw)


def _row(name: str, build, **kw) -> Format:
    info = BUNDLE_FORMATS[name]
    load = kw.pop("load", None) or engine_runner(info.engine)
    return Format(info, build, load, **kw)


FORMATS: dict[str, Format] = {f.name: f for f in (
    _row("torchscript", build_torchscript, load=load_torchscript, fixes_batch=False),
    _row("onnx", build_onnx),
    _row("openvino", build_openvino, extra_checks=_OV_DEFAULT),
    _int8_row("onnx-int8", ONNX_RUNGS, settings=onnx_int8_settings),
    _int8_row("openvino-int8", OPENVINO_RUNGS, extra_checks=_OV_DEFAULT, settings=openvino_int8_settings),
    _row("onnx-fp16", build_onnx_fp16, needs=_FP16),
    _row("openvino-fp16", build_openvino_fp16),
    _row("litert", build_litert, needs=_LITERT),
    _int8_row("litert-int8", LITERT_RUNGS, settings=litert_int8_settings, needs=_LITERT),
    _row("ncnn", build_ncnn, fixes_batch=False, extra_checks=_NCNN_DEFAULT, needs=_NCNN),
    _row("executorch", build_executorch, needs=_EXECUTORCH, describe=executorch_limits),
    _int8_row("executorch-int8", EXECUTORCH_RUNGS, settings=executorch_int8_settings, needs=_EXECUTORCH,
         describe=executorch_limits),
)}

# What --format takes: every row but the INT8 ones, which --int8 adds to the rows they quantize.
BASE_NAMES = tuple(n for n, f in FORMATS.items() if f.precision != INT8)


def missing_converter(fmt: Format) -> str | None:
    """Why ``fmt`` cannot be built here (None: it can), naming the extra to install."""
    if fmt.needs is None:
        return None
    extra, modules = fmt.needs
    missing = missing_of(modules)
    return f"needs the {extra} extra ({', '.join(missing)} missing): pip install 'edgecls[{extra}]'" if missing \
        else None


def resolve_formats(spec: str, int8: bool, skipped: dict[str, str] | None = None) -> list[Format]:
    """``spec`` is ``all`` or comma-separated format names; ``int8`` adds each one's INT8 row. In table order.

    ``all`` leaves out the rows whose converter is not installed, recording why in ``skipped``; a row named
    explicitly without its converter is a UsageError naming the extra.
    """
    everything = spec.strip() == "all"
    names = BASE_NAMES if everything else tuple(n.strip() for n in spec.split(",") if n.strip())
    unknown = [n for n in names if n not in BASE_NAMES]
    if unknown or not names:
        raise EdgeclsError(f"unknown --format {spec!r}; choose from {', '.join(BASE_NAMES)}, all "
                           "(comma-separated for several)")
    chosen = [FORMATS[n] for n in names]
    if int8:
        variants = [f for f in FORMATS.values() if f.int8_of in names]
        if not variants:
            raise EdgeclsError(f"--int8 has no INT8 variant of {spec!r}; INT8 exists for "
                               f"{', '.join(f.int8_of for f in FORMATS.values() if f.int8_of)}")
        chosen += variants
    buildable = []
    for fmt in chosen:
        why = missing_converter(fmt)
        if why and not everything:
            raise UsageError(f"--format {fmt.name} {why}")
        if why and skipped is not None:
            skipped[fmt.name] = why
        if not why:
            buildable.append(fmt)
    order = list(FORMATS)
    return sorted(dict.fromkeys(buildable), key=lambda f: order.index(f.name))
