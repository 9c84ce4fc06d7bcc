"""INT8 files that keep their accuracy: each INT8 row climbs a ladder of quantization settings until its file's
accuracy on the validation split is within ``max_drop`` points of its FP32 file's, run in the same engine.

One post-training shot is not enough for every network: on depthwise networks naive PTQ can lose double-digit
points (issue 35). So an INT8 row lists the rungs its quantizer has, cheapest first, and each rung offers one or
more candidate files; the first candidate whose drop holds is kept. Every candidate tried is recorded in the
manifest (rung, settings, validation accuracy, drop, seconds), so a bundle says which step each file needed
and what it cost. The gate is measured on the run's validation split, never on test (the split the run
selected on; ``export.data``).

Without ``--max-drop`` the target is :data:`DEFAULT_MAX_DROP` and a row that no rung brings within it keeps
its best candidate, with a warning and ``met: false`` in the manifest; with ``--max-drop`` the bound was asked
for, so missing it fails the export with one line.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from edgecls.errors import EdgeclsError
from edgecls.format_table import FORMATS as BUNDLE_FORMATS

from .job import ExportJob

# Rung names, cheapest first: the manifest and the docs (docs/formats.md, "The INT8 ladder") use these words.
PTQ, CALIBRATION, FLOAT_LAYERS, ACCURACY_CONTROL = "ptq", "calibration", "float-layers", "accuracy-control"
DEFAULT_MAX_DROP = 1.0  # accuracy points on the validation split: issue 35's bound for INT8 against FP32
SENSITIVITY_IMAGES = 64  # calibration images each one-layer probe of a float-layers rung is scored on


@dataclass(frozen=True)
class Candidate:
    """One INT8 file a rung can build: ``build(path)`` writes it (and its companions beside it)."""

    rung: str
    settings: dict
    build: Callable[[Path], None]


Rung = Callable[[ExportJob, "Ladder"], Iterator[Candidate]]


@dataclass
class Ladder:
    """What the climb of one INT8 row knows: the row, the target, and the FP32 file's validation accuracy."""

    fmt_name: str
    max_drop: float
    enforced: bool
    score: Callable[[Path], float]  # validation accuracy of a file, in the row's engine
    fp32_accuracy: float


def float_layer_candidates(ranking: list[tuple[str, float]], settings: dict,
                           build: Callable[[list[str]], Callable[[Path], None]]) -> Iterator[Candidate]:
    """The float-layers rung of every quantizer: the most sensitive layers in float, 1, 2, 4, ... of them, up to
    half the ranked ones. ``ranking``: (layer, RMS logit error with it alone quantized), largest first;
    ``build(layers)``: what writes the file with ``layers`` in float."""
    count = 1
    while count <= max(1, len(ranking) // 2):
        top = ranking[:count]
        names = [name for name, _ in top]
        yield Candidate(FLOAT_LAYERS, {**settings, "float_nodes": names,
                                       "sensitivity_rms_logit_error": {n: round(e, 5) for n, e in top}},
                        build(names))
        count *= 2


def rms_logit_error(logits: np.ndarray, reference: np.ndarray) -> float:
    """How far a probe's logits are from its float file's: a continuous measure that separates candidates on a
    few dozen images, where top-1 agreement moves by one or two."""
    return float(np.sqrt(np.mean((logits.astype(np.float64) - reference.astype(np.float64)) ** 2)))


def validation_scorer(job: ExportJob, engine_runner: Callable[[Path], Callable]) -> Callable[[Path], float] | None:
    """Top-1 accuracy on the calibration's validation images, or None when the data has none."""
    c = job.calibration
    if c is None or c.val_images is None or len(c.val_images) == 0:
        return None
    return lambda path: float((np.argmax(engine_runner(path)(c.val_images), 1) == c.val_labels).mean())


def climb(fmt_name: str, rungs: tuple[Rung, ...], job: ExportJob, path: Path, runner) -> None:
    """Build ``path`` from the first candidate within the target; records the climb in ``job.ladders``."""
    info = BUNDLE_FORMATS[fmt_name]
    score = validation_scorer(job, runner)
    if score is None:  # nothing to measure the drop on: the first rung's file, said so in the manifest
        first = next(rungs[0](job, None))
        first.build(path)
        job.ladders[fmt_name] = {"target_drop_points": None, "kept": first.rung, "attempts": [],
                                 "note": "no validation images: the ladder was not climbed"}
        return
    fp32 = score(job.built[info.int8_of])
    ladder = Ladder(fmt_name, job.max_drop or DEFAULT_MAX_DROP, job.max_drop is not None, score, fp32)
    attempts: list[dict] = []
    with tempfile.TemporaryDirectory(dir=job.workdir, prefix=f".{fmt_name}-ladder-") as scratch:
        kept, file = _first_within(rungs, job, ladder, Path(scratch), path.name, attempts)
        job.ladders[fmt_name] = {"target_drop_points": ladder.max_drop, "fp32_val_accuracy": round(fp32, 5),
                                 "validation_images": len(job.calibration.val_labels), "kept": kept["rung"],
                                 "kept_attempt": attempts.index(kept), "met": kept["met"], "attempts": attempts}
        if not kept["met"]:
            _missed(job, fmt_name, ladder, kept, attempts)
        for src, dst in zip(info.files(file), info.files(path)):
            shutil.move(src, dst)


def _first_within(rungs: tuple[Rung, ...], job: ExportJob, ladder: Ladder, scratch: Path, name: str,
                  attempts: list[dict]) -> tuple[dict, Path]:
    """The first candidate within the target, else the one with the smallest drop."""
    best = None
    for rung in rungs:
        candidates = rung(job, ladder)
        while True:
            start = time.perf_counter()  # a candidate's cost includes what its rung measured to offer it
            candidate = next(candidates, None)
            if candidate is None:
                break
            attempt, file = _try(candidate, scratch / str(len(attempts)) / name, ladder, start)
            attempts.append(attempt)
            if attempt["met"]:
                return attempt, file
            if best is None or attempt["drop_points"] < best[0]["drop_points"]:
                best = (attempt, file)
    return best


def _try(candidate: Candidate, file: Path, ladder: Ladder, start: float) -> tuple[dict, Path]:
    file.parent.mkdir(parents=True)
    candidate.build(file)
    accuracy = ladder.score(file)
    drop = round(100 * (ladder.fp32_accuracy - accuracy), 2)
    return {"rung": candidate.rung, "settings": candidate.settings, "val_accuracy": round(accuracy, 5),
            "drop_points": drop, "met": drop <= ladder.max_drop,
            "seconds": round(time.perf_counter() - start, 2)}, file


def _missed(job: ExportJob, fmt_name: str, ladder: Ladder, kept: dict, attempts: list[dict]) -> None:
    tried = ", ".join(f"{a['rung']} {a['drop_points']:+.1f}" for a in attempts)
    message = (f"{fmt_name}: no quantization step kept the validation accuracy within {ladder.max_drop:g} points "
               f"of FP32 (drops tried: {tried})")
    if ladder.enforced:
        raise EdgeclsError(f"--max-drop {ladder.max_drop:g}: {message}")
    job.log(f"  warning: {message}; kept the {kept['rung']} file ({kept['drop_points']:+.1f})")
