"""The collectives SANM's state needs when training runs in several processes (torch.distributed).

Each process sees only its shard of the data, so the per-sample losses behind label quality G are summed
over the processes before the GMM is fitted, and G is then sent from rank 0 so that every process masks
with the same values. A decoder outside DistributedDataParallel (Lightning's callback adds it after the
model was wrapped) starts from rank 0's weights and has its gradients averaged, as DDP would do.

Without an initialised process group of more than one process every function here does nothing, so a
single-process run takes the same code path.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes in the default group; 1 when torch.distributed is not initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def sum_over_processes_(tensor: torch.Tensor) -> torch.Tensor:
    """In place: the sum of `tensor` over all processes (returned for chaining)."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_from_first_(tensor: torch.Tensor) -> torch.Tensor:
    """In place: rank 0's `tensor` on every process (returned for chaining)."""
    if world_size() > 1:
        dist.broadcast(tensor, src=0)
    return tensor


def broadcast_module_(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every process."""
    if world_size() > 1:
        with torch.no_grad():
            for tensor in (*module.parameters(), *module.buffers()):
                dist.broadcast(tensor.data, src=0)


def average_gradients_(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Each gradient replaced by its mean over the processes (DistributedDataParallel's rule).

    Parameters without a gradient are skipped; every process must skip the same ones (they do when the
    decoder is unused by all, as in a warm-up epoch).
    """
    size = world_size()
    if size == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective, not one per tensor
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(size)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()
