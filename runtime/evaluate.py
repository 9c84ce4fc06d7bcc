"""`edgecls eval` on a device: accuracy of an exported model on a labelled image folder, without PyTorch.

Images go through ``Classifier.classify``, the decode → preprocess → engine path of `edgecls infer`,
so the number measured is the number a user of the runtime gets. Folder classes are matched to the
model's classes by name, so a folder holding only some of the classes works too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecls.bundle import MANIFEST, read_manifest
from edgecls.errors import EdgeclsError
from edgecls.digest import file_sha256
from edgecls.imagefolder import class_files, class_folders, subset_indices
from edgecls.splits import SPLIT_FILE, SplitRecord, check_members, read_split
from edgecls.scores import scores
from edgecls.progress import track

from .classifier import Classifier, Failure

SHOWN_FAILURES = 10


@dataclass
class Labelled:
    paths: list[Path]
    labels: np.ndarray  # indices into the model's classes
    root: Path
    skipped: list[str] = field(default_factory=list)  # "file: why" for each file that is not an image
    split: str = ""  # which images of the folder are scored, when not all of them

    def subset(self, count: int | None, seed: int = 0) -> "Labelled":
        """A seeded random subset in folder order (all of it when ``count`` is None or not smaller)."""
        idx = subset_indices(len(self.paths), count, seed)
        if idx is None:
            return self
        return Labelled([self.paths[i] for i in idx], self.labels[idx], self.root, self.skipped, self.split)


def labelled_files(data: Path, classes: tuple[str, ...], record: SplitRecord | None = None) -> Labelled:
    """``DATA/test/<class>/*`` (or ``DATA/<class>/*``), labelled with the model's class indices. When ``record``
    is the split of the run that drew its splits from this very folder, only its test images are kept."""
    data = Path(data)
    if not data.is_dir():
        raise EdgeclsError(f"--data {data} is not a folder (expected DIR/test/<class>/* or DIR/<class>/*)")
    root = data / "test" if (data / "test").is_dir() else data
    folders = class_folders(root)
    unknown = [d.name for d in folders if d.name not in classes]
    if unknown:
        raise EdgeclsError(f"{root} has class folders the model does not know: {', '.join(unknown)} "
                           f"(its classes: {', '.join(classes)})")
    paths, labels, skipped = [], [], []
    for folder in folders:
        found, others = class_files(folder)
        paths += found
        labels += [classes.index(folder.name)] * len(found)
        skipped += [f"{p}: not an image file" for p in others]
    labelled = Labelled(paths, np.asarray(labels, dtype=np.int64), root, skipped)
    if record is not None and record.layout == "drawn" and record.source == str(root.resolve()):
        labelled = recorded_test_split(labelled, record)
    if not labelled.paths:
        raise EdgeclsError(f"no images in {root} (expected {root}/<class>/*.jpg, one folder per class)")
    return labelled


def recorded_test_split(labelled: Labelled, record: SplitRecord) -> Labelled:
    """The run's test images of the folder it split itself, each checked against the digest it recorded:
    the other images trained or selected the model, and scoring them would flatter it."""
    keys = [str(p.relative_to(labelled.root)) for p in labelled.paths]
    wanted = record.digests("test")
    keep = [i for i, key in enumerate(keys) if key in wanted]
    check_members(record, "test", {keys[i]: file_sha256(labelled.paths[i]) for i in keep})
    note = f"the test split the run drew ({len(keep)} of {len(keys)} images)"
    return Labelled([labelled.paths[i] for i in keep], labelled.labels[keep], labelled.root, labelled.skipped, note)


def bundle_split(clf: Classifier) -> SplitRecord | None:
    """The split record a bundle carries when its run drew the splits from one folder."""
    folder = clf.choice.folder or clf.choice.path.parent
    return read_split(folder / SPLIT_FILE) if (folder / SPLIT_FILE).is_file() else None


def evaluate_folder(clf: Classifier, data: Path, batch_size: int = 64, limit: int | None = None) -> dict:
    """Scores of ``clf`` on a labelled folder, its speed, and the accuracy its bundle recorded at build time."""
    labelled = labelled_files(Path(data), clf.classes, bundle_split(clf)).subset(limit)
    pred = np.full(len(labelled.paths), -1, dtype=np.int64)
    failures = list(labelled.skipped)
    start = time.perf_counter()
    results = clf.classify(labelled.paths, top_k=1, batch_size=batch_size)
    for i, result in enumerate(track(results, len(pred), f"evaluating {len(pred)} images")):
        if isinstance(result, Failure):
            failures.append(f"{result.source}: {result.error}")
        else:
            pred[i] = result.index
    seconds = time.perf_counter() - start
    ok = pred >= 0
    result = scores(pred[ok], labelled.labels[ok], clf.classes)
    return {**result, "data": str(labelled.root), **({"split": labelled.split} if labelled.split else {}),
            "failed": len(failures), "failures": failures[:SHOWN_FAILURES],
            "seconds": seconds, "images_per_s": len(pred) / seconds, "model": model_info(clf),
            "recorded": recorded_accuracy(clf, result["accuracy"])}


def model_info(clf: Classifier) -> dict:
    engine = clf.engine
    return {"path": str(clf.choice.path), "format": clf.choice.format, "engine": clf.choice.engine,
            "version": engine.version, "device": engine.device, "threads": engine.threads}


def recorded_accuracy(clf: Classifier, accuracy: float) -> dict | None:
    """What the bundle's manifest recorded for this file on the build machine, and the change since."""
    folder = clf.choice.folder or clf.choice.path.parent
    try:
        manifest = read_manifest(folder) if (folder / MANIFEST).is_file() else {}
    except EdgeclsError:  # a loose model file beside an unreadable manifest: nothing to compare with
        return None
    listed = {e.get("path"): e.get("format") for e in manifest.get("files", [])}
    parity = manifest.get("parity") or {}
    result = parity.get("results", {}).get(listed.get(clf.choice.path.name))
    if not result:
        return None
    return {"accuracy": result["accuracy"], "images": parity.get("images"), "data": parity.get("data"),
            "engine": result.get("engine"), "difference_points": round(100 * (accuracy - result["accuracy"]), 4)}
