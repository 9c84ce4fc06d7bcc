"""Partial fine-tuning: --init, --freeze, cached trunk features, the AdamW/plateau recipe."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from edgecls.errors import EdgeclsError
from edgecls.tolerance import AGREEMENT, MAX_REL_DLOGIT
from edgecls.trainer.checkpoint import read_checkpoint
from edgecls.trainer.freeze import apply_freeze, parse_freeze
from edgecls.trainer.init_weights import IMAGENET_MEAN, imagenet_weights
from edgecls.trainer.models import build_model
from edgecls.trainer.models.stages import split_stages
from edgecls.trainer.optim import end_epoch, make_scheduler

from .conftest import assert_fp32_row, assert_one_line_error, run_cli

FROZEN_R20 = ("conv1.", "bn1.", "layer1.", "layer2.")  # --freeze auto on resnet20: stem, layer1, layer2


@pytest.mark.parametrize("name,kwargs,size", [("resnet20", {}, 32), ("resnet18", {"stem": "cifar"}, 32),
                                              ("resnet18", {"stem": "imagenet", "head": "dropout-linear"}, 64)])
def test_stages_run_in_order_equal_the_model(name, kwargs, size):
    torch.manual_seed(0)
    model = build_model(name, 10, **kwargs).eval()
    x = torch.randn(3, 3, size, size)
    y = x
    for _, stage in split_stages(model):
        y = stage(y)
    assert torch.equal(y, model(x))


def test_freeze_names_are_checked():
    model = build_model("resnet18", 10)
    assert parse_freeze("auto", model, has_init=True) == ("stem", "layer1", "layer2", "layer3")
    assert parse_freeze("auto", model, has_init=False) == ()
    assert parse_freeze("none", model, has_init=True) == ()
    assert parse_freeze("layer2,stem", model, has_init=False) == ("stem", "layer2")
    with pytest.raises(EdgeclsError, match="unknown stage"):
        parse_freeze("layer9", model, has_init=True)
    with pytest.raises(EdgeclsError, match="nothing would be trained"):
        parse_freeze("stem,layer1,layer2,layer3,layer4,head", model, has_init=True)
    with pytest.raises(EdgeclsError, match="cannot be split"):
        parse_freeze("auto", build_model("simplecnn", 10), has_init=True)


def test_freeze_plan_prefix_and_requires_grad():
    model = build_model("resnet20", 10)
    plan = apply_freeze(model, ("stem", "layer2"))
    assert plan.prefix_len == 1  # layer1 trains, so only the stem's output can be cached
    assert not model.conv1.weight.requires_grad and not model.layer2[0].conv1.weight.requires_grad
    assert model.layer1[0].conv1.weight.requires_grad and model.fc.weight.requires_grad


def test_plateau_cuts_the_lr_and_survives_a_state_dict_round_trip():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = make_scheduler(opt, total_steps=100, warmup_steps=0, schedule="plateau")
    for acc in (0.5, 0.6, 0.6, 0.6, 0.6):  # best at 0.6, then three flat epochs > patience 2
        end_epoch(sched, acc)
    opt.step()
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.1)
    fresh = make_scheduler(torch.optim.SGD(model.parameters(), lr=1.0), 100, 0, "plateau")
    fresh.load_state_dict(sched.state_dict())
    fresh.optimizer.step()
    fresh.step()
    assert fresh.get_last_lr()[0] == pytest.approx(0.1)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, trained_checkpoint, cifar_dir, cache_dir):
    """ResNet-20 fine-tuned from a CIFAR-trained one: default freeze, cached features, AdamW + plateau."""
    out = tmp_path_factory.mktemp("finetune") / "run"
    result = run_cli("train", "--model", "resnet20", "--data", str(cifar_dir), "--cache-dir", str(cache_dir),
                     "--init", str(trained_checkpoint),
                     "--epochs", "4", "--warmup-epochs", "0", "--limit-train", "1024",
                     "--limit-val", "300", "--limit-test", "300",
                     "--batch-size", "64",
                     "--optimizer", "adamw", "--schedule", "plateau", "--cache-views", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_partial_finetune_leaves_frozen_stages_bit_identical(finetuned, trained_checkpoint):
    out, stdout = finetuned
    assert "frozen stem, layer1, layer2" in stdout and "feature cache: 2 views" in stdout
    before = read_checkpoint(trained_checkpoint)["state_dict"]
    after = read_checkpoint(out / "last.pt")["raw_state_dict"]
    frozen = [k for k in before if k.startswith(FROZEN_R20)]
    trained = [k for k in before if k.startswith("layer3.") and k.endswith("conv1.weight")]
    assert len(frozen) > 20 and any("running_mean" in k for k in frozen)
    for key in frozen:
        assert torch.equal(before[key], after[key]), key
    for key in trained:
        assert not torch.equal(before[key], after[key]), key
    assert set(after) - set(before) == {"fc.1.weight", "fc.1.bias"}  # the new dropout-linear head


def test_finetuned_checkpoint_learns_and_records_its_recipe(finetuned, trained_checkpoint):
    out, _ = finetuned
    payload = read_checkpoint(out / "best.pt")
    source = read_checkpoint(trained_checkpoint)
    assert payload["model_kwargs"] == {"head": "dropout-linear"}
    assert payload["spec"]["mean"] == source["spec"]["mean"]  # normalization follows the weights
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["feature_cache"]["views"] == 2 and metrics["feature_cache"]["bytes"] > 0
    assert metrics["test_acc"] > 0.2  # ten classes, 300 images: chance is 0.1 (the backbone itself scores ~0.27)
    assert not list(out.glob("feature-cache*"))


def test_cached_validation_logits_equal_the_full_model(finetuned, cifar_dir, cache_dir):
    """The per-epoch score from cached features is the model's own score, not an approximation of it."""
    from edgecls.trainer.checkpoint import load_checkpoint
    from edgecls.trainer.data import load_data
    from edgecls.trainer.feature_cache import build_feature_bank, predict_features
    from edgecls.trainer.config import AugmentConfig
    from edgecls.trainer.loop import DeviceData, predict_logits
    from edgecls.trainer.policy import resolve_policy

    model, meta = load_checkpoint(finetuned[0] / "best.pt")
    test = load_data(str(cifar_dir), 32, cache_dir=cache_dir, need=("val",)).val.subset(200, 0)
    data = DeviceData.from_numpy(test.images, test.labels, meta["mean"], meta["std"], torch.device("cpu"))
    policy = resolve_policy("cpu", "fp32", channels_last=False)
    plan = apply_freeze(model, ("stem", "layer1", "layer2"))
    bank = build_feature_bank(plan.trunk(), data, data, policy, AugmentConfig(), 0, 1, None)
    cached = predict_features(plan.tail(), bank.val, policy)
    full = predict_logits(model, data, policy)
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)
    assert torch.equal(cached.argmax(1), full.argmax(1))


def test_disk_cache_and_freeze_none(tmp_path, trained_checkpoint, cifar_dir, cache_dir):
    common = ["--model", "resnet20", "--data", str(cifar_dir), "--cache-dir", str(cache_dir),
              "--init", str(trained_checkpoint),
              "--epochs", "1", "--limit-train", "256",
              "--limit-val", "100", "--limit-test", "100", "--batch-size", "64"]
    disk = run_cli("train", *common, "--feature-cache", "disk", "--out", str(tmp_path / "disk"))
    assert disk.returncode == 0, disk.stderr
    assert "GB in disk" in disk.stdout and not list((tmp_path / "disk").glob("feature-cache*"))
    full = run_cli("train", *common, "--freeze", "none", "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    assert "frozen" not in full.stdout
    before = read_checkpoint(trained_checkpoint)["state_dict"]["conv1.weight"]
    assert not torch.equal(before, read_checkpoint(tmp_path / "full" / "last.pt")["raw_state_dict"]["conv1.weight"])


@pytest.fixture()
def hub_with_resnet18(tmp_path, monkeypatch):
    """torch hub's cache holding a torchvision-format ResNet-18 state_dict under the official name."""
    hub = tmp_path / "torch-home"
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    (hub / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, hub / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1])
    return hub, state


def test_init_imagenet_uses_the_hub_cache_offline(hub_with_resnet18, tmp_path, cifar_dir, cache_dir):
    hub, state = hub_with_resnet18
    out = tmp_path / "imagenet"
    result = run_cli("train", "--model", "resnet18", "--init", "imagenet", "--img-size", "64", "--data", str(cifar_dir),
                     "--cache-dir", str(cache_dir), "--epochs", "1", "--limit-train", "128",
                     "--limit-val", "50", "--limit-test", "50",
                     "--batch-size", "32", "--out", str(out), env={"TORCH_HOME": str(hub)})
    assert result.returncode == 0, result.stderr
    payload = read_checkpoint(out / "last.pt")
    assert payload["model_kwargs"] == {"head": "dropout-linear", "stem": "imagenet"}
    assert payload["spec"]["input_size"] == 64 and tuple(payload["spec"]["mean"]) == IMAGENET_MEAN
    for key in ("conv1.weight", "layer3.1.bn2.running_var", "layer1.0.conv2.weight"):
        assert torch.equal(payload["raw_state_dict"][key], state[key]), key
    assert not torch.equal(payload["raw_state_dict"]["layer4.0.conv1.weight"], state["layer4.0.conv1.weight"])


def test_init_imagenet_offline_without_cache_names_file_and_folder(tmp_path, monkeypatch):
    from torchvision.models._api import WeightsEnum

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(WeightsEnum, "url", property(lambda self: "http://127.0.0.1:9/resnet18-f37072fd.pth"))
    with pytest.raises(EdgeclsError) as err:
        imagenet_weights("resnet18")
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    with pytest.raises(EdgeclsError, match="resnet18, resnet34"):
        imagenet_weights("resnet20")


def test_bad_init_gets_one_line_errors(tmp_path, trained_checkpoint, cifar_dir):
    missing = run_cli("train", "--init", str(tmp_path / "nope.pt"), "--data", str(cifar_dir))
    assert_one_line_error(missing, "no such file")
    wrong = run_cli("train", "--model", "resnet32", "--init", str(trained_checkpoint), "--data", str(cifar_dir),
                    "--limit-train", "64",
                    "--limit-val", "10", "--limit-test", "10", "--epochs", "1", "--out", str(tmp_path / "w"))
    assert_one_line_error(wrong, "does not fit this model")
    assert not (tmp_path / "w" / "last.pt").exists()


def test_finetuned_checkpoint_exports_and_runs_in_the_runtime(finetuned, tmp_path, cifar_dir, cache_dir):
    from edgecls.runtime import Classifier

    out = tmp_path / "export"
    result = run_cli("export", str(finetuned[0] / "best.pt"), "--format", "onnx", "--out", str(out),
                     "--data", str(cifar_dir), "--check-images", "64")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    row = manifest["files"][0]["parity"]
    assert row["passed"] is True
    assert_fp32_row(row[AGREEMENT], row["near_ties"], manifest["parity"]["images"], row[MAX_REL_DLOGIT])
    photo = sorted((cifar_dir / "test" / "cat").iterdir())[0]
    prediction = Classifier.load(out).predict(photo)
    assert prediction.label in read_checkpoint(finetuned[0] / "best.pt")["spec"]["classes"]
