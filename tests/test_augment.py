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


def test_cutout_zeroes_one_square():
    x = torch.full((4, 32, 32, 3), 7, dtype=torch.uint8)
    out = cutout(x, 8, torch.Generator().manual_seed(0))
    zeros = (out == 0).all(-1).sum(dim=(1, 2))
    assert ((zeros > 0) & (zeros <= 64)).all()


def test_same_seed_same_batch():
    cfg = AugmentConfig(crop_padding=4, flip="random", cutout=8)
    x = batch()
    flips = torch.tensor([True, False] * 8)
    a = augment_batch(x, cfg, torch.Generator().manual_seed(3), flips)
    b = augment_batch(x, cfg, torch.Generator().manual_seed(3), flips)
    c = augment_batch(x, cfg, torch.Generator().manual_seed(4), flips)
    assert torch.equal(a, b) and not torch.equal(a, c)
