"""SANMCallback: SANM for a LightningModule, with three lines in its training_step.

    class Classifier(pl.LightningModule):          # forward(x) returns the logits
        def training_step(self, batch, batch_idx):
            x, y, idx = batch                                                   # 1: IndexedDataset(train_set)
            logits, feats = self.sanm.tap(x)                                    # 2: the forward, with its feature map
            return F.cross_entropy(logits, y) + self.sanm.loss(x, y, idx, logits, feats)   # 3: SANM's term

    trainer = pl.Trainer(callbacks=[SANMCallback(warmup_epochs=1)])

Lightning is an optional dependency (`pip install "sanm-plugin[lightning]"`): only this module imports it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch

try:
    import lightning.pytorch as pl
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError('sanm_plugin.lightning needs Lightning: pip install "sanm-plugin[lightning]" '
                      "(or pip install lightning)") from error

from . import distributed
from .augmenter import SANMAugmenter, SANMLoss
from .config import SANMConfig
from .data import IndexedDataset
from .labels import soft_cross_entropy
from .quality import LabelQuality
from .tap import FeatureTap

# per-parameter-group lists of torch's LR schedulers, extended when the decoder's group joins the optimiser
__all__ = ["SANMCallback", "IndexedDataset"]  # IndexedDataset re-exported: one import for a Lightning project

_PER_GROUP_LISTS = ("base_lrs", "lr_lambdas", "min_lrs", "max_lrs", "base_momentums", "max_momentums", "_last_lr")


class SANMCallback(pl.Callback):
    """Attaches SANM to a LightningModule: its augmenter (decoder), its label quality G, and their upkeep.

    The module's side is the three lines above: its batches carry each sample's index (wrap the training
    set in `sanm_plugin.IndexedDataset`), `self.sanm.tap(x)` replaces its forward in training_step (it
    returns the logits and the last feature map), and `self.sanm.loss(x, y, idx, logits, feats)` is added
    to its loss. Its `forward` must return the logits, and `configure_optimizers` stays as it is.

    The callback does the rest:
    - sets `module.sanm` to itself at setup;
    - on the first `tap`, sizes the augmenter from that batch and the model (`SANMAugmenter.for_model`)
      and G from the training set's length, and adds the decoder to the module's optimiser as a new
      parameter group, a copy of the first group's settings that LR schedulers step alike;
    - `loss` records each sample's clean cross-entropy for G and, after `warmup_epochs` epochs, returns
      the masked view's loss + the reconstruction loss (`SANMAugmenter.loss`); during the warm-up it
      returns 0 and the decoder is unused;
    - at the end of each training epoch refits G from the recorded losses of all processes (`LabelQuality`);
    - under DDP keeps the decoder, which DistributedDataParallel does not wrap, the same on every process
      (rank 0's initial weights, gradients averaged before each optimiser step), so plain `strategy="ddp"`
      works with a warm-up: no parameter of the wrapped module goes unused;
    - saves the decoder and G in Lightning's checkpoints (its `state_dict`) and restores them on resume;
      the module's own state_dict holds no SANM keys, so `load_from_checkpoint` works without SANM.

    G comes from the training forwards of the previous epoch, not from an evaluation pass as in DivideMix:
    no extra pass, but the losses are those of augmented images under a changing model.

    Args:
        config: SANMConfig; None = SANMConfig.paper().
        warmup_epochs: epochs trained without SANM while G is first estimated (>= 1 for an informed G).
        num_samples: size of the training set; None = len(trainer.train_dataloader.dataset).
        input_normalization: (mean, std) the images were normalised with (SANMAugmenter's).
        layer, classifier: FeatureTap's choice of feature map and final Linear, when the guess does not fit.
        attribute: name of the module attribute the callback sets to itself.
    """

    def __init__(
        self,
        config: SANMConfig | None = None,
        warmup_epochs: int = 1,
        num_samples: int | None = None,
        input_normalization: tuple[Sequence[float], Sequence[float]] | None = None,
        layer: str | None = None,
        classifier: str | None = None,
        attribute: str = "sanm",
    ) -> None:
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
        self.config = config if config is not None else SANMConfig.paper()
        if not isinstance(self.config, SANMConfig):
            raise ValueError(f"config must be a SANMConfig, got {type(self.config).__name__}")
        self.warmup_epochs = warmup_epochs
        self.num_samples = num_samples
        self.input_normalization = input_normalization
        self.layer, self.classifier, self.attribute = layer, classifier, attribute
        self.augmenter: Optional[SANMAugmenter] = None
        self.quality: Optional[LabelQuality] = None
        self.last: Optional[SANMLoss] = None  # the last step's terms, for logging
        self._tap: Optional[FeatureTap] = None
        self._trainer: Optional[pl.Trainer] = None
        self._sizes: Optional[dict[str, Any]] = None

    # ------------------------------------------------------------------ what the module calls
    def tap(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, c], feature map [B, K, h, w]) of the module's forward on `images`."""
        self._build(images)
        return self._tap(images)

    def loss(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        index: torch.Tensor,
        logits: torch.Tensor | None = None,
        feature_maps: torch.Tensor | None = None,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = soft_cross_entropy,
    ) -> torch.Tensor:
        """SANM's term for this batch: 0 during the warm-up, else the masked view's loss + beta * L_r.

        Args:
            images, targets: the batch ([B] class ids or [B, c] probabilities).
            index: [B] each sample's index in the training set.
            logits, feature_maps: from `tap(images)`; without them a forward without gradient runs here.
            criterion: the masked view's loss on [B, c] targets (SANMAugmenter.loss's).
        """
        self._build(images)
        if logits is None or feature_maps is None:
            with torch.no_grad():
                logits, feature_maps = self._tap(images)
        self.quality.record(index, soft_cross_entropy(logits.detach(), targets, reduction="none"))
        if self._trainer is not None and self._trainer.current_epoch < self.warmup_epochs:
            return logits.new_zeros((), dtype=torch.float32)
        terms = self.augmenter.loss(images, targets, self.quality[index], logits, feature_maps, tap=self._tap,
                                    criterion=criterion)
        self.last = SANMLoss(terms.masked.detach(), terms.reconstruction.detach(), terms.batch, terms.targets)
        return terms.total

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        current = getattr(pl_module, self.attribute, None)
        if current is not None and not isinstance(current, SANMCallback):
            raise ValueError(f"{type(pl_module).__name__} already has an attribute {self.attribute!r}; "
                             f"pass SANMCallback(attribute='...') to attach SANM under another name")
        setattr(pl_module, self.attribute, self)
        self._trainer = trainer
        if self._tap is None or self._tap.model is not pl_module:
            self._tap = FeatureTap(pl_module, self.layer, self.classifier)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # restored from a checkpoint (or kept from an earlier fit): the optimiser must know the decoder before
        # Lightning loads the optimiser's state, which it does after this hook
        if self.augmenter is not None:
            self.augmenter.to(pl_module.device)
            self.quality.to(pl_module.device)
            self._add_to_optimizer(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.quality is None:
            raise RuntimeError("SANMCallback: the training epoch ended without a call to self.sanm.tap(x) or "
                               "self.sanm.loss(...); add them to training_step (see SANMCallback's docstring)")
        if not bool((self.quality.loss_count > 0).any()) and distributed.world_size() == 1:
            raise RuntimeError("SANMCallback: no per-sample losses were recorded this epoch; add "
                               "self.sanm.loss(x, y, idx, logits, feats) to the loss in training_step")
        self.quality.refresh()

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if self.augmenter is not None:
            distributed.average_gradients_(self.augmenter.parameters())

    def state_dict(self) -> dict[str, Any]:
        if self.augmenter is None:
            return {}
        return {"sizes": dict(self._sizes), "config": self.config.to_dict(),
                "augmenter": self.augmenter.state_dict(), "quality": self.quality.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        sizes = state_dict["sizes"]
        self._create(sizes["num_classes"], sizes["feature_channels"], tuple(sizes["image_shape"]),
                     tuple(sizes["feature_size"]), sizes["num_samples"])
        self.augmenter.load_state_dict(state_dict["augmenter"])
        self.quality.load_state_dict(state_dict["quality"])

    # ------------------------------------------------------------------ building
    def _build(self, images: torch.Tensor) -> None:
        """On the first call: augmenter, G, and the decoder's parameter group."""
        if self._tap is None:
            raise RuntimeError("SANMCallback is not attached to a module yet: pass it to pl.Trainer(callbacks=[...]) "
                               "and call self.sanm from the module's training_step")
        if self.augmenter is not None:
            return
        augmenter = SANMAugmenter.for_model(self._tap, tuple(images.shape[1:]), self.config, self.input_normalization)
        self._create(augmenter.num_classes, augmenter.feature_channels, augmenter.image_shape,
                     augmenter.feature_size, self._training_set_size(), augmenter)
        distributed.broadcast_module_(self.augmenter)  # every process starts from rank 0's decoder
        self._add_to_optimizer(self._trainer)

    def _create(self, num_classes: int, feature_channels: int, image_shape: tuple, feature_size: tuple,
                num_samples: int, augmenter: Optional[SANMAugmenter] = None) -> None:
        self._sizes = dict(num_classes=num_classes, feature_channels=feature_channels, image_shape=tuple(image_shape),
                           feature_size=tuple(feature_size), num_samples=num_samples)
        if augmenter is None:
            augmenter = SANMAugmenter(num_classes, feature_channels, image_shape, self.config, feature_size,
                                      self.input_normalization)
        device = next(augmenter.decoder.parameters()).device
        self.augmenter = augmenter
        self.augmenter.tap = self._tap
        self.quality = LabelQuality(num_samples, validate=self.config.validate).to(device)

    def _training_set_size(self) -> int:
        if self.num_samples is not None:
            return self.num_samples
        loader = getattr(self._trainer, "train_dataloader", None) if self._trainer is not None else None
        dataset = getattr(loader, "dataset", None)
        try:
            return len(dataset)
        except TypeError:
            raise ValueError("SANMCallback cannot tell the training set's size from trainer.train_dataloader; pass "
                             "SANMCallback(num_samples=len(train_set))") from None

    def _add_to_optimizer(self, trainer: Optional[pl.Trainer]) -> None:
        """The decoder joins the module's optimiser as a group with the first group's settings; the LR
        schedulers of that optimiser get a matching entry, so the decoder follows the same schedule."""
        if trainer is None or not trainer.optimizers:
            return  # not fitting (validate / predict): nothing trains
        if len(trainer.optimizers) != 1:
            raise ValueError(f"SANMCallback adds the decoder to the module's optimiser and needs exactly one; "
                             f"configure_optimizers returned {len(trainer.optimizers)}")
        optimizer = trainer.optimizers[0]
        params = list(self.augmenter.parameters())
        known = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if any(id(p) in known for p in params):
            return
        optimizer.add_param_group({**{k: v for k, v in optimizer.param_groups[0].items() if k != "params"},
                                   "params": params})
        groups = len(optimizer.param_groups)
        for config in trainer.lr_scheduler_configs:
            _extend_scheduler(config.scheduler, optimizer, groups)


def _extend_scheduler(scheduler: Any, optimizer: torch.optim.Optimizer, groups: int) -> None:
    """Give `scheduler` (of `optimizer`) an entry for the group just added, a copy of the first group's."""
    for inner in getattr(scheduler, "_schedulers", ()):  # SequentialLR, ChainedScheduler
        _extend_scheduler(inner, optimizer, groups)
    if getattr(scheduler, "optimizer", None) is not optimizer:
        return
    for name in _PER_GROUP_LISTS:
        values = getattr(scheduler, name, None)
        if isinstance(values, list) and len(values) == groups - 1 and values:
            values.append(values[0])
