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

from edgecls.bundle import has_manifest, manifest_path, read_manifest, verify_files
from edgecls.errors import UsageError
from edgecls.format_table import FORMATS, FP32, TORCH
from edgecls.golden_file import Golden, read_golden
from edgecls.spec import ModelSpec
from edgecls.tolerance import bundle_tolerance, top1_agreement

from .classifier import Classifier
from .engines import PINNED, engine_available, missing_engine, open_engine
from .golden_rule import Row, note_line, score_file
from .model_files import BACKENDS, ModelChoice
from .preprocess import load_rgb, resize_for_model

END_TO_END = "end-to-end"


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
    tolerance = bundle_tolerance(manifest)
    entries = [e for e in manifest["files"] if only is None or e["path"] == only]
    if not entries:
        raise UsageError(f"{path} is not listed in {manifest_path(folder)}")
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
    if not has_manifest(path.parent):
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
    row = score_file(clf, entry, golden, tolerance)
    return row, clf if row.agreement is not None else None  # a file refused for its batch limits is not run


def _end_to_end_row(golden: Golden, classifiers: list[tuple[Row, Classifier]], bar: dict) -> Row:
    """Encoded file → this machine's decoder → preprocess → label, against the same file's label for the
    build machine's decoded pixels; through the first FP32 file that ran."""
    source, clf = next(((r, c) for r, c in classifiers if r.precision == FP32), classifiers[0])
    size = clf.spec.input_size
    pixels = np.stack([resize_for_model(load_rgb(blob, size), clf.spec) for blob in golden.encoded])
    same = int(np.all(pixels == golden.images, axis=(1, 2, 3)).sum())
    max_pixel = int(np.abs(pixels.astype(np.int16) - golden.images).max())
    labels = clf.logits(pixels).argmax(1)
    ref = clf.logits(golden.images)  # the same engine on the build machine's pixels: isolates the decoder
    agreement = top1_agreement(labels, ref).rate
    moved = np.flatnonzero(labels != ref.argmax(1))
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
    notes = [note_line(r) for r in report.rows if r.note]
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
