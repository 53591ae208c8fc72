"""The shared trainer options: `auto` values from a method's table, lr schedules, optimisers, validation split."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from baselines.common.config import RunConfig
from baselines.common.engine import validation_split
from baselines.common.trainer import build_optimizer, lr_at, resolve_trainer

CONF = Path(__file__).resolve().parents[2] / "conf"


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


# ---------------------------------------------------------------------- schedules follow trainer.epochs
def _method_cfg(method, *overrides):
    from hydra import compose, initialize_config_dir

    from baselines.registry import BASELINES

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=method, overrides=["noise=sym_0.5", *overrides])
    return resolve_trainer(cfg, BASELINES[method].trainer_defaults(cfg)).trainer


@pytest.mark.parametrize("method,epochs,milestones", [
    ("ce", 60, [30]), ("dividemix", 60, [30]), ("c2d", 60, [25, 50]), ("cdr", 60, [12, 24]), ("elr_plus", 20, [15]),
    ("ce", 300, [150]), ("c2d", 361, [150, 300]), ("cdr", 200, [40, 80]), ("elr_plus", 200, [150]), ("ce", 7, [4]),
])
def test_default_milestones_keep_their_share_of_the_run(method, epochs, milestones):
    """Hand-computed: 150 of 300 -> 30 of 60; C2D's 150, 300 of 361 -> 24.9, 49.9 -> 25, 50; 3.5 rounds up."""
    trainer = _method_cfg(method, f"trainer.epochs={epochs}")
    assert list(trainer.lr_milestones) == milestones


@pytest.mark.parametrize("method", ["ce", "dividemix", "c2d", "cdr", "elr_plus"])
def test_milestones_the_user_gives_are_used_unchanged(method):
    assert list(_method_cfg(method, "trainer.epochs=60", "trainer.lr_milestones=[36]").lr_milestones) == [36]
    assert list(_method_cfg(method, "trainer.lr_milestones=[]").lr_milestones) == []


@pytest.mark.slow
def test_co_teachings_decay_start_scales_and_warm_ups_stay_in_epochs():
    assert _method_cfg("coteaching", "trainer.epochs=60").lr_decay_start == 24
    assert _method_cfg("coteaching", "trainer.epochs=60", "trainer.lr_decay_start=50").lr_decay_start == 50
    elr = _method_cfg("elr_plus", "method.variant=elr", "trainer.epochs=30")
    assert elr.lr_schedule == "cosine_restarts" and elr.lr_restart_period == 10  # a period, not a point in the run


@pytest.mark.parametrize("trainer,match", [
    (dict(lr_schedule="cosine", lr_milestones=[10]), "lr_milestones=.10. is used only by trainer.lr_schedule=step"),
    (dict(lr_min=0.001), "lr_min is used only by the cosine schedules"),
    (dict(lr_schedule="cosine", lr_decay_start=5), "lr_decay_start is used only by trainer.lr_schedule=linear"),
])
def test_a_schedule_key_the_schedule_does_not_read_is_an_error(trainer, match):
    with pytest.raises(ValueError, match=match):
        resolve_trainer(_cfg(**trainer), {})
