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

from edgecls.tolerance import near_tie_images, top1_agreement
from edgecls.trainer.checkpoint import load_checkpoint, read_checkpoint
from edgecls.trainer.data import SplitPlan, load_data
from edgecls.trainer.distributed import COLLECTIVE_TIMEOUT, World, close_world, init_world
from edgecls.trainer.fit import model_scorer, sharded_predictions
from edgecls.trainer.loop import DeviceData, predict_logits
from edgecls.trainer.models import build_model
from edgecls.trainer.policy import resolve_policy, set_cpu_threads

from .conftest import REPO, run_cli

pytestmark = pytest.mark.distributed

TEST_IMAGES = 1201  # three chunks of 500 or fewer: uneven shares for 2 ranks (701 + 500) or 3


def launch(*args: str, nproc: int = 2, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def torchrun(*args: str, nproc: int = 2, **popen) -> subprocess.Popen:
    return launch("-m", "edgecls", "train", *args, nproc=nproc, **popen)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, cifar_dir, cache_dir):
    out = tmp_path_factory.mktemp("ddp") / "run"
    code, stdout, stderr = finish(torchrun(
        "--model", "resnet20", "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--epochs", "2",
        "--limit-train", "2048", "--limit-val", str(TEST_IMAGES), "--limit-test", str(TEST_IMAGES),
        "--batch-size", "64", "--warmup-epochs", "0.5", "--precision", "fp32",
        "--seed", "1", "--out", str(out)))
    assert code == 0, stderr[-3000:]
    return out, stdout


def test_two_processes_learn_and_write_one_set_of_outputs(two_process_run):
    out, stdout = two_process_run
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt", "confusion.png", "curves.png", "last.pt", "metrics.json", "split.json"]
    assert stdout.count("best.pt: epoch") == 1 and "2 processes × 32 images" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and metrics["test_acc"] > 0.2  # chance is 0.1


def test_chunks_cover_every_index_once_in_the_single_process_batches():
    """However many ranks share n items, together they score the single process's chunks, each once."""
    for n in (0, 1, 7, 499, 500, 501, 1201, 10_000):
        for size in (1, 7, 500):
            single = World().chunks(n, size)
            assert [i for a, b in single for i in range(a, b)] == list(range(n))
            assert all(b - a == size for a, b in single[:-1])
            for world in (1, 2, 3, 4, 7):
                shares = [World(rank, world).chunks(n, size) for rank in range(world)]
                assert sorted(c for share in shares for c in share) == single, (n, size, world)


def _test_set(ckpt: Path, cifar_dir: Path, cache_dir: Path) -> tuple[torch.nn.Module, DeviceData]:
    """The checkpoint's model and the images its run scored each epoch (--limit-val TEST_IMAGES --seed 1)."""
    model, meta = load_checkpoint(ckpt)
    val = load_data(str(cifar_dir), meta["input_size"], cache_dir=cache_dir, plan=SplitPlan(seed=1), need=("val",)).val
    test = val.subset(TEST_IMAGES, 1)
    return model, DeviceData.from_numpy(test.images, test.labels, meta["mean"], meta["std"], torch.device("cpu"))


def sharded_eval_main(ckpt: str, cifar_dir: str, cache_dir: str, out: str) -> None:
    """Under torchrun: the training run's sharded evaluation of ``ckpt``; rank 0 saves the predictions."""
    world = init_world("cpu")
    try:
        set_cpu_threads(None)
        model, data = _test_set(Path(ckpt), Path(cifar_dir), Path(cache_dir))
        policy = resolve_policy("cpu", "fp32")
        preds = sharded_predictions(model_scorer(model, data, policy), len(data), world, policy.device)
        if world.main:
            torch.save(preds, out)
    finally:
        close_world(world)


def near_ties(logits: torch.Tensor) -> torch.Tensor:
    """The images the product's near-tie rule (edgecls.tolerance) lets change class between fp32 evaluations."""
    mask = torch.zeros(len(logits), dtype=torch.bool)
    mask[torch.from_numpy(near_tie_images(logits.numpy()))] = True
    return mask


def test_sharded_evaluation_matches_a_single_process_evaluation(two_process_run, tmp_path, cifar_dir, cache_dir):
    """Three ranks re-score last.pt, image by image, and the run's own per-epoch count is checked.

    The run used --precision fp32, so its per-epoch check ran without autocast, like this one. fp32
    rounding may flip near ties only (the product's rule): a dropped, duplicated or misplaced image still fails.
    """
    out, _ = two_process_run
    model, data = _test_set(out / "last.pt", cifar_dir, cache_dir)  # state_dict: the last epoch's weights
    logits = predict_logits(model, data, resolve_policy("cpu", "fp32"))
    single, ties = logits.argmax(1), near_ties(logits)
    assert ties.float().mean() <= 0.05, f"{int(ties.sum())} near ties leave the test without teeth"
    saved = tmp_path / "sharded.pt"
    code, _, stderr = finish(launch("-m", "tests.test_distributed", str(out / "last.pt"), str(cifar_dir),
                                    str(cache_dir), str(saved), nproc=3))
    assert code == 0, stderr[-3000:]
    sharded = torch.load(saved)
    agreement = top1_agreement(sharded.numpy(), logits.numpy())  # the product's rule: near-ties only, capped
    assert agreement.holds, f"{agreement.describe()}; near ties: {ties.nonzero().flatten().tolist()}"
    hits = int((single == data.labels).sum())
    swing = int((ties & (logits.topk(2, dim=1).indices == data.labels[:, None]).any(1)).sum())  # may flip a hit
    run_hits = round(read_checkpoint(out / "last.pt")["history"][-1]["val_acc"] * len(data))
    assert abs(run_hits - hits) <= swing, f"the run counted {run_hits} hits, a single process {hits} (±{swing})"


def test_two_processes_take_the_steps_of_one_with_the_same_global_batch(tmp_path, trained_checkpoint, cifar_dir,
                                                                        cache_dir):
    """DDP averages gradients over the global batch, so a step equals one process's step on it.

    BatchNorm in train mode normalizes each process's half on its own (SyncBatchNorm is GPU-only
    in PyTorch), which changes the maths; so the run trains only the linear head of a fine-tuned
    ResNet-20, with every BN frozen, and both runs must end with the same weights.
    """
    common = ["--model", "resnet20", "--data", str(cifar_dir), "--cache-dir", str(cache_dir),
              "--init", str(trained_checkpoint),
              "--freeze", "stem,layer1,layer2,layer3", "--head", "linear", "--feature-cache", "off",
              "--precision", "fp32", "--epochs", "2", "--limit-train", "512",
              "--limit-val", "100", "--limit-test", "100",
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


# Failing "quickly" means well before the surviving rank's collectives would time out.
PROMPT_S = COLLECTIVE_TIMEOUT.total_seconds() / 2
KILL_EPOCHS = 3


def test_killing_one_rank_fails_the_job_quickly_and_all_ranks_resume(tmp_path, cifar_dir, cache_dir):
    out = tmp_path / "killed"
    # three epochs: killed after the first, two left to resume (each epoch is what the test pays twice)
    proc = torchrun("--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--epochs", str(KILL_EPOCHS),
                    "--limit-train", "1024", "--limit-val", "100", "--limit-test", "100", "--batch-size", "64",
                    "--out", str(out))
    try:
        deadline = time.monotonic() + 300
        while not (out / "metrics.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never finished an epoch"
            time.sleep(0.1)
        workers = _worker_pids(proc.pid)
        assert sorted(workers) == [0, 1]
        os.kill(workers[1], signal.SIGKILL)
        killed_at = time.monotonic()
        code, _, stderr = finish(proc, timeout=PROMPT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the job still ran {PROMPT_S:.0f}s after a rank died: it waited for the collective timeout")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    elapsed = time.monotonic() - killed_at
    assert code != 0 and "ChildFailedError" in stderr
    assert elapsed < PROMPT_S, f"the job took {elapsed:.0f}s to fail after a rank died"
    assert read_checkpoint(out / "last.pt")["epoch"] < KILL_EPOCHS
    code, stdout, stderr = finish(torchrun("--resume", str(out / "last.pt")))
    assert code == 0, stderr[-3000:]
    resumed = read_checkpoint(out / "last.pt")
    assert resumed["epoch"] == KILL_EPOCHS
    assert [row["epoch"] for row in resumed["history"]] == list(range(1, KILL_EPOCHS + 1))


if __name__ == "__main__":
    sharded_eval_main(*sys.argv[1:])
