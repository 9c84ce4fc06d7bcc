"""The export gate's one near-tie rule (edgecls.tolerance) on a real exported file and real test images.

The shipped ResNet-20's final layer is edited so that, on one real test image, its top two classes sit a
stated distance apart. The file is exported from one edit and gated against the other: the two differ by a
bias shift on one class, so every image's logits move by exactly that shift and the planted image's
top-1 moves. Within the rule's bound the gate passes and counts one near-tie; beyond it, it refuses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgecls.export.data import CheckSet, load_check_set
from edgecls.export.formats import FORMATS
from edgecls.export.parity import check_all, reference_logits
from edgecls.export.pipeline import ExportOptions, export_checkpoint
from edgecls.shipped import reference_checkpoint
from edgecls.spec import ModelSpec
from edgecls.tolerance import AGREEMENT, FP32_MAX_REL_DLOGIT, NEAR_TIE_REL
from edgecls.trainer.checkpoint import load_checkpoint, model_from_payload, read_checkpoint


SHIPPED = reference_checkpoint()
IMAGES = 20  # few enough that no other image sits within the shifts below (checked)


@pytest.fixture(scope="module")
def check(cifar_dir, cache_dir) -> CheckSet:
    _, meta = load_checkpoint(SHIPPED)
    return load_check_set(str(cifar_dir), ModelSpec.from_dict(meta), IMAGES, 0, None, str(cache_dir))


def planted(tmp_path: Path, check: CheckSet, gap_rel: float) -> tuple[Path, torch.nn.Module, int, float]:
    """(file exported from edit A, eager edit B, the planted image, the bias shift between them).

    In B the planted image's top class leads its runner-up by ``gap_rel`` × B's largest |logit|; A adds
    twice that gap to the runner-up's bias, so in A the runner-up leads by the same gap."""
    payload = read_checkpoint(SHIPPED)
    model, _ = model_from_payload(payload)
    logits = reference_logits(model, check.images)
    image = 0
    top, second = np.argsort(logits[image])[::-1][:2]
    scale = float(np.abs(logits).max())
    bias = payload["state_dict"]["fc.bias"]
    bias[second] += float(logits[image, top] - logits[image, second]) - gap_rel * scale  # B: gap_rel apart
    reference, _ = model_from_payload(payload)
    shift = 2 * gap_rel * scale
    bias[second] += shift  # A: the runner-up ahead by the same gap
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    out = tmp_path / "export"
    export_checkpoint(ExportOptions(checkpoint=edited, formats="onnx", out=out, check_images=0, golden_images=0),
                      log=lambda m: None)
    return out / "resnet20.onnx", reference, image, shift


def gate(file: Path, reference: torch.nn.Module, check: CheckSet) -> dict:
    return check_all([FORMATS["onnx"]], {"onnx": file}, reference, check, batch=64)


def test_the_gate_excuses_a_planted_near_tie_and_counts_it(tmp_path, check):
    gap_rel = FP32_MAX_REL_DLOGIT / 4  # the logits move by half the bar; the gap is an eighth of the bound
    file, reference, _, shift = planted(tmp_path, check, gap_rel)
    ref = reference_logits(reference, check.images)
    assert shift <= FP32_MAX_REL_DLOGIT * np.abs(ref).max() and gap_rel <= NEAR_TIE_REL
    parity = gate(file, reference, check)
    row = parity["results"]["onnx"]
    assert parity["passed"] and row["passed"], row
    assert row["near_ties"] == 1 and row[AGREEMENT] == (IMAGES - 1) / IMAGES, row


def test_the_gate_refuses_a_real_flip(tmp_path, check):
    gap_rel = 10 * NEAR_TIE_REL  # ten times the near-tie bound apart
    file, reference, _, _ = planted(tmp_path, check, gap_rel)
    parity = gate(file, reference, check)
    row = parity["results"]["onnx"]
    assert not parity["passed"] and row["passed"] is False, row
    assert row["near_ties"] == 0 and any("1 real flip(s), first at image 0" in f for f in row["failures"]), row
