"""INT8 variants of the FP32 files, calibrated on training-split images (see export.data).

OpenVINO: NNCF post-training quantization of the FP32 IR: ``preset=PERFORMANCE`` (symmetric
weights and activations, the fastest on CPUs), ``target_device=ANY`` (the IR stays portable),
``subset_size`` = all calibration images, ``fast_bias_correction=False`` (the full bias correction: a
few seconds more for ResNet-20 and a higher top-1 agreement with FP32; symmetric vs MIXED and 300 vs 1000
images changed little). The first convolution and the final linear layer stay FP32 (``ignored_scope``):
agreement over all 10,000 test images rose at the same speed, measured side by side
(benchmarks/results/readme-records-cpu-avx512bf16-2026-11-22-to-29.md). ``overflow_fix=ENABLE``:
7-bit weights in every layer, for the reason given for ONNX below (oneDNN's kernels for CPUs without
VNNI sum u8×s8 pairs in int16 too). NNCF's default fixes only the first layer, and its IRs answered
differently on AVX2 kernels than on VNNI ones; with the fix they answer bit-identically on both.
With --max-drop, NNCF's accuracy-controlled quantization reverts the most harmful layers to FP32
until the accuracy drop on a held-out slice of the training split is at most that many points.

ONNX: onnxruntime static quantization in QDQ format (what ORT's CPU kernels are tuned for), uint8
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
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from edgecls.progress import track

from .job import ExportJob
from .metadata import stamp_onnx_file, stamp_openvino, with_precision
from .onnx_export import INPUT_NAME

FP32_LAYERS = ("first convolution", "final linear")
ONNX_FP32_LAYERS = ("first convolution",)
# The first convolution stays FP32 when that cuts the INT8 file's RMS logit error against FP32, on the
# calibration images, by at least this fraction: between the two shipped models' gains (the results file above).
FIRST_CONV_MIN_GAIN = 0.20
ONNX_PERCENTILE = 99.999  # activation ranges: onnxruntime's default percentile
# Why the ONNX INT8 settings are what they are, recorded in the manifest beside them (see the module docstring).
ONNX_INT8_WHY = ("portable to every CPU class: 7-bit weights cannot saturate onnxruntime's int16 pair sums on CPUs "
                 "without VNNI; the first convolution stays FP32 where that pays (fp32_layers)")


class TrackedItems:
    """A re-iterable list whose every pass shows a progress bar (NNCF iterates more than once)."""

    def __init__(self, items: list, desc: str):
        self.items, self.desc = items, desc

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator:
        return iter(track(self.items, len(self.items), self.desc))


def single_images(images: np.ndarray) -> list[np.ndarray]:
    """Batch-1 items: valid for static- and dynamic-batch models alike."""
    return [images[i:i + 1] for i in range(len(images))]


def openvino_int8_settings(job: ExportJob) -> dict:
    """NNCF options as plain values: used for the call and recorded in the manifest."""
    settings = {"preset": "performance", "target_device": "ANY", "subset_size": len(job.calibration.images),
                "fast_bias_correction": False, "overflow_fix": "enable", "fp32_layers": list(FP32_LAYERS)}
    if job.max_drop is not None:
        settings.update(max_drop_points=job.max_drop, drop_type="absolute",
                        validation_images=len(job.calibration.val_labels))
    return settings


def _import_nncf():
    """NNCF, without its INFO log lines or torch's "no CUDA runtime" warning on import."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import nncf

    nncf.set_log_level(logging.ERROR)
    return nncf


def build_openvino_int8(job: ExportJob, path: Path) -> None:
    import openvino as ov

    nncf = _import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    s = openvino_int8_settings(job)
    fp32 = ov.Core().read_model(str(job.built["openvino"]))
    calib = nncf.Dataset(TrackedItems(single_images(job.calibration.images), "calibrating openvino-int8"))
    common = dict(preset=nncf.QuantizationPreset(s["preset"]), target_device=nncf.TargetDevice(s["target_device"]),
                  subset_size=s["subset_size"], fast_bias_correction=s["fast_bias_correction"],
                  ignored_scope=nncf.IgnoredScope(names=_first_of(fp32, "Convolution"), types=["MatMul"],
                                                  validate=False))
    advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix(s["overflow_fix"]))
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF's own bars; ours (on stderr) show the same
        if job.max_drop is None:
            quantized = nncf.quantize(fp32, calib, advanced_parameters=advanced, **common)
        else:
            quantized = nncf.quantize_with_accuracy_control(
                fp32, calib, _validation_dataset(job), _validation_accuracy,
                max_drop=s["max_drop_points"] / 100, drop_type=nncf.DropType(s["drop_type"]),
                advanced_quantization_parameters=advanced, **common)
    stamp_openvino(quantized, with_precision(job.metadata, "int8"))
    ov.save_model(quantized, str(path), compress_to_fp16=False)


def _first_of(model, op_type: str) -> list[str]:
    ops = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == op_type]
    return ops[:1]


def _validation_dataset(job: ExportJob):
    nncf = _import_nncf()
    c = job.calibration
    items = list(zip(single_images(c.val_images), c.val_labels.tolist()))
    return nncf.Dataset(TrackedItems(items, "accuracy control"), lambda item: item[0])


def _validation_accuracy(compiled_model, items: Iterable) -> tuple[float, list[float]]:
    """NNCF's validation_fn: top-1 accuracy, plus per-image correctness for its layer ranking."""
    output = compiled_model.output(0)
    hits = [float(compiled_model(x)[output].argmax() == label) for x, label in items]
    return float(np.mean(hits)), hits


def onnx_int8_settings(job: ExportJob) -> dict:
    """quantize_static options as plain values, and what the build measured: recorded in the manifest."""
    return {"quant_format": "QDQ", "calibrate_method": "Percentile", "percentile": ONNX_PERCENTILE,
            "activation_type": "QUInt8", "weight_type": "QInt8", "per_channel": True, "reduce_range": True,
            "calibration_images": len(job.calibration.images), "why": ONNX_INT8_WHY,
            **job.decisions.get("onnx-int8", {})}


def build_onnx_int8(job: ExportJob, path: Path) -> None:
    """Two candidates, every layer INT8 and the first convolution in FP32; the second is kept when it pays
    (`FIRST_CONV_MIN_GAIN`), measured on the calibration images against the FP32 file."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=job.workdir) as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(job.built["onnx"]), str(prepared))
        candidates = {(): Path(scratch) / "int8.onnx", ONNX_FP32_LAYERS: Path(scratch) / "int8-fp32-first.onnx"}
        for fp32_layers, candidate in candidates.items():
            _quantize_onnx(job, prepared, candidate, _first_conv(prepared) if fp32_layers else [])
        errors = _rms_logit_errors(job, candidates)
        gain = 1 - errors[ONNX_FP32_LAYERS] / errors[()]
        kept = ONNX_FP32_LAYERS if gain >= FIRST_CONV_MIN_GAIN else ()
        job.decisions["onnx-int8"] = {
            "fp32_layers": list(kept),
            "rms_logit_error": {"every layer int8": round(errors[()], 5),
                                "first convolution fp32": round(errors[ONNX_FP32_LAYERS], 5)},
            "first_convolution_fp32_when": f"it cuts that error by >= {FIRST_CONV_MIN_GAIN:.0%} (here {gain:.0%})"}
        shutil.move(candidates[kept], path)
    stamp_onnx_file(path, with_precision(job.metadata, "int8"))


def _quantize_onnx(job: ExportJob, prepared: Path, out: Path, fp32_nodes: list[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    s = onnx_int8_settings(job)
    with contextlib.redirect_stdout(io.StringIO()):  # the percentile calibrator prints its progress
        quantize_static(
            str(prepared), str(out), _OrtReader(job.calibration.images), nodes_to_exclude=fp32_nodes,
            quant_format=QuantFormat[s["quant_format"]], per_channel=s["per_channel"],
            reduce_range=s["reduce_range"], activation_type=QuantType[s["activation_type"]],
            weight_type=QuantType[s["weight_type"]], calibrate_method=CalibrationMethod[s["calibrate_method"]],
            extra_options={"CalibPercentile": s["percentile"]})


def _rms_logit_errors(job: ExportJob, candidates: dict[tuple, Path]) -> dict[tuple, float]:
    """Root-mean-square logit error of each candidate against the FP32 file on the calibration images: a
    continuous measure that separates candidates on a few hundred images, where top-1 agreement moves by two."""
    from edgecls.runtime.engines import open_engine

    x = job.calibration.images
    reference = open_engine("onnxruntime", job.built["onnx"]).run(x).astype(np.float64)
    return {key: float(np.sqrt(np.mean((open_engine("onnxruntime", p).run(x) - reference) ** 2)))
            for key, p in candidates.items()}


def _first_conv(model: Path) -> list[str]:
    import onnx

    return [node.name for node in onnx.load(str(model)).graph.node if node.op_type == "Conv"][:1]


class _OrtReader:
    """onnxruntime's CalibrationDataReader protocol: ``get_next()`` until it returns None."""

    def __init__(self, images: np.ndarray):
        items = [{INPUT_NAME: x} for x in single_images(images)]
        self._iter = iter(track(items, len(items), "calibrating onnx-int8"))

    def get_next(self) -> dict | None:
        return next(self._iter, None)
