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
    python benchmarks/cifar10_mini.py --device cuda --jobs 8 --runs ...   # 8 runs at once, sharing one GPU
    python benchmarks/cifar10_mini.py --protocol memorisation --seeds 0 1 --runs ce sanm_ce sanm_ce_fill_input
    python benchmarks/cifar10_mini.py --protocol memorisation --runs dividemix --channels-last off   # a plain layout

`--protocol memorisation` is the regime where plain CE demonstrably memorises the noise (issue 14): 60
epochs, batch 64, lr /10 after 36 (60%), the same 5k subset and width 16; the table then gives each
seed's best and last, their mean, the best-minus-last drop and the share of wrong labels fitted (a method
whose config does not fix a step schedule keeps its recipe's own, scaled to the 60 epochs: Co-teaching's linear
decay, and ELR+'s `auto` schedule, its recipe's drop at 150 of 200 epochs, so after epoch 45). The
`sanm_ce_*` rows are the ablations of SANM(CE), one option each on top of `+sanm=on`; `sanm_dividemix_official`
is SANM(DivideMix) under `+sanm=official`, and `sanm_dividemix_beta002` SANM(DivideMix) with the official
reconstruction weight (`+sanm=on sanm.beta=0.02`). `sanm_<method>_beta0`, `_beta01`, `_beta03` sweep the
reconstruction weight for CE and DivideMix, `sanm_dividemix_mu01` halves the paper's mask scale (since session 27
DivideMix's `+sanm=on` is beta 0.02 with mu 0.1, so `sanm_dividemix`, `_beta002` and `_mu01` now run the same) and `sanm_dividemix_labeled` masks only the labeled
samples (`method.sanm_masked_set=labeled`); `sanm_elr_plus_beta002_mu01` gives ELR+ both of those smaller values
(beta 0.02, mu 0.1; ELR+'s `+sanm=on` since session 28, so `sanm_elr_plus` runs the same, and
`sanm_elr_plus_paper` the paper's beta 1 and mu 0.2). The `*_official_recipe*` rows run the official
pipeline (`+recipe=official`, issue 42) with and without SANM's official hooks and the official network's double
softmax:

    python benchmarks/cifar10_mini.py --protocol memorisation --seeds 0 --runs dividemix_official_recipe \
        sanm_dividemix_official_recipe sanm_dividemix_official_recipe_softmax --resume

Below the table, a second one gives each run's test accuracy per seed at every 10th epoch and around each
lr drop (the epoch rows of benchmarks/RESULTS.md).

On a CPU, DivideMix's rows run channels_last (`--channels-last auto`, the default: 1.35x faster on this project's
2-core CPU, with a curve within DivideMix's seed-to-seed spread; RESULTS.md) and the other rows do not; `on` or
`off` puts every row in one layout. RESULTS.md's DivideMix rows older than that check ran plain: add
`--channels-last off` to reproduce them, and compare rows run in the same layout.

Each run checkpoints every epoch; `--resume` continues interrupted runs and only re-reads finished ones, and
`--overwrite` starts them again; with neither, a run whose directory already holds a run stops with an error.
The wall column is each run's own training time (summed over its resumed parts). `--jobs N` runs up to N of the
(row, seed) runs at once, each its own process: the protocol's width-16 runs leave a GPU mostly idle, and on a CPU
each job takes a core (set `OMP_NUM_THREADS` so that jobs x threads fits the cores). The table is the same.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout: baselines.report reads the runs' metrics
from baselines.common.acceleration import channels_last_crashes  # noqa: E402
from baselines.report import Run, metric_history  # noqa: E402

DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
# CIFAR-10N's human labels in the JPEG copy's image order (shared/data/README.md): the cifar10n protocol's noise
DEFAULT_HUMAN_LABELS = ROOT.parent / "shared" / "data" / "cifar10n-jpg.npz"

# (label, method, overrides): every run shares the dataset, noise, model and epochs given on the command line
RUNS = {
    "ce": ("CE", "ce", []),
    "sanm_ce": ("SANM(CE) clean_and_masked", "ce", ["+sanm=on", "sanm.train_on=clean_and_masked"]),
    "sanm_ce_masked": ("SANM(CE) masked", "ce", ["+sanm=on", "sanm.train_on=masked"]),
    # ablations of SANM(CE), one option each on top of +sanm=on
    "sanm_ce_fill_input": ("SANM(CE) fill in normalised units", "ce", ["+sanm=on", "sanm.fill_space=input"]),
    "sanm_ce_recon_pixel": ("SANM(CE) reconstruct pixels", "ce", ["+sanm=on", "sanm.recon_target=pixel"]),
    # the BN decoder, +sanm=on's default until the linear one (now the default) measured better
    "sanm_ce_bn_decoder": ("SANM(CE) BN decoder", "ce", ["+sanm=on", "sanm.decoder=bn"]),
    "sanm_ce_beta002": ("SANM(CE) beta 0.02", "ce", ["+sanm=on", "sanm.beta=0.02"]),
    "sanm_ce_prediction": ("SANM(CE) target prediction", "ce", ["+sanm=on", "sanm.target=prediction"]),
    "sanm_ce_mu01": ("SANM(CE) mu 0.1", "ce", ["+sanm=on", "sanm.mu=0.1"]),
    "sanm_ce_mu03": ("SANM(CE) mu 0.3", "ce", ["+sanm=on", "sanm.mu=0.3"]),
    "dividemix": ("DivideMix", "dividemix", []),
    "sanm_dividemix": ("SANM(DivideMix)", "dividemix", ["+sanm=on"]),
    # the paper's equations as written (beta 1): +sanm=on before DivideMix's measured default (issue 39)
    "sanm_dividemix_paper": ("SANM(DivideMix) +sanm=paper", "dividemix", ["+sanm=paper"]),
    # the official code's SANM reading (its mask ratio, corner boxes, channel fill, trough image, beta 0.02) in
    # DivideMix, the one method the official code wires SANM into
    "sanm_dividemix_official": ("SANM(DivideMix) +sanm=official", "dividemix", ["+sanm=official"]),
    # the official reconstruction weight alone, on top of +sanm=on: does beta 1 cost DivideMix its accuracy?
    "sanm_dividemix_beta002": ("SANM(DivideMix) beta 0.02", "dividemix", ["+sanm=on", "sanm.beta=0.02"]),
    # the official pipeline (issue 42): C2D's standard ResNet-18 from a SimCLR encoder pre-trained here on the run's
    # images (100 epochs, not the recipe's 1000: about an hour on one CPU core instead of ten; the three rows share
    # the cached encoder), AutoAugment views; with the official network's double softmax and without it
    "dividemix_official_recipe": ("DivideMix +recipe=official (SimCLR 100 epochs)", "dividemix",
                                  ["+recipe=official", "pretrain_epochs=100"]),
    "sanm_dividemix_official_recipe": ("SANM(DivideMix) +sanm=official +recipe=official (SimCLR 100 epochs)",
                                       "dividemix", ["+sanm=official", "+recipe=official", "pretrain_epochs=100"]),
    "sanm_dividemix_official_recipe_softmax": (
        "SANM(DivideMix) +sanm=official +recipe=official (SimCLR 100 epochs), model.softmax_output=true",
        "dividemix", ["+sanm=official", "+recipe=official", "pretrain_epochs=100", "model.softmax_output=true"]),
    "elr_plus": ("ELR+", "elr_plus", []),
    "sanm_elr_plus": ("SANM(ELR+)", "elr_plus", ["+sanm=on"]),
    # the paper's equations as written (beta 1, mu 0.2): +sanm=on before ELR+'s measured default (issue 39)
    "sanm_elr_plus_paper": ("SANM(ELR+) +sanm=paper", "elr_plus", ["+sanm=paper"]),
    "cdr": ("CDR", "cdr", []),
    "sanm_cdr": ("SANM(CDR)", "cdr", ["+sanm=on"]),
    "coteaching": ("Co-teaching (9-layer CNN)", "coteaching", []),
    "sanm_coteaching": ("SANM(Co-teaching) (9-layer CNN)", "coteaching", ["+sanm=on"]),
}
# the reconstruction-weight sweep (issue 39): beta 0 keeps the masking and label softening, drops the decoder's term
BETA_SWEEP = {"0": "0", "01": "0.1", "03": "0.3"}
for _key, _label, _method in (("ce", "CE", "ce"), ("dividemix", "DivideMix", "dividemix")):
    for _suffix, _beta in BETA_SWEEP.items():
        RUNS[f"sanm_{_key}_beta{_suffix}"] = (f"SANM({_label}) beta {_beta}", _method,
                                              ["+sanm=on", f"sanm.beta={_beta}"])
# the mask scale next, where beta alone leaves SANM(DivideMix) below DivideMix (issue 39): a smaller mu masks less
RUNS["sanm_dividemix_mu01"] = ("SANM(DivideMix) mu 0.1", "dividemix", ["+sanm=on", "sanm.mu=0.1"])
# SANM on the labeled samples alone: G is the probability that the given label is right, but an unlabeled sample
# trains on the networks' guess, which G does not describe (issue 39: is SANM(DivideMix)'s cost from those masks?)
RUNS["sanm_dividemix_labeled"] = ("SANM(DivideMix) labeled samples masked", "dividemix",
                                  ["+sanm=on", "method.sanm_masked_set=labeled"])
# Co-teaching masks only the small-loss samples its peer selected, whose G is high, so its masks are small (mask
# ratio about 0.02 on wrong labels, human noise) and beta 1's reconstruction gradient is most of what SANM adds:
# DivideMix's measured weight, where the paper's may cost it as it cost DivideMix (issue 39)
RUNS["sanm_coteaching_beta002"] = ("SANM(Co-teaching) beta 0.02 (9-layer CNN)", "coteaching",
                                   ["+sanm=on", "sanm.beta=0.02"])
# ELR+ does not memorise human noise either (best - last 0.01), and SANM at the paper's values cost it (issue 39):
# DivideMix's measured values, the smaller reconstruction weight and the halved mask scale together
RUNS["sanm_elr_plus_beta002_mu01"] = ("SANM(ELR+) beta 0.02 mu 0.1", "elr_plus",
                                      ["+sanm=on", "sanm.beta=0.02", "sanm.mu=0.1"])
# the methods whose rows run channels_last by default on a CPU: DivideMix 1.35x faster there (1.36x on one thread), its
# curve within its own seeds' spread (RESULTS.md, session 29); CE and SANM(CE) 1.20-1.29x, below the 1.3x bar
CHANNELS_LAST_METHODS = ("dividemix",)
ABLATIONS = [key for key in RUNS if key.startswith(("sanm_ce_", "sanm_dividemix_", "dividemix_", "sanm_coteaching_",
                                                    "sanm_elr_plus_"))
             and key != "sanm_ce_masked"]
DEFAULT_RUNS = [key for key in RUNS if key not in ABLATIONS]
# the settings each protocol fixes; every other flag keeps its default
PROTOCOLS = {
    "short": {"epochs": 20},
    # 10% of the subset is held out as a noisy validation split (4,500 images train): the epoch it selects gives
    # the "at best val" column, the figure a user without clean labels could pick (issue 39)
    "memorisation": {"epochs": 60, "batch_size": 64, "lr_milestones": [36], "val_fraction": 0.1},
    # the memorisation protocol on human noise: the same subset, network and schedule, CIFAR-10N's labels of
    # those images (worse_label, 40.2% wrong over the 50k) instead of synthetic noise
    "cifar10n": {"epochs": 60, "batch_size": 64, "lr_milestones": [36], "val_fraction": 0.1,
                 "noise": "cifar10n_worst"},
}


def common_overrides(args: argparse.Namespace, protocol: dict, folder: Path, noise: str) -> list[str]:
    """What every run of one invocation shares: the data, noise, width, the protocol's settings, and resume or
    overwrite (neither: a run directory that already holds a run is refused, never started again by default; the
    memory layout is each row's: `channels_last_for`)."""
    existing_runs = ["resume=true"] if args.resume else ["overwrite=true"] if args.overwrite else []
    where_set = {  # None: the key keeps the method's own value
        "dataset.train_subset": args.subset or None,
        "trainer.batch_size": protocol.get("batch_size"),
        "trainer.val_fraction": protocol.get("val_fraction"),
        "noise.file": args.human_labels.resolve() if noise.startswith("cifar10n_") else None,
    }
    return [
        "dataset=image_folder", f"dataset.root={folder}", f"noise={noise}", f"model.width={args.width}",
        f"trainer.epochs={protocol['epochs']}", f"device={args.device}", "progress=false", *existing_runs,
        *(f"{key}={value}" for key, value in where_set.items() if value is not None),
    ]


def channels_last_for(choice: str, method: str, device: str, width: int = 16) -> bool:
    """Whether a row runs channels_last: `on` / `off` for every row, `auto` for the methods where it measured at
    least 1.3x faster on this project's CPU with the same curves (RESULTS.md, epoch_time and the curve check), at
    widths where torch's CPU backward does not crash in channels_last (`channels_last_crashes`; under width 8).
    channels_last sums the convolutions in another order, so a run with it and one without are not paired draw
    for draw: compare rows run in the same layout."""
    if choice == "auto":
        return (device == "cpu" and method in CHANNELS_LAST_METHODS
                and not channels_last_crashes("preact_resnet18", width, device))  # the protocol's network
    return choice == "on"


def run_overrides(common: list[str], key: str, protocol: dict, seed: int, output: Path,
                  channels_last: bool = False) -> list[str]:
    """One row's command-line overrides for one seed; one output root per row, since variants such as
    sanm.train_on would otherwise share a run directory."""
    _, method, extra = RUNS[key]
    return [*common, *schedule_overrides(method, protocol), *extra,
            *(["trainer.channels_last=true"] if channels_last else []), f"seed={seed}", f"output_root={output / key}"]


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
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="short",
                        help="short: 20 epochs, each method's own batch and schedule; memorisation: see above")
    parser.add_argument("--epochs", type=int, default=None, help="overrides the protocol's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--noise", default=None,
                        help="a noise preset (default sym_0.5; the cifar10n protocol: cifar10n_worst, or another "
                             "cifar10n_* preset, read from --human-labels)")
    parser.add_argument("--human-labels", type=Path, default=DEFAULT_HUMAN_LABELS,
                        help="CIFAR-10N's labels in the JPEG copy's order (the cifar10n protocol)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels-last", choices=["auto", "on", "off"], nargs="?", const="on", default="auto",
                        help="trainer.channels_last for every row (on, or the bare flag) or none (off); auto (the "
                             "default): DivideMix's rows on a CPU, 1.35x there (benchmarks/RESULTS.md). Compare "
                             "rows only with rows run in the same layout")
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=list(RUNS))
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "cifar10_mini")
    parser.add_argument("--table", type=Path, default=None, help="Markdown file (default <output>/table.md)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once, each its own process (several share a GPU; on a CPU one a core)")
    parser.add_argument("--resume", action="store_true",
                        help="continue interrupted runs from their last checkpoint (finished ones are only re-read)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start every run again, deleting what its run directory holds (without this flag or "
                             "--resume, a run directory that already holds a run stops that run with an error)")
    args = parser.parse_args()
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other: continue the runs, or start them again")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give at least 1 (runs at once)")
    protocol = {**PROTOCOLS[args.protocol], **({"epochs": args.epochs} if args.epochs else {})}
    folder = unpack(args.archive, args.cache)
    noise = args.noise or protocol.get("noise", "sym_0.5")
    if noise.startswith("cifar10n_") and not args.human_labels.is_file():
        sys.exit(f"error: {args.human_labels} not found; pass --human-labels path/to/cifar10n-jpg.npz")
    common = common_overrides(args, protocol, folder, noise)
    tasks = [(key, seed) for key in args.runs for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = dict(zip(tasks, pool.map(lambda task: train(
            *task, common, protocol, args.output,
            channels_last_for(args.channels_last, RUNS[task[0]][1], args.device, args.width)), tasks)))
    failed = [outcome for outcome in done.values() if isinstance(outcome, str)]
    if failed:
        sys.exit("\n".join(failed) + "\n(the other runs finished; rerun the same command with --resume, or with "
                 "--overwrite to start the failed ones again)")
    rows = []
    for key in args.runs:
        outcomes = [done[key, seed] for seed in args.seeds]
        rows.append((RUNS[key][0], [summary for summary, _ in outcomes],
                     [(seed, run_dir) for seed, (_, run_dir) in zip(args.seeds, outcomes)]))
    subset = f"{args.subset} images" if args.subset else "all 50k"
    schedule = (f", batch {protocol['batch_size']}, lr /10 after epoch {protocol['lr_milestones']}"
                if "lr_milestones" in protocol else "")
    held_out = (f", {protocol['val_fraction']:.0%} of the subset held out as a noisy validation split"
                if "val_fraction" in protocol else "")
    lines = [
        f"CIFAR-10 JPEG copy, {subset} (class-balanced){held_out}, {noise}, PreAct ResNet-18 width {args.width}, "
        f"{protocol['epochs']} epochs{schedule}, {args.device}{layout_note(args)}, seeds {' '.join(map(str, args.seeds))}; "
        "test on all 10k. With several seeds a cell is the mean, then each seed's value.",
        "",
        "| run | at best val | best test acc | last test acc | best - last | wrong labels fitted at the end "
        "| right labels fitted | wall |",
        "|---|---|---|---|---|---|---|---|",
    ] + [row_line(label, summaries) for label, summaries, _ in rows]
    lines += ["", *course_table(rows, course_epochs(protocol["epochs"], protocol.get("lr_milestones", [])))]
    table = args.table or args.output / "table.md"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {table}")


def train(key: str, seed: int, common: list[str], protocol: dict, output: Path,
          channels_last: bool) -> tuple[dict, Path] | str:
    """One row's run for one seed, as its own `python -m baselines.<method>` process: its summary and run
    directory, or what went wrong (the last lines it printed)."""
    label, method, _ = RUNS[key]
    command = [sys.executable, "-m", f"baselines.{method}",
               *run_overrides(common, key, protocol, seed, output, channels_last)]
    print(f"== {label}, seed {seed}: {' '.join(command[2:])}", flush=True)
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        return f"{label}, seed {seed} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    summary_path = Path(out.stdout.strip().splitlines()[-1].split("summary in ")[-1])
    summary = json.loads(summary_path.read_text())  # wall_seconds: the run's own time, summed over resumed parts
    print(f"   {label}, seed {seed}: best {summary['best_test_acc']:.2f}  last {summary['last_test_acc']:.2f}  "
          f"fitted wrong labels {summary['fitted_wrong_labels']:.1%}  ({summary['wall_seconds']:.0f} s)", flush=True)
    return summary, summary_path.parent


def layout_note(args: argparse.Namespace) -> str:
    """The table header's memory layout: which of the invocation's rows ran channels_last."""
    rows = [RUNS[key][0] for key in args.runs
            if channels_last_for(args.channels_last, RUNS[key][1], args.device, args.width)]
    if not rows:
        return ""
    return ", channels_last" if len(rows) == len(args.runs) else f", channels_last for {', '.join(rows)}"


def course_epochs(epochs: int, milestones: list[int]) -> list[int]:
    """The epochs the course-of-training table shows: every 10th (every 5th in a run of up to 30), each lr drop's
    last epoch and the two after it, every 5th after the first drop, and the last; 60 epochs with a drop after
    36 give 10 20 30 36 37 38 40 45 50 55 60, the columns of RESULTS.md's epoch tables."""
    step = 5 if epochs <= 30 else 10
    shown = set(range(step, epochs + 1, step)) | {epochs}
    for m in milestones:
        shown |= {e for e in (m, m + 1, m + 2) if 1 <= e <= epochs}
    if milestones:
        shown |= set(range(5 * (min(milestones) // 5 + 1), epochs + 1, 5))
    return sorted(shown)


def course_table(rows: list[tuple[str, list[dict], list[tuple[int, Path]]]], epochs: list[int]) -> list[str]:
    """Test accuracy at `epochs`, one row per run and seed, read from each run's metrics.jsonl."""
    lines = ["Test accuracy by epoch:", "", "| run | seed | " + " | ".join(map(str, epochs)) + " |",
             "|---|---|" + "---|" * len(epochs)]
    for label, _, run_dirs in rows:
        for seed, run_dir in run_dirs:
            history = metric_history(Run(run_dir, "finished"), "test_acc")
            lines.append(f"| {label} | {seed} | " + " | ".join(f"{history[e]:.2f}" if e in history else "-"
                                                               for e in epochs) + " |")
    return lines


def schedule_overrides(method: str, protocol: dict) -> list[str]:
    """The protocol's lr drops, for methods whose config fixes the step schedule; a method whose config names
    another shape (Co-teaching's linear decay) or leaves it to its recipe (ELR+'s `auto`: the recipe's drop at
    150 of 200 epochs, after epoch 45 of 60) keeps its own, scaled to the protocol's epochs."""
    if "lr_milestones" not in protocol:
        return []
    own = OmegaConf.load(ROOT / "conf" / f"{method}.yaml").get("trainer", {}).get("lr_schedule", "step")
    return [f"trainer.lr_milestones=[{','.join(map(str, protocol['lr_milestones']))}]"] if own == "step" else []


def cell(values: list[float], spec: str = ".2f", scale: float = 1.0) -> str:
    """The mean, then each seed's value when there are several: `54.70 (54.10 / 55.30)`."""
    shown = [format(v * scale, spec) for v in values]
    mean = format(sum(values) * scale / len(values), spec)
    return mean if len(values) == 1 else f"{mean} ({' / '.join(shown)})"


def row_line(label: str, summaries: list[dict]) -> str:
    best = [s["best_test_acc"] for s in summaries]
    last = [s["last_test_acc"] for s in summaries]
    at_val = ([s["test_acc_at_best_val"] for s in summaries] if all("test_acc_at_best_val" in s for s in summaries)
              else None)
    minutes = sum(s["wall_seconds"] for s in summaries) / 60 / len(summaries)
    return (f"| {label} | {cell(at_val) if at_val else '-'} | {cell(best)} | {cell(last)} | "
            f"{cell([b - l for b, l in zip(best, last)])} | {cell([s['fitted_wrong_labels'] for s in summaries], '.1f', 100)}% | "
            f"{cell([s['fitted_right_labels'] for s in summaries], '.1f', 100)}% | {minutes:.1f} min |")


if __name__ == "__main__":
    main()
