"""`edgecls export` as a library call: checkpoint → staged files → parity → manifest → folder."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from edgecls.errors import EdgeclsError, FormatUnsupported
from edgecls.format_table import INT8
from edgecls.golden_file import GOLDEN_IMAGES
from edgecls.shipped import reference_checkpoint
from edgecls.splits import SPLIT_FILE, write_split

from .formats import Format, resolve_formats
from .job import ExportJob
from .onnx_export import DEFAULT_OPSET, MIN_OPSET, max_opset

RUNS_GLOB = "artifacts/runs/*/best.pt"
EXPORTS_DIR = Path("artifacts/exports")


@dataclass
class ExportOptions:
    checkpoint: Path | None = None  # default: newest artifacts/runs/*/best.pt, else the reference model
    formats: str = "all"
    int8: bool = False
    out: Path | None = None  # default: artifacts/exports/<model>-<sha256[:8]>
    data: str | None = None  # default: the data the checkpoint was trained on
    data_dir: str | None = None
    cache_dir: str | None = None
    calib_data: str | None = None  # default: ``data``
    calib_size: int = 300
    check_images: int = 1000  # 0 skips the parity check
    golden_images: int = GOLDEN_IMAGES  # 0 writes no golden vectors (the bundle cannot be verified on a device)
    dynamic_batch: bool = True
    opset: int = DEFAULT_OPSET
    max_drop: float | None = None  # INT8 accuracy points (export.int8_ladder); None: its default, not enforced
    seed: int = 0

    def validate(self, skipped: dict[str, str] | None = None) -> list[Format]:
        """Check every option before any slow work; returns the formats in build order (``skipped``: the
        rows `all` left out for want of their converter, with why)."""
        formats = resolve_formats(self.formats, self.int8, skipped)
        checks = [
            (self.calib_size >= 1, "--calib-size must be at least 1"),
            (self.check_images >= 0, "--check-images must be 0 (skip the check) or more"),
            (self.golden_images >= 0, "--golden-images must be 0 (none) or more"),
            (MIN_OPSET <= self.opset <= max_opset(), f"--opset must be between {MIN_OPSET} and {max_opset()}"),
            (self.max_drop is None or self.max_drop > 0, "--max-drop must be positive (accuracy points)"),
            (self.max_drop is None or any(f.precision == INT8 for f in formats),
             "--max-drop bounds the INT8 files' accuracy drop: add --int8"),
        ]
        for ok, message in checks:
            if not ok:
                raise EdgeclsError(message)
        return formats


@dataclass
class ExportResult:
    out: Path
    manifest: dict


class ParityError(EdgeclsError):
    """An FP32 file disagrees with PyTorch; carries the parity section so the CLI can show it."""

    def __init__(self, message: str, parity: dict):
        super().__init__(message)
        self.parity = parity


def find_checkpoint() -> Path:
    runs = sorted(Path().glob(RUNS_GLOB), key=lambda p: p.stat().st_mtime)
    if runs:
        return runs[-1]
    shipped = reference_checkpoint()
    if shipped.is_file():
        return shipped
    raise EdgeclsError(f"no checkpoint given, and none found at {RUNS_GLOB} or {shipped}")


def export_checkpoint(opts: ExportOptions, log: Callable[[str], None] = print) -> ExportResult:
    from edgecls.digest import file_sha256
    from edgecls.trainer.data import run_split_plan

    from .manifest import build_manifest, write_manifest
    from .metadata import model_metadata
    from .staging import staged_folder

    skipped: dict[str, str] = {}
    formats = opts.validate(skipped)
    ckpt = Path(opts.checkpoint) if opts.checkpoint else find_checkpoint()
    payload, model, spec = load_export_source(ckpt)
    sha = file_sha256(ckpt)
    out = Path(opts.out) if opts.out else EXPORTS_DIR / f"{spec.model}-{sha[:8]}"
    source = {"path": str(ckpt), "sha256": sha, "model": spec.model, "epoch": payload.get("epoch"),
              "best_val_acc": payload.get("best_val_acc")}
    data_from_checkpoint = opts.data is None
    opts = with_data_defaults(opts, payload.get("config") or {})
    plan = run_split_plan(ckpt, payload.get("config") or {}, opts.data)
    log(f"exporting {ckpt} ({spec.model}, sha256 {sha[:12]}) → {out}: {', '.join(f.name for f in formats)}")
    for name, why in skipped.items():
        log(f"  skipped {name}: {why}")
    timings: dict[str, float] = {}
    with staged_folder(out) as workdir:  # an unwritable --out fails first, then data errors, before any build
        calibration, check = _load_data(opts, spec, formats, timings, data_from_checkpoint, plan)
        job = ExportJob(model=model, spec=spec, metadata=model_metadata(spec, sha), workdir=workdir, stem=spec.model,
                        dynamic_batch=opts.dynamic_batch, opset=opts.opset, calibration=calibration,
                        max_drop=opts.max_drop, log=log)
        formats = _build_all(formats, job, timings, log, skip_unsupported=opts.formats.strip() == "all")
        parity = _parity(formats, job, check, timings)
        golden = _golden(formats, job, opts, timings, data_from_checkpoint, plan)
        if plan.record is not None and plan.record.layout == "drawn":  # `edgecls eval` of the same folder needs it
            write_split(workdir / SPLIT_FILE, plan.record)
        manifest = build_manifest(formats, job, source, parity, golden, timings)
        write_manifest(workdir, manifest)
    return ExportResult(out, manifest)


def load_export_source(ckpt: Path):
    """(payload, FP32 eval model, spec); a checkpoint whose weights do not fit its model is one clear error."""
    from edgecls.trainer.checkpoint import model_from_payload, read_checkpoint

    payload = read_checkpoint(ckpt)
    try:
        model, spec = model_from_payload(payload)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        detail = str(e).splitlines()[0] if str(e) else ""
        raise EdgeclsError(f"{ckpt} does not hold a loadable model ({type(e).__name__}: {detail})") from None
    return payload, model, spec


def _load_data(opts: ExportOptions, spec, formats: list[Format], timings: dict[str, float],
               data_from_checkpoint: bool, plan):
    """(calibration or None without INT8, check set or None with --check-images 0)."""
    from .data import load_calibration, load_check_set

    calibration = check = None
    with _data_hint(data_from_checkpoint):
        if any(f.precision == INT8 for f in formats):
            with _timed(timings, "calibration data"):
                calib_plan = plan if (opts.calib_data or opts.data) == opts.data else replace(plan, record=None)
                calibration = load_calibration(opts.calib_data or opts.data, spec, opts.calib_size, opts.seed,
                                               opts.max_drop is not None, opts.data_dir, opts.cache_dir, calib_plan)
        if opts.check_images > 0:
            with _timed(timings, "check data"):
                check = load_check_set(opts.data, spec, opts.check_images, opts.seed, opts.data_dir, opts.cache_dir,
                                       plan)
    return calibration, check


def _golden(formats: list[Format], job: ExportJob, opts: ExportOptions, timings: dict[str, float],
            data_from_checkpoint: bool, plan) -> dict | None:
    """golden.npz in the staging folder (its manifest section), or None with --golden-images 0."""
    if opts.golden_images == 0:
        return None
    from .golden import build_golden

    with _timed(timings, "golden vectors"), _data_hint(data_from_checkpoint):
        return build_golden(formats, job, opts.data, opts.golden_images, opts.seed, opts.data_dir, opts.cache_dir,
                            plan)


@contextlib.contextmanager
def _data_hint(data_from_checkpoint: bool):
    """Data errors name where the data came from, when it was the checkpoint's choice."""
    try:
        yield
    except EdgeclsError as e:
        hint = " (the checkpoint's training data; pass --data)" if data_from_checkpoint else ""
        raise EdgeclsError(f"{e}{hint}") from None


@contextlib.contextmanager
def _timed(timings: dict[str, float], stage: str):
    start = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - start


def with_data_defaults(opts: ExportOptions, config: dict) -> ExportOptions:
    """Default to the data the checkpoint was trained on (its config), else torchvision CIFAR-10."""
    if opts.data is not None:
        return opts
    return replace(opts, data=config.get("data") or "cifar10", data_dir=opts.data_dir or config.get("data_dir"))


def _build_all(formats: list[Format], job: ExportJob, timings: dict[str, float], log: Callable[[str], None],
               skip_unsupported: bool = False) -> list[Format]:
    """FP32 rows come before the INT8 rows that quantize them (resolve_formats orders them so). With
    ``skip_unsupported`` (``--format all``) a format that cannot express this model is listed and left out
    (with the rows built from it); named explicitly, it fails the export. Returns the formats built."""
    built = []
    for fmt in formats:
        if fmt.int8_of and fmt.int8_of not in job.built:
            continue  # its FP32 row was left out just above
        path = job.path(fmt.suffixes[0])
        try:
            with _timed(timings, fmt.name):
                fmt.build(job, path)
        except FormatUnsupported as e:
            if not skip_unsupported:
                raise
            for leftover in job.workdir.glob(f"{job.stem}{fmt.suffixes[0]}*"):
                leftover.unlink()
            for suffix in fmt.suffixes:
                job.path(suffix).unlink(missing_ok=True)
            log(f"  skipped {fmt.name}: {e}")
            continue
        job.built[fmt.name] = path
        built.append(fmt)
        log(f"  built {fmt.name:<14} {timings[fmt.name]:5.1f}s  {', '.join(job.stem + s for s in fmt.suffixes)}")
    return built


def _parity(formats: list[Format], job: ExportJob, check, timings: dict[str, float]) -> dict | None:
    """None without a check set; raises ParityError (nothing gets written) when an FP32 file disagrees."""
    if check is None:
        return None
    from .parity import check_all

    with _timed(timings, "parity"):
        parity = check_all(formats, job.built, job.model, check, batch=64 if job.dynamic_batch else 1)
    if not parity["passed"]:
        failed = [n for n, r in parity["results"].items() if r["passed"] is False]
        raise ParityError(f"FP32 parity with PyTorch failed for {', '.join(failed)}; nothing was written", parity)
    return parity
