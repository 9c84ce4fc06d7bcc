"""Image-folder loading, the decoded cache and its invalidation, and bad-data errors."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from edgecls.errors import EdgeclsError
from edgecls.trainer.data import folder, load_data

from .conftest import CLASSES, copy_subset


@pytest.fixture()
def small(tmp_path):
    return copy_subset(tmp_path / "data", 6, 3, CLASSES[:3])


def test_loads_real_images_with_classes_from_folders(small, tmp_path):
    splits = load_data(str(small), 32, cache_dir=tmp_path / "cache")
    assert splits.classes == CLASSES[:3]
    assert splits.train.images.shape == (18, 32, 32, 3) and splits.train.images.dtype == np.uint8
    assert splits.test.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    first = np.asarray(Image.open(sorted((small / "train" / "airplane").iterdir())[0]).convert("RGB"))
    assert np.array_equal(splits.train.images[0], first)


def test_second_load_comes_from_cache_without_decoding(small, tmp_path, monkeypatch):
    load_data(str(small), 32, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(folder, "decode_files", no_decoding)
    again = load_data(str(small), 32, cache_dir=tmp_path / "cache")
    assert again.train.images.shape == (18, 32, 32, 3)


@pytest.mark.parametrize("change", ["add", "remove", "rewrite"])
def test_cache_is_invalidated_when_the_folder_changes(small, tmp_path, change):
    cache = tmp_path / "cache"
    before = load_data(str(small), 32, cache_dir=cache)
    cat_dir = small / "train" / "bird"
    victim = sorted(cat_dir.iterdir())[0]
    if change == "add":
        shutil.copy2(victim, cat_dir / "extra.jpg")
    elif change == "remove":
        victim.unlink()
    else:
        Image.new("RGB", (32, 32), (255, 0, 0)).save(victim)
        os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    after = load_data(str(small), 32, cache_dir=cache)
    expected = {"add": 19, "remove": 17, "rewrite": 18}[change]
    assert len(after.train) == expected
    if change == "rewrite":
        assert not np.array_equal(before.train.images, after.train.images)


def test_any_size_and_mode_is_resized_to_the_model_input(tmp_path):
    root = tmp_path / "mixed"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name, (w, h), mode in (("a", (64, 48), "RGB"), ("b", (20, 50), "L"), ("c", (40, 40), "RGBA")):
            (root / split / name).mkdir(parents=True)
            arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            Image.fromarray(arr).convert(mode).save(root / split / name / "x.png")
    splits = load_data(str(root), 32, cache_dir=tmp_path / "cache")
    assert splits.train.images.shape == (3, 32, 32, 3)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(EdgeclsError, match="does not exist"):
        load_data(str(tmp_path / "nope"), 32, cache_dir=tmp_path)


def test_missing_split_is_a_clear_error(small, tmp_path):
    shutil.rmtree(small / "test")
    with pytest.raises(EdgeclsError, match="missing folder .*test"):
        load_data(str(small), 32, cache_dir=tmp_path / "cache")


def test_empty_class_folder_is_a_clear_error(small, tmp_path):
    for f in (small / "test" / "bird").iterdir():
        f.unlink()
    with pytest.raises(EdgeclsError, match="has no images"):
        load_data(str(small), 32, cache_dir=tmp_path / "cache")


def test_mismatched_classes_are_a_clear_error(small, tmp_path):
    shutil.copytree(small / "test" / "bird", small / "test" / "zebra")
    with pytest.raises(EdgeclsError, match=r"only in test: \['zebra'\]"):
        load_data(str(small), 32, cache_dir=tmp_path / "cache")


def test_corrupt_image_is_named_in_the_error(small, tmp_path):
    bad = small / "train" / "bird" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(EdgeclsError, match="broken.jpg"):
        load_data(str(small), 32, cache_dir=tmp_path / "cache")


def test_subset_is_seeded_and_sorted(small, tmp_path):
    """The seed alone picks the images (not numpy's global state), another seed picks others, and the
    picked images keep their original order with their own labels, pixels and files."""
    full = load_data(str(small), 32, cache_dir=tmp_path / "cache").train

    def picked(seed: int, global_state: int) -> list[int]:
        np.random.seed(global_state)  # a subset drawn from the global generator would follow this
        part = full.subset(7, seed=seed)
        index = [full.files.index(f) for f in part.files]
        assert np.array_equal(part.images, full.images[index]) and np.array_equal(part.labels, full.labels[index])
        return index

    a = picked(3, global_state=0)
    assert len(set(a)) == 7 and a == sorted(a)
    assert picked(3, global_state=1) == a
    assert picked(4, global_state=0) != a
    assert a != list(range(7))  # not simply the first images
    assert full.subset(None, 0) is full and full.subset(len(full), 0) is full


def test_scoring_a_model_on_other_classes_is_refused(small, tmp_path):
    splits = load_data(str(small), 32, cache_dir=tmp_path / "cache", need_train=False)
    assert splits.train is None
    splits.require_classes(CLASSES[:3])
    with pytest.raises(EdgeclsError, match="differ from the model's"):
        splits.require_classes(CLASSES[1:4])
