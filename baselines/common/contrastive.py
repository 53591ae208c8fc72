"""SimCLR pieces for C2D's pre-training (docs/baselines.md 5.1): batched strong views and the NT-Xent loss.

The views follow SupContrast's recipe (RandomResizedCrop(scale 0.2-1), horizontal flip, ColorJitter
(0.4, 0.4, 0.4) with p 0.8, RandomGrayscale p 0.2, normalise), done on whole batches on the device:
the resized crop is one `grid_sample` with a per-sample affine grid. The jitter's hue component (0.1)
is left out: it needs an RGB->HSV round trip per pixel for little effect on 32x32 images.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


@lru_cache(maxsize=8)
def _gray_weights(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[1, 3, 1, 1] luma weights, built once per device: building them per batch is a blocking copy, a host sync
    on a GPU (benchmarks/gpu_acceptance.py checks the steps for those)."""
    return torch.tensor(_GRAY, device=device, dtype=dtype).view(1, 3, 1, 1)


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] != 3:
        return images
    return (images * _gray_weights(images.device, images.dtype)).sum(dim=1, keepdim=True).expand_as(images)


class SimCLRViews:
    """uint8 [B, C, H, W] -> a strongly augmented, normalised float view, per sample at random."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], min_scale: float = 0.2,
                 jitter: float = 0.4, jitter_p: float = 0.8, gray_p: float = 0.2) -> None:
        self.mean, self.std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
        self.min_scale, self.jitter, self.jitter_p, self.gray_p = min_scale, jitter, jitter_p, gray_p

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        b, device = x.shape[0], x.device
        x = F.grid_sample(x, self._crop_grid(b, x.shape[-2:], device), mode="bilinear", padding_mode="reflection",
                          align_corners=False)
        x = self._color_jitter(x)
        gray = torch.rand(b, 1, 1, 1, device=device) < self.gray_p
        x = torch.where(gray, _grayscale(x), x)
        if self.mean.device != device:  # moved once, not every batch (a blocking copy: a host sync on a GPU)
            self.mean, self.std = self.mean.to(device), self.std.to(device)
        return (x - self.mean) / self.std

    def _crop_grid(self, batch: int, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """Affine grids of RandomResizedCrop: area in [min_scale, 1], log-uniform aspect in [3/4, 4/3], flip."""
        area = torch.empty(batch, device=device).uniform_(self.min_scale, 1.0)
        log_ratio = torch.empty(batch, device=device).uniform_(math.log(3 / 4), math.log(4 / 3))
        ratio = log_ratio.exp()
        width = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the image side
        height = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (torch.rand(batch, device=device) * 2 - 1) * (1 - width)  # centre keeps the crop inside
        cy = (torch.rand(batch, device=device) * 2 - 1) * (1 - height)
        flip = torch.where(torch.rand(batch, device=device) < 0.5, -1.0, 1.0)
        theta = torch.zeros(batch, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 2] = width * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = height, cy
        return F.affine_grid(theta, [batch, 1, *size], align_corners=False)

    def _color_jitter(self, x: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast and saturation factors in [1 - j, 1 + j], applied with probability p."""
        b, device = x.shape[0], x.device
        apply = (torch.rand(b, 1, 1, 1, device=device) < self.jitter_p).float()

        def factor() -> torch.Tensor:
            f = torch.empty(b, 1, 1, 1, device=device).uniform_(1 - self.jitter, 1 + self.jitter)
            return apply * f + (1 - apply)  # factor 1 = unchanged

        x = (x * factor()).clamp(0, 1)  # brightness
        mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * factor() + mean).clamp(0, 1)  # contrast
        gray = _grayscale(x)
        return ((x - gray) * factor() + gray).clamp(0, 1)  # saturation


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view's positive is its partner; the other 2N-2 views are negatives.

    Args:
        z1, z2: [N, d] L2-normalised projections of the two views of the same N images.
    """
    z = torch.cat([z1, z2]).float()
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # a view is not its own negative
    partner = torch.arange(2 * n, device=z.device).roll(n)  # n..2n-1, 0..n-1, made on the device (no copy)
    return F.cross_entropy(logits, partner)
