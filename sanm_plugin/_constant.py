"""Small constant tensors, built once per device and dtype.

The hooks run a few dozen tensor ops per batch, and at the batch sizes SANM sees each op costs mostly
its dispatch. Building a constant with torch.tensor costs as much as an op, and an op with a Python
number operand pays about as much again to wrap that number as a tensor, so the hot paths use these.
"""

from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=256)
def constant(values: float | tuple, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """torch.tensor(values) on device: a 0-dim tensor for a number, else the nested tuple's shape."""
    return torch.tensor(values, device=device, dtype=dtype)


@lru_cache(maxsize=64)
def half_steps(count: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[count] values k + 1/2 for k = 0 .. count - 1 (the masking fill's slot positions)."""
    return torch.arange(count, device=device, dtype=dtype).add_(0.5)
