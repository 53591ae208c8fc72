"""Atomic checkpoints that ``torch.load(weights_only=True)`` accepts, RNG states included.

Resuming (docs/runs.md section 4) must end in the same state as an uninterrupted run, so a checkpoint carries every
random stream a run draws from: Python's ``random``, NumPy's global generator, torch's CPU generator and each CUDA
device's. They are stored as tensors, ints, floats and tuples, the only things the weights-only unpickler loads, so
no checkpoint ever needs the unsafe ``weights_only=False``.

Writes are atomic (files.atomic_write): a crash at any point leaves either the old checkpoint or the new one.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .files import atomic_write

__all__ = ["capture_rng_state", "load_checkpoint", "restore_rng_state", "save_checkpoint"]


def capture_rng_state() -> dict[str, Any]:
    """Snapshots every global RNG a run uses, in types the weights-only unpickler accepts."""
    py_version, py_internal, py_gauss = random.getstate()
    np_kind, np_key, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": (py_version, tuple(py_internal), py_gauss),
        # The MT19937 key is uint32; int64 holds it exactly and is a dtype every torch version serialises.
        "numpy": (np_kind, torch.from_numpy(np_key.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Puts back what ``capture_rng_state`` took.

    CUDA states are restored for the devices present; a checkpoint from a GPU machine resumes on a CPU-only one,
    where no CUDA stream exists to restore.
    """
    py_version, py_internal, py_gauss = state["python"]
    random.setstate((int(py_version), tuple(int(v) for v in py_internal), py_gauss))
    np_kind, np_key, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_kind, np_key.numpy().astype(np.uint32), int(np_pos), int(np_has_gauss), float(np_gauss)))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Writes ``state`` to ``path`` atomically, creating parent directories."""
    with atomic_write(path) as handle:
        torch.save(state, handle)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Loads a checkpoint with ``weights_only=True``.

    Raises:
        FileNotFoundError: No file at ``path``.
        RuntimeError: The file exists but cannot be read back (truncated, corrupt, not a checkpoint); the message
            says how to get past it, since a resumed run cannot continue from it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError... depending on the damage
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0][:200] if lines else 'no message'}"
        raise RuntimeError(f"checkpoint {path} is unreadable ({reason}); delete it or run with overwrite=true") from exc
