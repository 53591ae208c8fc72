"""The shared trainer options: `auto` values from a method's table, lr schedules, optimisers, validation split."""

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from baselines.common.config import RunConfig
from baselines.common.engine import validation_split
from baselines.common.trainer import build_optimizer, lr_at, resolve_trainer


def _cfg(**trainer):
    cfg = OmegaConf.structured(RunConfig())
    for key, value in trainer.items():
        cfg.trainer[key] = value
    return cfg


def test_auto_values_come_from_the_method_table_and_given_values_win():
    cfg = _cfg(epochs="auto", lr_milestones="auto", lr=0.05)
    resolved = resolve_trainer(cfg, {"epochs": 250, "lr_milestones": [200], "lr": 0.02})
    assert resolved.trainer.epochs == 250 and list(resolved.trainer.lr_milestones) == [200]
    assert resolved.trainer.lr == 0.05  # not auto: the table does not touch it
    assert cfg.trainer.epochs == "auto"  # the caller's config is left as it was


def test_an_auto_without_a_default_names_the_key():
    with pytest.raises(ValueError, match=r"trainer.lr_decay_start=auto"):
        resolve_trainer(_cfg(lr_decay_start="auto"), {})


@pytest.mark.parametrize("key,value,match", [
    ("lr_schedule", "exp", "lr_schedule"), ("optimizer", "rmsprop", "optimizer"), ("epochs", 0, "epochs"),
    ("lr", 0.0, "trainer.lr"), ("weight_decay", -1.0, "weight_decay"), ("val_fraction", 1.0, "val_fraction"),
    ("lr_decay_start", 300, "lr_decay_start"), ("lr_min", 1.0, "lr_min"), ("adam_betas", [0.9, 1.0], "adam_betas"),
])
def test_bad_trainer_values_are_named(key, value, match):
    with pytest.raises(ValueError, match=match):
        resolve_trainer(_cfg(**{key: value}), {})


def test_step_schedule_by_hand():
    trainer = _cfg(lr=0.02, lr_schedule="step", lr_milestones=[40, 80], lr_gamma=0.01).trainer
    assert [lr_at(trainer, e) for e in (0, 39, 40, 79, 80)] == pytest.approx([0.02, 0.02, 2e-4, 2e-4, 2e-6])


def test_cosine_restarts_matches_torch_warm_restarts_per_epoch():
    trainer = _cfg(lr=0.02, lr_schedule="cosine_restarts", lr_restart_period=10, lr_min=0.001, epochs=150).trainer
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.02)
    ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=10, eta_min=0.001)
    expected = []
    for _ in range(25):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert [lr_at(trainer, e) for e in range(25)] == pytest.approx(expected)
    assert lr_at(trainer, 5) == pytest.approx(0.001 + 0.019 * (1 + math.cos(math.pi / 2)) / 2)


def test_linear_decay_is_co_teachings_plan():
    """Co-teaching: lr constant until the decay start, then lr * (E - e) / (E - start)."""
    trainer = _cfg(lr=0.001, lr_schedule="linear", lr_decay_start=80, epochs=200).trainer
    assert lr_at(trainer, 79) == 0.001
    assert lr_at(trainer, 80) == pytest.approx(0.001)
    assert lr_at(trainer, 140) == pytest.approx(0.001 * 60 / 120)
    assert lr_at(trainer, 199) == pytest.approx(0.001 / 120)


def test_optimizers_follow_the_config():
    params = [torch.nn.Parameter(torch.zeros(2))]
    adam = build_optimizer(params, _cfg(optimizer="adam", lr=1e-3, adam_betas=[0.9, 0.99], weight_decay=0.0).trainer)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.9, 0.99)
    sgd = build_optimizer(params, _cfg(lr=0.01, momentum=0.8, weight_decay=1e-3).trainer)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8
    assert sgd.param_groups[0]["weight_decay"] == 1e-3


def test_validation_split_is_seeded_disjoint_and_complete():
    keep, held = validation_split(1000, 0.1, seed=3)
    assert len(held) == 100 and len(keep) == 900
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(1000))
    again_keep, again_held = validation_split(1000, 0.1, seed=3)
    assert np.array_equal(held, again_held) and np.array_equal(keep, again_keep)
    assert not np.array_equal(held, validation_split(1000, 0.1, seed=4)[1])
    keep, held = validation_split(50, 0.0, seed=0)
    assert len(held) == 0 and np.array_equal(keep, np.arange(50))
    with pytest.raises(ValueError, match="val_fraction"):
        validation_split(10, 0.99, seed=0)
