"""Plots of one run: `python -m baselines.plot RUN_DIR [RUN_DIR ...]` writes PNGs into each RUN_DIR/plots.

Works at any time, also while the run trains (it reads metrics.jsonl and the snapshots in diagnostics/, both
written atomically). A run draws them itself at its end when matplotlib is installed (`pip install -e
".[logging]"`; `plots.enabled=false` turns that off). The figures:

- accuracy.png: test (and validation) accuracy per epoch, the lr on a second axis, lr drops marked;
- quality.png: the distribution of SANM's label quality G over training samples whose label is truly right
  and truly wrong, at each snapshot epoch (plots.epochs);
- mask_ratio.png: the mask ratio SANM gave each sample against its G, and the mean mask ratio on right and
  wrong labels per epoch;
- selection.png: the precision and recall of the clean samples a selecting method picks, per epoch;
- gallery.png: a fixed set of training images (half with wrong labels) with their class activation map and the
  peak (red) and trough (blue) boxes SANM drew at each snapshot epoch, and the masked image at the last.

A figure whose data the run does not have (no SANM: no G; CE: no selection) is skipped, and the reason said.
Each reads the same for a run of 1 epoch or of 300: whole epochs on the x axis, from the first to the last, a
marker at every epoch of a short curve (one epoch is one point), accuracies on a fixed 0-100 axis with chance
(100 / classes) dashed, shares and mask ratios from 0, and legends below the axes, never over a curve.

`plot_curves` draws many runs at once, grouped (what `python -m baselines.report DIR --plot PNG` writes), and
`python -m baselines.plot --compare BASE_RUN SANM_RUN --output FILE.png` a method against SANM(method) with
SANM's masks beside (README's figure).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from baselines.common.metrics import binary_auc, read_records
from baselines.common.snapshots import DIAGNOSTICS_DIR

if TYPE_CHECKING:  # matplotlib is an optional extra, imported only to draw
    from matplotlib.figure import Figure

PLOTS_DIR = "plots"
LR_DROP = 0.7  # an epoch whose lr is below this share of the previous epoch's is marked as a drop
SCATTER_POINTS = 4000  # samples drawn in the mask-ratio scatter (a random subset of a large training set)
MARKERS_UP_TO = 30  # a curve over fewer epochs marks each one (a single epoch is then a point, not nothing)
ACCURACY_PREFIXES = ("test_acc", "val_acc")  # metrics.jsonl keys in percent (test_acc_net2, test_acc_imagenet too)
RIGHT, WRONG = "tab:green", "tab:red"


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


class RunFiles:
    """What a run directory holds for the plots: its epoch records, settings and snapshots."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        metrics = self.run_dir / "metrics.jsonl"
        if not metrics.is_file():
            raise FileNotFoundError(f"no metrics.jsonl in {self.run_dir}: give a run directory "
                                    "(outputs/<method>/<dataset>/<noise>/<sanm>/seed<k>) of a run that has finished "
                                    "at least one epoch")
        self.records = read_records(metrics)
        self.settings = self._settings()
        self.snapshots = [dict(np.load(path, allow_pickle=False))
                          for path in sorted((self.run_dir / DIAGNOSTICS_DIR).glob("epoch_*.npz"))]

    def _settings(self) -> dict:
        path = self.run_dir / "resolved.yaml"
        if not path.is_file():
            return {}
        from omegaconf import OmegaConf

        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)

    @property
    def title(self) -> str:
        s = self.settings
        if not s:
            return str(self.run_dir)
        sanm = f"SANM {s['sanm'].get('name', 'on')}" if s.get("sanm") else "no SANM"
        return (f"{s['method']['name']} on {s['dataset']['name']}, noise {s['noise']['name']}, {sanm}, "
                f"seed {s.get('seed', '?')}")

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(epochs, values) of `key` over the epochs that recorded it (None, JSON's NaN, dropped)."""
        pairs = [(r["epoch"], r[key]) for r in self.records if r.get(key) is not None]
        epochs, values = zip(*pairs) if pairs else ((), ())
        return np.asarray(epochs, dtype=int), np.asarray(values, dtype=float)

    def keys(self, *prefixes: str) -> list[str]:
        found = {k for r in self.records for k in r if k.startswith(prefixes)}
        return sorted(found)

    @property
    def last_epoch(self) -> int:
        return max((int(r["epoch"]) for r in self.records if "epoch" in r), default=1)

    @property
    def num_classes(self) -> Optional[int]:
        """From resolved.yaml (dataset.num_classes), else a snapshot's class names; None when neither says
        (a run of an older version without SANM): the chance line is then left out rather than guessed."""
        value = self.settings.get("dataset", {}).get("num_classes")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if self.snapshots and "class_names" in self.snapshots[-1]:
            return len(self.snapshots[-1]["class_names"]) or None
        return None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a cluster node
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=110, bbox_inches="tight")
    temporary.replace(path)  # a reader (or a second plot call) never sees half a PNG
    _pyplot().close(figure)
    return path


def lr_drops(epochs: np.ndarray, lrs: np.ndarray) -> list[int]:
    """Epochs whose lr fell below LR_DROP of the previous epoch's (a step schedule's milestones)."""
    return [int(e) for e, prev, lr in zip(epochs[1:], lrs[:-1], lrs[1:]) if prev > 0 and lr < LR_DROP * prev]


def _marks(count: int) -> dict[str, Any]:
    """Line options for a curve over `count` epochs: a marker at each epoch of a short run, where a line alone
    would show a single epoch as nothing."""
    return {"marker": "o", "markersize": 3} if count < MARKERS_UP_TO else {}


def _epoch_axis(axis: Any, last_epoch: int) -> None:
    """Whole epochs from 1 to `last_epoch`, with half an epoch either side: one epoch is a tick at 1, not a
    span of fractions around it, and a method's warm-up shows as the gap before its first point."""
    from matplotlib.ticker import MaxNLocator

    axis.set_xlabel("epoch")
    axis.set_xlim(0.5, max(last_epoch, 1) + 0.5)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _accuracy_axis(axis: Any, num_classes: Optional[int]) -> None:
    """0-100 %, so a flat curve at chance reads as flat, with chance (100 / classes) dashed when known."""
    axis.set_ylim(0, 100)
    if num_classes:
        axis.axhline(100 / num_classes, color="black", linestyle="--", linewidth=1, alpha=0.6,
                     label=f"chance (1 of {num_classes} classes)")


def _legend_below(axis: Any, columns: int = 2) -> None:
    """The axis' legend under it (bbox_inches='tight' keeps it in the PNG), where it covers no curve."""
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=columns, frameon=False)


def plot_accuracy(run: RunFiles) -> Optional[Figure]:
    keys = run.keys(*ACCURACY_PREFIXES)
    if not keys:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for key in keys:
        epochs, values = run.series(key)
        axis.plot(epochs, values, label=key, **_marks(len(epochs)))
    epochs, test = run.series("test_acc")
    if len(test):
        best = int(np.argmax(test))
        axis.scatter([epochs[best]], [test[best]], marker="*", s=90, color="black", zorder=3,
                     label=f"best test_acc {test[best]:.2f} (epoch {epochs[best]})")
    _accuracy_axis(axis, run.num_classes)
    lr_epochs, lrs = run.series("lr")
    for i, epoch in enumerate(lr_drops(lr_epochs, lrs)):
        axis.axvline(epoch - 0.5, color="grey", linestyle=":", label="lr drop" if i == 0 else None)
    _epoch_axis(axis, run.last_epoch)
    axis.set_ylabel("accuracy (%)")
    axis.set_title(f"accuracy per epoch\n{run.title}", fontsize=10)
    axis.grid(alpha=0.3)
    if len(lrs):
        lr_axis = axis.twinx()
        lr_axis.plot(lr_epochs, lrs, color="grey", alpha=0.5, linewidth=1, **_marks(len(lr_epochs)))
        lr_axis.set_ylim(0, 1.15 * max(lrs.max(), 1e-12))  # from 0, so a constant lr reads as constant
        lr_axis.set_ylabel("learning rate (grey line)", color="grey")
    _legend_below(axis, columns=3)
    return figure


def _grid(count: int, columns: int = 4) -> tuple[int, int]:
    columns = min(columns, count)
    return -(-count // columns), columns


def plot_quality(run: RunFiles) -> Optional[Figure]:
    if not run.snapshots:
        return None
    plt = _pyplot()
    rows, columns = _grid(len(run.snapshots))
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
    bins = np.linspace(0, 1, 26)
    for axis, snap in zip(axes.flat, run.snapshots):
        quality, right = snap["clean_prob"].astype(float), snap["is_clean"].astype(bool)
        if bool(snap["labels_known"]):
            for mask, color, name in ((right, RIGHT, "right labels"), (~right, WRONG, "wrong labels")):
                if mask.any():
                    axis.hist(quality[mask], bins=bins, color=color, alpha=0.55, label=f"{name} ({mask.sum()})",
                              weights=np.full(mask.sum(), 1 / mask.sum()))
            auc = binary_auc(quality, right)
            axis.set_title(f"epoch {int(snap['epoch'])}" + ("" if np.isnan(auc) else f", AUC {auc:.3f}"), fontsize=9)
        else:
            axis.hist(quality, bins=bins, color="tab:blue", alpha=0.7, weights=np.full(len(quality), 1 / len(quality)))
            axis.set_title(f"epoch {int(snap['epoch'])} (no true labels)", fontsize=9)
        axis.set_xlabel("G (probability the label is right)")
        axis.set_ylabel("share of the samples")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(run.snapshots):]:
        axis.axis("off")
    figure.suptitle(f"label quality G, right vs wrong labels\n{run.title}", fontsize=10)
    figure.tight_layout()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:  # one legend for every panel, under them (none where the true labels are unknown)
        figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=2, fontsize=8,
                      frameon=False)
    return figure


def plot_mask_ratio(run: RunFiles) -> Optional[Figure]:
    per_epoch = run.keys("mask_ratio_")
    if not run.snapshots and not per_epoch:
        return None
    plt = _pyplot()
    figure, (left, right_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    highest = 0.0  # both panels share a y range from 0, so their ratios compare at a glance
    if run.snapshots:
        snap = run.snapshots[-1]
        quality, ratio = snap["clean_prob"].astype(float), snap["mask_ratio"].astype(float)
        seen = np.flatnonzero(~np.isnan(ratio))
        if len(seen) > SCATTER_POINTS:
            seen = np.sort(np.random.default_rng(0).choice(seen, SCATTER_POINTS, replace=False))
        right = snap["is_clean"].astype(bool)
        groups = ((right, RIGHT, "right label"), (~right, WRONG, "wrong label")) if bool(snap["labels_known"]) \
            else ((np.ones_like(right), "tab:blue", "every sample (true labels unknown)"),)
        for mask, color, name in groups:
            chosen = seen[mask[seen]]
            if len(chosen):
                left.scatter(quality[chosen], ratio[chosen], s=6, alpha=0.5, color=color, label=name)
        highest = max(highest, float(ratio[seen].max()) if len(seen) else 0.0)
        left.set_xlim(-0.03, 1.03)
        left.set_xlabel("G (probability the label is right)")
        left.set_ylabel("mask ratio r")
        left.set_title(f"mask ratio against G, epoch {int(snap['epoch'])}", fontsize=9)
        left.grid(alpha=0.3)
        _legend_below(left)
    else:
        left.axis("off")
        left.text(0.5, 0.5, "no snapshot yet (plots.epochs)", ha="center", va="center", transform=left.transAxes)
    for key in per_epoch:
        epochs, values = run.series(key)
        color = WRONG if "noisy" in key else RIGHT
        right_axis.plot(epochs, values, color=color, linestyle="--" if key.endswith("net2") else "-", label=key,
                        **_marks(len(epochs)))
        highest = max(highest, float(values.max()) if len(values) else 0.0)
    if per_epoch:
        _epoch_axis(right_axis, run.last_epoch)
        right_axis.set_ylabel("mean mask ratio")
        right_axis.set_title("mean mask ratio on wrong (noisy) and right (clean) labels", fontsize=9)
        right_axis.grid(alpha=0.3)
        _legend_below(right_axis)
    else:
        right_axis.axis("off")
        right_axis.text(0.5, 0.5, "no mean mask ratio per epoch in metrics.jsonl\n(it needs the true labels)",
                        ha="center", va="center", transform=right_axis.transAxes)
    for axis in (left, right_axis):
        axis.set_ylim(0, 1.1 * highest if highest > 0 else 1)
    figure.suptitle(run.title, fontsize=10)
    figure.tight_layout()
    return figure


def plot_selection(run: RunFiles) -> Optional[Figure]:
    keys = run.keys("selection_precision", "selection_recall")
    if not keys:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.2))
    for key in keys:
        epochs, values = run.series(key)
        axis.plot(epochs, values, color="tab:blue" if "precision" in key else "tab:orange",
                  linestyle="--" if key.endswith("net2") else "-", label=key, **_marks(len(epochs)))
    axis.set_ylim(0, 1.02)
    _epoch_axis(axis, run.last_epoch)
    axis.set_ylabel("share")
    axis.set_title(f"clean-sample selection: precision and recall against the true labels\n{run.title}", fontsize=10)
    axis.grid(alpha=0.3)
    _legend_below(axis)
    return figure


def _show(axis: Any, image: np.ndarray) -> None:
    picture = image.transpose(1, 2, 0)
    if picture.shape[2] == 1:
        axis.imshow(picture[:, :, 0], cmap="gray", vmin=0, vmax=255)
    else:
        axis.imshow(picture)


def _box(axis: Any, box: np.ndarray, color: str) -> None:
    """A half-open (top, bottom, left, right) box in pixels, outlined on the pixel boundaries (imshow puts pixel
    centres on whole numbers). Not clipped to the axes: a box on the image border keeps the half of its edge
    outside the image, so a box of one pixel there is a square, not a sliver."""
    from matplotlib.patches import Rectangle

    top, bottom, left, right = (int(v) for v in box)
    if bottom > top and right > left:
        axis.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor=color,
                                 linewidth=1.5, clip_on=False))


def _show_map(axis: Any, snap: dict, row: int) -> None:
    """A gallery image with its class activation map and SANM's peak (red) and trough (blue) boxes."""
    _show(axis, snap["gallery_images"][row])
    axis.imshow(snap["gallery_cam"][row].astype(float), cmap="jet", alpha=0.4, vmin=0, vmax=1)
    _box(axis, snap["gallery_peak_box"][row], "red")
    _box(axis, snap["gallery_trough_box"][row], "blue")


def plot_gallery(run: RunFiles) -> Optional[Figure]:
    snaps = [s for s in run.snapshots if "gallery_images" in s]
    if not snaps:
        return None
    plt = _pyplot()
    names = [str(n) for n in snaps[-1]["class_names"]]
    count, columns = len(snaps[-1]["gallery_index"]), len(snaps) + 1
    figure, axes = plt.subplots(count, columns, figsize=(1.9 * columns + 1.6, 1.9 * count), squeeze=False)
    for row in range(count):
        label, true = int(snaps[-1]["gallery_label"][row]), int(snaps[-1]["gallery_true_label"][row])
        verdict = "right label" if label == true else "wrong label"
        axes[row, 0].set_ylabel(f"{verdict}\n{names[label]}" + ("" if label == true else f"\n(true {names[true]})"),
                                fontsize=8, color=RIGHT if label == true else WRONG)
        for column, snap in enumerate(snaps):
            axis = axes[row, column]
            _show_map(axis, snap, row)
            predicted = names[int(snap["gallery_predicted"][row])]
            axis.set_title(f"ep {int(snap['epoch'])}: G {float(snap['gallery_quality'][row]):.2f}, "
                           f"r {float(snap['gallery_ratio'][row]):.2f}\npred {predicted}", fontsize=7)
        _show(axes[row, -1], snaps[-1]["gallery_masked"][row])
        axes[row, -1].set_title(f"masked, epoch {int(snaps[-1]['epoch'])}", fontsize=7)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"activation map with SANM's peak (red) and trough (blue) boxes\n{run.title}", fontsize=10)
    figure.tight_layout()
    return figure


def _selected_epoch(run: RunFiles) -> Optional[tuple[int, float]]:
    """(epoch, test accuracy) at the first epoch of best noisy-validation accuracy: the epoch a user without
    clean labels would keep. None without a validation split."""
    val_epochs, val = run.series("val_acc")
    if not len(val):
        return None
    epoch = int(val_epochs[int(np.argmax(val))])
    test = {int(e): float(v) for e, v in zip(*run.series("test_acc"))}
    return (epoch, test[epoch]) if epoch in test else None


def plot_comparison(base: RunFiles, sanm: RunFiles, images: int = 3) -> Figure:
    """A method against SANM(method) in one figure (README's): test accuracy per epoch of both runs, each with the
    epoch its noisy validation split selects, and beside it `images` wrongly-labelled training images of the
    SANM run's last snapshot, the activation map with SANM's boxes above and the masked image below."""
    snaps = [s for s in sanm.snapshots if "gallery_images" in s]
    if not snaps:
        raise ValueError(f"{sanm.run_dir} has no gallery snapshot: give the SANM run second (plots.gallery > 0)")
    snap = snaps[-1]
    wrong = [row for row in range(len(snap["gallery_index"]))
             if int(snap["gallery_label"][row]) != int(snap["gallery_true_label"][row])][:images]
    shown = wrong or list(range(min(images, len(snap["gallery_index"]))))
    plt = _pyplot()
    figure = plt.figure(figsize=(4.2 + 1.7 * len(shown), 3.9))
    grid = figure.add_gridspec(2, 1 + len(shown), width_ratios=[2.6 * len(shown) / 1.6] + [1] * len(shown),
                               wspace=0.08, hspace=0.25)
    axis = figure.add_subplot(grid[:, 0])
    for run, name in ((base, "without SANM"), (sanm, "with SANM")):
        epochs, test = run.series("test_acc")
        line, = axis.plot(epochs, test, label=name, **_marks(len(epochs)))
        selected = _selected_epoch(run)
        if selected is not None:
            axis.scatter([selected[0]], [selected[1]], marker="o", s=40, color=line.get_color(), zorder=3,
                         label=f"{name}: epoch picked by noisy val, {selected[1]:.1f}%")
    _accuracy_axis(axis, base.num_classes)
    _epoch_axis(axis, max(base.last_epoch, sanm.last_epoch))
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(base.title.replace(", no SANM", ""), fontsize=9)
    axis.grid(alpha=0.3)
    _legend_below(axis, columns=1)
    names = [str(n) for n in snap["class_names"]]
    for column, row in enumerate(shown, start=1):
        top, bottom = figure.add_subplot(grid[0, column]), figure.add_subplot(grid[1, column])
        _show_map(top, snap, row)
        label, true = int(snap["gallery_label"][row]), int(snap["gallery_true_label"][row])
        top.set_title(f"label {names[label]}" + ("" if label == true else f"\n(true {names[true]})")
                      + f"\nG {float(snap['gallery_quality'][row]):.2f}", fontsize=7)
        _show(bottom, snap["gallery_masked"][row])
        bottom.set_title(f"masked, r {float(snap['gallery_ratio'][row]):.2f}", fontsize=7)
        for image_axis in (top, bottom):
            image_axis.set_xticks([])
            image_axis.set_yticks([])
    figure.suptitle(f"test accuracy per epoch; SANM's boxes (peak red, trough blue) at epoch {int(snap['epoch'])}",
                    fontsize=10)
    return figure


FIGURES = {
    "accuracy.png": (plot_accuracy, "no test accuracy recorded yet"),
    "quality.png": (plot_quality, "no snapshot of G (SANM off, or before plots.epochs' first epoch)"),
    "mask_ratio.png": (plot_mask_ratio, "no mask ratios (SANM off, or not active yet)"),
    "selection.png": (plot_selection, "the method selects no clean samples (no selection_precision recorded)"),
    "gallery.png": (plot_gallery, "no gallery snapshot (SANM off, plots.gallery=0, or none saved yet)"),
}


def curve(runs: Sequence[dict[int, float]]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, min, max) over runs, each {epoch: value}. An epoch counts only where every run logged it,
    so a seed that is behind cannot bend the mean."""
    epochs = sorted(set.intersection(*(set(run) for run in runs))) if runs else []
    if not epochs:
        return [], np.empty(0), np.empty(0), np.empty(0)
    values = np.array([[run[e] for e in epochs] for run in runs], dtype=float)
    return epochs, values.mean(0), values.min(0), values.max(0)


def curves_figure(curves: dict[str, list[dict[int, float]]], metric: str,
                  num_classes: Optional[int] = None) -> Figure:
    """The figure plot_curves writes. An accuracy (test_acc, val_acc...) gets the 0-100 axis, with chance when
    `num_classes` is given."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    last = 1
    for label, runs in curves.items():
        epochs, mean, low, high = curve(runs)
        if not epochs:
            continue
        last = max(last, epochs[-1])
        line, = axis.plot(epochs, mean, label=f"{label} ({len(runs)} run{'s' if len(runs) > 1 else ''})",
                          **_marks(len(epochs)))
        if len(runs) > 1 and len(epochs) > 1:
            axis.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        elif len(runs) > 1:  # a band over one epoch has no width: the range as a bar
            axis.vlines(epochs, low, high, color=line.get_color(), alpha=0.4, linewidth=6)
    accuracy = metric.startswith(ACCURACY_PREFIXES)
    if accuracy:
        _accuracy_axis(axis, num_classes)
    _epoch_axis(axis, last)
    axis.set_ylabel(metric + (" (%)" if accuracy else ""))
    axis.set_title(f"{metric} per epoch: mean over runs (line), their range (band)", fontsize=10)
    axis.grid(alpha=0.3)
    _legend_below(axis, columns=1)  # one per row: labels name the variants
    return figure


def plot_curves(curves: dict[str, list[dict[int, float]]], metric: str, path: Path,
                num_classes: Optional[int] = None) -> Path:
    """Several groups of runs on one axis: each label's mean over its runs per epoch (a line) and their range
    (a band), e.g. a method with and without SANM over seeds. `curves`: label -> one {epoch: value} per run;
    `num_classes` places the chance line of an accuracy (None: left out)."""
    return _save(curves_figure(curves, metric, num_classes), path)


def write_plots(run_dir: str | Path, output: Optional[str | Path] = None,
                skipped: Optional[dict[str, str]] = None) -> list[Path]:
    """Writes each figure the run has data for into `output` (default RUN_DIR/plots); returns their paths.
    The figures left out go into `skipped` with the reason, when given."""
    run = RunFiles(run_dir)
    folder = Path(output) if output is not None else run.run_dir / PLOTS_DIR
    written = []
    for name, (draw, why) in FIGURES.items():
        figure = draw(run)
        if figure is not None:
            written.append(_save(figure, folder / name))
        elif skipped is not None:
            skipped[name] = why
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.plot", description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories (they hold metrics.jsonl)")
    parser.add_argument("--output", help="write the PNGs here instead of RUN_DIR/plots (one run only); with "
                        "--compare, the PNG file")
    parser.add_argument("--compare", nargs=2, metavar=("BASE_RUN", "SANM_RUN"),
                        help="one figure of a method against SANM(method): accuracy per epoch and SANM's masks")
    args = parser.parse_args(argv)
    if args.compare and (args.run_dirs or not args.output):
        parser.error("--compare BASE_RUN SANM_RUN takes no other RUN_DIR and needs --output FILE.png")
    if not args.compare and not args.run_dirs:
        parser.error("give a RUN_DIR (or --compare BASE_RUN SANM_RUN --output FILE.png)")
    if args.output and len(args.run_dirs) > 1:
        parser.error("--output takes one RUN_DIR; leave it out to write into each run's plots/")
    if not matplotlib_available():
        print("matplotlib is not installed: pip install -e \".[logging]\" adds it", file=sys.stderr)
        return 2
    if args.compare:
        try:
            base, sanm = (RunFiles(run_dir) for run_dir in args.compare)
            print(_save(plot_comparison(base, sanm), Path(args.output)))
        except (FileNotFoundError, ValueError) as error:
            print(error, file=sys.stderr)
            return 2
        return 0
    status = 0
    for run_dir in args.run_dirs:
        skipped: dict[str, str] = {}
        try:
            written = write_plots(run_dir, args.output, skipped)
        except FileNotFoundError as error:
            print(error, file=sys.stderr)
            status = 2
            continue
        for path in written:
            print(path)
        for name, why in skipped.items():
            print(f"{name}: skipped, {why}")
    return status


if __name__ == "__main__":
    sys.exit(main())
