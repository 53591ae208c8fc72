"""examples/lightning_module.py under Lightning's Trainer on CPU: SANMCallback's warm-up (32-bit and bf16-mixed),
its checkpoints (save, resume, load_from_checkpoint with weights_only=True), and plain DDP over two processes."""

import copy
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from sanm_plugin import SANMConfig

pytestmark = pytest.mark.slow  # every test trains with Lightning's Trainer

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--model", "small_cnn", "--train-size", "64", "--val-size", "32", "--batch-size", "32", "--accelerator", "cpu"]


def _example():
    spec = importlib.util.spec_from_file_location("lightning_module", ROOT / "examples" / "lightning_module.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy(state):
    return {k: v.detach().clone() for k, v in state.items()}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


class Probe(pl.Callback):
    """What SANM held after the first step and at the end of each epoch (runs after SANMCallback's hooks)."""

    def __init__(self):
        self.first_decoder, self.epochs = None, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.first_decoder is None:
            self.first_decoder = _copy(pl_module.sanm.augmenter.state_dict())

    def on_train_epoch_end(self, trainer, pl_module):
        sanm, optimizer = pl_module.sanm, trainer.optimizers[0]
        self.epochs.append(dict(decoder=_copy(sanm.augmenter.state_dict()), g=sanm.quality.clean_prob.clone(),
                                refreshes=int(sanm.quality.refreshes), last=sanm.last,
                                lrs=[group["lr"] for group in optimizer.param_groups]))


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_warmup_epoch_without_sanm_then_an_epoch_with_it(tmp_path, precision):
    example = _example()
    args = example.parser().parse_args([*SMALL, "--epochs", "2", "--precision", precision, "--root", str(tmp_path)])
    pl.seed_everything(0, verbose=False)
    train, val = example.loaders(args.train_size, args.batch_size, args.val_size)
    module = example.NoisyDigitsClassifier(args.model, args.lr, args.epochs)
    probe = Probe()
    example.trainer_for(args, module, [probe], logger=False).fit(module, train, val)
    warmup, active = probe.epochs
    # warm-up: G estimated from the epoch's losses, the decoder untouched (no gradient, so no step moved it)
    assert warmup["refreshes"] == 1 and warmup["last"] is None and _equal(warmup["decoder"], probe.first_decoder)
    assert not torch.equal(warmup["g"], torch.ones(64)) and ((warmup["g"] >= 0) & (warmup["g"] <= 1)).all()
    # then SANM: finite terms, a trained decoder, G refitted
    assert active["refreshes"] == 2 and active["last"] is not None
    assert math.isfinite(float(active["last"].masked)) and math.isfinite(float(active["last"].reconstruction))
    assert not _equal(active["decoder"], probe.first_decoder)
    # the decoder is a second group of the module's optimiser and follows its cosine schedule
    assert all(len(e["lrs"]) == 2 and e["lrs"][0] == e["lrs"][1] for e in probe.epochs)
    assert warmup["lrs"][0] != active["lrs"][0]
    assert not any(key.startswith("sanm") for key in module.state_dict())  # the module's state is its own


def test_checkpoints_restore_decoder_and_g_exactly_and_the_config_travels(tmp_path):
    example = _example()
    config = SANMConfig.paper(beta=0.5)
    args = example.parser().parse_args([*SMALL, "--epochs", "2", "--root", str(tmp_path)])
    train, val = example.loaders(args.train_size, args.batch_size, args.val_size)
    pl.seed_everything(0, verbose=False)
    module = example.NoisyDigitsClassifier(args.model, args.lr, args.epochs, sanm_config=config)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    logger = CSVLogger(tmp_path / "logs")  # it writes the hyper-parameters, SANMConfig included
    example.trainer_for(args, module, [checkpoints], logger=logger).fit(module, train, val)
    assert "beta: 0.5" in (Path(logger.log_dir) / "hparams.yaml").read_text()
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    state = saved["callbacks"]["SANMCallback"]
    assert state["config"] == config.to_dict() and int(state["quality"]["refreshes"]) == 2
    restored = example.NoisyDigitsClassifier.load_from_checkpoint(last, weights_only=True)
    assert restored.hparams.sanm_config == config and not hasattr(restored, "sanm")

    class Restored(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            optimizer = trainer.optimizers[0]
            self.seen = dict(decoder=_copy(pl_module.sanm.augmenter.state_dict()),
                             quality=_copy(pl_module.sanm.quality.state_dict()), groups=len(optimizer.param_groups),
                             optimizer=copy.deepcopy(optimizer.state_dict()))

    probe = Restored()
    resumed = example.NoisyDigitsClassifier(args.model, args.lr, args.epochs, sanm_config=config)
    trainer = example.trainer_for(args, resumed, [probe], logger=False, max_epochs=3)
    trainer.fit(resumed, train, val, ckpt_path=last)
    assert _equal(probe.seen["decoder"], state["augmenter"]) and _equal(probe.seen["quality"], state["quality"])
    # the optimiser state loads into the same two groups: the decoder's momentum continues
    assert probe.seen["groups"] == 2
    momentum = {i: s["momentum_buffer"] for i, s in saved["optimizer_states"][0]["state"].items()}
    decoder_ids = probe.seen["optimizer"]["param_groups"][1]["params"]
    assert decoder_ids and all(torch.equal(probe.seen["optimizer"]["state"][i]["momentum_buffer"], momentum[i])
                               for i in decoder_ids)
    assert int(resumed.sanm.quality.refreshes) == 3 and trainer.current_epoch == 3


def test_plain_ddp_over_two_cpu_processes_ends_with_one_g_and_one_decoder(tmp_path):
    """strategy="ddp" with a warm-up epoch: no unused-parameter error, and both processes end identical."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the launcher re-runs this command for rank 1
    command = [sys.executable, str(ROOT / "examples" / "lightning_module.py"), *SMALL, "--epochs", "2",
               "--devices", "2", "--strategy", "ddp", "--root", str(tmp_path), "--output", str(tmp_path / "out")]
    # a hang guard only: it takes well under a minute
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "epoch 2/2" in result.stdout
    first, second = (torch.load(tmp_path / "out" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert first["refreshes"] == second["refreshes"] == 2
    assert torch.equal(first["clean_prob"], second["clean_prob"])
    assert not torch.equal(first["clean_prob"], torch.ones(64))  # G was fitted, from both processes' losses
    assert _equal(first["decoder"], second["decoder"]) and _equal(first["model"], second["model"])
