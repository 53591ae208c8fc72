"""SANMAugmenter: the three hooks a training step calls, and the decoder they need.

    mb = sanm.modulate_batch(x, feats, logits, clean_prob, classifier_weight=w)   # SANM[1] AMG, Eq. 1-5
    y_r = sanm.regularize_labels(y, mb)                                           # SANM[2] NLR, Eq. 6-8
    loss = soft_ce(model(mb.images), y_r) + sanm.reconstruction_loss(feats_m, x)   # SANM[3] SMR, Eq. 9-10

or all three and the masked forward in one call, `sanm.loss(x, y, clean_prob, logits, feats)`, with the
augmenter sized from the model by `SANMAugmenter.for_model(model, image_shape)`.

The augmenter never owns the optimiser, the backward pass or the data: it takes tensors and returns
tensors on their device, with no loop over samples and no host sync (value checks aside, which
`SANMConfig(validate=False)` turns off).
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import activation, masking
from .config import SANMConfig
from .decoder import ReconstructionDecoder
from .labels import regularize_class_ids, regularize_soft_targets, soft_cross_entropy
from .tap import FeatureTap


@dataclass
class MaskedBatch:
    """What modulate_batch did to a batch.

    Attributes:
        images: [B, C, H, W] masked images (peak box, plus the trough box when trough='same_image').
        ratio: [B] peak mask ratio r_i, also the mass NLR moves.
        peak: [B, 2] (row, col) of the activation map's arg-max at image resolution.
        trough: [B, 2] (row, col) of its arg-min.
        peak_box: [B, 4] (top, bottom, left, right), half-open, clipped to the image.
        trough_box: [B, 4] likewise; empty (top == bottom) when trough='off'.
        trough_images: [B, C, H, W] trough-masked images when trough='separate_image', else None.
        trough_ratio: [B] trough mask ratio.
    """

    images: torch.Tensor
    ratio: torch.Tensor
    peak: torch.Tensor
    trough: torch.Tensor
    peak_box: torch.Tensor
    trough_box: torch.Tensor
    trough_images: Optional[torch.Tensor] = None
    trough_ratio: Optional[torch.Tensor] = None


@dataclass
class SANMLoss:
    """What `SANMAugmenter.loss` computed for one batch.

    Attributes:
        masked: scalar, the criterion on the masked view against its regularised targets (Eq. 8).
        reconstruction: scalar, beta * L_r (Eq. 9-10).
        batch: the MaskedBatch (ratios, peaks and boxes, for diagnostics).
        targets: [B, c] regularised targets; [2B, c] with trough='separate_image' (both views share them).
    """

    masked: torch.Tensor
    reconstruction: torch.Tensor
    batch: MaskedBatch
    targets: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """masked + reconstruction: the term to add to the clean loss."""
        return self.masked + self.reconstruction


class SANMAugmenter(nn.Module):
    """Self-supervised Adversarial Noisy Masking around any classifier's training step.

    Args:
        num_classes: classes of the classifier.
        feature_channels: K, channels of the feature map the hooks receive.
        image_shape: (C, H, W) of the training images.
        config: SANMConfig; None -> SANMConfig.paper().
        feature_size: (h, w) of the feature map, when known, to size the decoder's upsampling.
        input_normalization: (mean, std) per channel, in [0, 1] pixel units, that the images were normalised
            with; fill_space='pixel' and recon_target='pixel' use it (None = the images are raw pixels).
    """

    def __init__(
        self,
        num_classes: int,
        feature_channels: int,
        image_shape: tuple[int, int, int],
        config: SANMConfig | None = None,
        feature_size: tuple[int, int] | None = None,
        input_normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if not isinstance(feature_channels, int) or feature_channels < 1:
            raise ValueError(f"feature_channels must be a positive int, got {feature_channels!r}")
        if len(tuple(image_shape)) != 3 or any(int(v) < 1 for v in image_shape):
            raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {image_shape!r}")
        if feature_size is not None and (len(tuple(feature_size)) != 2 or any(int(v) < 1 for v in feature_size)):
            raise ValueError(f"feature_size must be (h, w) with positive sizes or None, got {feature_size!r}")
        self.config = config if config is not None else SANMConfig.paper()
        if not isinstance(self.config, SANMConfig):
            raise ValueError(f"config must be a SANMConfig, got {type(self.config).__name__}")
        self.num_classes = num_classes
        self.feature_channels = feature_channels
        self.image_shape = tuple(int(v) for v in image_shape)
        self.feature_size = None if feature_size is None else tuple(int(v) for v in feature_size)
        self.decoder = ReconstructionDecoder(feature_channels, self.image_shape, feature_size, self.config.decoder)
        mean, std = _normalization(input_normalization, self.image_shape[0])
        # not persistent: they follow from the data, and checkpoints of earlier versions still load
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        self.register_buffer("_fill_scale", 1.0 / std, persistent=False)  # U(0,1) pixels -> normalised units
        self.register_buffer("_fill_shift", -mean / std, persistent=False)
        self._normalised_input = input_normalization is not None
        self._warned_energy = False
        self.tap: FeatureTap | None = None  # set by for_model; a plain attribute, so the model is no submodule

    @classmethod
    def for_model(
        cls,
        model: Union[nn.Module, FeatureTap],
        image_shape: tuple[int, int, int],
        config: SANMConfig | None = None,
        input_normalization: tuple[Sequence[float], Sequence[float]] | None = None,
        layer: str | None = None,
        classifier: str | None = None,
    ) -> "SANMAugmenter":
        """An augmenter sized for `model` by one dry forward (`FeatureTap.dry_run`), on the model's device.

        num_classes, feature_channels and feature_size are read from the logits and the feature map; the
        FeatureTap it used is kept as `.tap` (and is what `loss` runs by default).

        Args:
            model: the classifier, or a FeatureTap of it (then `layer` and `classifier` are the tap's).
            image_shape: (C, H, W) of the training images.
            config, input_normalization: as the constructor's.
            layer, classifier: FeatureTap's choice of feature map and final Linear, when the guess does not fit.
        """
        tap = model if isinstance(model, FeatureTap) else FeatureTap(model, layer, classifier)
        logits, feature_maps = tap.dry_run(image_shape)
        if logits.dim() != 2 or feature_maps.dim() != 4:
            raise ValueError(f"the dry forward gave logits {tuple(logits.shape)} and a feature map "
                             f"{tuple(feature_maps.shape)}; SANM needs [B, classes] and [B, K, h, w]")
        augmenter = cls(int(logits.shape[1]), int(feature_maps.shape[1]), tuple(int(v) for v in image_shape),
                        config, tuple(int(v) for v in feature_maps.shape[-2:]), input_normalization)
        augmenter.tap = tap
        return augmenter.to(feature_maps.device)

    # ------------------------------------------------------------------ SANM[1]: adversarial masking
    @torch.no_grad()
    def modulate_batch(
        self,
        images: torch.Tensor,
        feature_maps: torch.Tensor,
        logits: torch.Tensor,
        clean_prob: torch.Tensor,
        classifier_weight: torch.Tensor | None = None,
    ) -> MaskedBatch:
        """Mask each image's most activated region more the more likely its label is wrong.

        Args:
            images: [B, C, H, W] the batch as the network sees it (normalised or not).
            feature_maps: [B, K, h, w] features of the clean forward pass.
            logits: [B, num_classes] of the clean forward pass (the arg-max picks the CAM class).
            clean_prob: [B] label quality G in [0, 1] (gmm_clean_probability).
            classifier_weight: [num_classes, K] for the class activation map; None -> energy map.
        """
        self._check_batch(images, feature_maps, logits, clean_prob, classifier_weight)
        cfg = self.config
        _, height, width = self.image_shape
        # the map and box arithmetic must not run in bf16/fp16; entering autocast costs as much as an op
        device_type = images.device.type
        context = torch.autocast(device_type, enabled=False) if _autocast_on(device_type) else nullcontext()
        with context:
            maps = self.activation_map(feature_maps, logits, classifier_weight)
            read = activation.extreme_pixels if cfg.extremes == "exact" else activation.quantised_extreme_pixels
            anchors = read(maps, (height, width))  # [B, 2, 2]: (peak, trough) x (row, col)
            ratios = masking.box_ratios(clean_prob, cfg)  # [B, 2]
            boxes = masking.make_boxes(anchors, ratios, cfg, height, width)  # [B, 2, 4] float
            fill_with, capacity, separate = masking.fill_plan(boxes, cfg, height, width)
            pixel_fill = cfg.fill_space == "pixel" and self._normalised_input
            value_map = (self._fill_scale, self._fill_shift) if pixel_fill else None
            filled = masking.fill_boxes(images, fill_with, cfg.fill, capacity, separate, masking.every_image_boxed(cfg),
                                        value_map)
            # separate: both copies were filled in one pass and are returned as two views
            masked, trough_images = (filled[: images.shape[0]], filled[images.shape[0]:]) if separate else (filled, None)
        (peak, trough), (peak_box, trough_box) = anchors.unbind(1), boxes.long().unbind(1)
        peak_ratio, trough_ratio = ratios.unbind(1)
        return MaskedBatch(masked, peak_ratio, peak, trough, peak_box, trough_box, trough_images, trough_ratio)

    def activation_map(self, feature_maps: torch.Tensor, logits: torch.Tensor,
                       classifier_weight: torch.Tensor | None) -> torch.Tensor:
        """[B, h, w] map whose extremes place the boxes: the CAM of the predicted class (Eq. 1), or the feature
        energy (config.activation='energy', or no classifier_weight given, which warns once)."""
        if self.config.activation == "cam" and classifier_weight is not None:
            return activation.class_activation_map(feature_maps, logits, classifier_weight)
        if self.config.activation == "cam" and not self._warned_energy:
            warnings.warn(
                "SANM: activation='cam' but no classifier_weight was given; using the feature-energy "
                "map instead (pass classifier_weight=model's [num_classes, K] weight for the CAM)",
                stacklevel=3,
            )
            self._warned_energy = True
        return activation.energy_map(feature_maps)

    def to_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """The images in [0, 1] pixel units: the input's normalisation undone (a no-op for raw pixels)."""
        return torch.addcmul(self.pixel_mean.view(1, -1, 1, 1), images.float(), self.pixel_std.view(1, -1, 1, 1))

    # ------------------------------------------------------------------ SANM[2]: label regularisation
    def regularize_labels(self, targets: torch.Tensor, masked: MaskedBatch) -> torch.Tensor:
        """Targets for the masked images (Eq. 7): [B] class ids or [B, num_classes] probabilities -> [B, c].

        With trough='separate_image' the trough images share these targets.
        """
        batch = masked.ratio.shape[0]
        if targets.dim() == 1:
            if targets.shape[0] != batch:
                raise ValueError(f"targets has {targets.shape[0]} labels but the masked batch has {batch} images")
            if targets.is_floating_point():
                raise ValueError(f"class-id targets must be an integer tensor, got dtype {targets.dtype}")
            if self.config.validate and targets.numel():
                low, high = torch.aminmax(targets)
                if int(low) < 0 or int(high) >= self.num_classes:
                    raise ValueError(f"targets hold class ids outside [0, {self.num_classes})")
            return regularize_class_ids(targets, masked.ratio, self.num_classes, self.config.label_spread)
        elif targets.dim() == 2:
            if tuple(targets.shape) != (batch, self.num_classes):
                raise ValueError(
                    f"targets must be [B, num_classes] = [{batch}, {self.num_classes}], got {tuple(targets.shape)}"
                )
            soft = targets.detach().float()
            if self.config.validate:
                sums = soft.sum(dim=1)
                if bool(torch.isnan(soft).any() | (soft < 0).any() | ((sums - 1).abs() > 1e-3).any()):
                    raise ValueError("soft targets must be probability vectors (non-negative, rows summing to 1)")
        else:
            raise ValueError(f"targets must be [B] class ids or [B, num_classes] probabilities, got {tuple(targets.shape)}")
        return regularize_soft_targets(soft, masked.ratio.to(soft.device), self.config.label_spread)

    # ------------------------------------------------------------------ SANM[3]: reconstruction
    def reconstruction_loss(self, masked_feature_maps: torch.Tensor, images: torch.Tensor,
                            decoder: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        """beta * MSE(decoder(F(x_m)), x) (Eq. 9-10), a scalar with gradients to the decoder and features.

        Args:
            masked_feature_maps: [B, K, h, w] features of the masked images; with
                trough='separate_image', [2B, K, h, w] (peak-masked then trough-masked), and the two
                MSEs are summed as in the official code.
            images: [B, C, H, W] the unmasked images.
            decoder: a wrapper of `self.decoder` to call instead (DistributedDataParallel, so that its
                gradients are averaged over processes); None calls the decoder itself.
        """
        if masked_feature_maps.dim() != 4 or masked_feature_maps.shape[1] != self.feature_channels:
            raise ValueError(
                f"masked_feature_maps must be [B, {self.feature_channels}, h, w], got {tuple(masked_feature_maps.shape)}"
            )
        self._check_images(images)
        copies, remainder = divmod(masked_feature_maps.shape[0], images.shape[0])
        allowed = (1, 2) if self.config.trough == "separate_image" else (1,)
        if remainder or copies not in allowed:
            raise ValueError(
                f"masked_feature_maps has {masked_feature_maps.shape[0]} rows for {images.shape[0]} images; "
                f"expected {' or '.join(f'{k}x' for k in allowed)} the batch (trough={self.config.trough!r})"
            )
        reconstruction = (decoder or self.decoder)(masked_feature_maps).float()
        target = images.detach().float()
        if self.config.recon_target == "pixel":  # the image itself: undo the input's normalisation
            target = self.to_pixels(target)
        target = target.repeat(copies, 1, 1, 1)
        return self.config.beta * copies * F.mse_loss(reconstruction, target)

    # ------------------------------------------------------------------ all three, with the masked forward
    def loss(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        clean_prob: torch.Tensor,
        logits: torch.Tensor | None = None,
        feature_maps: torch.Tensor | None = None,
        *,
        tap: Union[FeatureTap, nn.Module, Callable, None] = None,
        classifier_weight: torch.Tensor | None = None,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = soft_cross_entropy,
        decoder: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> SANMLoss:
        """SANM's term of a training step: mask (SANM[1]), soften the targets (SANM[2]), run the masked view
        through the model, and take its criterion plus the reconstruction loss (SANM[3]).

        Add `.total` to the clean loss. Masks are placed without gradient (the clean logits and feature maps
        are detached here, so passing them with their graph is fine); the masked forward and the
        reconstruction carry gradients into the model and the decoder.

        Args:
            images: [B, C, H, W] the batch as the network sees it.
            targets: [B] class ids or [B, c] probabilities (the noisy labels, or a method's own targets).
            clean_prob: [B] label quality G of these samples (`LabelQuality[index]`).
            logits, feature_maps: of the clean forward, when the step already ran it (`tap(x)`); without
                them a forward without gradient runs here to place the masks.
            tap: the FeatureTap to run, or the model (wrapped in one, which is kept), or any callable
                images -> (logits, feature maps); None = `self.tap`.
            classifier_weight: [c, K] for the class activation map; None = the tap's `classifier_weight`
                (none: the feature-energy map, with a warning).
            criterion: loss(logits [B, c], targets [B, c]) -> scalar on the masked view; soft cross-entropy
                (Eq. 8) by default, any loss taking probability targets otherwise.
            decoder: passed to `reconstruction_loss` (a DistributedDataParallel wrapper of the decoder).
        """
        tap = self._resolve_tap(tap)
        if logits is None or feature_maps is None:
            with torch.no_grad():
                logits, feature_maps = tap(images)
        weight = classifier_weight if classifier_weight is not None else (
            getattr(tap, "classifier_weight", None) if self.config.activation == "cam" else None)
        masked = self.modulate_batch(images, feature_maps.detach(), logits.detach(), clean_prob,
                                     None if weight is None else weight.detach())
        regularised = self.regularize_labels(targets, masked)
        views = masked.images
        if masked.trough_images is not None:  # both views, one forward; they share the targets
            views, regularised = torch.cat([masked.images, masked.trough_images]), regularised.repeat(2, 1)
        logits_m, feature_maps_m = tap(views)
        return SANMLoss(criterion(logits_m, regularised), self.reconstruction_loss(feature_maps_m, images, decoder),
                        masked, regularised)

    def _resolve_tap(self, tap: Union[FeatureTap, nn.Module, Callable, None]) -> Callable:
        if isinstance(tap, nn.Module):  # a classifier returns logits only: it needs a FeatureTap
            if self.tap is None or self.tap.model is not tap:  # kept: its first call finds the layers
                self.tap = FeatureTap(tap)
            return self.tap
        if tap is None and self.tap is not None:
            return self.tap
        if callable(tap):  # a FeatureTap, or any images -> (logits, feature maps) callable
            return tap
        raise ValueError("SANMAugmenter.loss needs the model: pass tap=FeatureTap(model) or tap=model, or build the "
                         "augmenter with SANMAugmenter.for_model(model, image_shape), which keeps its tap")

    # ------------------------------------------------------------------ input checks
    def _check_images(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"images must be [B, {', '.join(map(str, self.image_shape))}], got {tuple(images.shape)}")

    def _check_batch(self, images, feature_maps, logits, clean_prob, classifier_weight) -> None:
        self._check_images(images)
        batch = images.shape[0]
        if feature_maps.dim() != 4 or feature_maps.shape[0] != batch or feature_maps.shape[1] != self.feature_channels:
            raise ValueError(
                f"feature_maps must be [{batch}, {self.feature_channels}, h, w] to match images, "
                f"got {tuple(feature_maps.shape)}"
            )
        if tuple(logits.shape) != (batch, self.num_classes):
            raise ValueError(f"logits must be [{batch}, {self.num_classes}] (batch, num_classes), got {tuple(logits.shape)}")
        if tuple(clean_prob.shape) != (batch,):
            raise ValueError(f"clean_prob must be [{batch}], one label quality per image, got {tuple(clean_prob.shape)}")
        if classifier_weight is not None and tuple(classifier_weight.shape) != (self.num_classes, self.feature_channels):
            raise ValueError(
                f"classifier_weight must be [{self.num_classes}, {self.feature_channels}] (num_classes, feature_channels), "
                f"got {tuple(classifier_weight.shape)}"
            )
        if self.config.validate and clean_prob.numel():
            low, high = torch.aminmax(clean_prob)  # (no_grad here) NaN propagates into both and fails the test
            if not (float(low) >= 0.0 and float(high) <= 1.0):
                raise ValueError("clean_prob must lie in [0, 1] with no NaN (it is a probability that the label is clean)")


def _normalization(value, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) float32 [C] tensors; none given = the identity (the images are raw pixels)."""
    if value is None:
        return torch.zeros(channels), torch.ones(channels)
    mean, std = (torch.as_tensor(v, dtype=torch.float32).flatten() for v in value)
    if mean.numel() != channels or std.numel() != channels or bool((std <= 0).any()):
        raise ValueError(f"input_normalization must be (mean, std) with {channels} values each and std > 0, "
                         f"got {value!r}")
    return mean, std


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is active for this device type (torch < 2.4 has no per-device query)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()
