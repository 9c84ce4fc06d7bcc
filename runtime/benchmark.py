"""`edgecls benchmark EXPORT_DIR`: one row per (format, engine) this machine can run, without PyTorch.

Each file runs through ``Classifier`` on the engines ``open_engine`` gives ``infer`` and ``serve``
(OpenVINO FP32 pinned to f32, as the exporter's gate). Agreement with PyTorch comes from the
bundle's golden vectors; accuracy from a labelled folder when one is given. Rows have the keys
of the torch path's rows (``export/benchmark.py`` builds them with ``make_row`` too).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgecls.bundle import read_manifest, verify_files
from edgecls.errors import EdgeclsError, ProofFailed, UsageError
from edgecls.format_table import FORMATS, FP32, TORCH
from edgecls.golden_file import Golden, read_golden
from edgecls.host import peak_rss_bytes, reset_peak_rss
from edgecls.progress import track
from edgecls.spec import ModelSpec
from edgecls.tolerance import PARITY_KEYS, REFERENCE, compare_logits

from .classifier import Classifier, decode_array
from .engines import PINNED, engine_available, missing_engine, open_engine
from .evaluate import Labelled, labelled_files
from .measure import THROUGHPUT_BATCH, speed
from .model_files import BACKENDS, ModelChoice
from .proof import proof_of
from .preprocess import normalize

PYTORCH = REFERENCE  # the torch path's eager row: what the other rows' agreement is measured against
AGREEMENT_IMAGES = "agreement_images"  # the images behind a row's parity columns


def table_order() -> tuple[str, ...]:
    """Row order: PyTorch eager, then each FP32 format of the bundle's FORMATS followed by its INT8 variants."""
    fp32 = [f.name for f in FORMATS.values() if f.int8_of is None]
    return (PYTORCH, *(n for base in fp32 for n in (base, *(f.name for f in FORMATS.values() if f.int8_of == base))))


def make_row(fmt: str, engine: str, size_bytes: int, threads: int, quality: dict, timing: dict,
             peak_rss: int, device: str | None = None) -> dict:
    """One benchmark row; ``quality``: accuracy, agreement, max_abs_dlogit and the image counts behind them."""
    precision = FORMATS[fmt].precision if fmt in FORMATS else FP32
    return {"format": fmt, "engine": engine, "precision": precision, "device": device, "size_bytes": size_bytes,
            **quality, **timing, "peak_rss_bytes": peak_rss, "threads": threads}


@dataclass
class BundleBenchOptions:
    folder: Path
    data: Path | None = None  # a labelled image folder for the accuracy column
    formats: str = "all"
    backend: str = "auto"
    device: str | None = None
    threads: int | None = None
    batch_size: int = THROUGHPUT_BATCH
    latency_runs: int = 200
    throughput_runs: int = 20
    check_images: int | None = None  # a seeded subset of --data
    allow_failed_proof: bool = False  # measure a file that fails its golden check here (else skipped)

    def validate(self) -> list[str]:
        """The chosen format names in table order; every option checked before any slow work."""
        runnable = [n for n in table_order() if n in FORMATS and FORMATS[n].engines != (TORCH,)]
        spec = self.formats.strip()
        names = runnable if spec == "all" else [n.strip() for n in spec.split(",") if n.strip()]
        torch_only = [n for n in names if n not in runnable and n in table_order()]
        if torch_only:
            raise UsageError(f"{', '.join(torch_only)} runs in PyTorch: benchmark the checkpoint instead "
                             "(`edgecls benchmark CKPT --export DIR`)")
        if not names or any(n not in runnable for n in names):
            raise UsageError(f"unknown --formats {self.formats!r}; choose from {', '.join(runnable)}, all "
                             "(comma-separated for several)")
        if self.backend not in BACKENDS:
            raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        for value, option in ((self.batch_size, "--batch-size"), (self.latency_runs, "--latency-runs"),
                              (self.throughput_runs, "--throughput-runs"), (self.check_images or 1, "--check-images")):
            if value < 1:
                raise UsageError(f"{option} must be at least 1")
        return [n for n in runnable if n in names]


def benchmark_bundle(opts: BundleBenchOptions, log: Callable[[str], None] = print) -> list[dict]:
    """Rows in table order: each chosen format of the bundle on each engine here that can run it."""
    names = opts.validate()
    folder = Path(opts.folder)
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    spec = ModelSpec.from_dict(manifest["spec"])
    golden = read_golden(folder, manifest) if manifest.get("golden") else None
    data = _labelled(opts, spec)
    timing_images = _timing_images(golden, data, spec, opts.batch_size)
    rows, refused = [], []
    for entry, engine in _pairs(manifest, names, opts.formats.strip() != "all", opts.backend, log):
        try:
            rows.append(_measure(ModelChoice(folder / entry["path"], entry["format"], engine, folder, manifest), spec,
                                 golden, data, timing_images, opts))
        except (UsageError, ProofFailed) as e:  # this engine has no such device, or the file fails here
            refused.append(str(e))
        gc.collect()  # drop the last engine before the next row's peak-RSS window opens
    if not rows:
        raise UsageError("; ".join(dict.fromkeys(refused)) or f"nothing in {folder} can run here")
    for message in dict.fromkeys(refused):
        log(f"skipped: {message}")
    return rows


def _pairs(manifest: dict, names: list[str], explicit: bool, backend: str, log) -> list[tuple[dict, str]]:
    """(manifest entry, engine) for every chosen format and every runtime engine installed here."""
    entries = {e["format"]: e for e in manifest.get("files", [])}
    missing = [n for n in names if n not in entries]
    if missing and (explicit or len(missing) == len(names)):
        raise EdgeclsError(f"the bundle has no {', '.join(missing)} (it holds {', '.join(entries)})")
    pairs = [(entries[name], engine) for name in names if name in entries for engine in FORMATS[name].engines
             if engine != TORCH and backend in ("auto", engine)]
    for absent in dict.fromkeys(engine for _, engine in pairs if not engine_available(engine)):
        skipped = ", ".join(e["format"] for e, engine in pairs if engine == absent)
        log(f"skipped ({missing_engine(absent)}): {skipped}")
        pairs = [(e, engine) for e, engine in pairs if engine != absent]
    if not pairs:
        raise UsageError(f"the {backend} backend runs none of {', '.join(names)}")
    return pairs


def _labelled(opts: BundleBenchOptions, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray] | None:
    """Decoded --data images (once, for every row) and their labels."""
    if opts.data is None:
        return None
    files: Labelled = labelled_files(Path(opts.data), spec.classes).subset(opts.check_images)
    return decode_array(files.paths, spec), files.labels


def _timing_images(golden: Golden | None, data, spec: ModelSpec, batch: int) -> np.ndarray:
    """What to time with: --data's first images (as the torch path times its check set's: latency depends a
    little on the image, OpenVINO INT8's by up to 20%), else the golden ones, else seeded noise."""
    if data is not None:
        return data[0][:batch]
    if golden is not None:
        return golden.images
    size = spec.input_size
    return np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def _measure(choice: ModelChoice, spec: ModelSpec, golden: Golden | None, data, timing_images: np.ndarray,
             opts: BundleBenchOptions) -> dict:
    name, engine, entry = choice.format, choice.engine, choice.entry
    label = f"{name} ({engine})"
    reset_peak_rss()
    clf = Classifier(open_engine(engine, choice.path, opts.threads, opts.device, PINNED), spec, choice)
    clf.proof = proof_of(clf, PINNED, opts.device)
    if clf.proof.failed and not opts.allow_failed_proof:
        raise ProofFailed(f"{label} fails its golden check on this CPU ({clf.proof.reason}); "
                          "--allow-failed-proof measures it anyway")
    quality = {**_agreement(clf, golden), **_accuracy(clf, data, opts.batch_size)}
    timing = speed(clf.logits_from_input, normalize(timing_images, spec), label, opts.latency_runs,
                   opts.throughput_runs, opts.batch_size)
    size = entry["size"] + sum(c["size"] for c in entry.get("companions", []))
    return make_row(name, engine, size, clf.engine.threads, quality, timing, peak_rss_bytes(), clf.engine.device)


def _agreement(clf: Classifier, golden: Golden | None) -> dict:
    """Top-1 agreement and max |Δlogit| with PyTorch on the golden images (None for bundles without them)."""
    if golden is None:
        return no_agreement()
    return {**compare_logits(clf.logits(golden.images), golden.logits[REFERENCE]),
            AGREEMENT_IMAGES: len(golden.images)}


def no_agreement() -> dict:
    """The agreement columns of a row with nothing to compare with (the reference itself, a bundle without
    golden vectors)."""
    return {**dict.fromkeys(PARITY_KEYS), AGREEMENT_IMAGES: 0}


def _accuracy(clf: Classifier, data, batch: int) -> dict:
    if data is None:
        return {"accuracy": None, "accuracy_images": 0}
    images, labels = data
    starts = range(0, len(images), batch)
    desc = f"{clf.choice.format} ({clf.choice.engine}): {len(labels)} images"
    pred = np.concatenate([clf.logits(images[i:i + batch]).argmax(1) for i in track(starts, len(starts), desc)])
    return {"accuracy": float((pred == labels).mean()), "accuracy_images": int(len(labels))}
