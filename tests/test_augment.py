import torch

from edgecls.trainer.augment import AugmentConfig, augment_batch, cutout, epoch_flips, random_crop


def batch(n=16):
    return torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = batch()
    out = random_crop(x, 4, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (0, 0, 4, 4, 4, 4))
    for i in range(len(x)):
        assert any(torch.equal(out[i], padded[i, dy:dy + 32, dx:dx + 32]) for dy in range(9) for dx in range(9))


def test_alternating_flips_mirror_every_image_once_per_two_epochs():
    gen = torch.Generator().manual_seed(0)
    odd, even = epoch_flips(1000, "alternate", 5, 1, gen), epoch_flips(1000, "alternate", 5, 2, gen)
    assert torch.equal(odd, ~even)
    assert 400 < int(odd.sum()) < 600
    assert torch.equal(odd, epoch_flips(1000, "alternate", 5, 3, gen))
    assert epoch_flips(10, "none", 5, 1, gen) is None


def zeroed_box(zeroed: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), end-exclusive, of the rows and columns holding a zeroed pixel."""
    rows, cols = zeroed.any(1).nonzero().flatten(), zeroed.any(0).nonzero().flatten()
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def test_cutout_zeroes_one_square():
    """Per image, every channel of one size x size square is zeroed (cut by the border where it overhangs)
    and every other value is left as it was."""
    size, side = 8, 32
    x = torch.randint(1, 256, (64, side, side, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    out = cutout(x, size, torch.Generator().manual_seed(0))
    full_squares = 0
    for image, before in zip(out, x):
        zeroed = image == 0
        assert zeroed.any(), "an image without a cutout"
        assert torch.equal(zeroed.any(-1), zeroed.all(-1)), "a pixel zeroed in some channels only"
        top, bottom, left, right = zeroed_box(zeroed.all(-1))
        assert zeroed.all(-1)[top:bottom, left:right].all(), "the zeroed pixels do not fill one rectangle"
        for start, end in ((top, bottom), (left, right)):
            assert end - start == size or (end - start >= size // 2 and (start == 0 or end == side)), (start, end)
        full_squares += (bottom - top, right - left) == (size, size)
        assert torch.equal(image[~zeroed.all(-1)], before[~zeroed.all(-1)])
    assert full_squares >= len(out) // 4  # the border cuts only squares centred near it (~39% of them)


def test_same_seed_same_batch():
    cfg = AugmentConfig(crop_padding=4, flip="random", cutout=8)
    x = batch()
    flips = torch.tensor([True, False] * 8)
    a = augment_batch(x, cfg, torch.Generator().manual_seed(3), flips)
    b = augment_batch(x, cfg, torch.Generator().manual_seed(3), flips)
    c = augment_batch(x, cfg, torch.Generator().manual_seed(4), flips)
    assert torch.equal(a, b) and not torch.equal(a, c)
