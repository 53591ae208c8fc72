"""A run's metric files (docs/runs.md section 3), the AUC of clean-sample scores, and the progress within an epoch.

``metrics.jsonl`` holds one strict-JSON object per epoch and is fsynced line by line, so a killed run loses at most
the epoch in progress; on resume ``truncate_after`` drops the epochs the checkpoint does not cover. The same numbers
go to the run's experiment trackers (trackers.py: TensorBoard, MLflow, W&B), each an optional extra: without them the
JSON files are the whole record.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from baselines.common.files import atomic_write
from baselines.common.trackers import Tracker

__all__ = ["ConsoleLog", "RunRecorder", "binary_auc", "epoch_progress", "read_records", "scalars", "selection_scores",
           "without_truth"]

# diagnostics measured against the true labels (a key may carry a _net1 / _net2 suffix)
TRUTH_DIAGNOSTICS = ("selection_precision", "selection_recall", "gmm_auc", "mask_ratio_noisy", "mask_ratio_clean")


class ConsoleLog:
    """The run's console lines, printed and appended to ``run_dir/run.log`` (kept across resumes), so the
    record of a run on a cluster or in a closed terminal is in its directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def say(self, line: str) -> None:
        print(line, flush=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


class QuietConsole:
    """The console of ranks 1.. of a run over N processes: rank 0 says everything once."""

    def say(self, line: str) -> None:
        pass


def _as_number(value: Any) -> Any:
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)) and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


def scalars(record: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a record (an epoch's, or the summary) for the trackers: Python ints and floats from tensors and
    NumPy scalars, without bools, strings and `epoch` (their step). NaN stays NaN: trackers plot it, JSON has none."""
    values = {}
    for key, value in record.items():
        number = _as_number(value)
        if key != "epoch" and isinstance(number, (int, float)) and not isinstance(number, bool):
            values[key] = number
    return values


def _jsonable(value: Any) -> Any:
    """Python numbers from tensors and NumPy scalars; NaN and inf become None since JSON has neither."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        value = value.tolist() if getattr(value, "ndim", 0) else value.item()
        return _jsonable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_records(metrics_path: str | Path) -> list[dict[str, Any]]:
    """The epoch records of a metrics.jsonl ([] when there is none). A torn last line (the run died mid-write, or
    is writing it now) is ignored, and so is a torn line inside the file (a kill's, in a file appended to by hand
    or by an older version): every reader (plots, reports, benchmarks) sees the epochs around it."""
    path = Path(metrics_path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    # Every complete line ends with "\n", so the piece after the last one is empty unless the write was torn.
    records = []
    for line in lines[:-1]:
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class RunRecorder:
    """Writes a run's metrics.jsonl (one JSON object per epoch), summary.json and status.json, and hands the same
    numbers to the run's experiment trackers.

    Args:
        run_dir: The run directory; created when missing.
        trackers: Started trackers (trackers.open_trackers); `attach` adds more.
    """

    def __init__(self, run_dir: str | Path, trackers: Sequence[Tracker] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.summary_path = self.run_dir / "summary.json"
        self.trackers = list(trackers)
        self._state = "running"  # status.json's state: how the trackers end when the recorder closes

    def attach(self, trackers: Sequence[Tracker], config: dict[str, Any]) -> None:
        """Logs to `trackers` too from now on; they get the run's resolved `config` (resolved.yaml) first."""
        for tracker in trackers:
            tracker.log_config(config)
        self.trackers.extend(trackers)

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Appends one epoch's record and durably flushes it; its numbers also go to the trackers."""
        if not isinstance(record.get("epoch"), (int, np.integer)):
            raise ValueError(f"a metrics record needs an integer 'epoch', got {record.get('epoch')!r}")
        clean = _jsonable(record)
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(clean, allow_nan=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        values = scalars(record)  # from the raw record, not `clean`: NaN stays NaN
        for tracker in self.trackers:
            tracker.log_scalars(values, clean["epoch"])

    def truncate_after(self, epoch: int) -> list[dict[str, Any]]:
        """On resume, keeps only the records of epochs ``<= epoch`` (the epochs completed, counted from 1), rewritten
        atomically, and returns them."""
        kept = [r for r in self.records() if r["epoch"] <= epoch]
        with atomic_write(self.metrics_path, "w") as handle:
            handle.writelines(json.dumps(r, allow_nan=False) + "\n" for r in kept)
        for tracker in self.trackers:
            tracker.truncate_after(epoch)
        return kept

    def records(self) -> list[dict[str, Any]]:
        """Reads metrics.jsonl back (read_records)."""
        return read_records(self.metrics_path)

    def write_status(self, state: str, **info: Any) -> None:
        """status.json: running | finished | interrupted | failed, with the process that wrote it, so a report
        can tell a run in progress from one that stopped (a killed run's status stays `running` with a pid
        that is gone)."""
        status = {"state": state, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), **info}
        with atomic_write(self.run_dir / "status.json", "w") as handle:
            json.dump(_jsonable(status), handle, indent=2)
            handle.write("\n")
        self._state = state

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Writes summary.json atomically, so a reader never sees half of it; its numbers also go to the trackers."""
        with atomic_write(self.summary_path, "w") as handle:
            json.dump(_jsonable(summary), handle, indent=2, allow_nan=False)
            handle.write("\n")
        values = scalars(summary)
        for tracker in self.trackers:
            tracker.log_summary(values)

    def close(self) -> list[str]:
        """Ends every tracker's run with the state status.json last said; returns a line for each tracker that
        could not close, which never hides how the run itself ended."""
        problems = []
        for tracker in self.trackers:
            try:
                tracker.close(self._state)
            except Exception as error:  # noqa: BLE001 - the run's own files are complete; say what went wrong
                reason = " ".join(f"{type(error).__name__}: {error}".split())
                problems.append(f"{tracker.name}: not closed ({reason})")
        self.trackers = []
        return problems

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RankRecords:
    """What ranks 1.. of a run over N processes keep of the records (RunRecorder's interface), to return the
    same summary as rank 0 without writing anything."""

    def __init__(self) -> None:
        self._records: list[dict[str, Any]] = []

    def log_epoch(self, record: dict[str, Any]) -> None:
        self._records.append(record)

    def truncate_after(self, epoch: int) -> list[dict[str, Any]]:
        return self._records

    def records(self) -> list[dict[str, Any]]:
        return self._records

    def write_summary(self, summary: dict[str, Any]) -> None:
        pass

    def write_status(self, state: str, **info: Any) -> None:
        pass

    def close(self) -> list[str]:
        return []


class EpochMeans:
    """Running sums of a step's loss terms on the device; one host sync at the end of the epoch for the means."""

    def __init__(self) -> None:
        self.totals: dict[str, torch.Tensor] = {}
        self.steps = 0

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for key, value in terms.items():
            value = torch.as_tensor(value).detach().float()
            self.totals[key] = self.totals[key] + value if key in self.totals else value
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {key: (value / max(self.steps, 1)).item() for key, value in self.totals.items()}


def selection_scores(picked: float, hits: float, clean: float) -> dict[str, float]:
    """A selection's precision (the share of the `picked` samples whose label is right: `hits`) and recall (the
    share of the `clean` right-labelled samples picked), against the true labels. NaN where undefined (nothing
    picked, no right label seen): 0 would read as a selection that is all wrong. Every selecting method reports
    these two the same way."""
    return {"selection_precision": hits / picked if picked else float("nan"),
            "selection_recall": hits / clean if clean else float("nan")}


def without_truth(stats: dict[str, Any]) -> dict[str, Any]:
    """`stats` less the diagnostics against the true labels: for a dataset whose own labels are the noisy ones
    (Animal-10N, Clothing1M, WebVision) every label counts as right, so they would read 1 or NaN."""
    return {k: v for k, v in stats.items() if not k.startswith(TRUTH_DIAGNOSTICS)}


def binary_auc(scores: Any, positives: Any) -> float:
    """ROC AUC of ``scores`` (higher = more likely positive) against the boolean ``positives``.

    Computed as the Mann-Whitney statistic with tied scores sharing their average rank, which equals sklearn's
    ``roc_auc_score``. NaN, without a warning, when one class is absent: the AUC of clean-sample selection is logged
    every epoch, and with 0 % noise there are no noisy samples to rank.
    """
    scores = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    positives = np.asarray(positives.detach().cpu() if isinstance(positives, torch.Tensor) else positives, dtype=bool)
    scores, positives = scores.reshape(-1), positives.reshape(-1)
    if scores.shape != positives.shape:
        raise ValueError(f"{scores.size} scores but {positives.size} labels")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based rank, averaged over each group of ties
    rank_sum = mean_rank[inverse.reshape(-1)][positives].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def epoch_progress(batches: Sequence[Any], label: str, say: Callable[[str], None], every_s: float) -> Iterator[Any]:
    """The batches of one pass, showing how far it is as they are taken: on a terminal a tqdm bar that disappears
    when done; otherwise (a log file, a cluster job) a line through `say` every `every_s` seconds (0: after each
    batch), e.g. `epoch 3/60 train: 120/704 batches, 41 s`, where a bar's carriage-return redraws would fill the
    log. It only counts batches and reads the host's clock: no device synchronisation inside the step."""
    if _on_a_terminal():
        yield from tqdm(batches, desc=label, leave=False, dynamic_ncols=True)
        return
    start = last = time.monotonic()
    for done, batch in enumerate(batches):
        now = time.monotonic()
        if done and now - last >= every_s:
            say(f"{label}: {done}/{len(batches)} batches, {now - start:.0f} s")
            last = now
        yield batch


def _on_a_terminal() -> bool:
    """Both streams a person would watch: the console lines (stdout) and tqdm's bar (stderr)."""
    return all(stream is not None and stream.isatty() for stream in (sys.stdout, sys.stderr))
