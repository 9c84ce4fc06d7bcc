"""The Pillow resize/convert helpers against torchvision's evaluation transform."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edgecls.imageops import open_rgb, resize_shorter_center_crop, to_rgb

from .conftest import torchvision_transform


def torchvision_eval(img: Image.Image, size: int) -> np.ndarray:
    return np.asarray(torchvision_transform(size)(img))


def test_real_test_images_pass_through_unchanged(cifar_dir):
    for path in sorted((cifar_dir / "test" / "cat").iterdir())[:20]:
        img = open_rgb(path)
        assert np.array_equal(np.asarray(resize_shorter_center_crop(img, 32)), np.asarray(img))
        assert np.array_equal(np.asarray(resize_shorter_center_crop(img, 32)), torchvision_eval(img, 32))


@pytest.mark.parametrize("size", [(32, 32), (33, 32), (640, 480), (480, 640), (4000, 3000), (101, 37)])
def test_resize_matches_torchvision(size, cifar_dir):
    rng = np.random.default_rng(sum(size))
    base = open_rgb(sorted((cifar_dir / "test" / "ship").iterdir())[0]).resize(size, Image.Resampling.BICUBIC)
    noisy = np.clip(np.asarray(base, dtype=np.int16) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    img = Image.fromarray(noisy.astype(np.uint8))
    for target in (32, 64):
        assert np.array_equal(np.asarray(resize_shorter_center_crop(img, target)), torchvision_eval(img, target))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb(mode):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (8, 8), dtype=np.uint16))
    elif mode == "F":
        img = Image.fromarray(rng.random((8, 8), dtype=np.float32) * 1000)
    else:
        img = rgb.convert(mode)
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (8, 8)
    if mode in ("I;16", "F"):
        arr = np.asarray(out)
        assert arr.min() == 0 and arr.max() == 255  # scaled by the image's own range, not clipped


def test_transparency_composites_on_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert np.asarray(to_rgb(img))[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    out = open_rgb(path)
    assert out.size == (20, 40)
    arr = np.asarray(out).mean(2)
    assert arr[:20].mean() > 200 and arr[20:].mean() < 50  # the white half is now on top


def test_listing_extensions_keeps_jpeg_first_in_pillows_open_order(cifar_dir):
    """A fresh process that lists extensions before opening anything (as `infer DIR` does) must still try
    JPEG before the header-less IM/IMT/IPTC parsers; measured: ~80 us per CIFAR JPEG otherwise."""
    code = ("import sys; from PIL import Image; from edgecls.imageops import image_suffixes; image_suffixes()\n"
            "jpeg = Image.ID.index('JPEG'); blind = [f for f in Image.ID[:jpeg] if Image.OPEN[f][1] is None]\n"
            "print(jpeg, blind); assert '.tga' in image_suffixes() and not blind\n"
            "assert Image.open(sys.argv[1]).format == 'JPEG'")
    first = min((cifar_dir / "test" / "cat").iterdir())
    result = subprocess.run([sys.executable, "-c", code, str(first)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_folder_of_common_formats_is_walked_without_loading_every_plugin(cifar_dir, tmp_path):
    """`infer DIR` over JPEGs and PNGs must not pay for all of Pillow's plugins (~35 ms of a cold run);
    the first other suffix still finds every format Pillow opens."""
    code = ("import sys; from pathlib import Path; from edgecls.cli.infer import collect_inputs\n"
            "found = collect_inputs([Path(sys.argv[1])]); assert len(found.paths) == 1000 and found.skipped == 0\n"
            "assert 'PIL.TgaImagePlugin' not in sys.modules, 'every plugin was loaded'\n"
            "from edgecls.imageops import is_image_suffix\n"
            "assert is_image_suffix('.tga') and not is_image_suffix('.txt')\n"
            "assert 'PIL.TgaImagePlugin' in sys.modules")
    result = subprocess.run([sys.executable, "-c", code, str(cifar_dir / "test" / "cat")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
