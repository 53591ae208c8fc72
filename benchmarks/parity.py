"""Parity with the official code (issue 42): the same inputs and random draws through the official functions and
through ours, quantity by quantity.

    python benchmarks/parity.py --official-sanm DIR [--official-dividemix DIR] [--batch 4] [--seed 0]

DIR is a checkout of github.com/yuanpengtu/SANM (and of github.com/LiJunnan1992/DivideMix); this project never
contains their code. Their `Train_cifar.py` parse arguments and train at import, so the script is never imported:
its function and class definitions (and the imports they need, data loaders aside) are taken from its syntax tree
and run in a fresh namespace. What they read from the script's module level (`args`, `warm_up`, `criterion`, `CE`,
`eval_loader`) is set here, their `.cuda()` calls return the tensor or module itself (on the CPU), and their draws
(`random.uniform`, `np.random.beta`, `torch.randperm`) return values drawn here, the same ones our code is given.
The official `train()` is observed through its own locals when it calls `loss.backward()`, and through the optimizer
it is handed, which keeps the gradients instead of stepping.

Compared, each as the largest absolute difference and that difference relative to the largest official value:

- co-divide (`eval_train`): per-sample losses, their min-max normalisation, the GMM's input (the mean of the last 5
  epochs' at 90% noise) and the clean probability, against `DivideMix.co_divide` (50,000 samples: the official code
  sizes its loss table so);
- the SANM(DivideMix) step (`train` with `attention_erase_map`) against `DivideMix._mixmatch_step` under
  `+sanm=official +recipe=official`, both running our network (behind the official one's call signature) on the
  same batch: targets after co-guessing, refinement and sharpening, the peak and trough boxes, their fill values,
  the NLR targets, the masked images, the reconstruction term, the mixed batch and targets, L_x, L_u, the ramp,
  the prior penalty, the loss and the gradients;
- one whole SANM(DivideMix) step on the official network (`resnetc2d.py`'s SupCEResNet, which returns softmax
  probabilities that its code reads as logits) and on our ResNet-18 holding the same weights, with the official
  decoder on both sides: with `model.softmax_output=true`, which reproduces that double softmax, and without it;
- the DivideMix step (`--official-dividemix`): the same without SANM, each side with its own PreAct ResNet-18
  holding the same weights;
- deliberate differences, listed with their size: our default logits (`model.softmax_output=false`) against the
  official double softmax, and the paper preset (`+sanm=on`) in place of the official one.

Everything runs on the CPU in a minute or two. benchmarks/RESULTS.md holds the table and the commits it was taken
against; tests/benchmarks/test_parity.py runs this harness against a stand-in written in this project.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import copy
import io
import subprocess
import sys
import tempfile
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import baselines.dividemix as dividemix_module  # noqa: E402
import sanm_plugin.masking as masking  # noqa: E402
import sanm_plugin.quality as quality  # noqa: E402
from baselines.common.engine import RunContext  # noqa: E402
from baselines.common.mixup import linear_rampup, mix  # noqa: E402
from baselines.common.trainer import resolve_trainer  # noqa: E402
from baselines.dividemix import DivideMix  # noqa: E402

TOLERANCE = 1e-5  # relative to the largest official value
OFFICIAL_SAMPLES = 50_000  # eval_train's loss table: torch.zeros(50000)
CLASSES = 10
WARMUP, EPOCH = 10, 15  # the step is taken 5 epochs after a 10-epoch warm-up: lambda_u ramps to 5/16 of 25
DATA_MODULES = ("dataloader",)  # the official data loaders: the harness hands the functions tensors instead


# ------------------------------------------------------------------ loading the official definitions
@dataclass
class Official:
    """The definitions of one official script, in a namespace of their own."""

    script: Path
    namespace: dict
    skipped: list[int]  # line numbers of the module-level statements left out (argument parsing, training)
    commit: str

    def __getitem__(self, name: str) -> Any:
        if name not in self.namespace:
            raise SystemExit(f"{self.script} defines no {name!r}: is it a checkout of the right repository?")
        return self.namespace[name]


def load_definitions(script: Path) -> Official:
    """The functions and classes of `script` and the imports they need, without running its module level.

    A definition whose default values read a module-level setting (`num_classes = num_classes`) cannot be built
    without that module level: it is left out with the rest, as nothing compared here calls it."""
    if not script.is_file():
        raise SystemExit(f"{script} not found: give the folder of a checkout of the official repository")
    tree = ast.parse(script.read_text(), filename=str(script))
    imports = [node for node in tree.body if _is_import(node) and not _data_import(node)]
    definitions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    skipped = [node.lineno for node in tree.body if node not in imports and node not in definitions]
    namespace = {"__name__": f"official_{script.parent.name}", "__builtins__": builtins}
    folder = str(script.parent)
    siblings = {path.stem for path in script.parent.glob("*.py")}
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name in siblings}
    sys.path.insert(0, folder)
    try:  # the sibling modules (resnetc2d, PreResNet) are imported fresh from this checkout, then forgotten
        _execute(imports, script, namespace)
        for node in definitions:
            try:
                _execute([node], script, namespace)
            except NameError:
                skipped.append(node.lineno)
    except ImportError as error:
        raise SystemExit(f"{script} needs {error.name!r}, which is not installed here "
                         f"(cv2: pip install opencv-python-headless)") from None
    finally:
        sys.path.remove(folder)
        for name in siblings:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return Official(script, namespace, sorted(skipped), _commit(script.parent))


def _execute(nodes: list[ast.stmt], script: Path, namespace: dict) -> None:
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(script), "exec"), namespace)


def _is_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module != "__future__"
    return isinstance(node, ast.Import)


def _data_import(node: ast.stmt) -> bool:
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
    return any(name.startswith(DATA_MODULES) for name in names)


def _commit(folder: Path) -> str:
    """The checkout's commit; a folder that is not the top of a git checkout has none (a copy, or a folder inside
    another repository)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() == folder.resolve():
            return git("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        pass
    return "unknown (not a git checkout)"


@contextmanager
def quietly() -> Iterator[None]:
    """The official functions' progress lines and deprecation warnings, kept off the table."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def cuda_on_cpu() -> Iterator[None]:
    """`.cuda()` on tensors and modules returns them as they are: the official functions run on the CPU."""
    tensor_cuda, module_cuda = torch.Tensor.cuda, nn.Module.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    nn.Module.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda, nn.Module.cuda = tensor_cuda, module_cuda


@contextmanager
def replaced(target: Any, **values: Any) -> Iterator[None]:
    """Attributes of an object (entries of a dict) set for the duration, then put back (or removed again)."""
    read, write, remove = ((target.get, target.__setitem__, target.pop) if isinstance(target, dict) else
                           (lambda k, d: target.__dict__.get(k, d), lambda k, v: setattr(target, k, v),
                            lambda k, d: delattr(target, k)))
    missing = object()
    before = {key: read(key, missing) for key in values}
    for key, value in values.items():
        write(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            remove(key, None) if value is missing else write(key, value)


@contextmanager
def locals_at_backward() -> Iterator[list[dict]]:
    """The caller's local variables each time a loss is back-propagated (the official train()'s, at loss.backward())."""
    captured: list[dict] = []
    original = torch.Tensor.backward

    def backward(self, *args, **kwargs):
        captured.append(dict(sys._getframe(1).f_locals))
        return original(self, *args, **kwargs)

    torch.Tensor.backward = backward
    try:
        yield captured
    finally:
        torch.Tensor.backward = original


# ------------------------------------------------------------------ the draws both sides are given
class Uniforms:
    """`random` for the official code: uniform(a, b) = a + (b - a) u with the next given u (Python's formula)."""

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)

    def uniform(self, low: float, high: float) -> float:
        if not self.values:
            raise RuntimeError("the official code drew more uniforms than the harness prepared")
        return low + (high - low) * self.values.pop(0)


class WithDraws:
    """A module (torch, numpy) whose named functions return the given draws; everything else is the module's."""

    def __init__(self, module: Any, **draws: Callable) -> None:
        self._module, self._draws = module, draws

    def __getattr__(self, name: str) -> Any:
        return self._draws[name] if name in self._draws else getattr(self._module, name)


class FixedBeta:
    """A numpy Generator stand-in for `mix(rng=...)`: beta() returns the given draw."""

    def __init__(self, value: float) -> None:
        self.value = value

    def beta(self, a: float, b: float) -> float:
        return self.value


@dataclass
class StepDraws:
    """One step's random draws: per sample of [x; u] the official ratio's and aspect's uniforms and the six fill
    values (peak box, then trough box, one per channel); mixup's Beta draw and permutation."""

    ratio: torch.Tensor  # [N]
    aspect: torch.Tensor  # [N]
    fill: torch.Tensor  # [N, 2, 3]
    beta: float
    perm: torch.Tensor  # [rows]

    @classmethod
    def draw(cls, samples: int, rows: int, generator: torch.Generator, alpha: float = 4.0) -> "StepDraws":
        u = torch.rand(samples, 8, generator=generator)
        beta = float(np.random.default_rng(int(torch.randint(2**31, (), generator=generator))).beta(alpha, alpha))
        return cls(u[:, 0], u[:, 1], u[:, 2:].reshape(samples, 2, 3), beta, torch.randperm(rows, generator=generator))

    def official_uniforms(self) -> list[float]:
        """attention_erase_map's order: per sample the ratio, the aspect, three peak and three trough fills."""
        return [float(v) for i in range(len(self.ratio))
                for v in (self.ratio[i], self.aspect[i], *self.fill[i].flatten())]

    @contextmanager
    def into_ours(self) -> Iterator[None]:
        """Our masking draws (sanm_plugin.masking) return these: the ratio's rand_like, the aspect, the fills."""
        n = len(self.ratio)

        def rand_like(tensor, *args, **kwargs):
            return self.ratio.view(n, 1).to(tensor)

        def aspect(shape, delta, device):
            return (delta + (1.0 / delta - delta) * self.aspect.double()).float().view(shape).to(device)

        def fill(shape, device, dtype):  # [2N, 3, 1]: copy j of image i is row j*N + i
            return self.fill.permute(1, 0, 2).reshape(shape).to(device, dtype)

        with replaced(masking, torch=WithDraws(torch, rand_like=rand_like), sample_aspect=aspect, uniform=fill):
            yield


# ------------------------------------------------------------------ rows of the table
@dataclass
class Row:
    part: str
    quantity: str
    ours: Any
    official: Any
    note: str = ""
    deliberate: bool = False  # a difference we chose (listed with its size, not held to the tolerance)

    @property
    def diffs(self) -> tuple[float, float]:
        ours, official = (_float64(v) for v in (self.ours, self.official))
        if ours.shape != official.shape:
            raise ValueError(f"{self.part}: {self.quantity}: ours has {tuple(ours.shape)} values, the official code "
                             f"{tuple(official.shape)}")
        largest = float((ours - official).abs().max()) if ours.numel() else 0.0
        scale = float(official.abs().max()) if official.numel() else 0.0
        return largest, (largest / scale if scale > 0 else (0.0 if largest == 0 else float("inf")))

    @property
    def within(self) -> bool:
        return self.diffs[1] <= TOLERANCE


def _float64(values: Any) -> torch.Tensor:
    """A flat float64 tensor of a tensor, an array, a number or a list of numbers (no float32 on the way)."""
    if isinstance(values, torch.Tensor):
        return values.detach().double().flatten()
    return torch.from_numpy(np.asarray(values, dtype=np.float64).reshape(-1))


def markdown(rows: list[Row]) -> str:
    lines = [f"| part | quantity | max abs diff | max rel diff | within {TOLERANCE:g} | note |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        absolute, relative = row.diffs
        if row.within:
            verdict = "deliberate" if row.deliberate else "yes"
        else:
            verdict = "no, deliberate" if row.deliberate else "**no**"
        lines.append(f"| {row.part} | {row.quantity} | {absolute:.3g} | {relative:.3g} | {verdict} | {row.note} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ our side
def build_ours(workdir: Path, *overrides: str) -> DivideMix:
    """Our DivideMix on the smoke preset's digits (the data never reaches the compared step: it is handed tensors)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="dividemix", overrides=[
            "+experiment=smoke", "pretrained=null", "progress=false", "tensorboard=false", "device=cpu",
            f"dataset.cache_dir={workdir}", f"method.warmup_epochs={WARMUP}", *overrides])
    cfg = resolve_trainer(cfg, DivideMix.trainer_defaults(cfg))
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    return DivideMix(RunContext(cfg, run_dir, DivideMix))


class Lookup(nn.Module):
    """A network whose input is a batch of sample indices and whose output is those samples' given logits, bare (ours)
    or in the official SupCEResNet's triple (featmap, features, outputs)."""

    def __init__(self, logits: torch.Tensor, triple: bool = False) -> None:
        super().__init__()
        self.logits, self.triple = logits, triple

    def forward(self, index: torch.Tensor):
        logits = self.logits[index.long()]
        return (None, None, logits) if self.triple else logits


class OfficialSignature(nn.Module):
    """Our network behind the official SupCEResNet's call: (feature map, pooled features, outputs), or with recon=True
    the decoder's reconstruction. `softmax` returns probabilities as that network does."""

    def __init__(self, model: nn.Module, decoder: nn.Module, softmax: bool = False) -> None:
        super().__init__()
        self.model, self.decoder, self.softmax = model, decoder, softmax

    def forward(self, x: torch.Tensor, return_map: bool = False, recon: bool = False):
        feats = self.model.forward_features(x)
        if recon:
            return self.decoder(feats)
        outputs = self.model.forward_head(feats)
        return feats, self.model.forward_head(feats, pre_logits=True), outputs.softmax(-1) if self.softmax else outputs


class KeepGradients:
    """The optimizer handed to the official train(): zero_grad clears, step keeps a copy of the gradients."""

    def __init__(self, parameters: dict[str, nn.Parameter]) -> None:
        self.parameters, self.grads = parameters, None

    def zero_grad(self) -> None:
        for p in self.parameters.values():
            p.grad = None

    def step(self) -> None:
        self.grads = gradient_vector(self.parameters)


def gradient_vector(parameters: dict[str, nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten().clone()
                      for _, p in sorted(parameters.items())])


class Batches:
    """A loader of the given batches: iterable, its `dataset` sized, its iterators also answering Python 2's `.next()`
    (DivideMix's train() calls it)."""

    class _Iterator:
        def __init__(self, batches: list) -> None:
            self._items = iter(batches)

        def __next__(self):
            return next(self._items)

        next = __next__

    def __init__(self, batches: list, size: int) -> None:
        self.batches, self.dataset = batches, range(size)

    def __iter__(self):
        return self._Iterator(self.batches)


@dataclass
class StepInputs:
    """One step's batch: the co-guessing / masking views x, x2, u, u2, the official recipe's mixed views (xp, xp2,
    xs1, xs2 and the same for u), noisy labels and the peer's clean probabilities."""

    views: dict[str, torch.Tensor]
    labels: torch.Tensor
    w_x: torch.Tensor
    w_u: torch.Tensor

    @classmethod
    def draw(cls, batch: int, generator: torch.Generator) -> "StepInputs":
        names = ["x", "x2", "u", "u2", "xp", "xp2", "xs1", "xs2", "up", "up2", "us1", "us2"]
        views = {name: torch.randn(batch, 3, 32, 32, generator=generator) for name in names}
        return cls(views, torch.randint(CLASSES, (batch,), generator=generator),
                   torch.rand(batch, generator=generator), torch.rand(batch, generator=generator))


def run_our_step(method: DivideMix, inputs: StepInputs, draws: StepDraws, decoder: Optional[nn.Module] = None,
                 masking_draws: bool = True) -> dict:
    """DivideMix._mixmatch_step of network 1 (peer: network 2) on `inputs` with `draws` (`masking_draws=False`: the
    masking draws its own, for presets that draw other shapes); what it computed. `decoder` replaces the hook's."""
    ctx, v, batch = method.ctx, inputs.views, len(inputs.labels)
    net, peer = method.nets
    lab, unl = torch.arange(batch), torch.arange(batch, 2 * batch)
    ctx.labels[lab] = inputs.labels
    prob = torch.zeros(ctx.num_train)
    prob[lab], prob[unl] = inputs.w_x, inputs.w_u
    ctx.train_images = torch.arange(ctx.num_train)  # images[idx] is idx: the views below are looked up by it

    def table(labeled: str, unlabeled: str) -> torch.Tensor:
        rest = v[labeled].new_zeros(ctx.num_train - 2 * batch, 3, 32, 32)
        return torch.cat([v[labeled], v[unlabeled], rest])

    calls = iter([table("x", "u"), table("x2", "u2")] * 2)  # x, x2 (labeled), then u, u2 (unlabeled)
    ctx.augment = lambda index, *args, **kwargs: next(calls)[index]
    if method.mix_augments:  # the official recipe's fresh views: AutoAugment twice, RandAugment twice
        method.mix_augments = [lambda index, t=table(a, b): t[index]
                               for a, b in [("xp", "up"), ("xp2", "up2"), ("xs1", "us1"), ("xs2", "us2")]]
    seen: dict[str, Any] = {"sharpened": []}
    sharpen_, params = dividemix_module.sharpen, parameters_of(net, decoder)

    def sharpen(probs, temperature):
        seen["sharpened"].append(sharpen_(probs, temperature))
        return seen["sharpened"][-1]

    def mixed(rows, targets, alpha):
        seen["mix"] = mix(rows, targets, alpha, rng=FixedBeta(draws.beta), perm=draws.perm)
        return seen["mix"]

    def step(loss, grad_clip=None):
        for p in params.values():
            p.grad = None
        loss.backward()
        seen["loss"], seen["grads"] = loss.detach(), gradient_vector(params)
        return {}

    hooks = []
    if net.sanm is not None:
        views_ = net.sanm.views

        def views(*args, **kwargs):
            seen["views"] = views_(*args, **kwargs)
            return seen["views"]

        hooks.append(replaced(net.sanm, views=views))
        if decoder is not None:
            hooks.append(replaced(net.sanm.__dict__, _decoder_call=decoder))
    if masking_draws:
        hooks.append(draws.into_ours())
    net.model.train()
    peer.model.eval()
    # DivideMix._train's ramp at the epoch's first step (t = epoch + 0 / steps), as the official batch_idx 0
    ramp = linear_rampup(EPOCH, ctx.warmup_epochs, ctx.cfg.method.rampup_epochs)
    seen["lambda_u"] = method.settings["lambda_u"] * ramp
    with ExitStack() as stack:
        for hook in [replaced(dividemix_module, sharpen=sharpen, mix=mixed), replaced(net, step=step), *hooks]:
            stack.enter_context(hook)
        seen["out"] = method._mixmatch_step(net, peer, lab, unl, prob, seen["lambda_u"], EPOCH)
    return seen


def parameters_of(net, decoder: Optional[nn.Module] = None) -> dict[str, nn.Parameter]:
    """The trained network's parameters, and its decoder's (the hook's own, or the one it is handed)."""
    params = {f"net.{n}": p for n, p in net.module.named_parameters()}
    if decoder is not None:
        params.update({f"decoder.{n}": p for n, p in decoder.named_parameters()})
    elif net.sanm is not None:
        params.update({f"decoder.{n}": p for n, p in net.sanm.augmenter.decoder.named_parameters()})
    return params


def run_official_step(official: Official, net: nn.Module, peer: nn.Module, inputs: StepInputs, draws: StepDraws,
                      params: dict[str, nn.Parameter], lambda_u: float, sanm: bool) -> dict:
    """The official train() for one batch; its locals at loss.backward() and the gradients it produced."""
    v, batch = inputs.views, len(inputs.labels)
    if sanm:  # SANM's loaders: four mixed views, the two co-guessing ones, labels, true labels, probabilities
        labeled = Batches([(v["xp"], v["xp2"], v["xs1"], v["xs2"], v["x"], v["x2"], inputs.labels, inputs.labels,
                            inputs.w_x)], batch)
        unlabeled = Batches([(v["up"], v["up2"], v["us1"], v["us2"], v["u"], v["u2"], inputs.w_u)], batch)
    else:  # DivideMix's
        labeled = Batches([(v["x"], v["x2"], inputs.labels, inputs.w_x)], batch)
        unlabeled = Batches([(v["u"], v["u2"])], batch)
    optimizer = KeepGradients(params)
    args = SimpleNamespace(batch_size=batch, alpha=4.0, lambda_u=lambda_u, T=0.5, num_class=CLASSES, r=0.9,
                           noise_mode="sym", num_epochs=360, dataset="cifar10")
    uniforms = Uniforms(draws.official_uniforms() if sanm else [])
    globals_ = {"args": args, "warm_up": WARMUP, "criterion": official["SemiLoss"](), "random": uniforms,
                "np": WithDraws(np, random=WithDraws(np.random, beta=lambda a, b, size=None: draws.beta)),
                "torch": WithDraws(torch, randperm=lambda n, *a, **k: draws.perm.clone())}
    with cuda_on_cpu(), quietly(), replaced(official.namespace, **globals_), locals_at_backward() as frames:
        official["train"](EPOCH, net, peer, optimizer, labeled, unlabeled)
    if len(frames) != 1:
        raise RuntimeError(f"the official train() back-propagated {len(frames)} times for one batch")
    if uniforms.values:
        raise RuntimeError(f"the official train() left {len(uniforms.values)} of the prepared uniforms undrawn: "
                           "its draws are not the ones this harness gives ours")
    return {**frames[0], "grads": optimizer.grads}


def box_of(masked: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """[B, 4] (top, bottom, left, right), half-open, of the pixels a mask changed in each image."""
    changed = (masked != original).any(dim=1)  # [B, H, W]
    boxes = []
    for image in changed:
        rows, cols = image.any(dim=1).nonzero().flatten(), image.any(dim=0).nonzero().flatten()
        boxes.append([rows.min(), rows.max() + 1, cols.min(), cols.max() + 1] if len(rows) else [0, 0, 0, 0])
    return torch.tensor(boxes)


def fill_values(masked: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """[B, C] the value each image's box was filled with, read at its top-left pixel."""
    return torch.stack([masked[i, :, int(top), int(left)] for i, (top, _, left, _) in enumerate(boxes)])


# ------------------------------------------------------------------ the comparisons
def compare_codivide(official: Official, workdir: Path, part: str, triple: bool, seed: int) -> list[Row]:
    """eval_train against DivideMix.co_divide: 6 epochs at 90% noise (5-epoch history), one at 50%."""
    generator = torch.Generator().manual_seed(seed)
    true = torch.randint(CLASSES, (OFFICIAL_SAMPLES,), generator=generator)
    rows = []
    for rate, epochs in ((0.9, 6), (0.5, 1)):
        wrong = torch.rand(OFFICIAL_SAMPLES, generator=generator) < rate
        noisy = torch.where(wrong, torch.randint(CLASSES, (OFFICIAL_SAMPLES,), generator=generator), true)
        method = build_ours(workdir, f"noise=sym_{rate}")
        ctx = method.ctx
        ctx.train_images, ctx.labels = torch.arange(OFFICIAL_SAMPLES), noisy
        ctx.is_clean = noisy == true
        ctx.augment = lambda index, *args, **kwargs: index
        history: list = []
        collected: dict[str, list] = {k: [] for k in ("losses", "normalised", "gmm_input", "prob")}
        for epoch in range(epochs):
            logits = torch.randn(OFFICIAL_SAMPLES, CLASSES, generator=generator)
            logits += (3.0 + 0.3 * epoch) * nn.functional.one_hot(true, CLASSES)
            ours = _our_codivide(method, Lookup(logits), epoch)
            theirs = _official_codivide(official, Lookup(logits, triple), noisy, rate, history)
            for key in collected:
                collected[key].append((ours[key], theirs[key]))
        where = f"r = {rate}" + (f", {epochs} epochs" if epochs > 1 else "")
        for key, label in (("losses", "per-sample losses"), ("normalised", "min-max normalised losses"),
                           ("gmm_input", "GMM input" + (" (mean of the last 5 epochs)" if rate >= 0.9 else "")),
                           ("prob", "clean probability")):
            ours_all = torch.cat([torch.as_tensor(o).flatten() for o, _ in collected[key]])
            theirs_all = torch.cat([torch.as_tensor(t).flatten() for _, t in collected[key]])
            rows.append(Row(part, f"co-divide: {label} ({where})", ours_all, theirs_all, _CODIVIDE_NOTES.get(key, "")))
    return rows


_CODIVIDE_NOTES = {"gmm_input": "ours float64, the official float32 (it fits the GMM on a float32 tensor)",
                   "prob": "scikit-learn's GaussianMixture on both sides, k-means seeded alike"}


def _our_codivide(method: DivideMix, model: nn.Module, epoch: int) -> dict:
    seen: dict[str, Any] = {}
    per_sample = method.ctx.per_sample_losses

    def losses(*args, **kwargs):
        seen["losses"] = per_sample(*args, **kwargs)
        return seen["losses"]

    def fit(column, **kwargs):
        seen["gmm_input"] = column.copy()
        return fit_gmm(column, **kwargs)

    fit_gmm = quality.fit_loss_gmm
    net = method.nets[0]
    model_before = net.model
    net.model = model
    try:
        with replaced(method.ctx, per_sample_losses=losses), replaced(quality, fit_loss_gmm=fit):
            prob = method.co_divide(0, epoch, {})
    finally:
        net.model = model_before
    seen["normalised"] = method.loss_history[0][-1] if method.loss_history[0] else seen["gmm_input"]
    seen["prob"] = prob
    return seen


def _official_codivide(official: Official, model: nn.Module, noisy: torch.Tensor, rate: float, history: list) -> dict:
    seen: dict[str, Any] = {"losses": torch.zeros(OFFICIAL_SAMPLES)}
    cross_entropy = nn.CrossEntropyLoss(reduction="none")
    batches = [(index, noisy[index], index) for index in torch.arange(OFFICIAL_SAMPLES).split(5000)]
    calls = iter(batches)

    def ce(outputs, targets):  # the official per-sample losses, kept by sample
        loss = cross_entropy(outputs, targets)
        seen["losses"][next(calls)[2]] = loss.detach()
        return loss

    class Mixture:  # scikit-learn's, keeping what it is fitted to
        def __init__(self, **kwargs):
            from sklearn.mixture import GaussianMixture

            self.gmm = GaussianMixture(**kwargs)

        def fit(self, x):
            seen["gmm_input"] = np.asarray(x).copy()
            return self.gmm.fit(x)

        def __getattr__(self, name):
            return getattr(self.gmm, name)

    args = SimpleNamespace(r=rate, noise_mode="sym", num_class=CLASSES)
    np.random.seed(0)  # its GaussianMixture seeds k-means from numpy's global generator; ours uses RandomState(0)
    with cuda_on_cpu(), quietly(), replaced(official.namespace, args=args, eval_loader=batches, CE=ce,
                                            GaussianMixture=Mixture):
        prob, history[:] = official["eval_train"](model, history)
    seen["normalised"], seen["prob"] = history[-1], torch.as_tensor(prob)
    return seen


def compare_sanm_step(official: Official, workdir: Path, batch: int, seed: int) -> list[Row]:
    """The SANM(DivideMix) step with our network behind the official call on both sides (the same logits), then the
    paper preset's difference."""
    generator = torch.Generator().manual_seed(seed)
    inputs = StepInputs.draw(batch, generator)
    draws = StepDraws.draw(2 * batch, 12 * batch, generator)
    torch.manual_seed(seed)
    method = build_ours(workdir, "+sanm=official", "+recipe=official", "noise=sym_0.9")
    net, peer = method.nets
    decoder = net.sanm.augmenter.decoder
    modules = (net.module, peer.module, decoder)
    state = [copy.deepcopy(m.state_dict()) for m in modules]
    theirs = run_official_step(official, OfficialSignature(net.module, decoder),
                               OfficialSignature(peer.module, decoder), inputs, draws, parameters_of(net),
                               method.settings["lambda_u"], sanm=True)
    for module, saved in zip(modules, state):  # BN statistics as before the official step
        module.load_state_dict(saved)
    ours = run_our_step(method, inputs, draws)
    rows = sanm_step_rows("SANM(DivideMix) step", ours, theirs, "gradients (network and decoder)")
    return rows + _paper_preset_rows(official, workdir, inputs, draws, seed)


def mixmatch_rows(part: str, ours: dict, theirs: dict) -> list["Row"]:
    """The MixMatch step's quantities after the mixed batch, the same in DivideMix's step and SANM(DivideMix)'s."""
    return [
        Row(part, "mixed targets", ours["mix"][1], theirs["mixed_target"]),
        Row(part, "L_x", ours["out"]["loss/x"], theirs["Lx"]),
        Row(part, "L_u", ours["out"]["loss/u"], theirs["Lu"]),
        Row(part, "ramp: lambda_u(t)", ours["lambda_u"], theirs["lamb"]),
        Row(part, "prior penalty", ours["out"]["loss/prior"], theirs["penalty"]),
        Row(part, "loss", ours["loss"], theirs["loss"]),
    ]


def sanm_step_rows(part: str, ours: dict, theirs: dict, gradients: str, only: tuple = ()) -> list[Row]:
    """The rows of one SANM(DivideMix) step, from what each side computed (run_our_step, run_official_step)."""
    n = len(theirs["inputs_erase"])
    masked, targets = ours["views"].images, ours["views"].targets
    original = theirs["inputs_erase"]
    our_boxes = [box_of(masked[:n], original), box_of(masked[n:], original)]
    official_boxes = [box_of(theirs["erase_imgx_max"], original), box_of(theirs["erase_imgx_min"], original)]
    rows = [
        Row(part, "targets (labeled): co-refined, sharpened", ours["sharpened"][0], theirs["targets_x"]),
        Row(part, "targets (unlabeled): co-guessed, sharpened", ours["sharpened"][1], theirs["targets_u"]),
        Row(part, "peak boxes (top, bottom, left, right)", our_boxes[0], official_boxes[0],
            "energy map read as uint8 (ours: extremes=uint8)"),
        Row(part, "trough boxes", our_boxes[1], official_boxes[1]),
        Row(part, "fill values (peak, trough; per channel)",
            torch.cat([fill_values(masked[:n], our_boxes[0]), fill_values(masked[n:], our_boxes[1])]),
            torch.cat([fill_values(theirs["erase_imgx_max"], official_boxes[0]),
                       fill_values(theirs["erase_imgx_min"], official_boxes[1])])),
        Row(part, "NLR targets", targets[:n], torch.cat([theirs["targets_x_mask"], theirs["targets_u_mask"]])),
        Row(part, "masked images (peak, trough)", masked,
            torch.cat([theirs["erase_imgx_max"], theirs["erase_imgx_min"]])),
        Row(part, "reconstruction term (0.02 x both MSEs)", ours["out"]["loss/reconstruction"],
            0.02 * theirs["Lrecon"]),
        Row(part, "mixed batch (12B rows)", ours["mix"][0], theirs["mixed_input"]),
        *mixmatch_rows(part, ours, theirs),
        Row(part, gradients, ours["grads"], theirs["grads"]),
    ]
    return [row for row in rows if not only or any(row.quantity.startswith(q) for q in only)]


def compare_official_network(official: Official, workdir: Path, batch: int, seed: int) -> list[Row]:
    """One whole SANM(DivideMix) step on the official network (resnetc2d.py's SupCEResNet, whose forward returns
    softmax probabilities) and on our ResNet-18 holding the same weights, its decoder the official one: with
    `model.softmax_output=true` (the official double softmax), and without it (the difference, measured)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = StepInputs.draw(batch, generator)
    draws = StepDraws.draw(2 * batch, 12 * batch, generator)
    torch.manual_seed(seed)
    theirs_nets = [official["SupCEResNet"]("resnet18", num_classes=CLASSES) for _ in range(2)]
    initial = [copy.deepcopy(net.state_dict()) for net in theirs_nets]
    params = {_our_name(name): p for name, p in theirs_nets[0].named_parameters()}
    rows = []
    for quirk in (True, False):
        for net, saved in zip(theirs_nets, initial):
            net.load_state_dict(saved)
        method = build_ours(workdir, "+sanm=official", "+recipe=official", "noise=sym_0.9", "model.width=64",
                            f"model.softmax_output={str(quirk).lower()}")
        for ours_net, saved in zip(method.nets, initial):
            ours_net.module.load_state_dict({_our_name(k)[len("net."):]: v for k, v in saved.items()
                                             if not k.startswith("recon_module.")})
        decoder = copy.deepcopy(theirs_nets[0].recon_module)
        theirs = run_official_step(official, theirs_nets[0], theirs_nets[1], inputs, draws, params,
                                   method.settings["lambda_u"], sanm=True)
        ours = run_our_step(method, inputs, draws, decoder=decoder)
        if quirk:
            rows += sanm_step_rows("official network, model.softmax_output=true", ours, theirs,
                                   "gradients (ResNet-18 and the official decoder)")
        else:
            off = sanm_step_rows("deliberate: model.softmax_output=false", ours, theirs, "gradients",
                                 only=("targets (labeled)", "L_x", "loss", "gradients"))
            for row in off:
                row.deliberate = True
            off[0].note = ("our default: the network returns logits; the official SupCEResNet returns softmax(logits), "
                           "which its code softmaxes again")
            rows += off
    return rows


def _our_name(name: str) -> str:
    """Our parameter name (as parameters_of gives it) for one of SupCEResNet's: encoder.* and fc.* are the network's
    (fc is our `linear`), recon_module.* the decoder's."""
    if name.startswith("encoder."):
        return "net." + name[len("encoder."):]
    if name.startswith("fc."):
        return "net.linear." + name[len("fc."):]
    return "decoder." + name[len("recon_module."):]


def _paper_preset_rows(official: Official, workdir: Path, inputs: StepInputs, draws: StepDraws, seed: int) -> list[Row]:
    """+sanm=on (the paper's equations) against the official step: the losses, which both sides have."""
    torch.manual_seed(seed)
    method = build_ours(workdir, "+sanm=on", "+recipe=official", "noise=sym_0.9")
    net, peer = method.nets
    decoder = net.sanm.augmenter.decoder
    state = {id(m): copy.deepcopy(m.state_dict()) for m in (net.module, peer.module, decoder)}
    theirs = run_official_step(official, OfficialSignature(net.module, decoder),
                               OfficialSignature(peer.module, decoder), inputs, draws, parameters_of(net),
                               method.settings["lambda_u"], sanm=True)
    for module in (net.module, peer.module, decoder):
        module.load_state_dict(state[id(module)])
    # one masked image per sample: 10B mixed rows; the paper preset draws its own box and pixel-fill values
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(10 * len(inputs.labels), generator=generator)
    own = StepDraws(draws.ratio, draws.aspect, draws.fill, draws.beta, perm)
    torch.manual_seed(seed)
    ours = run_our_step(method, inputs, own, masking_draws=False)
    note = ("the paper preset (+sanm=on: CAM, centred box, pixel fill, one masked image per sample, NLR over all "
            "classes) in the official pipeline, on the same batch")
    return [Row("deliberate: paper preset", name, mine, theirs[key], note if name == "L_x" else "", deliberate=True)
            for name, mine, key in (("L_x", ours["out"]["loss/x"], "Lx"), ("L_u", ours["out"]["loss/u"], "Lu"),
                                    ("loss", ours["loss"], "loss"))]


def compare_dividemix_step(official: Official, workdir: Path, batch: int, seed: int) -> list[Row]:
    """DivideMix's step, without SANM: their PreAct ResNet-18 and ours holding the same weights."""
    generator = torch.Generator().manual_seed(seed)
    inputs = StepInputs.draw(batch, generator)
    draws = StepDraws.draw(2 * batch, 4 * batch, generator)
    method = build_ours(workdir, "noise=sym_0.5", "model.width=64")
    torch.manual_seed(seed)
    theirs_nets = [official["ResNet18"](num_classes=CLASSES) for _ in range(2)]
    for ours_net, theirs_net in zip(method.nets, theirs_nets):
        ours_net.module.load_state_dict(theirs_net.state_dict())
    params = {f"net.{n}": p for n, p in theirs_nets[0].named_parameters()}
    theirs = run_official_step(official, theirs_nets[0], theirs_nets[1], inputs, draws, params,
                               method.settings["lambda_u"], sanm=False)
    ours = run_our_step(method, inputs, draws)
    part = "DivideMix step"
    return [
        Row(part, "targets (labeled): co-refined, sharpened", ours["sharpened"][0], theirs["targets_x"]),
        Row(part, "targets (unlabeled): co-guessed, sharpened", ours["sharpened"][1], theirs["targets_u"]),
        Row(part, "mixed batch (4B rows)", ours["mix"][0], theirs["mixed_input"]),
        *mixmatch_rows(part, ours, theirs),
        Row(part, "gradients (PreAct ResNet-18)", ours["grads"], theirs["grads"],
            "their network and ours, the same weights (DivideMix's PreResNet.py)"),
    ]


def compare(official_sanm: Path, official_dividemix: Optional[Path] = None, batch: int = 4, seed: int = 0,
            workdir: Optional[Path] = None) -> tuple[list[Row], dict[str, str]]:
    """Every row of the table, and the official commits it was taken against."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: both sides sum in one order, on any machine
    workdir = Path(workdir or tempfile.mkdtemp(prefix="parity-"))
    try:
        sanm = load_definitions(Path(official_sanm) / "Train_cifar.py")
        commits = {"SANM": sanm.commit}
        rows = compare_codivide(sanm, workdir, "SANM eval_train", triple=True, seed=seed)
        rows += compare_sanm_step(sanm, workdir, batch, seed)
        rows += compare_official_network(sanm, workdir, batch, seed)
        if official_dividemix is not None:
            dividemix = load_definitions(Path(official_dividemix) / "Train_cifar.py")
            commits["DivideMix"] = dividemix.commit
            rows += compare_codivide(dividemix, workdir, "DivideMix eval_train", triple=False, seed=seed)
            rows += compare_dividemix_step(dividemix, workdir, batch, seed)
    finally:
        torch.set_num_threads(threads)
    return rows, commits


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-sanm", type=Path, required=True, help="checkout of github.com/yuanpengtu/SANM")
    parser.add_argument("--official-dividemix", type=Path, help="checkout of github.com/LiJunnan1992/DivideMix")
    parser.add_argument("--batch", type=int, default=4, help="labeled (and unlabeled) samples of the compared step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows, commits = compare(args.official_sanm, args.official_dividemix, args.batch, args.seed)
    for name, commit in commits.items():
        print(f"official {name}: {commit}")
    print(markdown(rows))
    failed = [row for row in rows if not row.within and not row.deliberate]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} rows within {TOLERANCE:g} or deliberate"
          + (f"; outside: {', '.join(f'{r.part}: {r.quantity}' for r in failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
