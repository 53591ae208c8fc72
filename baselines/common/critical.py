"""CDR's critical-parameter gradient edit (Xia et al., ICLR 2021; docs/baselines.md 7.1), for any method.

After backward and before the optimiser step, every weight scalar j of the conv kernels and linear
weights (tensors with 2 or 4 dimensions; biases and norm parameters are left alone) is scored by its
first-order importance s_j = |g_j * w_j|, ranked globally across all layers. The top
k = int((1 - eps) * |W|) scalars ("critical") keep (1 - eps) * g_j; the rest get no loss gradient,
so only weight decay (and their momentum) moves them, towards 0. Scalars tied with the k-th score
are kept too, so slightly more than k may survive. Upstream (`xiaoboxia/CDR: main.py`) passes the
same value as both the kept share and the gradient scale; so do we.

Batched: one concatenation and one selection of the threshold per step over all scores, no Python loop
over scalars; the kept count stays a device tensor and is summed over the epoch. On CUDA the threshold
is `kthvalue` (no host sync); on CPU, where `kthvalue` over the 11M scores of a PreAct ResNet-18 takes
about half a second, a radix step finds it exactly several times faster (`kth_largest`).
"""

from __future__ import annotations

import torch

__all__ = ["CriticalGradientEdit", "critical_gradient_edit", "critical_parameters", "kth_largest"]

EDITED_NDIMS = (2, 4)  # linear weights [out, in] and conv kernels [out, in, kh, kw]


def critical_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The tensors CDR ranks: conv kernels and linear weights that received a gradient this step.

    A parameter without a gradient (frozen, or unused by this loss) has nothing to edit and is left
    out of the ranking, so it does not count in |W| either.
    """
    return [p for p in model.parameters() if p.ndim in EDITED_NDIMS and p.grad is not None]


@torch.no_grad()
def critical_gradient_edit(params: list[torch.nn.Parameter], eps: float) -> torch.Tensor:
    """Edit the gradients of `params` in place; returns the number of scalars kept (a 0-d tensor).

    Args:
        params: Tensors to rank together, each with its `.grad` set (see `critical_parameters`).
        eps: The assumed noise rate in [0, 1]: (1 - eps) of the scalars are kept, their gradient
            scaled by (1 - eps). eps = 0 leaves every gradient as it is.
    """
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"the critical-parameter edit needs a noise rate eps in [0, 1], got {eps}")
    if not params:
        return torch.zeros((), dtype=torch.long)
    device = params[0].grad.device
    total = sum(p.numel() for p in params)
    keep = int((1.0 - eps) * total)  # upstream's count, truncation included
    if eps == 0.0:
        return torch.full((), total, dtype=torch.long, device=device)  # a fill, not a host-to-device copy
    if keep == 0:
        for p in params:
            p.grad.zero_()
        return torch.zeros((), dtype=torch.long, device=device)
    scores = torch.cat([(p.grad * p).abs().flatten() for p in params])
    threshold = kth_largest(scores, keep)
    kept = scores >= threshold  # ties at the threshold are kept as well
    factors = kept.to(scores.dtype) * (1.0 - eps)
    for p, factor in zip(params, factors.split([p.numel() for p in params])):
        p.grad.mul_(factor.view_as(p.grad))
    return kept.sum()


_RADIX_MIN = 1 << 16  # below this many scores kthvalue is fast enough


def kth_largest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest of non-negative `scores` (1-D), as a 0-d tensor; exact.

    On CPU: non-negative float32 values order like their bit patterns read as int32, so a histogram of
    the top 16 bits finds the bucket holding the k-th largest, and `kthvalue` runs on that bucket only.
    """
    n = scores.numel()
    if scores.device.type != "cpu" or scores.dtype != torch.float32 or n < _RADIX_MIN:
        return scores.kthvalue(n - k + 1).values
    high = scores.view(torch.int32) >> 16  # sign bit 0: buckets 0 .. 2^15 - 1, ordered like the values
    at_or_above = torch.bincount(high, minlength=1 << 15).flip(0).cumsum(0).flip(0)  # [b]: count >= bucket b
    bucket = int((at_or_above >= k).sum()) - 1  # the highest bucket with at least k scores at or above it
    above = int(at_or_above[bucket + 1]) if bucket + 1 < len(at_or_above) else 0
    inside = scores[high == bucket]
    return inside.kthvalue(len(inside) - (k - above) + 1).values


class CriticalGradientEdit:
    """The callable a method installs as `Network.grad_edit`; counts kept scalars over an epoch.

    `epoch_stats()` returns `kept_fraction` (kept scalars / ranked scalars since the last call, about
    1 - eps, more on ties) with one host sync per epoch, and starts the next count.
    """

    def __init__(self, eps: float) -> None:
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"the critical-parameter edit needs a noise rate eps in [0, 1], got {eps}")
        self.eps = eps
        self._kept: torch.Tensor | int = 0
        self._ranked = 0

    def __call__(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        params = critical_parameters(model)
        ranked = sum(p.numel() for p in params)
        kept = critical_gradient_edit(params, self.eps)
        self._kept = self._kept + kept
        self._ranked += ranked
        return {"kept_fraction": kept / max(ranked, 1)}

    def epoch_stats(self) -> dict[str, float]:
        fraction = float(self._kept) / self._ranked if self._ranked else float("nan")
        self._kept, self._ranked = 0, 0
        return {"kept_fraction": fraction}
