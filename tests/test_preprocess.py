"""The runtime's numpy/Pillow preprocessing equals torchvision's evaluation transform."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from edgecls.runtime.preprocess import load_rgb, normalize, resize_for_model
from edgecls.spec import ModelSpec

from .conftest import torchvision_transform

SPEC = ModelSpec("resnet20", tuple("abcdefghij"), (0.4914, 0.4822, 0.4465), (0.247, 0.2435, 0.2616), 32)


def torchvision_tensor(img: Image.Image, spec: ModelSpec) -> np.ndarray:
    return torchvision_transform(spec.input_size, spec.mean, spec.std)(img).numpy()


def runtime_tensor(img: Image.Image, spec: ModelSpec) -> np.ndarray:
    return normalize(resize_for_model(load_rgb(img, spec.input_size), spec)[None], spec)[0]


def test_real_test_images_match_torchvision_exactly(cifar_dir):
    paths = [p for c in sorted((cifar_dir / "test").iterdir()) for p in sorted(c.iterdir())[:10]]
    for path in paths:
        img = Image.open(path).convert("RGB")
        ours, theirs = runtime_tensor(img, SPEC), torchvision_tensor(img, SPEC)
        assert ours.dtype == np.float32 and ours.shape == (3, 32, 32)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(4032, 3024), (3024, 4032), (1280, 720), (33, 100)])
def test_large_photos_match_torchvision(size, cifar_dir):
    base = Image.open(sorted((cifar_dir / "test" / "horse").iterdir())[3]).convert("RGB")
    rng = np.random.default_rng(0)
    big = np.asarray(base.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    img = Image.fromarray(np.clip(big + rng.integers(-10, 10, big.shape), 0, 255).astype(np.uint8))
    for spec in (SPEC, ModelSpec("resnet18", SPEC.classes, SPEC.mean, SPEC.std, 96)):
        np.testing.assert_allclose(runtime_tensor(img, spec), torchvision_tensor(img, spec), rtol=0, atol=1e-6)


def test_reduced_scale_jpeg_decoding_changes_almost_nothing(tmp_path, cifar_dir):
    """Image.draft decodes a 12 MP JPEG at 1/8 scale; the result stays within a few grey levels."""
    base = Image.open(sorted((cifar_dir / "test" / "ship").iterdir())[0]).convert("RGB")
    path = tmp_path / "big.jpg"
    base.resize((4000, 3000), Image.Resampling.BICUBIC).save(path, quality=90)
    drafted = resize_for_model(load_rgb(path, 32), SPEC)
    full = resize_for_model(Image.open(path).convert("RGB"), SPEC)
    diff = np.abs(drafted.astype(int) - full.astype(int))
    assert diff.max() <= 6 and diff.mean() < 1.0
    with Image.open(path) as probe:
        probe.draft("RGB", (32 * 4, 32 * 4))
        assert probe.size[0] < 4000  # draft really reduced the decode


def test_uint8_arrays_and_pil_images_are_accepted():
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    a = runtime_tensor(Image.fromarray(arr), SPEC)
    b = normalize(resize_for_model(load_rgb(arr, 32), SPEC)[None], SPEC)[0]
    assert np.array_equal(a, b)
    gray = load_rgb(arr[:, :, 0], 32)
    assert gray.mode == "RGB"


def test_normalize_matches_torch_arithmetic():
    rng = np.random.default_rng(2)
    batch = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255.0)
    expected = ((x - torch.tensor(SPEC.mean)[:, None, None]) / torch.tensor(SPEC.std)[:, None, None]).numpy()
    np.testing.assert_allclose(normalize(batch, SPEC), expected, rtol=0, atol=1e-6)


def test_images_with_odd_modes_and_files(tmp_path):
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    cases = {
        "cmyk.jpg": rgb.convert("CMYK"),
        "palette.png": rgb.convert("P"),
        "gray16.png": Image.fromarray(rng.integers(0, 65535, (20, 30), dtype=np.uint16)),
        "la.png": rgb.convert("LA"),
    }
    for name, img in cases.items():
        img.save(tmp_path / name)
        assert load_rgb(tmp_path / name, 32).mode == "RGB", name
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    first = np.asarray(load_rgb(tmp_path / "anim.gif", 32))
    assert first[..., 0].mean() > 200 and first[..., 2].mean() < 50
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    assert load_rgb(Image.open(buf), 32).size == (30, 20)
