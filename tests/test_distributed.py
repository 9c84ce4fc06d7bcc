"""torchrun + DDP on the CPU (gloo, two processes on this machine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edgecls.trainer.checkpoint import load_checkpoint, read_checkpoint
from edgecls.trainer.data import load_data
from edgecls.trainer.loop import DeviceData, accuracy, predict_logits
from edgecls.trainer.models import build_model
from edgecls.trainer.policy import resolve_policy

from .conftest import REPO, run_cli

pytestmark = pytest.mark.distributed


def torchrun(*args: str, nproc: int = 2, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "edgecls", "train", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, cifar_dir, cache_dir):
    out = tmp_path_factory.mktemp("ddp") / "run"
    code, stdout, stderr = finish(torchrun(
        "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--epochs", "2", "--limit-train", "2048",
        "--limit-test", "201", "--batch-size", "64", "--warmup-epochs", "0.5", "--precision", "fp32",
        "--seed", "1", "--out", str(out)))
    assert code == 0, stderr[-3000:]
    return out, stdout


def test_two_processes_learn_and_write_one_set_of_outputs(two_process_run):
    out, stdout = two_process_run
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "confusion.png", "curves.png", "last.pt", "metrics.json"]
    assert stdout.count("best test accuracy") == 1 and "2 processes × 32 images" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and metrics["best_acc"] > 0.2  # chance is 0.1


def test_sharded_evaluation_equals_a_single_process_evaluation(two_process_run, cifar_dir, cache_dir):
    """201 test images: the shards are uneven (101 + 100); the all-reduced hit count is exact."""
    out, _ = two_process_run
    history = read_checkpoint(out / "last.pt")["history"]
    model, meta = load_checkpoint(out / "last.pt")  # state_dict: the weights scored in the last epoch
    test = load_data(str(cifar_dir), 32, cache_dir=cache_dir).test.subset(201, 1)
    data = DeviceData.from_numpy(test.images, test.labels, meta["mean"], meta["std"], torch.device("cpu"))
    single = accuracy(predict_logits(model, data, resolve_policy("cpu", "fp32")), data.labels)
    assert history[-1]["test_acc"] == round(single, 5)


def test_two_processes_take_the_steps_of_one_with_the_same_global_batch(tmp_path, trained_checkpoint, cifar_dir, cache_dir):
    """DDP averages gradients over the global batch, so a step equals one process's step on it.

    BatchNorm in train mode normalizes each process's half on its own (SyncBatchNorm is GPU-only
    in PyTorch), which changes the maths; so the run trains only the linear head of a fine-tuned
    ResNet-20, with every BN frozen, and both runs must end with the same weights.
    """
    common = ["--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--init", str(trained_checkpoint),
              "--freeze", "stem,layer1,layer2,layer3", "--head", "linear", "--feature-cache", "off",
              "--precision", "fp32", "--epochs", "2", "--limit-train", "512", "--limit-test", "100",
              "--batch-size", "64", "--label-smoothing", "0", "--seed", "2"]
    one = run_cli("train", *common, "--out", str(tmp_path / "one"), "--threads", "2")
    assert one.returncode == 0, one.stderr
    code, _, stderr = finish(torchrun(*common, "--out", str(tmp_path / "two")))
    assert code == 0, stderr[-3000:]
    a = read_checkpoint(tmp_path / "one" / "last.pt")["raw_state_dict"]
    b = read_checkpoint(tmp_path / "two" / "last.pt")["raw_state_dict"]
    torch.manual_seed(2)  # the head both runs started from (build_parts seeds, then builds)
    assert not torch.allclose(a["fc.weight"], build_model("resnet20", 10).fc.weight, atol=1e-3)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def _worker_pids(agent_pid: int) -> dict[int, int]:
    """rank → pid of the processes torchrun's agent started (read from /proc)."""
    ranks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != agent_pid:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        env = dict(item.split(b"=", 1) for item in environ if b"=" in item)
        if b"RANK" in env:
            ranks[int(env[b"RANK"])] = int(stat.parent.name)
    return ranks


def test_killing_one_rank_fails_the_job_quickly_and_all_ranks_resume(tmp_path, cifar_dir, cache_dir):
    out = tmp_path / "killed"
    proc = torchrun("--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--epochs", "6",
                    "--limit-train", "1024", "--limit-test", "100", "--batch-size", "64", "--out", str(out))
    try:
        deadline = time.monotonic() + 300
        while not (out / "metrics.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never finished an epoch"
            time.sleep(0.1)
        workers = _worker_pids(proc.pid)
        assert sorted(workers) == [0, 1]
        os.kill(workers[1], signal.SIGKILL)
        killed_at = time.monotonic()
        code, _, stderr = finish(proc, timeout=120)
        elapsed = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code != 0 and "ChildFailedError" in stderr
    assert elapsed < 60, f"the job took {elapsed:.0f}s to fail after a rank died"
    assert read_checkpoint(out / "last.pt")["epoch"] < 6
    code, stdout, stderr = finish(torchrun("--resume", str(out / "last.pt")))
    assert code == 0, stderr[-3000:]
    resumed = read_checkpoint(out / "last.pt")
    assert resumed["epoch"] == 6 and [row["epoch"] for row in resumed["history"]] == [1, 2, 3, 4, 5, 6]
