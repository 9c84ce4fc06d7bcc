"""Bad input never loses a batch: every format Pillow writes, whole, truncated and byte-flipped, made here from
real CIFAR-10 test images, through `edgecls infer DIR`, `edgecls eval` and a running `edgecls serve`.

The verdict on each file is Pillow's own: what `Image.open(p).load()` accepts, edgecls classifies; what it
refuses, edgecls refuses with a one-line reason, and the run goes on. Pillow's decoders raise far more than
OSError on bad bytes (EOFError, NotImplementedError, struct.error, IndexError, ...); one that escaped used to
stop `infer` with "Aborted." and lose the rest of the batch.
"""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from edgecls.imageops import open_rgb
from edgecls.runtime import Classifier

from .conftest import CLASSES, REPO, run_cli
from .test_serve import classify, running_server

REFERENCE = REPO / "artifacts" / "reference" / "exports"
SEED = 27
SOURCES = 3  # real test images per kind of file: 3 x 39 kinds x 9 variants (+ crafted), ~1,000 files
CUTS = {"cut16": 16, "cut33pc": 1 / 3, "cut67pc": 2 / 3, "cutlast": -1}  # bytes kept (a fraction, or all but 1)
FLIPS = {"fliph1": (1, 64), "fliph8": (8, 256), "flipa1": (1, None), "flipa8": (8, None)}  # (bytes, within first N)
MODE_LADDER = ("RGB", "L", "P", "1")  # each format is written in the first of these it can write
# Formats in Image.SAVE that write none of MODE_LADDER here, and why; the test checks that each still cannot.
CANNOT_SAVE = {
    "BUFR": "a stub plugin: writing needs a BUFR handler, which Pillow does not ship",
    "GRIB": "a stub plugin: writing needs a GRIB handler, which Pillow does not ship",
    "HDF5": "a stub plugin: writing needs an HDF5 handler, which Pillow does not ship",
    "WMF": "a stub plugin: writing needs a WMF handler, which Pillow does not ship",
}
# Other modes the decoders hand to edgecls's conversion (alpha, 16-bit, float, CMYK, palette + transparency).
EXTRA_MODES = (("PNG", "RGBA"), ("PNG", "LA"), ("PNG", "I;16"), ("PNG", "P+t"), ("TIFF", "F"), ("TIFF", "I"),
               ("TIFF", "CMYK"), ("TIFF", "I;16"), ("JPEG", "CMYK"), ("WEBP", "RGBA"), ("TGA", "RGBA"))
PSD = "PSD"  # Pillow reads Photoshop files but cannot write them: `psd_bytes` writes a layered one
# One byte set in a whole file, where the format's spec puts a field Pillow reads but does not implement every
# value of: (offset, value, what Pillow raises). Random flips seldom hit these, and edgecls's old list missed them.
CRAFTED = {"DDS": (80, 0, "NotImplementedError: no pixel format flags"),
           "BLP": (4, 0, "BLPFormatError, a NotImplementedError: compression 0")}


@dataclass
class Corpus:
    root: Path  # root/test/<class>/<format>-<mode>-<n>-<variant>.<ext>
    files: dict[Path, str]  # every file -> the format it was written in
    whole: dict[Path, Path]  # each untouched file -> the CIFAR image it was made from
    suffixes: frozenset[str]  # what a fresh `edgecls` process walks (this one's Pillow may have learnt more)

    def walked(self) -> list[Path]:
        """The files a folder walk picks up (those with an extension Pillow opens), in the walk's order."""
        return sorted(p for p in self.files if p.suffix.lower() in self.suffixes)

    def unnamed(self) -> list[Path]:
        """Files of a format Pillow opens but registers no extension for (SPIDER): a walk skips them, so the
        tests name them one by one."""
        walked = set(self.walked())
        return [p for p, fmt in self.files.items() if p not in walked and fmt in Image.OPEN]


def pillow_reads(data: bytes) -> bool:
    """Pillow's own verdict: does `Image.open(...).load()` accept these bytes?"""
    return pillow_error(data) is None


def claimed_pixels(path: Path) -> int:
    """Width x height as the file's header says (0 where Pillow cannot read a header)."""
    try:
        with Image.open(path) as img:
            return img.width * img.height
    except Exception:
        return 0


def pillow_error(data: bytes) -> Exception | None:
    """What `Image.open(...).load()` raises on these bytes, if anything."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception as e:
        return e
    return None


def extension(fmt: str) -> str:
    """The format's own extension where Pillow registers one by its name, else its first; SPIDER has none."""
    exts = sorted(e for e, f in Image.registered_extensions().items() if f == fmt)
    return f".{fmt.lower()}" if f".{fmt.lower()}" in exts else exts[0] if exts else f".{fmt.lower()}"


def encode(img: Image.Image, fmt: str, mode: str) -> bytes:
    if mode == "P+t":  # a palette image with a transparent index
        return encoded(img.convert("P"), fmt, transparency=0)
    if mode == "I;16":
        return encoded(Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257), fmt)
    return encoded(img.convert(mode), fmt)


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    """The file's bytes, written to memory: saving to a named file has side effects (Pillow's SPIDER writer
    registers the file's extension for the rest of the process)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def writable_kinds(img: Image.Image) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(format, mode) for every format Pillow writes, in the first mode of MODE_LADDER it takes; and for
    the formats that take none, the error each gave."""
    Image.init()
    kinds, refused = [], {}
    for fmt in sorted(Image.SAVE):
        for mode in MODE_LADDER:
            try:
                encode(img, fmt, mode)
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
                continue
            kinds.append((fmt, mode))
            break
        else:
            refused[fmt] = error
    return kinds, refused


def psd_bytes(composite: Image.Image, layers: list[Image.Image]) -> bytes:
    """A layered Photoshop file (8-bit RGB, raw channels): full-size layers, bottom first, and the flattened
    ``composite`` Photoshop stores beside them (what a viewer shows)."""
    width, height = composite.size

    def planes(img: Image.Image) -> list[bytes]:
        return [img.getchannel(band).tobytes() for band in "RGB"]

    records, channels = b"", b""
    for n, layer in enumerate(layers):
        records += struct.pack(">4iH", 0, 0, height, width, 3)
        records += b"".join(struct.pack(">hI", band, 2 + width * height) for band in range(3))
        name = f"layer {n}".encode()
        pascal = bytes([len(name)]) + name
        pascal += b"\0" * (-len(pascal) % 4)
        extra = struct.pack(">II", 0, 0) + pascal  # no mask, no blending ranges, the name
        records += b"8BIMnorm" + bytes([255, 0, 0, 0]) + struct.pack(">I", len(extra)) + extra
        channels += b"".join(struct.pack(">H", 0) + plane for plane in planes(layer))
    info = struct.pack(">h", len(layers)) + records + channels
    info += b"\0" * (len(info) % 2)
    layer_and_mask = struct.pack(">I", len(info)) + info + struct.pack(">I", 0)
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)  # v1, 3 channels, 8 bits, RGB
    return (header + struct.pack(">II", 0, 0) + struct.pack(">I", len(layer_and_mask)) + layer_and_mask
            + struct.pack(">H", 0) + b"".join(planes(composite)))


def variants(data: bytes, rng: np.random.Generator, crafted: tuple | None = None) -> dict[str, bytes]:
    """The file whole, cut at several points, with a few bytes flipped (seeded), and crafted where listed."""
    out = {"whole": data}
    if crafted:
        offset, value, _ = crafted
        out["crafted"] = data[:offset] + bytes([value]) + data[offset + 1:]
    for name, keep in CUTS.items():
        out[name] = data[:keep if isinstance(keep, int) and keep > 0 else len(data) - 1 if keep == -1
                         else int(len(data) * keep)]
    for name, (count, within) in FLIPS.items():
        flipped = bytearray(data)
        for at in rng.integers(0, min(within or len(data), len(data)), count):
            flipped[at] ^= int(rng.integers(1, 256))
        out[name] = bytes(flipped)
    return out


def build_corpus(root: Path, cifar: Path) -> Corpus:
    rng = np.random.default_rng(SEED)
    sources = [sorted((cifar / "test" / c).iterdir())[n] for n in range(SOURCES) for c in CLASSES]
    probe = Image.open(sources[0]).convert("RGB")
    kinds, _ = writable_kinds(probe)
    kinds += list(EXTRA_MODES) + [(PSD, "RGB")]
    files, whole = {}, {}
    for k, (fmt, mode) in enumerate(kinds):
        for n in range(SOURCES):
            src = sources[(k * SOURCES + n) % len(sources)]
            img = Image.open(src).convert("RGB")
            if fmt == PSD:  # the composite is the real image; the bottom layer is another one, covered by it
                data = psd_bytes(img, [Image.open(sources[-1 - n]).convert("RGB"), img])
            else:
                data = encode(img, fmt, mode)
            folder = root / "test" / src.parent.name
            folder.mkdir(parents=True, exist_ok=True)
            ext = ".psd" if fmt == PSD else extension(fmt)
            for variant, blob in variants(data, rng, CRAFTED.get(fmt)).items():
                path = folder / f"{fmt.lower()}-{re.sub(r'[^a-z0-9]', '', mode.lower())}-{n}-{variant}{ext}"
                path.write_bytes(blob)
                files[path] = fmt
                if variant == "whole":
                    whole[path] = src
    return Corpus(root, files, whole, walked_suffixes())


def walked_suffixes() -> frozenset[str]:
    """`image_suffixes()` as a fresh process sees it: Pillow keeps extensions registered at run time (saving
    a SPIDER file to a named path registers its suffix), so this process's answer can depend on test order."""
    code = "from edgecls.imageops import image_suffixes; print(' '.join(sorted(image_suffixes())))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return frozenset(out.split())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, cifar_dir) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("bad-inputs"), cifar_dir)


@pytest.fixture(scope="module")
def verdicts(corpus) -> dict[Path, bool]:
    return {p: pillow_reads(p.read_bytes()) for p in corpus.files}


@pytest.fixture(scope="module")
def reference() -> Classifier:
    return Classifier.load(REFERENCE)


# --- the corpus itself -------------------------------------------------------------------------------

def test_every_format_pillow_writes_is_in_the_corpus(corpus, cifar_dir):
    """The formats left out are exactly the listed ones (checked, so the list cannot go stale); the corpus
    holds every other, whole files that Pillow reads among broken ones, and crafted ones it raises
    NotImplementedError on."""
    probe = Image.open(sorted((cifar_dir / "test" / "cat").iterdir())[0]).convert("RGB")
    kinds, refused = writable_kinds(probe)
    assert set(refused) == set(CANNOT_SAVE), refused
    assert {fmt for fmt, _ in kinds} | {PSD} == set(corpus.files.values())
    assert 900 <= len(corpus.files) <= 1200, len(corpus.files)
    readable = [p for p in corpus.whole if corpus.files[p] in Image.OPEN and corpus.files[p] != "EPS"]
    assert len(readable) > 25 * SOURCES and all(pillow_reads(p.read_bytes()) for p in readable)  # EPS: Ghostscript
    raised = {type(pillow_error(p.read_bytes())) for p in corpus.files if "-crafted." in p.name}
    assert raised and all(issubclass(kind, NotImplementedError) for kind in raised), raised  # not OSError at all


def test_a_layered_psd_classifies_its_composite(reference, cifar_dir, tmp_path):
    """Pillow opens a PSD on its composite and numbers its layers from 1; the first-frame logic used to seek
    to frame 0 and get EOFError. The answer must be the composite's, not the bottom layer's."""
    cat = Image.open(sorted((cifar_dir / "test" / "cat").iterdir())[0]).convert("RGB")
    ship = Image.open(sorted((cifar_dir / "test" / "ship").iterdir())[0]).convert("RGB")
    path = tmp_path / "layered.psd"
    path.write_bytes(psd_bytes(cat, [ship, cat]))
    with Image.open(path) as img:
        assert (img.format, img.n_frames) == ("PSD", 2)
    assert np.array_equal(np.asarray(open_rgb(path)), np.asarray(cat))
    got = reference.predict(path, top_k=10)
    want = reference.predict(np.asarray(cat), top_k=10)
    assert (got.label, got.top_k) == (want.label, want.top_k)
    assert got.top_k != reference.predict(np.asarray(ship), top_k=10).top_k


def test_a_float_image_with_nan_and_infinities_scales_by_its_finite_range(tmp_path):
    """SPIDER, TIFF and PFM hold floats; a damaged one can hold NaN or infinities, which used to turn the
    whole image into undefined bytes. NaN counts as the low end, infinities as the ends they point to."""
    values = np.array([[np.nan, np.inf, -np.inf, 0.0, 5.0, 10.0]], dtype=np.float32)
    path = tmp_path / "floats.spider"
    path.write_bytes(encoded(Image.fromarray(values), "SPIDER"))
    gray = np.asarray(open_rgb(path))[0, :, 0]
    assert gray.tolist() == [0, 255, 0, 0, 128, 255]


# --- the error boundary ------------------------------------------------------------------------------

PILLOW_RAISES = [EOFError("no more images in PSD file"), NotImplementedError("Unimplemented pixel format b'XYZW'"),
                 struct.error("unpack requires a buffer of 4 bytes"), IndexError("list index out of range"),
                 TypeError("'NoneType' object is not subscriptable"), ZeroDivisionError("division by zero"),
                 KeyError(7), MemoryError()]


@pytest.mark.parametrize("error", PILLOW_RAISES, ids=lambda e: f"{type(e).__module__}.{type(e).__name__}")
def test_anything_pillow_raises_is_that_files_one_line_error(error, reference, cifar_dir, monkeypatch):
    """Raised inside Pillow's decoding step, every exception kind seen from its plugins becomes that file's
    Failure; the batch goes on."""
    from PIL import ImageFile

    images = sorted((cifar_dir / "test" / "cat").iterdir())[:3]
    load = ImageFile.ImageFile.load

    def failing_load(self):
        if getattr(self, "filename", None) == str(images[1]):
            raise error
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", failing_load)
    results = list(reference.classify(images, batch_size=2, workers=1))
    assert [type(r).__name__ for r in results] == ["Prediction", "Failure", "Prediction"]
    assert results[1].error.startswith(type(error).__name__) and "\n" not in results[1].error


def test_a_bug_of_ours_propagates(reference, cifar_dir, monkeypatch):
    """Outside Pillow's step the guard does not reach: an exception in our own preprocessing is a bug, and
    must stop the run where a test sees it, not pass as one more bad image."""
    import edgecls.runtime.classifier as classifier

    def broken(img, spec):
        raise ZeroDivisionError("a bug in the resize math")

    monkeypatch.setattr(classifier, "resize_for_model", broken)
    with pytest.raises(ZeroDivisionError):
        list(reference.classify(sorted((cifar_dir / "test" / "cat").iterdir())[:2], workers=1))


# --- the commands ------------------------------------------------------------------------------------

def test_infer_walks_the_corpus_and_agrees_with_pillow(corpus, verdicts, reference):
    unnamed = corpus.unnamed()
    result = run_cli("infer", str(corpus.root), *map(str, unnamed), "--json", "--model", str(REFERENCE),
                     "--top-k", "10")
    assert result.returncode == 1, result.stderr[-2000:]  # some refused, none lost
    assert "Traceback" not in result.stderr and "Aborted" not in result.stderr, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = corpus.walked() + unnamed
    assert [Path(r["path"]) for r in rows] == expected  # one line per file, in order
    disagree = [(r["path"], r.get("error")) for r in rows if ("error" not in r) != verdicts[Path(r["path"])]]
    assert not disagree, disagree[:20]
    for row in rows:
        assert "error" not in row or (row["error"] and "\n" not in row["error"]), row
    classified = sum("error" not in r for r in rows)
    refused = len(rows) - classified
    skipped = len(corpus.files) - len(corpus.walked())
    assert classified + refused == len(expected)
    assert 0 < refused and 0 < classified and 0 < skipped
    assert f"{classified} classified, {refused} refused, {skipped} skipped (" in result.stderr.splitlines()[-1]
    _same_pixels_same_answer(corpus, rows, reference)


def _same_pixels_same_answer(corpus: Corpus, rows: list[dict], reference: Classifier) -> None:
    """A whole file that decodes to its source's very pixels (a lossless format) gets its source's answer."""
    by_path = {Path(r["path"]): r for r in rows}
    checked = 0
    for path, src in corpus.whole.items():
        row = by_path.get(path)
        if row is None or "error" in row:
            continue
        with Image.open(path) as img, Image.open(src) as original:
            if img.mode != "RGB" or not np.array_equal(np.asarray(img), np.asarray(original.convert("RGB"))):
                continue
        want = reference.predict(src, top_k=10)
        assert (row["label"], [label for label, _ in row["top_k"]]) == (want.label, [c for c, _ in want.top_k])
        checked += 1
    assert checked >= 10 * SOURCES, checked  # BMP, DIB, PNG, PPM, TIFF, TGA, SGI, IM, PCX, QOI at least


def test_eval_counts_every_file_it_walks(corpus, verdicts):
    result = run_cli("eval", str(REFERENCE), "--data", str(corpus.root), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    walked = corpus.walked()
    others = [p for p in corpus.files if p not in set(walked)]  # counted as "not an image file", never read
    assert report["n"] == sum(verdicts[p] for p in walked)
    assert report["n"] + report["failed"] == len(walked) + len(others)
    assert report["failures"] and all("\n" not in f and ": " in f for f in report["failures"])


def test_serve_answers_every_upload_with_pillows_verdict(corpus, verdicts):
    """Each file posted alone: 200 with a label where Pillow reads it, a 4xx with a one-line JSON reason
    where it does not, never a 500; the server logs no traceback (checked when it stops). One stated
    difference: the server refuses from the header any image over Pillow's warning limit (a byte flip can
    claim 134 megapixels), where Pillow itself refuses only at twice that."""
    statuses = Counter()
    disagree = []
    served = {p: ok and claimed_pixels(p) <= Image.MAX_IMAGE_PIXELS for p, ok in verdicts.items()}
    with running_server(str(REFERENCE), "--max-body-mb", "64") as (url, _, _):
        with httpx.Client(timeout=60) as client:
            for path in corpus.files:
                data = path.read_bytes()
                response = client.post(f"{url}/v1/classify", content=data,
                                       headers={"Content-Type": "application/octet-stream"})
                statuses[response.status_code] += 1
                if (response.status_code == 200) != served[path]:
                    disagree.append((path.name, response.status_code, response.text[:200]))
                elif response.status_code != 200:
                    assert 400 <= response.status_code < 500 and set(response.json()) == {"error"}, response.text
                    assert "\n" not in response.text.strip()
            disagree += _multipart_disagreements(client, url, list(corpus.files), served)
        good = next(p for p in corpus.whole if p.suffix == ".png")
        assert classify(url, good.read_bytes(), "image/png").status_code == 200  # still serving
    assert not disagree, disagree[:20]
    assert statuses[200] and sum(v for k, v in statuses.items() if k != 200)


def _multipart_disagreements(client: httpx.Client, url: str, files: list[Path], served: dict[Path, bool],
                             per_request: int = 32) -> list[tuple]:
    """The same files as multipart requests (the runtime's `decode_all` behind them): a row per part, an
    error row exactly where the single upload was refused."""
    disagree = []
    for start in range(0, len(files), per_request):
        chunk = files[start:start + per_request]
        parts = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in chunk]
        response = client.post(f"{url}/v1/classify", files=parts)
        assert response.status_code == 200, response.text[:500]
        rows = response.json()["results"]
        assert [r["path"] for r in rows] == [p.name for p in chunk]
        disagree += [(p.name, "multipart", r) for p, r in zip(chunk, rows) if ("error" not in r) != served[p]]
    return disagree
