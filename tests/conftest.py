"""Shared fixtures: small real image folders cut from ../shared/datasets/cifar10."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# Two xdist workers share the cores and each runs engines with a thread per core: OpenMP threads that spin while
# waiting for work burn the other worker's core. Set before anything imports torch; subprocesses inherit it
# (what it saves: benchmarks/results/test-time-2026-12-08.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
CIFAR = (REPO.parent / "shared" / "datasets" / "cifar10").resolve()
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def torchvision_transform(size: int, mean=None, std=None):
    """The reference an image's pixels and tensor are checked against, written once: torchvision's eval transform
    (shorter side resized to ``size``, center crop), then ToTensor and Normalize when ``mean`` and ``std`` are
    given (else a PIL image)."""
    from torchvision import transforms as T

    steps = [T.Resize(size), T.CenterCrop(size)]
    return T.Compose(steps + ([T.ToTensor(), T.Normalize(mean, std)] if mean is not None else []))


def copy_subset(dst: Path, per_class_train: int, per_class_test: int, classes=CLASSES) -> Path:
    """A real image folder with the first N images of each class."""
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        for name in classes:
            src = CIFAR / split / name
            (dst / split / name).mkdir(parents=True, exist_ok=True)
            for f in sorted(src.iterdir())[:count]:
                shutil.copy2(f, dst / split / name / f.name)
    return dst


@pytest.fixture(scope="session", autouse=True)
def proof_cache(tmp_path_factory) -> Path:
    """Proof verdicts of this session, in and out of process, go to its own folder: a test never reads a
    developer's cache, nor leaves verdicts in it."""
    from edgecls.runtime.proof import CACHE_ENV

    folder = tmp_path_factory.mktemp("proofs")
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    if not (CIFAR / "train").is_dir():
        pytest.fail(f"the shared CIFAR-10 image folder is missing at {CIFAR}")
    return CIFAR


def session_root(tmp_path_factory) -> Path:
    """The folder every worker of this test session shares: under pytest-xdist (the default run is
    ``-n 2``) each worker has its own base temp folder inside it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` run by the first worker that asks for ``name``; every other worker waits on the lock
    and takes the same folder, so what a session trains or exports is trained or exported once."""
    from filelock import FileLock

    folder = session_root(tmp_path_factory) / "shared" / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{folder}.lock"):
        done = folder / ".built"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One decoded-data cache per test session, shared by its workers (entries are published by rename),
    never the user's."""
    folder = session_root(tmp_path_factory) / "shared" / "edgecls-cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, cifar_dir) -> Path:
    return copy_subset(tmp_path_factory.mktemp("tiny"), 30, 10)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run ``python -m edgecls`` in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgecls", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def assert_fp32_row(row_agreement: float, near_ties: int, images: int, max_rel: float, what: str = "") -> None:
    """A reported FP32 row (export gate, verify, benchmark) under the product's one rule
    (``edgecls.tolerance``): every moved top-1 counted as an excused near-tie, within the cap and the logit bar."""
    from edgecls.tolerance import FP32_MAX_REL_DLOGIT, near_tie_cap

    moved = round((1 - row_agreement) * images)
    assert moved == near_ties <= near_tie_cap(images), f"{what}: {moved} top-1 moved, {near_ties} excused"
    assert max_rel <= FP32_MAX_REL_DLOGIT, f"{what}: max relative |Δlogit| {max_rel:.2e}"


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, cifar_dir, cache_dir) -> Path:
    """A small ResNet-20 trained for real on a CIFAR-10 subset (shared by export and runtime tests)."""
    folder = built_once(tmp_path_factory, "trained",
                        lambda f: train_briefly(f, cifar_dir, cache_dir, "resnet20", epochs=2, warmup=0.5))
    return folder / "run" / "best.pt"


def train_briefly(folder: Path, cifar_dir: Path, cache_dir: Path, model: str, epochs: int, warmup: float,
                  limit_train: int = 2048) -> Path:
    """``model`` trained through the real CLI on ``limit_train`` seeded training images (500 to test): its best.pt."""
    out = folder / "run"
    result = run_cli("train", "--model", model, "--data", str(cifar_dir), "--cache-dir", str(cache_dir),
                     "--epochs", str(epochs), "--limit-train", str(limit_train),
                     "--limit-val", "500", "--limit-test", "500", "--batch-size", "64",
                     "--seed", "1", "--warmup-epochs", str(warmup), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out / "best.pt"


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory, trained_checkpoint, cifar_dir, cache_dir) -> Path:
    """TorchScript, ONNX and OpenVINO, FP32 and INT8, exported through the real CLI (the edge formats:
    ``edge_export_dir``)."""
    return built_once(tmp_path_factory, "export", lambda f: export_briefly(
        trained_checkpoint, f / "resnet20", cifar_dir, cache_dir, "torchscript,onnx,openvino")) / "resnet20"


def export_briefly(checkpoint: Path, out: Path, cifar_dir: Path, cache_dir: Path, formats: str) -> None:
    """``formats`` with their INT8 files, exported through the real CLI with small check settings."""
    result = run_cli("export", str(checkpoint), "--format", formats, "--int8", "--out", str(out),
                     "--calib-data", str(cifar_dir), "--data", str(cifar_dir), "--cache-dir", str(cache_dir),
                     "--calib-size", "64", "--check-images", "200")
    assert result.returncode == 0, result.stdout + result.stderr


EDGE_FORMATS = "onnx-fp16,openvino-fp16,litert,ncnn,executorch"  # with --int8: litert-int8, executorch-int8


@pytest.fixture(scope="session")
def edge_export_dir(tmp_path_factory, trained_checkpoint, cifar_dir, cache_dir) -> Path:
    """The FP16 and edge-runtime formats (issue 25) of the same checkpoint, one export for the whole run."""
    return built_once(tmp_path_factory, "export-edge", lambda f: export_briefly(
        trained_checkpoint, f / "resnet20", cifar_dir, cache_dir, EDGE_FORMATS)) / "resnet20"


def wait_until_ready(proc: subprocess.Popen, base_url: str, limit_s: float = 120) -> None:
    """Until ``edgecls serve`` in ``proc`` answers /v2/health/ready; fails if it exits or never does."""
    import time
    import urllib.request

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{base_url}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"serve never became ready (exit code {proc.poll()})")


def train_on(out: Path, cifar_dir: Path, cache_dir: Path, *args: str):
    """`edgecls train` on the test images into ``out``; the run must succeed."""
    result = run_cli("train", "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    return result


def kill_and_resume(train_args: list[str], out: Path, reference: Path, epochs: int) -> tuple[dict, dict]:
    """`edgecls train *train_args --out out`, SIGKILLed right after epoch 1 of ``epochs`` and resumed from
    its last.pt; returns the last.pt payloads of the uninterrupted ``reference`` run and of this one."""
    from edgecls.trainer import read_checkpoint

    args = [sys.executable, "-m", "edgecls", "train", *train_args, "--epochs", str(epochs), "--out", str(out)]
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first_epoch_s = json.loads((reference / "metrics.json").read_text())["epochs"][0]["wall_s"]
    try:
        kill_after_epoch(proc, 1, limit_s=600 + 20 * first_epoch_s)  # the same run took first_epoch_s here
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert read_checkpoint(out / "last.pt")["epoch"] < epochs
    result = run_cli("train", "--resume", str(out / "last.pt"))
    assert result.returncode == 0, result.stderr
    a, b = read_checkpoint(reference / "last.pt"), read_checkpoint(out / "last.pt")
    assert a["epoch"] == b["epoch"] == epochs
    assert [r["val_acc"] for r in a["history"]] == [r["val_acc"] for r in b["history"]]
    return a, b


def kill_after_epoch(proc: subprocess.Popen, epoch: int, limit_s: float) -> None:
    """SIGKILL the run the moment it logs ``epoch``, a line it prints only after that epoch's last.pt is
    written; a watchdog kills it after ``limit_s`` if the line never comes."""
    watchdog = threading.Timer(limit_s, proc.kill)
    watchdog.start()
    try:
        seen = any(re.match(rf"epoch +{epoch}/", line) for line in proc.stdout)  # stops at the first match
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        watchdog.cancel()
    assert seen, f"the run never logged epoch {epoch} (watchdog: {limit_s:.0f}s)"
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
