import pytest
import torch
from torchvision import models as tvm

from edgecls.errors import EdgeclsError
from edgecls.trainer.models import build_model, model_names
from edgecls.trainer.models.summary import count_flops, count_params

EXPECTED = {"airbench", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18", "resnet34",
            "simplecnn", "vgg16"}


def test_registry_has_every_model():
    assert EXPECTED <= set(model_names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_builds_and_outputs_logits(name):
    model = build_model(name, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name,params_m", [("resnet20", 0.27), ("resnet32", 0.46), ("resnet44", 0.66),
                                           ("resnet56", 0.85), ("resnet110", 1.7)])
def test_cifar_resnet_sizes_match_the_paper(name, params_m):
    """He et al. 2016, Table 6 (option A shortcuts have no parameters)."""
    assert count_params(build_model(name, 10)) / 1e6 == pytest.approx(params_m, rel=0.03)  # paper rounds


def test_resnet20_flops():
    # 40.6M multiply-adds per 32×32 image.
    assert count_flops(build_model("resnet20", 10), 32) == pytest.approx(2 * 40.6e6, rel=0.01)


@pytest.mark.parametrize("name,factory", [("resnet18", tvm.resnet18), ("resnet34", tvm.resnet34)])
def test_torchvision_resnet_keeps_torchvision_state_dict_format(name, factory):
    ours = build_model(name, 10)
    theirs = factory(weights=None, num_classes=10).state_dict()
    assert ours.state_dict().keys() == theirs.keys()
    mismatched = [k for k, v in ours.state_dict().items() if v.shape != theirs[k].shape]
    assert mismatched == ["conv1.weight"]  # 3×3 CIFAR stem instead of 7×7
    theirs.pop("conv1.weight")
    result = ours.load_state_dict(theirs, strict=False)
    assert result.missing_keys == ["conv1.weight"] and not result.unexpected_keys
    assert isinstance(ours.maxpool, torch.nn.Identity)


def test_imagenet_stem_is_available_for_fine_tuning():
    """With the ImageNet stem every tensor of torchvision's ResNet-18 loads as is; only the 1000-class head does not."""
    model = build_model("resnet18", 10, stem="imagenet")
    assert model.conv1.kernel_size == (7, 7) and isinstance(model.maxpool, torch.nn.MaxPool2d)
    backbone = {k: v for k, v in tvm.resnet18(weights=None).state_dict().items() if not k.startswith("fc.")}
    result = model.load_state_dict(backbone, strict=False)
    assert result.missing_keys == ["fc.weight", "fc.bias"] and result.unexpected_keys == []
    loaded = model.state_dict()
    for key, value in backbone.items():
        assert torch.equal(loaded[key], value), key


def test_unknown_model_is_a_clear_error():
    with pytest.raises(EdgeclsError, match="unknown model 'resnet7'"):
        build_model("resnet7", 10)
