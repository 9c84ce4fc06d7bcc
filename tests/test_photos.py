"""Your own photos: a folder of class folders at photo sizes, from `edgecls train` to `infer` and `eval`."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from edgecls.spec import ModelSpec
from edgecls.splits import SPLIT_FILE, read_split
from edgecls.trainer.augment import random_resized_crop
from edgecls.trainer.data import load_data
from edgecls.trainer.data.profile import PHOTO_MIN_SIDE, profile_data
from edgecls.trainer.recipes import PHOTO_BATCH, PHOTO_IMG_SIZE, recipe_config

from .conftest import CIFAR, CLASSES, run_cli

SIZES = [(120, 90), (90, 120), (160, 90), (100, 100), (75, 200), (300, 224)]  # landscape, portrait, square, tall
PER_CLASS = 24
PHOTO_CLASSES = CLASSES[:3]


def make_photos(dst, per_class=PER_CLASS, first=0, classes=PHOTO_CLASSES):
    """Photo-sized JPEGs and PNGs of several aspect ratios, enlarged from real CIFAR-10 images."""
    for name in classes:
        (dst / name).mkdir(parents=True, exist_ok=True)
        for i, src in enumerate(sorted((CIFAR / "train" / name).iterdir())[first:first + per_class]):
            size = SIZES[i % len(SIZES)]
            img = Image.open(src).convert("RGB").resize(size, Image.Resampling.BICUBIC)
            img.save(dst / name / f"{src.stem}.{'png' if i % 5 == 4 else 'jpg'}", quality=90)
    return dst


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photos(tmp_path_factory.mktemp("photos") / "pets")


def test_training_and_the_runtime_see_the_same_pixels(photos, tmp_path):
    """Shorter side, center crop, draft-scale JPEG decode: the trainer's cache holds, pixel for pixel, what
    `infer` and `serve` feed the model, for every aspect ratio."""
    from edgecls.runtime.preprocess import load_rgb, resize_for_model

    for size in (32, 64):
        splits = load_data(str(photos), size, cache_dir=tmp_path / "cache")
        spec = ModelSpec(model="m", classes=PHOTO_CLASSES, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=size)
        for name in ("train", "val", "test"):
            part = getattr(splits, name)
            for pixels, path in zip(part.images, part.files):
                assert np.array_equal(pixels, resize_for_model(load_rgb(str(path), size), spec)), (size, path)
    shapes = {Image.open(p).size for p in photos.rglob("*.*")}
    assert len(shapes) == len(SIZES)


def test_photos_get_photo_settings_and_thumbnails_keep_theirs(photos, cifar_dir):
    profile = profile_data(str(photos))
    assert profile.kind == "photo" and profile.median_shorter_side >= PHOTO_MIN_SIDE
    cfg = recipe_config("airbench", profile, data=str(photos))
    assert (cfg.img_size, cfg.batch_size, cfg.augment.crop) == (PHOTO_IMG_SIZE, PHOTO_BATCH, "resized")
    thumbnails = recipe_config("airbench", profile_data(str(cifar_dir)), data=str(cifar_dir))
    assert thumbnails.img_size is None and thumbnails.augment.crop == "pad"
    given = recipe_config("airbench", profile, data=str(photos), img_size=48, batch_size=16, crop="pad")
    assert (given.img_size, given.batch_size, given.augment.crop) == (48, 16, "pad")


def test_random_resized_crops_are_seeded_and_keep_flat_images_flat():
    x = torch.randint(0, 256, (16, 48, 48, 3), dtype=torch.uint8)
    a = random_resized_crop(x, (0.35, 1.0), torch.Generator().manual_seed(0))
    b = random_resized_crop(x, (0.35, 1.0), torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, x)
    flat = torch.full((4, 48, 48, 3), 77, dtype=torch.uint8)
    assert torch.equal(random_resized_crop(flat, (0.35, 1.0), torch.Generator().manual_seed(1)), flat)


def test_a_photo_folder_trains_exports_verifies_and_answers_in_its_class_names(photos, tmp_path):
    """The run splits the folder itself, writes the split, and export, verify, infer and eval follow it."""
    junk = photos.parent / "with-junk"
    shutil.copytree(photos, junk)
    (junk / PHOTO_CLASSES[0] / "empty.jpg").write_bytes(b"")
    (junk / PHOTO_CLASSES[1] / "notes.txt").write_text("shot list")
    run = tmp_path / "run"
    trained = run_cli("train", "--data", str(junk), "--model", "simplecnn", "--epochs", "2", "--img-size", "32",
                      "--out", str(run), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu")
    assert trained.returncode == 0, trained.stderr
    assert "skipped 2 file(s)" in trained.stdout and "empty.jpg (empty file (0 bytes))" in trained.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["crop"] == "resized" and {"val_acc", "test_acc"} <= metrics.keys()
    assert metrics["split"]["layout"] == "drawn" and metrics["split"]["skipped"] == 2
    record = read_split(run / SPLIT_FILE)
    assert record.counts()["test"] == len(PHOTO_CLASSES) * round(PER_CLASS * 0.1)

    bundle = tmp_path / "bundle"
    exported = run_cli("export", str(run / "best.pt"), "--format", "onnx", "--int8", "--out", str(bundle),
                       "--cache-dir", str(tmp_path / "cache"))
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["golden"]["images"] == record.counts()["test"]  # the golden images come from the run's test split
    assert read_split(bundle / SPLIT_FILE) == record
    verified = run_cli("verify", str(bundle))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    new_photo = make_photos(tmp_path / "new", per_class=1, first=PER_CLASS, classes=PHOTO_CLASSES[:1])
    answered = run_cli("infer", str(next(new_photo.rglob("*.jpg"))), "--model", str(bundle), "--json")
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout.splitlines()[0])["label"] in PHOTO_CLASSES

    scored = run_cli("eval", str(bundle), "--data", str(junk), "--json")
    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert report["n"] == record.counts()["test"] and "test split the run drew" in report["split"]
    assert report["failed"] == 1 and "notes.txt: not an image file" in report["failures"][0]


def test_whitening_ignores_colour_directions_grayscale_photos_do_not_have():
    """Grayscale photos leave 8 of a 2×2 RGB patch's 12 directions without variance: their airbench filter
    slots repeat directions that have signal (no amplified cancellation for FP16 to break, no dead channel
    for BatchNorm), so every filter answers a grayscale image with unit variance; colour keeps its own 12."""
    from edgecls.trainer.models.airbench import whitening_filters

    gray = torch.rand(64, 1, 16, 16).expand(64, 3, 16, 16)
    filters = whitening_filters(gray, 2)
    response = torch.nn.functional.conv2d(gray - gray.mean((0, 2, 3), keepdim=True), filters)
    assert torch.allclose(response.std((0, 2, 3)), torch.ones(12), atol=0.05)
    assert len({tuple(f.flatten().tolist()) for f in filters}) == 4
    colour = whitening_filters(torch.rand(64, 3, 16, 16), 2)
    assert len({tuple(f.flatten().tolist()) for f in colour}) == 12
