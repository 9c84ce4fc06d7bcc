"""Every built file, run in its own engine, against PyTorch eager FP32 on identical input tensors.

FP32 files must be PyTorch's equal under the bundle's one rule (``edgecls.tolerance.fp32_failures``: every
top-1 equal but for counted near-ties, logits within FP32_MAX_REL_DLOGIT), or the export fails. INT8 files
and the extra checks (e.g. OpenVINO at the CPU's default precision) are
reported (agreement, max |Δlogit|, accuracy change in points) but never fail the export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecls.format_table import FP16, FP32
from edgecls.progress import track
from edgecls.tolerance import (AGREEMENT, FP32_MAX_REL_DLOGIT, MAX_ABS_DLOGIT, MAX_REL_DLOGIT, NEAR_TIES, REFERENCE,
                               TOLERANCE, compare_logits, fp32_failures)

from .data import CheckSet
from .formats import Format, Runner


@torch.no_grad()
def reference_logits(model: nn.Module, images: np.ndarray, batch: int = 250) -> np.ndarray:
    chunks = [model(torch.from_numpy(images[i:i + batch])).float().numpy() for i in range(0, len(images), batch)]
    return np.concatenate(chunks)


def run_batched(run: Runner, images: np.ndarray, batch: int, desc: str) -> np.ndarray:
    starts = range(0, len(images), batch)
    return np.concatenate([run(images[i:i + batch]) for i in track(starts, len(starts), desc)])


def compare(logits: np.ndarray, ref: np.ndarray, labels: np.ndarray) -> dict:
    """The parity row (`edgecls.tolerance.compare_logits`) and the accuracy it costs on ``labels``."""
    accuracy, ref_accuracy = float((logits.argmax(1) == labels).mean()), float((ref.argmax(1) == labels).mean())
    return {**compare_logits(logits, ref), "accuracy": accuracy,
            "accuracy_change_points": round((accuracy - ref_accuracy) * 100, 4)}


def check_format(fmt: Format, path: Path, check: CheckSet, ref: np.ndarray, batch: int) -> dict:
    logits = run_batched(fmt.load(path), check.images, batch, f"checking {fmt.name}")
    row = {"engine": fmt.engine, "precision": fmt.precision, **compare(logits, ref, check.labels)}
    row["gating"] = fmt.precision in (FP32, FP16)  # float files: the same rule, each precision's bar
    row["failures"] = fp32_failures(logits, ref, TOLERANCE[fmt.precision]) if row["gating"] else []
    row["passed"] = not row["failures"] if row["gating"] else None
    row["extra"] = {
        label: compare(run_batched(load(path), check.images, batch, f"checking {fmt.name} ({label})"),
                       ref, check.labels)
        for label, load in fmt.extra_checks
    }
    return row


def check_all(formats: list[Format], built: dict[str, Path], model: nn.Module, check: CheckSet,
              batch: int) -> dict:
    """The manifest's ``parity`` section; ``passed`` is False when any FP32 file disagrees."""
    ref = reference_logits(model, check.images)
    results = {f.name: check_format(f, built[f.name], check, ref, batch) for f in formats}
    return {
        "reference": REFERENCE,
        "images": int(len(check.labels)),
        "data": check.source,
        "batch_size": batch,
        f"fp32_{MAX_REL_DLOGIT}_allowed": FP32_MAX_REL_DLOGIT,
        "reference_accuracy": float((ref.argmax(1) == check.labels).mean()),
        "results": results,
        "passed": all(r["passed"] for r in results.values() if r["gating"]),
    }


def format_table(parity: dict) -> str:
    """A short text table for the terminal."""
    head = (f"{'format':<28}{'precision':<10}{'top-1 agree':>12}{'max|Δlogit|':>13}{'accuracy':>10}"
            f"{'Δacc pts':>10}  result")
    lines = [head]
    for name, r in parity["results"].items():
        verdict = "ok" if r["passed"] else f"FAIL: {'; '.join(r['failures'])}" if r["gating"] else "info"
        if r["gating"] and r[NEAR_TIES]:
            verdict += f" ({r[NEAR_TIES]} near-tie(s) excused)"
        lines.append(_row(name, r["precision"], r, verdict))
        lines += [_row(f"  └ {label}", "", e, "info") for label, e in r["extra"].items()]
    lines.append(f"reference: PyTorch eager FP32, accuracy {parity['reference_accuracy']:.2%} on "
                 f"{parity['images']} images ({parity['data']})")
    return "\n".join(lines)


def _row(name: str, precision: str, r: dict, verdict: str) -> str:
    return (f"{name:<28}{precision:<10}{r[AGREEMENT]:>12.2%}{r[MAX_ABS_DLOGIT]:>13.2e}"
            f"{r['accuracy']:>10.2%}{r['accuracy_change_points']:>+10.2f}  {verdict}")
