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
When plain PTQ misses the INT8 ladder's target (export.int8_ladder), NNCF's accuracy-controlled quantization
reverts the most harmful layers to FP32 until the drop on the validation split is within it.

The ONNX INT8 row is export.onnx_int8; both climb export.int8_ladder's rungs.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from edgecls.progress import track

from .int8_ladder import ACCURACY_CONTROL, PTQ, Candidate, Ladder
from .job import ExportJob
from .metadata import stamp_openvino, with_precision

FP32_LAYERS = ("first convolution", "final linear")


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
    """NNCF options as plain values: used for the call and recorded in the manifest (what each rung changed:
    its ladder)."""
    return {"preset": "performance", "target_device": "ANY", "subset_size": len(job.calibration.images),
            "fast_bias_correction": False, "overflow_fix": "enable", "fp32_layers": list(FP32_LAYERS)}


def _import_nncf():
    """NNCF, without its INFO log lines or torch's "no CUDA runtime" warning on import."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import nncf

    nncf.set_log_level(logging.ERROR)
    return nncf


def ptq(job: ExportJob, ladder: Ladder | None) -> Iterator[Candidate]:
    yield Candidate(PTQ, {}, lambda path: _quantize_openvino(job, path, None))


def accuracy_control(job: ExportJob, ladder: Ladder) -> Iterator[Candidate]:
    """NNCF measures its own drop on the same validation images the ladder gates on."""
    settings = {"max_drop_points": ladder.max_drop, "drop_type": "absolute",
                "validation_images": len(job.calibration.val_labels)}
    yield Candidate(ACCURACY_CONTROL, settings, lambda path: _quantize_openvino(job, path, settings))


def _quantize_openvino(job: ExportJob, path: Path, control: dict | None) -> None:
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
        if control is None:
            quantized = nncf.quantize(fp32, calib, advanced_parameters=advanced, **common)
        else:
            quantized = nncf.quantize_with_accuracy_control(
                fp32, calib, _validation_dataset(job), _validation_accuracy,
                max_drop=control["max_drop_points"] / 100, drop_type=nncf.DropType(control["drop_type"]),
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


OPENVINO_RUNGS = (ptq, accuracy_control)
