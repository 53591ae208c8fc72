"""model=torchvision|timm: building by name, pretrained weights from a file, SANM through FeatureTap, and the
decoder for an ImageNet-size feature map."""

import pytest
import torch
import torchvision

from baselines.common.backbones import build_timm, build_torchvision
from baselines.common.engine import ConfigurationError, run
from baselines.registry import BASELINES
from sanm_plugin.decoder import ReconstructionDecoder

from method_steps import smoke_config


def _cfg(method, *overrides):
    return smoke_config(method, "progress=false", *overrides)


@pytest.mark.slow
def test_imagenet_weights_load_and_the_classifier_is_sized_for_the_run(tmp_path):
    imagenet = torchvision.models.resnet18(num_classes=1000)
    torch.save({"state_dict": imagenet.state_dict()}, tmp_path / "r18.pt")
    model = build_torchvision("resnet18", 10, str(tmp_path / "r18.pt"))
    assert model.fc.out_features == 10
    torch.testing.assert_close(model.layer4[1].conv2.weight, imagenet.layer4[1].conv2.weight)
    assert not torch.equal(model.fc.weight, imagenet.fc.weight[:10])  # fresh head, not ImageNet's first rows


@pytest.mark.slow
def test_bad_backbone_settings_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="model=torchvision needs model.arch"):
        build_torchvision(None, 10)
    with pytest.raises(ValueError, match="not a torchvision classification model"):
        build_torchvision("resnet5000", 10)
    with pytest.raises(ValueError, match="no such file"):
        build_torchvision("resnet18", 10, str(tmp_path / "missing.pt"))
    torch.save(torchvision.models.vgg11(num_classes=10).state_dict(), tmp_path / "vgg.pt")
    with pytest.raises(ValueError, match="does not fit model.arch: missing"):
        build_torchvision("resnet18", 10, str(tmp_path / "vgg.pt"))
    with pytest.raises(ConfigurationError, match="model.weights=.*no such file"):
        run(_cfg("ce", "model=torchvision", "model.arch=resnet18", f"model.weights={tmp_path / 'none.pt'}"),
            BASELINES["ce"], run_dir=tmp_path / "run")


# torchvision's map is found with hooks (FeatureTap's discovery), timm's through its own contract
@pytest.mark.slow
@pytest.mark.parametrize("family,method", [("torchvision", "ce"), ("torchvision", "dividemix"), ("timm", "ce")])
def test_sanm_trains_a_library_resnet18(tmp_path, family, method):
    pytest.importorskip(family)
    summary = run(_cfg(method, f"model={family}", "model.arch=resnet18", "+sanm=on", "noise=sym_0.5",
                       "dataset.train_subset=96"), BASELINES[method], run_dir=tmp_path)
    assert summary["epochs"] == 2
    metrics = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert "loss/reconstruction" in metrics[-1] and "mask_ratio_noisy" in metrics[-1]


def test_timm_models_give_feature_maps_directly():
    pytest.importorskip("timm")
    model = build_timm("resnet18", 7)
    feats = model.forward_features(torch.zeros(2, 3, 64, 64))
    assert feats.shape == (2, 512, 2, 2) and model.get_classifier().out_features == 7


def test_the_decoder_of_an_imagenet_resnet50_map_is_full_size_and_reduces_its_channels_first():
    """7x7x2048 -> 224x224x3 in 5 learned 2x stages; a 1x1 reduction to 256 channels first keeps its cost at a
    fraction of the backbone's (without it the first transposed convolution alone would cost more than a
    ResNet-50 forward)."""
    decoder = ReconstructionDecoder(2048, (3, 224, 224), (7, 7))
    assert decoder(torch.zeros(1, 2048, 7, 7)).shape == (1, 3, 224, 224)
    params = sum(p.numel() for p in decoder.parameters())
    assert params < 3e6, params  # ResNet-50 has 25.6M
    small = ReconstructionDecoder(512, (3, 32, 32), (4, 4))  # CIFAR's PreAct ResNet-18: unchanged, no reduction
    assert not any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) for m in small.modules())
