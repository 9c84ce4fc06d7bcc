"""Accuracy parity on the full CIFAR-10 test set (issue 6): every exported format against PyTorch.

The shipped reference ResNet-20 is exported freshly to every format plus INT8, without the exporter's
own check, and all 10,000 test JPEGs run through each engine once per module, under the exporter's own
rule (``edgecls.tolerance``) on ten times its images: this suite is the full-size proof. Failures list the
images that disagree, with both top-1 labels and the largest |Δlogit|.

ResNet-18 runs on every test run too, on a checkpoint trained here on 512 images (issue 27):
its FP32 files against PyTorch on a seeded 1,000 of the test images. On 2 cores ResNet-18 classifies
140-220 img/s, so 10,000 images through the seven passes below would take about 7 minutes. The subset
proves the same thing: every FP32 check is per image (the logit bar, top-1 up to near-ties, hits
against `edgecls eval` on the same images), the decoding and preprocessing those images go through is
the one ResNet-20 proves on all 10,000, and what is ResNet-18's own (its graph in each format) is in
every one of the 1,000 forward passes. Its INT8 checks need a converged model, which a CPU cannot train
within a test run (one trained for half a minute agreed with its INT8 file on 18%: its logits are not yet
meaningful): they run, with everything on all 10,000 images, when ``EDGECLS_RESNET18_CKPT`` names a
trained ResNet-18 (one GPU-minute of `edgecls train --model resnet18`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgecls.export.formats import FORMATS
from edgecls.shipped import reference_checkpoint
from edgecls.spec import ModelSpec
from edgecls.tolerance import fp32_failures, near_tie_images, top1_agreement

from .conftest import torchvision_transform, train_briefly

pytestmark = [pytest.mark.parity,
              pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:FutureWarning")]

REFERENCE = reference_checkpoint()
RESNET18_ENV = "EDGECLS_RESNET18_CKPT"
TEST_IMAGES = 10_000
CI_RESNET18_IMAGES = 1_000
FP32 = ("torchscript", "onnx", "openvino")
INT8 = ("onnx-int8", "openvino-int8")
MAX_INT8_CHANGE_POINTS = 0.5
MIN_INT8_AGREEMENT = 0.99
SHOWN = 20  # disagreeing images listed in a failure


@dataclass
class Case:
    name: str
    checkpoint: Path
    model: torch.nn.Module
    spec: ModelSpec
    export: dict[str, Path]  # format → model file
    classes: tuple[str, ...]
    paths: list[Path]  # test JPEGs, in the order of labels and logits
    labels: np.ndarray
    ref: np.ndarray  # PyTorch eager logits
    logits: dict[str, np.ndarray]  # format → logits on the same tensors
    limit: int | None  # a seeded subset of the test images (`ImageSet.subset`, seed 0); None: all of them


@pytest.fixture(scope="module", params=["resnet20", "resnet18"])
def case(request, tmp_path_factory, cifar_dir, cache_dir) -> Case:
    from edgecls.export.data import load_check_set
    from edgecls.export.parity import reference_logits, run_batched
    from edgecls.export.pipeline import ExportOptions, export_checkpoint
    from edgecls.imagefolder import subset_indices
    from edgecls.trainer.checkpoint import load_checkpoint
    from edgecls.trainer.data.folder import scan_classes

    given = os.environ.get(RESNET18_ENV) if request.param == "resnet18" else None
    if given and not Path(given).is_file():
        pytest.fail(f"{RESNET18_ENV}={given} is not a file")
    if request.param == "resnet20":
        checkpoint, limit, int8 = REFERENCE, None, True
    elif given:
        checkpoint, limit, int8 = Path(given), None, True
    else:
        # one epoch of 512 images: weights and BN statistics off their initial values, which is all FP32 parity needs
        checkpoint = train_briefly(tmp_path_factory.mktemp("resnet18"), cifar_dir, cache_dir, "resnet18", epochs=1,
                                   warmup=0.2, limit_train=512)
        limit, int8 = CI_RESNET18_IMAGES, False
    out = tmp_path_factory.mktemp(f"parity-{request.param}") / "export"
    # the edge formats' 10,000-image parity is benchmarks/edge_formats.py (issue 25), not a test's time
    # no exporter check and no golden vectors: this module runs every file on its own images
    opts = ExportOptions(checkpoint=checkpoint, formats="torchscript,onnx,openvino", int8=int8, out=out,
                         data=str(cifar_dir), cache_dir=str(cache_dir), check_images=0, golden_images=0)
    manifest = export_checkpoint(opts, log=lambda m: None).manifest
    export = {e["format"]: out / e["path"] for e in manifest["files"]}
    model, meta = load_checkpoint(checkpoint)
    assert meta["model"] == request.param, f"{checkpoint} holds a {meta['model']}, not a {request.param}"
    spec = ModelSpec.from_dict(manifest["spec"])
    check = load_check_set(str(cifar_dir), spec, limit or TEST_IMAGES, 0, None, str(cache_dir))
    paths, labels, _, _ = scan_classes(cifar_dir / "test")
    assert len(paths) == TEST_IMAGES
    picked = subset_indices(TEST_IMAGES, limit, 0)
    if picked is not None:
        paths, labels = [paths[i] for i in picked], np.asarray(labels)[picked]
    assert np.array_equal(labels, check.labels)  # paths line up with the tensors
    logits = {name: run_batched(FORMATS[name].load(file), check.images, 250, name) for name, file in export.items()}
    return Case(request.param, checkpoint, model, spec, export, tuple(meta["classes"]), paths, check.labels,
                reference_logits(model, check.images), logits, limit)


@pytest.fixture(scope="module")
def eval_accuracy(case, cifar_dir, cache_dir) -> float:
    """What `edgecls eval` reports for the checkpoint."""
    from edgecls.trainer.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(case.checkpoint, str(cifar_dir), cache_dir=str(cache_dir), limit=case.limit)["accuracy"]


def disagreements(case: Case, logits: np.ndarray, ref: np.ndarray, ref_name: str, name: str) -> str:
    """The first SHOWN images whose top-1 differs (path, both labels, max |Δlogit|), for failure messages."""
    pred, ref_pred = logits.argmax(1), ref.argmax(1)
    idx = np.flatnonzero(pred != ref_pred)
    delta = np.abs(logits.astype(np.float64) - ref).max(1)
    lines = [f"{len(idx)} of {len(pred)} images disagree ({ref_name} vs {name}):"]
    lines += [f"  {case.paths[i]}: {case.classes[ref_pred[i]]} vs {case.classes[pred[i]]}, "
              f"max |Δlogit| {delta[i]:.3g}" for i in idx[:SHOWN]]
    return "\n".join(lines)


def worst_images(case: Case, logits: np.ndarray, ref: np.ndarray) -> str:
    delta = np.abs(logits.astype(np.float64) - ref).max(1)
    return "\n".join(f"  {case.paths[i]}: max |Δlogit| {delta[i]:.3g}" for i in np.argsort(-delta)[:SHOWN])


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


@pytest.mark.parametrize("fmt", FP32)
def test_fp32_matches_pytorch_on_identical_tensors(case, fmt):
    failures = fp32_failures(case.logits[fmt], case.ref)
    assert not failures, (f"{fmt}: {'; '.join(failures)}\n"
                          + disagreements(case, case.logits[fmt], case.ref, "pytorch", fmt)
                          + "\nworst images:\n" + worst_images(case, case.logits[fmt], case.ref))


def test_runtime_end_to_end_matches_torchvision(case):
    """File → label: the torch-free runtime's decoding and preprocessing vs torchvision's eval transform."""
    from edgecls.runtime import Classifier

    clf = Classifier.load(case.export["onnx"], backend="onnxruntime")
    runtime_pred = np.array([p.index for p in clf.classify(case.paths, top_k=1, batch_size=250)])
    torch_logits = torchvision_logits(case)
    agreement = top1_agreement(runtime_pred, torch_logits)
    idx = np.flatnonzero(runtime_pred != torch_logits.argmax(1))
    assert agreement.holds, agreement.describe() + "\n" + end_to_end_report(case, clf, idx, torch_logits)


def torchvision_logits(case: Case) -> np.ndarray:
    tf = torchvision_transform(case.spec.input_size, case.spec.mean, case.spec.std)
    chunks = []
    with torch.no_grad():
        for start in range(0, len(case.paths), 250):
            x = torch.stack([tf(Image.open(p).convert("RGB")) for p in case.paths[start:start + 250]])
            chunks.append(case.model(x).numpy())
    return np.concatenate(chunks)


def end_to_end_report(case: Case, clf, idx: np.ndarray, torch_logits: np.ndarray) -> str:
    """Re-runs just the disagreeing files through the runtime's own pipeline to show by how much."""
    from edgecls.runtime.preprocess import load_rgb, resize_for_model

    shown = idx[:SHOWN]
    runtime = clf.logits(np.stack([resize_for_model(load_rgb(case.paths[i], case.spec.input_size), clf.spec)
                                   for i in shown]))
    lines = [f"{len(idx)} of {len(case.paths)} files: runtime (ONNX) vs torchvision + PyTorch:"]
    lines += [f"  {case.paths[i]}: {case.classes[torch_logits[i].argmax()]} vs {case.classes[r.argmax()]}, "
              f"max |Δlogit| {np.abs(r - torch_logits[i]).max():.3g}" for i, r in zip(shown, runtime)]
    return "\n".join(lines)


@pytest.mark.parametrize("fmt", FP32)
def test_fp32_accuracy_equals_edgecls_eval(case, eval_accuracy, fmt):
    """Equal hit counts, but for images the near-tie rule lets another batch or kernel move."""
    slack = len(near_tie_images(case.ref))
    for name, logits in ((fmt, case.logits[fmt]), ("pytorch", case.ref)):
        moved = round(abs(accuracy(logits, case.labels) - eval_accuracy) * len(case.labels))
        assert moved <= slack, f"{name}: {moved} hits apart from `edgecls eval`, {slack} near-ties"


def int8_logits(case: Case, fmt: str) -> np.ndarray:
    if fmt not in case.logits:
        pytest.skip(f"{case.name}'s INT8 checks need a converged checkpoint, which takes a GPU to train within a "
                    f"test run and none is here: set {RESNET18_ENV} to a trained ResNet-18")
    return case.logits[fmt]


@pytest.mark.parametrize("fmt", INT8)
def test_int8_accuracy_within_half_a_point_of_fp32(case, fmt):
    int8_logits(case, fmt)
    fp32 = FORMATS[fmt].int8_of
    change = 100 * (accuracy(case.logits[fmt], case.labels) - accuracy(case.logits[fp32], case.labels))
    assert abs(change) <= MAX_INT8_CHANGE_POINTS, f"{fmt}: accuracy {change:+.2f} points vs {fp32}"


@pytest.mark.parametrize("fmt", INT8)
def test_int8_agrees_with_fp32(case, fmt):
    int8_logits(case, fmt)
    fp32 = FORMATS[fmt].int8_of
    agreement = float((case.logits[fmt].argmax(1) == case.logits[fp32].argmax(1)).mean())
    assert agreement >= MIN_INT8_AGREEMENT, (
        f"{fmt} agrees with {fp32} on {agreement:.2%} < {MIN_INT8_AGREEMENT:.0%}; "
        + disagreements(case, case.logits[fmt], case.logits[fp32], fp32, fmt))
