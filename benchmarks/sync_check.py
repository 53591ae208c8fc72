"""Every host synchronisation of a method's training epochs, found on a GPU and checked against the allowed ones
(ALLOWED_SYNCS, each with its reason); benchmarks/gpu_acceptance.py runs it, docs/gpus.md 4 explains it.

A sync makes the CPU wait for the GPU, so nothing is queued while the GPU works: per step, that is speed lost.
CUDA reports each one as a warning under `torch.cuda.set_sync_debug_mode("warn")`; here each is recorded with its
Python stack and named by its innermost frame in the library (baselines/, sanm_plugin/), which is what the
allowed list names. "warn", not "error": "error" stops at the first sync, before the allowed per-epoch ones could
be told from the rest.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
PROJECT = (ROOT / "baselines", ROOT / "sanm_plugin")
SYNC_WARNING = "called a synchronizing CUDA operation"  # c10/cuda: warn_or_error_on_sync


@dataclass(frozen=True)
class Allowed:
    why: str
    precisions: tuple[str, ...] = ("32", "bf16", "fp16")  # where it may occur


# (file, function) -> why it stays. Each is read once per epoch (per network), except the fp16 loss scaler's.
ALLOWED_SYNCS: dict[tuple[str, str], Allowed] = {
    ("baselines/common/metrics.py", "EpochMeans.means"):
        Allowed("the epoch's mean losses, summed on the device and read once at its end"),
    ("baselines/common/metrics.py", "binary_auc"):
        Allowed("the GMM's AUC against the true labels (a diagnostic), computed on the host once per epoch"),
    ("sanm_plugin/quality.py", "normalize_losses"):
        Allowed("the per-sample losses copied to the host once per epoch for the GMM (scikit-learn)"),
    ("sanm_plugin/quality.py", "gmm_clean_probability"):
        Allowed("the GMM's clean probabilities (G) copied back to the device, once per epoch"),
    ("baselines/common/sanm_hook.py", "SANMHook.epoch_stats"):
        Allowed("the mean mask ratios, summed on the device and read once per epoch"),
    ("baselines/dividemix.py", "DivideMix.divide"):
        Allowed("the co-divide's selection counts, read in one go per network and epoch"),
    ("baselines/dividemix.py", "DivideMix._train"):
        Allowed("the labeled / unlabeled split (nonzero: its size sets the epoch's steps), once per network and epoch"),
    ("baselines/dividemix.py", "DivideMix._cycle"):
        Allowed("the unlabeled pool copied to the host once per epoch, where its reshuffles are drawn"),
    ("baselines/common/engine.py", "RunContext.shuffled"):
        Allowed("a pool of indices held on the device (DivideMix's labeled set) copied to the host once per pass, "
                "where the order is drawn (the CPU generator: the same order on every device)"),
    ("baselines/coteaching.py", "CoTeaching._selection_stats"):
        Allowed("the selection counts, summed on the device and read once per epoch"),
    ("baselines/common/critical.py", "CriticalGradientEdit.epoch_stats"):
        Allowed("CDR's kept fraction, summed on the device and read once per epoch"),
    ("baselines/elr_plus.py", "ELRPlus._target_accuracy"):
        Allowed("the ELR targets' accuracy against the true labels (a diagnostic), once per network and epoch"),
    ("baselines/common/engine.py", "Network.step"):
        Allowed("fp16 only, per step: torch.amp.GradScaler.step reads the overflow flag to skip an update whose "
                "gradients overflowed (bf16 needs no scaler)", precisions=("fp16",)),
}


@dataclass(frozen=True)
class Site:
    file: str  # relative to the repository, or the outermost file when no frame is the project's
    function: str
    code: str

    @property
    def key(self) -> tuple[str, str]:
        return self.file, self.function


def site_of(frame: Any) -> Site:
    """The innermost frame of `frame`'s stack whose code is this repository's library (baselines/, sanm_plugin/)."""
    outermost = None
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if any(path.is_relative_to(part) for part in PROJECT):
            return _site(frame, path)
        outermost, frame = frame, frame.f_back
    return _site(outermost, Path(outermost.f_code.co_filename)) if outermost else Site("?", "?", "")


def _site(frame: Any, path: Path) -> Site:
    import linecache

    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    function = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)  # co_qualname: Python 3.11+
    return Site(name, function, linecache.getline(str(path), frame.f_lineno).strip())


class SyncRecorder:
    """A context in which every host sync CUDA reports is recorded as a Site (`sites`, with counts). Off CUDA the
    debug mode is not switched on (`active` is False), so nothing reports a sync (a warning with CUDA's message is
    recorded all the same: how the tests drive it)."""

    def __init__(self, device: torch.device) -> None:
        self.active = device.type == "cuda"
        self.sites: Counter[Site] = Counter()
        self._catch: Optional[warnings.catch_warnings] = None

    def __enter__(self) -> "SyncRecorder":
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.filterwarnings("always", message=SYNC_WARNING)
        shown = warnings.showwarning

        def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
            if SYNC_WARNING in str(message):
                self.sites[site_of(sys._getframe(1))] += 1
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        if self.active:
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            torch.cuda.set_sync_debug_mode("default")
        self._catch.__exit__(*exc)


@dataclass
class SyncReport:
    """One checked run: its allowed and unlisted syncs with their counts, or why it was not checked."""

    label: str
    precision: str
    allowed: dict[Site, int] = field(default_factory=dict)
    unlisted: dict[Site, int] = field(default_factory=dict)
    skipped: str = ""
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.unlisted and not self.error

    def status(self) -> str:
        if self.error:
            return f"FAILED: {self.error}"
        if self.skipped:
            return f"skipped: {self.skipped}"
        if self.unlisted:
            return f"FAILED: {sum(self.unlisted.values())} unlisted sync(s)"
        return "ok"


def classify(sites: Counter, precision: str) -> tuple[dict[Site, int], dict[Site, int]]:
    """(allowed, unlisted) sites of a run under `precision`."""
    allowed, unlisted = {}, {}
    for site, count in sites.items():
        rule = ALLOWED_SYNCS.get(site.key)
        (allowed if rule is not None and precision in rule.precisions else unlisted)[site] = count
    return allowed, unlisted


def check_method(label: str, build: Callable[[], Any]) -> SyncReport:
    """Build a method (`build()`), train an epoch of each phase to warm up, then the same epochs again recorded.
    The recorded epochs are `method.train_epoch` under the run's autocast: what the engine runs each epoch."""
    method = build()
    ctx = method.ctx
    report = SyncReport(label, ctx.acceleration.precision)
    phases = sorted({0, ctx.warmup_epochs})  # the warm-up (when there is one) and the main phase
    for epoch in phases:
        train_epoch(method, epoch)
    recorder = SyncRecorder(ctx.device)
    with recorder:
        stats = [train_epoch(method, epoch) for epoch in phases]
    bad = {key: value for epoch in stats for key, value in epoch.items()
           if key.startswith("loss") and not _finite(value)}
    if bad:
        report.error = f"non-finite losses {bad}"
    if not recorder.active:
        report.skipped = f"{ctx.device.type.upper()}: the sync debug mode is CUDA's; the epochs ran, finite losses"
        return report
    report.allowed, report.unlisted = classify(recorder.sites, report.precision)
    return report


def train_epoch(method: Any, epoch: int) -> dict:
    """One epoch exactly as the engine trains it (engine._train): the method's train_epoch under the run's autocast."""
    with method.ctx.acceleration.autocast():
        return method.train_epoch(epoch)


def _finite(value: Any) -> bool:
    try:
        return bool(torch.isfinite(torch.as_tensor(float(value))))
    except (TypeError, ValueError):
        return True  # not a number: nothing to check


def sites_table(reports: list[SyncReport]) -> str:
    """Every sync seen, one row per (site, allowed or not), with its count in each run and, if allowed, the reason."""
    rows: dict[tuple[Site, bool], list[str]] = {}
    for report in reports:
        for site, count in [*report.allowed.items(), *report.unlisted.items()]:
            rows.setdefault((site, site in report.allowed), []).append(f"{report.label} {report.precision}: {count}")
    lines = ["| where | code | allowed | why | seen (run: count) |", "|---|---|---|---|---|"]
    for (site, ok), seen in sorted(rows.items(), key=lambda item: (item[0][1], item[0][0].file, item[0][0].function)):
        why = ALLOWED_SYNCS[site.key].why if ok else "not listed: remove it, or add it to ALLOWED_SYNCS with its reason"
        code = site.code.replace("|", "\\|")
        lines.append(f"| {site.file}: {site.function} | `{code}` | {'yes' if ok else 'NO'} | {why} | "
                     f"{'; '.join(seen)} |")
    return "\n".join(lines)
