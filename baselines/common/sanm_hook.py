"""The one place where SANM enters every baseline: label quality, masked views and their losses.

Each trainable network gets a `SANMHook` (its own SANMAugmenter and decoder, its own label quality G).
A method calls, at its supervised forward:
    views = hook.views(x, logits, feats, idx, targets)     # SANM[1] mask + SANM[2] regularised targets
    logits_m, feats_m = tap(views.images)                  # the method's own forward on the masked views
    loss = ... soft_cross_entropy(logits_m, views.targets) + hook.reconstruction(feats_m, x)   # SANM[3]
or, for a plain supervised loss, `hook.supervised_loss(...)`, which does exactly that. The engine keys
(`train_on`, `target`, `warmup_epochs`) resolve here from the method's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from sanm_plugin import SANMAugmenter, SANMConfig, gmm_clean_probability

from .config import AUTO, SANMGroupConfig
from .losses import soft_cross_entropy
from .metrics import binary_auc

TRAIN_ON = ("masked", "clean_and_masked")
TARGETS = ("label", "prediction")
RECON_SOURCES = ("separate", "mixed")


@dataclass(frozen=True)
class SANMSettings:
    """The `sanm` config group with every `auto` resolved for one method."""

    config: SANMConfig
    train_on: str
    target: str
    warmup_epochs: int
    recon_source: str = "separate"  # methods that mix inputs: a forward of the masked views, or the mixed forward

    @classmethod
    def resolve(cls, group: DictConfig | SANMGroupConfig, method: Any, method_warmup: int,
                required: Optional[Mapping[str, tuple[str, str]]] = None) -> "SANMSettings":
        """`auto` keys take the method's defaults; warmup_epochs=auto waits for the method's own warm-up.

        `required` maps a key (train_on, target, recon_source) to the only value the method can run with and
        why (ELR has no mixup forward to reconstruct from): `auto` takes that value, any other is an error.
        """
        if isinstance(group, DictConfig):  # typed under Hydra; untyped when read back from a run's resolved.yaml
            group = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SANMGroupConfig), group))
        required = required or {}

        def choose(key: str, method_default: str) -> str:
            value = getattr(group, key)
            if key not in required:
                return method_default if value == AUTO else value
            needed, why = required[key]
            if value not in (AUTO, needed):
                raise ValueError(f"sanm.{key}={value} cannot be used here: {why}; use sanm.{key}={needed} (or auto)")
            return needed

        train_on = choose("train_on", method.sanm_train_on)
        target = choose("target", method.sanm_target)
        recon_source = choose("recon_source", method.sanm_recon_source)
        warmup = method_warmup if group.warmup_epochs == AUTO else group.warmup_epochs
        if recon_source not in RECON_SOURCES:
            raise ValueError(f"sanm.recon_source must be auto or one of {RECON_SOURCES}, got {recon_source!r}")
        if train_on not in TRAIN_ON:
            raise ValueError(f"sanm.train_on must be auto or one of {TRAIN_ON}, got {train_on!r}")
        if target not in TARGETS:
            raise ValueError(f"sanm.target must be auto or one of {TARGETS}, got {target!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"sanm.warmup_epochs must be auto or an integer >= 0, got {warmup!r}")
        return cls(SANMConfig(**group.hook_settings(method.name)), train_on, target, warmup, recon_source)


@dataclass
class MaskedViews:
    """Masked images and their targets; with trough='separate_image' both halves are stacked (2B rows)."""

    images: torch.Tensor
    targets: torch.Tensor
    ratio: torch.Tensor  # [B] peak mask ratio


class SANMHook(torch.nn.Module):
    """SANM for one network: its augmenter (decoder included), its label quality and its diagnostics.

    Args:
        settings: resolved SANM settings.
        num_classes, feature_channels, image_shape, feature_size: as SANMAugmenter's.
        is_clean: [N] bool, whether each training label is truly right (diagnostics only).
        input_normalization: (mean, std) the engine normalised the images with (for fill_space / recon_target).
    """

    def __init__(
        self,
        settings: SANMSettings,
        num_classes: int,
        feature_channels: int,
        image_shape: tuple[int, int, int],
        feature_size: Optional[tuple[int, int]],
        is_clean: torch.Tensor,
        input_normalization: Optional[tuple] = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.augmenter = SANMAugmenter(num_classes, feature_channels, image_shape, settings.config, feature_size,
                                       input_normalization)
        self.register_buffer("clean_prob", torch.ones(len(is_clean), device=is_clean.device))
        self.register_buffer("is_clean", is_clean.bool(), persistent=False)
        # the last mask ratio each sample was given (NaN: not masked yet), for the plots; not checkpointed
        self.register_buffer("last_ratio", torch.full((len(is_clean),), float("nan"), device=is_clean.device),
                             persistent=False)
        self._reset_stats()

    # ------------------------------------------------------------------ label quality
    def active(self, epoch: int) -> bool:
        return epoch >= self.settings.warmup_epochs

    def refresh_quality(self, losses: torch.Tensor) -> dict[str, float]:
        """G from the per-sample losses of an evaluation pass (Eq. 2); returns its diagnostics. (A method that
        averages losses over epochs, DivideMix at 90% noise, computes G itself and calls set_quality.)"""
        self.set_quality(gmm_clean_probability(losses))
        return {"gmm_auc": binary_auc(self.clean_prob, self.is_clean)}

    def set_quality(self, clean_prob: torch.Tensor) -> None:
        """Use a G the method computed itself (DivideMix's co-divide posterior)."""
        self.clean_prob.copy_(clean_prob.to(self.clean_prob.device))

    # ------------------------------------------------------------------ the three hooks
    def views(
        self,
        images: torch.Tensor,
        logits: torch.Tensor,
        feature_maps: torch.Tensor,
        index: torch.Tensor,
        targets: torch.Tensor,
        classifier_weight: Optional[torch.Tensor],
        clean_prob: Optional[torch.Tensor] = None,
    ) -> MaskedViews:
        """SANM[1] + SANM[2]: masked copies of the batch and their regularised targets.

        `targets` are class ids [B] or probabilities [B, c] (the method's training target); with
        target='prediction' the detached softmax of the clean logits is regularised instead.
        """
        quality = self.clean_prob[index] if clean_prob is None else clean_prob
        weight = None if classifier_weight is None else classifier_weight.detach()
        mb = self.augmenter.modulate_batch(images, feature_maps.detach(), logits.detach(), quality, weight)
        base = torch.softmax(logits.detach().float(), dim=1) if self.settings.target == "prediction" else targets
        regularised = self.augmenter.regularize_labels(base, mb)
        self._accumulate(mb.ratio, index)
        if mb.trough_images is None:
            return MaskedViews(mb.images, regularised, mb.ratio)
        return MaskedViews(torch.cat([mb.images, mb.trough_images]), regularised.repeat(2, 1), mb.ratio)

    def reconstruction(self, masked_feature_maps: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """SANM[3]: beta * MSE(decoder(F(x_m)), x)."""
        return self.augmenter.reconstruction_loss(masked_feature_maps, images, self.__dict__.get("_decoder_call"))

    def wrap_decoder(self, call: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Decode through `call` (the decoder in DistributedDataParallel). Kept out of the module tree, so the
        state_dict, and a checkpoint, stay those of a 1-process run."""
        self.__dict__["_decoder_call"] = call

    def supervised_loss(
        self,
        tap: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        images: torch.Tensor,
        index: torch.Tensor,
        targets: torch.Tensor,
        classifier_weight: Optional[torch.Tensor],
        clean_loss: Callable[[torch.Tensor], torch.Tensor],
        masked_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = soft_cross_entropy,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The whole SANM step for a method whose loss is a supervised loss on one batch.

        train_on='clean_and_masked': clean_loss(clean logits) + masked_loss(masked logits, regularised targets)
        + L_r; 'masked': the clean forward runs without gradient (it only places the masks), and the masked
        view's loss + L_r replace the clean loss. masked_loss defaults to soft cross-entropy (Eq. 8); a method
        with a loss of its own (GCE, SCE) passes it, called on the [B, C] regularised targets.
        """
        if self.settings.train_on == "masked":
            with torch.no_grad():
                logits, feats = tap(images)
            clean_term = torch.zeros((), device=images.device)
        else:
            logits, feats = tap(images)
            clean_term = clean_loss(logits)
        base = torch.softmax(logits.detach().float(), dim=1) if self.settings.target == "prediction" else targets
        # the library's one-call step (mask, soften, masked forward, criterion, reconstruction), as views() + tap
        terms = self.augmenter.loss(images, base, self.clean_prob[index], logits, feats, tap=tap,
                                    classifier_weight=classifier_weight, criterion=masked_loss,
                                    decoder=self.__dict__.get("_decoder_call"))
        self._accumulate(terms.batch.ratio, index)
        loss = clean_term + terms.masked + terms.reconstruction
        return loss, {"loss/clean": clean_term.detach(), "loss/masked": terms.masked.detach(),
                      "loss/reconstruction": terms.reconstruction.detach()}

    # ------------------------------------------------------------------ diagnostics
    def _reset_stats(self) -> None:
        self._ratio_sum = torch.zeros(2, device=self.clean_prob.device)  # [truly wrong, truly right]
        self._ratio_count = torch.zeros(2, device=self.clean_prob.device)

    def _accumulate(self, ratio: torch.Tensor, index: torch.Tensor) -> None:
        right = self.is_clean[index].long()
        self.last_ratio[index] = ratio.float()
        self._ratio_sum.index_add_(0, right, ratio.float())
        self._ratio_count.index_add_(0, right, torch.ones_like(ratio, dtype=torch.float))

    def epoch_stats(self) -> dict[str, float]:
        """Mean mask ratio over samples whose label is truly right / wrong since the last call."""
        means = (self._ratio_sum / self._ratio_count.clamp(min=1)).tolist()
        counts = self._ratio_count.tolist()
        self._reset_stats()
        if not counts[0] and not counts[1]:
            return {}
        return {"mask_ratio_noisy": means[0] if counts[0] else float("nan"),
                "mask_ratio_clean": means[1] if counts[1] else float("nan")}

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict:
        """Nothing beyond the state_dict (G is a buffer); kept so checkpoints keep one layout."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Checkpoints written before this version carry an always-empty `loss_history`: nothing to restore."""
