"""`edgecls benchmark CKPT`: one row per format — size, accuracy, parity with PyTorch, latency, throughput, memory.

Rows come from the formats table (``formats.FORMATS``) plus a ``pytorch`` eager row. Every format
runs through the same runner the exporter's parity check uses (OpenVINO FP32 pinned to f32), and
accuracy/agreement/max |Δlogit| come from ``parity.compare`` (the parity row of ``edgecls.tolerance``)
against PyTorch eager on identical tensors, so the benchmark and the export gate can never measure
differently. Timing, peak RSS and
the row itself come from the runtime (``edgecls.runtime.measure``, ``edgecls.runtime.benchmark``),
which times `edgecls benchmark EXPORT_DIR` on a device with the same code.

Threads: torch reports its own pool (``torch.get_num_threads()``). The other runners open their engine
with the runtime's default, the thread budget (``edgecls.host.thread_budget``), and their rows record it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgecls.bundle import MANIFEST, has_manifest, manifest_path, read_manifest
from edgecls.errors import EdgeclsError
from edgecls.format_table import TORCH
from edgecls.host import peak_rss_bytes, reset_peak_rss, thread_budget
from edgecls.runtime.benchmark import AGREEMENT_IMAGES, PYTORCH, make_row, no_agreement, table_order
from edgecls.runtime.measure import THROUGHPUT_BATCH, speed
from edgecls.tolerance import PARITY_KEYS

from .formats import FORMATS, Runner

ORDER = table_order()
CHECK_BATCH = 250


@dataclass
class BenchOptions:
    checkpoint: Path | None = None  # default: as `edgecls export`
    formats: str = "all"  # "all" or comma-separated names from ORDER
    export_dir: Path | None = None  # an existing export of the checkpoint; default: export into a temp folder
    data: str | None = None  # default: the data the checkpoint was trained on
    data_dir: str | None = None
    cache_dir: str | None = None
    check_images: int | None = None  # None: the whole test split (10,000 CIFAR-10 images)
    latency_runs: int = 200
    throughput_runs: int = 20
    batch_size: int = THROUGHPUT_BATCH

    def validate(self) -> list[str]:
        """The chosen row names in table order; every option checked before any slow work."""
        spec = self.formats.strip()
        names = ORDER if spec == "all" else tuple(n.strip() for n in spec.split(",") if n.strip())
        unknown = [n for n in names if n not in ORDER]
        if unknown or not names:
            raise EdgeclsError(f"unknown --formats {self.formats!r}; choose from {', '.join(ORDER)}, all "
                               "(comma-separated for several)")
        checks = ((self.check_images is None or self.check_images >= 1, "--check-images must be at least 1"),
                  (self.latency_runs >= 1, "--latency-runs must be at least 1"),
                  (self.throughput_runs >= 1, "--throughput-runs must be at least 1"),
                  (self.batch_size >= 1, "--batch-size must be at least 1"))
        for ok, message in checks:
            if not ok:
                raise EdgeclsError(message)
        if self.export_dir is not None and not has_manifest(self.export_dir):
            raise EdgeclsError(f"--export {self.export_dir} has no {MANIFEST} (not an edgecls export folder)")
        return [n for n in ORDER if n in names]


def run_benchmark(opts: BenchOptions, log: Callable[[str], None] = print) -> list[dict]:
    """Rows in table order, one dict per format (keys: see ``measure``)."""
    from edgecls.digest import file_sha256
    from edgecls.trainer.data import run_split_plan

    from .data import load_check_set
    from .parity import reference_logits
    from .pipeline import ExportOptions, find_checkpoint, load_export_source, with_data_defaults

    names = opts.validate()
    ckpt = Path(opts.checkpoint) if opts.checkpoint else find_checkpoint()
    payload, model, spec = load_export_source(ckpt)
    data_opts = with_data_defaults(ExportOptions(checkpoint=ckpt, data=opts.data, data_dir=opts.data_dir,
                                                  cache_dir=opts.cache_dir), payload.get("config") or {})
    exported = [n for n in names if n != PYTORCH]
    with tempfile.TemporaryDirectory(prefix="edgecls-bench-") as tmp:
        files = {}
        if exported:  # an unusable --export fails before any measuring
            folder = Path(opts.export_dir) if opts.export_dir else _export(exported, data_opts, Path(tmp), log)
            files = _export_files(folder, exported, file_sha256(ckpt))
        plan = run_split_plan(ckpt, payload.get("config") or {}, data_opts.data)
        check = load_check_set(data_opts.data, spec, opts.check_images, 0, data_opts.data_dir, opts.cache_dir, plan)
        ref = reference_logits(model, check.images)
        log(f"benchmarking {ckpt} ({spec.model}) on {len(check.labels)} images of {check.source}: "
            f"{', '.join(names)}")
        rows = []
        if PYTORCH in names:
            rows.append(measure(PYTORCH, partial(eager_runner, model), ckpt.stat().st_size, check, ref, opts))
        rows += [measure(n, partial(FORMATS[n].load, path), size, check, ref, opts)
                 for n, (path, size) in files.items()]
    return rows


def eager_runner(model: torch.nn.Module) -> Runner:
    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    return run


def measure(name: str, load: Callable[[], Runner], size_bytes: int, check, ref: np.ndarray,
            opts: BenchOptions) -> dict:
    """One row; the peak-RSS window opens before the file is loaded."""
    from .parity import compare, run_batched

    reset_peak_rss()
    run = load()
    quality = compare(run_batched(run, check.images, CHECK_BATCH, f"{name}: {len(check.labels)} images"),
                      ref, check.labels)
    n = int(len(check.labels))
    # the reference row is what the others are measured against: its speed and accuracy, no agreement
    agreement = no_agreement() if name == PYTORCH else {**{k: quality[k] for k in PARITY_KEYS}, AGREEMENT_IMAGES: n}
    quality = {"accuracy": quality["accuracy"], "accuracy_images": n, **agreement}
    timing = speed(run, check.images, name, opts.latency_runs, opts.throughput_runs, opts.batch_size)
    engine = TORCH if name == PYTORCH else FORMATS[name].engine
    return make_row(name, engine, size_bytes, _threads(name), quality, timing, peak_rss_bytes(), "cpu")


def _export(names: list[str], data_opts, tmp: Path, log) -> Path:
    """A fresh export of just the formats asked for (each INT8 row needs its FP32 file); no parity check."""
    from .pipeline import export_checkpoint

    fp32 = sorted({FORMATS[n].int8_of or n for n in names}, key=list(FORMATS).index)
    int8 = any(FORMATS[n].precision == "int8" for n in names)
    export_opts = replace(data_opts, formats=",".join(fp32), int8=int8, out=tmp / "export", check_images=0,
                          golden_images=0)
    return export_checkpoint(export_opts, log=log).out


def _export_files(folder: Path, names: list[str], ckpt_sha256: str) -> dict[str, tuple[Path, int]]:
    """(model file, bytes of all its files) by format, in ``names`` order; the export must be of this checkpoint."""
    manifest = read_manifest(folder)
    try:
        files = {e["format"]: e for e in manifest["files"]}
    except (KeyError, TypeError) as e:
        raise EdgeclsError(f"cannot read {manifest_path(folder)} ({type(e).__name__})") from None
    if manifest.get("source", {}).get("sha256") != ckpt_sha256:
        raise EdgeclsError(f"{folder} was exported from a different checkpoint (source sha256 differs)")
    missing = [n for n in names if n not in files]
    if missing:
        raise EdgeclsError(f"{folder} has no {', '.join(missing)} (it holds {', '.join(files)})")
    return {n: (folder / files[n]["path"], files[n]["size"] + sum(c["size"] for c in files[n]["companions"]))
            for n in names}


def _threads(name: str) -> int:
    """torch's own pool; for the other engines the runtime's default, the thread budget."""
    if name == PYTORCH or FORMATS[name].engine == TORCH:
        return torch.get_num_threads()
    return thread_budget()
