"""The torch-free Classifier on real exported models and real CIFAR-10 test images."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from edgecls.bundle import read_manifest, verify_files
from edgecls.errors import EdgeclsError
from edgecls.runtime import Classifier, Failure, ModelSpec
from edgecls.runtime.model_files import choose_model
from edgecls.tolerance import top1_agreement
from edgecls.trainer import load_checkpoint

from .conftest import REPO, run_cli, torchvision_transform


def cifar_test_images(cifar_dir, per_class=5):
    return [p for c in sorted((cifar_dir / "test").iterdir()) for p in sorted(c.iterdir())[:per_class]]


def manifest_entry(export_dir, fmt):
    entries = {e["format"]: e for e in json.loads((export_dir / "manifest.json").read_text())["files"]}
    return export_dir / entries[fmt]["path"]


def torch_logits(checkpoint, paths):
    model, meta = load_checkpoint(checkpoint)
    tf = torchvision_transform(meta["input_size"], meta["mean"], meta["std"])
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("fmt,backend", [("onnx", "onnxruntime"), ("openvino", "openvino"), ("onnx", "openvino")])
def test_fp32_files_agree_with_pytorch_end_to_end(export_dir, trained_checkpoint, cifar_dir, fmt, backend):
    paths = cifar_test_images(cifar_dir)
    clf = Classifier.load(manifest_entry(export_dir, fmt), backend=backend)
    preds = clf.predict(paths, top_k=3)
    agreement = top1_agreement(np.array([p.index for p in preds]), torch_logits(trained_checkpoint, paths))
    assert agreement.holds, agreement.describe()
    assert all(p.label == clf.classes[p.index] and 0 < p.prob <= 1 for p in preds)
    assert all(len(p.top_k) == 3 and p.top_k[0] == (p.label, p.prob) for p in preds)


def test_spec_comes_from_the_model_file(export_dir, trained_checkpoint):
    _, meta = load_checkpoint(trained_checkpoint)
    for fmt in ("onnx", "openvino", "onnx-int8", "openvino-int8"):
        clf = Classifier.load(manifest_entry(export_dir, fmt))
        assert list(clf.classes) == meta["classes"]
        assert list(clf.spec.mean) == meta["mean"] and clf.spec.input_size == meta["input_size"]


def test_export_folder_prefers_int8(export_dir):
    clf = Classifier.load(export_dir)
    assert clf.choice.format == "onnx-int8" and clf.choice.engine == "onnxruntime"
    assert Classifier.load(export_dir, backend="openvino").choice.format == "openvino-int8"


AVX2 = frozenset({"avx", "avx2", "fma"})
VNNI = AVX2 | {"avx512f", "avx512_vnni"}


@pytest.mark.parametrize("flags,throughput,engine,fmt", [
    (AVX2, False, "onnxruntime", "onnx-int8"), (AVX2, True, "onnxruntime", "onnx-int8"),
    (VNNI, False, "onnxruntime", "onnx-int8"), (VNNI, True, "openvino", "openvino-int8"),
    (AVX2 | {"avx_vnni"}, True, "openvino", "openvino-int8"), (frozenset(), True, "onnxruntime", "onnx-int8"),
])
def test_auto_picks_the_engine_by_cpu_features_and_work(export_dir, flags, throughput, engine, fmt):
    """README's rule: onnxruntime everywhere, except a stream of images on a CPU with int8 dot products."""
    choice = choose_model(export_dir, "auto", throughput=throughput, flags=flags)
    assert (choice.engine, choice.format) == (engine, fmt)
    single = choose_model(manifest_entry(export_dir, "onnx-int8"), "auto", throughput=throughput, flags=flags)
    assert single.engine == engine
    named = choose_model(export_dir, "onnxruntime", throughput=throughput, flags=flags)
    assert named.engine == "onnxruntime"  # a named backend is never second-guessed


def test_int8_mostly_agrees_with_fp32(export_dir, cifar_dir):
    paths = cifar_test_images(cifar_dir, per_class=10)
    fp32 = [p.index for p in Classifier.load(manifest_entry(export_dir, "onnx")).predict(paths)]
    int8 = [p.index for p in Classifier.load(export_dir).predict(paths)]
    assert np.mean(np.array(fp32) == np.array(int8)) >= 0.9


def test_inputs_single_or_many(export_dir, cifar_dir):
    clf = Classifier.load(manifest_entry(export_dir, "onnx"))
    path = cifar_test_images(cifar_dir, 1)[0]
    arr = np.asarray(Image.open(path).convert("RGB"))
    by_path, by_pil, by_array = clf.predict(path), clf.predict(Image.open(path)), clf.predict(arr)
    assert by_path.index == by_pil.index == by_array.index
    assert by_path.top_k == by_array.top_k
    many = clf.predict(np.stack([arr, arr[:, ::-1]]), top_k=1)
    assert isinstance(many, list) and len(many) == 2
    assert len(clf.predict([path] * 70, batch_size=32)) == 70


def test_one_row_ranks_like_a_batch_of_them():
    """Batch 1 ranks in plain Python, batches in numpy: same order (ties to the lower index), same probabilities."""
    from edgecls.runtime.classifier import rank

    logits = np.array([[0.5, 2.0, 2.0, -1.0, 0.5], [3.0, 1.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    batched_order, batched_probs = rank(logits, 4)
    for row, order, probs in zip(logits, batched_order, batched_probs):
        one_order, one_probs = rank(row[None], 4)
        assert one_order == [order] and one_order[0][0] == int(row.argmax())
        np.testing.assert_allclose(one_probs[0], probs, rtol=1e-14)
        exps = np.exp(row.astype(np.float64) - row.max())
        np.testing.assert_allclose(probs, (exps / exps.sum())[order], rtol=1e-14)
    assert batched_order == [[1, 2, 0, 4], [0, 1, 4, 2]]


def test_tampered_export_is_refused(export_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    onnx_file = manifest_entry(copy, "onnx-int8")
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10])
    with pytest.raises(EdgeclsError, match="sha256"):
        Classifier.load(copy)


def test_load_checks_the_file_it_runs_and_verify_checks_the_rest(export_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    onnx_file = manifest_entry(copy, "onnx")
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10])
    clf = Classifier.load(copy, backend="onnxruntime")
    assert clf.choice.format == "onnx-int8"
    with pytest.raises(EdgeclsError, match="sha256"):
        verify_files(copy, read_manifest(copy))


def test_half_copied_export_is_refused(export_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    manifest_entry(copy, "onnx-int8").unlink()
    with pytest.raises(EdgeclsError, match="missing"):
        Classifier.load(copy)


def test_model_without_metadata_needs_a_spec(export_dir, tmp_path):
    import onnx

    proto = onnx.load(str(manifest_entry(export_dir, "onnx")))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(EdgeclsError, match="no edgecls metadata"):
        Classifier.load(bare)
    spec = ModelSpec("resnet20", tuple("abcdefghij"), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 32)
    assert Classifier.load(bare, spec=spec).classes == spec.classes


def test_static_batch_model_takes_any_number_of_images(trained_checkpoint, cifar_dir, cache_dir, tmp_path):
    out = tmp_path / "static"
    result = run_cli("export", str(trained_checkpoint), "--format", "onnx", "--static-batch", "--out", str(out),
                     "--data", str(cifar_dir), "--cache-dir", str(cache_dir), "--check-images", "0")
    assert result.returncode == 0, result.stderr
    clf = Classifier.load(out)
    assert clf.engine.fixed_batch == 1
    paths = cifar_test_images(cifar_dir, 1)[:7]
    agreement = top1_agreement(np.array([p.index for p in clf.predict(paths)]), torch_logits(trained_checkpoint, paths))
    assert agreement.holds, agreement.describe()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bad_files_are_reported_per_file(export_dir, cifar_dir, tmp_path, monkeypatch):
    good = cifar_test_images(cifar_dir, 1)[0]
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    huge = tmp_path / "huge.png"
    Image.new("RGB", (300, 300)).save(huge)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the decompression-bomb guard stays on
    clf = Classifier.load(manifest_entry(export_dir, "onnx"))
    results = list(clf.classify([good, truncated, text, tmp_path / "missing.jpg", huge]))
    assert not isinstance(results[0], Failure)
    assert [type(r).__name__ for r in results[1:]] == ["Failure"] * 4
    assert "no such file" in results[3].error and "refused" in results[4].error
    with pytest.raises(EdgeclsError, match="notes.jpg"):
        clf.predict([good, text])


def test_runtime_works_where_torch_cannot_be_imported(export_dir, cifar_dir):
    code = (
        "import sys\n"
        "for name in ('torch', 'torchvision'):\n"
        "    sys.modules[name] = None  # any import of them now raises ImportError\n"
        "from edgecls.runtime import Classifier\n"
        f"clf = Classifier.load({str(export_dir)!r}, backend='onnxruntime')\n"
        f"print(clf.predict({str(cifar_test_images(cifar_dir, 1)[0])!r}).label)\n"
        "assert not [m for m in sys.modules if m.startswith(('torch', 'torchvision')) and sys.modules[m] is not None]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in Classifier.load(export_dir).classes


def test_infer_cli_needs_only_the_base_install(cifar_dir):
    """`edgecls infer` with the shipped model runs where torch, OpenVINO, onnx and matplotlib are absent."""
    image = str(cifar_dir / "test" / "cat" / "0001.jpg")
    code = (
        "import sys\n"
        "for name in ('torch', 'torchvision', 'openvino', 'onnx', 'nncf', 'matplotlib'):\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['edgecls', 'infer', {image!r}, '--json']\n"
        "from edgecls.cli import main\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["path"] == image
    assert "onnxruntime" in result.stderr
