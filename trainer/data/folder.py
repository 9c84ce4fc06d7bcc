"""Image folders decoded once at the model's input size into a disk cache, junk skipped and counted.

A folder of class folders is decoded by `decode_folder`; `load_image_folder` then cuts the run's
splits from it (`edgecls.splits`). Decoding reads each file once, in worker processes: its bytes
give the sha256 the split record keeps, and the pixels come from `edgecls.imageops.model_pixels`,
the runtime's own decode, so a photo reaches the model with the same pixels in training and in
`edgecls infer`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgecls.atomic import write_text_atomic
from edgecls.errors import EdgeclsError
from edgecls.host import available_memory_bytes, thread_budget
from edgecls.imagefolder import class_files, class_folders
from edgecls.imageops import UnreadableImage, model_pixels, pillow_decoding

from .types import ImageSet, take_rows

CACHE_FORMAT = 2
IMAGES_FILE, META_FILE = "images.npy", "meta.json"
# A decoded set is held in memory when it takes at most this share of the memory available at the
# start (the splits are cut from it, so the peak is about twice its size); above it, the cache and
# each split are memory-mapped from disk and the OS pages them in.
MEMORY_SHARE = 1 / 3
POOL_MIN_FILES = 256  # below this, a process pool's start-up costs more than it saves
WORKERS_MAX = 8


@dataclass
class DecodedFolder:
    """The readable images of one folder of class folders; keys are paths relative to the data root."""

    images: np.ndarray  # (N, S, S, 3) uint8, memory-mapped when large
    labels: np.ndarray
    classes: tuple[str, ...]
    keys: list[str]
    digests: list[str]
    shorter_sides: np.ndarray  # each source image's shorter side, in pixels
    skipped: list[tuple[str, str]]  # (key, reason) of each file that is not a readable image


def scan_classes(folder: Path) -> tuple[list[Path], list[int], tuple[str, ...], list[Path]]:
    """Image files with their labels, the class names (sorted sub-folder names) and the other files."""
    if not folder.is_dir():
        raise EdgeclsError(f"missing folder {folder}")
    classes = tuple(d.name for d in class_folders(folder))
    if not classes:
        raise EdgeclsError(f"no class folders in {folder} (expected {folder}/<class>/*.jpg, one folder per class)")
    files, labels, others = [], [], []
    for index, name in enumerate(classes):
        images, rest = class_files(folder / name)
        files += images
        labels += [index] * len(images)
        others += rest
    return files, labels, classes, others


def fingerprint(files: list[Path], root: Path, size: int) -> str:
    """Changes whenever a file is added, removed, renamed or rewritten."""
    h = hashlib.sha256(f"edgecls-cache-v{CACHE_FORMAT}:{size}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def decode_file(job: tuple[str, int]) -> tuple[np.ndarray | None, str, int, str]:
    """(pixels or None, sha256, shorter side, reason it was skipped) of one file; never raises for a bad file."""
    path, size = job
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return None, digest, 0, "empty file (0 bytes)"
    try:
        with pillow_decoding(), Image.open(io.BytesIO(data)) as header:
            shorter = min(header.size)
        pixels = np.asarray(model_pixels(io.BytesIO(data), size), dtype=np.uint8)
    except UnreadableImage as e:
        return None, digest, 0, str(e)
    return pixels, digest, shorter, ""


def decode_folder(folder: Path, root: Path, size: int, cache_dir: Path) -> DecodedFolder:
    """``folder``'s class folders decoded at ``size``, from the cache when nothing changed since."""
    files, labels, classes, others = scan_classes(folder)
    entry = Path(cache_dir) / fingerprint(files, root, size)
    if not (entry / META_FILE).is_file():
        _decode_into(entry, files, root, size, f"decoding {folder.name} ({len(files)} files)")
    meta = json.loads((entry / META_FILE).read_text())
    images = _open_images(entry / IMAGES_FILE)
    ok = np.asarray(meta["ok"], dtype=np.int64)
    skipped = [tuple(s) for s in meta["skipped"]] + [(str(p.relative_to(root)), "not an image file") for p in others]
    decoded = DecodedFolder(images if len(ok) == len(files) else take_rows(images, ok),
                            np.asarray(labels, dtype=np.int64)[ok], classes, [meta["keys"][i] for i in ok],
                            [meta["digests"][i] for i in ok], np.asarray(meta["shorter_sides"], dtype=np.int64)[ok],
                            skipped)
    require_every_class(decoded, folder)
    return decoded


def require_every_class(decoded: DecodedFolder, folder: Path) -> None:
    """A class with no readable image cannot be learnt or scored: stop before training starts."""
    counts = np.bincount(decoded.labels, minlength=len(decoded.classes))
    empty = [name for name, n in zip(decoded.classes, counts) if n == 0]
    if empty:
        raise EdgeclsError(f"class folder(s) with no readable image in {folder}: {', '.join(empty)}")


def _decode_into(entry: Path, files: list[Path], root: Path, size: int, desc: str) -> None:
    """Decode straight into a memory-mapped file (never the whole set in memory), then publish the
    cache entry with one rename; another process that published it first wins."""
    from edgecls.progress import track

    tmp = entry.with_name(f"{entry.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    out = np.lib.format.open_memmap(tmp / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=(len(files), size, size, 3))
    digests, sides, ok, skipped = [], [], [], []
    for i, (pixels, digest, side, reason) in enumerate(track(_decoded(files, size), total=len(files), desc=desc)):
        digests.append(digest)
        sides.append(side)
        if pixels is None:
            skipped.append((str(files[i].relative_to(root)), reason))
        else:
            out[i] = pixels
            ok.append(i)
    out.flush()
    del out
    meta = {"keys": [str(p.relative_to(root)) for p in files], "digests": digests, "shorter_sides": sides,
            "ok": ok, "skipped": skipped, "size": size}
    write_text_atomic(tmp / META_FILE, json.dumps(meta))
    try:
        tmp.rename(entry)
    except OSError:  # already there: the same files decoded by another process
        shutil.rmtree(tmp, ignore_errors=True)


def _decoded(files: list[Path], size: int):
    """Each file's `decode_file` result in order: in worker processes, as JPEG decoding parallelises."""
    jobs = [(str(p), size) for p in files]
    workers = min(thread_budget(), WORKERS_MAX)
    if len(files) < POOL_MIN_FILES or workers < 2:
        yield from map(decode_file, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        try:
            yield from pool.map(decode_file, jobs, chunksize=64)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def fits_in_memory(nbytes: int) -> bool:
    available = available_memory_bytes()
    return available is None or nbytes <= MEMORY_SHARE * available


def _open_images(path: Path) -> np.ndarray:
    """The whole cache in memory when it fits (`MEMORY_SHARE`), else mapped copy-on-write from disk."""
    mapped = np.load(path, mmap_mode="r")
    if fits_in_memory(mapped.nbytes):
        return np.array(mapped)
    return np.load(path, mmap_mode="c")


def folder_pools(root: Path, size: int, cache_dir: Path, need: tuple[str, ...]) -> tuple[dict, str, list, dict]:
    """The decoded pools `cut_splits` takes for ``need``, the layout (`edgecls.splits.LAYOUTS`), the files
    skipped, and what the images were like.

    ``ROOT/train`` (with ``test``, optionally ``val``) is a split the user made; anything else is one
    folder of class folders the run splits itself."""
    if not root.exists():
        raise EdgeclsError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise EdgeclsError(f"--data {root} is not a folder")
    if (root / "train").is_dir():
        if not (root / "test").is_dir():
            raise EdgeclsError(f"{root} has train/ but no test/ (give both, or one folder of class folders)")
        given = [name for name in ("train", "val", "test") if (root / name).is_dir()]
        source_of = {name: name if name in given else "train" for name in ("train", "val", "test")}
        folders = sorted({source_of[name] for name in need}, key=given.index)
        layout = "given" if "val" in given else "val-held-out"
    else:
        folders, layout = ["all"], "drawn"
    pools, skipped, sides = {}, [], []
    for name in folders:
        decoded = decode_folder(root if name == "all" else root / name, root, size, cache_dir)
        pools[name] = ImageSet(decoded.images, decoded.labels, decoded.classes, tuple(root / k for k in decoded.keys),
                               tuple(decoded.keys), tuple(decoded.digests))
        skipped += decoded.skipped
        sides.append(decoded.shorter_sides)
    classes = {pool.classes for pool in pools.values()}
    if len(classes) > 1:
        raise EdgeclsError(f"the class folders of {root}'s splits differ: "
                           + "; ".join(f"{n}: {', '.join(p.classes)}" for n, p in pools.items()))
    return pools, layout, skipped, size_summary(np.concatenate(sides))


def size_summary(shorter_sides: np.ndarray) -> dict:
    return {"shorter_side_px": {"min": int(shorter_sides.min()), "median": int(np.median(shorter_sides)),
                                "max": int(shorter_sides.max())}} if len(shorter_sides) else {}
