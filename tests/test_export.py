"""`edgecls export`: real exports of a small trained ResNet-20, run in their own engines."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecls import __version__
from edgecls.tolerance import (AGREEMENT, FP32_MAX_REL_DLOGIT, MAX_ABS_DLOGIT, MAX_REL_DLOGIT, fp32_failures,
                               max_rel_dlogit, near_tie_images, top1_agreement)

from .conftest import assert_fp32_row, assert_one_line_error, run_cli

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:FutureWarning")

FP32 = ("torchscript", "onnx", "openvino")
INT8 = ("onnx-int8", "openvino-int8")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, cifar_dir, cache_dir) -> Path:
    out = tmp_path_factory.mktemp("export-train") / "run"
    result = run_cli("train", "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--epochs", "1",
                     "--limit-train", "1024",
                     "--limit-val", "200", "--limit-test", "200", "--model", "resnet20", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out / "best.pt"


def export_args(checkpoint: Path, out: Path, cifar_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    return ["export", str(checkpoint), "--out", str(out), "--data", str(cifar_dir), "--cache-dir", str(cache_dir),
            "--calib-size", "64", "--check-images", "100", *extra]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, checkpoint, cifar_dir, cache_dir) -> Path:
    out = tmp_path_factory.mktemp("exports") / "all"
    # the formats of FP32/INT8 above; the edge formats are proven on the shared export (tests/test_edge_formats.py)
    result = run_cli(*export_args(checkpoint, out, cifar_dir, cache_dir, "--format", ",".join(FP32), "--int8"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "top-1 agree" in result.stdout and "Traceback" not in result.stderr
    return out


@pytest.fixture(scope="module")
def manifest(exported) -> dict:
    return json.loads((exported / "manifest.json").read_text())


@pytest.fixture(scope="module")
def eager(checkpoint):
    from edgecls.trainer.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    return model, meta


@pytest.fixture(scope="module")
def test_images(cifar_dir, cache_dir, eager) -> tuple[np.ndarray, np.ndarray]:
    """64 real held-out test images as the trainer feeds them (float32 NCHW), with labels."""
    from edgecls.trainer.augment import to_model_input
    from edgecls.trainer.data import load_data

    meta = eager[1]
    test = load_data(str(cifar_dir), meta["input_size"], None, cache_dir, need=("test",)).test.subset(64, seed=7)
    x = to_model_input(torch.from_numpy(test.images), torch.tensor(meta["mean"]), torch.tensor(meta["std"]))
    return np.ascontiguousarray(x.numpy()), test.labels


def runner(fmt: str, path: Path):
    """Each format in its own engine, opened the way a user would."""
    if fmt == "torchscript":
        module = torch.jit.load(str(path))
        return lambda x: module(torch.from_numpy(x)).detach().numpy()
    if fmt.startswith("onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda x: compiled(x)[compiled.output(0)]


def model_file(exported: Path, manifest: dict, fmt: str) -> Path:
    return exported / next(e["path"] for e in manifest["files"] if e["format"] == fmt)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_every_file_with_its_sha256(exported, manifest, checkpoint):
    assert {e["format"] for e in manifest["files"]} == set(FP32 + INT8)
    listed = set()
    for entry in manifest["files"]:
        for f in [entry, *entry["companions"]]:
            path = exported / f["path"]
            assert sha256(path) == f["sha256"] and path.stat().st_size == f["size"]
            listed.add(f["path"])
        assert entry["source_sha256"] == sha256(checkpoint)
        assert entry["input_shape"] == ["batch", 3, 32, 32]
        assert entry["precision"] == ("int8" if entry["format"] in INT8 else "fp32")
        assert entry["parity"] == manifest["parity"]["results"][entry["format"]]
    golden = manifest["golden"]
    assert sha256(exported / golden["path"]) == golden["sha256"] and golden["images"] == 64
    assert listed | {"manifest.json", golden["path"]} == {p.name for p in exported.iterdir()}
    assert manifest["source"]["sha256"] == sha256(checkpoint) and manifest["onnx_opset"] == 18
    assert manifest["quantization"]["onnx-int8"]["per_channel"] is True


def test_parity_section_gates_fp32_and_reports_int8_as_measured(exported, manifest, eager, cifar_dir, cache_dir):
    """INT8 rows never gate, but their numbers must be what the files really do: re-measured here on
    the exporter's check set (100 test images drawn with --seed 0), each file in its engine opened our
    own way. Another thread count may move logits by float rounding, so only near ties may differ."""
    from edgecls.trainer.augment import to_model_input
    from edgecls.trainer.data import load_data

    parity = manifest["parity"]
    assert parity["passed"] and parity["images"] == 100 and parity["data"].endswith("test split")
    for fmt in FP32:
        r = parity["results"][fmt]
        assert r["passed"] and r["failures"] == [], r
        assert_fp32_row(r[AGREEMENT], r["near_ties"], parity["images"], r[MAX_REL_DLOGIT], fmt)
    assert "cpu-default-precision" in parity["results"]["openvino"]["extra"]

    model, meta = eager
    test = load_data(str(cifar_dir), meta["input_size"], None, cache_dir, need=("test",)).test.subset(100, seed=0)
    x = to_model_input(torch.from_numpy(test.images), torch.tensor(meta["mean"]), torch.tensor(meta["std"]))
    x = np.ascontiguousarray(x.numpy())
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()

    def near_ties(logits: np.ndarray) -> np.ndarray:  # another thread count's rounding may move these
        mask = np.zeros(len(logits), bool)
        mask[near_tie_images(logits)] = True
        return mask

    slack = near_ties(ref).mean() + 1e-9
    assert parity["reference_accuracy"] == pytest.approx((ref.argmax(1) == test.labels).mean(), abs=slack)
    for fmt in INT8:
        r = parity["results"][fmt]
        assert r["passed"] is None and r["gating"] is False and r["precision"] == "int8"
        run = runner(fmt, model_file(exported, manifest, fmt))
        out = np.concatenate([run(x[i:i + parity["batch_size"]]) for i in range(0, len(x), parity["batch_size"])])
        slack = (near_ties(ref) | near_ties(out)).mean() + 1e-9
        assert r[AGREEMENT] == pytest.approx((out.argmax(1) == ref.argmax(1)).mean(), abs=slack), fmt
        assert r["accuracy"] == pytest.approx((out.argmax(1) == test.labels).mean(), abs=slack), fmt
        assert r[MAX_ABS_DLOGIT] == pytest.approx(np.abs(out - ref).max(), rel=1e-3), fmt
        assert r["accuracy_change_points"] == pytest.approx(100 * (r["accuracy"] - parity["reference_accuracy"]),
                                                            abs=1e-3), fmt


@pytest.mark.parametrize("fmt", FP32 + INT8)
def test_every_format_runs_in_its_engine_like_pytorch(fmt, exported, manifest, eager, test_images):
    x, labels = test_images
    with torch.no_grad():
        ref = eager[0](torch.from_numpy(x)).numpy()
    out = runner(fmt, model_file(exported, manifest, fmt))(x)
    assert out.shape == ref.shape
    if fmt in FP32:
        assert not fp32_failures(out, ref), fp32_failures(out, ref)
    else:  # INT8 is approximate, but still the same classifier: a one-epoch model has many close calls, and
        # one of the 64 images is 1.6 points (its calibration images moved when validation left train: 57/64)
        assert top1_agreement(out, ref).rate >= 0.85, top1_agreement(out, ref).describe()


@pytest.mark.parametrize("fmt", FP32 + INT8)
def test_dynamic_batch_sizes_1_7_64(fmt, exported, manifest, test_images):
    x, _ = test_images
    run = runner(fmt, model_file(exported, manifest, fmt))
    full = run(x[:64])
    for n in (1, 7, 64):
        out = run(x[:n])
        assert out.shape == (n, 10)
        if fmt in FP32:
            assert max_rel_dlogit(out, full[:n]) <= FP32_MAX_REL_DLOGIT, n
        else:
            np.testing.assert_allclose(out, full[:n], atol=1e-2)


def test_metadata_round_trips_in_every_file(exported, manifest, eager, checkpoint):
    import onnx
    import onnxruntime as ort
    import openvino as ov

    expected_spec = {k: eager[1][k] for k in manifest["spec"]}
    keys = ("edgecls.spec", "edgecls.version", "edgecls.source_sha256", "edgecls.precision")
    for entry in manifest["files"]:
        path = exported / entry["path"]
        if entry["format"] == "torchscript":
            files = dict.fromkeys(keys, "")
            torch.jit.load(str(path), _extra_files=files)
            meta = {k: v.decode() for k, v in files.items()}
        elif entry["engine"] == "onnxruntime":
            meta = dict(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                        .get_modelmeta().custom_metadata_map)
            assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}.items() >= meta.items()
        else:
            model = ov.Core().read_model(str(path))
            meta = {k: model.get_rt_info([k]).astype(str) for k in keys}
        assert json.loads(meta["edgecls.spec"]) == expected_spec, entry["format"]
        assert meta["edgecls.version"] == __version__
        assert meta["edgecls.source_sha256"] == sha256(checkpoint)
        assert meta["edgecls.precision"] == entry["precision"]


def test_static_batch_fixes_batch_of_one_and_replaces_an_earlier_export(tmp_path, exported, checkpoint,
                                                                         cifar_dir, cache_dir, test_images):
    import onnxruntime as ort
    import openvino as ov

    out = tmp_path / "static"
    shutil.copytree(exported, out)
    result = run_cli(*export_args(checkpoint, out, cifar_dir, cache_dir, "--format", "onnx,openvino",
                                  "--static-batch", "--check-images", "20"))
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["golden.npz", "manifest.json", "resnet20.bin", "resnet20.onnx",
                                                     "resnet20.xml"]
    assert all(e["input_shape"] == [1, 3, 32, 32] for e in manifest["files"]) and not manifest["dynamic_batch"]
    session = ort.InferenceSession(str(out / "resnet20.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 32, 32]
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {session.get_inputs()[0].name: test_images[0][:7]})
    assert ov.Core().read_model(str(out / "resnet20.xml")).inputs[0].get_partial_shape().is_static
    assert not list(tmp_path.glob(".static.*")), "staging folders left behind"
    verified = run_cli("verify", str(out))  # golden vectors through batch-1 files, one image at a time
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_max_drop_bounds_every_int8_row_on_the_validation_split(tmp_path, checkpoint, cifar_dir, cache_dir):
    from edgecls.export.data import VALIDATION_IMAGES

    out = tmp_path / "controlled"
    result = run_cli(*export_args(checkpoint, out, cifar_dir, cache_dir, "--format", "onnx,openvino", "--int8",
                                  "--max-drop", "1", "--calib-size", "32", "--check-images", "20"))
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    for fmt in ("onnx-int8", "openvino-int8"):
        ladder = manifest["quantization"][fmt]["ladder"]
        assert ladder["target_drop_points"] == 1 and ladder["validation_images"] == VALIDATION_IMAGES
        assert ladder["met"] and ladder["attempts"][-1]["drop_points"] <= 1 and ladder["attempts"][0]["rung"] == "ptq"
    assert [e["format"] for e in manifest["files"]] == ["onnx", "openvino", "onnx-int8", "openvino-int8"]


def test_help_documents_the_contract():
    text = run_cli("export", "--help").stdout
    for flag in ("--format", "--int8", "--out", "--calib-data", "--calib-size", "--dynamic-batch", "--static-batch",
                 "--opset", "--check-images", "--max-drop"):
        assert flag in text, flag
    assert "deprecated" in text and "torch.export" in text


def leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


@pytest.mark.parametrize("case,fragment", [
    ("garbage", "not a readable edgecls checkpoint"),
    ("missing", "does not exist"),
])
def test_bad_checkpoint_is_one_line_and_writes_nothing(tmp_path, case, fragment):
    ckpt = tmp_path / "in" / "best.pt"
    if case == "garbage":
        ckpt.parent.mkdir()
        ckpt.write_bytes(b"not a checkpoint")
    result = run_cli("export", str(ckpt), "--out", str(tmp_path / "out" / "x"))
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--format", "tflite"], "unknown --format"),
    (["--format", "torchscript", "--int8"], "--int8"),
    (["--format", "onnx", "--max-drop", "0.5"], "--max-drop"),
    (["--opset", "9"], "--opset"),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, checkpoint, args, fragment):
    result = run_cli("export", str(checkpoint), "--out", str(tmp_path / "out" / "x"), *args)
    assert_one_line_error(result, fragment)
    assert leftovers(tmp_path) == []


def test_unwritable_out_is_one_line(tmp_path, checkpoint):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = run_cli("export", str(checkpoint), "--format", "onnx", "--out", str(blocker / "x"))
    assert_one_line_error(result, "cannot write to --out")
    assert leftovers(tmp_path) == [blocker]


def test_out_that_is_not_an_export_folder_is_refused(tmp_path, checkpoint):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = run_cli("export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "mine"))
    assert_one_line_error(result, "not an edgecls export folder")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me" and len(leftovers(tmp_path)) == 2


def options(checkpoint, out, cifar_dir, cache_dir, **kw):
    from edgecls.export.pipeline import ExportOptions

    return ExportOptions(checkpoint=checkpoint, out=out, data=str(cifar_dir), cache_dir=str(cache_dir),
                         check_images=20, calib_size=16, **{"formats": "onnx,openvino", **kw})


def test_failure_mid_export_leaves_nothing(tmp_path, monkeypatch, checkpoint, cifar_dir, cache_dir):
    from edgecls.export import formats

    def broken(job, path):
        path.write_bytes(b"half a model")
        raise RuntimeError("simulated crash in the OpenVINO builder")

    monkeypatch.setitem(formats.FORMATS, "openvino", dataclasses.replace(formats.FORMATS["openvino"], build=broken))
    from edgecls.export.pipeline import export_checkpoint

    with pytest.raises(RuntimeError, match="simulated crash"):
        export_checkpoint(options(checkpoint, tmp_path / "new" / "deep" / "out", cifar_dir, cache_dir),
                          log=lambda m: None)
    assert leftovers(tmp_path) == []


def test_parity_failure_exits_non_zero_and_keeps_the_earlier_export(tmp_path, monkeypatch, exported, checkpoint,
                                                                     cifar_dir, cache_dir):
    from typer.testing import CliRunner

    from edgecls.cli import app
    from edgecls.export import formats
    from edgecls.export.pipeline import ParityError

    onnx_row = formats.FORMATS["onnx"]

    def drifting_loader(path):
        run = onnx_row.load(path)
        return lambda x: run(x) + np.linspace(0, 5, 10, dtype=np.float32)  # moves predictions

    monkeypatch.setitem(formats.FORMATS, "onnx", dataclasses.replace(onnx_row, load=drifting_loader))
    out = tmp_path / "prev"
    shutil.copytree(exported, out)
    before = {p.name: sha256(p) for p in out.iterdir()}
    result = CliRunner().invoke(app, export_args(checkpoint, out, cifar_dir, cache_dir, "--format", "onnx",
                                                 "--check-images", "50"))
    assert isinstance(result.exception, ParityError) and "onnx" in str(result.exception)
    assert result.exit_code != 0
    assert "FAIL" in result.output and "top-1 agree" in result.output
    assert {p.name: sha256(p) for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prev"]


def test_int8_settings_never_read_the_building_cpu(exported, manifest):
    """Issue 33: 7-bit weights in every INT8 layer whatever CPU exports, and the first convolution left FP32
    exactly when the recorded measurement says it paid (or, past the ladder's first rungs, the layers it
    chose kept float)."""
    import onnx

    from edgecls.export.onnx_int8 import FIRST_CONV_MIN_GAIN

    onnx_int8 = manifest["quantization"]["onnx-int8"]
    assert onnx_int8["reduce_range"] is True
    kept = onnx_int8["ladder"]["attempts"][onnx_int8["ladder"]["kept_attempt"]]
    graph = onnx.load(str(exported / "resnet20-int8.onnx")).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    convs = {node.name: node for node in graph.node if node.op_type in ("Conv", "Gemm")}
    if kept["rung"] == "float-layers":
        float_nodes = kept["settings"]["float_nodes"]
    else:
        errors = kept["settings"]["rms_logit_error"]
        paid = 1 - errors["first convolution fp32"] / errors["every layer int8"] >= FIRST_CONV_MIN_GAIN
        assert kept["settings"]["fp32_layers"] == (["first convolution"] if paid else [])
        float_nodes = [next(iter(convs))] if paid else []
    for name, node in convs.items():  # float weights: kept FP32
        assert (producers.get(node.input[1]) != "DequantizeLinear") == (name in float_nodes), name
