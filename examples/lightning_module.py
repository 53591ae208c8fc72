"""SANM in a LightningModule: three lines in training_step and `SANMCallback`, on noisy digits.

The data and the network are examples/own_training_loop.py's: scikit-learn's digits upsampled to 32x32 with 40%
of the training labels flipped, and torchvision's resnet18 with a small-image stem (`--model small_cnn` is a
four-layer CNN for quick runs). SGD with a cosine schedule; the decoder SANM adds follows the same schedule.
One epoch of warm-up estimates the label quality G before masking starts. Offline, on CPU or GPU:

    python examples/lightning_module.py                                      # one process
    python examples/lightning_module.py --devices 2 --strategy ddp --accelerator cpu
    python examples/lightning_module.py --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from sanm_plugin import IndexedDataset, SANMConfig
from sanm_plugin.lightning import SANMCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_training_loop import noisy_digits, small_image_resnet18  # noqa: E402  (one copy of data and network)


def small_cnn(num_classes: int) -> torch.nn.Module:
    """Four 3x3 convolutions (32x32 -> an 8x8 map of 64 channels), global pooling and a Linear."""
    def block(cin: int, cout: int, stride: int) -> list[torch.nn.Module]:
        return [torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False), torch.nn.BatchNorm2d(cout), torch.nn.ReLU()]
    return torch.nn.Sequential(*block(3, 16, 1), *block(16, 32, 2), *block(32, 64, 1), *block(64, 64, 2),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, num_classes))


class NoisyDigitsClassifier(pl.LightningModule):
    """A plain classifier; the three lines marked SANM are all that SANMCallback asks of it."""

    def __init__(self, model: str = "resnet18", lr: float = 0.05, epochs: int = 4,
                 sanm_config: SANMConfig = SANMConfig.paper()) -> None:
        super().__init__()
        self.save_hyperparameters()  # sanm_config included: it is logged and checkpointed like any value
        self.model = small_image_resnet18(10) if model == "resnet18" else small_cnn(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y, idx = batch                                                              # SANM: each sample's index
        logits, feats = self.sanm.tap(x)                                               # SANM: forward + feature map
        loss = F.cross_entropy(logits, y) + self.sanm.loss(x, y, idx, logits, feats)   # SANM: masked view + recon.
        self.log("train/loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/acc", (self(x).argmax(dim=1) == y).float().mean() * 100, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        metrics = self.trainer.callback_metrics
        self.print(f"epoch {self.current_epoch + 1}/{self.trainer.max_epochs}: "
                   f"loss {float(metrics.get('train/loss', float('nan'))):.3f}, "
                   f"val accuracy {float(metrics.get('val/acc', float('nan'))):.1f}%")

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.hparams.epochs)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def loaders(train_size: int, batch_size: int, val_size: int | None = None, noise: float = 0.4,
            seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Training batches (x, y, index) and validation batches (x, y) of the first `val_size` test images (all: None)."""
    x_train, y_train, x_test, y_test = noisy_digits(train_size, noise, seed)
    train = DataLoader(IndexedDataset(TensorDataset(x_train, y_train)), batch_size=batch_size, shuffle=True)
    return train, DataLoader(TensorDataset(x_test[:val_size], y_test[:val_size]), batch_size=256)


def trainer_for(args: argparse.Namespace, module: NoisyDigitsClassifier, callbacks: list[pl.Callback] = (),
                **overrides) -> pl.Trainer:
    """The Trainer of these flags, with SANMCallback (the module's config, one warm-up epoch) first among its
    callbacks."""
    settings = dict(max_epochs=args.epochs, devices=args.devices, strategy=args.strategy, precision=args.precision,
                    accelerator=args.accelerator, default_root_dir=args.root, enable_progress_bar=False,
                    enable_model_summary=False, log_every_n_steps=1)
    sanm = SANMCallback(config=module.hparams.sanm_config, warmup_epochs=1)
    return pl.Trainer(**{**settings, **overrides}, callbacks=[sanm, *callbacks])


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    pl.seed_everything(args.seed, verbose=False)
    train, val = loaders(args.train_size, args.batch_size, args.val_size, seed=args.seed)
    module = NoisyDigitsClassifier(args.model, args.lr, args.epochs)
    trainer = trainer_for(args, module)
    trainer.fit(module, train, val)
    sanm = module.sanm
    if args.output:  # each process's final state, to compare processes (tests/examples/test_lightning_module.py)
        Path(args.output).mkdir(parents=True, exist_ok=True)
        torch.save({"clean_prob": sanm.quality.clean_prob.cpu(), "refreshes": int(sanm.quality.refreshes),
                    "decoder": {k: v.cpu() for k, v in sanm.augmenter.state_dict().items()},
                    "model": {k: v.cpu() for k, v in module.model.state_dict().items()}},
                   Path(args.output) / f"rank{trainer.global_rank}.pt")
    return {"val_acc": float(trainer.callback_metrics["val/acc"]), "refreshes": int(sanm.quality.refreshes)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--strategy", default="auto", help='"auto", or "ddp" with --devices 2 or more')
    p.add_argument("--precision", default="32-true", help='"32-true", "bf16-mixed", "16-mixed" (GPU)')
    p.add_argument("--accelerator", default="auto", help='"cpu" to run DDP processes on CPU (gloo)')
    p.add_argument("--model", choices=("resnet18", "small_cnn"), default="resnet18")
    p.add_argument("--train-size", type=int, default=640)
    p.add_argument("--val-size", type=int, default=None, help="validate on this many test images (default: all 360)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="lightning_logs", help="Lightning's default_root_dir (logs, checkpoints)")
    p.add_argument("--output", default=None, help="write each process's final G, decoder and model here")
    return p


if __name__ == "__main__":
    main()
