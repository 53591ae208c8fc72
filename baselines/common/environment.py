"""What a run trained on: the software and hardware of each start and resume, kept in ``environment.jsonl``.

A resumed run restores every random stream, so on the same machine it continues draw for draw (docs/runs.md 4.2);
on another processor, GPU, thread count or torch build the same float operations round differently, and the run
goes on as a different draw from there. Two runs are paired (identical until SANM starts) only when they trained
in the same environment. The file says where each part of a run trained, and a resume that changes the
environment says so on the console.
"""

from __future__ import annotations

import json
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["ENVIRONMENT_FILE", "REPRODUCIBILITY_KEYS", "count_environments", "current_environment",
           "environment_changes",
           "read_environments", "record_environment"]

ENVIRONMENT_FILE = "environment.jsonl"
# what changes the floats a run computes; host and time do not (the same hardware elsewhere rounds the same)
REPRODUCIBILITY_KEYS = ("processor", "accelerator", "threads", "python", "torch", "torchvision", "numpy")


def _processor() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _accelerator(device: torch.device) -> str | None:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return None
    return device.type


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def current_environment(device: torch.device) -> dict[str, Any]:
    """The software and hardware this process trains with on `device`."""
    return {
        "processor": _processor(), "accelerator": _accelerator(torch.device(device)),
        "threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
        "torchvision": _version("torchvision"), "numpy": np.__version__, "platform": sys.platform,
        "host": socket.gethostname(),
    }


def read_environments(run_dir: str | Path) -> list[dict[str, Any]]:
    """The environments recorded in `run_dir`, oldest first (none for a run from before the file existed)."""
    path = Path(run_dir) / ENVIRONMENT_FILE
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash: the rest of the record still counts
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def environment_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The reproducibility keys on which two environments differ, each as `key (old -> new)`."""
    return [f"{key} ({before.get(key)} -> {after.get(key)})" for key in REPRODUCIBILITY_KEYS
            if before.get(key) != after.get(key)]


def record_environment(run_dir: str | Path, from_epoch: int, device: torch.device) -> list[str]:
    """Appends this process's environment to `run_dir`'s environment.jsonl as training starts at `from_epoch`
    (counted from 1); returns how it differs from the environment the run last trained in (empty for a new run,
    a resume on the same machine and software, or a run recorded before the file existed).

    A fresh start (`from_epoch` 1) begins the file again: the records of a run it replaces do not describe it.
    """
    path = Path(run_dir) / ENVIRONMENT_FILE
    earlier = read_environments(run_dir) if from_epoch > 1 else []
    now = {"from_epoch": from_epoch, "time": time.time(), **current_environment(device)}
    with open(path, "a" if from_epoch > 1 else "w", encoding="utf-8") as handle:
        handle.write(json.dumps(now) + "\n")
    return environment_changes(earlier[-1], now) if earlier else []


def count_environments(run_dir: str | Path) -> int:
    """How many environments the run in `run_dir` trained in: 1 when it never changed machine or software."""
    distinct: list[dict[str, Any]] = []
    for entry in read_environments(run_dir):
        if all(environment_changes(seen, entry) for seen in distinct):
            distinct.append(entry)
    return len(distinct)
