"""Training step time of SANM(CE) against plain CE, in one process, and where the SANM step spends it.

Every variant trains its own deep copy of ONE initialised PreAct ResNet-18 (DivideMix's, at each
`--widths`) on the same batch of random 32x32x3 images with 10 classes, round-robin, so machine noise
hits all of them alike. The steps are the baselines' own:

  CE           forward, cross-entropy on the labels, backward, SGD step (baselines/ce.py without SANM)
  SANM(CE)     `SANMHook.supervised_loss` + `Network.step`, hook built as the engine builds it:
               clean forward -> modulate_batch -> regularize_labels -> masked forward -> soft CE
               + reconstruction -> backward -> SGD step over model and decoder parameters

Reading it: with train_on=clean_and_masked the step runs the network forward and backward twice
(clean and masked batch), so expect about 2x CE, plus the decoder (its forward + backward costs
about 0.2x a CE step: three transposed convolutions up to full resolution) and the masking (a few
ms); train_on=masked runs the clean forward without gradient, so about 1.5-1.7x. The official preset
trains the peak- and trough-masked images as separate rows (trough=separate_image): the masked
forward/backward and the decoder see 2B rows, so about 3.5-4x and, with masked, about 3x.
Headline times are the best of `--repeats` steps after a warm-up; the parts (paper preset,
clean_and_masked) are means over the repeats of one step with timestamps between its phases:
clean fwd (with grad, and the clean CE), masking (modulate_batch + regularize_labels), masked
fwd+bwd+step (everything after masking: masked forward, losses, backward through both graphs, SGD
step), and the decoder alone (forward + backward on detached masked features, also part of the
previous figure). Figures are printed, never asserted.

    python benchmarks/overhead.py                          # CPU, torch's default threads, widths 16 and 64
    python benchmarks/overhead.py --threads 1              # steadier when other jobs share the CPU
    python benchmarks/overhead.py --device cuda --repeats 20
    python benchmarks/overhead.py --methods dividemix    # SANM(DivideMix) / DivideMix per MixMatch iteration
    python benchmarks/overhead.py --methods elr_plus cdr coteaching --widths 16   # per training epoch

DivideMix: one MixMatch iteration of DivideMix's own code (two views of 64 labeled and 64 unlabeled
images, co-refinement and co-guessing forwards, the mixed forward and backward); SANM adds its masked
views to the mixed batch and the reconstruction, either from a forward of the masked views
(recon_source=separate, the official wiring) or from the mixed forward (mixed). The official code's
ratio is about 4x; the paper preset with mixed reconstruction aims for at most 1.5x.

ELR+, CDR, Co-teaching: the steps of each method's own `train_epoch` on `--steps` batches of digits
images, without SANM, with the paper preset and with the official one (a "step" is one batch of the
method, both networks' updates for ELR+ and Co-teaching);
SANM's per-epoch GMM refresh is timed apart. Co-teaching
runs its 9-layer CNN at `--widths` (128 upstream).
"""

from __future__ import annotations

import argparse
import copy
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from baselines.common.engine import Network
from baselines.common.losses import soft_cross_entropy
from baselines.common.models import PreActResNet18
from baselines.common.sanm_hook import SANMHook, SANMSettings
from sanm_plugin import FeatureTap, SANMConfig

CLASSES, IMAGE = 10, (3, 32, 32)
LR, MOMENTUM, WEIGHT_DECAY = 0.02, 0.9, 5e-4  # the trainer's defaults (baselines/common/config.py)


def make_net(reference: torch.nn.Module, device: str, preset=None, train_on: str = "", batch: int = 0):
    """A copy of `reference` with its tap, optimiser and (when `preset` is given) a SANMHook.

    The hook is built as `Network.__init__` builds it; its G is random in [0, 1] so boxes are drawn
    at realistic sizes (G = 1 everywhere would make the paper's peak box empty).
    """
    model = copy.deepcopy(reference).train()
    hook = None
    if preset is not None:
        with torch.no_grad():
            feats = copy.deepcopy(reference).eval().forward_features(torch.zeros(2, *IMAGE, device=device))
        is_clean = torch.rand(batch, device=device) > 0.4  # diagnostics only
        torch.manual_seed(1)  # the same decoder weights for every variant
        hook = SANMHook(SANMSettings(preset, train_on, "label", 0), CLASSES, feats.shape[1], IMAGE,
                        tuple(feats.shape[2:]), is_clean).to(device)
        hook.set_quality(torch.rand(batch, generator=torch.Generator().manual_seed(2)))
    params = [*model.parameters(), *(hook.parameters() if hook is not None else [])]
    optimizer = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    # Network.step reads only these attributes; calling it unbound keeps the step the engine's own.
    return SimpleNamespace(model=model, module=model, tap=FeatureTap(model), sanm=hook, optimizer=optimizer,
                           grad_edit=None, grad_clip=None, scaler=None)


def ce_step(net, x, y, index) -> None:
    Network.step(net, F.cross_entropy(net.model(x), y))


def sanm_step(net, x, y, index) -> None:
    loss, _ = net.sanm.supervised_loss(net.tap, x, index, y, net.tap.classifier_weight,
                                       clean_loss=lambda logits: F.cross_entropy(logits, y))
    Network.step(net, loss)


def phased_step(net, x, y, index, clock) -> list[float]:
    """supervised_loss (train_on=clean_and_masked) + Network.step, with a timestamp between phases;
    then the decoder's forward + backward alone. Returns [clean fwd, masking, masked fwd+bwd+step, decoder]."""
    hook, tap = net.sanm, net.tap
    t0 = clock()
    logits, feats = tap(x)
    clean_term = F.cross_entropy(logits, y)
    t1 = clock()
    views = hook.views(x, logits, feats, index, y, tap.classifier_weight)
    t2 = clock()
    logits_m, feats_m = tap(views.images)
    loss = clean_term + soft_cross_entropy(logits_m, views.targets) + hook.reconstruction(feats_m, x)
    Network.step(net, loss)
    t3 = clock()
    hook.reconstruction(feats_m.detach().requires_grad_(), x).backward()  # grads cleared by the next step
    t4 = clock()
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3]


def bench_width(width: int, args) -> str:
    device, batch = args.device, args.batch
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def clock() -> float:
        sync()
        return time.perf_counter()

    torch.manual_seed(0)
    reference = PreActResNet18(CLASSES, width=width).to(device)
    x = torch.randn(batch, *IMAGE, device=device)
    y = torch.randint(0, CLASSES, (batch,), device=device)
    index = torch.arange(batch, device=device)
    variants = {"CE": (make_net(reference, device), ce_step)}
    for preset_name, preset in (("paper", SANMConfig.paper()), ("official", SANMConfig.official())):
        for train_on in ("clean_and_masked", "masked"):
            variants[f"{preset_name} {train_on}"] = (make_net(reference, device, preset, train_on, batch), sanm_step)
    phased = make_net(reference, device, SANMConfig.paper(), "clean_and_masked", batch)

    times = {name: [] for name in variants}
    parts = []
    for repeat in range(args.warmup + args.repeats):
        for name, (net, step) in variants.items():
            start = clock()
            step(net, x, y, index)
            elapsed = clock() - start
            if repeat >= args.warmup:
                times[name].append(elapsed)
        measured = phased_step(phased, x, y, index, clock)
        if repeat >= args.warmup:
            parts.append(measured)

    best = {name: min(values) * 1e3 for name, values in times.items()}
    ce_mean = sum(times["CE"]) / len(times["CE"]) * 1e3
    mean_parts = [sum(p[i] for p in parts) / len(parts) * 1e3 for i in range(4)]
    total = sum(mean_parts[:3])
    cells = [f"CE {best['CE']:.1f} ms"] + [
        f"{'SANM(CE) ' * (i == 0)}{name} {best[name]:.1f} ms ({best[name] / best['CE']:.2f}x)"
        for i, name in enumerate(n for n in variants if n != "CE")
    ]
    params = sum(p.numel() for p in reference.parameters()) / 1e6
    lines = [f"width {width} ({params:.2f}M params), best of {args.repeats} steps:",
             "  " + " | ".join(cells),
             f"  parts (paper, clean_and_masked; mean of {args.repeats}, ms): clean fwd {mean_parts[0]:.1f}, "
             f"masking {mean_parts[1]:.1f}, masked fwd+bwd+step {mean_parts[2]:.1f}, "
             f"decoder fwd+bwd {mean_parts[3]:.1f} | total {total:.1f} vs CE mean {ce_mean:.1f} "
             f"({total / ce_mean:.2f}x)"]
    return "\n".join(lines)


DIVIDEMIX_VARIANTS = {  # name: overrides; the masked views join the MixMatch batch (baselines/dividemix.py)
    "DivideMix": [],
    "paper separate": ["+sanm=paper", "sanm.recon_source=separate"],
    "paper mixed": ["+sanm=paper", "sanm.recon_source=mixed"],
    "official separate": ["+sanm=official", "sanm.recon_source=separate"],
    "official mixed": ["+sanm=official", "sanm.recon_source=mixed"],
}


def bench_dividemix(width: int, args) -> str:
    """One MixMatch iteration of network 1 (64 labeled + 64 unlabeled images), DivideMix's own code,
    with and without SANM; the same weights, index batches and clean probabilities for every variant."""
    import tempfile
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from baselines.common.engine import RunContext
    from baselines.dividemix import DivideMix

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    conf = Path(__file__).resolve().parents[1] / "conf"
    methods = {}
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for name, overrides in DIVIDEMIX_VARIANTS.items():
            cfg = compose(config_name="dividemix", overrides=[
                "+experiment=smoke", "dataset.train_subset=null", "noise=sym_0.5", f"model.width={width}",
                f"trainer.batch_size={args.batch}", f"device={args.device}", f"dataset.cache_dir={tmp}", *overrides])
            torch.manual_seed(0)  # the same initial networks and decoders for every variant
            methods[name] = DivideMix(RunContext(cfg, Path(tmp), DivideMix))
    ctx = methods["DivideMix"].ctx
    prob = torch.rand(ctx.num_train, generator=torch.Generator().manual_seed(3)).to(ctx.device)
    order = torch.randperm(ctx.num_train, generator=torch.Generator().manual_seed(4)).to(ctx.device)
    lab, unl = order[prob[order] > 0.5][: args.batch], order[prob[order] <= 0.5][: args.batch]
    times = {name: [] for name in methods}
    for repeat in range(args.warmup + args.repeats):
        for name, method in methods.items():
            sync()
            start = time.perf_counter()
            method._mixmatch_step(method.nets[0], method.nets[1], lab, unl, prob, lambda_u=25.0, epoch=5)
            sync()
            if repeat >= args.warmup:
                times[name].append(time.perf_counter() - start)
    best = {name: min(values) * 1e3 for name, values in times.items()}
    cells = [f"DivideMix {best['DivideMix']:.0f} ms"] + [
        f"{'SANM(DivideMix) ' * (i == 0)}{name} {best[name]:.0f} ms ({best[name] / best['DivideMix']:.2f}x)"
        for i, name in enumerate(n for n in methods if n != "DivideMix")]
    return f"DivideMix iteration, width {width}, best of {args.repeats}:\n  " + " | ".join(cells)


EPOCH_METHODS = ("elr_plus", "cdr", "coteaching")  # timed through the method's own train_epoch


def bench_epochs(method_name: str, width: int, args) -> str:
    """Training steps of `method_name`'s own `train_epoch`, with and without SANM, on the same digits
    images (32x32, `--steps` batches per epoch); variants alternate so machine noise hits all alike.
    Epoch 10 of 20 with SANM active, past Co-teaching's forget-rate ramp, so the steady-state step is
    timed. SANM's per-epoch GMM refresh (one evaluation pass + the fit) is timed apart: in a short timed
    epoch it would weigh far more than in a real one."""
    import tempfile
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from baselines.common.engine import RunContext
    from baselines.common.trainer import resolve_trainer
    from baselines.registry import BASELINES

    cls = BASELINES[method_name]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    conf = Path(__file__).resolve().parents[1] / "conf"
    methods = {}
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for name, overrides in EPOCH_VARIANTS.items():
            cfg = compose(config_name=method_name, overrides=[
                "+experiment=smoke", f"dataset.train_subset={args.batch * args.steps}", "noise=sym_0.5",
                f"model.width={width}", f"trainer.batch_size={args.batch}", "trainer.epochs=20",
                "trainer.val_fraction=0", "method.warmup_epochs=0", f"device={args.device}",
                f"dataset.cache_dir={tmp}", "progress=false", *overrides])
            cfg = resolve_trainer(cfg, cls.trainer_defaults(cfg))  # what run() does first
            torch.manual_seed(0)  # the same initial networks for every variant
            methods[name] = cls(RunContext(cfg, Path(tmp), cls))
    refresh = {}
    for name, method in methods.items():  # G once (timed), then the steps alone
        sync()
        start = time.perf_counter()
        method.on_epoch_start(10)
        sync()
        refresh[name] = time.perf_counter() - start
        method.on_epoch_start = lambda epoch: {}
    times = {name: [] for name in methods}
    for repeat in range(args.warmup + args.repeats):
        for name, method in methods.items():
            sync()
            start = time.perf_counter()
            method.train_epoch(10)
            sync()
            if repeat >= args.warmup:
                times[name].append(time.perf_counter() - start)
    steps = args.steps
    per_step = {name: min(values) * 1e3 / steps for name, values in times.items()}
    model = methods["off"].ctx.cfg.model.name
    cells = [f"{name} {per_step[name]:.0f} ms ({per_step[name] / per_step['off']:.2f}x)" for name in methods]
    refreshes = [f"{name} {refresh[name] * 1e3:.0f} ms" for name in methods if name != "off"]
    return (f"{method_name} step, {model} width {width}, batch {args.batch}, best of {args.repeats} epochs of "
            f"{steps} steps:\n  " + " | ".join(cells) + f"\n  SANM's GMM refresh, once per epoch (an evaluation "
            f"pass over the {methods['off'].ctx.num_train} images + the fit, per network): " + ", ".join(refreshes))


EPOCH_VARIANTS = {"off": [], "paper": ["+sanm=paper"], "official": ["+sanm=official"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant (best-of / mean)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--steps", type=int, default=8, help="batches per timed epoch (elr_plus, cdr, coteaching)")
    parser.add_argument("--methods", nargs="+", default=["ce", "dividemix", *EPOCH_METHODS],
                        choices=["ce", "dividemix", *EPOCH_METHODS])
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} thread(s); "
          f"PreAct ResNet-18, batch {args.batch}, images {'x'.join(map(str, IMAGE))}, {CLASSES} classes")
    for width in args.widths:
        if "ce" in args.methods:
            print(bench_width(width, args), flush=True)
        if "dividemix" in args.methods:
            print(bench_dividemix(width, args), flush=True)
        for method in EPOCH_METHODS:
            if method in args.methods:
                print(bench_epochs(method, width, args), flush=True)


if __name__ == "__main__":
    main()
