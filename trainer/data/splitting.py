"""Cut a run's train/val/test splits from the decoded image pools, or follow a run's split record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecls.errors import EdgeclsError
from edgecls.splits import (DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, SPLIT_FILE, SPLITS, SplitRecord,
                            check_members, read_split, stratified_split)

from .types import DataSplits, ImageSet


@dataclass(frozen=True)
class SplitPlan:
    """How to split when the data does not say: the shares held out, and the seed of the draw. With a
    ``record`` (a resumed run, an export, an eval of a run) its members are taken instead."""

    val_fraction: float = DEFAULT_VAL_FRACTION
    test_fraction: float = DEFAULT_TEST_FRACTION
    seed: int = 0
    record: SplitRecord | None = None


DEFAULT_PLAN = SplitPlan()


def cut_splits(pools: dict[str, ImageSet], layout: str, plan: SplitPlan, source: str,
               skipped: list[tuple[str, str]] = ()) -> DataSplits:
    """``pools``: ``all`` for a ``drawn`` layout, else ``train`` / ``val`` / ``test`` as the data gives them
    (`edgecls.splits.LAYOUTS`); a pool left out was not needed."""
    if plan.record is not None:
        splits = follow_record(pools, plan.record)
    elif layout == "drawn":
        splits = draw(pools["all"], {"test": plan.test_fraction, "val": plan.val_fraction}, plan.seed)
    elif layout == "val-held-out" and "train" in pools:
        splits = {**draw(pools["train"], {"val": plan.val_fraction}, plan.seed), "test": pools.get("test")}
    else:
        splits = {name: pools.get(name) for name in SPLITS}
    record = plan.record or make_record(splits, layout, plan, source, skipped)
    return DataSplits(splits.get("train"), splits.get("val"), splits.get("test"), source, record)


def draw(pool: ImageSet, fractions: dict[str, float], seed: int) -> dict[str, ImageSet]:
    """A stratified seeded draw of ``fractions`` of ``pool``; the rest trains."""
    index = stratified_split(list(pool.keys), pool.labels, fractions, seed)
    return {name: pool.take(idx) for name, idx in index.items()}


def follow_record(pools: dict[str, ImageSet], record: SplitRecord) -> dict[str, ImageSet | None]:
    """Each split as the record lists it, checked image by image against the sha256 it recorded."""
    where = {key: (pool, i) for pool in pools.values() for i, key in enumerate(pool.keys)}
    digests = {key: pool.digests[i] for key, (pool, i) in where.items()}
    out: dict[str, ImageSet | None] = {}
    for name in SPLITS:
        keys = record.keys(name)
        if not keys or not all(key in where for key in keys[:1]):  # a split whose pool was not decoded
            out[name] = None
            continue
        check_members(record, name, digests)
        pool = where[keys[0]][0]
        if any(where[key][0] is not pool for key in keys):
            raise EdgeclsError(f"the {name} split recorded for {record.source} spans folders differently now")
        out[name] = pool.take(np.asarray([where[key][1] for key in keys], dtype=np.int64))
    return out


def make_record(splits: dict[str, ImageSet | None], layout: str, plan: SplitPlan, source: str,
                skipped) -> SplitRecord | None:
    """The record a training run writes; None when a split it needs was not loaded."""
    if any(splits.get(name) is None for name in SPLITS):
        return None
    classes = list(next(s for s in splits.values() if s is not None).classes)
    members = {name: [[k, d] for k, d in zip(splits[name].keys, splits[name].digests)] for name in SPLITS}
    return SplitRecord(source=source, layout=layout, seed=plan.seed, val_fraction=plan.val_fraction,
                       test_fraction=plan.test_fraction if layout == "drawn" else 0.0, classes=classes,
                       members=members, skipped=[list(s) for s in skipped])


def run_split_plan(checkpoint: Path, config: dict, data: str) -> SplitPlan:
    """The split a checkpoint's run used, for an export or eval of it: the run folder's record when it is
    there and ``data`` is the data it records, else the same seeded draw from the run's settings."""
    recorded = Path(checkpoint).parent / SPLIT_FILE
    record = read_split(recorded) if recorded.is_file() else None
    source = data if data == "cifar10" else str(Path(data).expanduser().resolve())
    if record is not None and record.source != source:
        record = None
    return SplitPlan(config.get("val_fraction", DEFAULT_VAL_FRACTION),
                     config.get("test_fraction", DEFAULT_TEST_FRACTION), config.get("seed", 0), record)
