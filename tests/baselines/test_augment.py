"""`baselines.common.augment`: the batched crop/flip draws what torchvision's per-image recipe draws."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.common.augment import BatchAugment, _crop_flip_indices

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # CIFAR-10, as in the DivideMix loaders
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _images(b: int = 6, c: int = 3, h: int = 5, w: int = 7, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    # h != w so that a swapped row/column index cannot pass; values start at 1 so padding (0) is distinguishable.
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (b, c, h, w), generator=g, dtype=torch.uint8).to(device)


def _reference(aug: BatchAugment, x: torch.Tensor, pad: int, rows, cols, flipped) -> torch.Tensor:
    """Per-sample loop: zero-pad, cut the window at the drawn offset, mirror it, normalise."""
    h, w = x.shape[-2:]
    out = []
    for i in range(x.shape[0]):
        padded = F.pad(x[i], (pad, pad, pad, pad))
        top, left = int(rows[i, 0]), int(cols[i].min())
        crop = padded[:, top : top + h, left : left + w]
        out.append(crop.flip(-1) if flipped[i] else crop)
    return aug.normalize(torch.stack(out))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("train", [True, False])
def test_shape_dtype_device(device: str, train: bool) -> None:
    x = _images(device=device)
    y = BatchAugment(MEAN, STD)(x, train=train)
    assert y.shape == x.shape and y.dtype == torch.float32 and y.device == x.device


def test_eval_is_exact_normalisation() -> None:
    x = _images()
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    aug = BatchAugment(MEAN, STD)
    assert torch.equal(aug(x, train=False), expected)
    assert torch.equal(aug.normalize(x), expected)


def test_no_padding_no_flip_is_the_eval_path() -> None:
    x = _images()
    aug = BatchAugment(MEAN, STD, crop_padding=0, flip=False)
    assert torch.equal(aug(x, train=True), aug(x, train=False))


@pytest.mark.parametrize("pad, flip", [(4, True), (4, False), (0, True), (2, True)])
def test_matches_per_sample_crop_and_flip(pad: int, flip: bool) -> None:
    x = _images(b=16)
    aug = BatchAugment(MEAN, STD, crop_padding=pad, flip=flip)
    rows, cols, flipped = _crop_flip_indices(16, 5, 7, pad, flip, torch.Generator().manual_seed(3))
    out = aug(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, _reference(aug, x, pad, rows, cols, flipped))
    offsets = torch.cat([rows[:, 0], cols.min(1).values])
    assert offsets.min() >= 0 and offsets.max() <= 2 * pad
    if not flip:
        assert not flipped.any()


def test_flipped_sample_is_the_mirrored_crop() -> None:
    x = _images(b=32)
    aug = BatchAugment(MEAN, STD, crop_padding=3)
    rows, cols, flipped = _crop_flip_indices(32, 5, 7, 3, True, torch.Generator().manual_seed(1))
    assert flipped.any() and not flipped.all()
    out = aug(x, generator=torch.Generator().manual_seed(1))
    unflipped_cols = torch.where(flipped[:, None], cols.flip(1), cols)
    for i in torch.nonzero(flipped).flatten().tolist():
        top, left = int(rows[i, 0]), int(unflipped_cols[i, 0])
        window = F.pad(x[i : i + 1], (3, 3, 3, 3))[..., top : top + 5, left : left + 7]
        assert torch.equal(out[i : i + 1], aug.normalize(window.flip(-1)))


def test_offsets_and_flips_are_uniform() -> None:
    rows, cols, flipped = _crop_flip_indices(2000, 8, 8, 4, True, torch.Generator().manual_seed(0))
    # Binomial(2000, 0.5) has std ~22, so +-150 is never hit by chance.
    assert 850 < int(flipped.sum()) < 1150
    for offsets in (rows[:, 0], cols.min(1).values):
        counts = torch.bincount(offsets, minlength=9)
        assert counts.numel() == 9 and counts.min() > 150  # each of the 9 offsets ~222 times


def test_padding_is_black_in_pixel_space() -> None:
    x = torch.full((64, 3, 4, 4), 200, dtype=torch.uint8)
    aug = BatchAugment(MEAN, STD, crop_padding=4, flip=False)
    out = aug(x, generator=torch.Generator().manual_seed(0))
    black = aug.normalize(torch.zeros(1, 3, 1, 1, dtype=torch.uint8))
    assert torch.isclose(out, black).any(), "a crop offset by the full padding must show zero pixels"


def test_seeded_global_rng_and_generator_are_reproducible() -> None:
    x = _images(b=32)
    aug = BatchAugment(MEAN, STD)
    torch.manual_seed(5)
    first = aug(x)
    torch.manual_seed(5)
    assert torch.equal(aug(x), first)
    assert not torch.equal(aug(x), first)  # the stream moves on
    a = aug(x, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, aug(x, generator=torch.Generator().manual_seed(9)))


def test_rejects_float_and_wrong_channels() -> None:
    aug = BatchAugment(MEAN, STD)
    with pytest.raises(ValueError, match="uint8"):
        aug(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        aug(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="channels"):
        BatchAugment(MEAN, STD[:2])
