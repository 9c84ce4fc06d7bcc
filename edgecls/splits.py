"""Which image belongs to which split, decided once per run and written into it.

The trainer selects on ``val`` and scores ``test`` once; export (calibration, the parity gate, golden
images), ``eval`` and a resumed run read the same record, so no image moves between splits after the
run starts. Torch-free: the runtime's ``eval`` reads it too.

A split is stratified and seeded, and each image's side is decided by a hash of the seed and its own
name within its class, not by its position in a list. Adding, removing or skipping other files
(junk that does not decode) therefore never moves an image to another split beyond the one or two
at each class's boundary.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_text_atomic
from .errors import EdgeclsError

SPLIT_FILE = "split.json"
SPLITS = ("train", "val", "test")
SPLIT_SCHEMA = 1
DEFAULT_VAL_FRACTION = 0.1  # CIFAR-10: 5,000 of the 50,000 training images
DEFAULT_TEST_FRACTION = 0.1  # only where the folder has no test split of its own
# How a run's splits came to be: the folder's own train/val/test folders, val held out of the given
# train folder, or all three drawn from one folder of class folders.
LAYOUTS = ("given", "val-held-out", "drawn")


@dataclass
class SplitRecord:
    """The members of each split as (key, sha256) pairs; keys are paths relative to the data root
    (``train/cat/0001.jpg``) or, for arrays with no files, ``train/<index>``."""

    source: str
    layout: str
    seed: int
    val_fraction: float
    test_fraction: float
    classes: list[str]
    members: dict[str, list[list[str]]]  # split → [[key, sha256], ...]
    skipped: list[list[str]] = field(default_factory=list)  # [[key, reason], ...]
    schema: int = SPLIT_SCHEMA

    def keys(self, split: str) -> list[str]:
        return [key for key, _ in self.members.get(split, [])]

    def digests(self, split: str) -> dict[str, str]:
        return {key: digest for key, digest in self.members.get(split, [])}

    def counts(self) -> dict[str, int]:
        return {name: len(self.members.get(name, [])) for name in SPLITS}


def write_split(path: Path, record: SplitRecord) -> None:
    write_text_atomic(Path(path), json.dumps(asdict(record), separators=(",", ":")))


def read_split(path: Path) -> SplitRecord:
    try:
        raw = json.loads(Path(path).read_text())
        if raw.get("schema") != SPLIT_SCHEMA:
            raise EdgeclsError(f"{path} has split schema {raw.get('schema')!r}; this edgecls reads {SPLIT_SCHEMA}")
        return SplitRecord(**raw)
    except (OSError, ValueError, TypeError) as e:
        raise EdgeclsError(f"cannot read the split record {path}: {e}") from None


def hash_rank(seed: int, key: str) -> int:
    """Where ``key`` falls in its class's seeded order: a property of the key alone."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode()).digest()[:8], "big")


def held_count(n: int, fraction: float) -> int:
    """Images of an ``n``-image class that a ``fraction`` holds out: rounded, and at least one."""
    return 0 if fraction <= 0 or n < 2 else max(1, round(n * fraction))


def stratified_split(keys: list[str], labels: np.ndarray, fractions: dict[str, float],
                     seed: int) -> dict[str, np.ndarray]:
    """Indices of ``keys`` per split. For each class, its keys in seeded hash order go to each held-out
    split of ``fractions`` in turn (give ``test`` first, so a change of the validation share never moves
    a test image), the rest to ``train``, which always keeps at least one image of the class. Each index
    array is sorted, so every split keeps the folder's order."""
    out: dict[str, list[int]] = {name: [] for name in (*fractions, "train")}
    for label in np.unique(labels):
        members = sorted((int(i) for i in np.flatnonzero(labels == label)), key=lambda i: hash_rank(seed, keys[i]))
        start = 0
        for name, fraction in fractions.items():
            take = max(0, min(held_count(len(members), fraction), len(members) - start - 1))
            out[name] += members[start:start + take]
            start += take
        out["train"] += members[start:]
    return {name: np.sort(np.asarray(idx, dtype=np.int64)) for name, idx in out.items()}


def check_members(record: SplitRecord, split: str, found: dict[str, str]) -> None:
    """Every image the record lists for ``split`` is still there with the same bytes; one clear error
    naming the first few that are not."""
    missing, changed = [], []
    for key, digest in record.members.get(split, []):
        now = found.get(key)
        if now is None:
            missing.append(key)
        elif now != digest:
            changed.append(key)
    if missing or changed:
        parts = [f"{len(missing)} missing (first: {', '.join(missing[:3])})" if missing else "",
                 f"{len(changed)} changed (first: {', '.join(changed[:3])})" if changed else ""]
        raise EdgeclsError(f"the {split} split recorded in the run no longer matches {record.source}: "
                           f"{'; '.join(p for p in parts if p)}")
