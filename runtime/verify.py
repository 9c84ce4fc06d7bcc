"""Re-prove a bundle on the machine that runs it: every file, its engine, this CPU, no PyTorch.

Each model file runs the bundle's golden images through the runtime's own engines (the code
``Classifier`` and ``edgecls infer`` run) and is held to the tolerances its manifest records:
FP32 files must reproduce PyTorch's logits; INT8 files must agree with PyTorch and with the logits
they gave on the build machine. The end-to-end row decodes the original encoded files, so a JPEG
decoder that differs from the build machine's shows up apart from the engines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgecls.bundle import (FORMATS, FP16, FP32, INT8, REFERENCE, TOLERANCE, TORCH, Golden, fp32_failures, read_golden,
                            read_manifest, top1_agreement, verify_files)
from edgecls.errors import UsageError
from edgecls.spec import ModelSpec

from .classifier import Classifier
from .engines import PINNED, engine_available, missing_engine, open_engine
from .model_files import BACKENDS, ModelChoice
from .preprocess import load_rgb, resize_for_model

END_TO_END = "end-to-end"


@dataclass
class Row:
    format: str
    engine: str
    version: str = ""
    device: str = ""
    precision: str = ""  # the format's (fp32 | int8)
    float_math: str = ""  # what the engine computes float ops in (f32, bf16, …)
    agreement: float | None = None  # top-1 agreement with PyTorch's logits
    near_ties: int | None = None  # FP32: moved top-1s the near-tie rule excused (edgecls.bundle.top1_agreement)
    max_abs_dlogit: float | None = None
    max_rel_dlogit: float | None = None  # relative to the largest |logit| PyTorch gave
    agreement_build: float | None = None  # INT8: with this file's own build-machine logits
    max_rel_dlogit_build: float | None = None
    worst_image: str | None = None
    passed: bool | None = None  # None: not run here (see note)
    note: str = ""


@dataclass
class VerifyReport:
    folder: Path
    model: str
    images: int
    rows: list[Row]

    @property
    def passed(self) -> bool:
        ran = [r for r in self.rows if r.passed is not None]
        return bool(ran) and all(r.passed for r in ran)

    def to_dict(self) -> dict:
        return {"folder": str(self.folder), "model": self.model, "images": self.images, "passed": self.passed,
                "rows": [asdict(r) for r in self.rows]}


def verify_bundle(path: Path, backend: str = "auto", device: str | None = None, precision: str = PINNED,
                  threads: int | None = None) -> VerifyReport:
    """``path``: an export folder, or one model file inside one (only that file is checked)."""
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    folder, only = _bundle_of(Path(path))
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    golden = read_golden(folder, manifest)
    spec = ModelSpec.from_dict(manifest["spec"])
    recorded = manifest["golden"].get("tolerance") or {}
    tolerance = {kind: {**bar, **recorded.get(kind, {})} for kind, bar in TOLERANCE.items()}  # the bundle's own bar
    entries = [e for e in manifest["files"] if only is None or e["path"] == only]
    if not entries:
        raise UsageError(f"{path} is not listed in {folder / 'manifest.json'}")
    rows, classifiers = [], []
    for entry in entries:
        row, clf = _tensor_row(folder, entry, golden, spec, tolerance, backend, device, precision, threads)
        rows.append(row)
        if clf is not None:
            classifiers.append((row, clf))
    if classifiers:
        rows.append(_end_to_end_row(golden, classifiers, tolerance["end_to_end"]))
    return VerifyReport(folder, spec.model, len(golden.labels), rows)


def _bundle_of(path: Path) -> tuple[Path, str | None]:
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if path.is_dir():
        return path, None
    if not (path.parent / "manifest.json").is_file():
        raise UsageError(f"{path} is not inside an export folder; verify needs the folder's golden vectors")
    return path.parent, path.name


def _tensor_row(folder: Path, entry: dict, golden: Golden, spec: ModelSpec, tolerance: dict, backend: str,
                device: str | None, precision: str, threads: int | None) -> tuple[Row, Classifier | None]:
    info = FORMATS[entry["format"]]
    engine = info.engine if backend == "auto" else backend
    row = Row(entry["format"], engine, precision=info.precision)
    if engine not in info.engines:
        row.note = f"the {backend} backend cannot run this format"
    elif engine == TORCH:
        row.note = "needs PyTorch; proven by the exporter's parity gate"
    elif not engine_available(engine):
        row.note = missing_engine(engine)
    if row.note:
        return row, None
    path = folder / entry["path"]
    clf = Classifier(open_engine(engine, path, threads, device, precision), spec,
                     ModelChoice(path, info.name, engine, folder))
    row.version, row.device, row.float_math = clf.engine.version, clf.engine.device, clf.engine.precision
    mismatch = batch_mismatch(entry, clf.engine)
    if mismatch:  # fed as the manifest says, such a file would fail or answer for padding: refuse it by name
        row.passed, row.note = False, mismatch
        return row, None
    logits = clf.logits(golden.images)
    _score(row, logits, golden, tolerance[info.precision], build=golden.logits.get(info.name)
           if info.precision == INT8 and engine == info.engine else None)
    return row, clf


def reduced_math(float_math: str) -> str:
    """A float file's bar holds for f32 arithmetic: an engine that reports less (NCNN's default fp16 storage,
    OpenVINO's bf16) fails by name even where its error happens to stay under the bar ('' at f32)."""
    if float_math in ("f32", "unknown", ""):
        return ""
    return f"the engine computed in {float_math}, not f32 (run without --precision default)"


def batch_mismatch(entry: dict, engine) -> str:
    """Why the file's own batch limits contradict its manifest entry ('' when they agree)."""
    recorded = (entry.get("input_shape") or ["batch"])[0]
    fixed = getattr(engine, "fixed_batch", None)
    if isinstance(recorded, int) and fixed != recorded:
        return f"the file takes {'any batch' if fixed is None else f'batches of {fixed}'}, its manifest says {recorded}"
    if recorded == "batch" and fixed is not None:
        return f"the file takes batches of {fixed} only, its manifest says any batch"
    bound = getattr(engine, "max_batch", None)
    if "max_batch" in entry and bound != entry["max_batch"]:
        return f"the file takes at most {bound} images per call, its manifest says {entry['max_batch']}"
    return ""


def _score(row: Row, logits: np.ndarray, golden: Golden, bar: dict, build: np.ndarray | None) -> None:
    ref = golden.logits[REFERENCE]
    diff = np.abs(logits.astype(np.float64) - ref)
    scale = float(np.abs(ref).max()) or 1.0
    row.agreement = _agreement(logits, ref)
    row.max_abs_dlogit = float(diff.max())
    row.max_rel_dlogit = row.max_abs_dlogit / scale
    row.worst_image = golden.names[_worst(logits, ref, diff)]
    if row.precision in (FP32, FP16):  # float files: the same rule, each precision's bar
        row.near_ties = len(top1_agreement(logits, ref, bar["near_tie_rel"]).near_ties)
        failures = fp32_failures(logits, ref, bar) + [reduced_math(row.float_math)]
    else:
        failures = _int8_failures(row, logits, ref, build, scale, bar)
    failures = [f for f in failures if f]
    row.passed = not failures
    row.note = "; ".join(failures) or (f"{row.near_ties} near-tie(s) excused by the near-tie rule"
                                       if row.near_ties else "")


def _int8_failures(row: Row, logits: np.ndarray, ref: np.ndarray, build: np.ndarray | None, scale: float,
                   bar: dict) -> list[str]:
    """Against its own build-machine logits, and no worse than the build machine against PyTorch."""
    if build is None:  # run in another engine than it was built for: only PyTorch to compare with
        return []
    row.agreement_build = _agreement(logits, build)
    row.max_rel_dlogit_build = float(np.abs(logits.astype(np.float64) - build).max()) / scale
    floor = _agreement(build, ref) - bar["max_agreement_drop"]
    return [f"agreement with its build-machine logits {row.agreement_build:.2%} < {bar['min_agreement_build']:.0%}"
            if row.agreement_build < bar["min_agreement_build"] else "",
            f"relative |Δlogit| to its build-machine logits {row.max_rel_dlogit_build:.2f} > "
            f"{bar['max_rel_dlogit_build']}" if row.max_rel_dlogit_build > bar["max_rel_dlogit_build"] else "",
            f"top-1 agreement with PyTorch {row.agreement:.2%} < {floor:.2%} (the build machine's, less "
            f"{bar['max_agreement_drop']:.0%})" if row.agreement < floor else ""]


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def _worst(logits: np.ndarray, ref: np.ndarray, diff: np.ndarray) -> int:
    """The first image whose top-1 moved, else the one with the largest |Δlogit|."""
    moved = np.flatnonzero(logits.argmax(1) != ref.argmax(1))
    return int(moved[0]) if len(moved) else int(diff.max(1).argmax())


def _end_to_end_row(golden: Golden, classifiers: list[tuple[Row, Classifier]], bar: dict) -> Row:
    """Encoded file → this machine's decoder → preprocess → label, against the same file's label for the
    build machine's decoded pixels; through the first FP32 file that ran."""
    source, clf = next(((r, c) for r, c in classifiers if r.precision == FP32), classifiers[0])
    size = clf.spec.input_size
    pixels = np.stack([resize_for_model(load_rgb(blob, size), clf.spec) for blob in golden.encoded])
    same = int(np.all(pixels == golden.images, axis=(1, 2, 3)).sum())
    max_pixel = int(np.abs(pixels.astype(np.int16) - golden.images).max())
    labels = clf.logits(pixels).argmax(1)
    ref = clf.logits(golden.images).argmax(1)  # the same engine on the build machine's pixels: isolates the decoder
    agreement = float((labels == ref).mean())
    moved = np.flatnonzero(labels != ref)
    row = Row(END_TO_END, source.engine, source.version, source.device, source.precision, source.float_math,
              agreement=agreement, worst_image=golden.names[int(moved[0])] if len(moved) else None,
              passed=agreement >= bar["min_agreement"])
    decoded = f"decoded pixels identical on {same}/{len(pixels)} images (max |Δpixel| {max_pixel}); via {source.format}"
    row.note = decoded if row.passed else f"top-1 agreement {agreement:.2%} < {bar['min_agreement']:.0%}; {decoded}"
    return row


def format_report(report: VerifyReport) -> str:
    """A plain table for the terminal, one row per file plus the end-to-end row."""
    head = ("format", "engine", "device", "precision", "agree", "max|Δ|", "rel", "agree(build)", "result")
    lines = [head] + [_cells(r) for r in report.rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    notes = [f"{r.format}: {r.note}" + (f" (worst image {r.worst_image})" if r.passed is False and r.worst_image
                                         else "") for r in report.rows if r.note]
    verdict = "PASS" if report.passed else "FAIL"
    return "\n".join(text + notes + [f"{verdict}: {report.model}, {report.images} golden images, {report.folder}"])


def _cells(r: Row) -> tuple[str, ...]:
    pct = lambda v: "-" if v is None else f"{v:.2%}"  # noqa: E731
    sci = lambda v: "-" if v is None else f"{v:.1e}"  # noqa: E731
    result = "skip" if r.passed is None else "pass" if r.passed else "FAIL"
    precision = f"{r.precision} ({r.float_math})" if r.float_math else r.precision
    engine = f"{r.engine} {r.version}".strip()
    return (r.format, engine, r.device or "-", precision, pct(r.agreement), sci(r.max_abs_dlogit),
            sci(r.max_rel_dlogit), pct(r.agreement_build), result)
