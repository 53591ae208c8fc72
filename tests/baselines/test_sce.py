"""SCE as a method: alpha, beta and A reach the step, SANM's masked view is trained with SCE too, bad values named."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from method_steps import ROOT, build_method, first_batch

import baselines.sce as sce_module
from baselines.common.losses import symmetric_cross_entropy


def _sce(tmp_path, *overrides):
    return build_method(tmp_path, "sce", *overrides)


def test_sce_takes_ces_setup_and_the_papers_cifar10_weights():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        sce, ce = compose(config_name="sce"), compose(config_name="ce")
    assert (sce.method.name, sce.method.alpha, sce.method.beta, sce.method.log_floor) == ("sce", 0.1, 1.0, -4.0)
    assert sce.trainer == ce.trainer and sce.model == ce.model


def test_the_step_trains_on_sce_with_the_configured_weights(tmp_path):
    method = _sce(tmp_path, "method.alpha=0.5", "method.beta=2.0", "method.log_floor=-6")
    logits, labels = torch.randn(4, 10), torch.tensor([0, 3, 9, 1])
    assert torch.equal(method.loss(logits, labels), symmetric_cross_entropy(logits, labels, 0.5, 2.0, -6.0))
    assert set(method.train_step(first_batch(method, 0))) == {"loss/supervised"}


@pytest.mark.slow
def test_with_sanm_the_masked_view_is_trained_with_sce_on_soft_targets(tmp_path, monkeypatch):
    method = _sce(tmp_path, "+sanm=on")
    seen = []

    def spy(logits, targets, alpha, beta, log_floor):
        seen.append(tuple(targets.shape))
        return symmetric_cross_entropy(logits, targets, alpha, beta, log_floor)

    monkeypatch.setattr(sce_module, "symmetric_cross_entropy", spy)
    assert {"loss/clean", "loss/masked", "loss/reconstruction"} <= set(method.train_step(first_batch(method, 1)))
    assert seen == [(8,), (8, 10)]


@pytest.mark.parametrize("override,match", [("method.alpha=-1", "alpha and method.beta"),
                                            ("method.log_floor=0", "log_floor")])
def test_bad_weights_are_refused_in_one_line(tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        _sce(tmp_path, override)
