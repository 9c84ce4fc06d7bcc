"""What `edgecls infer` reads from a folder, and the decode pool that feeds the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from edgecls.imageops import image_suffixes
from edgecls.runtime import Classifier, Failure

from .conftest import assert_one_line_error, run_cli

# Formats Pillow opens but the old fixed suffix list did not know.
EXTRA_FORMATS = {"tga": "TGA", "ico": "ICO", "qoi": "QOI", "jp2": "JPEG2000", "webp": "WEBP", "pcx": "PCX"}


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, cifar_dir) -> Path:
    """Real test images saved by Pillow in several formats, plus files that are not images."""
    folder = tmp_path_factory.mktemp("mixed")
    source = sorted((cifar_dir / "test" / "ship").iterdir())[:1] + sorted((cifar_dir / "test" / "frog").iterdir())[:1]
    for n, path in enumerate(source):
        with Image.open(path) as img:
            for ext, fmt in EXTRA_FORMATS.items():
                img.convert("RGB").save(folder / f"{n}-{path.stem}.{ext}", format=fmt)
    (folder / "notes.txt").write_text("not an image")
    (folder / "nested").mkdir()
    (folder / "nested" / "data.csv").write_text("a,b\n")
    return folder


def test_every_suffix_pillow_opens_is_walked(mixed_folder):
    assert {f".{ext}" for ext in EXTRA_FORMATS} <= image_suffixes()
    result = run_cli("infer", str(mixed_folder), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(Path(r["path"]).suffix for r in rows) == sorted([f".{e}" for e in EXTRA_FORMATS] * 2)
    assert "12 classified, 0 refused, 2 skipped (" in result.stderr
    assert {r["label"] for r in rows if Path(r["path"]).name.startswith("0-")} == {"ship"}


def test_a_folder_without_images_exits_2_and_counts_what_it_skipped(tmp_path):
    (tmp_path / "readme.md").write_text("#")
    (tmp_path / "table.csv").write_text("1")
    result = run_cli("infer", str(tmp_path))
    assert_one_line_error(result, "no images found", "2 non-image files skipped")
    assert result.returncode == 2


def test_decode_pool_keeps_order_and_per_file_errors(tmp_path, cifar_dir):
    good = sorted((cifar_dir / "test" / "cat").iterdir())[:70]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(good[0].read_bytes()[:200])
    items = [*good[:33], bad, tmp_path / "missing.png", *good[33:]]
    clf = Classifier.load(Path(__file__).resolve().parents[1] / "artifacts" / "reference" / "exports")
    sequential = list(clf.classify(items, batch_size=16, workers=0))
    for threads in (1, 4, None):
        assert_same_stream(list(clf.classify(items, batch_size=16, workers=threads)), sequential, items)


def assert_same_stream(pooled: list, sequential: list, items: list) -> None:
    assert [r.source for r in pooled] == [str(p) for p in items]
    assert [type(r) for r in pooled] == [type(r) for r in sequential]
    assert isinstance(pooled[33], Failure) and isinstance(pooled[34], Failure) and pooled[34].error == "no such file"
    for a, b in zip(sequential, pooled):
        if not isinstance(a, Failure):
            assert (a.label, a.top_k) == (b.label, b.top_k)
