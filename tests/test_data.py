"""Image-folder loading: the decoded cache and its invalidation, the run's splits, junk files, bad-data errors."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from edgecls.errors import EdgeclsError
from edgecls.splits import SPLITS
from edgecls.trainer.data import SplitPlan, folder, load_data

from .conftest import CIFAR, CLASSES, copy_subset


@pytest.fixture()
def small(tmp_path):
    return copy_subset(tmp_path / "data", 6, 3, CLASSES[:3])


def drawn_folder(dst, per_class: int, classes=CLASSES[:3]):
    """One folder of class folders (no split), from the first images of each class."""
    for name in classes:
        (dst / name).mkdir(parents=True)
        for f in sorted((CIFAR / "train" / name).iterdir())[:per_class]:
            shutil.copy2(f, dst / name / f.name)
    return dst


def add_junk(root):
    """The junk real photo folders hold: a zero-byte download, a truncated JPEG, text named .jpg, OS droppings."""
    first = sorted((root / CLASSES[0]).iterdir())[0]
    (root / CLASSES[0] / "zero.jpg").write_bytes(b"")
    (root / CLASSES[1] / "cut.jpg").write_bytes(first.read_bytes()[:200])
    (root / CLASSES[2] / "notes.jpg").write_text("not a photo")
    (root / CLASSES[1] / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / CLASSES[2] / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    return {f"{CLASSES[0]}/zero.jpg", f"{CLASSES[1]}/cut.jpg", f"{CLASSES[2]}/notes.jpg",
            f"{CLASSES[1]}/.DS_Store", f"{CLASSES[2]}/Thumbs.db"}


def test_loads_real_images_with_classes_from_folders(small, tmp_path):
    splits = load_data(str(small), 32, cache_dir=tmp_path / "cache")
    assert splits.classes == CLASSES[:3]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 3, 9)  # one of each class's 6 held out
    assert splits.train.images.dtype == np.uint8 and splits.train.images.shape[1:] == (32, 32, 3)
    assert splits.test.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    first = np.asarray(Image.open(splits.train.files[0]).convert("RGB"))
    assert np.array_equal(splits.train.images[0], first)
    assert splits.record.layout == "val-held-out" and splits.record.counts() == {"train": 15, "val": 3, "test": 9}


def test_second_load_comes_from_cache_without_decoding(small, tmp_path, monkeypatch):
    first = load_data(str(small), 32, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob(f"*/{folder.IMAGES_FILE}"))) == 2  # train/ and test/

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(folder, "_decode_into", no_decoding)
    again = load_data(str(small), 32, cache_dir=tmp_path / "cache")
    assert again.train.keys == first.train.keys and np.array_equal(again.train.images, first.train.images)


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
    assert len(after.train) + len(after.val) == expected
    if change == "rewrite":
        key = str(victim.relative_to(small))
        assert before.record.digests("train").get(key) != after.record.digests("train").get(key) or \
            before.record.digests("val").get(key) != after.record.digests("val").get(key)


def test_any_size_and_mode_is_resized_to_the_model_input(tmp_path):
    root = tmp_path / "mixed"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name, (w, h), mode in (("a", (64, 48), "RGB"), ("b", (20, 50), "L"), ("c", (40, 40), "RGBA")):
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
                Image.fromarray(arr).convert(mode).save(root / split / name / f"x{i}.png")
    splits = load_data(str(root), 32, cache_dir=tmp_path / "cache")
    assert splits.train.images.shape == (3, 32, 32, 3) and len(splits.val) == 3


def test_a_folder_with_no_split_is_split_stratified_and_disjoint(tmp_path):
    root = drawn_folder(tmp_path / "photos", 40)
    splits = load_data(str(root), 32, cache_dir=tmp_path / "cache", plan=SplitPlan(0.1, 0.2, seed=3))
    assert splits.record.layout == "drawn"
    for name, per_class in (("train", 28), ("val", 4), ("test", 8)):
        assert np.bincount(getattr(splits, name).labels).tolist() == [per_class] * 3, name
    keys = [set(getattr(splits, name).keys) for name in SPLITS]
    assert sum(len(k) for k in keys) == 120 and len(set().union(*keys)) == 120  # no image in two splits
    again = load_data(str(root), 32, cache_dir=tmp_path / "cache", plan=SplitPlan(0.1, 0.2, seed=3))
    other = load_data(str(root), 32, cache_dir=tmp_path / "cache", plan=SplitPlan(0.1, 0.2, seed=4))
    assert again.test.keys == splits.test.keys and other.test.keys != splits.test.keys


def test_junk_files_are_skipped_counted_and_change_nothing_else(tmp_path):
    """A folder with junk gives the very splits, in the very order, of the same folder without it."""
    clean = drawn_folder(tmp_path / "clean", 20)
    junky = drawn_folder(tmp_path / "junky", 20)
    junk = add_junk(junky)
    a = load_data(str(clean), 32, cache_dir=tmp_path / "cache")
    b = load_data(str(junky), 32, cache_dir=tmp_path / "cache")
    assert b.info["skipped"] == len(junk) and {key for key, _ in b.record.skipped} == junk
    assert a.info["skipped"] == 0
    reasons = dict(b.record.skipped)
    assert reasons[f"{CLASSES[0]}/zero.jpg"] == "empty file (0 bytes)"
    assert reasons[f"{CLASSES[2]}/notes.jpg"] == "not an image Pillow can read"
    assert reasons[f"{CLASSES[2]}/Thumbs.db"] == "not an image file"
    for name in SPLITS:
        assert getattr(a, name).keys == getattr(b, name).keys
        assert np.array_equal(getattr(a, name).images, getattr(b, name).images)


def test_a_class_with_no_readable_image_stops_before_training(small, tmp_path):
    for f in (small / "train" / "bird").iterdir():
        f.write_bytes(b"")
    with pytest.raises(EdgeclsError, match="no readable image .*bird"):
        load_data(str(small), 32, cache_dir=tmp_path / "cache")


def test_a_recorded_split_is_followed_and_checked(tmp_path):
    """Export, eval and a resumed run take the record's members; a changed or missing file is one clear error."""
    root = drawn_folder(tmp_path / "photos", 20)
    made = load_data(str(root), 32, cache_dir=tmp_path / "cache")
    shutil.copy2(sorted((CIFAR / "train" / CLASSES[0]).iterdir())[30], root / CLASSES[0] / "new.jpg")
    followed = load_data(str(root), 32, cache_dir=tmp_path / "cache", plan=SplitPlan(record=made.record),
                         need=("test",))
    assert followed.train is None and followed.test.keys == made.test.keys
    victim = root / made.test.keys[0]
    victim.write_bytes(sorted((CIFAR / "train" / CLASSES[0]).iterdir())[31].read_bytes())
    with pytest.raises(EdgeclsError, match="test split recorded in the run no longer matches.*1 changed"):
        load_data(str(root), 32, cache_dir=tmp_path / "cache", plan=SplitPlan(record=made.record))


def test_a_large_set_is_memory_mapped_from_the_disk_cache(tmp_path, monkeypatch):
    root = drawn_folder(tmp_path / "photos", 12)
    in_memory = load_data(str(root), 32, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(folder, "MEMORY_SHARE", 0.0)
    mapped = load_data(str(root), 32, cache_dir=tmp_path / "cache")
    assert isinstance(mapped.train.images, np.memmap) and not isinstance(in_memory.train.images, np.memmap)
    for name in SPLITS:
        assert np.array_equal(getattr(mapped, name).images, getattr(in_memory, name).images)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(EdgeclsError, match="does not exist"):
        load_data(str(tmp_path / "nope"), 32, cache_dir=tmp_path)


def test_train_without_test_is_a_clear_error(small, tmp_path):
    shutil.rmtree(small / "test")
    with pytest.raises(EdgeclsError, match="has train/ but no test/"):
        load_data(str(small), 32, cache_dir=tmp_path / "cache")


def test_mismatched_classes_are_a_clear_error(small, tmp_path):
    shutil.copytree(small / "test" / "bird", small / "test" / "zebra")
    with pytest.raises(EdgeclsError, match=r"class folders of .* splits differ"):
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
    splits = load_data(str(small), 32, cache_dir=tmp_path / "cache", need=("test",))
    assert splits.train is None and splits.val is None
    splits.require_classes(CLASSES[:3])
    with pytest.raises(EdgeclsError, match="differ from the model's"):
        splits.require_classes(CLASSES[1:4])
