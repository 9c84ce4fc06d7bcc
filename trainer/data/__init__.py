"""Datasets decoded once into uint8 arrays and cut into the run's splits; see ``load_data``."""

from __future__ import annotations

from pathlib import Path

from edgecls.splits import SPLITS

from .splitting import DEFAULT_PLAN, SplitPlan, cut_splits, run_split_plan
from .types import DataSplits, ImageSet

SHOWN_SKIPPED = 5  # files named in a run's summary; the split record lists every one


def default_cache_dir() -> Path:
    from edgecls.host import user_cache_dir

    return user_cache_dir()


def load_data(data: str, size: int, data_dir: Path | None = None, cache_dir: Path | None = None,
              plan: SplitPlan = DEFAULT_PLAN, need: tuple[str, ...] = SPLITS) -> DataSplits:
    """``data`` is ``cifar10`` (torchvision download) or a path to an image folder: ``train/``, ``test/``
    (and ``val/``) of class folders, or one folder of class folders. Only the splits in ``need`` are
    filled in (the others are None) and only the folders they come from are decoded."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "decoded"
    if data == "cifar10":
        from .cifar import cifar10_pools

        pools = cifar10_pools(Path(data_dir) if data_dir else default_cache_dir() / "cifar10", size, need)
        layout, source, skipped, info = "val-held-out", "cifar10", [], {}
    else:
        from .folder import folder_pools

        root = Path(data).expanduser().resolve()
        pools, layout, skipped, info = folder_pools(root, size, cache_dir, need)
        source = str(root)
    splits = cut_splits(pools, layout, plan, source, skipped)
    for name in SPLITS:
        if name not in need:
            setattr(splits, name, None)
    splits.info = {**info, "skipped": len(skipped), "skipped_first": [list(s) for s in skipped[:SHOWN_SKIPPED]]}
    return splits

__all__ = ["DEFAULT_PLAN", "DataSplits", "ImageSet", "SplitPlan", "default_cache_dir", "load_data", "run_split_plan"]
