"""The split rule itself: stratified, seeded, disjoint, and stable when other files come and go."""

import numpy as np
import pytest

from edgecls.errors import EdgeclsError
from edgecls.splits import SPLITS, SplitRecord, check_members, read_split, stratified_split, write_split


def folder_keys(counts: dict[str, int]) -> tuple[list[str], np.ndarray]:
    keys = [f"{name}/{i:04d}.jpg" for name, n in counts.items() for i in range(n)]
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts.values())])
    return keys, labels


def test_each_class_is_split_in_the_shares_asked():
    keys, labels = folder_keys({"cat": 100, "dog": 37, "eel": 5})
    split = stratified_split(keys, labels, {"test": 0.1, "val": 0.2}, seed=0)
    counts = {name: np.bincount(labels[idx], minlength=3).tolist() for name, idx in split.items()}
    assert counts["test"] == [10, 4, 1] and counts["val"] == [20, 7, 1] and counts["train"] == [70, 26, 3]


def test_splits_are_disjoint_and_cover_every_image():
    keys, labels = folder_keys({"a": 53, "b": 48})
    split = stratified_split(keys, labels, {"test": 0.15, "val": 0.1}, seed=5)
    everything = np.concatenate(list(split.values()))
    assert len(everything) == len(set(everything.tolist())) == len(keys)
    assert all(np.array_equal(idx, np.sort(idx)) for idx in split.values())  # folder order kept


def test_the_seed_alone_decides():
    keys, labels = folder_keys({"a": 60, "b": 60})
    first = stratified_split(keys, labels, {"test": 0.1, "val": 0.1}, seed=1)
    again = stratified_split(list(keys), labels.copy(), {"test": 0.1, "val": 0.1}, seed=1)
    other = stratified_split(keys, labels, {"test": 0.1, "val": 0.1}, seed=2)
    assert all(np.array_equal(first[n], again[n]) for n in first)
    assert not np.array_equal(first["test"], other["test"])


def test_a_new_validation_share_never_moves_a_test_image():
    keys, labels = folder_keys({"a": 80, "b": 40})
    small = stratified_split(keys, labels, {"test": 0.1, "val": 0.05}, seed=0)
    large = stratified_split(keys, labels, {"test": 0.1, "val": 0.3}, seed=0)
    assert np.array_equal(small["test"], large["test"])


def test_another_file_moves_at_most_the_images_at_the_boundary():
    """A photo added to a class changes that class's counts by one; no other image changes sides wholesale."""
    keys, labels = folder_keys({"a": 99, "b": 50})
    before = stratified_split(keys, labels, {"test": 0.1, "val": 0.1}, seed=0)
    more_keys, more_labels = keys + ["a/extra.jpg"], np.append(labels, 0)
    after = stratified_split(more_keys, more_labels, {"test": 0.1, "val": 0.1}, seed=0)
    side = {name: {keys[i] for i in idx} for name, idx in before.items()}
    side_after = {name: {more_keys[i] for i in idx} for name, idx in after.items()}
    moved = sum(len(side[name] - side_after[name]) for name in SPLITS)
    assert moved <= 2


def test_every_class_keeps_a_training_image():
    keys, labels = folder_keys({"a": 2, "b": 1, "c": 3})
    split = stratified_split(keys, labels, {"test": 0.5, "val": 0.5}, seed=0)
    assert sorted(set(labels[split["train"]].tolist())) == [0, 1, 2]


def test_record_round_trip_and_checks(tmp_path):
    record = SplitRecord(source="/data", layout="drawn", seed=0, val_fraction=0.1, test_fraction=0.1,
                         classes=["a"], members={"train": [["a/1.jpg", "d1"]], "val": [], "test": [["a/2.jpg", "d2"]]})
    write_split(tmp_path / "split.json", record)
    back = read_split(tmp_path / "split.json")
    assert back == record and back.counts() == {"train": 1, "val": 0, "test": 1}
    check_members(back, "test", {"a/2.jpg": "d2", "a/9.jpg": "d9"})
    with pytest.raises(EdgeclsError, match="1 missing .*a/2.jpg"):
        check_members(back, "test", {})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EdgeclsError, match="cannot read the split record"):
        read_split(tmp_path / "bad.json")
