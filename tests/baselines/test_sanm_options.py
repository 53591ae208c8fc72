"""SANM's ablation options (fill space, reconstruction target, decoder, extremes) reach every network's hooks."""

import pytest
import torch
from method_steps import build_method


def _method(tmp_path, name, *overrides):
    return build_method(tmp_path, name, *overrides)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ce", "dividemix"])
@pytest.mark.parametrize("preset,expected", [
    ("on", ("pixel", "input", "linear", "exact")), ("official", ("input", "input", "linear", "uint8")),
])
def test_presets_and_overrides_reach_every_networks_hooks(tmp_path, name, preset, expected):
    for overrides, want in [([], expected),
                            (["sanm.fill_space=input", "sanm.recon_target=pixel", "sanm.decoder=bn",
                              "sanm.extremes=uint8"], ("input", "pixel", "bn", "uint8"))]:
        method = _method(tmp_path, name, f"+sanm={preset}", *overrides)
        for net in method.networks.values():
            augmenter = net.sanm.augmenter
            config = augmenter.config
            assert (config.fill_space, config.recon_target, config.decoder, config.extremes) == want
            # the engine tells the hooks how it normalised the images, so 'pixel' means the image's pixels
            assert torch.allclose(augmenter.pixel_mean, torch.tensor(method.ctx.data.mean))
            assert torch.allclose(augmenter.pixel_std, torch.tensor(method.ctx.data.std))
            has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in augmenter.decoder.modules())
            assert has_bn == (want[2] == "bn")


def test_a_bad_option_value_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="fill_space"):
        _method(tmp_path, "ce", "+sanm=on", "sanm.fill_space=raw")
