"""`edgecls infer` through a real subprocess."""

import json

import pytest
from PIL import Image, UnidentifiedImageError

from edgecls.runtime import Classifier
from edgecls.shipped import reference_bundle

from .conftest import run_cli


@pytest.fixture()
def photos(cifar_dir, tmp_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for i, p in enumerate(sorted((cifar_dir / "test" / "frog").iterdir())[:3]):
        (folder / f"frog{i}.jpg").write_bytes(p.read_bytes())
    big = Image.open(sorted((cifar_dir / "test" / "truck").iterdir())[0]).resize((4000, 3000))
    big.save(folder / "nested" / "truck_12mp.jpg", quality=85)
    (folder / "readme.txt").write_text("not walked: no image suffix")
    return folder


def test_json_lines_for_a_folder(export_dir, photos):
    result = run_cli("infer", str(photos), "--model", str(export_dir), "--json", "--top-k", "2", "--time")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert {"path", "label", "index", "prob", "top_k", "time_ms"} <= row.keys()
        assert len(row["top_k"]) == 2 and row["top_k"][0] == [row["label"], row["prob"]]
        assert {"decode", "preprocess", "model"} == row["time_ms"].keys()
    assert "4 classified, 0 refused, 1 skipped (" in result.stderr  # readme.txt


def test_text_output_and_failures_give_exit_1(export_dir, photos):
    """A JPEG marker and then garbage: Pillow cannot identify it, and both output forms say so."""
    bad = photos / "broken.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    with pytest.raises(UnidentifiedImageError):
        Image.open(bad)
    expected = "not an image Pillow can read"
    result = run_cli("infer", str(photos / "frog0.jpg"), str(bad), "--model", str(export_dir))
    assert result.returncode == 1
    assert result.stdout.startswith(str(photos / "frog0.jpg") + ": ") and len(result.stdout.splitlines()) == 1
    assert f"{bad}: error: {expected}" in result.stderr.splitlines()
    assert "1 classified, 1 refused, 0 skipped (" in result.stderr and "Traceback" not in result.stderr
    as_json = run_cli("infer", str(bad), "--model", str(export_dir), "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {"path": str(bad), "error": expected}


def test_usage_errors_exit_2(export_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_inputs = run_cli("infer", str(empty), "--model", str(export_dir))
    assert no_inputs.returncode == 2 and "no images" in no_inputs.stderr
    no_model = run_cli("infer", str(empty), "--model", str(tmp_path / "nope.onnx"))
    assert no_model.returncode == 2 and "does not exist" in no_model.stderr
    bad_backend = run_cli("infer", str(empty), "--model", str(export_dir), "--backend", "tensorrt")
    assert bad_backend.returncode == 2 and "backend" in bad_backend.stderr


def test_default_model_is_the_shipped_reference(photos):
    """With no --model, infer answers what `Classifier.predict` on the shipped default bundle answers."""
    image = photos / "frog0.jpg"
    result = run_cli("infer", str(image), "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    clf = Classifier.load(reference_bundle())
    expected = clf.predict(image, top_k=3)
    assert (row["path"], row["label"], row["index"]) == (str(image), expected.label, expected.index)
    assert [label for label, _ in row["top_k"]] == [label for label, _ in expected.top_k]
    assert row["prob"] == pytest.approx(expected.prob, abs=1e-5)
    assert f"{clf.choice.format} via {clf.choice.engine}: {clf.choice.path})" in result.stderr
