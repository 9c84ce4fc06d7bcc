"""What "equal to PyTorch" means, and the words for it: one rule and one vocabulary for the export gate, verify,
benchmark and the tests.

A parity row (``compare_logits``) is the same dict wherever it is written: the manifest's ``parity`` section,
``edgecls benchmark``'s rows and ``edgecls verify``'s report all name its fields by the constants below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .format_table import FP16, FP32, INT8

if TYPE_CHECKING:  # numpy is imported where logits are compared: the CLI starts without it
    import numpy as np

REFERENCE = "pytorch"  # PyTorch eager FP32: the logits every format is compared with, by this one name

# The parity vocabulary: a file's logits against the reference's on the same images.
AGREEMENT = "agreement"  # plain top-1 agreement, a fraction
NEAR_TIES = "near_ties"  # moved top-1s the near-tie rule excused
MAX_ABS_DLOGIT = "max_abs_dlogit"  # max |Δlogit|
MAX_REL_DLOGIT = "max_rel_dlogit"  # max |Δlogit| over the reference's largest |logit|
PARITY_KEYS = (AGREEMENT, NEAR_TIES, MAX_ABS_DLOGIT, MAX_REL_DLOGIT)

# FP32 files: logits within this fraction of the reference's largest |logit|. Kernels differ by instruction
# set (oneDNN eager, MLAS, OpenVINO; AVX2, AVX-512, AMX; batch 1 to 500; channels_last): the shipped bundles'
# parity rows measured 3.3e-6 (ResNet-20) and 4.3e-6 (airbench) absolute on 1,000 and 10,000 test images,
# 4e-7 and 8e-7 of their largest |logit| (8.1 and 5.5), so 1e-4 leaves >100x headroom and still catches a
# changed weight.
FP32_MAX_REL_DLOGIT = 1e-4
# A top-1 that moved is a near-tie, and excused, when the reference scores the two classes within this
# fraction of its largest |logit|: within the logit bound each may move by FP32_MAX_REL_DLOGIT, in opposite ways.
NEAR_TIE_REL = 2 * FP32_MAX_REL_DLOGIT
# Near-ties are rare: 3 and 2 of the 10,000 CIFAR-10 test images sit that close for the shipped ResNet-20 and
# airbench (benchmarks/results/near-ties-2026-12-04.txt). More than this fraction of the images (and at least
# one) excused says the logits are not honest rounding, so the row fails.
NEAR_TIE_MAX_FRACTION = 0.01


@dataclass(frozen=True)
class Agreement:
    """Top-1 of a file against the reference, with the near-ties it excused counted, not hidden."""
    images: int
    same: int  # identical top-1
    near_ties: tuple[int, ...]  # image indices whose top-1 moved between two classes the reference nearly ties
    flips: tuple[int, ...]  # image indices whose top-1 moved for real

    @property
    def rate(self) -> float:
        """Plain top-1 agreement, as tables quote it."""
        return self.same / self.images if self.images else 1.0

    @property
    def near_tie_cap(self) -> int:
        return near_tie_cap(self.images)

    @property
    def holds(self) -> bool:
        """Every top-1 equal, near-ties excused up to the cap."""
        return not self.flips and len(self.near_ties) <= self.near_tie_cap

    def describe(self) -> str:
        text = f"top-1 agreement {self.rate:.2%} ({self.same}/{self.images})"
        if self.near_ties:
            text += f", {len(self.near_ties)} near-tie(s) excused (cap {self.near_tie_cap})"
        if self.flips:
            text += f", {len(self.flips)} real flip(s), first at image {self.flips[0]}"
        return text


def near_tie_cap(images: int) -> int:
    """How many near-ties a row of ``images`` may excuse."""
    return max(1, int(NEAR_TIE_MAX_FRACTION * images))


def top1_agreement(pred: np.ndarray, ref: np.ndarray, near_tie_rel: float = NEAR_TIE_REL) -> Agreement:
    """``pred``: logits (N, C) or top-1 labels (N,). A moved top-1 is a near-tie when ``ref`` scores its own
    class and ``pred``'s within ``near_tie_rel`` of its largest |logit|."""
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64)
    pred = np.asarray(pred)
    pred = pred.argmax(1) if pred.ndim == 2 else pred
    ref_pred = ref.argmax(1)
    moved = np.flatnonzero(pred != ref_pred)
    gaps = ref[moved, ref_pred[moved]] - ref[moved, pred[moved]]
    near = gaps <= _near_tie_bound(ref, near_tie_rel)
    return Agreement(len(ref), len(ref) - len(moved), tuple(int(i) for i in moved[near]),
                     tuple(int(i) for i in moved[~near]))


def near_tie_images(ref: np.ndarray, near_tie_rel: float = NEAR_TIE_REL) -> np.ndarray:
    """Indices of the images whose top-1 the rule would excuse moving: ``ref``'s top two within the bound."""
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64)
    top2 = np.sort(ref, axis=1)[:, -2:]
    return np.flatnonzero(top2[:, 1] - top2[:, 0] <= _near_tie_bound(ref, near_tie_rel))


def _near_tie_bound(ref: np.ndarray, near_tie_rel: float) -> float:
    return near_tie_rel * logit_scale(ref)


def logit_scale(ref: np.ndarray) -> float:
    """The reference's largest |logit|: what relative |Δlogit| is relative to."""
    import numpy as np

    return float(np.abs(ref).max()) or 1.0


def max_rel_dlogit(logits: np.ndarray, ref: np.ndarray) -> float:
    """max |Δlogit| over the reference's largest |logit|: the scale-free FP32 logit bar."""
    return dlogits(logits, ref)[1]


def dlogits(logits: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """max |Δlogit| of ``logits`` against ``ref``: absolute, and over the reference's largest |logit|."""
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64)
    diff = float(np.abs(np.asarray(logits, dtype=np.float64) - ref).max())
    return diff, diff / logit_scale(ref)


def fp32_failures(logits: np.ndarray, ref: np.ndarray, bar: dict | None = None) -> list[str]:
    """Why an FP32 file is not PyTorch's equal (empty: it is), under ``bar`` (a bundle's recorded TOLERANCE[FP32])."""
    bar = {**TOLERANCE[FP32], **(bar or {})}
    agreement = top1_agreement(logits, ref, bar["near_tie_rel"])
    rel = max_rel_dlogit(logits, ref)
    return [f for f in (
        "" if agreement.holds else agreement.describe(),
        f"max relative |Δlogit| {rel:.1e} > {bar[MAX_REL_DLOGIT]:.0e}" if rel > bar[MAX_REL_DLOGIT] else "")
        if f]


# FP16 files (ONNX FP16, OpenVINO FP16): the FP32 rule with a bar for half-precision weights (and, for ONNX,
# activations rounded to FP16 between kernels). Measured on the shipped bundles' parity rows: see FP16 below.
FP16_MAX_REL_DLOGIT = 1e-2

# What verify holds each row to; written into the manifest so a bundle carries its own bar.
# FP32: the rule above. INT8: integer kernels differ between CPUs (VNNI or not), so top-1 agreement is the
# gate: with its own build-machine logits, and with PyTorch no worse than the build machine's agreement by
# more than a few images; a loose logit bound catches a broken kernel.
# End to end: JPEG decoders differ between builds, so a few labels may move.
TOLERANCE = {
    FP32: {MAX_REL_DLOGIT: FP32_MAX_REL_DLOGIT, "near_tie_rel": NEAR_TIE_REL},
    INT8: {"min_agreement_build": 0.95, "max_rel_dlogit_build": 0.10, "max_agreement_drop": 0.05},
    FP16: {MAX_REL_DLOGIT: FP16_MAX_REL_DLOGIT, "near_tie_rel": 2 * FP16_MAX_REL_DLOGIT},
    "end_to_end": {"min_agreement": 0.95},
}


def compare_logits(logits: np.ndarray, ref: np.ndarray, near_tie_rel: float = NEAR_TIE_REL) -> dict:
    """A parity row: agreement, near-ties, max absolute and relative |Δlogit| of ``logits`` against ``ref``."""
    agreement = top1_agreement(logits, ref, near_tie_rel)
    diff, rel = dlogits(logits, ref)
    return {AGREEMENT: agreement.rate, NEAR_TIES: len(agreement.near_ties), MAX_ABS_DLOGIT: diff, MAX_REL_DLOGIT: rel}


def bundle_tolerance(manifest: dict) -> dict[str, dict]:
    """The bar a bundle's files are held to: what its manifest recorded, over TOLERANCE for what it did not."""
    recorded = (manifest.get("golden") or {}).get("tolerance") or {}
    return {kind: {**bar, **recorded.get(kind, {})} for kind, bar in TOLERANCE.items()}
