"""Early-learning regularisation (Liu et al., NeurIPS 2020; shengliu66/ELR), docs/baselines.md 6.1 and 6.2.

The pieces ELR and ELR+ share, as functions on tensors (each tested against hand-computed values):
the regulariser `mean_i log(1 - <t_i, p_i>)`, the temporal-ensemble target table, ELR+'s CIFAR-100
label weighting, the sigmoid ramp that schedules both the ELR weight and the EMA decay, and the
weight average (EMA) of a network that ELR+'s targets come from.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PROB_CLAMP", "WeightAverage", "clamped_softmax", "elr_term", "sigmoid_rampup", "target_weighted_labels",
           "update_targets"]

PROB_CLAMP = 1e-4  # upstream clamps p to [1e-4, 1 - 1e-4], so log(1 - <t, p>) stays finite (ELR*/model/loss.py)


def clamped_softmax(logits: torch.Tensor) -> torch.Tensor:
    """softmax(z) clamped to [1e-4, 1 - 1e-4] (not renormalised), in float32."""
    return torch.softmax(logits.float(), dim=1).clamp(PROB_CLAMP, 1.0 - PROB_CLAMP)


def elr_term(logits: torch.Tensor, targets: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """weight * mean_i log(1 - <t_i, p_i>), p = clamped softmax(z) [B, C], t [B, C] (no gradient through t).

    Minimising it raises <t_i, p_i>: the prediction is pulled towards the early-learning target.
    """
    inner = (targets.detach().float() * clamped_softmax(logits)).sum(dim=1)
    return weight * torch.log(1.0 - inner).mean()


@torch.no_grad()
def update_targets(table: torch.Tensor, index: torch.Tensor, probs: torch.Tensor, beta: float) -> torch.Tensor:
    """Temporal ensemble, in place: t[idx] <- beta * t[idx] + (1 - beta) * s / sum(s); returns the new rows.

    `probs` [B, C] need not sum to one (ELR clamps its softmax first), hence the renormalisation.
    """
    probs = probs.detach().float()
    table[index] = beta * table[index] + (1.0 - beta) * probs / probs.sum(dim=1, keepdim=True)
    return table[index]


def target_weighted_labels(labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """ELR+ on CIFAR-100: Y * q / sum(Y * q), the (mixed) labels re-weighted by the (mixed) targets [B, C]."""
    weighted = labels * targets
    return weighted / weighted.sum(dim=1, keepdim=True).clamp_min(torch.finfo(weighted.dtype).tiny)


def sigmoid_rampup(step: float, length: float) -> float:
    """rho(s, L) = exp(-5 (1 - min(s, L) / L)^2), and 1 when L = 0 (ELR_plus/utils/util.py)."""
    if length == 0:
        return 1.0
    phase = 1.0 - min(step, length) / length
    return float(math.exp(-5.0 * phase * phase))


class WeightAverage:
    """An exponential moving average of a network's parameters (ELR+'s e_k), not a trainable network.

    The copy stays in train mode for good: its forwards normalise with batch statistics and move its own
    BN buffers, which are never copied from the student (upstream averages `parameters()` only).

    Args:
        model: the student; the average starts as a deep copy of it.
        alpha: the decay's ceiling (ema_alpha).
        ramp_steps: steps over which the decay ramps up (ema_step); 0 = no ramp.
    """

    def __init__(self, model: nn.Module, alpha: float, ramp_steps: int) -> None:
        self.model = copy.deepcopy(model).train()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.alpha = alpha
        self.ramp_steps = ramp_steps

    def decay(self, step: int) -> float:
        """a_t = ema_alpha * rho(s + 1, ema_step): near 0 early, so the average first follows the student."""
        return self.alpha * sigmoid_rampup(step + 1, self.ramp_steps)

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> float:
        """theta_e <- a_t theta_e + (1 - a_t) theta_student, parameters only; returns a_t."""
        decay = self.decay(step)
        for averaged, current in zip(self.model.parameters(), student.parameters()):
            averaged.mul_(decay).add_(current.detach(), alpha=1.0 - decay)
        return decay

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """softmax of the averaged network on `images` [B, C] (train mode: its BN buffers move)."""
        return F.softmax(self.model(images).float(), dim=1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
