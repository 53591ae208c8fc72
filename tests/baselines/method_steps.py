"""The smoke preset's config, a method built on it without running it, and a batch of its training images: for
tests that run a method in-process or call one step (`train_step`) and look at what it did."""

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from baselines.common.engine import Batch, Method, RunContext
from baselines.common.trainer import resolve_trainer
from baselines.registry import BASELINES

ROOT = Path(__file__).resolve().parents[2]


def smoke_config(name: str, *overrides: str) -> DictConfig:
    """`conf/<name>.yaml` under `+experiment=smoke` (128 digits, width 8, 2 epochs on CPU), `overrides` on top."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=["+experiment=smoke", *overrides])


def step_config(tmp_path: Path, name: str, *overrides: str) -> DictConfig:
    """The smoke config at sym 50%, quiet, caching under `tmp_path`, its trainer resolved as `run()` does."""
    cfg = smoke_config(name, "noise=sym_0.5", "tensorboard=false", "progress=false", f"dataset.cache_dir={tmp_path}",
                       *overrides)
    return resolve_trainer(cfg, BASELINES[name].trainer_defaults(cfg))


def build_method(tmp_path: Path, name: str, *overrides: str) -> Method:
    cls = BASELINES[name]
    return cls(RunContext(step_config(tmp_path, name, *overrides), tmp_path, cls))


def first_batch(method: Method, epoch: int, size: int = 8) -> Batch:
    """The first `size` training images, augmented, as the step of (0-based) `epoch` sees a batch."""
    ctx = method.ctx
    return Batch(epoch, torch.arange(size), ctx.augment(ctx.train_images[:size]), ctx.labels[:size])
