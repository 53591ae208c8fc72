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
`--precisions` x `--compile` combination is timed (compile's first-epoch compilation is reported apart: the
warm-up epoch is run twice and the second is the one extrapolated). Figures are printed, never asserted.

    python benchmarks/epoch_time.py                                   # CPU, 256 images, width 64
    python benchmarks/epoch_time.py --device cuda --subset 10000 --precisions 32 bf16 --compile off on
    python benchmarks/epoch_time.py --width 16 --variants ce dividemix   # a quick look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
from hydra import compose, initialize_config_dir

from baselines.common.engine import RunContext, _seed, resolve_device
from baselines.common.trainer import resolve_trainer
from baselines.registry import BASELINES

CONF = Path(__file__).resolve().parents[1] / "conf"
FULL_TRAIN, EPOCHS = 50_000, 300
VARIANTS = {  # name: (method, overrides)
    "ce": ("ce", []),
    "dividemix": ("dividemix", []),
    "sanm_dividemix_on": ("dividemix", ["+sanm=on"]),
    "sanm_dividemix_official": ("dividemix", ["+sanm=official"]),
}


def compose_variant(method: str, overrides: list[str], args: argparse.Namespace, precision: str,
                    compile_on: bool) -> object:
    common = ["dataset=image_folder", f"dataset.root={args.root}", f"dataset.train_subset={args.subset}",
              "noise=sym_0.5", f"model.width={args.width}", f"device={args.device}", "progress=false",
              "trainer.epochs=2", "method.warmup_epochs=1", f"trainer.precision={precision}",
              f"trainer.compile={'true' if compile_on else 'false'}", f"trainer.channels_last={args.channels_last}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=method, overrides=[*common, *overrides])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_variant(name: str, args: argparse.Namespace, precision: str, compile_on: bool) -> dict:
    method_name, overrides = VARIANTS[name]
    method_cls = BASELINES[method_name]
    cfg = compose_variant(method_name, overrides, args, precision, compile_on)
    reference_warmup = method_cls.resolve_warmup(_default_warmup_cfg(method_name))
    cfg = resolve_trainer(cfg, method_cls.trainer_defaults(cfg))
    _seed(cfg.seed)
    with TemporaryDirectory() as run_dir:
        ctx = RunContext(cfg, Path(run_dir), method_cls)
        method = method_cls(ctx)
        timings = {}
        phases = [("compile", 0)] if compile_on else []
        for phase, epoch in [*phases, ("warmup", 0), ("main", 1)]:
            sync(ctx.device)
            start = time.perf_counter()
            with ctx.acceleration.autocast():
                method.train_epoch(epoch)
            sync(ctx.device)
            timings[phase] = time.perf_counter() - start
        for net in method.networks.values():
            net.model.eval()
        start = time.perf_counter()
        ctx.test_accuracy(method.predict)
        sync(ctx.device)
        timings["test"] = time.perf_counter() - start
    scale = FULL_TRAIN / ctx.num_train
    warm_epoch, main_epoch = timings["warmup"] * scale, timings["main"] * scale
    projected = reference_warmup * warm_epoch + (EPOCHS - reference_warmup) * main_epoch + EPOCHS * timings["test"]
    return {"variant": name, "precision": ctx.acceleration.precision, "compile": compile_on,
            "warmup_epoch": warm_epoch, "main_epoch": main_epoch, "test": timings["test"],
            "compile_extra": timings.get("compile", 0.0) - timings["warmup"] if compile_on else 0.0,
            "warmup_epochs": reference_warmup, "projected_h": projected / 3600}


def _default_warmup_cfg(method: str):
    """The method's config for CIFAR-10 as a user would run it (its own warm-up length)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=method, overrides=["dataset=cifar10", "noise=sym_0.5"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(Path.home() / ".cache" / "sanm_plugin" / "cifar10-jpg"),
                        help="the CIFAR-10 JPEG copy (train/<class>/, test/<class>/)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--subset", type=int, default=None, help="training images timed (CPU 256, CUDA 10000)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--precisions", nargs="+", default=None, help="CPU: 32; CUDA: 32 bf16")
    parser.add_argument("--compile", nargs="+", default=None, choices=["off", "on"], help="CPU: off; CUDA: off on")
    parser.add_argument("--channels-last", default="false", choices=["true", "false"])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if not (Path(args.root) / "train").is_dir():
        parser.error(f"{args.root} has no train/ folder: unpack the CIFAR-10 JPEG copy there, or give --root")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    args.device = str(device)
    cuda = device.type == "cuda"
    args.subset = args.subset or (10_000 if cuda else 256)
    precisions = args.precisions or (["32", "bf16"] if cuda else ["32"])
    compiles = [c == "on" for c in (args.compile or (["off", "on"] if cuda else ["off"]))]
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}; torch {torch.__version__}; {args.subset} of 50k CIFAR-10 JPEG training images timed, width "
          f"{args.width}, channels_last {args.channels_last}; extrapolated to 50k images and {EPOCHS} epochs\n")
    rows = [time_variant(v, args, p, c) for p in precisions for c in compiles for v in args.variants]
    print("| variant | precision | compile | warm-up epoch (s) | main epoch (s) | test pass (s) | compile extra (s) "
          "| warm-up epochs | projected 300 epochs (h) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['precision']} | {'on' if r['compile'] else 'off'} | {r['warmup_epoch']:.1f} | "
              f"{r['main_epoch']:.1f} | {r['test']:.1f} | {r['compile_extra']:.1f} | {r['warmup_epochs']} | "
              f"{r['projected_h']:.2f} |")
    print()
    for p in precisions:
        for c in compiles:
            group = {r["variant"]: r for r in rows if r["precision"] == resolve_name(p, device) and r["compile"] == c}
            base = group.get("dividemix")
            for variant in ("sanm_dividemix_on", "sanm_dividemix_official"):
                if base and variant in group:
                    print(f"{variant} / dividemix per main epoch ({p}, compile {'on' if c else 'off'}): "
                          f"{group[variant]['main_epoch'] / base['main_epoch']:.2f}x")


def resolve_name(precision: str, device: torch.device) -> str:
    from baselines.common.acceleration import resolve_precision

    return resolve_precision(precision, device)


if __name__ == "__main__":
    main()
