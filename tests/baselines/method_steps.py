"""A method built on the smoke preset without running it, and a batch of its training images: for tests that
call one step (`train_step`) and look at what it did."""

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from baselines.common.engine import Batch, Method, RunContext
from baselines.common.trainer import resolve_trainer
from baselines.registry import BASELINES

ROOT = Path(__file__).resolve().parents[2]


def build_method(tmp_path: Path, name: str, *overrides: str) -> Method:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=name, overrides=["+experiment=smoke", "noise=sym_0.5", "tensorboard=false",
                                                   "progress=false", f"dataset.cache_dir={tmp_path}", *overrides])
    cls = BASELINES[name]
    cfg = resolve_trainer(cfg, cls.trainer_defaults(cfg))
    return cls(RunContext(cfg, tmp_path, cls))


def first_batch(method: Method, epoch: int, size: int = 8) -> Batch:
    """The first `size` training images, augmented, as the step of (0-based) `epoch` sees a batch."""
    ctx = method.ctx
    return Batch(epoch, torch.arange(size), ctx.augment(ctx.train_images[:size]), ctx.labels[:size])
