"""The mobile networks (issue 35): their CIFAR variant, their listing, and FP32 parity of a briefly trained one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from edgecls.errors import EdgeclsError
from edgecls.tolerance import AGREEMENT, MAX_REL_DLOGIT
from edgecls.trainer.freeze import parse_freeze
from edgecls.trainer.models import build_model
from edgecls.trainer.models.mobile import strided_convs
from edgecls.trainer.models.summary import count_params

from .conftest import assert_fp32_row, run_cli, train_briefly

# The libraries' published ImageNet parameter counts (1000 classes); at 10 classes the head has 990 rows fewer.
IMAGENET_PARAMS_M = {"mobilenetv2": 3.50, "mobilenetv3small": 2.54, "efficientnetlite0": 4.65,
                     "mobilenetv4convsmall": 3.77}
HEAD_FEATURES = {"mobilenetv2": 1280, "mobilenetv3small": 1024, "efficientnetlite0": 1280, "mobilenetv4convsmall": 1280}
NAMES = tuple(IMAGENET_PARAMS_M)
FP32 = ("onnx", "openvino")
INT8 = ("onnx-int8", "openvino-int8")


def conv_outputs(model: nn.Module, size: int) -> list[tuple[nn.Conv2d, int]]:
    """Each convolution as it runs on a ``size``×``size`` image, in forward order, with its output's side."""
    ran = []
    hooks = [m.register_forward_hook(lambda mod, _, out: ran.append((mod, out.shape[-1])))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return ran


@pytest.mark.parametrize("name", NAMES)
def test_cifar_variant_ends_at_4x4_and_imagenet_variant_is_the_library_network(name):
    cifar, imagenet = build_model(name, 7), build_model(name, 7, stem="imagenet")
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    sides = {side for _, side in conv_outputs(cifar, 32)}
    assert max(sides) == 32 and min(s for s in sides if s > 1) == 4, sides  # 1×1: squeeze-excite, head on the pool
    # The helper picks strided convolutions in module order; the first two of them must be the first two to run.
    ran = [conv for conv, _ in conv_outputs(imagenet, 32) if conv.stride != (1, 1)]
    assert ran[:2] == strided_convs(imagenet)[:2]
    assert len(strided_convs(imagenet)) == 5 and len(strided_convs(cifar)) == 3  # total stride 32 → 8
    assert cifar.state_dict().keys() == imagenet.state_dict().keys()


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_is_the_librarys(name):
    published = IMAGENET_PARAMS_M[name] * 1e6 - 990 * (HEAD_FEATURES[name] + 1)
    assert count_params(build_model(name, 10)) == pytest.approx(published, rel=0.01)


def test_models_lists_them_with_flops_at_32px():
    result = run_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    # Stride 8 at 32 px keeps ~0.29 of the ImageNet network's 224-px multiply-adds (published: 300, 56, 400,
    # 200 M), not the ~0.02 a stride-32 network would.
    published_mmacs = {"mobilenetv2": 300, "mobilenetv3small": 56, "efficientnetlite0": 400,
                       "mobilenetv4convsmall": 200}
    for name in NAMES:
        row = rows[name]
        assert row["input_size"] == 32 and row["params"] == count_params(build_model(name, 10))
        assert 0.2 < row["flops"] / 2 / 1e6 / published_mmacs[name] < 0.4, (name, row["flops"])


@pytest.mark.parametrize("name", NAMES)
def test_fine_tuning_switches_that_need_a_resnet_say_so(name):
    with pytest.raises(EdgeclsError, match="needs a model with an fc layer"):
        build_model(name, 10, head="dropout-linear")
    with pytest.raises(EdgeclsError, match="cannot be split into stages"):
        parse_freeze("stem", build_model(name, 10), has_init=True)


@pytest.fixture(scope="session", params=NAMES)
def mobile_export(request, tmp_path_factory, cifar_dir, cache_dir) -> tuple[str, Path]:
    """Each network trained one epoch on 512 images through the CLI (enough to move weights and BN statistics off
    their initial values; parity does not need accuracy), then exported to ONNX and OpenVINO, FP32 and INT8:
    once per network for the whole run. ``--max-drop 100``: the INT8 files of a model this far from trained
    are parity subjects, not accuracy ones, so the INT8 ladder keeps its first step (tests/test_int8_ladder.py
    climbs it)."""
    folder = tmp_path_factory.mktemp(f"mobile-{request.param}")
    checkpoint = train_briefly(folder, cifar_dir, cache_dir, request.param, epochs=1, warmup=0.5,
                               limit_train=512)
    out = folder / "export"
    result = run_cli("export", str(checkpoint), "--format", ",".join(FP32), "--int8", "--out", str(out),
                     "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--calib-size", "64",
                     "--check-images", "200", "--max-drop", "100")
    assert result.returncode == 0, result.stdout + result.stderr
    return request.param, out


def test_fp32_matches_pytorch_per_image_and_int8_is_measured(mobile_export):
    name, out = mobile_export
    parity = json.loads((out / "manifest.json").read_text())["parity"]
    assert parity["passed"] and parity["images"] == 200
    for fmt in FP32:
        r = parity["results"][fmt]
        assert r["passed"] and r["failures"] == [], (name, fmt, r)
        assert_fp32_row(r[AGREEMENT], r["near_ties"], parity["images"], r[MAX_REL_DLOGIT], f"{name} {fmt}")
    for fmt in INT8:  # reported, never gating: the bundle's INT8 rule
        r = parity["results"][fmt]
        assert r["passed"] is None and r["gating"] is False and 0 <= r[AGREEMENT] <= 1, (name, fmt, r)


def test_verify_passes_the_fresh_bundle(mobile_export):
    name, out = mobile_export
    result = run_cli("verify", str(out), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    rows = {r["format"]: r for r in report["rows"]}
    for fmt in (*FP32, *INT8, "end-to-end"):
        assert rows[fmt]["passed"] is True, (name, rows[fmt])
