"""Datasets too large for memory, or of mixed image sizes, streamed from their files (Clothing1M, WebVision).

The in-memory path (data.py) holds each split as one `uint8 [N, C, H, W]` array and augments whole batches on
the device. The streamed path keeps that contract: a split is an `ImageFiles` (paths, decoded on demand to one
square size, `Resize(S)` then `CenterCrop(S)` as torchvision does it) and, in a run, a `StreamedImages`, whose
`images[idx]` returns the same `uint8 [B, C, S, S]` batch on the device that indexing the array would. The
decoding runs ahead in DataLoader worker processes: the engine tells it the index batches of each pass
(`plan`) as soon as it has drawn them, so a batch is usually decoded before it is asked for.

The crop to the network's input (RandomCrop 224 and flip for training, CenterCrop 224 for evaluation) is then
the device-side augmentation of `augment=imagenet` (augment.py), as for every other dataset. Upstream
(DivideMix's Clothing1M loader) crops from the whole `Resize(256)` image; here the crop is drawn from its
central 256 x 256 square, which differs only for images far from square.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from PIL import Image

__all__ = ["ImageFiles", "StreamedImages", "decode_square"]

Index = Union[np.ndarray, Sequence[int], slice]


def decode_square(path: Union[str, Path], size: int) -> np.ndarray:
    """`uint8 [3, size, size]`: the image's shorter side resized to `size` (bilinear, antialiased, as
    torchvision's `Resize(size)`), then its central square; one-line error naming an unreadable file."""
    from torchvision.transforms.v2 import functional as TF  # lazy: only decoding needs it

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        from .data import DatasetError

        raise DatasetError(f"cannot decode {path} ({type(err).__name__}: {err}); remove it from the file list "
                           "or replace the file") from err
    square = TF.center_crop(TF.resize(rgb, [size]), [size, size])
    return np.asarray(TF.pil_to_tensor(square))


class ImageFiles:
    """One split's image files, decoded on demand: the streamed stand-in for a `uint8 [N, 3, S, S]` array.

    Indexing with an index array or a slice gives another `ImageFiles` (a subset, as `train_subset` takes);
    `read(i)` decodes one image. Paths are held as bytes relative to `root`, about 40 bytes an entry, so a
    1M-entry list costs tens of MB, not the gigabytes of a Python list of `Path`s.

    Args:
        root: The folder the paths are relative to.
        paths: Relative paths (str, bytes or Path), one per image.
        size: The square size images are decoded to (256 for the 224-pixel crops of Clothing1M / WebVision).
    """

    dtype = np.uint8

    def __init__(self, root: Union[str, Path], paths: Union[Sequence[Any], np.ndarray], size: int) -> None:
        if isinstance(size, bool) or int(size) != size or size < 8:
            raise ValueError(f"the decode size must be an integer >= 8 pixels, got {size!r}")
        self.root = Path(root)
        self.size = int(size)
        if isinstance(paths, np.ndarray) and paths.dtype.kind == "S":
            self.paths = paths
        else:
            self.paths = np.array([p if isinstance(p, bytes) else str(p).encode() for p in paths], dtype=bytes)
        if self.paths.ndim != 1:
            raise ValueError(f"paths must be one-dimensional, got shape {self.paths.shape}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), 3, self.size, self.size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: Index) -> ImageFiles:
        picked = self.paths[index]
        if picked.ndim != 1:
            raise TypeError("index ImageFiles with an index array or a slice; read(i) decodes one image")
        return ImageFiles(self.root, picked, self.size)

    def path(self, i: int) -> Path:
        return self.root / self.paths[i].decode()

    def read(self, i: int) -> np.ndarray:
        """Image `i` decoded, `uint8 [3, S, S]`."""
        return decode_square(self.path(int(i)), self.size)

    def read_batch(self, index: Iterable[int]) -> np.ndarray:
        """`uint8 [B, 3, S, S]` for `index`, decoded in this process."""
        return np.stack([self.read(i) for i in index])

    def fingerprint(self) -> str:
        """sha256 of the relative paths and the decode size: names this split wherever its root lies (the files'
        contents are not read: hashing a million images would take longer than an epoch)."""
        h = hashlib.sha256(f"files|size={self.size}|n={len(self.paths)}\n".encode())
        h.update(b"\n".join(self.paths.tolist()))
        return h.hexdigest()

    def missing(self, limit: int = 1) -> list[Path]:
        """Up to `limit` listed files that do not exist (a first check before a long run)."""
        out = []
        for i in range(len(self.paths)):
            if not self.path(i).is_file():
                out.append(self.path(i))
                if len(out) >= limit:
                    break
        return out


class _Decode:
    """The DataLoader's dataset: image i as a `uint8 [3, S, S]` tensor (in a worker process)."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Any:
        import torch

        return torch.from_numpy(self.files.read(i))


class _Plan:
    """A batch sampler whose batches are set before each pass: the index batches the engine drew."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


# Ctrl-C reaches every process of the terminal's group and a job's SIGTERM every process of the job; signal
# masks are POSIX (not Windows, which has no fork either: there nothing is held)
_HELD_WHILE_FORKING = {signal.SIGINT, signal.SIGTERM}
_CAN_HOLD = hasattr(signal, "pthread_sigmask")


def _leave_on_sigterm(worker_id: int) -> None:
    """In a decode worker: SIGTERM ends it quietly, from whoever it comes. torch does so only for its parent's;
    from anyone else (SLURM signals every process of a job) the worker dies of the signal, and the run's process
    then stops with a DataLoader error instead of as Ctrl-C does with its own SIGTERM (interrupts.py). A Ctrl-C or
    SIGTERM that came since the fork was held (`_signals_held_while_forking`) and arrives now: a SIGTERM to this
    handler, a Ctrl-C as the KeyboardInterrupt that torch's worker loop, around this function, takes as its end."""
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    if _CAN_HOLD:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_WHILE_FORKING)


@contextlib.contextmanager
def _signals_held_while_forking() -> Iterator[None]:
    """Workers are forked with the run's own handlers, which raise `Terminated` or KeyboardInterrupt
    (interrupts.py); one that reached a worker before its own code took over would raise there, outside torch's
    worker loop, in a copy of the run (which would then stop as the run does: a second "interrupted" line). The
    signals are blocked across the fork: a worker inherits the block and lifts it in `_leave_on_sigterm`, and the
    run receives a signal of that moment when the block ends here."""
    if not _CAN_HOLD:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_WHILE_FORKING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _Stream:
    """One ordered stream of planned batches (an epoch's training batches, DivideMix's unlabeled cycle, an
    evaluation pass) on a DataLoader of its own with persistent workers."""

    def __init__(self, files: ImageFiles, workers: int, pin_memory: bool) -> None:
        from torch.utils.data import DataLoader

        self.plan = _Plan()
        self.loader = DataLoader(_Decode(files), batch_sampler=self.plan, num_workers=workers,
                                 pin_memory=pin_memory, persistent_workers=workers > 0,
                                 prefetch_factor=4 if workers > 0 else None, worker_init_fn=_leave_on_sigterm)
        self.expected: deque[tuple[int, ...]] = deque()
        self.iterator: Optional[Iterator[Any]] = None

    def start(self, batches: list[list[int]]) -> None:
        self.plan.batches = batches
        self.expected = deque(tuple(b) for b in batches)
        with _signals_held_while_forking():  # the first call forks the workers; later ones reset them
            self.iterator = iter(self.loader)

    def pull_until(self, key: tuple[int, ...], lookahead: int) -> Optional[list[tuple[tuple[int, ...], Any]]]:
        """The decoded batches up to and including `key` when `key` is among the next `lookahead` planned ones,
        else None (nothing is consumed)."""
        position = next((k for k, planned in zip(range(lookahead), self.expected) if planned == key), None)
        if position is None or self.iterator is None:
            return None
        out = []
        for _ in range(position + 1):
            out.append((self.expected.popleft(), next(self.iterator)))
        return out


class StreamedImages:
    """A split's images on the device, decoded from their files ahead of use: `images[idx]` is the
    `uint8 [B, 3, S, S]` batch of samples `idx` (a 1-D index tensor), like indexing an array on the device.

    Args:
        files: The split's files.
        device: Where batches are returned.
        workers: DataLoader worker processes per stream (0: decode in this process, as they are asked for).
        pin_memory: Pin decoded batches for an asynchronous copy (default: when `device` is CUDA).
        cached_batches: Decoded batches kept for repeated lookups (DivideMix reads each batch twice, and the
            union of its labeled and unlabeled batches once more).
    """

    def __init__(self, files: ImageFiles, device: Any, workers: int = 2, pin_memory: Optional[bool] = None,
                 cached_batches: int = 8) -> None:
        import torch

        if isinstance(workers, bool) or int(workers) != workers or workers < 0:
            raise ValueError(f"dataset.workers must be an integer >= 0, got {workers!r}")
        self.files = files
        self.device = torch.device(device)
        self.workers = int(workers)
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else bool(pin_memory)
        self.cached_batches = cached_batches
        self.dtype = torch.uint8
        self._streams: dict[str, _Stream] = {}
        self._recent: OrderedDict[tuple[int, ...], Any] = OrderedDict()  # key -> uint8 batch on the host

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.files.shape

    def __len__(self) -> int:
        return len(self.files)

    def plan(self, batches: Sequence[Any], stream: str = "train") -> None:
        """Start decoding `batches` (index tensors or lists, in the order they will be asked for) in stream
        `stream`'s workers; a stream's earlier plan is dropped."""
        if stream not in self._streams:
            self._streams[stream] = _Stream(self.files, self.workers, self.pin_memory)
        self._streams[stream].start([b.tolist() if hasattr(b, "tolist") else list(b) for b in batches])

    def __getitem__(self, idx: Any) -> Any:
        import torch

        key = tuple(idx.tolist() if hasattr(idx, "tolist") else idx)
        batch = self._recent.get(key)
        if batch is None:
            batch = self._from_streams(key)
        if batch is None:
            batch = self._from_rows(key)
        if batch is None:  # not planned: decoded here, synchronously
            batch = torch.from_numpy(self.files.read_batch(key)) if key else torch.empty(
                (0, *self.shape[1:]), dtype=torch.uint8)
            self._remember(key, batch)
        return batch.to(self.device, non_blocking=self.pin_memory)

    def _from_streams(self, key: tuple[int, ...]) -> Any:
        for stream in self._streams.values():
            pulled = stream.pull_until(key, lookahead=4)
            if pulled is not None:
                for planned, batch in pulled:
                    self._remember(planned, batch)
                return pulled[-1][1]
        return None

    def _from_rows(self, key: tuple[int, ...]) -> Any:
        """A batch assembled from rows of recently decoded batches (DivideMix's [labeled; unlabeled] union)."""
        import torch

        if not key:
            return None
        where: dict[int, Any] = {}
        for planned, batch in self._recent.items():
            for row, i in enumerate(planned):
                where.setdefault(i, (batch, row))
        if not all(i in where for i in key):
            return None
        return torch.stack([where[i][0][where[i][1]] for i in key])

    def _remember(self, key: tuple[int, ...], batch: Any) -> None:
        self._recent[key] = batch
        self._recent.move_to_end(key)
        while len(self._recent) > self.cached_batches:
            self._recent.popitem(last=False)
