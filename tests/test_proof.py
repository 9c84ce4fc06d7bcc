"""The runtime proves a file on this machine before it answers from it (issue 33): real engines, real files.

One bundle is built to fail: a copy of the shipped ResNet-20 whose INT8 ONNX file has its final layer's int8
weights negated, under a manifest rehashed to match, so every sha256 passes and only the golden check fails,
as a file built on a VNNI CPU fails on an AVX2 one.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecls.bundle import MANIFEST, read_manifest
from edgecls.errors import ProofFailed
from edgecls.format_table import FORMATS, TORCH
from edgecls.golden_file import GOLDEN
from edgecls.host import cpu_features_key, cpu_flags
from edgecls.runtime import Classifier
from edgecls.runtime.engines import engine_available
from edgecls.runtime.model_files import model_candidates
from edgecls.runtime.proof import CACHE_ENV, FAILED, PROVEN, UNPROVEN, cache_dir
from edgecls.shipped import SHIPPED, reference_bundle

from .conftest import REPO, assert_one_line_error, run_cli
from .test_serve import assert_json_error, free_port, running_server, wait_ready
from .test_verify import rehash

FAILING = "onnx-int8"


def entry_path(folder: Path, fmt: str) -> Path:
    return folder / next(e["path"] for e in read_manifest(folder)["files"] if e["format"] == fmt)


@pytest.fixture(scope="module")
def failing(tmp_path_factory) -> Path:
    folder = Path(shutil.copytree(reference_bundle("resnet20"), tmp_path_factory.mktemp("failing") / "resnet20"))
    path = entry_path(folder, FAILING)
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer  # the final layer's: the one 2-D int8 weight
                  if numpy_helper.to_array(t).dtype == np.int8 and numpy_helper.to_array(t).ndim == 2)
    negated = np.clip(-numpy_helper.to_array(weight).astype(np.int16), -127, 127).astype(np.int8)
    weight.CopyFrom(numpy_helper.from_array(negated, weight.name))
    onnx.save(model, str(path))
    rehash(folder, path.name)
    return folder


@pytest.fixture(scope="module")
def photo(cifar_dir) -> Path:
    return sorted((cifar_dir / "test" / "dog").iterdir())[0]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own, in process and for the CLI it starts."""
    folder = tmp_path / "proofs"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def edgecls_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("edgecls: ")]


def verify_line(target: Path, fmt: str) -> str:
    """`edgecls verify`'s line for one file, from its JSON report."""
    report = json.loads(run_cli("verify", str(target), "--json").stdout)
    row = next(r for r in report["rows"] if r["format"] == fmt)
    assert row["passed"] is False, row
    return f"{fmt}: {row['note']} (worst image {row['worst_image']})"


# --- auto passes a failing file over; a failing file named alone is refused --------------------------

def test_auto_answers_from_the_next_file_and_says_so_in_one_line(failing, photo, fresh_cache):
    after = list(model_candidates(failing))[1]
    expected = Classifier.load(after.path, backend=after.engine).predict(photo).label
    for _ in range(2):  # the second run skips the failing file on its cached verdict, and still says so
        result = run_cli("infer", str(photo), "--model", str(failing), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["label"] == expected
        lines = edgecls_lines(result.stderr)
        assert len(lines) == 1, result.stderr
        assert f"{FAILING} (onnxruntime " in lines[0] and "fails its golden check on this CPU" in lines[0]
        assert f"using {after.format} ({after.engine} " in lines[0]
        assert lines[0].endswith(f"Details: edgecls verify {failing}")
        assert f"({after.format} via {after.engine}: {after.path})" in result.stderr.splitlines()[-1]
        records = [json.loads(p.read_text()) for p in fresh_cache.glob("*.json")]
        assert {(r["key"]["format"], r["verdict"]) for r in records} == {(FAILING, FAILED), (after.format, PROVEN)}


def test_a_failing_file_named_alone_is_refused_with_verifys_line(failing, photo, fresh_cache):
    int8 = entry_path(failing, FAILING)
    expected = verify_line(int8, FAILING)
    for _ in range(2):  # proven, then refused from the cache alike
        refused = run_cli("infer", str(photo), "--model", str(int8))
        assert_one_line_error(refused, "fails its golden check on this CPU", expected, "--allow-failed-proof",
                              f"edgecls verify {failing}")
        assert refused.returncode == 1 and not refused.stdout
    allowed = run_cli("infer", str(photo), "--model", str(int8), "--json", "--allow-failed-proof")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["label"] == Classifier.load(int8, allow_failed_proof=True).predict(photo).label
    assert "loaded anyway, as allowed" in edgecls_lines(allowed.stderr)[0]


def test_eval_refuses_it_too(failing, cifar_dir, fresh_cache):
    result = run_cli("eval", str(entry_path(failing, FAILING)), "--data", str(cifar_dir))
    assert_one_line_error(result, "fails its golden check", "--allow-failed-proof")
    assert result.returncode == 1


def test_benchmark_skips_it_unless_allowed(failing):
    args = ("benchmark", str(failing), "--formats", f"{FAILING},onnx", "--backend", "onnxruntime", "--latency-runs",
            "2", "--throughput-runs", "1", "--json")
    skipped, allowed = run_cli(*args), run_cli(*args, "--allow-failed-proof")
    assert skipped.returncode == 0 and allowed.returncode == 0, skipped.stderr + allowed.stderr
    assert [r["format"] for r in json.loads(skipped.stdout)] == ["onnx"]
    assert f"skipped: {FAILING} (onnxruntime) fails its golden check on this CPU" in skipped.stderr
    assert [r["format"] for r in json.loads(allowed.stdout)] == ["onnx", FAILING]


def test_in_another_engine_the_pytorch_floor_still_holds(failing, fresh_cache):
    """OpenVINO running the ONNX INT8 file is another integer computation than the one its build logits came
    from, so only the floor against PyTorch applies there: the negated final layer still fails it."""
    clf = Classifier.load(entry_path(failing, FAILING), backend="openvino", allow_failed_proof=True)
    assert clf.proof.status == FAILED and "top-1 agreement with PyTorch" in clf.proof.reason
    shipped = Classifier.load(entry_path(reference_bundle("resnet20"), FAILING), backend="openvino")
    assert shipped.proof.status == PROVEN


def test_a_named_backend_falls_back_among_its_own_files(failing, fresh_cache, capfd):
    clf = Classifier.load(failing, backend="onnxruntime")
    assert (clf.choice.format, clf.choice.engine, clf.proof.status) == ("onnx", "onnxruntime", PROVEN)
    assert f"{FAILING} (onnxruntime " in capfd.readouterr().err


# --- the verdict cache --------------------------------------------------------------------------------

def verdicts(folder: Path) -> dict[str, dict]:
    records = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    return {r["key"]["format"]: r for r in records}


def test_the_verdict_is_cached_and_read_back(failing, fresh_cache, capfd):
    int8 = entry_path(failing, FAILING)
    first = Classifier.load(int8, allow_failed_proof=True)
    assert first.proof.status == FAILED and not first.proof.cached
    (path,) = fresh_cache.glob("*.json")
    record = json.loads(path.read_text())
    entry = next(e for e in read_manifest(failing)["files"] if e["format"] == FAILING)
    assert record["verdict"] == FAILED and record["key"]["files"] == {int8.name: entry["sha256"]}
    assert record["agreement_build"] < 0.95 and record["reason"] == first.proof.reason
    path.write_text(json.dumps({**record, "reason": "MARK from the cache"}))  # what a second load must read
    second = Classifier.load(int8, allow_failed_proof=True)
    assert second.proof.cached and second.proof.reason == "MARK from the cache"
    with pytest.raises(ProofFailed, match="MARK from the cache"):
        Classifier.load(int8)
    capfd.readouterr()


def test_another_cpu_proves_afresh(failing, fresh_cache, monkeypatch):
    int8 = entry_path(failing, FAILING)
    assert not Classifier.load(int8, allow_failed_proof=True).proof.cached
    assert Classifier.load(int8, allow_failed_proof=True).proof.cached
    here = cpu_features_key()
    monkeypatch.setattr("edgecls.runtime.proof.cpu_features_key", lambda: "x86_64:AVX,AVX2,FMA3")
    other = Classifier.load(int8, allow_failed_proof=True)
    assert other.proof.failed and not other.proof.cached
    cpus = sorted(json.loads(p.read_text())["key"]["cpu"] for p in fresh_cache.glob("*.json"))
    assert cpus == sorted([here, "x86_64:AVX,AVX2,FMA3"])


def test_an_unwritable_cache_never_fails_a_load(failing, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    assert cache_dir() == blocker
    for _ in range(2):
        clf = Classifier.load(entry_path(failing, "onnx"))
        assert clf.proof.status == PROVEN and not clf.proof.cached  # proven again each time


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="emulates an x86 CPU")
def test_the_cpu_key_is_the_cpus_own_answer_not_proc_cpuinfos():
    """Under qemu-user's Haswell, /proc/cpuinfo still shows the host's flags; the key shows the emulated CPU."""
    if not shutil.which("qemu-x86_64"):
        pytest.fail("this test needs Debian's qemu-user (apt-get install qemu-user)")
    code = "from edgecls.host import cpu_features_key, cpu_flags; print(cpu_features_key()); print(sorted(cpu_flags()))"
    native = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    emulated = subprocess.run(["qemu-x86_64", "-cpu", "Haswell", sys.executable, "-c", code], capture_output=True,
                              text=True, timeout=300, cwd=REPO)
    assert native.returncode == 0 and emulated.returncode == 0, native.stderr + emulated.stderr
    native_key, native_flags = native.stdout.splitlines()
    emulated_key, emulated_flags = emulated.stdout.splitlines()
    assert emulated_flags == native_flags  # cpuinfo: the host's, emulated or not
    features = set(emulated_key.split(":", 1)[1].split(","))
    assert {"AVX2", "FMA3"} <= features and not any(f.startswith("AVX512") for f in features)
    assert ("avx512f" in cpu_flags()) == (emulated_key != native_key)


# --- what cannot be proven still answers --------------------------------------------------------------

def test_a_file_outside_a_bundle_answers_unproven(failing, photo, tmp_path):
    lone = tmp_path / "lone.onnx"
    shutil.copy(entry_path(failing, FAILING), lone)
    clf = Classifier.load(lone)
    assert clf.proof.status == UNPROVEN and "not listed in an export folder" in clf.proof.reason
    assert str(clf.proof).startswith("not proven: ")
    result = run_cli("infer", str(photo), "--model", str(lone))
    assert result.returncode == 0 and not edgecls_lines(result.stderr), result.stderr


def test_a_bundle_without_golden_vectors_answers_unproven(failing, tmp_path, fresh_cache):
    folder = Path(shutil.copytree(failing, tmp_path / "no-golden"))
    (folder / GOLDEN).unlink()
    clf = Classifier.load(folder)  # listed, but gone: half-copied golden vectors prove nothing
    assert clf.choice.format == FAILING and clf.proof.status == UNPROVEN
    assert "golden vectors cannot be used" in clf.proof.reason and "missing" in clf.proof.reason
    manifest = read_manifest(folder)
    manifest["golden"] = None  # as exported with --golden-images 0
    (folder / MANIFEST).write_text(json.dumps(manifest))
    clf = Classifier.load(folder)
    assert clf.choice.format == FAILING and clf.proof.status == UNPROVEN and "no golden vectors" in clf.proof.reason


def test_precision_default_is_not_proven(failing):
    clf = Classifier.load(entry_path(failing, FAILING), precision="default")
    assert clf.proof.status == UNPROVEN and str(clf.proof).startswith("not proven: precision default")


def test_the_shipped_bundles_are_proven_here():
    """Every file of both shipped bundles whose engine is installed, in that engine, on this CPU."""
    proven = {}
    for name in SHIPPED:
        folder = reference_bundle(name)
        for entry in read_manifest(folder)["files"]:
            engine = FORMATS[entry["format"]].engine
            if engine != TORCH and engine_available(engine):
                proof = Classifier.load(folder / entry["path"], backend=engine).proof
                proven[f"{name} {entry['format']}"] = (proof.status, proof.reason)
    assert proven and all(status == PROVEN for status, _ in proven.values()), proven


# --- serve and doctor ---------------------------------------------------------------------------------

def test_a_server_on_a_failing_file_is_not_ready_until_a_reload(failing, photo, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edgecls", "serve", str(entry_path(failing, FAILING)),
                                 "--host", "127.0.0.1", "--port", str(port)], cwd=REPO, stdout=out, stderr=out,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_ready(url, proc, log, "/v2/health/live")
        ready = httpx.get(f"{url}/v2/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        assert httpx.get(f"{url}/v2/models/resnet20/ready", timeout=10).json()["ready"] is False
        refused = httpx.post(f"{url}/v1/classify", content=photo.read_bytes(),
                             headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert_json_error(refused, 503, "not ready", "fails its golden check on this CPU", "/v1/reload")
        assert httpx.get(f"{url}/v1/model", timeout=10).json()["verified"].startswith("FAILS its golden check")
        reload_bad = httpx.post(f"{url}/v1/reload", json={"model": str(entry_path(failing, FAILING))}, timeout=120)
        assert_json_error(reload_bad, 422, "reload refused", "fails its golden check", "--allow-failed-proof")
        reload_good = httpx.post(f"{url}/v1/reload", json={"model": str(failing)}, timeout=120)
        assert reload_good.status_code == 200, reload_good.text
        assert reload_good.json()["model"]["format"] != FAILING
        assert httpx.get(f"{url}/v2/health/ready", timeout=10).status_code == 200
        answer = httpx.post(f"{url}/v1/classify", content=photo.read_bytes(),
                            headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert answer.status_code == 200, answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0 and "Traceback" not in text, text
    assert "edgecls serve: not ready: " in text


def test_a_server_on_the_folder_is_ready_and_serves_the_next_file(failing, photo):
    after = list(model_candidates(failing))[1]
    with running_server(str(failing)) as (url, _, log):
        info = httpx.get(f"{url}/v1/model", timeout=10).json()
        assert (info["format"], info["backend"]) == (after.format, after.engine)
        assert info["verified"].startswith("golden (")
        answer = httpx.post(f"{url}/v1/classify", content=photo.read_bytes(),
                            headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert f"{FAILING} (onnxruntime " in log.read_text()


def test_doctor_lists_a_proven_and_a_failing_file(failing):
    text = run_cli("doctor", str(failing))
    assert text.returncode == 0, text.stdout + text.stderr  # other files run: auto answers from them
    lines = {line.split()[0]: line for line in text.stdout.splitlines() if line.startswith("  ")}
    assert "FAILS here" in lines[FAILING] and "agreement with its build-machine logits" in lines[FAILING]
    assert lines["onnx"].endswith(("proven here", "proven here (cached verdict)"))
    report = json.loads(run_cli("doctor", str(failing), "--json").stdout)
    proofs = {f["format"]: f["proof"] for f in report["bundle"]["formats"]}
    assert proofs[FAILING]["status"] == FAILED and proofs[FAILING]["cached"]  # the text run proved it
    assert proofs["onnx"] == {**proofs["onnx"], "status": PROVEN, "cached": True}
