"""Methods with and without SANM on real images: the CIFAR-10 JPEG copy, a class-balanced subset, symmetric noise.

Each run is the library's own command line (`python -m baselines.<method> ...`), so the table measures
exactly what users run. Writes a Markdown table of best / last test accuracy and how much of the noise
each model has fitted at the end (the share of wrongly-labelled training images predicted as their
wrong label: plain CE drifts towards memorising it; SANM should hold it down).

    python benchmarks/cifar10_mini.py                          # CPU defaults: 5k subset, 20 epochs (hours on 2 cores)
    python benchmarks/cifar10_mini.py --runs ce sanm_ce sanm_ce_masked   # the CE rows alone (about 1 hour)
    python benchmarks/cifar10_mini.py --epochs 60              # long enough for CE to memorise the noise
    python benchmarks/cifar10_mini.py --device cuda --subset 0 # the full 50k when a GPU is lent
    python benchmarks/cifar10_mini.py --runs dividemix sanm_dividemix --noise asym_0.4   # (GPU: also sym_0.8)
    python benchmarks/cifar10_mini.py --runs elr_plus sanm_elr_plus cdr sanm_cdr coteaching sanm_coteaching
    python benchmarks/cifar10_mini.py --runs elr_plus sanm_elr_plus --resume   # continue after a kill

Each run checkpoints every epoch; `--resume` continues interrupted runs and only re-reads finished ones.
The wall column is each run's own training time (summed over its resumed parts).

`--width` sets every model's first-stage channels: PreAct ResNet-18 (64 in the paper) and Co-teaching's
9-layer CNN (128 upstream) alike. CDR holds out its 10% noisy validation split; its "at best val" column is
the test accuracy of the epoch CDR's own protocol selects.

The test set is always the full 10,000 images. JPEG re-encoding lowers accuracy a little against the
pickled CIFAR-10, so compare methods on this copy with each other, not with published tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"

# (label, method, overrides): every run shares the dataset, noise, model and epochs given on the command line
RUNS = {
    "ce": ("CE", "ce", []),
    "sanm_ce": ("SANM(CE) clean_and_masked", "ce", ["+sanm=on", "sanm.train_on=clean_and_masked"]),
    "sanm_ce_masked": ("SANM(CE) masked", "ce", ["+sanm=on", "sanm.train_on=masked"]),
    "dividemix": ("DivideMix", "dividemix", []),
    "sanm_dividemix": ("SANM(DivideMix)", "dividemix", ["+sanm=on"]),
    "elr_plus": ("ELR+", "elr_plus", []),
    "sanm_elr_plus": ("SANM(ELR+)", "elr_plus", ["+sanm=on"]),
    "cdr": ("CDR", "cdr", []),
    "sanm_cdr": ("SANM(CDR)", "cdr", ["+sanm=on"]),
    "coteaching": ("Co-teaching (9-layer CNN)", "coteaching", []),
    "sanm_coteaching": ("SANM(Co-teaching) (9-layer CNN)", "coteaching", ["+sanm=on"]),
}
DEFAULT_RUNS = list(RUNS)


def unpack(archive: Path, cache: Path) -> Path:
    """Unpack the JPEG copy once; returns the folder holding train/ and test/."""
    marker = cache / ".unpacked"
    if not marker.exists():
        if not archive.exists():
            sys.exit(f"error: {archive} not found; pass --archive path/to/cifar10-jpg.tar.gz")
        cache.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter="data")
        marker.touch()
    return next(p.parent for p in cache.rglob("train") if (p.parent / "test").is_dir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "sanm_plugin" / "cifar10-jpg")
    parser.add_argument("--subset", type=int, default=5000, help="class-balanced training subset; 0 = all 50k")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--noise", default="sym_0.5")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=list(RUNS))
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "cifar10_mini")
    parser.add_argument("--table", type=Path, default=None, help="Markdown file (default <output>/table.md)")
    parser.add_argument("--resume", action="store_true",
                        help="continue interrupted runs from their last checkpoint (finished ones are only re-read) "
                             "instead of starting every run again")
    args = parser.parse_args()
    folder = unpack(args.archive, args.cache)
    common = [
        "dataset=image_folder", f"dataset.root={folder}", f"noise={args.noise}", f"model.width={args.width}",
        f"trainer.epochs={args.epochs}", f"device={args.device}", "resume=true" if args.resume else "overwrite=true",
        "progress=false",
    ] + ([f"dataset.train_subset={args.subset}"] if args.subset else [])
    rows = []
    for key in args.runs:
        label, method, extra = RUNS[key]
        # one output root per run: variants such as sanm.train_on would otherwise share a run directory
        command = [sys.executable, "-m", f"baselines.{method}", *common, *extra, f"output_root={args.output / key}"]
        print(f"== {label}: {' '.join(command[2:])}", flush=True)
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{label} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        summary_path = out.stdout.strip().splitlines()[-1].split("summary in ")[-1]
        summary = json.loads(Path(summary_path).read_text())
        seconds = summary["wall_seconds"]  # the run's own training time, summed over resumed parts
        rows.append((label, summary, seconds))
        print(f"   best {summary['best_test_acc']:.2f}  last {summary['last_test_acc']:.2f}  "
              f"fitted wrong labels {summary['fitted_wrong_labels']:.1%}  ({seconds:.0f} s)", flush=True)
    subset = f"{args.subset} images" if args.subset else "all 50k"
    lines = [
        f"CIFAR-10 JPEG copy, {subset} (class-balanced), {args.noise}, PreAct ResNet-18 width {args.width}, "
        f"{args.epochs} epochs, {args.device}; test on all 10k.",
        "",
        "| run | best test acc | last test acc | at best val | wrong labels fitted at the end | right labels fitted "
        "| wall |",
        "|---|---|---|---|---|---|---|",
    ] + [
        f"| {label} | {s['best_test_acc']:.2f} | {s['last_test_acc']:.2f} | "
        f"{format(s['test_acc_at_best_val'], '.2f') if 'test_acc_at_best_val' in s else '-'} | "
        f"{s['fitted_wrong_labels']:.1%} | {s['fitted_right_labels']:.1%} | {seconds / 60:.1f} min |"
        for label, s, seconds in rows
    ]
    table = args.table or args.output / "table.md"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {table}")


if __name__ == "__main__":
    main()
