"""SimCLR pieces for C2D (docs/baselines.md 5.1): NT-Xent against hand-computed values, batched views, encoders."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from baselines.common.contrastive import SimCLRViews, nt_xent
from baselines.common.engine import load_encoder, save_encoder
from baselines.common.models import PreActResNet18


def test_nt_xent_by_hand():
    e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    z = torch.cat([e1, e2])
    # view e1 (row 0) sees e2 (sim 0), its partner e1 (sim 1) and e2 (sim 0), all over T = 0.5
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 2.0))
    assert nt_xent(z, z, 0.5).item() == pytest.approx(expected, rel=1e-6)
    assert nt_xent(e1, e1, 0.5).item() == pytest.approx(0.0, abs=1e-6)  # the partner is the only candidate


def test_views_are_normalised_crops_with_per_sample_randomness():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    views = SimCLRViews(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    a, b = views(images), views(images)
    assert a.shape == (16, 3, 32, 32) and a.dtype == torch.float32
    assert a.min() >= -2.0 - 1e-5 and a.max() <= 2.0 + 1e-5  # [0, 1] pixels, normalised
    assert not torch.allclose(a, b)  # two independent views of the same images


def test_encoder_round_trip_leaves_the_classifier_fresh(tmp_path):
    cfg = OmegaConf.create({"name": "preact_resnet18", "width": 8, "dropout": 0.25})
    source, target = PreActResNet18(10, width=8), PreActResNet18(10, width=8)
    save_encoder(source, tmp_path / "encoder.pt", cfg)
    classifier_before = target.get_classifier().weight.clone()
    load_encoder(target, str(tmp_path / "encoder.pt"), cfg)
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert torch.equal(target.get_classifier().weight, classifier_before)
    with pytest.raises(ValueError, match="width 8"):
        load_encoder(PreActResNet18(10, width=16), str(tmp_path / "encoder.pt"), OmegaConf.merge(cfg, {"width": 16}))
