"""ONNX INT8: onnxruntime static quantization in QDQ format (what ORT's CPU kernels are tuned for), uint8
activations and per-channel int8 weights, after ``quant_pre_process`` (shape inference + BatchNorm
folding). The file must answer alike on every CPU that runs it, whatever CPU builds it (issue 33), so
nothing here reads the exporting CPU:

- ``reduce_range``: 7-bit weights, always. onnxruntime's u8×s8 kernel on CPUs without int8 dot products
  (AVX2, AVX-512 without VNNI) sums pairs of products in int16 (vpmaddubsw); with 8-bit weights a pair
  can reach 2·255·127 > 32,767 and saturate, and a file built on a VNNI box collapsed on an AVX2 laptop.
  With |w| ≤ 64 no pair can pass 32,640, on any input.
- The first convolution stays FP32 (``nodes_to_exclude``) where that pays, measured at each export: its
  input is the normalized image, whose zero point sits mid-range, so 7-bit weights can hurt it most, but a
  float layer between integer ones costs throughput (`FIRST_CONV_MIN_GAIN`).
- S8S8 and U8U8 never saturate either, but run at a fraction of the u8s8 kernels' speed.
- Activation ranges from the 99.999th percentile, not the extremes: with 7-bit weights it raised airbench's
  agreement with PyTorch over every calibration draw tried and left ResNet-20's as it was. With 8-bit
  weights no calibration method had gained anything that held across models and draws
  (benchmarks/results/onnx-int8-calibration-2026-11-23.md).
Every figure behind these choices, per CPU class: benchmarks/results/int8-portability-2026-12-07.md.

When the drop on the validation split is over the target (export.int8_ladder), two more rungs follow: the
same settings calibrated on CALIBRATION_GROWTH times the images, then the layers most sensitive to
quantization kept in float. A layer's sensitivity is the RMS logit error of the model with that layer alone
quantized (every other layer float), on SENSITIVITY_IMAGES calibration images; the rung offers the top 1, 2,
4, ... layers in float, up to half of them, and the ladder keeps the first within the target.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from edgecls.progress import track

from .int8_ladder import (CALIBRATION, PTQ, SENSITIVITY_IMAGES, Candidate, Ladder, float_layer_candidates,
                          rms_logit_error)
from .job import ExportJob
from .metadata import stamp_onnx_file, with_precision
from .onnx_export import INPUT_NAME
from .quantize import single_images

ONNX_FP32_LAYERS = ("first convolution",)
# The first convolution stays FP32 when that cuts the INT8 file's RMS logit error against FP32, on the
# calibration images, by at least this fraction: between the two shipped models' gains (the results file above).
FIRST_CONV_MIN_GAIN = 0.20
ONNX_PERCENTILE = 99.999  # activation ranges: onnxruntime's default percentile
# Why the ONNX INT8 settings are what they are, recorded in the manifest beside them (see the module docstring).
ONNX_INT8_WHY = ("portable to every CPU class: 7-bit weights cannot saturate onnxruntime's int16 pair sums on CPUs "
                 "without VNNI; the first convolution stays FP32 where that pays (fp32_layers)")
CALIBRATION_GROWTH = 4  # the calibration rung's images: this many times --calib-size, a superset of them
QUANTIZABLE = ("Conv", "Gemm", "MatMul")
RANGES = "ranges.json"  # onnxruntime's calibration cache, in a rung's scratch folder


def onnx_int8_settings(job: ExportJob) -> dict:
    """quantize_static options as plain values, recorded in the manifest (what each rung changed: its ladder)."""
    return {"quant_format": "QDQ", "calibrate_method": "Percentile", "percentile": ONNX_PERCENTILE,
            "activation_type": "QUInt8", "weight_type": "QInt8", "per_channel": True, "reduce_range": True,
            "calibration_images": len(job.calibration.images), "why": ONNX_INT8_WHY}


@contextlib.contextmanager
def _prepared(job: ExportJob) -> Iterator[tuple[Path, Path]]:
    """(the FP32 file after shape inference and BatchNorm folding, a scratch folder), for one rung."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=job.workdir, prefix=".onnx-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(job.built["onnx"]), str(prepared))
        yield prepared, Path(scratch)


def ptq(job: ExportJob, ladder: Ladder | None) -> Iterator[Candidate]:
    yield from _first_conv_choice(job, job.calibration.images, PTQ)


def more_calibration(job: ExportJob, ladder: Ladder) -> Iterator[Candidate]:
    yield from _first_conv_choice(job, job.calibration.draw(CALIBRATION_GROWTH * len(job.calibration.images)),
                                  CALIBRATION)


def _first_conv_choice(job: ExportJob, images: np.ndarray, rung: str) -> Iterator[Candidate]:
    """Two files, every layer INT8 and the first convolution in FP32; the second is offered when it pays
    (`FIRST_CONV_MIN_GAIN`), measured on the calibration images against the FP32 file."""
    with _prepared(job) as (prepared, scratch):
        candidates = {(): scratch / "int8.onnx", ONNX_FP32_LAYERS: scratch / "int8-fp32-first.onnx"}
        for fp32_layers, candidate in candidates.items():
            _quantize_onnx(job, prepared, candidate, images, exclude=_first_conv(prepared) if fp32_layers else [])
        errors = _rms_logit_errors(job, candidates, images)
        gain = 1 - errors[ONNX_FP32_LAYERS] / errors[()]
        kept = ONNX_FP32_LAYERS if gain >= FIRST_CONV_MIN_GAIN else ()
        settings = {
            "calibration_images": len(images), "fp32_layers": list(kept),
            "rms_logit_error": {"every layer int8": round(errors[()], 5),
                                "first convolution fp32": round(errors[ONNX_FP32_LAYERS], 5)},
            "first_convolution_fp32_when": f"it cuts that error by >= {FIRST_CONV_MIN_GAIN:.0%} (here {gain:.0%})"}
        yield Candidate(rung, settings, lambda path: _finish(job, candidates[kept], path, copy=True))


def float_layers(job: ExportJob, ladder: Ladder) -> Iterator[Candidate]:
    images = job.calibration.images
    with _prepared(job) as (prepared, scratch):
        yield from float_layer_candidates(
            _sensitivity(job, prepared, scratch, images), {"calibration_images": len(images)},
            lambda nodes: lambda path: _finish(
                job, _quantize_onnx(job, prepared, path, images, exclude=nodes, ranges=scratch / RANGES), path))


def _sensitivity(job: ExportJob, prepared: Path, scratch: Path, images: np.ndarray) -> list[tuple[str, float]]:
    """Each quantizable node's RMS logit error with it alone quantized, largest first."""
    import onnx

    nodes = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in QUANTIZABLE]
    probes = {(name,): scratch / f"probe-{i}.onnx" for i, name in enumerate(nodes)}
    for (name,), probe in track(probes.items(), len(probes), "onnx-int8 layer sensitivity"):
        _quantize_onnx(job, prepared, probe, images, only=[name], ranges=scratch / RANGES, quiet=True)
    errors = _rms_logit_errors(job, probes, images[:SENSITIVITY_IMAGES])
    return sorted(((key[0], e) for key, e in errors.items()), key=lambda item: -item[1])


def _finish(job: ExportJob, built: Path, path: Path, copy: bool = False) -> None:
    if copy:
        shutil.copyfile(built, path)
    stamp_onnx_file(path, with_precision(job.metadata, "int8"))


def _quantize_onnx(job: ExportJob, prepared: Path, out: Path, images: np.ndarray, exclude: list[str] = (),
                   only: list[str] | None = None, ranges: Path | None = None, quiet: bool = False) -> Path:
    """``ranges``: onnxruntime's calibration cache (1.27+: it has ``calibration_cache_path``), so the
    sensitivity probes calibrate once; older onnxruntime calibrates each probe again."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    s = onnx_int8_settings(job)
    cached = {}
    if ranges is not None and "calibration_cache_path" in inspect.signature(quantize_static).parameters:
        cached = {"calibration_cache_path": str(ranges)}
    with contextlib.redirect_stdout(io.StringIO()):  # the percentile calibrator prints its progress
        quantize_static(
            str(prepared), str(out), _OrtReader(images, quiet), nodes_to_exclude=list(exclude),
            nodes_to_quantize=only or [], quant_format=QuantFormat[s["quant_format"]],
            per_channel=s["per_channel"], reduce_range=s["reduce_range"],
            activation_type=QuantType[s["activation_type"]], weight_type=QuantType[s["weight_type"]],
            calibrate_method=CalibrationMethod[s["calibrate_method"]],
            extra_options={"CalibPercentile": s["percentile"]}, **cached)
    return out


def _rms_logit_errors(job: ExportJob, candidates: dict[tuple, Path], x: np.ndarray) -> dict[tuple, float]:
    from edgecls.runtime.engines import open_engine

    reference = open_engine("onnxruntime", job.built["onnx"]).run(x)
    return {key: rms_logit_error(open_engine("onnxruntime", p).run(x), reference) for key, p in candidates.items()}


def _first_conv(model: Path) -> list[str]:
    import onnx

    return [node.name for node in onnx.load(str(model)).graph.node if node.op_type == "Conv"][:1]


class _OrtReader:
    """onnxruntime's CalibrationDataReader protocol: ``get_next()`` until it returns None."""

    def __init__(self, images: np.ndarray, quiet: bool = False):
        items = [{INPUT_NAME: x} for x in single_images(images)]
        self._iter = iter(items if quiet else track(items, len(items), "calibrating onnx-int8"))

    def get_next(self) -> dict | None:
        return next(self._iter, None)


ONNX_RUNGS = (ptq, more_calibration, float_layers)
