"""One file against its bundle's golden vectors: the per-file rule of `edgecls verify` and of the runtime's proof.

Both call `score_file` on a file already opened in its engine, so what `verify` reports for a file and what
``Classifier.load`` decides before answering from it are one rule: FP32 and FP16 files must reproduce
PyTorch's logits within their precision's bar, in f32 arithmetic; INT8 files must agree with the logits they
gave on the build machine and with PyTorch no worse than the build machine did; every file must take the
batches its manifest entry records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgecls.format_table import FORMATS, FP16, FP32
from edgecls.golden_file import Golden
from edgecls.tolerance import (AGREEMENT, MAX_ABS_DLOGIT, MAX_REL_DLOGIT, NEAR_TIE_REL, NEAR_TIES, REFERENCE,
                               compare_logits, dlogits, fp32_failures, logit_scale, top1_agreement)

if TYPE_CHECKING:
    from .classifier import Classifier


@dataclass
class Row:
    format: str
    engine: str
    version: str = ""
    device: str = ""
    precision: str = ""  # the format's (fp32 | int8)
    float_math: str = ""  # what the engine computes float ops in (f32, bf16, …)
    agreement: float | None = None  # top-1 agreement with PyTorch's logits
    near_ties: int | None = None  # FP32: moved top-1s the near-tie rule excused (edgecls.tolerance.top1_agreement)
    max_abs_dlogit: float | None = None
    max_rel_dlogit: float | None = None  # relative to the largest |logit| PyTorch gave
    agreement_build: float | None = None  # INT8: with this file's own build-machine logits
    max_rel_dlogit_build: float | None = None
    worst_image: str | None = None
    passed: bool | None = None  # None: not run here (see note)
    note: str = ""


def score_file(clf: Classifier, entry: dict, golden: Golden, tolerance: dict) -> Row:
    """``clf``: the file of manifest ``entry``, open in the engine that answers from it; ``golden``: the bundle's
    vectors (at least the images, their names, PyTorch's logits and this format's); ``tolerance``: the bundle's
    bar (`edgecls.tolerance.bundle_tolerance`)."""
    info = FORMATS[entry["format"]]
    engine = clf.engine
    row = Row(info.name, clf.choice.engine, engine.version, engine.device, info.precision, engine.precision)
    mismatch = batch_mismatch(entry, engine)
    if mismatch:  # fed as the manifest says, such a file would fail or answer for padding: refuse it by name
        row.passed, row.note = False, mismatch
        return row
    _score(row, clf.logits(golden.images), golden, tolerance[info.precision], build=golden.logits.get(info.name),
           native=clf.choice.engine == info.engine)
    return row


def note_line(row: Row) -> str:
    """The row's line under verify's table."""
    return f"{row.format}: {explained(row)}"


def explained(row: Row) -> str:
    """The row's note, with the first image that moved when it failed."""
    worst = f" (worst image {row.worst_image})" if row.passed is False and row.worst_image else ""
    return f"{row.note}{worst}"


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


def _score(row: Row, logits: np.ndarray, golden: Golden, bar: dict, build: np.ndarray | None, native: bool) -> None:
    ref = golden.logits[REFERENCE]
    parity = compare_logits(logits, ref, bar.get("near_tie_rel", NEAR_TIE_REL))
    row.agreement, row.max_abs_dlogit, row.max_rel_dlogit = (parity[AGREEMENT], parity[MAX_ABS_DLOGIT],
                                                             parity[MAX_REL_DLOGIT])
    row.worst_image = golden.names[_worst(logits, ref)]
    if row.precision in (FP32, FP16):  # float files: the same rule, each precision's bar
        row.near_ties = parity[NEAR_TIES]
        failures = fp32_failures(logits, ref, bar) + [reduced_math(row.float_math)]
    else:
        failures = _int8_failures(row, logits, ref, build, bar, native)
    failures = [f for f in failures if f]
    row.passed = not failures
    row.note = "; ".join(failures) or (f"{row.near_ties} near-tie(s) excused by the near-tie rule"
                                       if row.near_ties else "")


def _int8_failures(row: Row, logits: np.ndarray, ref: np.ndarray, build: np.ndarray | None, bar: dict,
                   native: bool) -> list[str]:
    """No worse than the build machine against PyTorch, in any engine; in the engine that gave the build-machine
    logits (``native``), also close to them. Another engine's integer kernels are another computation."""
    if build is None:  # a bundle without this file's build logits: only what PyTorch gives to compare with
        return []
    floor = top1_agreement(build, ref).rate - bar["max_agreement_drop"]
    failures = [f"top-1 agreement with PyTorch {row.agreement:.2%} < {floor:.2%} (the build machine's, less "
                f"{bar['max_agreement_drop']:.0%})" if row.agreement < floor else ""]
    if not native:
        return failures
    row.agreement_build = top1_agreement(logits, build).rate
    row.max_rel_dlogit_build = dlogits(logits, build)[0] / logit_scale(ref)  # relative to PyTorch's scale
    return [f"agreement with its build-machine logits {row.agreement_build:.2%} < {bar['min_agreement_build']:.0%}"
            if row.agreement_build < bar["min_agreement_build"] else "",
            f"relative |Δlogit| to its build-machine logits {row.max_rel_dlogit_build:.2f} > "
            f"{bar['max_rel_dlogit_build']}" if row.max_rel_dlogit_build > bar["max_rel_dlogit_build"] else "",
            *failures]


def _worst(logits: np.ndarray, ref: np.ndarray) -> int:
    """The first image whose top-1 moved, else the one with the largest |Δlogit|."""
    moved = np.flatnonzero(logits.argmax(1) != ref.argmax(1))
    return int(moved[0]) if len(moved) else int(np.abs(logits.astype(np.float64) - ref).max(1).argmax())
