"""Seconds per epoch of CE, DivideMix and SANM(DivideMix) (paper and official presets), and what a 300-epoch
CIFAR-10 run would take, measured through the engine itself on the CIFAR-10 JPEG copy.

Each variant is built exactly as `python -m baselines.<method> ...` builds it (Hydra composition of conf/, the
RunContext, the method) on a class-balanced `--subset` of the training images, and trains one warm-up epoch
and one main epoch (SANM and co-divide active in it) with the method's own `train_epoch`; the test pass is
timed apart. Epoch times are extrapolated to the 50 000 training images (the steps, and DivideMix's GMM pass,
scale with the number of images; the 10 000-image test pass does not), and the 300-epoch projection counts the
method's own warm-up epochs at the warm-up rate:

    projected = warm-up epochs x warm-up epoch + (300 - warm-up) x main epoch + 300 x test pass

The variants run in one process, in turn, so the ratios (SANM(DivideMix) / DivideMix per main epoch) are taken
under the same machine load. On CPU the defaults are a small subset, fp32, no compile; on CUDA every
`--precisions` x `--compile` combination is timed (with compile on, each phase and the test pass run twice and
the second is the one extrapolated; the difference is the compilation, reported apart). Beside each epoch: the
time its views took (augmentation and normalisation, which run on the device where the images are kept; CUDA
events around each call, so nothing is added to the step's synchronisations), and on CUDA the peak GPU memory.
Without the JPEG copy, `--synthetic` times on random CIFAR-10-sized images (50k + 10k, in torchvision's CIFAR
format), which cost the same per step. Figures are printed, never asserted.

    python benchmarks/epoch_time.py                                   # CPU, 256 images, width 64
    python benchmarks/epoch_time.py --device cuda --subset 10000 --precisions 32 bf16 --compile off on
    python benchmarks/epoch_time.py --width 16 --variants ce dividemix   # a quick look
    python benchmarks/epoch_time.py --synthetic --device cuda --batch 64   # no JPEG copy at hand
    python benchmarks/epoch_time.py --device cpu --width 16 --batch 64 --variants ce sanm_ce_on dividemix \
        --compile off on --channels-last false true --threads 1 2   # which CPU options pay (issue 43)
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Callable

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from baselines.common.engine import Method, RunContext, _seed, resolve_device
from baselines.common.trainer import resolve_trainer
from baselines.registry import METHODS

CONF = Path(__file__).resolve().parents[1] / "conf"
FULL_TRAIN, FULL_TEST, EPOCHS = 50_000, 10_000, 300
VARIANTS = {  # name: (method, overrides)
    "ce": ("ce", []),
    "sanm_ce_on": ("ce", ["+sanm=on"]),
    "dividemix": ("dividemix", []),
    "sanm_dividemix_on": ("dividemix", ["+sanm=on"]),
    "sanm_dividemix_official": ("dividemix", ["+sanm=official"]),
    "sanm_dividemix_official_recipe": ("dividemix", ["+sanm=official", "+recipe=official"]),
}
DEFAULT_VARIANTS = ["ce", "dividemix", "sanm_dividemix_on", "sanm_dividemix_official"]


def compose_run(method: str, overrides: list[str]) -> Any:
    """conf/<method>.yaml with `overrides`, composed as `python -m baselines.<method> ...` composes it."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=method, overrides=overrides)


def build_method(method: str, overrides: list[str], run_dir: Path) -> Method:
    """The method as a run builds it before its first epoch (trainer `auto`s resolved, seeded, RunContext, networks);
    `method.train_epoch(epoch)` under `method.ctx.acceleration.autocast()` is then exactly a run's epoch."""
    method_cls = METHODS[method]
    cfg = compose_run(method, overrides)
    cfg = resolve_trainer(cfg, method_cls.trainer_defaults(cfg))
    _seed(cfg.seed)
    return method_cls(RunContext(cfg, run_dir, method_cls))


def data_overrides(args: argparse.Namespace) -> list[str]:
    """The dataset of the timed runs: the CIFAR-10 JPEG copy (--root), or synthetic CIFAR-10 (--synthetic: a folder
    of torchvision's CIFAR files)."""
    if args.synthetic:
        return ["dataset=cifar10", f"dataset.root={args.synthetic}", "dataset.download=false",
                f"dataset.cache_dir={args.synthetic}"]
    return ["dataset=image_folder", f"dataset.root={args.root}"]


def write_synthetic_cifar10(root: Path, n_train: int = FULL_TRAIN, n_test: int = FULL_TEST, seed: int = 0) -> Path:
    """Random 32x32 RGB images with balanced labels, as torchvision's `cifar-10-batches-py` files (what
    `dataset=cifar10 dataset.root=<root>` reads): CIFAR-10's sizes without its download. Returns `root`."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def split(n: int) -> dict:
        return {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                "labels": rng.permutation(np.arange(n) % 10).tolist()}

    train = split(n_train)
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        batch = {"data": train["data"][part], "labels": [train["labels"][j] for j in part]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(split(n_test), protocol=2))
    meta = {"label_names": [f"class_{k}" for k in range(10)], "num_cases_per_batch": 10000}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def variant_overrides(args: argparse.Namespace, precision: str, compile_on: bool) -> list[str]:
    subset = [f"dataset.train_subset={args.subset}"] if args.subset else []
    batch = [f"trainer.batch_size={args.batch}"] if args.batch else []
    return [*data_overrides(args), *subset, *batch, "noise=sym_0.5", f"model.width={args.width}",
            f"device={args.device}", "progress=false", "tensorboard=false", "trainer.epochs=2",
            "method.warmup_epochs=1", f"trainer.precision={precision}",
            f"trainer.compile={'true' if compile_on else 'false'}", f"trainer.channels_last={args.channels_last}"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ViewClock:
    """Sums the time of the calls that make a run's views (its `augment`, and a method's own presets: DivideMix's
    warm-up and MixMatch views). On CUDA a pair of events around each call, read after the epoch, so the clock adds
    no host synchronisation; on CPU the host clock."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.events: list[tuple[Any, Any]] = []
        self.host_seconds = 0.0

    def watch(self, method: Method) -> None:
        ctx = method.ctx
        ctx.augment = self._timed(ctx.augment)
        if getattr(method, "warmup_augment", None) is not None:
            method.warmup_augment = self._timed(method.warmup_augment)
        if getattr(method, "mix_augments", None):
            method.mix_augments = [self._timed(view) for view in method.mix_augments]

    def _timed(self, views: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def timed(*args: Any, **kwargs: Any) -> torch.Tensor:
            if self.device.type != "cuda":
                start = time.perf_counter()
                out = views(*args, **kwargs)
                self.host_seconds += time.perf_counter() - start
                return out
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = views(*args, **kwargs)
            end.record()
            self.events.append((start, end))
            return out

        return timed

    def take(self) -> float:
        """Seconds since the last take (call after `sync`)."""
        seconds = self.host_seconds + sum(start.elapsed_time(end) for start, end in self.events) / 1000
        self.events, self.host_seconds = [], 0.0
        return seconds


def data_placement(method: Method) -> str:
    """Where the training images live and where their views are made, for the timing tables."""
    ctx = method.ctx
    images = ctx.train_images
    where = f"{getattr(images, 'device', 'host')}"
    size = f"{images.numel() / 2**20:.0f} MB" if isinstance(images, torch.Tensor) else "streamed"
    policies = " (AutoAugment / RandAugment ops drawn on the host)" if getattr(method, "mix_augments", None) else ""
    return (f"training images: {ctx.num_train} x {list(ctx.image_shape)} uint8 on {where} ({size}); views cropped, "
            f"flipped and normalised there in whole batches{policies}")


def time_variant(name: str, args: argparse.Namespace, precision: str, compile_on: bool) -> dict:
    method_name, overrides = VARIANTS[name]
    reference_warmup = METHODS[method_name].resolve_warmup(_default_warmup_cfg(method_name, overrides))
    if compile_on:  # this variant's own compilation, not graphs an earlier variant left in the cache
        torch._dynamo.reset()
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with TemporaryDirectory() as run_dir:
        method = build_method(method_name, [*variant_overrides(args, precision, compile_on), *overrides], Path(run_dir))
        ctx = method.ctx
        clock = ViewClock(ctx.device)
        clock.watch(method)
        timings, views = {}, {}
        rounds = ("first", "") if compile_on else ("",)  # compiled: the first round of each phase compiles
        for phase, epoch in (("warmup", 0), ("main", 1)):
            for round_ in rounds:
                sync(ctx.device)
                start = time.perf_counter()
                with ctx.acceleration.autocast():
                    method.train_epoch(epoch)
                sync(ctx.device)
                timings[phase + round_] = time.perf_counter() - start
                views[phase + round_] = clock.take()
        for net in method.networks.values():
            net.model.eval()
        for round_ in rounds:
            start = time.perf_counter()
            ctx.test_accuracy(method.predict)
            sync(ctx.device)
            timings["test" + round_] = time.perf_counter() - start
        placement = data_placement(method)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    scale, test_scale = FULL_TRAIN / ctx.num_train, FULL_TEST / max(len(ctx.test_labels), 1)
    warm_epoch, main_epoch, test = timings["warmup"] * scale, timings["main"] * scale, timings["test"] * test_scale
    projected = reference_warmup * warm_epoch + (EPOCHS - reference_warmup) * main_epoch + EPOCHS * test
    compile_extra = sum(timings[k + "first"] - timings[k] for k in ("warmup", "main", "test")) if compile_on else 0.0
    return {"variant": name, "precision": ctx.acceleration.precision, "compile": compile_on,
            "channels_last": str(args.channels_last).lower() == "true", "threads": torch.get_num_threads(),
            "warmup_epoch": warm_epoch, "main_epoch": main_epoch, "test": test,
            "warmup_views": views["warmup"] * scale, "main_views": views["main"] * scale,
            "compile_extra": compile_extra, "peak_gb": None if peak is None else peak / 2**30,
            "warmup_epochs": reference_warmup, "projected_h": projected / 3600, "timed_images": ctx.num_train,
            "placement": placement}


TABLE_HEADER = ("| variant | precision | compile | warm-up epoch (s) | main epoch (s) | its views (s) | test pass (s) "
                "| compile extra (s) | peak GPU memory (GB) | warm-up epochs | projected 300 epochs (h) |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|")


def setting(r: dict) -> str:
    """The CPU options a row was timed under, for tables that compare them."""
    return f"channels_last {'on' if r['channels_last'] else 'off'}, {r['threads']} thread{'s' * (r['threads'] > 1)}"


def table_row(r: dict, with_setting: bool = False) -> str:
    """One timed variant as a row under TABLE_HEADER; the main epoch's compute is its time less its views'.
    `with_setting` names the channels_last / thread setting beside the variant (when several were timed)."""
    peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.2f}"
    variant = f"{r['variant']} ({setting(r)})" if with_setting else r["variant"]
    return (f"| {variant} | {r['precision']} | {'on' if r['compile'] else 'off'} | {r['warmup_epoch']:.1f} | "
            f"{r['main_epoch']:.1f} | {r['main_views']:.1f} | {r['test']:.1f} | {r['compile_extra']:.1f} | {peak} | "
            f"{r['warmup_epochs']} | {r['projected_h']:.2f} |")


def ratio_lines(rows: list[dict]) -> list[str]:
    """SANM(DivideMix) / DivideMix per main epoch, for each precision and compile setting timed."""
    lines = []
    keys = dict.fromkeys((r["precision"], r["compile"], r["channels_last"], r["threads"]) for r in rows)
    several = len({key[2:] for key in keys}) > 1
    for precision, compiled, channels_last, threads in keys:
        group = {r["variant"]: r for r in rows
                 if (r["precision"], r["compile"], r["channels_last"], r["threads"]) == (precision, compiled,
                                                                                          channels_last, threads)}
        base = group.get("dividemix")
        for variant in VARIANTS:
            if base and variant.startswith("sanm_dividemix") and variant in group:
                label = f"{precision}, compile {'on' if compiled else 'off'}" + (f", {setting(base)}" if several else "")
                lines.append(f"{variant} / dividemix per main epoch ({label}): "
                             f"{group[variant]['main_epoch'] / base['main_epoch']:.2f}x")
    return lines


def speedup_lines(rows: list[dict]) -> list[str]:
    """Each variant's main epoch under every other setting against its first one (the order of the flags: by
    default channels_last off, compile off, the first thread count): how much a CPU option buys."""
    lines = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        timed = [r for r in rows if r["variant"] == variant]
        base = timed[0]
        for r in timed[1:]:
            lines.append(f"{variant}: compile {'on' if r['compile'] else 'off'}, {setting(r)} against compile "
                         f"{'on' if base['compile'] else 'off'}, {setting(base)}: main epoch "
                         f"{base['main_epoch'] / r['main_epoch']:.2f}x as fast")
    return lines


def _default_warmup_cfg(method: str, overrides: list[str]):
    """The method's config for CIFAR-10 as a user would run it (its own warm-up length)."""
    return compose_run(method, ["dataset=cifar10", "noise=sym_0.5", *overrides])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(Path.home() / ".cache" / "sanm_plugin" / "cifar10-jpg"),
                        help="the CIFAR-10 JPEG copy (train/<class>/, test/<class>/)")
    parser.add_argument("--synthetic", action="store_true", help="random CIFAR-10-sized images instead of --root")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--subset", type=int, default=None, help="training images timed (CPU 256, CUDA 10000)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=None, help="trainer.batch_size (default: each method's own)")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--precisions", nargs="+", default=None, help="CPU: 32; CUDA: 32 bf16")
    parser.add_argument("--compile", nargs="+", default=None, choices=["off", "on"], help="CPU: off; CUDA: off on")
    parser.add_argument("--channels-last", nargs="+", default=["false"], choices=["true", "false"],
                        help="several: each is timed, and the speed-up of each setting printed")
    parser.add_argument("--threads", nargs="+", type=int, default=None,
                        help="torch threads; several: each is timed, and the speed-up printed")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time the whole grid this many times and keep each row's fastest main epoch (CPU "
                             "kernels are built the first time a shape runs, which favours later rows)")
    args = parser.parse_args()
    if not args.synthetic and not (Path(args.root) / "train").is_dir():
        parser.error(f"{args.root} has no train/ folder: unpack the CIFAR-10 JPEG copy there, give --root, or "
                     "time on random images with --synthetic")
    device = resolve_device(args.device)
    args.device = str(device)
    cuda = device.type == "cuda"
    args.subset = args.subset or (10_000 if cuda else 256)
    precisions = args.precisions or (["32", "bf16"] if cuda else ["32"])
    compiles = [c == "on" for c in (args.compile or (["off", "on"] if cuda else ["off"]))]
    thread_counts = args.threads or [torch.get_num_threads()]
    layouts = list(dict.fromkeys(args.channels_last))
    several = len(thread_counts) * len(layouts) * len(compiles) > 1
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({os.cpu_count()} cores)"
    with TemporaryDirectory() as synthetic:
        args.synthetic = write_synthetic_cifar10(Path(synthetic)) if args.synthetic else None
        source = "synthetic CIFAR-10" if args.synthetic else "CIFAR-10 JPEG"
        print(f"{name}; torch {torch.__version__}; {args.subset} of 50k {source} training images timed, width "
              f"{args.width}; extrapolated to 50k images and {EPOCHS} epochs\n")
        rounds = []
        for _ in range(args.repeats):  # the whole grid again: the first time a shape runs, kernels are built
            rows = []
            for precision in precisions:  # a variant's settings back to back, each speed-up under one load
                for variant in args.variants:
                    for compiled in compiles:
                        for threads in thread_counts:
                            torch.set_num_threads(threads)
                            for layout in layouts:
                                args.channels_last = layout
                                rows.append(time_variant(variant, args, precision, compiled))
            rounds.append(rows)
        rows = [min(timed, key=lambda r: r["main_epoch"]) for timed in zip(*rounds)]  # each setting's fastest
    print(rows[0]["placement"] + "\n")
    print(TABLE_HEADER)
    settings = len({(r["channels_last"], r["threads"]) for r in rows}) > 1
    for row in rows:
        print(table_row(row, with_setting=settings))
    print()
    print("\n".join(ratio_lines(rows) + (speedup_lines(rows) if several else [])))


if __name__ == "__main__":
    main()
