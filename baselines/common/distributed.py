"""One run over N processes: `torchrun --nproc_per_node=N -m baselines.<method> ...`.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK. Every rank builds the same run (same seed, same noisy labels,
same initial weights, which DistributedDataParallel also broadcasts from rank 0), draws the same global order of
each epoch's samples (rank 0's, broadcast), and trains on its own disjoint slice of every global batch, so the
global batch is trainer.batch_size as in one process. Evaluation passes are split over the ranks and gathered,
so every rank holds the same per-sample losses, the same G and the same selection. Rank 0 alone writes.

Without torchrun `World()` is one process and every function here returns its input unchanged: a 1-process run
takes exactly the code path it always took.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env(environ: Optional[dict] = None) -> World:
    """The process group torchrun describes in the environment (one process when it says nothing)."""
    env = os.environ if environ is None else environ
    try:
        size, rank = int(env.get("WORLD_SIZE", 1)), int(env.get("RANK", 0))
        local = int(env.get("LOCAL_RANK", rank))
    except ValueError as error:
        raise ValueError(f"WORLD_SIZE / RANK / LOCAL_RANK must be integers (torchrun sets them): {error}") from None
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"RANK={rank} is not in a world of WORLD_SIZE={size}")
    return World(size, rank, local)


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU); returns this rank's device (cuda:LOCAL_RANK)."""
    if not world.active:
        return device
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={world.local_rank} but this machine has {torch.cuda.device_count()} CUDA "
                             "devices; start at most that many processes per node")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # generous: rank 0 alone decodes the data and writes the caches while the others wait at a barrier
        dist.init_process_group(backend, timeout=timedelta(minutes=60), device_id=device if backend == "nccl" else None)
    return device


def stop(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def broadcast(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Rank 0's `tensor` on every rank (in place; returned for chaining)."""
    if world.active:
        dist.broadcast(tensor, src=0)
    return tensor


def shard(chunk: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's equal slice of a global batch of indices (the last `len % size` rows are left out, so every
    rank steps the same number of times with the same number of rows)."""
    if not world.active:
        return chunk
    per_rank = len(chunk) // world.size
    return chunk[world.rank * per_rank:(world.rank + 1) * per_rank]


def split_range(n: int, world: World) -> tuple[int, int]:
    """[start, end) of this rank's contiguous part of n rows, for evaluation passes."""
    per_rank = -(-n // world.size)
    return min(world.rank * per_rank, n), min((world.rank + 1) * per_rank, n)


def gather_rows(local: torch.Tensor, n: int, world: World) -> torch.Tensor:
    """The [n, ...] concatenation, in rank order, of each rank's `split_range` rows (padded for the collective)."""
    if not world.active:
        return local
    per_rank = -(-n // world.size)
    padded = local.new_zeros((per_rank, *local.shape[1:]))
    padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    return torch.cat(parts)[:n]


def sum_over_ranks(tensor: torch.Tensor, world: World) -> torch.Tensor:
    if world.active:
        dist.all_reduce(tensor)
    return tensor


def mean_over_ranks(stats: dict[str, Any], device: torch.device, world: World) -> dict[str, Any]:
    """Per-epoch float statistics averaged over the ranks, in one collective (identical values stay identical)."""
    if not world.active:
        return stats
    keys = sorted(key for key, value in stats.items() if isinstance(value, float))
    if not keys:
        return stats
    values = torch.tensor([stats[key] for key in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return {**stats, **dict(zip(keys, (values / world.size).tolist()))}


def all_objects(value: Any, world: World) -> list[Any]:
    """Every rank's `value` (small Python objects: RNG states for a checkpoint)."""
    if not world.active:
        return [value]
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, value)
    return gathered


def sync_buffers(module: torch.nn.Module, world: World) -> None:
    """Rank 0's BN running statistics everywhere: each rank's drift with its own slices, so evaluation (and the
    per-sample losses behind G) sees one model on every rank."""
    if world.active:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def sync_batchnorm(module: torch.nn.Module, enabled: bool, world: World, device: torch.device) -> torch.nn.Module:
    """trainer.sync_bn: BatchNorm over the global batch (same parameters and buffers, so checkpoints stay
    interchangeable); a no-op in one process. PyTorch's SyncBatchNorm runs on GPUs only."""
    if not enabled or not world.active:
        return module
    if device.type != "cuda":
        raise ValueError("trainer.sync_bn=true needs CUDA devices (PyTorch's SyncBatchNorm has no CPU kernel); "
                         "drop it on CPU, where each rank normalises its own slice")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap(module: torch.nn.Module, world: World, device: torch.device) -> Any:
    """`module` in DistributedDataParallel (gradients averaged over the ranks in backward), or as it is."""
    if not world.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)  # BN buffers: rank 0's, broadcast at each forward
