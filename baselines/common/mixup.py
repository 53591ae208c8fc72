"""Mixup and the MixMatch pieces DivideMix (and ELR+'s mixup) share (docs/baselines.md 4.2, 6.2).

Pure functions on tensors, so each is tested against hand-computed values.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sharpen(p, T)_c = p_c^(1/T) / sum_j p_j^(1/T) (MixMatch)."""
    powered = probs ** (1.0 / temperature)
    return powered / powered.sum(dim=1, keepdim=True)


def refine_labels(labels: torch.Tensor, clean_prob: torch.Tensor, probs: torch.Tensor, num_classes: int) -> torch.Tensor:
    """DivideMix's co-refinement before sharpening: w*onehot(y) + (1-w)*p, per labeled sample."""
    w = clean_prob.view(-1, 1).to(probs.dtype)
    return w * F.one_hot(labels, num_classes).to(probs.dtype) + (1.0 - w) * probs


def co_guess(*logits: torch.Tensor) -> torch.Tensor:
    """DivideMix's co-guessing: the mean softmax over both networks and both views."""
    return torch.stack([torch.softmax(z.float(), dim=1) for z in logits]).mean(dim=0)


def mix(inputs: torch.Tensor, targets: torch.Tensor, alpha: float, rng: np.random.Generator | None = None,
        lam: float | None = None, perm: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Mixup with lam ~ Beta(alpha, alpha) folded to lam >= 0.5, so each mixed row stays closest to its own input.

    Returns the mixed inputs, the mixed targets, lam and the permutation (for mixing anything else alike).
    """
    if lam is None:
        lam = float((rng or np.random).beta(alpha, alpha))
        lam = max(lam, 1.0 - lam)
    if perm is None:
        perm = torch.randperm(inputs.shape[0], device=inputs.device)
    return lam * inputs + (1 - lam) * inputs[perm], lam * targets + (1 - lam) * targets[perm], lam, perm


def linear_rampup(progress: float, warmup: float, length: float = 16.0) -> float:
    """clip((t - warm-up) / length, 0, 1): DivideMix's lambda_u ramp over 16 epochs."""
    return float(np.clip((progress - warmup) / length, 0.0, 1.0))


def uniform_prior_penalty(logits: torch.Tensor) -> torch.Tensor:
    """sum_c (1/C) log((1/C) / pbar_c), pbar = mean prediction: keeps the batch from collapsing to one class."""
    mean_prob = torch.softmax(logits.float(), dim=1).mean(dim=0)
    prior = torch.full_like(mean_prob, 1.0 / mean_prob.numel())
    return torch.sum(prior * torch.log(prior / mean_prob))


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """mean_i sum_c p log p: the confidence penalty of DivideMix's warm-up under asymmetric noise."""
    probs = torch.softmax(logits.float(), dim=1)
    return torch.mean(torch.sum(probs * torch.log(probs.clamp(min=1e-12)), dim=1))
