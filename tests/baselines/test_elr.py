"""ELR and ELR+ (docs/baselines.md 6.1, 6.2): the pieces against hand-computed values, the step's wiring, resume."""

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from baselines.common.checkpoint import load_checkpoint
from baselines.common.elr import (WeightAverage, clamped_softmax, elr_term, sigmoid_rampup, target_weighted_labels,
                                  update_targets)
from baselines.common.engine import Batch, ConfigurationError, run
from baselines.common.mixup import mix
from baselines.elr_plus import ELRPlus, elr_defaults, elr_trainer_defaults
from method_steps import build_method, smoke_config, step_config

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- the pieces, by hand
def test_elr_term_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [1.0, 1.0, 1.0]]))  # softmax: [.5, .3, .2] and thirds
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    # <t, p> = 0.5 and 1/3: mean(log(0.5), log(2/3)), times the weight
    expected = (math.log(0.5) + math.log(2 / 3)) / 2
    assert elr_term(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    assert elr_term(logits, targets, weight=3.0).item() == pytest.approx(3 * expected, rel=1e-6)


def test_elr_term_gradient_pulls_the_prediction_towards_the_target():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).requires_grad_()
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    elr_term(logits, targets).backward()
    # d/dz_j log(1 - <t,p>) = -p_j (t_j - <t,p>) / (1 - <t,p>) = -2 * [.5*.5, .3*(-.5), .2*(-.5)]
    assert torch.allclose(logits.grad, torch.tensor([[-0.5, 0.3, 0.2]]), atol=1e-6)
    stepped = logits.detach() - 0.1 * logits.grad  # a descent step raises the target's probability
    assert torch.softmax(stepped, 1)[0, 0] > 0.5


def test_elr_term_stays_finite_when_the_prediction_saturates():
    logits = torch.tensor([[100.0, 0.0]])  # softmax [1, 0] -> clamped [1 - 1e-4, 1e-4]
    assert torch.allclose(clamped_softmax(logits), torch.tensor([[1 - 1e-4, 1e-4]]))
    assert elr_term(logits, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(math.log(1e-4), rel=1e-3)


def test_target_update_two_steps_by_hand():
    table = torch.zeros(4, 3)
    index = torch.tensor([1, 3])
    update_targets(table, index, torch.tensor([[2.0, 1.0, 1.0], [0.0, 0.0, 1.0]]), beta=0.7)
    # 0.3 * s / sum(s): [.5, .25, .25] -> [.15, .075, .075]; [0, 0, 1] -> [0, 0, .3]
    assert torch.allclose(table[1], torch.tensor([0.15, 0.075, 0.075]))
    assert torch.allclose(table[3], torch.tensor([0.0, 0.0, 0.3]))
    new = update_targets(table, index[:1], torch.tensor([[1.0, 3.0, 0.0]]), beta=0.7)
    # 0.7 * [.15, .075, .075] + 0.3 * [.25, .75, 0]
    assert torch.allclose(new, torch.tensor([[0.18, 0.2775, 0.0525]]))
    assert torch.allclose(table[3], torch.tensor([0.0, 0.0, 0.3])) and not table[[0, 2]].any()


def test_cifar100_label_weighting_by_hand():
    labels = torch.tensor([[0.7, 0.3, 0.0]])  # a mixed one-hot pair
    targets = torch.tensor([[0.2, 0.5, 0.3]])
    # Y * q = [.14, .15, 0], / .29
    assert torch.allclose(target_weighted_labels(labels, targets), torch.tensor([[0.14 / 0.29, 0.15 / 0.29, 0.0]]))


def test_sigmoid_rampup_by_hand():
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(10, 10) == sigmoid_rampup(25, 10) == 1.0
    assert sigmoid_rampup(0, 0) == sigmoid_rampup(7, 0) == 1.0  # L = 0: no ramp


def test_weight_average_moves_parameters_only():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average = WeightAverage(student, alpha=0.5, ramp_steps=4)
    assert average.model.training and not any(p.requires_grad for p in average.model.parameters())
    # a_t = alpha * rho(s + 1, L): step 1 -> 0.5 * exp(-5 * (1 - 2/4)^2)
    assert average.decay(1) == pytest.approx(0.5 * math.exp(-1.25))
    assert average.decay(3) == average.decay(10) == 0.5
    before = [p.clone() for p in average.model.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    student(torch.randn(5, 3))  # moves the student's BN buffers
    assert average.update(student, step=3) == 0.5
    for old, new, cur in zip(before, average.model.parameters(), student.parameters()):
        assert torch.allclose(new, 0.5 * old + 0.5 * cur)
    assert torch.equal(average.model[1].running_mean, torch.zeros(2))  # buffers are not copied
    assert average.model[1].num_batches_tracked.item() == 0
    average.probabilities(torch.randn(5, 3))  # its own forwards move its own buffers
    assert average.model[1].num_batches_tracked.item() == 1


# ---------------------------------------------------------------------- per-dataset tables
@pytest.mark.parametrize(
    "variant,dataset,noise,beta,lam,coef,weighting",
    [("elr_plus", "cifar10", "sym", 0.7, 3, 0, False), ("elr_plus", "cifar10", "asym", 0.9, 1, 0, False),
     ("elr_plus", "cifar100", "sym", 0.9, 7, 40000, True), ("elr_plus", "cifar100", "asym", 0.9, 7, 40000, True),
     ("elr_plus", "digits", "pairflip", 0.7, 3, 0, False), ("elr_plus", "image_folder", "asym", 0.9, 1, 0, False),
     ("elr", "cifar10", "sym", 0.7, 3, None, None), ("elr", "cifar10", "asym", 0.9, 1, None, None),
     ("elr", "cifar100", "sym", 0.9, 7, None, None), ("elr", "digits", "idn", 0.7, 3, None, None)],
)
def test_method_defaults_follow_the_tables(variant, dataset, noise, beta, lam, coef, weighting):
    d = elr_defaults(variant, dataset, noise)
    assert (d["beta"], d["lambda_elr"], d["coef_step"], d["label_weighting"]) == (beta, lam, coef, weighting)


@pytest.mark.parametrize(
    "variant,dataset,noise,epochs,schedule,milestones,gamma,wd",
    [("elr_plus", "cifar10", "sym", 200, "step", [150], 0.1, 5e-4),
     ("elr_plus", "cifar10", "asym", 200, "step", [150], 0.1, 5e-4),
     ("elr_plus", "cifar100", "sym", 250, "step", [200], 0.1, 5e-4),
     ("elr", "cifar10", "asym", 120, "step", [40, 80], 0.01, 1e-3),
     ("elr", "cifar100", "asym", 150, "step", [80, 120], 0.01, 1e-3),
     ("elr", "digits", "sym", 150, "cosine_restarts", [], 0.1, 1e-3)],
)
def test_trainer_defaults_follow_the_tables(variant, dataset, noise, epochs, schedule, milestones, gamma, wd):
    d = elr_trainer_defaults(variant, dataset, noise)
    assert (d["epochs"], d["lr_schedule"], d["lr_milestones"], d["lr_gamma"], d["weight_decay"]) == (
        epochs, schedule, milestones, gamma, wd)
    if schedule == "cosine_restarts":  # CosineAnnealingWarmRestarts(T_0=10, eta_min=0.001)
        assert (d["lr_restart_period"], d["lr_min"]) == (10, 0.001)


# ---------------------------------------------------------------------- the steps, on digits
def _method(tmp_path, *overrides):
    return build_method(tmp_path, "elr_plus", *overrides)


def _batch(method, n=8, epoch=1):
    index = torch.arange(n)
    images = method.ctx.augment(method.ctx.train_images[index], train=True)
    return Batch(epoch, index, images, method.ctx.labels[index])


class _MixSpy:
    """Records what ELR+ mixes; lam = 1 and the identity permutation keep every row as it was."""

    def __call__(self, inputs, targets, alpha):
        self.inputs, self.targets = inputs, targets
        return mix(inputs, targets, alpha, lam=1.0, perm=torch.arange(len(inputs)))


def test_elr_plus_targets_come_from_the_peer_average(tmp_path, monkeypatch):
    import baselines.elr_plus as module

    monkeypatch.setattr(module, "mix", _MixSpy())
    method = _method(tmp_path)
    batch = _batch(method)
    peer = copy.deepcopy(method.averages[1].model)  # train mode: the same batch statistics as the step's forward
    expected = 0.3 * torch.softmax(peer(batch.images), 1)  # beta 0.7 on digits (CIFAR-10 sym row)
    own_average = [p.clone() for p in method.averages[0].model.parameters()]
    peer_average = [p.clone() for p in method.averages[1].model.parameters()]
    terms = method._elr_plus_step(0, batch, step=0)
    assert torch.allclose(method.tables[0][:8], expected.detach(), atol=1e-6) and not method.tables[1].any()
    assert not method.tables[0][8:].any()
    assert terms["elr_weight"].item() == 3.0  # coef_step 0: no ramp
    # network 1's average moved towards it (a_0 = 0.997 * rho(1, 40000)); network 2's stayed
    assert terms["ema_decay"].item() == pytest.approx(0.997 * sigmoid_rampup(1, 40000))
    assert any(not torch.equal(a, b) for a, b in zip(own_average, method.averages[0].model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(peer_average, method.averages[1].model.parameters()))


@pytest.mark.slow
@pytest.mark.parametrize("sanm,copies", [("on", 1), ("official", 2)])
def test_masked_rows_join_the_mixup_with_their_samples_targets(tmp_path, monkeypatch, sanm, copies):
    import baselines.elr_plus as module

    spy = _MixSpy()
    monkeypatch.setattr(module, "mix", spy)
    method = _method(tmp_path, f"+sanm={sanm}")
    method.nets[1].sanm.set_quality(torch.full((method.ctx.num_train,), 0.5))  # G = 1 (the start) masks nothing
    batch = _batch(method)
    terms = method._elr_plus_step(1, batch, step=0)
    n, c = 8, method.ctx.num_classes
    assert spy.inputs.shape[0] == n * (1 + copies) and spy.targets.shape == (n * (1 + copies), 2 * c)
    labels, targets = spy.targets[:, :c], spy.targets[:, c:]
    assert torch.equal(spy.inputs[:n], batch.images)
    assert torch.equal(labels[:n], torch.nn.functional.one_hot(batch.labels, c).float())
    assert torch.equal(targets[n:], targets[:n].repeat(copies, 1))  # the ELR target of the unmasked sample
    masked_top = labels[n:].gather(1, batch.labels.repeat(copies).unsqueeze(1))
    assert (masked_top < 1).all() and torch.allclose(labels.sum(1), torch.ones(len(labels)))  # NLR moved mass
    assert terms["loss/reconstruction"] > 0


def test_elr_targets_come_from_its_own_prediction(tmp_path):
    method = _method(tmp_path, "method.variant=elr")
    assert [net.name for net in method.nets] == ["net"] and method.averages == []
    batch = _batch(method)
    model = copy.deepcopy(method.nets[0].model)
    probs = clamped_softmax(model(batch.images)).detach()
    method.train_step(batch)
    assert torch.allclose(method.tables[0][:8], 0.3 * probs / probs.sum(1, keepdim=True), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides,match",
    [(["method.variant=elr2"], "method.variant"), (["method.beta=1.0"], "method.beta"),
     (["method.variant=elr", "+sanm=on", "sanm.recon_source=mixed"], "recon_source"),
     (["method.variant=elr", "+sanm=on", "sanm.train_on=masked"], "train_on"),
     (["method.label_weighting=maybe"], "label_weighting")],
)
def test_bad_settings_are_configuration_errors(tmp_path, overrides, match):
    cfg = smoke_config("elr_plus", f"dataset.cache_dir={tmp_path}", "tensorboard=false", "progress=false", *overrides)
    with pytest.raises(ConfigurationError, match=match):
        run(cfg, ELRPlus, run_dir=tmp_path / "run")


# ---------------------------------------------------------------------- resume
@pytest.mark.slow
@pytest.mark.parametrize("variant,networks,steps", [("elr_plus", ("net1", "net2"), 2 * 3), ("elr", ("net",), 0)])
def test_resume_continues_exactly(tmp_path, variant, networks, steps):
    """2 epochs straight == 1 epoch, then resume for the second: weights, targets, averages, step, bit for bit."""
    args = [f"method.variant={variant}", "+sanm=on", "dataset.train_subset=150"]  # SANM on in epoch 1 (warmup 1)
    run(step_config(tmp_path, "elr_plus", *args, "trainer.epochs=2"), ELRPlus, run_dir=tmp_path / "whole")
    run(step_config(tmp_path, "elr_plus", *args, "trainer.epochs=1"), ELRPlus, run_dir=tmp_path / "split")
    run(step_config(tmp_path, "elr_plus", *args, "trainer.epochs=2", "resume=true"), ELRPlus,
        run_dir=tmp_path / "split")
    whole, split = (load_checkpoint(tmp_path / name / "checkpoints" / "last.pt") for name in ("whole", "split"))
    assert whole["epoch"] == split["epoch"] == 2 and whole["method_name"] == variant
    # ELR+: two epochs of network 1's steps (150 images in batches of 64); ELR keeps no step counter
    assert whole["method"]["global_step"] == split["method"]["global_step"] == steps
    assert set(whole["networks"]) == set(networks)
    for name in networks:
        for key in ("model", "sanm"):
            for k, v in whole["networks"][name][key].items():
                assert torch.equal(v, split["networks"][name][key][k]), (name, k)
    for a, b in zip(whole["method"]["targets"], split["method"]["targets"], strict=True):
        assert a.any() and torch.equal(a, b)
    assert len(whole["method"]["averages"]) == (2 if variant == "elr_plus" else 0)
    for a, b in zip(whole["method"]["averages"], split["method"]["averages"], strict=True):
        assert all(torch.equal(v, b[k]) for k, v in a.items())
