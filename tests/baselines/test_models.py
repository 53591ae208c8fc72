"""The baseline networks: shapes, the timm contract, gradients, and DivideMix's PreAct quirks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.models import CNN9, MODELS, PreActResNet18, ResNet18, build_model

# Small widths keep CPU tests fast; width 64 is the paper network.
SMALL = {"preact_resnet18": {"width": 8}, "resnet18": {"width": 8}, "cnn9": {}}
# Feature map for a 32x32 input. PreAct: strides 1, 2, 2, 2 -> 4x4. CNN9: two 2x max-pools
# (32 -> 8), then three unpadded 3x3 convs (8 -> 6 -> 4 -> 2); the global pool then gives 1x1
# (docs/baselines.md section 2).
FEATURE_SHAPE = {"preact_resnet18": (64, 4, 4), "resnet18": (64, 4, 4), "cnn9": (128, 2, 2)}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_timm_contract_shapes(name):
    model = build_model(name, num_classes=7, **SMALL[name]).eval()
    x = torch.randn(3, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (3, *FEATURE_SHAPE[name])
    assert model.num_features == feats.shape[1]
    assert isinstance(model.get_classifier(), nn.Linear)
    assert model.get_classifier().in_features == model.num_features
    pooled = model.forward_head(feats, pre_logits=True)
    assert pooled.shape == (3, model.num_features)
    torch.testing.assert_close(pooled, feats.mean(dim=(2, 3)))
    logits = model(x)
    assert logits.shape == (3, 7)
    torch.testing.assert_close(logits, model.forward_head(feats))
    torch.testing.assert_close(logits, model.get_classifier()(pooled))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_parameter_gets_a_gradient(name):
    model = build_model(name, num_classes=5, **SMALL[name]).train()
    logits = model(torch.randn(4, 3, 32, 32))
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


def test_preact_full_width_shapes_and_parameter_count():
    model = PreActResNet18(10)
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 512, 4, 4)
    # Counted by hand: stem conv 1,728 + BN 128; layer1 147,968; layer2 525,184; layer3 2,098,944;
    # layer4 8,392,192; Linear 5,130. (11,173,962, often quoted, is kuangliu's post-activation
    # ResNet-18: BN in its projection shortcuts and bn1 over the block's output width.)
    assert sum(p.numel() for p in model.parameters()) == 11_171_274


def test_preact_other_image_sizes_and_channels():
    model = PreActResNet18(3, width=8, in_channels=1).eval()
    assert model(torch.randn(2, 1, 48, 40)).shape == (2, 3)


def test_preact_stem_and_no_final_activation():
    model = PreActResNet18(4, width=8).eval()
    x = torch.randn(2, 3, 32, 32)
    stem = F.relu(model.bn1(model.conv1(x)))  # conv THEN BN + ReLU
    # No BN/ReLU after layer4, so the features are not clipped at zero.
    expected = model.layer4(model.layer3(model.layer2(model.layer1(stem))))
    torch.testing.assert_close(model.forward_features(x), expected)
    assert (model.forward_features(x) < 0).any()


def test_preact_shortcut_carries_the_activated_input():
    model = PreActResNet18(4, width=8).eval()
    identity_block, projection_block = model.layer1[0], model.layer2[0]
    assert isinstance(identity_block.shortcut, nn.Identity)
    (conv,) = projection_block.shortcut
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.bias is None
    for block in (identity_block, projection_block):
        x = torch.randn(2, 8, 16, 16)
        a = F.relu(block.bn1(x))
        skip = a if block is identity_block else conv(a)  # the identity path adds a, not x
        torch.testing.assert_close(block(x), block.conv2(F.relu(block.bn2(block.conv1(a)))) + skip)


def test_resnet18_parameter_count_and_c2d_module_names():
    model = ResNet18(10)
    # Counted by hand: stem conv 1,728 + BN 128; layer1 147,968; layer2 525,568 (its 1x1 shortcut with BN: 8,448);
    # layer3 2,099,712; layer4 8,393,728; Linear 5,130: the 11,173,962 quoted for the CIFAR ResNet-18
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    names = set(model.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv2.weight", "layer2.0.shortcut.0.weight",
            "layer2.0.shortcut.1.running_var", "layer4.1.bn2.bias"} <= names  # C2D's encoder's, without `encoder.`
    assert not any(name.startswith("layer1.0.shortcut") for name in names)  # identity shortcuts hold nothing


def test_resnet18_blocks_are_post_activation():
    model = ResNet18(4, width=8).eval()
    x = torch.randn(2, 3, 32, 32)
    stem = F.relu(model.bn1(model.conv1(x)))
    identity_block, projection_block = model.layer1[0], model.layer2[0]
    expected = F.relu(identity_block.bn2(identity_block.conv2(F.relu(identity_block.bn1(identity_block.conv1(stem)))))
                      + stem)  # the shortcut adds the block's raw input, and ReLU follows the sum
    torch.testing.assert_close(identity_block(stem), expected)
    conv, bn = projection_block.shortcut
    assert isinstance(conv, nn.Conv2d) and conv.stride == (2, 2) and isinstance(bn, nn.BatchNorm2d)
    assert (model.forward_features(x) >= 0).all()  # the feature map is the last block's ReLU output


@pytest.mark.slow
def test_cnn9_parameter_count_and_dropout_only_in_training():
    model = CNN9(10)
    convs = [(3, 128), (128, 128), (128, 128), (128, 256), (256, 256), (256, 256)]
    convs += [(256, 512), (512, 256), (256, 128)]
    # 3x3 conv with bias, then BN (weight + bias) per layer; Linear(128, 10).
    expected = sum(i * o * 9 + o + 2 * o for i, o in convs) + 128 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == expected
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_unknown_model_lists_the_names():
    with pytest.raises(ValueError, match="cnn9, preact_resnet18"):
        build_model("resnet1000", num_classes=10)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_softmax_output_returns_the_probabilities_of_the_same_logits(name):
    """model.softmax_output, the official SANM network's quirk: forward and forward_head (what FeatureTap and so
    SANM read) return softmax(logits); off by default."""
    model = build_model(name, num_classes=5, **SMALL[name]).eval()
    assert model.softmax_output is False
    x = torch.randn(3, 3, 32, 32)
    logits = model(x)
    model.softmax_output = True
    torch.testing.assert_close(model(x), torch.softmax(logits, dim=1))
    torch.testing.assert_close(model.forward_head(model.forward_features(x)), torch.softmax(logits, dim=1))
    torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True),
                               model.forward_features(x).mean(dim=(2, 3)))  # the pooled features are unchanged
    assert build_model(name, num_classes=5, softmax_output=True, **SMALL[name]).softmax_output is True


def test_softmax_output_is_refused_for_library_models():
    with pytest.raises(ValueError, match="model.softmax_output=true .* not model=torchvision"):
        build_model("torchvision", num_classes=10, arch="resnet18", softmax_output=True)
