"""The run loop every method shares: data, noise, networks, SANM, evaluation, checkpoints and logs.

A method (one module in baselines/) subclasses `Method` and writes only what is its own: `build`
(its networks and state), `on_epoch_start` (selection, label quality), `train_step` and `predict`.
`run(cfg, MethodClass)` does the rest, identically for every method:

    trainer `auto`s from the method's table -> seed -> data + noisy labels [-> noisy validation split]
    -> method.build() -> [resume, if the checkpoint is the same run: identity.py] -> for each epoch:
        lr schedule -> method.train_epoch (on_epoch_start, then train_step per batch)
        -> test (and validation) accuracy -> metrics.jsonl -> checkpoints/last.pt (atomic, with all RNG states)
    -> summary.json
"""

from __future__ import annotations

import math
import random
import shutil
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from sanm_plugin import FeatureTap

from . import distributed, trackers
from .acceleration import Acceleration, routed_model
from .augment import build_augment
from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .config import AUTO, MethodConfig, dataset_dir_name, register_method_schema
from .data import DatasetError, ImageDataset, default_cache_dir, load_dataset
from .encoders import Encoder, choose_encoder, load_encoder
from .environment import count_environments, record_environment
from .identity import CHECKPOINT_FORMAT, ResumeRefused, check_resumable, run_identity
from .interrupts import exit_code, interrupts_deferred, sigterm_as_interrupt, signal_name
from .streaming import ImageFiles, StreamedImages
from .metrics import ConsoleLog, EpochMeans, QuietConsole, RankRecords, RunRecorder, epoch_progress, without_truth
from .models import LIBRARY_MODELS, build_model
from .noise import NoiseSpec, actual_noise_rate, cached_noisy_labels, method_noise_rate
from .sanm_hook import SANMHook, SANMSettings
from .snapshots import Snapshots
from .trainer import build_optimizer, lr_at, resolve_trainer


class ConfigurationError(Exception):
    """A run cannot start as configured; the message is one line for the user."""


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM (`signal`) during a run: `completed` epochs are safely checkpointed in `run_dir` (0 = none
    yet); `exit_code` is what the command line exits with (130 or 143)."""

    def __init__(self, run_dir: Path, completed: int, epochs: int, signal: str = "SIGINT",
                 exit_code: int = 130) -> None:
        super().__init__(f"interrupted by {signal} after {completed} of {epochs} epochs")
        self.run_dir, self.completed, self.epochs = run_dir, completed, epochs
        self.signal, self.exit_code = signal, exit_code


@dataclass
class Batch:
    epoch: int
    index: torch.Tensor  # [B] positions in the training set
    images: torch.Tensor  # [B, C, H, W] augmented, normalised
    labels: torch.Tensor  # [B] noisy labels (the only labels a method may train on)


class Network:
    """One trainable classifier with its optimiser and, with SANM, its SANMHook (decoder included).

    `step(loss)` is the shared optimiser step: backward, an optional gradient edit (CDR), optional
    clipping, update. Every method updates its networks through it.
    """

    def __init__(self, ctx: "RunContext", name: str) -> None:
        cfg = ctx.cfg
        self.name = name
        module = build_model(cfg.model.name, ctx.num_classes, **_model_kwargs(cfg.model)).to(ctx.device)
        if ctx.pretrained is not None:
            load_encoder(module, ctx.pretrained, cfg.model)
        module = distributed.sync_batchnorm(module, cfg.trainer.sync_bn, ctx.world, ctx.device)
        self.module = ctx.acceleration.place_model(module)  # the network itself: weights, state_dict
        # what the methods call: the network itself, or its forwards through DDP / torch.compile
        self.model = routed_model(self.module, ctx.acceleration, ctx.world, ctx.device)
        self.tap = FeatureTap(self.model)
        self.sanm: Optional[SANMHook] = None
        if ctx.sanm_settings is not None:
            channels, size = _feature_shape(self.module, ctx.image_shape, ctx.device)
            # the decoder's initial weights come from a stream of their own, so that the run draws every other
            # number as the run without SANM does: same-seed runs with and without SANM are the same run until
            # SANM starts (paired comparisons; docs/runs.md 2.2)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(zlib.crc32(f"sanm decoder|{cfg.seed}|{name}".encode()))
                self.sanm = SANMHook(ctx.sanm_settings, ctx.num_classes, channels, ctx.image_shape, size,
                                     ctx.is_clean, (ctx.data.mean, ctx.data.std))
            self.sanm.to(ctx.device)
            if ctx.world.active:  # the decoder trains on every rank's masked views: its gradients are averaged too
                self.sanm.wrap_decoder(distributed.wrap(self.sanm.augmenter.decoder, ctx.world, ctx.device))
        params = [*self.module.parameters(), *(self.sanm.parameters() if self.sanm is not None else [])]
        self.optimizer = build_optimizer(params, cfg.trainer)
        self.scaler = ctx.acceleration.grad_scaler()
        self.grad_clip = cfg.trainer.grad_clip
        self.grad_edit: Optional[Callable[[torch.nn.Module], dict]] = None  # CDR edits gradients here

    def step(self, loss: torch.Tensor, grad_clip: Optional[float] = None) -> dict:
        """Backward and update; `grad_clip` overrides trainer.grad_clip for this step (C2D's warm-up).

        Under fp16 the loss is scaled, and the gradients unscaled before the edit and the clipping, which so
        see the true gradients; under DDP they are already averaged over the ranks when backward returns."""
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(loss.device.type, enabled=False):  # backward runs in the forward's dtypes anyway
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        stats = self.grad_edit(self.module) if self.grad_edit is not None else {}
        clip = grad_clip or self.grad_clip
        if clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), clip)
        if self.scaler is None:
            self.optimizer.step()
        else:  # skips the update when the scaled gradients overflowed, and adapts the scale
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return stats

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict:
        state = {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.scaler is not None:
            state["grad_scaler"] = self.scaler.state_dict()
        if self.sanm is not None:
            state["sanm"] = self.sanm.state_dict()
            state["sanm_extra"] = self.sanm.extra_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and "grad_scaler" in state:  # a run resumed in fp16 from 32 starts a fresh scale
            self.scaler.load_state_dict(state["grad_scaler"])
        if self.sanm is not None:
            self.sanm.load_state_dict(state["sanm"])
            self.sanm.load_extra_state(state["sanm_extra"])


class RunContext:
    """Everything a method may use: config, device, data, noisy labels, augmentation, evaluation."""

    def __init__(self, cfg: DictConfig, run_dir: Path, method_cls: type["Method"],
                 world: distributed.World = distributed.World()) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.world = world
        # rank 0 alone says anything; the lines go to the console and to run.log
        self.console = ConsoleLog(run_dir / "run.log") if world.is_main else QuietConsole()
        if cfg.progress_every_s < 0:
            raise ValueError(f"progress_every_s={cfg.progress_every_s}: give the seconds between progress lines "
                             "within an epoch, >= 0 (0: after every batch)")
        self.device = distributed.start(world, resolve_device(cfg.device))
        self.acceleration = Acceleration.from_trainer(cfg.trainer, self.device)
        self.acceleration.check_model(cfg.model.name, cfg.model.width)
        self.warmup_epochs = method_cls.resolve_warmup(cfg)
        self.data = _load_data(cfg)
        self.cache_dir = Path(cfg.dataset.cache_dir) if cfg.dataset.cache_dir else default_cache_dir()
        spec = NoiseSpec.from_config(cfg.noise)
        if spec.type == "idn" and self.data.streamed:
            raise ValueError(f"noise={cfg.noise.name} (instance-dependent) needs the images in memory, and "
                             f"{self.data.name} is streamed from its files; its own labels are noisy: use noise=none")
        noisy = cached_noisy_labels(
            spec, self.data.train_labels, self.data.num_classes, seed=cfg.seed,
            dataset_identity=self.data.identity, cache_dir=self.cache_dir, dataset=self.data.name,
            class_names=self.data.class_names, coarse_labels=self.data.coarse_labels,
            images=self.data.train_images if spec.type == "idn" else None,
            train_index=self.data.train_index, train_total=self.data.train_total,
        )
        self.noise_spec = spec
        # None when the dataset's own labels are noisy (Animal-10N): there is no truth to count against
        self.noise_rate_actual = actual_noise_rate(noisy, self.data.train_labels) if self.data.labels_known else None
        self.num_classes = self.data.num_classes
        own_val = self.data.val_labels is not None
        if own_val and cfg.trainer.val_fraction:
            raise ValueError(f"{self.data.name} has a clean validation split of its own, used for model selection; "
                             f"drop trainer.val_fraction={cfg.trainer.val_fraction} (give trainer.val_fraction=0)")
        keep, held_out = validation_split(len(noisy), cfg.trainer.val_fraction, cfg.seed)
        self.train_images = self._on_device(self.data.train_images[keep])
        self.labels = torch.from_numpy(noisy[keep]).to(self.device)
        self.true_labels = torch.from_numpy(self.data.train_labels[keep]).to(self.device)
        self.is_clean = self.labels == self.true_labels
        if own_val:  # the dataset's clean validation split (Clothing1M)
            self.val_images = self._on_device(self.data.val_images)
            self.val_labels = torch.from_numpy(self.data.val_labels).to(self.device)
        else:  # the noisy validation split (CDR): scored against its noisy labels, as a user without clean labels
            self.val_images = self._on_device(self.data.train_images[held_out])
            self.val_labels = torch.from_numpy(noisy[held_out]).to(self.device)
        self.test_images = self._on_device(self.data.test_images)
        self.test_labels = torch.from_numpy(self.data.test_labels).to(self.device)
        self.extra_tests = {name: (self._on_device(images), torch.from_numpy(labels).to(self.device))
                            for name, (images, labels) in self.data.extra_tests.items()}
        views = build_augment(cfg.augment.name, self.data.mean, self.data.std, OmegaConf.to_container(cfg.augment),
                              device=self.device)
        self.augment = self._placed(views)
        # what the networks see: the stored images, cropped by the augmentation when it crops (augment=imagenet)
        self.image_shape = views.output_shape(self.data.image_shape)
        if self.image_shape[1] > self.data.image_shape[1] or self.image_shape[2] > self.data.image_shape[2]:
            raise ValueError(f"augment.crop_size={cfg.augment.get('crop_size')} is larger than the images of "
                             f"{self.data.name} ({self.data.image_shape[1]}x{self.data.image_shape[2]}); give a "
                             "smaller crop or larger images")
        self.sanm_settings = _sanm_settings(cfg, self.warmup_epochs, method_cls.sanm_requirements(cfg))
        self.encoder: Optional[Encoder] = None  # what the networks start from (pretrained=); set by the engine

    @property
    def pretrained(self) -> Optional[str]:
        """The encoder file each network loads when built, or None."""
        return None if self.encoder is None else self.encoder.path

    def _on_device(self, images: Any) -> Any:
        """A split as the methods index it: a uint8 tensor on the device, or, for a streamed dataset, its files
        decoded ahead of use in DataLoader workers (StreamedImages, indexed the same way)."""
        if isinstance(images, ImageFiles):
            return StreamedImages(images, self.device, workers=self.cfg.dataset.workers)
        return torch.from_numpy(images).to(self.device)

    def make_augment(self, name: str):
        """Another `augment` preset (with its own defaults) on this run's normalisation, for methods that draw
        several kinds of view per sample (DivideMix's official recipe)."""
        return self._placed(build_augment(name, self.data.mean, self.data.std, device=self.device))

    def _placed(self, augment: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """The views in the networks' memory format (channels_last)."""
        if not self.acceleration.channels_last:
            return augment
        place = self.acceleration.place_images
        return lambda images, *args, **kwargs: place(augment(images, *args, **kwargs))

    @property
    def num_train(self) -> int:
        return len(self.labels)

    @property
    def has_validation(self) -> bool:
        return len(self.val_labels) > 0

    def lr_at(self, epoch: int) -> float:
        return lr_at(self.cfg.trainer, epoch)

    def assumed_noise_rate(self, key: str) -> tuple[float, str]:
        """The noise rate a method assumes from `method.<key>` (CDR's eps, Co-teaching's forget rate), and its
        source ('expected', 'nominal', 'actual' or 'given') for resolved.yaml."""
        return method_noise_rate(self.cfg.method[key], self.noise_spec, self.num_classes, self.noise_rate_actual,
                                 key=f"method.{key}", dataset=self.data.name)

    def batches(self, epoch: int, batch_size: Optional[int] = None, index: Optional[torch.Tensor] = None,
                desc: str = "train", augment: Optional[Callable[..., torch.Tensor]] = None) -> Iterator[Batch]:
        """Shuffled, augmented batches of the training set (or of `index`); `augment` replaces the run's views
        (e.g. `make_augment(...)` for a warm-up of its own)."""
        views = augment or self.augment
        for idx in self.index_batches(epoch, batch_size, index, desc):
            yield Batch(epoch, idx, views(self.train_images[idx], train=True), self.labels[idx])

    def index_batches(self, epoch: int, batch_size: Optional[int] = None, index: Optional[torch.Tensor] = None,
                      desc: str = "train") -> Iterator[torch.Tensor]:
        """Shuffled index batches on the device; over N processes each rank gets its slice of every global
        batch."""
        pool = torch.arange(self.num_train) if index is None else index
        chunks = self.shuffled_batches(pool, batch_size or self.cfg.trainer.batch_size, stream=desc)
        label = f"epoch {epoch + 1}/{self.cfg.trainer.epochs} {desc}"
        shown = (epoch_progress(chunks, label, self.console.say, self.cfg.progress_every_s)
                 if self.cfg.progress and self.world.is_main else chunks)
        for chunk in shown:
            yield distributed.shard(chunk, self.world)

    def shuffled_batches(self, pool: torch.Tensor, size: int, stream: str = "train") -> list[torch.Tensor]:
        """One pass over `pool` in a random order, as global batches of `size` on the device (not yet sharded);
        a batch of one sample per rank is dropped (BN needs two). A streamed dataset starts decoding this rank's
        slices at once, in the workers of `stream` (each concurrent pass its own: DivideMix's unlabeled cycle)."""
        # one copy to the device per pass, not one per step (a blocking host-to-device copy waits for the GPU)
        order = self.shuffled(pool).to(self.device, non_blocking=True)
        chunks = [chunk for chunk in order.split(size) if len(chunk) // self.world.size > 1]
        if isinstance(self.train_images, StreamedImages):
            self.train_images.plan([self.shard(chunk) for chunk in chunks], stream=stream)
        return chunks

    def shuffled(self, pool: torch.Tensor) -> torch.Tensor:
        """`pool` (indices) in a random order drawn from the CPU RNG, so that the order is the same on every
        device; over N processes rank 0's order, so that all ranks slice the same global batches."""
        order = pool.cpu()[torch.randperm(len(pool))]
        if not self.world.active:
            return order
        return distributed.broadcast(order.to(self.device), self.world)  # on the device: NCCL has no CPU tensors

    def shard(self, chunk: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch of indices (the whole batch in one process)."""
        return distributed.shard(chunk, self.world)

    @torch.no_grad()
    def per_sample_losses(self, model: torch.nn.Module, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[N] cross-entropy against the noisy labels, un-augmented, in eval mode (for the GMM); over the samples
        `index` only when given (DivideMix's per-epoch pool on Clothing1M), in its order."""
        local = torch.cat([F.cross_entropy(logits.float(), self.labels[idx], reduction="none")
                           for idx, logits in self._predict_all(model, self.train_images, index)])
        return distributed.gather_rows(local, self.num_train if index is None else len(index), self.world)

    @torch.no_grad()
    def predicted_classes(self, predict: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """[N] class `predict` gives each training image, un-augmented, in eval batches (over N processes
        gathered from every rank)."""
        local = torch.cat([logits.argmax(dim=1) for _, logits in self._predict_all(predict, self.train_images)])
        return distributed.gather_rows(local, self.num_train, self.world)

    def fitted_labels(self, predict: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """How much of the noise the model has memorised: on the un-augmented training set, the share of
        wrongly-labelled samples predicted as their wrong label, and of the others predicted correctly."""
        hits = self.predicted_classes(predict) == self.labels
        wrong = ~self.is_clean

        def share(mask: torch.Tensor) -> float:
            return (hits & mask).sum().item() / mask.sum().item() if mask.any() else float("nan")

        return {"fitted_wrong_labels": share(wrong), "fitted_right_labels": share(self.is_clean)}

    def test_accuracy(self, predict: Callable[[torch.Tensor], torch.Tensor]) -> float:
        return self._accuracy(predict, self.test_images, self.test_labels)

    def extra_test_accuracies(self, predict: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """`test_acc_<name>` on each further test set of the dataset (WebVision's ImageNet val)."""
        return {f"test_acc_{name}": self._accuracy(predict, images, labels)
                for name, (images, labels) in self.extra_tests.items()}

    def val_accuracy(self, predict: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """Accuracy on the held-out split against its noisy labels (trainer.val_fraction > 0)."""
        return self._accuracy(predict, self.val_images, self.val_labels)

    @torch.no_grad()
    def _accuracy(self, predict, images: torch.Tensor, labels: torch.Tensor) -> float:
        correct = torch.zeros((), device=self.device)
        for idx, logits in self._predict_all(predict, images):
            correct += (logits.argmax(dim=1) == labels[idx]).sum()
        return 100.0 * distributed.sum_over_ranks(correct, self.world).item() / max(len(labels), 1)

    def _predict_all(self, predict, images: torch.Tensor,
                     index: Optional[torch.Tensor] = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(indices, predictions) over `images` (or its samples `index`) in eval batches, under
        trainer.precision; over N processes only this rank's contiguous part (distributed.split_range), which
        the callers gather."""
        index = torch.arange(len(images), device=self.device) if index is None else index.to(self.device)
        begin, end = distributed.split_range(len(index), self.world)
        chunks = index[begin:end].split(self.cfg.trainer.eval_batch_size)
        if isinstance(images, StreamedImages):
            images.plan(chunks, stream="eval")
        with self.acceleration.autocast():
            for idx in chunks:
                yield idx, predict(self.augment(images[idx], train=False))


def per_network(*keys: str, networks: tuple[str, ...] = ("net1", "net2")) -> tuple[str, ...]:
    """The metrics.jsonl names of per-network `keys` of a two-network method (`Method._suffix`)."""
    return tuple(f"{key}_{net}" for key in keys for net in networks)


class Method:
    """Base of every baseline. A subclass that sets `name` declares a method, in one place: its `config` (the
    `method` keys and their defaults), the `diagnostics` it promises in metrics.jsonl once its main phase runs,
    its networks (`build`) and its step (`train_step`). Declaring it registers its config schema; the registry
    (baselines/registry.py) finds it in its module `baselines/<name>.py`, and the tests, sweeps and listings
    read the set of methods from there."""

    name = "method"
    config: type[MethodConfig] = MethodConfig
    diagnostics: tuple[str, ...] = ()  # metrics.jsonl keys beside the losses (per network: with _net1 / _net2)
    pretraining = False  # a label-free step another method starts from (SimCLR), not a noisy-label method
    default_warmup_epochs = 0  # what method.warmup_epochs=auto means
    distributed = False  # runs under torchrun over N processes (engine: distributed.py)
    # the trainer keys conf/<method>.yaml leaves `auto`; `reference_epochs` is the run length its lr_milestones
    # were written for, so that they scale with trainer.epochs (trainer.py)
    schedule: dict = {}
    # SANMConfig fields `+sanm=on` sets for this method on top of the paper's equations, each chosen by
    # measurement (benchmarks/RESULTS.md); `+sanm=paper` ignores them. A subclass inherits its parent's.
    sanm_defaults: dict = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a declaration, not a helper subclass of one (tests patch methods so)
            register_method_schema(cls.name, cls.config, cls.sanm_defaults)

    @classmethod
    def trainer_defaults(cls, cfg: DictConfig) -> dict:
        """Values for the trainer keys conf/<method>.yaml leaves `auto` (per dataset and noise): `schedule`,
        whose `reference_epochs` is also what `trainer.epochs: auto` means."""
        defaults = dict(cls.schedule)
        if "reference_epochs" in defaults:
            defaults.setdefault("epochs", defaults["reference_epochs"])
        return defaults

    requires_encoder = False  # a run without `pretrained=` is refused (C2D)

    @classmethod
    def starts_from_encoder(cls, cfg: DictConfig) -> bool:
        """Whether `pretrained=auto` gives this configuration of the method a SimCLR encoder (encoders.py)."""
        return cls.requires_encoder

    @classmethod
    def sanm_requirements(cls, cfg: DictConfig) -> dict[str, tuple[str, str]]:
        """SANM keys this configuration of the method can run with only one value: {key: (value, why)}."""
        return {}

    @classmethod
    def resolve_warmup(cls, cfg: DictConfig) -> int:
        """Epochs of the method's warm-up (SANM waits for its end unless sanm.warmup_epochs says otherwise)."""
        value = cls.default_warmup_epochs if cfg.method.warmup_epochs == AUTO else cfg.method.warmup_epochs
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"method.warmup_epochs must be auto or an integer >= 0, got {value!r}")
        return value

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.networks: dict[str, Network] = {}
        self.build()

    def build(self) -> None:
        raise NotImplementedError

    def add_network(self, name: str) -> Network:
        self.networks[name] = Network(self.ctx, name)
        return self.networks[name]

    def on_epoch_start(self, epoch: int) -> dict:
        """Default: refresh each network's SANM label quality G once SANM is active (Eq. 2)."""
        stats = {}
        for name, net in self.networks.items():
            if net.sanm is not None and net.sanm.active(epoch):
                losses = self.ctx.per_sample_losses(net.model.eval())
                net.model.train()
                stats.update(self._suffix(net.sanm.refresh_quality(losses), name))
        return stats

    def train_epoch(self, epoch: int) -> dict:
        stats = self.on_epoch_start(epoch)
        means = EpochMeans()
        for net in self.networks.values():
            net.model.train()
        for batch in self.ctx.batches(epoch):
            means.add(self.train_step(batch))
        stats.update(means.means())
        for name, net in self.networks.items():
            if net.sanm is not None:
                stats.update(self._suffix(net.sanm.epoch_stats(), name))
        return stats

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_test_metrics(self) -> dict[str, float]:
        """Test metrics beside test_acc (Co-teaching's second network); the networks are in eval mode."""
        return {}

    def on_run_end(self) -> None:
        """After the last epoch (SimCLR writes its encoder here)."""

    def resolved_settings(self) -> dict:
        """The method's `auto` settings as resolved for this run (written to resolved.yaml)."""
        return {}

    def extra_state(self) -> dict:
        """Method state beyond the networks (selection history, target tables); for checkpoints."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def _suffix(self, stats: dict, name: str) -> dict:
        return stats if len(self.networks) == 1 else {f"{key}_{name}": value for key, value in stats.items()}


def resolve_device(name: str) -> torch.device:
    if name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(f"device={name} but no CUDA device is available; use device=cpu or device=auto")
    return device


def run(cfg: DictConfig, method_cls: type[Method], run_dir: Optional[Path] = None) -> dict:
    """Train `method_cls` as `cfg` says, in `run_dir`; returns the summary.

    Epochs are counted from 1 in every output (console, metrics.jsonl, summary.json, checkpoints); the
    methods' own code receives the 0-based index of the epoch in progress. Ctrl-C or SIGTERM raise
    RunInterrupted once training has started (interrupts.py).
    """
    with sigterm_as_interrupt():
        return _train(cfg, method_cls, run_dir)


def _train(cfg: DictConfig, method_cls: type[Method], run_dir: Optional[Path]) -> dict:
    start = time.time()
    run_dir = Path(run_dir or cfg.run_dir or default_run_dir(cfg))
    given = cfg
    try:
        world = distributed.world_from_env()
        cfg = resolve_trainer(cfg, method_cls.trainer_defaults(cfg))
        check_distributable(cfg, method_cls, world)
        trackers.check_installed(cfg)  # a tracker asked for but not installed stops the run before it loads data
    except ValueError as error:
        raise ConfigurationError(str(error)) from error
    _seed(cfg.seed)
    try:
        distributed.start(world, resolve_device(cfg.device))  # joins the process group (a no-op in one process)
        if world.is_main:
            _prepare_run_dir(run_dir, cfg)
        ctx = _main_rank_first(world, lambda: RunContext(cfg, run_dir, method_cls, world))
    except (ValueError, FileNotFoundError, DatasetError) as error:
        raise ConfigurationError(str(error)) from error
    digest = ctx.data.content_digest()
    identity = run_identity(given, digest)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    state = None
    if cfg.resume and checkpoint.exists():
        try:
            state = load_checkpoint(checkpoint, map_location=ctx.device)
            check_resumable(state, identity, checkpoint, cfg.method.name)
        except (RuntimeError, ResumeRefused) as error:
            raise ConfigurationError(str(error)) from error
        if state["epoch"] > cfg.trainer.epochs:
            raise ConfigurationError(f"resume=true with trainer.epochs={cfg.trainer.epochs}, but the run in {run_dir} "
                                     f"has completed {state['epoch']} epochs; give trainer.epochs >= {state['epoch']}")
    try:
        ctx.encoder = choose_encoder(cfg, digest, ctx.cache_dir, wanted=method_cls.starts_from_encoder(cfg),
                                     required=method_cls.requires_encoder, resuming=state is not None,
                                     method=method_cls.name, distributed=world.active)
        method = method_cls(ctx)
    except ValueError as error:
        raise ConfigurationError(str(error)) from error
    # rank 0 alone writes; every rank runs the same steps and collectives
    console = ctx.console
    recorder = RunRecorder(run_dir) if world.is_main else RankRecords()
    completed, elapsed = 0, 0.0
    if state is not None:
        for name, net in method.networks.items():
            net.load_state_dict(state["networks"][name])
        method.load_extra_state(state["method"])
        completed, elapsed = state["epoch"], state["wall_seconds"]
        recorder.truncate_after(completed)
        console.say(f"resuming {run_dir} after epoch {completed}")
    elif cfg.resume:  # a requeued job's first try ended before its first checkpoint: start, without its records
        recorder.truncate_after(0)
        console.say(f"resume=true, but {run_dir} holds no checkpoint yet: starting at epoch 1")
    if world.is_main and completed < cfg.trainer.epochs:
        changed = record_environment(run_dir, completed + 1, ctx.device)
        if changed:
            console.say("resuming in another environment: " + ", ".join(changed) + f"; from epoch {completed + 1} "
                        "the run is not the draw-for-draw continuation it is on the machine that started it")
    _set_rank_rng(state, cfg.seed, world, console)
    resolved = _write_resolved(cfg, ctx, run_dir, method.resolved_settings()) if world.is_main else {}
    wrong = "unknown share of" if ctx.noise_rate_actual is None else f"{ctx.noise_rate_actual:.1%}"
    console.say(f"{method.name} on {ctx.data.name} ({ctx.num_train} training images, {wrong} "
                f"wrong labels), {'SANM ' + cfg.sanm.name if ctx.sanm_settings else 'no SANM'}, device {ctx.device}"
                f"{f' x {world.size} processes' if world.active else ''}, {ctx.acceleration.describe()}; "
                f"writing {run_dir}")
    snapshots = Snapshots(ctx, method.networks, run_dir) if world.is_main else None
    resumed_at = time.time()
    trained = elapsed  # a finished run resumed again trains nothing and keeps its wall time
    recorder.write_status("running", epoch=completed, epochs=cfg.trainer.epochs)  # what baselines.report reads
    try:
        if world.is_main:  # in the try: a run that stops from here on ends its tracker runs too
            recorder.attach(_open_trackers(cfg, run_dir), resolved)
            console.say("logging to " + _loggers(cfg.tensorboard, recorder.trackers))
        for epoch in range(completed, cfg.trainer.epochs):  # `epoch` is the 0-based index; outputs say epoch + 1
            epoch_start = time.time()
            lr = ctx.lr_at(epoch)
            for net in method.networks.values():
                net.set_lr(lr)
            with ctx.acceleration.autocast():
                stats = method.train_epoch(epoch)
            stats = distributed.mean_over_ranks(stats, ctx.device, world)
            if not ctx.data.labels_known:
                stats = without_truth(stats)
            for net in method.networks.values():
                net.model.eval()
                distributed.sync_buffers(net.module, world)
            test_acc = ctx.test_accuracy(method.predict)
            record = {"epoch": epoch + 1, "lr": lr, **stats, "test_acc": test_acc, **method.extra_test_metrics()}
            record.update(ctx.extra_test_accuracies(method.predict))
            if ctx.has_validation:
                record["val_acc"] = ctx.val_accuracy(method.predict)
            record["epoch_seconds"] = time.time() - epoch_start
            recorder.log_epoch(record)
            if snapshots is not None and snapshots.due(epoch + 1):
                snapshots.save(epoch + 1)
            rng = distributed.all_objects(capture_rng_state(), world)
            trained = elapsed + time.time() - resumed_at  # the checkpoint's and the summary's wall: one number
            with interrupts_deferred():  # a Ctrl-C or SIGTERM lands after `completed` counts the checkpoint written
                if world.is_main:
                    save_checkpoint(checkpoint, {
                        "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "method_name": method.name,
                        "identity": identity, "networks": {name: net.state_dict() for name, net in method.networks.items()},
                        "method": method.extra_state(), "rng": rng[0], **({"rng_ranks": rng} if world.active else {}),
                        "wall_seconds": trained,
                    })
                completed = epoch + 1
            console.say(f"epoch {completed}/{cfg.trainer.epochs}  test_acc {test_acc:.2f}  " + "  ".join(
                f"{k} {v:.4g}" for k, v in stats.items() if isinstance(v, float) and not math.isnan(v)))
            if completed == 1 and ctx.acceleration.compile_backend:
                console.say(f"epoch 1 took {record['epoch_seconds']:.1f} s, torch.compile's compilation included")
        summary = _summary(recorder.records(), cfg, ctx, trained)
        if world.is_main:
            summary["environments"] = count_environments(run_dir)
        for net in method.networks.values():
            net.model.eval()
        if ctx.data.labels_known:  # else every label counts as right: nothing to measure, and a pass to save
            summary.update(ctx.fitted_labels(method.predict))
        method.on_run_end()
        recorder.write_summary(summary)
        recorder.write_status("finished", epoch=completed, epochs=cfg.trainer.epochs)
        distributed.barrier(world)  # no rank leaves (and tears the group down) before rank 0 has written
        distributed.stop(world)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (Terminated)
        recorder.write_status("interrupted", epoch=completed, epochs=cfg.trainer.epochs, signal=signal_name(interrupt))
        raise RunInterrupted(run_dir, completed, cfg.trainer.epochs, signal_name(interrupt),
                             exit_code(interrupt)) from None
    except SystemExit:  # a signal handler of another program leaving mid-run (submitit's requeue on USR2)
        recorder.write_status("interrupted", epoch=completed, epochs=cfg.trainer.epochs)
        raise
    except Exception as error:
        recorder.write_status("failed", epoch=completed, epochs=cfg.trainer.epochs,
                              error=" ".join(f"{type(error).__name__}: {error}".split())[:300])
        raise
    finally:
        for problem in recorder.close():
            console.say(problem)
    if world.is_main and cfg.plots.enabled:
        console.say(_draw_plots(run_dir))
    runs = _runs_folder(run_dir, cfg.get("output_root"))
    console.say(f"table of the runs under {runs}: python -m baselines.report {runs}")
    console.say(f"best test_acc {summary['best_test_acc']:.2f}, last {summary['last_test_acc']:.2f} "
                f"({time.time() - start:.0f} s); summary in {run_dir / 'summary.json'}")
    return summary


def _runs_folder(run_dir: Path, output_root: Optional[str]) -> Path:
    """The folder whose table holds this run: the output root when the run is under it, else the run directory
    itself (`hydra.run.dir=DIR` or `run_dir=DIR` put it elsewhere, and a table of the output root would miss it)."""
    if output_root and Path(run_dir).resolve().is_relative_to(Path(output_root).resolve()):
        return Path(output_root)
    return Path(run_dir)


def _draw_plots(run_dir: Path) -> str:
    """The end-of-run plots (baselines/plot.py), or why there are none; a finished run never fails on a plot."""
    from baselines import plot  # matplotlib is imported there only when present

    if not plot.matplotlib_available():
        return "plots: none (matplotlib is not installed: pip install -e \".[logging]\" adds it)"
    try:
        written = plot.write_plots(run_dir)
    except Exception as error:  # noqa: BLE001 - the run's results are safe on disk; say what went wrong
        return f"plots: not written ({type(error).__name__}: {error}); retry with python -m baselines.plot {run_dir}"
    return f"plots ({len(written)}) in {run_dir / 'plots'}; python -m baselines.plot {run_dir} redraws them"


def check_distributable(cfg: DictConfig, method_cls: type[Method], world: distributed.World) -> None:
    """Over N processes: the method must support it and every global batch must split evenly."""
    if not world.active:
        return
    if not method_cls.distributed:
        supported = ", ".join(sorted(m.name for m in _distributed_methods()))
        raise ValueError(f"{method_cls.name} runs in one process only for now (torchrun supports {supported}); "
                         "run it without torchrun")
    for key in ("batch_size", "eval_batch_size"):
        if cfg.trainer[key] % world.size:
            raise ValueError(f"trainer.{key}={cfg.trainer[key]} does not split over {world.size} processes; "
                             f"give a multiple of {world.size} (it is the global batch, as in one process)")


def _distributed_methods() -> list[type[Method]]:
    from baselines.registry import BASELINES

    return [cls for cls in BASELINES.values() if cls.distributed]


def _main_rank_first(world: distributed.World, build: Callable[[], "RunContext"]) -> "RunContext":
    """Rank 0 builds first (it decodes the data and writes the noisy-label cache), then the others read."""
    if not world.active:
        return build()
    if not world.is_main:
        distributed.barrier(world)
    ctx = build()
    if world.is_main:
        distributed.barrier(world)
    return ctx


def _set_rank_rng(state: Optional[dict], seed: int, world: distributed.World, console) -> None:
    """Every rank's RNG streams: as checkpointed (each rank its own), else seeded. Rank 0 keeps the streams of a
    1-process run; ranks 1.. draw their own augmentations and mixup, from streams of their own."""
    saved = None if state is None else state.get("rng_ranks", [state["rng"]])
    if saved is not None and len(saved) == world.size:
        restore_rng_state(saved[world.rank])
        return
    if saved is not None:
        restore_rng_state(saved[0])
        console.say(f"the checkpoint holds the RNG streams of {len(saved)} processes, this run has {world.size}: "
                    "rank 0 continues its stream, the others start fresh ones")
    if world.rank > 0:
        _seed(seed * 1000 + world.rank)


def _open_trackers(cfg: DictConfig, run_dir: Path) -> list[trackers.Tracker]:
    """Rank 0's experiment trackers (trackers.py); one that cannot start is a ConfigurationError."""
    name = "/".join(default_run_dir(cfg).parts[-5:])  # <method>/<dataset>/<noise>/<sanm>/seed<k>
    try:
        return trackers.open_trackers(cfg, run_dir, name)
    except trackers.TrackerError as error:
        raise ConfigurationError(str(error)) from error


def _loggers(tensorboard: bool, opened: list[trackers.Tracker]) -> str:
    """Where the run logs, for its "logging to" line."""
    line = ", ".join(["metrics.jsonl", "summary.json", "run.log", *(tracker.describe() for tracker in opened)])
    if not tensorboard:
        return line + " (TensorBoard off: tensorboard=false)"
    if not trackers.tensorboard_available():
        return line + f" (TensorBoard off: not installed; {trackers.INSTALL['tensorboard']} adds it)"
    return line


def default_run_dir(cfg: DictConfig) -> Path:
    sanm = cfg.sanm.name if cfg.get("sanm") is not None else "off"
    dataset = dataset_dir_name(cfg.dataset.name, cfg.dataset.root)
    return Path(cfg.output_root) / cfg.method.name / dataset / cfg.noise.name / sanm / f"seed{cfg.seed}"


# ---------------------------------------------------------------------- helpers
def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices: a seeded `round(fraction * n)` of the training set is held out."""
    held = int(round(fraction * n))
    if fraction > 0 and not 1 <= held < n - 1:
        raise ValueError(f"trainer.val_fraction={fraction} holds out {held} of {n} training images; "
                         "choose a fraction that leaves both parts non-empty")
    order = np.random.default_rng([seed, 0x5A1]).permutation(n)  # its own stream: the noise draw is unchanged
    return np.sort(order[held:]), np.sort(order[:held])


def _load_data(cfg: DictConfig) -> ImageDataset:
    if cfg.dataset.name == "image_folder" and not cfg.dataset.root:
        raise ValueError("dataset=image_folder needs dataset.root=<folder with train/<class>/ and test/<class>/>")
    return load_dataset(cfg.dataset.name, root=cfg.dataset.root, cache_dir=cfg.dataset.cache_dir,
                        train_subset=cfg.dataset.train_subset, test_subset=cfg.dataset.test_subset,
                        seed=cfg.seed, download=cfg.dataset.download,
                        decode_size=cfg.dataset.decode_size, first_classes=cfg.dataset.first_classes,
                        imagenet_val=cfg.dataset.imagenet_val)


def _sanm_settings(cfg: DictConfig, warmup_epochs: int, required: dict) -> Optional[SANMSettings]:
    group = cfg.get("sanm")
    if group is None or not group.enabled:
        return None
    return SANMSettings.resolve(group, cfg.method, warmup_epochs, required)


def _model_kwargs(model: DictConfig) -> dict:
    quirk = {"softmax_output": model.softmax_output}
    if model.name in LIBRARY_MODELS:
        return {"arch": model.arch, "weights": model.weights, **quirk}
    if model.arch is not None:
        raise ValueError(f"model.arch={model.arch} is read only by model=torchvision or model=timm, not {model.name}")
    own = {"width": model.width, "dropout": model.dropout} if model.name == "cnn9" else {"width": model.width}
    return {**own, "weights": model.weights, **quirk}


@torch.no_grad()
def _feature_shape(model: torch.nn.Module, image_shape: tuple, device: torch.device) -> tuple[int, tuple[int, int]]:
    """(K, (h, w)) of the model's feature map for this image size, from one eval-mode forward (through a
    FeatureTap of its own, so that any classifier with a Linear head works)."""
    was_training = model.training
    _, feats = FeatureTap(model.eval())(torch.zeros(2, *image_shape, device=device))
    model.train(was_training)
    return feats.shape[1], tuple(feats.shape[2:])


def _prepare_run_dir(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse to overwrite a finished or interrupted run silently."""
    existing = [run_dir / name for name in ("metrics.jsonl", "summary.json", "checkpoints")
                if (run_dir / name).exists()]
    if existing and cfg.overwrite:
        for path in existing:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    elif existing and not cfg.resume:
        raise ValueError(f"{run_dir} already holds a run; add resume=true to continue it or overwrite=true to "
                         "start again")
    run_dir.mkdir(parents=True, exist_ok=True)


def _write_resolved(cfg: DictConfig, ctx: RunContext, run_dir: Path, method_settings: dict) -> dict:
    """resolved.yaml: the config with every `auto` replaced by what the run actually uses; returned as a dict (the
    trackers' config)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["method"].update(method_settings)
    resolved["device"] = str(ctx.device)
    resolved["trainer"]["precision"] = ctx.acceleration.precision
    resolved["dataset"]["cache_dir"] = str(ctx.cache_dir)
    resolved["dataset"]["num_classes"] = ctx.num_classes  # the data's, not a setting: plots draw chance from it
    resolved["noise"]["rate_actual"] = "unknown" if ctx.noise_rate_actual is None else ctx.noise_rate_actual
    resolved["pretrained"] = ctx.pretrained  # the encoder file the networks started from (auto: its cached path)
    if ctx.encoder is not None:
        resolved["encoder"] = ctx.encoder.record  # file: its format; auto: the pre-training's settings
    if ctx.sanm_settings is not None:
        s = ctx.sanm_settings
        resolved["sanm"].update(train_on=s.train_on, target=s.target, warmup_epochs=s.warmup_epochs,
                                recon_source=s.recon_source, **s.config.to_dict())
    OmegaConf.save(OmegaConf.create(resolved), run_dir / "resolved.yaml")
    return resolved


def _summary(records: list[dict], cfg: DictConfig, ctx: RunContext, wall_seconds: float) -> dict:
    accs = [r["test_acc"] for r in records]
    summary = {
        "method": cfg.method.name, "dataset": cfg.dataset.name, "noise": cfg.noise.name,
        "sanm": cfg.sanm.name if ctx.sanm_settings is not None else "off",
        "best_test_acc": max(accs), "last_test_acc": accs[-1],
        "mean_last10_test_acc": float(np.mean(accs[-10:])), "epochs": len(records),
        "noise_rate_actual": ctx.noise_rate_actual, "wall_seconds": wall_seconds,
    }
    for name in ctx.extra_tests:  # WebVision's ImageNet val
        extra = [r[f"test_acc_{name}"] for r in records]
        summary.update({f"best_test_acc_{name}": max(extra), f"last_test_acc_{name}": extra[-1]})
    if ctx.has_validation:  # model selection on the validation split (noisy, or the dataset's own clean one):
        best = max(range(len(records)), key=lambda i: (records[i]["val_acc"], -i))  # the first epoch with the best
        summary.update(best_val_acc=records[best]["val_acc"], best_val_epoch=records[best]["epoch"],
                       test_acc_at_best_val=records[best]["test_acc"])
    return summary


def report_and_exit(error: ConfigurationError) -> None:
    """The last line a user sees for a bad setting: what is wrong and how to fix it."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
