"""SimCLR pieces for C2D (docs/baselines.md 5.1): NT-Xent against hand-computed values, batched views, encoders (ours
and C2D's released format) and which runs start from one."""

import argparse
import math
from functools import partial

import pytest
import torch
from omegaconf import OmegaConf

from baselines.common.contrastive import SimCLRViews, nt_xent
from baselines.common.encoders import choose_encoder, load_encoder, read_encoder, save_encoder
from baselines.common.models import PreActResNet18, ResNet18


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


def _c2d_checkpoint(path, encoder):
    """A file in the format of C2D's released SimCLR checkpoints (SupContrast's save_model of a DataParallel
    SupConResNet): {'opt', 'model', 'optimizer', 'epoch'}, the weights under `module.encoder.` beside the projection
    head's `module.head.`."""
    weights = {f"module.encoder.{k}": v for k, v in encoder.state_dict().items() if not k.startswith("linear.")}
    width = encoder.num_features
    weights.update({"module.head.0.weight": torch.randn(width, width), "module.head.0.bias": torch.zeros(width),
                    "module.head.2.weight": torch.randn(128, width), "module.head.2.bias": torch.zeros(128)})
    torch.save({"opt": argparse.Namespace(model="resnet18", batch_size=1024, method="SimCLR"), "model": weights,
                "optimizer": {"state": {}, "param_groups": []}, "epoch": 1000}, path)


def test_c2d_released_checkpoints_load_without_their_prefixes_head_and_classifier(tmp_path):
    torch.manual_seed(0)
    source, target = ResNet18(10, width=8), ResNet18(10, width=8)
    _c2d_checkpoint(tmp_path / "ckpt_cifar10_resnet18.pth", source)
    encoder = read_encoder(str(tmp_path / "ckpt_cifar10_resnet18.pth"))
    assert (encoder.format, encoder.model_name, encoder.width) == ("c2d", "resnet18", 8)
    assert not any(k.startswith(("module.", "encoder.", "head.")) for k in encoder.weights)
    classifier_before = target.get_classifier().weight.clone()
    cfg = OmegaConf.create({"name": "resnet18", "width": 8})
    assert load_encoder(target, str(tmp_path / "ckpt_cifar10_resnet18.pth"), cfg) == "c2d"
    for name, value in source.state_dict().items():
        if not name.startswith("linear."):
            assert torch.equal(target.state_dict()[name], value), name
    assert torch.equal(target.get_classifier().weight, classifier_before)  # the classifier stays fresh
    with pytest.raises(ValueError, match="model=resnet18 model.width=8"):  # what to set, in the error
        load_encoder(PreActResNet18(10, width=8), str(tmp_path / "ckpt_cifar10_resnet18.pth"),
                     OmegaConf.create({"name": "preact_resnet18", "width": 8}))


def test_a_file_of_neither_format_is_named_in_one_error(tmp_path):
    torch.save({"weights": {"conv1.weight": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="neither this library's"):
        read_encoder(str(tmp_path / "other.pt"))


def test_which_runs_get_an_encoder(tmp_path):
    """pretrained=PATH: always; null: none, refused where the method requires one; auto: only where the method starts
    from one (trained first; on a resume only looked up, the checkpoint holding the weights)."""
    cfg = OmegaConf.create({"pretrained": None, "pretrain_epochs": 2, "seed": 0,
                            "model": {"name": "resnet18", "width": 8}})
    choose = partial(choose_encoder, data_digest="d", cache_dir=tmp_path, method="c2d")
    assert choose(cfg, wanted=True, required=False, resuming=False) is None
    with pytest.raises(ValueError, match="c2d starts from a SimCLR encoder: pass pretrained=PATH"):
        choose(cfg, wanted=True, required=True, resuming=False)
    save_encoder(ResNet18(10, width=8), tmp_path / "mine.pt", cfg.model)
    cfg.pretrained = str(tmp_path / "mine.pt")
    assert choose(cfg, wanted=False, required=False, resuming=False).record == {"source": "file", "format": "sanm"}
    cfg.pretrained = "auto"
    assert choose(cfg, wanted=False, required=False, resuming=False) is None
    resumed = choose(cfg, wanted=True, required=False, resuming=True)  # nothing cached, nothing trained
    assert resumed.path is None and resumed.record["source"] == "auto" and resumed.record["epochs"] == 2
    assert resumed.record["batch_size"] == 1024  # conf/pretrain_simclr.yaml's
    with pytest.raises(ValueError, match="pretrain_epochs must be auto or an integer >= 1"):
        choose(OmegaConf.merge(cfg, {"pretrain_epochs": 0}), wanted=True, required=False, resuming=True)
