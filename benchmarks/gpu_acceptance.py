"""Whether this library trains correctly on a GPU machine, and how fast, in one command: Markdown tables, and exit
status 1 when any check fails (docs/gpus.md 4 says what each part runs and how it is judged).

  cells     every method x (no SANM, +sanm=on, +sanm=official, and +recipe=official where a method has one) x
            trainer.precision 32 / bf16 / fp16, plus bf16 with channels_last and compile: a few steps of
            +experiment=smoke, each a process of `python -m baselines.<method>`; finished, with finite losses
  sync      each method's epochs under CUDA's sync debug mode (benchmarks/sync_check.py): every host
            synchronisation is on the allowed list, with its reason
  torchrun  each method that runs over several processes, over every visible GPU: one run directory
  timing    DivideMix and SANM(DivideMix) (+sanm=on; +sanm=official +recipe=official) epochs at width 64, batch 64,
            per precision with compile off and on (benchmarks/epoch_time.py): views, compute, peak GPU memory,
            the projected 300-epoch time

    python benchmarks/gpu_acceptance.py --output gpu.md          # a GPU machine: everything
    python benchmarks/gpu_acceptance.py --device cpu --quick     # the test suite's check that it runs
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Callable, Optional

import torch

import epoch_time
import sync_check
from baselines.common.engine import resolve_device
from baselines.registry import BASELINES, METHODS

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("cells", "sync", "torchrun", "timing")
PRECISIONS = ("32", "bf16", "fp16")
TIMED = ("dividemix", "sanm_dividemix_on", "sanm_dividemix_official_recipe")  # epoch_time.VARIANTS
SYNC_IMAGES = 256  # the sync check's epochs: 4 steps of 64, so a per-step sync shows as 4 per epoch or more
QUICK_SYNC_IMAGES = 128


@dataclasses.dataclass(frozen=True)
class Cell:
    """One configuration of one method, as command-line overrides."""

    method: str
    sanm: str = "off"  # off | on | official
    recipe: str = "paper"  # paper | official
    precision: str = "32"
    channels_last: bool = False
    compile: str = "false"  # false | true (inductor) | eager

    def overrides(self) -> list[str]:
        sanm = [] if self.sanm == "off" else [f"+sanm={self.sanm}"]
        recipe = [] if self.recipe == "paper" else [f"+recipe={self.recipe}"]
        return [*sanm, *recipe, f"trainer.precision={self.precision}",
                f"trainer.channels_last={str(self.channels_last).lower()}", f"trainer.compile={self.compile}"]

    @property
    def label(self) -> str:
        """The method and its SANM / recipe groups, as a command line gives them."""
        return " ".join([self.method, *(o for o in self.overrides() if o.startswith("+"))])

    @property
    def name(self) -> str:
        return "-".join([self.method, self.sanm, self.recipe, self.precision, "cl" if self.channels_last else "",
                         self.compile]).replace("--", "-")


def sanm_variants(method: str) -> list[tuple[str, str]]:
    """(sanm, recipe) pairs a method is checked with: off, on, official, and official + recipe where it has one."""
    variants = [("off", "paper"), ("on", "paper"), ("official", "paper")]
    if any(f.name == "recipe" for f in dataclasses.fields(METHODS[method].config)):
        variants.append(("official", "official"))
    return variants


def full_cells() -> list[Cell]:
    cells = []
    for method in BASELINES:
        for sanm, recipe in sanm_variants(method):
            cells += [Cell(method, sanm, recipe, precision) for precision in PRECISIONS]
            cells.append(Cell(method, sanm, recipe, "bf16", channels_last=True, compile="true"))
    return cells


# The quick check keeps this script from rotting, at a CPU cost the suite can afford: one cell, the one that takes
# most of the cell machinery: C2D in the official pipeline (its SimCLR pre-training is a run inside its run
# directory) with channels_last. SANM(CE) runs in the quick sync check and torchrun sections. On CPU, half precision
# runs about 8x slower than fp32, the inductor backend compiles for minutes and even the eager backend's tracing
# triples a cell's time; the suite runs each of these options on SANM(CE) elsewhere
# (tests/baselines/test_acceleration.py), the full run here under every method.
QUICK_CELLS = [Cell("c2d", "official", "official", channels_last=True)]


def common_overrides(device: torch.device) -> list[str]:
    """What every cell, sync check and torchrun run shares: the smoke preset (width 8) on `device`, quiet. (Not
    narrower: at width 4 a channels_last run crashes on CPU in torch 2.14, inside the backward of the 1x1 stride-2
    shortcut convolution from 4 to 8 channels.)"""
    return ["+experiment=smoke", "noise=sym_0.5", f"device={device.type}", "progress=false", "tensorboard=false"]


# ---------------------------------------------------------------------------------------------- cells
@dataclasses.dataclass
class Outcome:
    status: str  # ok | FAILED: ... | skipped: ...
    loss: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status.startswith("FAILED")


def run_process(command: list[str], root: Path, timeout: float, env: dict) -> Outcome:
    """Run `command` (a training run given `output_root=<root>`: Hydra's run directory, and its .hydra, under
    `root`, as for a user) and judge it by what the run wrote."""
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(f"FAILED: no result after {timeout:.0f} s", seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return Outcome(f"FAILED: exit {done.returncode}: {_one_line(lines[-1] if lines else '')}", seconds=seconds)
    return Outcome(*judge_run(root), seconds=seconds)


def judge_run(root: Path) -> tuple[str, str]:
    """(status, loss) of a finished run: FAILED when a run under `root` (C2D's SimCLR pre-training, a run inside its
    run directory, included) is not finished or logged a non-finite loss; the loss is the last epoch's total (or
    first) loss of the outermost run."""
    runs = sorted(p.parent for p in root.rglob("status.json"))
    if not runs:
        return f"FAILED: no run in {root}", ""
    for run in runs:
        state = json.loads((run / "status.json").read_text()).get("state")
        if state != "finished":
            return f"FAILED: {run.name} is {state}", ""
        for line in (run / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            bad = {k: v for k, v in record.items() if k.startswith("loss") and not math.isfinite(v)}
            if bad:
                return f"FAILED: epoch {record['epoch']}: non-finite {', '.join(bad)}", ""
    main_run = min(runs, key=lambda run: len(run.parts))  # C2D's pre-training is a run inside its own
    last = json.loads((main_run / "metrics.jsonl").read_text().splitlines()[-1])
    losses = {k: v for k, v in last.items() if k.startswith("loss")}
    key = "loss/total" if "loss/total" in losses else next(iter(losses), "")
    return "ok", f"{key} {losses[key]:.3f}" if key else ""


def run_cells(cells: list[Cell], device: torch.device, args: argparse.Namespace, workdir: Path) -> list[Outcome]:
    env = _child_env(args.jobs, device)

    def one(cell: Cell) -> Outcome:
        root = workdir / "cells" / cell.name
        command = [sys.executable, "-m", f"baselines.{cell.method}", *common_overrides(device),
                   *cell.overrides(), f"output_root={root}"]
        outcome = run_process(command, root, args.timeout, env)
        _progress(f"cell {cell.name}: {outcome.status} ({outcome.seconds:.0f} s)")
        return outcome

    return _in_parallel(one, cells, args.jobs)


def cells_table(cells: list[Cell], outcomes: list[Outcome]) -> str:
    lines = ["| method | sanm | recipe | precision | channels_last | compile | status | loss | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c, o in zip(cells, outcomes):
        lines.append(f"| {c.method} | {c.sanm} | {c.recipe} | {c.precision} | {str(c.channels_last).lower()} | "
                     f"{c.compile} | {o.status} | {o.loss} | {o.seconds:.0f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- sync
def sync_runs(quick: bool) -> list[tuple[str, Cell]]:
    """(label, cell) of each checked run: bf16 for every method and SANM variant and for the SimCLR pre-training,
    fp16 (its loss scaler) with +sanm=on; quick: one SANM(CE) run."""
    if quick:
        return [(Cell("ce", "on").label, Cell("ce", "on"))]
    runs = []
    for method in BASELINES:
        for sanm, recipe in sanm_variants(method):
            runs.append(Cell(method, sanm, recipe, "bf16"))
        runs.append(Cell(method, "on", precision="fp16"))
    runs += [Cell(name, precision=p) for name in METHODS if name not in BASELINES for p in ("bf16", "fp16")]
    return [(cell.label, cell) for cell in runs]


def run_sync(device: torch.device, args: argparse.Namespace, workdir: Path) -> list[sync_check.SyncReport]:
    reports = []
    log = workdir / "sync.log"
    for label, cell in sync_runs(args.quick):
        images = QUICK_SYNC_IMAGES if args.quick else SYNC_IMAGES
        overrides = [*common_overrides(device), f"dataset.train_subset={images}", *cell.overrides()]
        run_dir = workdir / "sync" / cell.name
        try:
            with open(log, "a") as out, contextlib.redirect_stdout(out):  # the runs' console lines
                report = sync_check.check_method(
                    label, lambda: epoch_time.build_method(cell.method, overrides, run_dir))
        except Exception as error:  # noqa: BLE001 - one run's failure is a row of the report, not its end
            report = sync_check.SyncReport(label, cell.precision, error=_one_line(f"{type(error).__name__}: {error}"))
        _progress(f"sync {label} {cell.precision}: {report.status()}")
        reports.append(report)
    return reports


def sync_tables(reports: list[sync_check.SyncReport]) -> str:
    lines = ["| run | precision | status | allowed syncs (count) | unlisted syncs (count) |", "|---|---|---|---|---|"]
    for r in reports:
        allowed = ", ".join(f"{s.function} ({n})" for s, n in r.allowed.items()) or "-"
        unlisted = ", ".join(f"{s.file}: {s.function} ({n})" for s, n in r.unlisted.items()) or "-"
        lines.append(f"| {r.label} | {r.precision} | {r.status()} | {allowed} | {unlisted} |")
    if any(r.allowed or r.unlisted for r in reports):
        lines += ["", sync_check.sites_table(reports)]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- torchrun
def torchrun_methods(quick: bool) -> list[str]:
    return ["ce"] if quick else [name for name, cls in BASELINES.items() if cls.distributed]


def run_torchrun(device: torch.device, args: argparse.Namespace, workdir: Path) -> tuple[int, list[str], list[Outcome]]:
    """(processes, methods, outcomes): each method under torchrun over every visible GPU (2 gloo processes on CPU),
    +sanm=on, its output root checked to hold one run directory. C2D starts from a 1-process SimCLR encoder."""
    procs = torch.cuda.device_count() if device.type == "cuda" else 2
    batch = 64 if 64 % procs == 0 else 16 * procs  # the global batch splits evenly over the ranks
    sizes = [f"trainer.batch_size={batch}", f"trainer.eval_batch_size={64 * procs}",
             f"dataset.train_subset={max(128, 2 * batch)}"]
    common = [*common_overrides(device), *sizes]
    env = _child_env(args.jobs, device)
    methods = torchrun_methods(args.quick)
    simclr = workdir / "torchrun" / "simclr"
    if "c2d" in methods:
        pre = run_process([sys.executable, "-m", "baselines.pretrain_simclr", *common, f"output_root={simclr}"],
                          simclr, args.timeout, env)
        if pre.failed:
            methods = [m for m in methods if m != "c2d"]
            _progress(f"torchrun c2d: left out, its SimCLR encoder failed: {pre.status}")

    def one(method: str) -> Outcome:
        root = workdir / "torchrun" / method
        extra = [f"pretrained={next(simclr.rglob('encoder.pt'))}"] if method == "c2d" else []
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
                   "-m", f"baselines.{method}", *common, "+sanm=on", *extra, f"output_root={root}"]
        outcome = run_process(command, root, args.timeout, env)
        if not outcome.failed:
            runs = sorted(p.parent for p in root.rglob("status.json"))
            log = (runs[0] / "run.log").read_text() if len(runs) == 1 else ""
            if len(runs) != 1:
                outcome.status = f"FAILED: {len(runs)} run directories under {root}"
            elif procs > 1 and f"x {procs} processes" not in log:
                outcome.status = f"FAILED: run.log does not say {procs} processes"
        _progress(f"torchrun {method}: {outcome.status} ({outcome.seconds:.0f} s)")
        return outcome

    return procs, methods, _in_parallel(one, methods, args.jobs)


def torchrun_table(procs: int, methods: list[str], outcomes: list[Outcome]) -> str:
    lines = ["| method | processes | status | loss | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {method} +sanm=on | {procs} | {o.status} | {o.loss} | {o.seconds:.0f} |"
              for method, o in zip(methods, outcomes)]
    if procs == 1:
        lines.append("\nOne GPU visible: torchrun ran one process, so DistributedDataParallel was not exercised "
                     "(it needs two GPUs or more; the suite checks it on CPU with 2 gloo processes).")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- timing
def run_timing(device: torch.device, args: argparse.Namespace, workdir: Path) -> tuple[list[dict], list[str], str]:
    """(timed rows, failures and skips, header line) of the timing grid, through benchmarks/epoch_time.py."""
    cuda = device.type == "cuda"
    jpeg = args.root and (Path(args.root) / "train").is_dir()
    timing = argparse.Namespace(root=args.root, synthetic=None, device=str(device), width=4 if args.quick else 64,
                                batch=64, channels_last="false",
                                subset=None if args.quick or args.timing_images >= epoch_time.FULL_TRAIN
                                else args.timing_images)
    if not jpeg:
        sizes = (128, 64) if args.quick else (epoch_time.FULL_TRAIN, epoch_time.FULL_TEST)
        timing.synthetic = epoch_time.write_synthetic_cifar10(workdir / "synthetic", *sizes)
    precisions = PRECISIONS if cuda else ("32",)
    compiles = (False, True) if cuda else (False,)
    notes = [] if cuda else ["skipped on CPU: bf16 and fp16 (about 8x slower than fp32 here) and compile on "
                             "(the inductor backend compiles for minutes); the GPU run times them"]
    rows = []
    for precision in precisions:
        for compiled in compiles:
            for variant in TIMED:
                label = f"{variant} {precision} compile {'on' if compiled else 'off'}"
                try:
                    with open(workdir / "timing.log", "a") as out, contextlib.redirect_stdout(out):
                        rows.append(epoch_time.time_variant(variant, timing, precision, compiled))
                    _progress(f"timing {label}: {rows[-1]['main_epoch']:.1f} s per main epoch")
                except Exception as error:  # noqa: BLE001 - reported as a failed row
                    notes.append(f"FAILED: {label}: {_one_line(f'{type(error).__name__}: {error}')}")
                    _progress(notes[-1])
    source = "the CIFAR-10 JPEG copy" if jpeg else "synthetic CIFAR-10 (random pixels, torchvision's format)"
    timed = rows[0]["timed_images"] if rows else 0
    header = (f"{source}, {timed} training images timed, each epoch extrapolated to 50,000 (the test pass to "
              f"10,000); width {timing.width}, batch 64, sym 50% noise; one warm-up and one main epoch per row"
              + (f"\n{rows[0]['placement']}" if rows else ""))
    return rows, notes, header


def timing_table(rows: list[dict], notes: list[str], header: str) -> str:
    lines = [header, "", epoch_time.TABLE_HEADER, *map(epoch_time.table_row, rows), "",
             "Views: the epoch's augmentation and normalisation (CUDA events around each call; on CPU the host "
             "clock); the rest of the "
             "main epoch is compute (forwards, backwards, masking, the GMM). The 300-epoch projection counts "
             "DivideMix's 10 warm-up epochs at the warm-up rate and a test pass per epoch.",
             *epoch_time.ratio_lines(rows), *notes]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- plumbing
def _in_parallel(one: Callable, items: list, jobs: int) -> list:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, items))


def _child_env(jobs: int, device: torch.device) -> dict:
    """The environment of a cell's process: its share of the CPU threads on CUDA (compilation), one on CPU (tiny
    runs, where more threads would only spin against each other)."""
    share = max(1, (os.cpu_count() or 1) // max(1, jobs)) if device.type == "cuda" else 1
    threads = os.environ.get("OMP_NUM_THREADS") or str(share)
    return {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _one_line(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        count = torch.cuda.device_count()
        name = torch.cuda.get_device_name(device)
        return f"{count} x {name}, CUDA {torch.version.cuda}" if count > 1 else f"{name}, CUDA {torch.version.cuda}"
    threads = torch.get_num_threads()
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, {threads} thread{'s' * (threads != 1)})"


@dataclasses.dataclass
class Section:
    name: str
    body: str
    failed: bool
    seconds: float = 0.0


def cells_section(device: torch.device, args: argparse.Namespace, workdir: Path) -> Section:
    cells = QUICK_CELLS if args.quick else full_cells()
    outcomes = run_cells(cells, device, args, workdir)
    note = (f"Quick mode: {len(cells)} of the {len(full_cells())} cells (C2D in the official pipeline, with its SimCLR "
            "pre-training, channels_last); the full run covers every method x SANM variant x precision.\n\n"
            ) if args.quick else ""
    return Section("cells", note + cells_table(cells, outcomes), any(o.failed for o in outcomes))


def sync_section(device: torch.device, args: argparse.Namespace, workdir: Path) -> Section:
    reports = run_sync(device, args, workdir)
    images = QUICK_SYNC_IMAGES if args.quick else SYNC_IMAGES
    body = (f"Each run: an epoch of each phase to warm up, then the same epochs recorded ({images} images, batch 64: "
            f"{images // 64} steps per network and epoch).\n\n" + sync_tables(reports))
    return Section("sync", body, not all(r.passed for r in reports))


def torchrun_section(device: torch.device, args: argparse.Namespace, workdir: Path) -> Section:
    procs, methods, outcomes = run_torchrun(device, args, workdir)
    return Section("torchrun", torchrun_table(procs, methods, outcomes), any(o.failed for o in outcomes))


def timing_section(device: torch.device, args: argparse.Namespace, workdir: Path) -> Section:
    rows, notes, header = run_timing(device, args, workdir)
    return Section("timing", timing_table(rows, notes, header), any(n.startswith("FAILED") for n in notes))


RUNNERS = {"cells": cells_section, "sync": sync_section, "torchrun": torchrun_section, "timing": timing_section}


def run_sections(names: list[str], device: torch.device, args: argparse.Namespace, workdir: Path) -> list[Section]:
    """The chosen sections in SECTIONS' order. The cells and torchrun are processes of their own and run beside the
    sync check, which runs in this process; the timing runs last and alone, so nothing else loads the device."""

    def timed(name: str) -> Section:
        start = time.perf_counter()
        section = RUNNERS[name](device, args, workdir)
        section.seconds = time.perf_counter() - start
        return section

    beside = [name for name in names if name in ("cells", "torchrun")]
    with ThreadPoolExecutor(max_workers=1) as background:
        processes = background.submit(lambda: [timed(name) for name in beside])
        done = [timed(name) for name in names if name == "sync"]
        done += processes.result()
    done += [timed(name) for name in names if name == "timing"]
    return sorted(done, key=lambda section: SECTIONS.index(section.name))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cuda | cpu")
    parser.add_argument("--quick", action="store_true", help="a few cells on tiny sizes (the test suite's CPU check)")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--root", default=None, help="the CIFAR-10 JPEG copy to time on (train/, test/); "
                                                     "default: synthetic 50k images")
    parser.add_argument("--timing-images", type=int, default=5000,
                        help="training images each timed epoch runs on (class-balanced subset; 50000: whole epochs)")
    parser.add_argument("--jobs", type=int, default=None, help="cell processes at once (CUDA: half the CPU cores)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a cell or torchrun run may take")
    parser.add_argument("--output", default=None, help="also write the report (Markdown) here")
    parser.add_argument("--workdir", default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.timing_images < 128:
        parser.error(f"--timing-images must be at least 128 (two batches of 64), got {args.timing_images}")
    device = resolve_device(args.device)
    if args.jobs is None:
        args.jobs = max(1, (os.cpu_count() or 2) // 2) if device.type == "cuda" else 1
    started = time.perf_counter()
    command = " ".join(sys.argv[1:] if argv is None else argv)
    parts = [f"# GPU acceptance ({'--quick' if args.quick else 'full'}): {date.today().isoformat()}, "
             f"{describe_machine(device)}, torch {torch.__version__}", "",
             f"`python benchmarks/gpu_acceptance.py {command}`"]
    with (TemporaryDirectory() if args.workdir is None else contextlib.nullcontext(args.workdir)) as folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        sections = run_sections(args.sections, device, args, Path(folder))
    for section in sections:
        parts += ["", f"## {section.name} ({section.seconds:.0f} s){' FAILED' if section.failed else ''}", "",
                  section.body]
    failed = any(section.failed for section in sections)
    parts += ["", f"Total {time.perf_counter() - started:.0f} s (cells and torchrun beside the sync check); "
                  f"{'FAILED' if failed else 'all passed'}."]
    report = "\n".join(parts) + "\n"
    print(report)
    if args.output:
        Path(args.output).write_text(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
