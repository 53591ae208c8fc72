"""Supervised losses a method names as its `loss(logits, targets)`: targets are class ids [B] or probabilities
[B, C] (SANM's regularised labels, mixup's mixed ones), and each loss means the same on both, a class id being
its one-hot row. Robust-loss methods are then a few lines on top of CE (baselines/gce.py, baselines/sce.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Mean over the batch of -sum_c t_c log softmax(z)_c (Eq. 8): the library's, one copy for SANM and the methods
from sanm_plugin.labels import soft_cross_entropy

__all__ = ["as_probabilities", "cross_entropy", "generalized_cross_entropy", "soft_cross_entropy",
           "symmetric_cross_entropy"]


def as_probabilities(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[B] class ids -> their one-hot rows [B, C] (float); probability rows [B, C] pass through."""
    if targets.dim() == 1:
        return F.one_hot(targets.long(), num_classes).float()
    if targets.dim() != 2 or targets.shape[1] != num_classes:
        raise ValueError(f"targets must be [B] class ids or [B, {num_classes}] probabilities, "
                         f"got shape {tuple(targets.shape)}")
    return targets.float()


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """soft_cross_entropy on class ids [B] (F.cross_entropy, the same value) or probabilities [B, C]."""
    if targets.dim() == 1:
        return F.cross_entropy(logits.float(), targets)
    return soft_cross_entropy(logits, as_probabilities(targets, logits.shape[1]))


def generalized_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, q: float) -> torch.Tensor:
    """GCE (Zhang & Sabuncu, NeurIPS 2018): L_q = (1 - p_y^q) / q, the mean over the batch.

    q -> 0 gives cross-entropy, q = 1 the MAE (bounded, so wrong labels pull less). Soft targets weight the
    per-class terms: sum_c t_c (1 - p_c^q) / q, linear in the target as soft cross-entropy is.
    """
    if not 0 < q <= 1:
        raise ValueError(f"GCE's q must be in (0, 1], got {q}")
    probs = F.softmax(logits.float(), dim=1).clamp(min=1e-12)
    per_class = (1 - probs.pow(q)) / q
    return (as_probabilities(targets, logits.shape[1]) * per_class).sum(dim=1).mean()


def symmetric_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, alpha: float, beta: float,
                            log_floor: float = -4.0) -> torch.Tensor:
    """SCE (Wang et al., ICCV 2019): alpha * CE + beta * RCE, the mean over the batch.

    The reverse cross-entropy swaps prediction and label, RCE = -sum_c p_c log t_c, with log 0 taken as
    `log_floor` (the paper's A = -4); for a one-hot label it is -A (1 - p_y).
    """
    t = as_probabilities(targets, logits.shape[1])
    probs = F.softmax(logits.float(), dim=1)
    log_t = torch.where(t > 0, t.clamp(min=1e-30).log(), torch.full_like(t, log_floor)).clamp(min=log_floor)
    reverse = -(probs * log_t).sum(dim=1).mean()
    return alpha * cross_entropy(logits, targets) + beta * reverse
