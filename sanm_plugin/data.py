"""IndexedDataset: each sample carries its index, by which label quality G is kept (one G per sample)."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset


class IndexedDataset(Dataset):
    """`dataset[i]` with `i` appended: (x, y) -> (x, y, i); a single value x -> (x, i).

    Any sampler, shuffling or DistributedSampler keeps the pairing, so a batch's indices pick its samples' G.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        item = self.dataset[index]
        return (*item, index) if isinstance(item, (tuple, list)) else (item, index)
