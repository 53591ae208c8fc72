"""The one-call SANM loss (`SANMAugmenter.loss`), its soft cross-entropy (Eq. 8) and `SANMAugmenter.for_model`."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from sanm_plugin import FeatureTap, SANMAugmenter, SANMConfig, SANMLoss, soft_cross_entropy


def _small_cnn(classes=5):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))


def _batch(b=6, classes=5, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 3, 16, 16, generator=gen), torch.randint(0, classes, (b,), generator=gen),
            torch.rand(b, generator=gen))


def test_soft_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (1/4, 3/4)
    targets = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_cross_entropy(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    # class ids mean their one-hot rows; 'none' gives one value per sample
    ids = torch.tensor([1, 0])
    two = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    per_sample = soft_cross_entropy(two, ids, reduction="none")
    assert per_sample.tolist() == pytest.approx([-math.log(0.75), -math.log(0.25)], rel=1e-6)
    assert torch.allclose(per_sample, soft_cross_entropy(two, F.one_hot(ids, 2).float(), reduction="none"))
    with pytest.raises(ValueError, match="reduction"):
        soft_cross_entropy(two, ids, reduction="sum")


def test_loss_is_the_three_hooks_and_the_masked_forward():
    """The same seed gives the same masks: loss() equals the hand-written step of docs/method.md 2.6."""
    model = _small_cnn()
    x, y, g = _batch()
    tap = FeatureTap(model)
    sanm = SANMAugmenter.for_model(tap, (3, 16, 16))
    logits, feats = tap(x)
    torch.manual_seed(5)
    out = sanm.loss(x, y, g, logits, feats)
    torch.manual_seed(5)
    mb = sanm.modulate_batch(x, feats.detach(), logits.detach(), g, tap.classifier_weight.detach())
    y_r = sanm.regularize_labels(y, mb)
    logits_m, feats_m = tap(mb.images)
    assert isinstance(out, SANMLoss) and torch.equal(out.batch.images, mb.images) and torch.equal(out.targets, y_r)
    assert torch.equal(out.masked, -(y_r * F.log_softmax(logits_m, dim=1)).sum(dim=1).mean())
    assert torch.equal(out.reconstruction, sanm.reconstruction_loss(feats_m, x))
    assert torch.equal(out.total, out.masked + out.reconstruction)


def test_masks_are_placed_without_gradient_and_the_masked_view_trains_model_and_decoder():
    model = _small_cnn()
    x, y, g = _batch()
    sanm = SANMAugmenter.for_model(model, (3, 16, 16))
    logits, feats = sanm.tap(x)  # with their graph: loss() must not backpropagate through them
    torch.manual_seed(0)
    sanm.loss(x, y, g, logits, feats).total.backward()
    with_graph = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(0)
    sanm.loss(x, y, g, logits.detach(), feats.detach()).total.backward()
    assert all(torch.equal(a, b) for a, b in zip(with_graph, (p.grad for p in model.parameters())))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sanm.decoder.parameters())


def test_without_the_clean_forward_loss_runs_it_itself():
    model = _small_cnn().eval()  # eval: the extra forward's BN update cannot change the logits
    x, y, g = _batch()
    sanm = SANMAugmenter.for_model(model, (3, 16, 16))
    torch.manual_seed(3)
    given = sanm.loss(x, y, g, *sanm.tap(x))
    torch.manual_seed(3)
    own = sanm.loss(x, y, g)
    assert torch.equal(given.batch.images, own.batch.images) and torch.equal(given.total, own.total)


def test_any_criterion_and_soft_targets():
    model = _small_cnn()
    x, y, g = _batch()
    sanm = SANMAugmenter.for_model(model, (3, 16, 16))
    seen = {}

    def squared_error(logits, targets):
        seen["targets"] = targets
        return ((logits.softmax(dim=1) - targets) ** 2).sum(dim=1).mean()

    soft = F.one_hot(y, 5).float() * 0.9 + 0.02
    out = sanm.loss(x, soft, g, tap=model, criterion=squared_error)
    assert seen["targets"].shape == (6, 5) and torch.allclose(seen["targets"].sum(dim=1), torch.ones(6))
    assert torch.equal(seen["targets"], out.targets)


def test_separate_trough_image_doubles_the_masked_batch():
    model = _small_cnn()
    x, y, g = _batch()
    sanm = SANMAugmenter.for_model(model, (3, 16, 16), config=SANMConfig.official())
    out = sanm.loss(x, y, g)
    assert out.batch.trough_images is not None and out.targets.shape == (12, 5)
    assert torch.equal(out.targets[:6], out.targets[6:])


def test_loss_without_a_model_says_how_to_give_one():
    sanm = SANMAugmenter(5, 16, (3, 16, 16))
    x, y, g = _batch()
    with pytest.raises(ValueError, match="for_model"):
        sanm.loss(x, y, g)


def test_for_model_reads_the_sizes_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()  # the small-image stem of examples/own_training_loop.py: a 4x4 map
    model.train()
    model.layer2.eval()  # a mixed state must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    FeatureTap(model).dry_run((3, 32, 32))
    assert torch.equal(torch.get_rng_state(), rng)  # its random images have a generator of their own
    sanm = SANMAugmenter.for_model(model, (3, 32, 32))
    assert (sanm.num_classes, sanm.feature_channels, sanm.feature_size) == (10, 512, (4, 4))
    assert sanm.tap.layer == "layer4" and sanm.tap.model is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    assert model.training and not model.layer2.training and model.layer3.training
    assert not any(p is q for p in sanm.parameters() for q in model.parameters())  # the model is no submodule
    # the decoder is the one the sizes give: 4x4 -> 32x32 is three 2x stages
    assert sanm.decoder(torch.randn(1, 512, 4, 4)).shape == (1, 3, 32, 32)


def test_for_model_finds_a_functional_relu_on_a_fresh_network():
    """The dry run uses random images: a DenseNet-style ReLU after the feature map is still detected."""

    from test_tap import FunctionalRelu  # the DenseNet-style network the tap's tests use

    sanm = SANMAugmenter.for_model(FunctionalRelu(), (3, 8, 8))
    _, feats = sanm.tap(torch.randn(2, 3, 8, 8))
    assert (sanm.num_classes, sanm.feature_channels, sanm.feature_size) == (4, 6, (4, 4)) and (feats >= 0).all()
