"""The `trainer` group at run time: `auto` values from the method's tables, checks, optimiser, lr schedule.

Every method optimises through these, so Co-teaching's Adam with its linear decay and ELR's cosine
restarts are options of the shared step, not copies of it.

Schedules follow `trainer.epochs`: a method's table gives its milestones (and Co-teaching's decay start)
for `reference_epochs`, the run length they were written for; when the yaml leaves them `auto` they are
scaled to the epochs of this run (CE's drop at 150 of 300 becomes 30 of 60). Values the user gives
(`trainer.lr_milestones=[40]`) are used as given. Warm-ups, ramps and ELR's restart period stay in epochs.
"""

from __future__ import annotations

import copy
import math
from typing import Iterable

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from .config import AUTO

SCHEDULES = ("step", "cosine", "cosine_restarts", "linear")
SCALED_KEYS = ("lr_milestones", "lr_decay_start")  # epochs into the run: scaled with trainer.epochs when auto
OPTIMIZERS = ("sgd", "adam")
DEVICE_KEYS = ("precision",)  # `auto` follows the device (acceleration.py), not the method's table


def resolve_trainer(cfg: DictConfig, defaults: dict) -> DictConfig:
    """A copy of `cfg` whose trainer `auto` values are taken from `defaults` (the method's table), the
    SCALED_KEYS among them scaled from `defaults["reference_epochs"]` to this run's trainer.epochs."""
    cfg = copy.deepcopy(cfg)  # keeps the structured types (the sanm group is read back as its dataclass)
    defaults = dict(defaults)
    reference = defaults.pop("reference_epochs", None)
    with open_dict(cfg):
        auto = [key for key, value in cfg.trainer.items() if value == AUTO and key not in DEVICE_KEYS]
        for key in auto:
            if key not in defaults:
                raise ValueError(f"trainer.{key}=auto but {cfg.method.name} has no default for it; "
                                 f"set trainer.{key}=<value>")
            cfg.trainer[key] = defaults[key]
        for key in SCALED_KEYS:
            if key in auto and reference is not None:
                cfg.trainer[key] = scale_epochs(defaults[key], reference, cfg.trainer.epochs)
    check_trainer(cfg.trainer)
    return cfg


def scale_epochs(value, reference: int, epochs: int):
    """An epoch (or list of epochs) of a `reference`-epoch schedule, at the same share of an `epochs`-epoch one,
    rounded half up: 150 of 300 -> 30 of 60, [40, 80] of 200 -> [12, 24] of 60."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"trainer.epochs must be an integer >= 1, got {epochs!r}")
    if OmegaConf.is_list(value) or isinstance(value, (list, tuple)):
        return [scale_epochs(v, reference, epochs) for v in value]
    return int(math.floor(value * epochs / reference + 0.5))


def check_trainer(trainer: DictConfig) -> None:
    """One-line errors for values the schema's types cannot catch."""
    if trainer.lr_schedule not in SCHEDULES:
        raise ValueError(f"trainer.lr_schedule must be one of {', '.join(SCHEDULES)}, got {trainer.lr_schedule!r}")
    if trainer.optimizer not in OPTIMIZERS:
        raise ValueError(f"trainer.optimizer must be one of {', '.join(OPTIMIZERS)}, got {trainer.optimizer!r}")
    for key in ("epochs", "batch_size", "eval_batch_size", "lr_restart_period"):
        if isinstance(trainer[key], bool) or not isinstance(trainer[key], int) or trainer[key] < 1:
            raise ValueError(f"trainer.{key} must be an integer >= 1, got {trainer[key]!r}")
    for key in ("lr", "weight_decay", "lr_gamma"):
        if isinstance(trainer[key], bool) or not isinstance(trainer[key], (int, float)):
            raise ValueError(f"trainer.{key} must be a number, got {trainer[key]!r}")
    if trainer.lr <= 0:
        raise ValueError(f"trainer.lr must be > 0, got {trainer.lr}")
    if trainer.weight_decay < 0:
        raise ValueError(f"trainer.weight_decay must be >= 0, got {trainer.weight_decay}")
    if not isinstance(trainer.lr_decay_start, int) or not 0 <= trainer.lr_decay_start < trainer.epochs:
        raise ValueError(f"trainer.lr_decay_start must be an integer in [0, trainer.epochs), got "
                         f"{trainer.lr_decay_start!r}")
    if isinstance(trainer.val_fraction, bool) or not 0.0 <= trainer.val_fraction < 1.0:
        raise ValueError(f"trainer.val_fraction must be in [0, 1), got {trainer.val_fraction!r}")
    if trainer.lr_min is not None and (isinstance(trainer.lr_min, bool) or not isinstance(trainer.lr_min, (int, float))
                                       or not 0 <= trainer.lr_min <= trainer.lr):
        raise ValueError(f"trainer.lr_min must be null or a number in [0, trainer.lr], got {trainer.lr_min!r}")
    milestones = trainer.lr_milestones
    if not OmegaConf.is_list(milestones) and not isinstance(milestones, list):
        raise ValueError(f"trainer.lr_milestones must be a list of epochs, got {milestones!r}")
    # a schedule key the chosen schedule does not read would be silently ignored: say so instead
    if trainer.lr_schedule != "step" and len(milestones):
        raise ValueError(f"trainer.lr_milestones={list(milestones)} is used only by trainer.lr_schedule=step, not "
                         f"{trainer.lr_schedule}; drop it or set trainer.lr_schedule=step")
    if trainer.lr_schedule not in ("cosine", "cosine_restarts") and trainer.lr_min is not None:
        raise ValueError(f"trainer.lr_min is used only by the cosine schedules, not {trainer.lr_schedule}; drop it")
    if trainer.lr_schedule != "linear" and trainer.lr_decay_start != 0:
        raise ValueError(f"trainer.lr_decay_start is used only by trainer.lr_schedule=linear, not "
                         f"{trainer.lr_schedule}; drop it")
    betas = list(trainer.adam_betas)
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"trainer.adam_betas must be two numbers in [0, 1), got {betas}")


def lr_at(trainer: DictConfig, epoch: int) -> float:
    """The learning rate of epoch `epoch` (0-based) under trainer.lr_schedule."""
    lr, epochs = trainer.lr, trainer.epochs
    floor = lr * 1e-3 if trainer.lr_min is None else trainer.lr_min
    if trainer.lr_schedule == "cosine":
        return floor + (lr - floor) * (1 + math.cos(math.pi * epoch / epochs)) / 2
    if trainer.lr_schedule == "cosine_restarts":  # CosineAnnealingWarmRestarts(T_0, eta_min), stepped per epoch
        period = trainer.lr_restart_period
        return floor + (lr - floor) * (1 + math.cos(math.pi * (epoch % period) / period)) / 2
    if trainer.lr_schedule == "linear":  # Co-teaching: lr * (E - e) / (E - start) from `start` on
        start = trainer.lr_decay_start
        return lr if epoch < start else lr * (epochs - epoch) / (epochs - start)
    passed = sum(epoch >= m for m in trainer.lr_milestones)
    return lr * trainer.lr_gamma**passed


def build_optimizer(params: Iterable[torch.nn.Parameter], trainer: DictConfig) -> torch.optim.Optimizer:
    if trainer.optimizer == "adam":
        return torch.optim.Adam(params, lr=trainer.lr, betas=tuple(trainer.adam_betas),
                                weight_decay=trainer.weight_decay)
    return torch.optim.SGD(params, lr=trainer.lr, momentum=trainer.momentum, weight_decay=trainer.weight_decay)
