"""Tables of finished runs: `python -m baselines.report DIR... [--csv | --latex]`.

Every run directory under the given folders (one holding resolved.yaml, metrics.jsonl or summary.json) is
read. Finished runs (summary.json) are grouped by method x dataset x noise x SANM preset, and by any other
setting that differs between runs of one setting (`model.width=16`, `sanm.mu=0.3`: the `variant` column),
so that only seeds are averaged: the test accuracy at the epoch of best noisy-validation accuracy (runs with
`trainer.val_fraction`), best, last and mean-of-the-last-10 as mean ± sample std over seeds, SANM's gain over its
base method's group (same setting and variant, `+sanm=off`) at the first three, how many of those seeds are
paired (the SANM run is the base run draw for draw until SANM starts, so the gain is SANM's alone), and the paper's
number where the setting is one of its tables (paper_results.csv). Runs in progress, stopped, interrupted or
failed (status.json, written by the engine) are listed apart and never averaged in.

`--at-epochs 10 36 37 60` gives instead the course of training: each group's mean ± std over seeds of a logged
metric (`--metric`, default test_acc; any key of metrics.jsonl, e.g. selection_precision_net1,
mask_ratio_noisy) at those epochs, read from each run's metrics.jsonl. `--plot curves.png` draws that metric
for every group over all epochs (mean over seeds, their range as a band; needs matplotlib). With
`--unfinished`, those two also average in the runs still in progress, stopped or interrupted, over the epochs
they logged (a cell says "(k of n)" where only k of the group's n runs got that far): long runs can be compared
while they train. Failed runs stay out.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import socket
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from baselines.common.config import MLflowConfig, WandbConfig, flatten
from baselines.common.metrics import read_records
from baselines.plot import matplotlib_available, plot_curves

__all__ = ["Group", "Run", "epoch_rows", "find_runs", "group_runs", "main", "markdown", "metric_history",
           "paper_results"]

PAPER_RESULTS = Path(__file__).with_name("paper_results.csv")
RUN_FILES = ("summary.json", "metrics.jsonl", "resolved.yaml", "status.json")
# settings that do not change what a run trains (paths, run control, trackers, speed options) or differ by seed,
# dataset.num_classes: a fact of the data, which resolved.yaml of older runs lacks (it must not split a group), and
# pretrain_epochs, which changes a run only through its encoder, recorded as encoder.epochs where there is one
IGNORED = {"seed", "device", "resume", "overwrite", "output_root", "run_dir", "tensorboard", "progress", "pretrained",
           "pretrain_epochs",
           "progress_every_s", "dataset.root", "dataset.cache_dir", "dataset.download", "dataset.workers",
           "dataset.num_classes", "noise.name", "noise.rate_actual", "trainer.eval_batch_size", "trainer.precision",
           "trainer.channels_last", "trainer.compile", "trainer.sync_bn", "plots.enabled", "plots.epochs",
           "plots.gallery", *(f"{group}.{f.name}" for group, schema in (("mlflow", MLflowConfig), ("wandb", WandbConfig))
                              for f in fields(schema))}

# settings added after runs were written, with the value those runs trained with (so that they group with new runs)
ADDED_SETTINGS = {"model.softmax_output": False}


@dataclass
class Run:
    path: Path
    state: str  # finished | running | stopped | interrupted | failed | unfinished
    summary: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # resolved.yaml, flattened to dotted keys
    epochs_done: int = 0
    epochs: Optional[int] = None
    error: str = ""

    @cached_property
    def records(self) -> list[dict]:
        """metrics.jsonl's epoch records, read once however many tables and figures use them."""
        return read_records(self.path / "metrics.jsonl")

    @property
    def seed(self) -> Any:
        return self.settings.get("seed", self.path.name.removeprefix("seed"))

    @property
    def setting(self) -> tuple[str, str, str]:
        """(method, dataset, noise)."""
        s, c = self.summary, self.settings
        return (s.get("method", c.get("method.name", "?")), s.get("dataset", c.get("dataset.name", "?")),
                s.get("noise", c.get("noise.name", "?")))

    @property
    def sanm(self) -> str:
        if "sanm" in self.summary:
            return self.summary["sanm"]
        return self.settings.get("sanm.name", "off") if self.settings.get("sanm.enabled", False) else "off"


@dataclass
class Group:
    method: str
    dataset: str
    noise: str
    sanm: str
    variant: str  # the settings that tell this group from the others of its setting, "" when none do
    runs: list[Run]
    base: Optional["Group"] = None  # the +sanm=off group of the same setting and variant
    paper: Optional[dict] = None  # the paper's row for this setting

    def values(self, key: str) -> list[float]:
        return [r.summary[key] for r in self.runs if r.summary.get(key) is not None]

    @property
    def seeds(self) -> list[Any]:
        return sorted((r.seed for r in self.runs), key=str)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _read_run(path: Path) -> Run:
    settings = {}
    if (path / "resolved.yaml").is_file():
        try:
            settings = flatten(OmegaConf.to_container(OmegaConf.load(path / "resolved.yaml")) or {})
        except Exception:  # a torn or foreign file: the run is still listed, by its summary
            settings = {}
    if "model.name" in settings:  # settings added later, as the runs written before them trained
        settings = {**ADDED_SETTINGS, **settings}
    metrics = path / "metrics.jsonl"
    epochs_done = sum(1 for line in metrics.read_text().splitlines() if line.strip()) if metrics.is_file() else 0
    run = Run(path, "unfinished", settings=settings, epochs_done=epochs_done, epochs=settings.get("trainer.epochs"))
    status = {}
    if (path / "status.json").is_file():
        try:
            status = json.loads((path / "status.json").read_text())
        except json.JSONDecodeError:
            status = {}
    if (path / "summary.json").is_file():
        try:
            run.summary = json.loads((path / "summary.json").read_text())
            run.state = "finished"
            return run
        except json.JSONDecodeError:
            run.error = "summary.json unreadable"
    state = status.get("state")
    if state == "running":
        here = status.get("host") == socket.gethostname()
        run.state = "running" if not here or _alive(int(status.get("pid", -1))) else "stopped"
        if not here:
            run.error = f"on {status.get('host')}"
        elif run.state == "stopped":
            run.error = "its process is gone (killed?); resume=true continues it"
    elif state in ("interrupted", "failed"):
        run.state, run.error = state, status.get("error", "")
    return run


def find_runs(folders: Iterable[Path]) -> list[Run]:
    """Every run directory under `folders` (a folder may itself be one)."""
    found: set[Path] = set()
    for folder in folders:
        for name in RUN_FILES:
            found.update(p.parent for p in Path(folder).rglob(name) if "checkpoints" not in p.parts)
    return [_read_run(path) for path in sorted(found)]


def paper_results(path: Path = PAPER_RESULTS) -> dict[tuple[str, str, str, str], dict]:
    """(method, sanm off|on, dataset, noise) -> the paper's row (table, cell, best)."""
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {(r["method"], r["sanm"], r["dataset"], r["noise"]): {**r, "best": float(r["best"])}
            for r in csv.DictReader(lines)}


def _describe(keys: Sequence[str], settings: dict) -> str:
    return ", ".join(f"{k}={json.dumps(settings.get(k))}" for k in keys)


# the states whose logged epochs --unfinished averages in: a failed run may have diverged, so it stays out
PARTIAL_STATES = ("finished", "running", "stopped", "interrupted", "unfinished")


def averaged_states(unfinished: bool) -> tuple[str, ...]:
    """The run states a table averages in: finished runs only, or with `unfinished` those of PARTIAL_STATES."""
    return PARTIAL_STATES if unfinished else ("finished",)


def group_runs(runs: Iterable[Run], paper: Optional[dict] = None, unfinished: bool = False) -> list[Group]:
    """The finished runs (with `unfinished`, also those of PARTIAL_STATES) grouped so that only seeds differ inside
    a group; each SANM group linked to its base."""
    paper = paper_results() if paper is None else paper
    states = averaged_states(unfinished)
    by_setting: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        if run.state in states:
            by_setting[run.setting].append(run)
    groups = []
    for (method, dataset, noise), members in sorted(by_setting.items()):
        keys = sorted({k for r in members for k in r.settings} - IGNORED)
        sanm_keys = [k for k in keys if k.startswith(("sanm.", "method.sanm_")) or k == "sanm"]
        base_keys = [k for k in keys if k not in sanm_keys and len({json.dumps(r.settings.get(k)) for r in members}) > 1]
        split: dict[tuple, list[Run]] = defaultdict(list)
        for run in members:
            split[(_describe(base_keys, run.settings), run.sanm)].append(run)
        made = {}
        for (base_variant, sanm), same in sorted(split.items()):
            if sanm == "off":
                made[(base_variant, sanm, "")] = same
                continue
            varying = [k for k in sanm_keys if k != "sanm" and len({json.dumps(r.settings.get(k)) for r in same}) > 1]
            # among the SANM runs of one preset, options that differ (ablations) make groups of their own
            for run in same:
                made.setdefault((base_variant, sanm, _describe(varying, run.settings)), []).append(run)
        offs, made_here = {}, []
        for (base_variant, sanm, sanm_variant), same in sorted(made.items()):
            variant = "; ".join(v for v in (base_variant, sanm_variant) if v)
            group = Group(method, dataset, noise, sanm, variant, same,
                          paper=paper.get((method, "off" if sanm == "off" else "on", dataset, noise)))
            if sanm == "off":
                offs[base_variant] = group
            made_here.append((base_variant, group))
        for base_variant, group in made_here:
            if group.sanm != "off":
                group.base = offs.get(base_variant)
        groups += [group for _, group in made_here]
    return groups


def _mean_std(values: list[float]) -> tuple[Optional[float], Optional[float]]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _fmt(mean: Optional[float], std: Optional[float], pm: str, digits: int = 2) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} {pm} {std:.{digits}f}"


def _gain(group: Group, key: str) -> str:
    if group.base is None:
        return "-"
    ours, base = _mean_std(group.values(key))[0], _mean_std(group.base.values(key))[0]
    return "-" if ours is None or base is None else f"{ours - base:+.2f}"


# the keys a run logs once SANM has started (metrics.jsonl), and those that differ between two runs of the same draws
SANM_KEYS = ("loss/reconstruction", "loss/masked", "mask_ratio")
TIMING_SUFFIX = "_seconds"


def records_by_epoch(run: Run) -> dict[int, dict]:
    """epoch -> its record (a line written again after a resume replaces the earlier one)."""
    return {int(row["epoch"]): row for row in run.records if "epoch" in row}


def is_paired(sanm_run: Run, base_run: Run) -> bool:
    """Whether a SANM run is its base run draw for draw until SANM starts (docs/runs.md 2.2): both logged the epochs
    before SANM's first, at least one, with the same value of everything both logged there but wall-clock times.
    Only then is the gain SANM's and not also the machine's: a change of processor or thread count alone moves one
    seed's accuracy by up to a point (benchmarks/RESULTS.md)."""
    ours, base = records_by_epoch(sanm_run), records_by_epoch(base_run)
    started = [epoch for epoch, row in ours.items() if any(key.startswith(SANM_KEYS) for key in row)]
    if not started:
        return False
    before = [epoch for epoch in ours if epoch < min(started)]
    if not before or any(epoch not in base for epoch in before):
        return False
    return all(ours[e][key] == base[e][key] for e in before for key in ours[e].keys() & base[e].keys()
               if not key.endswith(TIMING_SUFFIX))


def _paired(group: Group) -> str:
    """"k of n": of the group's n seeds that have a base run of the same seed, k are paired with it."""
    if group.base is None:
        return "-"
    bases = {str(run.seed): run for run in group.base.runs}
    pairs = [(run, bases[str(run.seed)]) for run in group.runs if str(run.seed) in bases]
    return f"{sum(is_paired(*pair) for pair in pairs)} of {len(pairs)}" if pairs else "-"


# "at best val" first: the test accuracy at the epoch a noisy validation split selects is the figure a user
# without clean labels gets (issue 39); best and last beside it, then how many seeds' gains are paired
COLUMNS = ("method", "dataset", "noise", "SANM", "variant", "seeds", "at best val", "best", "last", "mean last 10",
           "gain at val", "gain best", "gain last", "paired", "paper best")
ACCURACIES = ("test_acc_at_best_val", "best_test_acc", "last_test_acc", "mean_last10_test_acc")


def table_rows(groups: list[Group], pm: str = "±") -> list[list[str]]:
    rows = []
    for g in groups:
        paper = "-" if g.paper is None else f"{g.paper['best']:.2f} (Table {g.paper['table']})"
        rows.append([g.method, g.dataset, g.noise, g.sanm, g.variant or "-",
                     f"{len(g.runs)} ({', '.join(map(str, g.seeds))})",
                     *(_fmt(*_mean_std(g.values(k)), pm) for k in ACCURACIES),
                     *(_gain(g, k) for k in ACCURACIES[:3]), _paired(g), paper])
    return rows


def metric_history(run: Run, metric: str) -> dict[int, float]:
    """epoch -> the value `metric` was logged with, in that epoch's latest record (`records_by_epoch`)."""
    return {epoch: float(row[metric]) for epoch, row in records_by_epoch(run).items() if row.get(metric) is not None}


EPOCH_KEYS = ("method", "dataset", "noise", "SANM", "variant", "seeds")


def epoch_rows(groups: list[Group], epochs: Sequence[int], metric: str = "test_acc",
               pm: str = "±") -> list[list[str]]:
    """One row per group: the metric's mean ± std over its seeds at each epoch; "(k of n)" where only k of the
    group's n runs logged it there, "-" where none did."""
    rows = []
    for g in groups:
        histories = [metric_history(r, metric) for r in g.runs]
        # accuracies in percent keep 2 decimals; ratios, AUCs and losses below 1 need 3
        digits = 2 if any(abs(v) >= 1 for h in histories for v in h.values()) else 3
        cells = []
        for epoch in epochs:
            values = [h[epoch] for h in histories if epoch in h]
            cell = _fmt(*_mean_std(values), pm, digits)
            cells.append(cell if len(values) in (0, len(histories)) else f"{cell} ({len(values)} of {len(histories)})")
        rows.append([g.method, g.dataset, g.noise, g.sanm, g.variant or "-",
                     f"{len(g.runs)} ({', '.join(map(str, g.seeds))})", *cells])
    return rows


def logged_metrics(groups: list[Group]) -> list[str]:
    """Every metric key the groups' runs logged (what --metric accepts)."""
    return sorted({k for g in groups for run in g.runs for row in run.records for k, v in row.items()
                   if k != "epoch" and isinstance(v, (int, float))})


def _run_line(run: Run, error: bool = True) -> str:
    """`- state: path (done/total epochs[; error])`, a run listed beside a table."""
    total = run.epochs if run.epochs is not None else "?"
    return f"- {run.state}: {run.path} ({run.epochs_done}/{total} epochs{'; ' + run.error if error and run.error else ''})"


def not_finished(runs: list[Run], states: Sequence[str] = ("finished",)) -> list[str]:
    """One line for each run not in `states` (the ones averaged in)."""
    return [_run_line(r) for r in runs if r.state not in states]


def markdown(runs: list[Run], groups: list[Group]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(groups)]
    finished = sum(r.state == "finished" for r in runs)
    lines += ["", f"{finished} finished runs in {len(groups)} groups; a cell is the mean ± sample std over seeds; "
                  "gain: SANM's mean minus its base method's (+sanm=off, same setting and variant); paired: of the seeds with "
                  "a base run, those whose SANM run is the base run draw for draw until SANM starts."]
    rest = not_finished(runs)
    if rest:
        lines += ["", f"Not averaged in ({len(rest)}):", *rest]
    return "\n".join(lines)


def epoch_markdown(runs: list[Run], groups: list[Group], epochs: Sequence[int], metric: str,
                   unfinished: bool = False) -> str:
    columns = (*EPOCH_KEYS, *(f"epoch {e}" for e in epochs))
    lines = [f"{metric} by epoch", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in epoch_rows(groups, epochs, metric)]
    which = ("runs finished or not (--unfinished), each over the epochs it logged" if unfinished
             else "finished runs only; --unfinished adds the others")
    lines += ["", f"A cell is the mean ± sample std over the group's seeds ({which})."]
    states = averaged_states(unfinished)
    early = [_run_line(r, error=False) for r in runs if r.state in states and r.state != "finished"]
    if early:
        lines += ["", "Averaged in before finishing:", *early]
    rest = not_finished(runs, states)
    if rest:
        lines += ["", f"Not averaged in ({len(rest)}):", *rest]
    return "\n".join(lines)


def as_csv(groups: list[Group], epochs: Optional[Sequence[int]] = None, metric: str = "test_acc") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if epochs is None:
        writer.writerow(COLUMNS)
        writer.writerows(table_rows(groups, pm="+-"))
    else:
        writer.writerow((*EPOCH_KEYS, *(f"{metric}@{e}" for e in epochs)))
        writer.writerows(epoch_rows(groups, epochs, metric, pm="+-"))
    return out.getvalue()


def latex(groups: list[Group], epochs: Optional[Sequence[int]] = None, metric: str = "test_acc") -> str:
    def escape(text: str) -> str:
        return "".join({"_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "{": r"\{", "}": r"\}"}.get(c, c)
                       for c in text)

    columns = COLUMNS if epochs is None else (*EPOCH_KEYS, *(f"{metric}@{e}" for e in epochs))
    rows = (table_rows(groups, pm="PLUSMINUS") if epochs is None
            else epoch_rows(groups, epochs, metric, pm="PLUSMINUS"))
    lines = [r"\begin{tabular}{" + "l" * 6 + "r" * (len(columns) - 6) + "}", r"\toprule",
             " & ".join(escape(c) for c in columns) + r" \\", r"\midrule"]
    for row in rows:
        lines.append(" & ".join(escape(c).replace("PLUSMINUS", r"$\pm$") for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m baselines.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="output roots or run directories")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="the table as CSV on stdout")
    fmt.add_argument("--latex", action="store_true", help="the table as a LaTeX tabular (booktabs) on stdout")
    parser.add_argument("--at-epochs", nargs="+", type=int, metavar="EPOCH",
                        help="instead of best/last: the metric at these epochs (1-based, as logged)")
    parser.add_argument("--metric", default="test_acc",
                        help="with --at-epochs or --plot: the metrics.jsonl key (default test_acc)")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="also draw the metric per epoch for every group into this PNG (needs matplotlib)")
    parser.add_argument("--unfinished", action="store_true",
                        help="with --at-epochs or --plot: also average in runs not finished yet, over the epochs "
                             "they logged")
    args = parser.parse_args(argv)
    if args.at_epochs is not None and any(e < 1 for e in args.at_epochs):
        raise SystemExit(f"error: --at-epochs {args.at_epochs}: epochs count from 1, as metrics.jsonl logs them")
    if args.at_epochs is None and args.plot is None and args.metric != "test_acc":
        raise SystemExit("error: --metric is read only with --at-epochs or --plot; add e.g. --at-epochs 10 20 30")
    if args.unfinished and args.at_epochs is None and args.plot is None:
        raise SystemExit("error: --unfinished is read only with --at-epochs or --plot (best and last need a finished "
                         "run); add e.g. --at-epochs 10 20 30")
    if args.plot is not None and not matplotlib_available():
        raise SystemExit('error: --plot needs matplotlib: pip install -e ".[logging]" adds it')
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)}: not a folder; pass output roots or run directories")
    runs = find_runs(args.folders)
    if not runs:
        raise SystemExit(f"error: no runs under {', '.join(map(str, args.folders))} (no summary.json, "
                         "metrics.jsonl or resolved.yaml)")
    groups = group_runs(runs, unfinished=args.unfinished)
    if args.at_epochs is not None or args.plot is not None:
        logged = logged_metrics(groups)
        if groups and args.metric not in logged:
            which = "run" if args.unfinished else "finished run"
            raise SystemExit(f"error: no {which} logged {args.metric!r}; logged metrics: {', '.join(logged)}")
    if args.csv:
        sys.stdout.write(as_csv(groups, args.at_epochs, args.metric))
    elif args.latex:
        print(latex(groups, args.at_epochs, args.metric))
    elif args.at_epochs is not None:
        print(epoch_markdown(runs, groups, args.at_epochs, args.metric, args.unfinished))
    else:
        print(markdown(runs, groups))
    if args.plot is not None and groups:
        curves = {" ".join(v for v in (g.method, g.noise, "SANM " + g.sanm if g.sanm != "off" else "", g.variant) if v):
                  [metric_history(r, args.metric) for r in g.runs] for g in groups}
        classes = {r.settings.get("dataset.num_classes") for g in groups for r in g.runs}
        chance = classes.pop() if len(classes) == 1 else None  # one chance line only where every run shares it
        print(f"wrote {plot_curves(curves, args.metric, args.plot, num_classes=chance)}", file=sys.stderr)


if __name__ == "__main__":
    main()
