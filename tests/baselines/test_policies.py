"""Per-sample AutoAugment / RandAugment (`baselines.common.policies`) and the `augment` presets."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from baselines.common import policies
from baselines.common.augment import AUGMENT_PRESETS, augment_settings, build_augment
from baselines.common.policies import AUTOAUGMENT_CIFAR10, PolicyAugment, apply_op, cutout

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def batch(n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def test_autoaugment_table_is_torchvisions_cifar10_policy():
    reference = getattr(v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10), "_policies", None)
    if reference is None:  # a private attribute; the table is checked against it while torchvision has it
        pytest.skip("this torchvision keeps its AutoAugment policies elsewhere")
    assert [tuple(tuple(op) for op in sub) for sub in reference] == list(AUTOAUGMENT_CIFAR10)


@pytest.mark.parametrize("policy", ["autoaugment", "randaugment"])
def test_shape_dtype_and_determinism(policy):
    aug = PolicyAugment(policy)
    x = batch()
    first = aug(x, torch.Generator().manual_seed(3))
    again = aug(x, torch.Generator().manual_seed(3))
    other = aug(x, torch.Generator().manual_seed(4))
    assert first.dtype == torch.uint8 and first.shape == x.shape
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(x, batch())  # the input is not modified in place


@pytest.mark.parametrize("policy", ["autoaugment", "randaugment"])
def test_each_sample_draws_its_own_policy(policy):
    """64 copies of one image come out as many different images (one shared draw would give one)."""
    x = batch(1).expand(64, -1, -1, -1).contiguous()
    out = PolicyAugment(policy)(x, torch.Generator().manual_seed(0))
    distinct = {bytes(row.flatten().tolist()) for row in out}
    assert len(distinct) > 20


@pytest.mark.parametrize("policy", ["autoaugment", "randaugment"])
def test_grouped_calls_equal_applying_each_sample_alone(policy):
    aug = PolicyAugment(policy, cutout=0)
    x = batch(48)
    draw_fn = aug._autoaugment_draws if policy == "autoaugment" else aug._randaugment_draws
    draws = draw_fn(x.shape, torch.Generator().manual_seed(7))
    expected = x.clone()
    for draw in draws:
        for i in range(len(x)):
            if draw.applied[i]:
                expected[i:i + 1] = apply_op(expected[i:i + 1], draw.ops[i], draw.values[i], aug.fill)
    assert torch.equal(aug(x, torch.Generator().manual_seed(7)), expected)


@pytest.mark.parametrize("policy,bound", [("autoaugment", 2 * 50), ("randaugment", 2 * 14 * 9 * 2)])
def test_calls_per_batch_are_bounded_by_the_distinct_draws(monkeypatch, policy, bound):
    """The cost is per (op, value) group, not per sample: 2048 images take no more calls than the draws allow."""
    calls = []
    real = policies.apply_op
    monkeypatch.setattr(policies, "apply_op", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    PolicyAugment(policy, cutout=0)(batch(2048), torch.Generator().manual_seed(0))
    assert 0 < len(calls) <= bound


def test_randaugment_values_follow_fixmatch():
    """v ~ U{1..9}: brightness factor v*0.09 + 0.05, posterize int(0.4 v) + 4 bits, rotate +-3v degrees,
    solarize threshold 256 - int(25.6 v), translations +-int(0.03 v * 32) pixels."""
    aug = PolicyAugment("randaugment")
    seen: dict[str, set[float]] = {}
    for draw in aug._randaugment_draws(torch.Size([4096, 3, 32, 32]), torch.Generator().manual_seed(0)):
        for op, value in zip(draw.ops, draw.values):
            seen.setdefault(op, set()).add(round(value, 6))
    levels = range(1, 10)
    assert seen["Brightness"] == {round(v * 0.09 + 0.05, 6) for v in levels}
    assert seen["Posterize"] == {4.0, 5.0, 6.0, 7.0}
    assert seen["Rotate"] == {float(s * 3 * v) for v in levels for s in (-1, 1)}
    assert seen["Solarize"] == {float(256 - int(25.6 * v)) for v in levels}
    assert seen["TranslateX"] == {float(s * int(0.03 * v * 32)) for v in levels for s in (-1, 1)}
    assert seen["Identity"] == {0.0}


def test_autoaugment_values_follow_its_tables():
    aug = PolicyAugment("autoaugment")
    pairs = set()
    for draw in aug._autoaugment_draws(torch.Size([4096, 3, 32, 32]), torch.Generator().manual_seed(0)):
        pairs |= {(op, round(value, 4)) for op, value in zip(draw.ops, draw.values)}
    assert ("Posterize", 5.0) in pairs  # index 7: round(8 - 4 * 7 / 9)
    assert ("Solarize", round(256 - 256 * 2 / 9, 4)) in pairs  # index 2
    assert {("Rotate", round(30 * 2 / 9, 4))} == {p for p in pairs if p[0] == "Rotate"}  # unsigned
    assert {("TranslateX", round(s * 150 / 331 * 32, 4)) for s in (-1, 1)} <= pairs  # index 9, both signs
    assert {("Color", round(1 + s * 0.9, 4)) for s in (-1, 1)} <= pairs  # index 9: factor 1 +- 0.9


def test_apply_op_hand_checked_cases():
    x = torch.tensor([[[[0, 100, 200, 255]]]], dtype=torch.uint8).expand(1, 3, 1, 4).contiguous()
    assert torch.equal(apply_op(x, "Solarize", 256.0, 0), x)  # threshold above 255: nothing inverted
    assert apply_op(x, "Solarize", 150.0, 0)[0, 0, 0].tolist() == [0, 100, 55, 0]
    assert apply_op(x, "Posterize", 4, 0)[0, 0, 0].tolist() == [0, 96, 192, 240]
    assert apply_op(x, "Invert", 0.0, 0)[0, 0, 0].tolist() == [255, 155, 55, 0]
    shifted = apply_op(batch(1), "TranslateX", 3.0, 128)
    assert (shifted[..., :3] == 128).all()  # a shift right by 3 pixels fills the left columns
    with pytest.raises(ValueError, match="unknown augmentation op"):
        apply_op(x, "Blur", 1.0, 0)


def test_cutout_paints_one_clipped_square_per_sample():
    x = torch.zeros(256, 3, 32, 32, dtype=torch.uint8)
    out = cutout(x, 16, 127, torch.Generator().manual_seed(0))
    painted = (out[:, 0] == 127)
    areas = painted.sum(dim=(1, 2))
    assert (areas > 0).all() and (areas <= 256).all() and (areas == 256).any() and (areas < 256).any()
    rows, cols = painted.any(dim=2), painted.any(dim=1)
    assert torch.equal(areas, rows.sum(1) * cols.sum(1))  # a rectangle, the same in every channel
    assert torch.equal(out[:, 0], out[:, 2])


def test_bad_policy_settings_fail_with_the_fix():
    with pytest.raises(ValueError, match="policy must be"):
        PolicyAugment("cutmix")
    with pytest.raises(ValueError, match="magnitude must be in 2..10"):
        PolicyAugment("randaugment", magnitude=11)
    with pytest.raises(ValueError, match="expected uint8"):
        PolicyAugment("autoaugment")(batch().float())


def test_presets_and_overrides():
    assert augment_settings("weak") == AUGMENT_PRESETS["weak"]
    assert augment_settings("randaugment", {"magnitude": 5, "cutout": None})["magnitude"] == 5
    with pytest.raises(ValueError, match="not a preset"):
        augment_settings("strong")
    with pytest.raises(ValueError, match="no effect with augment=weak"):
        augment_settings("weak", {"num_ops": 3})
    with pytest.raises(ValueError, match="magnitude has no effect with augment=autoaugment; .* augment=randaugment"):
        augment_settings("autoaugment", {"magnitude": 3})
    assert augment_settings("autoaugment", {"fill": 0})["fill"] == 0
    none = build_augment("none", MEAN, STD)
    assert none.crop_padding == 0 and not none.flip and none.policy is None
    strong = build_augment("randaugment", MEAN, STD)
    out = strong(batch(8), train=True)
    assert out.dtype == torch.float32 and out.shape == (8, 3, 32, 32)
    assert torch.equal(strong(batch(8), train=False), build_augment("weak", MEAN, STD).normalize(batch(8)))


def test_warmup_views_are_per_image_and_seeded():
    from baselines.common.policies import PerImageAugment, c2d_warmup

    x = batch(1).expand(16, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    first = c2d_warmup()(x)
    torch.manual_seed(0)
    assert torch.equal(first, c2d_warmup()(x))  # the engine seeds (and checkpoints) the global RNG
    assert first.dtype == torch.uint8 and first.shape == x.shape
    assert len({bytes(row.flatten().tolist()) for row in first}) == 16  # each image its own draw
    assert PerImageAugment(lambda image: image)(x[:0]).shape == (0, 3, 32, 32)
    views = build_augment("c2d_warmup", MEAN, STD)
    assert views.crop_padding == 4 and views(x, train=True).shape == x.shape
