"""GCE as a method: its loss and q reach the step, SANM's masked view is trained with GCE too, bad q is named."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from method_steps import ROOT, build_method, first_batch

import baselines.gce as gce_module
from baselines.common.losses import generalized_cross_entropy


def _gce(tmp_path, *overrides):
    return build_method(tmp_path, "gce", *overrides)


def test_gce_takes_ces_setup_and_adds_q():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        gce, ce = compose(config_name="gce"), compose(config_name="ce")
    assert gce.method.name == "gce" and gce.method.q == 0.7
    assert gce.trainer == ce.trainer and gce.model == ce.model and gce.augment == ce.augment


@pytest.mark.slow
def test_the_step_trains_on_gce_with_the_configured_q(tmp_path):
    method = _gce(tmp_path, "method.q=0.4")
    logits = torch.randn(4, 10)
    labels = torch.tensor([0, 3, 9, 1])
    assert torch.equal(method.loss(logits, labels), generalized_cross_entropy(logits, labels, 0.4))
    assert set(method.train_step(first_batch(method, 0))) == {"loss/supervised"}


def test_with_sanm_the_masked_view_is_trained_with_gce_on_soft_targets(tmp_path, monkeypatch):
    method = _gce(tmp_path, "+sanm=on")
    seen = []

    def spy(logits, targets, q):
        seen.append((tuple(targets.shape), q))
        return generalized_cross_entropy(logits, targets, q)

    monkeypatch.setattr(gce_module, "generalized_cross_entropy", spy)
    terms = method.train_step(first_batch(method, 1))  # epoch 1: after the 1-epoch warm-up of the smoke preset, SANM is active
    assert {"loss/clean", "loss/masked", "loss/reconstruction"} <= set(terms)
    assert seen == [((8,), 0.7), ((8, 10), 0.7)]  # the clean view on class ids, the masked one on soft targets


@pytest.mark.parametrize("q", ["0", "1.5", "-0.2"])
def test_a_q_outside_0_1_is_refused_in_one_line(tmp_path, q):
    with pytest.raises(ValueError, match=r"method.q must be in \(0, 1\]"):
        _gce(tmp_path, f"method.q={q}")
