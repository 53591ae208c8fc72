"""FeatureTap on torchvision, timm-contract and functional-ReLU classifiers."""

import copy

import pytest
import torch
import torchvision
from torch import nn

from sanm_plugin import FeatureTap


def _resnet18(classes=10):
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=classes)


class TimmLike(nn.Module):
    """The timm contract: forward_features / forward_head / get_classifier."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8, 5)

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, x, pre_logits=False):
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


class FunctionalRelu(nn.Module):
    """DenseNet-style: a functional ReLU between the last module and the pooling."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6))
        self.classifier = nn.Linear(6, 4)

    def forward(self, x):
        return self.classifier(torch.relu(self.features(x)).mean((2, 3)))


@pytest.mark.slow
@pytest.mark.parametrize("train", [True, False])
def test_resnet18_logits_features_and_untouched_state(train):
    model = _resnet18().train(train)
    reference = copy.deepcopy(model)
    x = torch.randn(2, 3, 64, 64)
    tap = FeatureTap(model)
    logits, feats = tap(x)
    assert tap.layer == "layer4" and tap.classifier == "fc"
    assert feats.shape == (2, 512, 2, 2)
    assert torch.allclose(logits, reference(x), atol=1e-5)
    assert model.training == train
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name  # BN statistics moved exactly as one plain forward moves them
    assert tap.classifier_weight is model.fc.weight
    logits2, feats2 = tap(x)  # the second call hooks only the chosen layer
    assert feats2.shape == feats.shape and not model._forward_hooks and not model.layer4._forward_hooks


def test_feature_map_gives_the_logits_through_pool_and_classifier():
    model = _resnet18().eval()
    logits, feats = FeatureTap(model)(torch.randn(3, 3, 32, 32))
    assert torch.allclose(model.fc(feats.mean((2, 3))), logits, atol=1e-5)


def test_explicit_layer_overrides():
    model = _resnet18().eval()
    logits, feats = FeatureTap(model, layer="layer3")(torch.randn(1, 3, 64, 64))
    assert feats.shape == (1, 256, 4, 4) and logits.shape == (1, 10)


@pytest.mark.slow
def test_timm_contract_needs_no_hooks():
    model = TimmLike().train()
    tap = FeatureTap(model)
    logits, feats = tap(torch.randn(2, 3, 16, 16))
    assert feats.shape == (2, 8, 4, 4) and logits.shape == (2, 5)
    assert tap.classifier_weight is model.fc.weight and tap.layer is None


def test_functional_relu_is_detected():
    model = FunctionalRelu().eval()
    logits, feats = FeatureTap(model)(torch.randn(2, 3, 8, 8))
    assert (feats >= 0).all()
    assert torch.allclose(model.classifier(feats.mean((2, 3))), logits, atol=1e-5)


def test_model_without_linear_is_a_clear_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="Linear"):
        FeatureTap(model)(torch.randn(1, 3, 8, 8))
