"""SANMHook.supervised_loss is the library's one-call step (SANMAugmenter.loss): exactly what views() and the
masked forward give by hand, the way the mixing methods call them, for every train_on x target x preset."""

import pytest
import torch
from torch import nn

from baselines.common.losses import cross_entropy, soft_cross_entropy
from baselines.common.sanm_hook import SANMHook, SANMSettings
from sanm_plugin import FeatureTap, SANMConfig


def _setup(config, train_on, target):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 5)).eval()  # eval: two forwards give the same features
    hook = SANMHook(SANMSettings(config, train_on, target, 0), 5, 8, (3, 16, 16), (8, 8), torch.rand(20) > 0.3)
    hook.set_quality(torch.rand(20))
    batch = torch.randn(6, 3, 16, 16), torch.randperm(20)[:6], torch.randint(0, 5, (6,))
    return FeatureTap(model), hook, batch


@pytest.mark.parametrize("preset", ["paper", "official"])
@pytest.mark.parametrize("train_on", ["masked", "clean_and_masked"])
@pytest.mark.parametrize("target", ["label", "prediction"])
def test_supervised_loss_is_views_then_the_masked_forward(preset, train_on, target):
    config = getattr(SANMConfig, preset)()
    tap, hook, (x, index, y) = _setup(config, train_on, target)
    torch.manual_seed(1)
    loss, terms = hook.supervised_loss(tap, x, index, y, tap.classifier_weight, lambda logits: cross_entropy(logits, y))
    stats = hook.epoch_stats()

    tap, hook, (x, index, y) = _setup(config, train_on, target)
    torch.manual_seed(1)
    logits, feats = tap(x)
    clean = cross_entropy(logits, y) if train_on == "clean_and_masked" else torch.zeros(())
    views = hook.views(x, logits, feats, index, y, tap.classifier_weight)
    logits_m, feats_m = tap(views.images)
    masked, reconstruction = soft_cross_entropy(logits_m, views.targets), hook.reconstruction(feats_m, x)
    assert torch.equal(terms["loss/masked"], masked.detach())
    assert torch.equal(terms["loss/reconstruction"], reconstruction.detach())
    assert torch.equal(loss, clean + masked + reconstruction)
    assert stats == hook.epoch_stats()  # the mask-ratio diagnostics saw the same ratios
