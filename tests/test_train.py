"""End-to-end training runs through the real CLI on real CIFAR-10 images."""

import json

import pytest
import torch

from edgecls.trainer import load_checkpoint

from .conftest import kill_and_resume, run_cli, train_on

SMALL_RUN = ["--model", "resnet20", "--batch-size", "64", "--limit-train", "1536",
"--limit-val", "500", "--limit-test", "500",
             "--device", "cpu", "--seed", "7", "--threads", "2", "--warmup-epochs", "0.5"]
TEST_IMAGES = int(SMALL_RUN[SMALL_RUN.index("--limit-test") + 1])
SEED = int(SMALL_RUN[SMALL_RUN.index("--seed") + 1])


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, cifar_dir, cache_dir):
    out = tmp_path_factory.mktemp("run") / "r"
    return out, train_on(out, cifar_dir, cache_dir, "--epochs", "4", *SMALL_RUN)


def test_short_run_learns_and_writes_every_output(short_run):
    out, result = short_run
    for name in ("best.pt", "last.pt", "metrics.json", "split.json", "curves.png", "confusion.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 4
    for row in metrics["epochs"]:
        assert {"epoch", "train_loss", "val_acc", "train_img_per_s", "epoch_s", "wall_s"} <= row.keys()
        correct = row["val_acc"] * TEST_IMAGES  # a share of the --limit-val images, not of some other set
        assert abs(correct - round(correct)) < 1e-6, row
    accuracies = [row["val_acc"] for row in metrics["epochs"]]
    assert accuracies[metrics["best_epoch"] - 1] == max(accuracies) == round(metrics["best_val_acc_epoch_check"], 5)
    assert metrics["epochs"][-1]["train_loss"] < metrics["epochs"][0]["train_loss"]
    assert metrics["test_acc"] > 0.25, metrics  # chance is 0.10
    assert "epoch   4/4" in result.stdout


def test_reported_accuracy_is_best_pt_on_the_run_s_test_images(short_run, cifar_dir, cache_dir):
    """metrics.json's test_acc is best.pt scored once in fp32 on the run's seeded --limit-test images: recomputed
    here from the checkpoint, it agrees up to images whose top two logits are a near-tie (edgecls.tolerance's rule)."""
    from edgecls.tolerance import near_tie_images
    from edgecls.trainer.data import load_data
    from edgecls.trainer.loop import DeviceData, predict_logits
    from edgecls.trainer.policy import resolve_policy

    out, _ = short_run
    metrics = json.loads((out / "metrics.json").read_text())
    model, meta = load_checkpoint(out / "best.pt")
    assert meta["epoch"] == metrics["best_epoch"] and meta["best_val_acc"] == metrics["best_val_acc_epoch_check"]
    test = load_data(str(cifar_dir), meta["input_size"], cache_dir=cache_dir, need=("test",)).test
    test = test.subset(TEST_IMAGES, SEED)
    data = DeviceData.from_numpy(test.images, test.labels, meta["mean"], meta["std"], torch.device("cpu"))
    logits = predict_logits(model, data, resolve_policy("cpu", "fp32"), tta=metrics["tta"])
    correct = int((logits.argmax(1) == data.labels).sum())
    reported = round(metrics["test_acc"] * TEST_IMAGES)
    assert abs(correct - reported) <= len(near_tie_images(logits.numpy())), (correct, reported)


def test_checkpoint_round_trip(short_run, cifar_dir, cache_dir):
    out, _ = short_run
    model, meta = load_checkpoint(out / "best.pt")
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert meta["model"] == "resnet20" and meta["input_size"] == 32
    assert meta["classes"][:2] == ["airplane", "automobile"] and len(meta["classes"]) == 10
    assert len(meta["mean"]) == 3 and len(meta["std"]) == 3
    raw = torch.load(out / "best.pt", weights_only=True)
    assert set(raw["state_dict"]) == set(model.state_dict())
    metrics = json.loads((out / "metrics.json").read_text())
    grid = out / "grid.png"
    result = run_cli("eval", str(out / "best.pt"), "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--json",
                     "--grid", str(grid))
    assert result.returncode == 0, result.stderr
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(result.stdout)
    assert report["n"] == 10000 and set(report["per_class"]) == set(meta["classes"])
    assert abs(sum(report["per_class"].values()) / 10 - report["accuracy"]) < 1e-9  # 1000 per class
    assert report["accuracy"] > 0.25 and metrics["test_acc"] > 0.25


def test_resume_after_kill_matches_an_uninterrupted_run(short_run, tmp_path, cifar_dir, cache_dir):
    """Killed after epoch 1 of 4: three more epochs and the final fp32 re-scoring stand between the
    kill and the end of the run, so it lands mid-run however fast the machine is."""
    reference, _ = short_run
    out = tmp_path / "killed"
    a, b = kill_and_resume(["--data", str(cifar_dir), "--cache-dir", str(cache_dir), *SMALL_RUN], out, reference, 4)
    for key, value in a["raw_state_dict"].items():
        assert torch.equal(value, b["raw_state_dict"][key]), key
    assert not list(out.glob(".*.tmp"))


def test_patience_stops_early(tmp_path, cifar_dir, cache_dir):
    """With one validation image accuracy is 0 or 1, so it can improve at most once: patience 1 must stop by epoch 3."""
    out = tmp_path / "patient"
    result = run_cli("train", "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--epochs", "6",
                     "--out", str(out), "--patience", "1", "--limit-train", "256",
                     "--limit-val", "1", "--limit-test", "1", "--device", "cpu", "--model", "simplecnn")
    assert result.returncode == 0, result.stderr
    assert "early stop" in result.stdout
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) <= 3
