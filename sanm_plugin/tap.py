"""FeatureTap: one forward pass that returns both the logits and the last feature map.

CAM (Eq. 1) needs the feature map that the classifier pools and the classifier's weight. Models with
timm's contract (`forward_features`, `forward_head`, `get_classifier`; our own models too) provide
both directly. For any other classifier whose last layer is a Linear after global pooling
(torchvision ResNets, DenseNet, VGG-style nets) the tap watches the first forward with hooks on every
module, takes the last Linear to run as the classifier and the last 4-D output with as many channels
as it has inputs (pooling layers excluded) as the feature map, and from then on hooks only that module.
`dry_run` reads the sizes SANM needs (classes, channels, feature-map size) from one such forward.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

_POOLING = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool2d, nn.Flatten, nn.Identity)


class FeatureTap:
    """Adapts a classifier to `tap(x) -> (logits [B, classes], feature_map [B, K, h, w])`.

    Args:
        model: the classifier. It is called as is: its train/eval mode and BN statistics change only
            as its own forward would change them.
        layer: dotted module name whose output is the feature map (e.g. 'layer4'); overrides the
            automatic choice.
        classifier: dotted module name of the final Linear, for `classifier_weight`.
    """

    def __init__(self, model: nn.Module, layer: str | None = None, classifier: str | None = None) -> None:
        self.model = model
        self.layer = layer
        self.classifier = classifier
        self._timm = layer is None and all(
            callable(getattr(model, name, None)) for name in ("forward_features", "forward_head", "get_classifier")
        )
        self._relu_features = False

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._timm:
            feature_maps = self.model.forward_features(images)
            if feature_maps.dim() != 4:
                raise ValueError(
                    f"{type(self.model).__name__}.forward_features returned shape {tuple(feature_maps.shape)}; "
                    "SANM needs a [B, K, h, w] feature map (pass layer='...' to pick a convolutional layer)"
                )
            return self.model.forward_head(feature_maps), feature_maps
        if self.layer is None or self.classifier is None:
            return self._discover(images)
        with self._capture(self.layer) as captured:
            logits = self.model(images)
        feature_maps = captured[0]
        return logits, feature_maps.relu() if self._relu_features else feature_maps

    @torch.no_grad()
    def dry_run(self, image_shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, feature_map) of two random images of `image_shape` (C, H, W), in eval mode and without
        gradient, so BN statistics stay as they were; every module's train/eval mode is restored after.

        Random images rather than zeros: on a fresh network zeros can give an all-zero feature map, on which
        the check for a functional ReLU after it (DenseNet) cannot tell the two apart.
        """
        if len(tuple(image_shape)) != 3 or any(int(v) < 1 for v in image_shape):
            raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {image_shape!r}")
        reference = next(iter(self.model.parameters()), None)
        device = reference.device if reference is not None else torch.device("cpu")
        dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
        images = torch.randn(2, *image_shape, generator=torch.Generator().manual_seed(0)).to(device, dtype)
        modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        try:
            return self(images)
        finally:
            for module, training in modes:
                module.training = training

    @property
    def classifier_weight(self) -> torch.Tensor:
        """[num_classes, K] weight of the final Linear (found on the first call, or the last Linear)."""
        if self._timm:
            return self.model.get_classifier().weight
        if self.classifier is not None:
            return self.model.get_submodule(self.classifier).weight
        linears = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"{type(self.model).__name__} has no nn.Linear classifier; pass classifier='name'")
        return linears[-1].weight

    @contextmanager
    def _capture(self, name: str) -> Iterator[list[torch.Tensor]]:
        captured: list[torch.Tensor] = []
        handle = self.model.get_submodule(name).register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            yield captured
        finally:
            handle.remove()

    def _discover(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the forward with hooks on every module and pick the feature layer and the classifier."""
        events: list[tuple[str, nn.Module, torch.Tensor | None, torch.Tensor]] = []
        handles = [
            module.register_forward_hook(
                lambda m, i, o, name=name: events.append((name, m, i[0] if i else None, o))
            )
            for name, module in self.model.named_modules()
            if name
        ]
        try:
            logits = self.model(images)
        finally:
            for handle in handles:
                handle.remove()
        linear_events = [k for k, e in enumerate(events) if isinstance(e[1], nn.Linear)]
        if self.classifier is None:
            if not linear_events:
                raise ValueError(f"FeatureTap found no nn.Linear in {type(self.model).__name__}; pass layer= and classifier=")
            self.classifier = events[linear_events[-1]][0]
        head = next(k for k in reversed(range(len(events))) if events[k][0] == self.classifier)
        channels = self.model.get_submodule(self.classifier).in_features
        if self.layer is None:
            candidates = [
                k for k in range(head)
                if isinstance(events[k][3], torch.Tensor) and events[k][3].dim() == 4
                and events[k][3].shape[1] == channels and not isinstance(events[k][1], _POOLING)
            ]
            if not candidates:
                raise ValueError(
                    f"FeatureTap found no [B, {channels}, h, w] feature map before {self.classifier}; pass layer='...'"
                )
            self.layer = events[candidates[-1]][0]
        feature_maps = next(e[3] for e in reversed(events) if e[0] == self.layer)
        self._relu_features = self._needs_relu(feature_maps, logits)
        return logits, feature_maps.relu() if self._relu_features else feature_maps

    def _needs_relu(self, feature_maps: torch.Tensor, logits: torch.Tensor) -> bool:
        """Whether the classifier saw relu(features) (DenseNet applies a functional ReLU after the map)."""
        head = self.model.get_submodule(self.classifier)
        if feature_maps.dim() != 4 or feature_maps.shape[1] != head.in_features:
            return False  # an explicitly chosen layer that the classifier does not pool directly
        tolerance = 1e-3 if logits.dtype in (torch.float32, torch.float64) else 5e-2  # autocast logits
        with torch.no_grad():
            for relu in (False, True):
                pooled = (feature_maps.relu() if relu else feature_maps).float().mean(dim=(2, 3))
                if torch.allclose(head(pooled.to(head.weight.dtype)).float(), logits.float(), rtol=tolerance, atol=tolerance):
                    return relu
        warnings.warn(
            f"FeatureTap: the classifier {self.classifier!r} of {type(self.model).__name__} is not a Linear on the "
            f"average-pooled output of {self.layer!r}; the class activation map may not match the logits. "
            "Pass layer='...' to choose the feature map.",
            stacklevel=3,
        )
        return False
