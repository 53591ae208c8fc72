"""SANM's ablation options (fill space, reconstruction target, decoder, extremes) reach every network's hooks."""

import pytest
import torch
from method_steps import build_method, step_config


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


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ce", "elr_plus", "coteaching", "dividemix"])  # each its own training step
def test_with_and_without_sanm_a_seed_is_the_same_run_until_sanm_starts(tmp_path, name):
    """The decoder's initial weights come from a stream of their own: the warm-up epoch (SANM starts in the second)
    trains the same networks from the same draws with SANM on as off, so same-seed runs compare paired."""
    from baselines.common.checkpoint import load_checkpoint
    from baselines.common.engine import run
    from baselines.registry import BASELINES

    for sanm in ("off", "on"):
        cfg = step_config(tmp_path, name, "trainer.epochs=1", *([] if sanm == "off" else ["+sanm=on"]))
        run(cfg, BASELINES[name], run_dir=tmp_path / sanm)
    off, on = (load_checkpoint(tmp_path / sanm / "checkpoints" / "last.pt") for sanm in ("off", "on"))
    assert set(off["networks"]) == set(on["networks"])
    assert all(on["networks"][net]["sanm"] and not off["networks"][net].get("sanm") for net in on["networks"])
    for net in off["networks"]:
        weights_off, weights_on = off["networks"][net]["model"], on["networks"][net]["model"]
        assert all(torch.equal(weights_off[key], weights_on[key]) for key in weights_off), net
    assert torch.equal(off["rng"]["torch"], on["rng"]["torch"])  # and the next epoch's draws start alike
