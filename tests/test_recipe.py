"""The airbench model and each piece of its recipe, checked for what it does (no timings)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from edgecls.runtime import Classifier
from edgecls.shipped import reference_bundle, reference_checkpoint
from edgecls.spec import ModelSpec
from edgecls.trainer import read_checkpoint
from edgecls.trainer.config import TrainConfig
from edgecls.trainer.fit import build_parts, model_kwargs
from edgecls.trainer.init_weights import file_weights, load_backbone
from edgecls.trainer.lookahead import EVERY, MAX_DECAY, Lookahead, lookahead_decay
from edgecls.trainer.loop import tta_logits
from edgecls.trainer.models import build_model
from edgecls.trainer.models.airbench import WHITEN_EPS, AirbenchNet
from edgecls.trainer.optim import TRIANGLE, lr_factor, make_optimizer
from edgecls.trainer.policy import resolve_policy
from edgecls.trainer.recipes import DEFAULT_MODEL, RECIPES, recipe_config

from .conftest import CIFAR, assert_one_line_error, kill_and_resume, run_cli, train_on

AIRBENCH_RUN = ["--model", "airbench", "--batch-size", "256", "--limit-train", "4096",
"--limit-val", "500", "--limit-test", "500",
                "--device", "cpu", "--seed", "3", "--threads", "2", "--arch", "width=0.5"]


def real_images(n: int = 400) -> torch.Tensor:
    """Normalized NCHW float images decoded from the shared CIFAR-10 JPEGs."""
    files = sorted((CIFAR / "train").glob("*/*.jpg"))[:: 50000 // n][:n]
    x = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])).permute(0, 3, 1, 2)
    x = x.float() / 255
    return (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)


def test_whitening_layer_whitens_real_patches():
    images = real_images()
    model = AirbenchNet(10)
    model.init_from_data(images)
    out = model.whiten(images) - model.whiten.bias[None, :, None, None]
    half = out.shape[1] // 2
    cov = torch.cov(out[:, :half].permute(0, 2, 3, 1).reshape(-1, half).T.double())
    off_diagonal = cov - torch.diag(cov.diag())
    assert off_diagonal.abs().max() < 0.01, cov  # raw neighbouring pixels correlate at ~0.9
    raw = torch.nn.functional.unfold(images, 2).transpose(1, 2).reshape(-1, 12).T.double()
    assert torch.corrcoef(raw)[0, 1] > 0.8  # the test would fail on unwhitened patches
    # unit variance, except the faintest components, which WHITEN_EPS damps instead of amplifying noise
    eigenvalues = torch.linalg.eigvalsh(torch.cov(raw)).flip(0)
    assert torch.allclose(cov.diag(), eigenvalues / (eigenvalues + WHITEN_EPS), atol=1e-3), cov.diag()
    assert (cov.diag()[:6] > 0.99).all()
    assert torch.allclose(out[:, half:], -out[:, :half], atol=1e-5)
    assert not model.whiten.weight.requires_grad


def test_whitening_off_keeps_a_trainable_first_layer():
    model = AirbenchNet(10, whiten=False)
    before = model.whiten.weight.clone()
    model.init_from_data(real_images(50))
    assert torch.equal(model.whiten.weight, before) and model.whiten.weight.requires_grad


def test_dirac_init_passes_inputs_through():
    conv = AirbenchNet(10, dirac=True).layer2.conv2
    x = torch.randn(2, conv.in_channels, 8, 8)
    assert torch.allclose(conv(x)[:, :conv.in_channels], x, atol=1e-6)
    assert not torch.allclose(AirbenchNet(10, dirac=False).layer2.conv2(x)[:, :conv.in_channels], x, atol=1e-2)


def test_bn_settings_and_width():
    model = AirbenchNet(10, width=0.5, bn_momentum=0.3, bn_eps=1e-5)
    bn = model.layer1.norm1
    assert (bn.momentum, bn.eps, bn.num_features) == (0.3, 1e-5, 32)
    assert not bn.weight.requires_grad and bn.bias.requires_grad
    assert AirbenchNet(10, frozen_bn_scale=False).layer1.norm1.weight.requires_grad
    assert build_model("airbench", 10)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_build_parts_builds_the_configured_width():
    """What benchmarks time is the model `edgecls train --arch` trains (train_throughput once timed full width)."""
    spec = ModelSpec("airbench", tuple("abcdefghij"), (0.5,) * 3, (0.25,) * 3, 32)
    policy = resolve_policy("cpu", "fp32", channels_last=False)
    widths = {w: build_parts(recipe_config("airbench", arch={"width": w}), spec, policy, 10).model.layer2.conv1
              for w in (0.5, 1.0)}
    assert (widths[0.5].out_channels, widths[1.0].out_channels) == (128, 256)


def test_init_from_a_checkpoint_builds_its_width():
    """The shipped airbench.pt is full width; the recipe's narrower default must not apply to its weights."""
    init = file_weights(reference_checkpoint("airbench"))
    cfg = recipe_config(None, init="airbench.pt")
    assert cfg.arch["width"] != 1.0 and init.arch == {}
    model = build_model(cfg.model, 10, **model_kwargs(cfg, init))
    load_backbone(model, init)  # raises on any shape mismatch
    assert model.layer2.conv1.out_channels == 256


def test_triangle_schedule_shape():
    total = 1000
    f = [lr_factor(s, total, 0, "triangle") for s in range(total + 1)]
    start, peak_at, end = TRIANGLE
    peak = int(peak_at * total)
    assert f[0] == pytest.approx(start) and f[peak] == pytest.approx(1.0) and f[total] == pytest.approx(end)
    assert all(a < b for a, b in zip(f[:peak], f[1:peak + 1]))
    assert all(a > b for a, b in zip(f[peak:total], f[peak + 1:]))


def test_bias_lr_scale_gives_bn_and_biases_their_own_lr():
    model = AirbenchNet(10)
    opt = make_optimizer(model, "sgd", 1.5, 0.85, 1e-3, bias_lr_scale=64)
    weights, biases = opt.param_groups
    assert weights["lr"] == 1.5 and biases["lr"] == 96.0 and biases["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in biases["params"]) and all(p.ndim > 1 for p in weights["params"])
    assert model.whiten.bias in [p for p in biases["params"]]


def test_lookahead_pulls_weights_as_specified():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    total = 100
    la = Lookahead(model, total)
    slow = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
    moved = model[0].weight.clone()
    la.after_step(model, EVERY - 1)  # not a pull step: nothing changes
    assert torch.equal(model[0].weight, moved)
    la.after_step(model, 50)
    d = lookahead_decay(50, total)
    assert d == pytest.approx(MAX_DECAY * 0.125)
    expected = slow["0.weight"] * d + moved * (1 - d)
    assert torch.allclose(model[0].weight, expected) and torch.allclose(la.slow["0.weight"], expected)
    assert "1.num_batches_tracked" not in la.slow and "1.running_mean" in la.slow
    with torch.no_grad():
        model[0].weight.add_(1.0)
    la.after_step(model, total)  # last step: the average is handed over
    assert torch.equal(model[0].weight, la.slow["0.weight"]) and torch.allclose(model[0].weight, expected)


def test_flip_translate_tta_averages_six_views():
    model = AirbenchNet(10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        def m(v):
            return (model(v) + model(v.flip(3))) / 2
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        expected = m(x) / 2 + (m(padded[:, :, :32, :32]) + m(padded[:, :, 2:, 2:])) / 4
        assert torch.allclose(tta_logits(model, x, "flip-translate"), expected, atol=1e-5)
        assert torch.allclose(tta_logits(model, x, "flip"), m(x), atol=1e-6)


def test_recipe_fills_only_what_the_user_left_out():
    cfg = recipe_config(None, epochs=3, crop_padding=None, flip="random", lr=None)
    assert cfg.model == DEFAULT_MODEL == "airbench"
    recipe = RECIPES["airbench"]
    assert (cfg.epochs, cfg.lr, cfg.batch_size) == (3, recipe["lr"], recipe["batch_size"])
    assert cfg.augment.crop_padding == recipe["augment"].crop_padding and cfg.augment.flip == "random"
    assert cfg.arch == {"width": 0.75}
    assert recipe_config(None, arch={"whiten": False}).arch == {"width": 0.75, "whiten": False}
    assert recipe_config(None, arch={"width": 1.0}).arch == {"width": 1.0}
    classic = recipe_config("resnet20").validate()
    assert classic.to_dict() == TrainConfig(model="resnet20").validate().to_dict()
    assert TrainConfig.from_dict({**classic.to_dict(), "tta": True}).tta == "flip"  # old checkpoints


@pytest.mark.parametrize("arch,fragment", [("width", "key=value"), ("=2", "key=value")])
def test_bad_arch_is_one_line(tmp_path, tiny_folder, arch, fragment):
    result = run_cli("train", "--data", str(tiny_folder), "--out", str(tmp_path / "o"), "--arch", arch)
    assert_one_line_error(result, fragment)


@pytest.fixture(scope="module")
def airbench_run(tmp_path_factory, cifar_dir, cache_dir):
    out = tmp_path_factory.mktemp("airbench") / "r"
    train_on(out, cifar_dir, cache_dir, "--epochs", "3", *AIRBENCH_RUN)
    return out


def test_short_airbench_run_learns(airbench_run):
    metrics = json.loads((airbench_run / "metrics.json").read_text())
    assert metrics["model"] == "airbench" and metrics["tta"] == "flip-translate"
    losses = [row["train_loss"] for row in metrics["epochs"]]
    assert losses[-1] < losses[0]
    assert metrics["test_acc"] > 0.35, metrics  # chance is 0.10
    payload = read_checkpoint(airbench_run / "best.pt")
    assert payload["model_kwargs"]["width"] == 0.5


def test_airbench_resumes_bit_identically(airbench_run, tmp_path, cifar_dir, cache_dir):
    """Killed after epoch 1 of 3, then resumed: the same weights, lookahead average and history."""
    a, b = kill_and_resume(["--data", str(cifar_dir), "--cache-dir", str(cache_dir), *AIRBENCH_RUN],
                           tmp_path / "killed", airbench_run, 3)
    for key in ("raw_state_dict", "lookahead"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), (key, name)


def test_airbench_exports_with_parity(airbench_run, tmp_path, cifar_dir, cache_dir):
    """Every format, FP32 and INT8, through the exporter's parity gate, then re-proved by `verify`."""
    out = tmp_path / "export"
    result = run_cli("export", str(airbench_run / "best.pt"), "--format", "torchscript,onnx,openvino", "--int8",
                     "--out", str(out),
                     "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--calib-size", "64",
                     "--check-images", "200")
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["model"] == "airbench"
    built = {p.name for p in out.iterdir()}
    assert {"airbench.onnx", "airbench-int8.onnx", "airbench.xml", "airbench-int8.xml"} <= built
    verify = run_cli("verify", str(out))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_shipped_airbench_is_found_by_name_verifies_and_classifies(cifar_dir, tmp_path):
    """`airbench` names the shipped bundle wherever a command takes a model, unless such a path exists."""
    verify = run_cli("verify", "airbench")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "PASS: airbench" in verify.stdout
    images = [str(sorted((cifar_dir / "test" / c).iterdir())[0]) for c in ("ship", "truck", "frog")]
    infer = run_cli("infer", *images, "--model", "airbench", "--json")
    assert infer.returncode == 0, infer.stderr
    rows = [json.loads(line) for line in infer.stdout.splitlines()]
    clf = Classifier.load(reference_bundle("airbench"))
    expected = clf.predict(images, top_k=3)
    assert [r["path"] for r in rows] == images
    assert [(r["label"], r["index"]) for r in rows] == [(p.label, p.index) for p in expected]
    assert [[label for label, _ in r["top_k"]] for r in rows] == [[label for label, _ in p.top_k] for p in expected]
    assert [r["prob"] for r in rows] == pytest.approx([p.prob for p in expected], abs=1e-5)
    assert clf.choice.path.name == "airbench-int8.onnx"
    assert f"via {clf.choice.engine}: {clf.choice.path})" in infer.stderr
    (tmp_path / "airbench").mkdir()  # a real folder of that name wins, and is not an export
    shadowed = run_cli("verify", "airbench", cwd=tmp_path)
    assert shadowed.returncode != 0 and "airbench" in shadowed.stderr
