"""Noisy label regularisation (NLR, paper Eq. 6-8) and the loss the masked view trains with.

The target of a masked image is the soft target y with mass r_i taken from its arg-max class and
spread evenly, because the masked image shows less evidence for that class:
    y_r[j] = y[j] - r + r/c  (j = argmax y),   y_r[j] = y[j] + r/c  otherwise       (Eq. 7, 'all')
The official code spreads r over the other c-1 classes instead ('others'). When a soft target's
arg-max mass is too small for the full move (it would go negative), the moved mass is capped so the
result stays a probability vector; for one-hot targets the cap never binds. The masked image is then
trained with the cross-entropy against y_r (Eq. 8), `soft_cross_entropy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._constant import constant


def regularize_soft_targets(targets: torch.Tensor, ratio: torch.Tensor, spread: str = "all") -> torch.Tensor:
    """Eq. 7 on probability targets.

    Args:
        targets: [B, c] probability vectors.
        ratio: [B] mass r_i to move away from each arg-max class.
        spread: 'all' (paper: r/c to every class, the arg-max included) or 'others' (official: r/(c-1)
            to each other class).

    Returns:
        [B, c] regularised targets that sum to 1.
    """
    targets = targets.float()
    classes = targets.shape[1]
    top_mass, top_class = targets.max(dim=1, keepdim=True)
    if spread == "all":
        # the arg-max loses r*(1 - 1/c) net; cap so that it stays >= 0
        moved = torch.minimum(ratio.float().unsqueeze(1), top_mass * classes / max(classes - 1, 1))
        share = moved / classes
        result = targets + share
        return result.scatter_add_(1, top_class, -moved)
    moved = torch.minimum(ratio.float().unsqueeze(1), top_mass)
    share = moved / max(classes - 1, 1)
    result = targets + share
    return result.scatter_add_(1, top_class, -moved - share)


def regularize_class_ids(labels: torch.Tensor, ratio: torch.Tensor, num_classes: int, spread: str = "all") -> torch.Tensor:
    """Eq. 7 on the one-hot targets of class ids [B], without building the one-hot first.

    On a one-hot target the cap never binds (r <= 1), so every class gets the share s (r/c, or
    r/(c-1) for 'others') and the labelled class 1 - r + s ('all') or 1 - r ('others').

    Returns:
        [B, c] float32 targets that sum to 1.
    """
    if ratio.dtype != torch.float32 or ratio.device != labels.device:
        ratio = ratio.to(labels.device, torch.float32)
    ratio, one = ratio.unsqueeze(1), constant(1.0, labels.device)
    share = ratio / constant(float(num_classes if spread == "all" else max(num_classes - 1, 1)), labels.device)
    on_label = (one - ratio) if spread == "all" else (one - ratio - share)  # added on top of the share
    result = share.expand(-1, num_classes).contiguous()
    return result.scatter_add_(1, (labels if labels.dtype == torch.long else labels.long()).unsqueeze(1), on_label)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-sum_c t_c log softmax(z)_c (Eq. 8), in float32 whatever the logits' dtype (autocast).

    Args:
        logits: [B, c].
        targets: [B, c] probability vectors (NLR's y_r), or [B] class ids (the same value as their one-hot rows).
        reduction: 'mean' over the batch, or 'none' for the [B] per-sample losses (label quality's input).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if targets.dim() == 1:
        return F.cross_entropy(logits.float(), targets, reduction=reduction)
    per_sample = -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    return per_sample.mean() if reduction == "mean" else per_sample
