"""Device commands without PyTorch (issue 12): eval, benchmark and doctor on real bundles and real engines.

Every CLI call is a subprocess; the torch-free ones run where importing torch, torchvision, onnx, nncf
and matplotlib fails, so a success proves the base install is enough.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecls.bundle import MANIFEST
from edgecls.extras import EXTRAS, installed_extras
from edgecls.format_table import FORMATS, TORCH
from edgecls.runtime.benchmark import table_order
from edgecls.runtime.engines import engine_available
from edgecls.runtime.model_files import choose_model
from edgecls.tolerance import near_tie_images

from .conftest import REPO, assert_fp32_row, assert_one_line_error, copy_subset, run_cli, wait_until_ready

BLOCKED = ("torch", "torchvision", "onnx", "nncf", "matplotlib")
FAST = ("--latency-runs", "10", "--throughput-runs", "2")
REFERENCE = REPO / "artifacts" / "reference"


def run_without_torch(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`edgecls ARGS` in a process where importing any of BLOCKED raises ImportError."""
    code = (f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\n"
            f"sys.argv = ['edgecls', *{[str(a) for a in args]!r}]\nfrom edgecls.cli import main\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def torch_logits_of(checkpoint: Path, folder: Path, cache_dir: Path) -> np.ndarray:
    """PyTorch eager logits of a test/<class>/ folder, in `eval`'s order (the trainer's own decode)."""
    import torch

    from edgecls.trainer.augment import to_model_input
    from edgecls.trainer.checkpoint import load_checkpoint
    from edgecls.trainer.data import load_data

    model, meta = load_checkpoint(checkpoint)
    test = load_data(str(folder), meta["input_size"], None, cache_dir, need=("test",)).test
    x = to_model_input(torch.from_numpy(test.images), torch.tensor(meta["mean"]), torch.tensor(meta["std"]))
    with torch.no_grad():
        return model(x).numpy()


def ok_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def test_images(tmp_path_factory, cifar_dir) -> Path:
    """300 real CIFAR-10 test JPEGs, 30 per class, in test/<class>/."""
    return copy_subset(tmp_path_factory.mktemp("device-eval"), 0, 30)


@pytest.fixture(scope="module")
def manifest(export_dir) -> dict:
    return json.loads((export_dir / MANIFEST).read_text())


# --- eval -----------------------------------------------------------------------------------------

def test_eval_of_the_fp32_file_equals_the_torch_path(export_dir, trained_checkpoint, test_images, cache_dir):
    torch_side = ok_json(run_cli("eval", str(trained_checkpoint), "--data", str(test_images),
                                 "--cache-dir", str(cache_dir), "--json"))
    device = ok_json(run_without_torch("eval", export_dir / "resnet20.onnx", "--data", test_images, "--json"))
    assert device["n"] == torch_side["n"] == 300 and device["classes"] == torch_side["classes"]
    moved = np.abs(np.array(device["confusion"]) - np.array(torch_side["confusion"])).sum() // 2
    near_ties = near_tie_images(torch_logits_of(trained_checkpoint, test_images, cache_dir))
    assert moved <= len(near_ties), (device, torch_side)
    if moved == 0:
        assert (device["accuracy"], device["per_class"]) == (torch_side["accuracy"], torch_side["per_class"])


def test_eval_of_the_int8_file_equals_the_parity_path(export_dir, test_images, cache_dir):
    """The exporter's check (trainer decode + torch normalize + engine, argmax) and `eval` give the same labels."""
    from edgecls.export.data import load_check_set
    from edgecls.runtime import Classifier
    from edgecls.runtime.engines import open_engine

    device = ok_json(run_without_torch("eval", export_dir, "--backend", "onnxruntime", "--data", test_images,
                                       "--json"))
    assert device["model"]["format"] == "onnx-int8"
    spec = Classifier.load(export_dir, backend="onnxruntime").spec
    check = load_check_set(str(test_images), spec, None, 0, None, str(cache_dir))
    run = open_engine("onnxruntime", Path(device["model"]["path"])).run
    logits = np.concatenate([run(check.images[i:i + 64]) for i in range(0, len(check.images), 64)])
    hits = int((logits.argmax(1) == check.labels).sum())  # eval's own decode may move the near-ties only
    assert abs(round(device["accuracy"] * device["n"]) - hits) <= len(near_tie_images(logits)), (device, hits)


def test_eval_compares_with_the_manifest_and_draws_the_matrix(export_dir, manifest, test_images, tmp_path):
    png = tmp_path / "confusion.png"
    result = run_without_torch("eval", export_dir, "--data", test_images / "test", "--plot", png)
    assert result.returncode == 0, result.stderr
    recorded = manifest["parity"]["results"]["onnx-int8"]["accuracy"]
    assert f"its manifest recorded on the build machine ({manifest['parity']['images']} images" in result.stdout
    assert f"{recorded:.2%}" in result.stdout and "confusion (rows true, columns predicted):" in result.stdout
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 300 and img.height > 300
        assert len(img.convert("RGB").getcolors(maxcolors=2 ** 16)) > 10  # shaded cells and text, not blank
    as_json = ok_json(run_without_torch("eval", export_dir, "--data", test_images, "--json"))
    assert as_json["recorded"]["accuracy"] == recorded
    assert as_json["recorded"]["images"] == manifest["parity"]["images"]
    assert as_json["recorded"]["difference_points"] == pytest.approx(100 * (as_json["accuracy"] - recorded), abs=1e-4)


def test_eval_of_some_classes_only(export_dir, cifar_dir, tmp_path):
    folder = copy_subset(tmp_path / "two", 0, 5, classes=("cat", "ship"))
    result = ok_json(run_without_torch("eval", export_dir, "--data", folder, "--json"))
    assert result["n"] == 10 and set(result["per_class"]) == {"cat", "ship"}
    assert sum(map(sum, result["confusion"])) == 10


@pytest.mark.parametrize("args,fragments", [
    (("--device", "NO-SUCH-DEVICE"), ("no device 'NO-SUCH-DEVICE'", "available")),
    (("--backend", "tflite"), ("backend must be one of",)),
])
def test_eval_usage_errors_are_one_line(export_dir, test_images, args, fragments):
    result = run_without_torch("eval", export_dir, "--data", test_images, *args)
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2


def test_eval_unknown_class_folder_is_one_line_error(export_dir, cifar_dir, tmp_path):
    zebra = tmp_path / "test" / "zebra"
    zebra.mkdir(parents=True)
    shutil.copy(cifar_dir / "test" / "cat" / "0000.jpg", zebra / "0000.jpg")
    assert_one_line_error(run_without_torch("eval", export_dir, "--data", tmp_path), "zebra", "does not know")


# --- benchmark ------------------------------------------------------------------------------------

def expected_rows(manifest: dict, backend: str = "auto") -> list[tuple[str, str]]:
    held = {e["format"] for e in manifest["files"]}
    return [(name, engine) for name in table_order() if name in held for engine in FORMATS[name].engines
            if engine != TORCH and backend in ("auto", engine)]


@pytest.fixture(scope="module")
def device_rows(export_dir, test_images) -> list[dict]:
    return ok_json(run_without_torch("benchmark", export_dir, "--data", test_images, "--json", *FAST))


def test_benchmark_export_dir_has_a_row_per_format_and_engine(device_rows, manifest):
    assert [(r["format"], r["engine"]) for r in device_rows] == expected_rows(manifest)
    for row in device_rows:
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p95"] <= row["latency_ms_p99"], row
        assert row["throughput_ips"] > 0 and row["batch_size"] == 64 and row["threads"] >= 1
        assert row["peak_rss_bytes"] > 10 * 2 ** 20 and row["size_bytes"] > 0
        assert row["accuracy_images"] == 300 and row["agreement_images"] == manifest["golden"]["images"]
        if row["precision"] == "fp32":
            assert_fp32_row(row["agreement"], row["near_ties"], row["agreement_images"], row["max_rel_dlogit"],
                            f"{row['format']} ({row['engine']})")


def test_benchmark_accuracy_equals_eval(device_rows, export_dir, test_images):
    by_engine = {(r["format"], r["engine"]): r["accuracy"] for r in device_rows}
    for backend in ("onnxruntime", "openvino"):
        result = ok_json(run_without_torch("eval", export_dir, "--data", test_images, "--backend", backend, "--json"))
        assert result["accuracy"] == by_engine[(result["model"]["format"], backend)]


def test_benchmark_backend_filter_and_markdown(export_dir, manifest):
    result = run_without_torch("benchmark", export_dir, "--backend", "onnxruntime", "--markdown", *FAST)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("| format | size | accuracy | agreement") and "img/s @64" in lines[0]
    assert len(lines) == 2 + len(expected_rows(manifest, "onnxruntime"))
    assert all(" n/a " in line.split("|")[3] for line in lines[2:])  # no --data: no accuracy
    stream = choose_model(export_dir, throughput=True)  # this CPU's choice, by the README's rule
    assert (f"auto picks here: onnx-int8 via onnxruntime (a few images), {stream.format} via {stream.engine} "
            "(a stream of 5,000+)") in result.stderr


def test_benchmark_bundle_without_golden_vectors(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(REFERENCE / "exports", old)
    manifest = json.loads((old / MANIFEST).read_text())
    (old / manifest.pop("golden")["path"]).unlink()
    (old / MANIFEST).write_text(json.dumps(manifest))
    result = run_without_torch("benchmark", old, "--formats", "onnx", "--backend", "onnxruntime", *FAST)
    assert result.returncode == 0, result.stderr
    assert "agreement: n/a" in result.stderr and result.stdout.splitlines()[1].split()[4:6] == ["n/a", "n/a"]


@pytest.mark.parametrize("args,fragments", [
    (("--device", "NO-SUCH-DEVICE"), ("no device 'NO-SUCH-DEVICE'", "available")),
    (("--formats", "torchscript"), ("runs in PyTorch",)),
    (("--formats", "tflite"), ("unknown --formats 'tflite'",)),
    (("--export", "somewhere"), ("--export is for a checkpoint only",)),
])
def test_benchmark_usage_errors_are_one_line(export_dir, args, fragments):
    result = run_without_torch("benchmark", export_dir, *args, *FAST)
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2


# --- doctor ---------------------------------------------------------------------------------------

def test_doctor_json_describes_this_machine_and_the_bundle(export_dir, manifest):
    report = ok_json(run_without_torch("doctor", export_dir, "--json"))
    from importlib.metadata import version

    assert report["healthy"] is True
    assert report["packages"]["onnxruntime"] == version("onnxruntime")
    assert report["packages"]["torch"] == version("torch")  # from metadata: torch was blocked, never imported
    flags = {w for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
             for w in line.split()[2:]}  # this Linux x86 box's own list; the parsing itself: test_platforms.py
    assert report["cpu"]["instruction_sets"] and set(report["cpu"]["instruction_sets"]) <= flags
    assert report["cpu"]["bf16"] == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert "cpu" in report["engines"]["onnxruntime"]["devices"]
    assert engine_available("openvino"), "the dev install has OpenVINO"
    assert "CPU" in report["engines"]["openvino"]["devices"]
    blocked = {extra: False for extra, modules in EXTRAS.items() if set(modules) & set(BLOCKED)}
    assert report["extras"] == {**installed_extras(), **blocked}  # what needs torch & co. is absent there
    bundle = report["bundle"]
    assert bundle["sha256_ok"] is True and bundle["golden_images"] == manifest["golden"]["images"]
    formats = {f["format"]: f for f in bundle["formats"]}
    assert set(formats) == {e["format"] for e in manifest["files"]}
    assert "onnxruntime" in formats["onnx"]["runs_here"] and "onnxruntime" in formats["onnx-int8"]["runs_here"]


def test_doctor_defaults_to_the_shipped_bundle_and_flags_a_tampered_one(tmp_path):
    text = run_without_torch("doctor")
    assert text.returncode == 0 and "healthy" in text.stdout and "sha256 ok" in text.stdout, text.stderr
    tampered = tmp_path / "tampered"
    shutil.copytree(REFERENCE / "exports", tampered)
    with open(tampered / "resnet20-int8.onnx", "ab") as f:
        f.write(b"\0")
    result = run_without_torch("doctor", tampered, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["healthy"] is False and "resnet20-int8.onnx" in report["bundle"]["sha256_error"]


# --- every subcommand without PyTorch -------------------------------------------------------------

def registered_commands() -> set[str]:
    from edgecls.cli import app

    return {c.name for c in app.registered_commands}


def serve_until_ready(export_dir: Path) -> None:
    """`edgecls serve` without PyTorch: up, answering /v2/health/ready, then SIGTERM and a clean exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\n"
            f"sys.argv = ['edgecls', 'serve', {str(export_dir)!r}, '--port', '{port}']\n"
            "from edgecls.cli import main\nmain()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        wait_until_ready(proc, f"http://127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in out, out


def test_every_subcommand_without_pytorch(export_dir, trained_checkpoint, test_images, cifar_dir):
    """Torch commands: one line naming the extra, exit 2. Device commands: they work."""
    needs = {("train", "--data", cifar_dir): "train", ("eval", trained_checkpoint, "--data", test_images): "train",
             ("models",): "train", ("export", trained_checkpoint): "export",
             ("benchmark", trained_checkpoint): "export"}
    for args, extra in needs.items():
        result = run_without_torch(*args)
        assert_one_line_error(result, f"pip install 'edgecls[{extra}]'")
        assert result.returncode == 2, args
    device = [("eval", export_dir, "--data", test_images), ("benchmark", export_dir, *FAST),
              ("infer", cifar_dir / "test" / "cat" / "0000.jpg", "--model", export_dir), ("doctor", export_dir),
               ("verify", export_dir)]
    tested = set()
    for args in device:
        result = run_without_torch(*args)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stderr)
        tested.add(args[0])
    serve_until_ready(export_dir)
    tested |= {"serve"} | {a[0] for a in needs}  # each `needs` call above asserted its one-line error
    assert registered_commands() <= tested, registered_commands() - tested
