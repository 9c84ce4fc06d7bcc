"""`edgecls verify`: a fresh bundle passes on this machine; each drift users meet makes it fail, by name."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from edgecls.bundle import MANIFEST, read_manifest
from edgecls.digest import file_sha256
from edgecls.golden_file import GOLDEN, read_golden, write_golden

from .conftest import assert_fp32_row, assert_one_line_error, run_cli

BLOCK_TORCH = ("import sys\nfor n in ('torch', 'torchvision', 'onnx', 'nncf', 'matplotlib'):\n"
               "    sys.modules[n] = None\n")


def verify(*args: str, env: dict | None = None):
    result = run_cli("verify", *args, "--json", env=env)
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result, report


def rows(report: dict) -> dict[str, dict]:
    return {r["format"]: r for r in report["rows"]}


def rehash(folder: Path, name: str) -> None:
    """Make the manifest match a modified file, as a careless (or hostile) copy would."""
    manifest = read_manifest(folder)
    entries = manifest["files"] + [c for e in manifest["files"] for c in e["companions"]] + [manifest["golden"]]
    for entry in entries:
        if entry["path"] == name:
            entry["sha256"], entry["size"] = file_sha256(folder / name), (folder / name).stat().st_size
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


@pytest.fixture
def bundle(tmp_path, export_dir) -> Path:
    return Path(shutil.copytree(export_dir, tmp_path / "bundle"))


def test_a_fresh_export_passes_every_row(export_dir):
    result, report = verify(str(export_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    by_format = rows(report)
    assert report["passed"] and report["images"] == 64
    for fmt in ("onnx", "openvino", "onnx-int8", "openvino-int8", "end-to-end"):
        assert by_format[fmt]["passed"] is True, by_format[fmt]
    assert by_format["torchscript"]["passed"] is None and "PyTorch" in by_format["torchscript"]["note"]
    onnx = by_format["onnx"]
    assert_fp32_row(onnx["agreement"], onnx["near_ties"], report["images"], onnx["max_rel_dlogit"], "onnx")
    assert by_format["onnx-int8"]["agreement_build"] >= 0.95
    assert "identical on 64/64" in by_format["end-to-end"]["note"]


def test_the_table_names_engine_versions_and_the_verdict(export_dir):
    import onnxruntime

    result = run_cli("verify", str(export_dir))
    assert result.returncode == 0, result.stderr
    assert f"onnxruntime {onnxruntime.__version__}" in result.stdout and result.stdout.rstrip().splitlines()[-1] \
        .startswith("PASS")


def test_verify_runs_without_pytorch(export_dir):
    code = BLOCK_TORCH + f"sys.argv = ['edgecls', 'verify', {str(export_dir)!r}]\nfrom edgecls.cli import main\n" \
        "main()\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout


def test_altered_weights_with_a_rehashed_manifest_fail_on_the_logits(bundle):
    """sha256 cannot catch this (the manifest was updated to match); the golden logits do."""
    path = bundle / "resnet20.onnx"
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if numpy_helper.to_array(t).ndim == 4)
    array = numpy_helper.to_array(weight).copy()
    array.flat[0] += 0.05 * float(np.abs(array).max())
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    onnx.save(model, str(path))
    rehash(bundle, path.name)
    result, report = verify(str(bundle))
    assert result.returncode == 1
    by_format = rows(report)
    assert by_format["onnx"]["passed"] is False and by_format["onnx"]["worst_image"].startswith("test/")
    assert by_format["openvino"]["passed"] is True  # the other files are untouched
    plain = run_cli("verify", str(bundle))
    assert plain.returncode == 1 and "onnx: " in plain.stdout and "worst image test/" in plain.stdout


SHIFT_ORT = """
import numpy as np, onnxruntime
_run = onnxruntime.InferenceSession.run
def run(self, output_names, feed, *a, **kw):
    out = _run(self, output_names, feed, *a, **kw)
    return [o * np.float32(1.001) for o in out]  # what an engine version with other kernels might do
onnxruntime.InferenceSession.run = run
"""


def test_an_engine_that_changes_results_fails(bundle, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SHIFT_ORT)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    result, report = verify(str(bundle), "--backend", "onnxruntime", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    by_format = rows(report)
    assert by_format["onnx"]["passed"] is False and "relative" in by_format["onnx"]["note"]
    assert set(by_format) == {"torchscript", "onnx", "openvino", "onnx-int8", "openvino-int8", "end-to-end"}
    assert by_format["openvino"]["passed"] is None  # onnxruntime cannot run an IR


def test_openvino_at_the_cpus_default_precision(export_dir):
    """With bf16 in the CPU, OpenVINO's default precision drifts and verify says so; without it, f32 is the default.
    Whether this CPU has it: OpenVINO's own default for the CPU device, not edgecls's flag reading."""
    import openvino as ov

    result, report = verify(str(export_dir), "--precision", "default", "--backend", "openvino")
    row = rows(report)["openvino"]
    if ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name() == "bf16":
        assert result.returncode == 1 and row["passed"] is False and row["float_math"] == "bf16"
    else:
        assert result.returncode == 0 and row["passed"] is True and row["float_math"] == "f32"


def test_a_different_jpeg_decoder_shows_in_the_end_to_end_row_only(bundle):
    """Re-encoded originals stand in for another decoder build: pixels move, the tensor rows still pass."""
    manifest = read_manifest(bundle)
    golden = read_golden(bundle, manifest)
    reencoded = []
    for blob in golden.encoded:
        out = io.BytesIO()
        Image.open(io.BytesIO(blob)).save(out, format="JPEG", quality=60)
        reencoded.append(out.getvalue())
    golden.encoded = reencoded
    write_golden(bundle / GOLDEN, golden)
    rehash(bundle, GOLDEN)
    _, report = verify(str(bundle))
    by_format = rows(report)
    assert all(by_format[f]["passed"] for f in ("onnx", "openvino", "onnx-int8", "openvino-int8"))
    assert "identical on 64/64" not in by_format["end-to-end"]["note"]


def test_one_model_file_is_verified_alone(export_dir):
    result, report = verify(str(export_dir / "resnet20-int8.onnx"))
    assert result.returncode == 0, result.stderr
    assert [r["format"] for r in report["rows"]] == ["onnx-int8", "end-to-end"]


def test_a_bundle_without_golden_vectors_gets_a_clear_message(bundle):
    manifest = read_manifest(bundle)
    manifest["golden"] = None
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    (bundle / GOLDEN).unlink()
    result = run_cli("verify", str(bundle))
    assert_one_line_error(result, "no golden vectors", "re-export")
    assert result.returncode == 2


def test_a_tampered_golden_file_is_refused(bundle):
    with open(bundle / GOLDEN, "r+b") as f:
        f.seek(100)
        f.write(b"\0\1\2\3")
    result = run_cli("verify", str(bundle))
    assert_one_line_error(result, "golden.npz", "sha256")
    assert result.returncode == 1


def test_usage_errors_exit_2(tmp_path, export_dir):
    lone = tmp_path / "lone.onnx"
    shutil.copy(export_dir / "resnet20.onnx", lone)
    cases = (([str(export_dir), "--backend", "tensorrt"], "backend must be one of"),
             ([str(export_dir), "--device", "NPU9"], "no device 'NPU9'"),
             ([str(export_dir), "--precision", "fp8"], "precision must be one of"),
             ([str(lone)], "not inside an export folder"),
             ([str(tmp_path / "missing")], "does not exist"))
    for args, fragment in cases:
        result = run_cli("verify", *args)
        assert_one_line_error(result, fragment)
        assert result.returncode == 2, (args, result.stderr)
