"""The INT8 ladder (issue 35): the climb's rules on rungs whose files score what the test says, then real
exports of a model built so that plain post-training quantization fails and a later rung must hold, in
onnxruntime, OpenVINO, ExecuTorch and LiteRT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecls.bundle import read_manifest
from edgecls.errors import EdgeclsError
from edgecls.export.int8_ladder import FLOAT_LAYERS, PTQ, Candidate, climb
from edgecls.export.job import Calibration, ExportJob

from .conftest import run_cli

VAL_LABELS = np.arange(100) % 10


def scripted_job(tmp_path: Path, max_drop: float | None) -> ExportJob:
    """A job whose files are text naming the accuracy they score: only the climb itself runs."""
    fp32 = tmp_path / "m.onnx"
    fp32.write_text("0.90")
    calibration = Calibration(np.zeros((1, 3, 2, 2), np.float32), 0, "none", np.zeros((100, 3, 2, 2), np.float32),
                              VAL_LABELS)
    job = ExportJob(model=None, spec=None, metadata={}, workdir=tmp_path, stem="m", dynamic_batch=True, opset=18,
                    calibration=calibration, max_drop=max_drop, log=lambda line: None)
    job.built["onnx"] = fp32
    return job


def scoring_runner(path: Path):
    """Logits whose top-1 is right for the share of images the file names."""
    right = round(float(path.read_text()) * len(VAL_LABELS))
    return lambda x: np.eye(10)[np.where(np.arange(len(x)) < right, VAL_LABELS, (VAL_LABELS + 1) % 10)]


def rung_of(name: str, *accuracies: float):
    def rung(job, ladder):
        for accuracy in accuracies:
            yield Candidate(name, {"scores": accuracy}, lambda path, a=accuracy: path.write_text(f"{a:.2f}"))
    return rung


def test_the_first_candidate_within_the_target_is_kept_and_every_try_recorded(tmp_path):
    job = scripted_job(tmp_path, None)
    out = tmp_path / "m-int8.onnx"
    climb("onnx-int8", (rung_of(PTQ, 0.85), rung_of(FLOAT_LAYERS, 0.87, 0.89, 0.90)), job, out, scoring_runner)
    ladder = job.ladders["onnx-int8"]
    assert [(a["rung"], a["drop_points"], a["met"]) for a in ladder["attempts"]] == [
        (PTQ, 5.0, False), (FLOAT_LAYERS, 3.0, False), (FLOAT_LAYERS, 1.0, True)]  # 0.90 is never built
    assert ladder["kept"] == FLOAT_LAYERS and ladder["met"] and ladder["target_drop_points"] == 1.0
    assert out.read_text() == "0.89" and ladder["fp32_val_accuracy"] == 0.9
    assert not list(tmp_path.glob(".onnx-int8-ladder-*")), "the candidates' scratch folder is left behind"


def test_missing_the_default_target_keeps_the_best_file_with_a_warning(tmp_path):
    job = scripted_job(tmp_path, None)
    lines = []
    job.log = lines.append
    out = tmp_path / "m-int8.onnx"
    climb("onnx-int8", (rung_of(PTQ, 0.80), rung_of(FLOAT_LAYERS, 0.86, 0.84)), job, out, scoring_runner)
    assert out.read_text() == "0.86" and not job.ladders["onnx-int8"]["met"]
    assert len(lines) == 1 and "no quantization step" in lines[0] and "+4.0" in lines[0]


def test_a_max_drop_that_no_rung_meets_fails(tmp_path):
    job = scripted_job(tmp_path, 0.5)
    out = tmp_path / "m-int8.onnx"
    with pytest.raises(EdgeclsError, match=r"--max-drop 0.5: onnx-int8: .*ptq \+2.0, float-layers \+1.0"):
        climb("onnx-int8", (rung_of(PTQ, 0.88), rung_of(FLOAT_LAYERS, 0.89)), job, out, scoring_runner)
    assert not out.exists()


def test_without_validation_images_the_first_rung_is_built_and_said_so(tmp_path):
    job = scripted_job(tmp_path, None)
    job.calibration.val_images = job.calibration.val_labels = None
    out = tmp_path / "m-int8.onnx"
    climb("onnx-int8", (rung_of(PTQ, 0.5), rung_of(FLOAT_LAYERS, 0.9)), job, out, scoring_runner)
    assert out.read_text() == "0.50"
    assert job.ladders["onnx-int8"]["kept"] == PTQ and "not climbed" in job.ladders["onnx-int8"]["note"]


@pytest.fixture(scope="module")
def outlier_checkpoint(tmp_path_factory) -> Path:
    """The shipped ResNet-20 with four channels of one activation scaled up 1000× and the next convolution
    scaled down to match: the same function in float, but one per-tensor activation range now crushes every
    other channel of that tensor to zero, so plain PTQ and more calibration both fail and only keeping the
    layers around that tensor in float (or NNCF's accuracy control) brings the file back."""
    from edgecls.shipped import reference_checkpoint
    from edgecls.trainer.checkpoint import model_from_payload, read_checkpoint

    payload = read_checkpoint(reference_checkpoint())
    model, _ = model_from_payload(payload)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = model(x)
    weights = payload["state_dict"]
    for channel in range(4):
        weights["layer1.0.bn1.weight"][channel] *= 1000
        weights["layer1.0.bn1.bias"][channel] *= 1000
        weights["layer1.0.conv2.weight"][:, channel] /= 1000
    assert torch.allclose(model_from_payload(payload)[0](x), before, atol=1e-4)  # the same function in float
    path = tmp_path_factory.mktemp("outlier") / "resnet20-outlier.pt"
    torch.save(payload, path)
    return path


@pytest.fixture(scope="module")
def outlier_export(outlier_checkpoint, cifar_dir, cache_dir) -> Path:
    out = outlier_checkpoint.parent / "export"
    result = run_cli("export", str(outlier_checkpoint), "--format", "onnx,openvino,executorch,litert", "--int8",
                     "--out", str(out),
                     "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--calib-size", "100",
                     "--check-images", "100", "--golden-images", "32")
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def climbed(folder: Path, fmt: str) -> dict:
    return read_manifest(folder)["quantization"][fmt]["ladder"]


def test_onnx_int8_climbs_past_ptq_and_calibration_to_sensitive_layers_in_float(outlier_export):
    ladder = climbed(outlier_export, "onnx-int8")
    rungs = [a["rung"] for a in ladder["attempts"]]
    assert rungs[:2] == [PTQ, "calibration"] and set(rungs[2:]) == {FLOAT_LAYERS}, rungs
    assert all(a["drop_points"] > 10 for a in ladder["attempts"][:2]), ladder["attempts"]
    kept = ladder["attempts"][-1]
    assert ladder["kept"] == FLOAT_LAYERS and kept["met"] and kept["drop_points"] <= 1.0
    assert ladder["attempts"][1]["settings"]["calibration_images"] == 4 * 100
    sensitivity = kept["settings"]["sensitivity_rms_logit_error"]
    assert list(sensitivity) == kept["settings"]["float_nodes"]
    assert list(sensitivity.values()) == sorted(sensitivity.values(), reverse=True)


def test_executorch_int8_climbs_to_the_layers_around_the_scaled_tensor_in_float(outlier_export):
    ladder = climbed(outlier_export, "executorch-int8")
    rungs = [a["rung"] for a in ladder["attempts"]]
    assert rungs[0] == PTQ and set(rungs[1:]) == {FLOAT_LAYERS} and ladder["met"], ladder["attempts"]
    assert ladder["attempts"][0]["drop_points"] > 10
    ranking = list(ladder["attempts"][1]["settings"]["sensitivity_rms_logit_error"])
    assert ranking == ["layer1.0.conv2"]  # the layer whose input was scaled ranks first
    assert {"layer1.0.conv1", "layer1.0.conv2"} <= set(ladder["attempts"][-1]["settings"]["float_nodes"])


def test_litert_int8_climbs_to_the_scaled_layer_in_float(outlier_export):
    """The probes find the layer by its ops' tensor names (export.litert_export.layer_scope): had the name
    matched no op, its probe would equal the float file and rank last."""
    ladder = climbed(outlier_export, "litert-int8")
    rungs = [a["rung"] for a in ladder["attempts"]]
    assert rungs[0] == PTQ and set(rungs[1:]) == {FLOAT_LAYERS} and ladder["met"], ladder["attempts"]
    assert ladder["attempts"][0]["drop_points"] > 10 and ladder["kept"] == FLOAT_LAYERS
    assert list(ladder["attempts"][1]["settings"]["sensitivity_rms_logit_error"]) == ["layer1.0.conv2"]


def test_openvino_int8_climbs_to_accuracy_control(outlier_export):
    ladder = climbed(outlier_export, "openvino-int8")
    assert [a["rung"] for a in ladder["attempts"]] == [PTQ, "accuracy-control"]
    assert ladder["attempts"][0]["drop_points"] > 10 and ladder["kept"] == "accuracy-control" and ladder["met"]


def test_the_climbed_bundle_verifies(outlier_export):
    result = run_cli("verify", str(outlier_export), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["passed"]

