"""ELR+ and ELR (Liu, Niles-Weed, Razavian, Fernandez-Granda, NeurIPS 2020; shengliu66/ELR), docs/baselines.md 6.

Early-learning regularisation: each sample keeps a target t_i, a temporal ensemble of past predictions,
and the loss adds lambda * mean log(1 - <t_i, p_i>), which pulls the prediction towards what the network
believed before it began to memorise wrong labels (baselines/common/elr.py holds the pieces).

ELR+ (6.2, the default, `ELR_plus/`): two networks f1, f2, each with a weight average (EMA) e1, e2 and
its own target table. Each epoch trains f1 for one pass with the targets from e2, then f2 with e1; a
step mixes the batch (lam ~ Beta(alpha, alpha), lam >= 0.5) and its one-hot labels, updates the
targets from the peer EMA's softmax on the un-mixed batch, mixes them like the labels, (CIFAR-100)
re-weights the mixed labels by them, and minimises soft CE + w(s) * lambda * ELR term; then the
network's EMA moves. Test: 0.5 * (f1(x) + f2(x)), the non-EMA networks (upstream's single-GPU path).
ELR (6.1, `method.variant=elr`, `ELR/`): one network, no mixup, no EMA; the target is the network's own
detached, clamped prediction; CE + lambda * ELR term.

Differences from upstream, on purpose: both networks train on the same noisy training set (all of it;
upstream's two loaders draw different 45k/5k splits and noise, 6.2); the EMA starts as a copy of its
network (upstream builds it from a fresh initialisation; with a_1 = 0.997 * e^-5 ~ 0.007 the first step
makes it a copy anyway); ELR runs on the project's PreAct ResNet-18 instead of upstream's ResNet-34.
The global step s that schedules w(s) and the EMA decay is upstream's: one counter, advanced after each
epoch by network 1's number of steps, so both networks see the same s at the same point of their pass.

SANM points (our reading, docs/baselines.md 9.7): G is the default per-epoch GMM of each network's losses
(`Method.on_epoch_start`), from `method.warmup_epochs` (default 2) on; ELR+ itself has no warm-up.
ELR+: a no-grad forward of the trained network on the un-mixed batch gives the logits and feature maps
for SANM[1]; SANM[2] regularises the one-hot labels (or the clean prediction with sanm.target=prediction);
the masked rows join the mixup batch (one lam, one permutation over all rows) with their regularised
labels and the ELR targets of their unmasked sample. SANM[3] reconstructs from the mixup forward's
feature maps against the same mixture of the unmasked images (`sanm.recon_source=mixed`, the default:
one forward fewer; mixing is linear in the inputs) or from a forward of the un-mixed masked views
(`separate`). ELR: the shared `SANMHook.supervised_loss`, whose clean loss is CE + the ELR term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from baselines.common.cli import entry_point
from baselines.common.config import AUTO, MethodConfig
from baselines.common.elr import (WeightAverage, clamped_softmax, elr_term, sigmoid_rampup, target_weighted_labels,
                                  update_targets)
from baselines.common.engine import Batch, Method, Network, per_network
from baselines.common.metrics import EpochMeans
from baselines.common.mixup import mix
from baselines.common.losses import soft_cross_entropy

VARIANTS = ("elr_plus", "elr")

# docs/baselines.md 6.2 (ELR_plus/config_cifar10.json, config_cifar10_asym.json, config_cifar100.json): per noise type;
# coef_step and ema_step count training steps (40000 ~ 100 epochs of 50k images at batch 128)
ELR_PLUS_TABLE = {
    "cifar10": {"sym": {"beta": 0.7, "lambda_elr": 3.0, "coef_step": 0},
                "asym": {"beta": 0.9, "lambda_elr": 1.0, "coef_step": 0}},
    "cifar100": {"sym": {"beta": 0.9, "lambda_elr": 7.0, "coef_step": 40000},
                 "asym": {"beta": 0.9, "lambda_elr": 7.0, "coef_step": 40000}},
}
# docs/baselines.md 6.1 (ELR/config_*.json)
ELR_TABLE = {
    "cifar10": {"sym": {"beta": 0.7, "lambda_elr": 3.0}, "asym": {"beta": 0.9, "lambda_elr": 1.0}},
    "cifar100": {"sym": {"beta": 0.9, "lambda_elr": 7.0}, "asym": {"beta": 0.9, "lambda_elr": 7.0}},
}
# the trainer keys conf/elr_plus.yaml leaves auto; lr 0.02, momentum 0.9 and batch 128 are the same everywhere
_STEP = {"lr_schedule": "step", "lr_min": None, "lr_restart_period": 10}  # the last two unused by a step schedule
ELR_PLUS_TRAINER = {
    "cifar10": {"sym": {**_STEP, "epochs": 200, "lr_milestones": [150], "lr_gamma": 0.1, "weight_decay": 5e-4},
                "asym": {**_STEP, "epochs": 200, "lr_milestones": [150], "lr_gamma": 0.1, "weight_decay": 5e-4}},
    "cifar100": {"sym": {**_STEP, "epochs": 250, "lr_milestones": [200], "lr_gamma": 0.1, "weight_decay": 5e-4},
                 "asym": {**_STEP, "epochs": 250, "lr_milestones": [200], "lr_gamma": 0.1, "weight_decay": 5e-4}},
}
ELR_TRAINER = {  # CIFAR-10 sym: CosineAnnealingWarmRestarts(T_0=10, eta_min=0.001), stepped per epoch
    "cifar10": {"sym": {"epochs": 150, "lr_schedule": "cosine_restarts", "lr_restart_period": 10, "lr_min": 0.001,
                        "lr_milestones": [], "lr_gamma": 0.1, "weight_decay": 1e-3},
                "asym": {**_STEP, "epochs": 120, "lr_milestones": [40, 80], "lr_gamma": 0.01, "weight_decay": 1e-3}},
    "cifar100": {"sym": {**_STEP, "epochs": 150, "lr_milestones": [80, 120], "lr_gamma": 0.01, "weight_decay": 1e-3},
                 "asym": {**_STEP, "epochs": 150, "lr_milestones": [80, 120], "lr_gamma": 0.01,
                          "weight_decay": 1e-3}},
}
ELR_PLUS_ONLY = ("coef_step", "ema_alpha", "ema_step", "mixup_alpha", "label_weighting")


@dataclass
class ELRPlusConfig(MethodConfig):
    name: str = "${.variant}"  # so an ELR run writes outputs/elr/..., not over an ELR+ run
    variant: str = "elr_plus"  # elr_plus (two networks, mixup, weight averaging; 6.2) | elr (one network; 6.1)
    # warmup_epochs auto = 2 epochs before SANM starts; ELR and ELR+ have no warm-up of their own (configs: 0)
    beta: Any = AUTO  # temporal-ensemble momentum of the targets: 0.7 CIFAR-10 sym, 0.9 CIFAR-10 asym and CIFAR-100
    lambda_elr: Any = AUTO  # lambda, the ELR term's weight: 3 CIFAR-10 sym, 1 CIFAR-10 asym, 7 CIFAR-100
    coef_step: Any = AUTO  # ELR+: steps of the sigmoid ramp of lambda: 0 (none) on CIFAR-10, 40000 on CIFAR-100
    ema_alpha: float = 0.997  # ELR+: ceiling of the EMA decay a_t = ema_alpha * rho(s + 1, ema_step) (every CIFAR config)
    ema_step: int = 40000  # ELR+: steps of the EMA decay's sigmoid ramp (every CIFAR config)
    mixup_alpha: float = 1.0  # ELR+: lam ~ Beta(1, 1), folded to lam >= 0.5 (every config)
    label_weighting: Any = AUTO  # ELR+: mixed labels times the mixed targets, Y*q / sum(Y*q); true on CIFAR-100 only
    # SANM: masked rows join the mixup batch beside the clean ones (ELR: CE + ELR term stays), NLR on the one-hot
    # noisy label; ELR+ reconstructs from the mixup forward's features (saves a forward), ELR from its own
    sanm_recon_source: str = "mixed"


def _row(table: dict, dataset: str, noise_type: str) -> dict:
    """A dataset's row for its noise type; other datasets take CIFAR-10's, other noises the sym row."""
    rows = table.get(dataset, table["cifar10"])
    return dict(rows["asym" if noise_type == "asym" else "sym"])


def elr_defaults(variant: str, dataset: str, noise_type: str) -> dict[str, Any]:
    """What the method keys' `auto` means (docs/baselines.md 6.1, 6.2); ELR+-only keys are None for ELR."""
    _check_variant(variant)
    if variant == "elr":
        return {**_row(ELR_TABLE, dataset, noise_type), "coef_step": None, "label_weighting": None}
    return {**_row(ELR_PLUS_TABLE, dataset, noise_type), "label_weighting": dataset == "cifar100"}


def elr_trainer_defaults(variant: str, dataset: str, noise_type: str) -> dict[str, Any]:
    """The trainer keys conf/elr_plus.yaml leaves `auto` (docs/baselines.md 6.1, 6.2); the milestones are the table's
    for its own epochs, scaled when trainer.epochs is set."""
    _check_variant(variant)
    row = _row(ELR_TRAINER if variant == "elr" else ELR_PLUS_TRAINER, dataset, noise_type)
    return {**row, "reference_epochs": row["epochs"]}


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"method.variant must be one of {', '.join(VARIANTS)}, got {variant!r}")


def resolve_settings(method: DictConfig, dataset: str, noise_type: str) -> dict[str, Any]:
    """Every method key the run uses, `auto` replaced from the table, checked; unused keys are None."""
    defaults = elr_defaults(method.variant, dataset, noise_type)
    settings = {key: value if method[key] == AUTO else method[key] for key, value in defaults.items()}
    settings.update({key: method[key] for key in ("ema_alpha", "ema_step", "mixup_alpha")})
    if method.variant == "elr":
        settings.update({key: None for key in ELR_PLUS_ONLY})
    _check_settings(settings)
    return settings


def _check_settings(s: dict[str, Any]) -> None:
    def number(key: str) -> bool:
        return not isinstance(s[key], bool) and isinstance(s[key], (int, float))

    if not (number("beta") and 0.0 <= s["beta"] < 1.0):
        raise ValueError(f"method.beta must be in [0, 1), got {s['beta']!r}")
    if not (number("lambda_elr") and s["lambda_elr"] >= 0):
        raise ValueError(f"method.lambda_elr must be a number >= 0, got {s['lambda_elr']!r}")
    if s["ema_alpha"] is None:  # ELR: the ELR+-only keys are unused
        return
    for key in ("coef_step", "ema_step"):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < 0:
            raise ValueError(f"method.{key} must be auto or an integer >= 0 (training steps), got {s[key]!r}")
    if not (number("ema_alpha") and 0.0 <= s["ema_alpha"] <= 1.0):
        raise ValueError(f"method.ema_alpha must be in [0, 1], got {s['ema_alpha']!r}")
    if not (number("mixup_alpha") and s["mixup_alpha"] > 0):
        raise ValueError(f"method.mixup_alpha must be > 0, got {s['mixup_alpha']!r}")
    if not isinstance(s["label_weighting"], bool):
        raise ValueError(f"method.label_weighting must be auto, true or false, got {s['label_weighting']!r}")


class ELRPlus(Method):
    name = "elr_plus"
    config = ELRPlusConfig
    diagnostics = per_network("target_accuracy")
    default_warmup_epochs = 2  # epochs before SANM starts (G needs a trained network); ELR(+) has no warm-up
    # measured on CIFAR-10N's human labels (benchmarks/RESULTS.md, issue 39): the paper's beta 1 and mu 0.2 cost ELR+
    # 3-4 points, its ELR targets learning more slowly under the masks; DivideMix's measured values, beta 0.02 with
    # half the mask scale, do not (one seed)
    sanm_defaults = {"beta": 0.02, "mu": 0.1}

    @classmethod
    def trainer_defaults(cls, cfg: DictConfig) -> dict:
        return elr_trainer_defaults(cfg.method.variant, cfg.dataset.name, cfg.noise.type)

    @classmethod
    def sanm_requirements(cls, cfg: DictConfig) -> dict[str, tuple[str, str]]:
        if cfg.method.variant != "elr":
            return {}
        return {"recon_source": ("separate", "method.variant=elr has no mixup forward to reconstruct from"),
                "train_on": ("clean_and_masked", "method.variant=elr keeps its ELR term on the clean forward")}

    def build(self) -> None:
        ctx, cfg = self.ctx, self.ctx.cfg
        self.variant = cfg.method.variant
        self.settings = resolve_settings(cfg.method, cfg.dataset.name, cfg.noise.type)
        self.name = self.variant  # the checkpoint's method name: an ELR run does not resume an ELR+ one
        if self.variant == "elr":
            self.recon_source = "separate"  # no mixup forward to reconstruct from
        else:
            sanm = ctx.sanm_settings
            self.recon_source = sanm.recon_source if sanm is not None else cfg.method.sanm_recon_source
        names = ["net"] if self.variant == "elr" else ["net1", "net2"]
        self.nets: list[Network] = [self.add_network(name) for name in names]
        self.tables = [torch.zeros(ctx.num_train, ctx.num_classes, device=ctx.device) for _ in self.nets]
        self.averages: list[WeightAverage] = [] if self.variant == "elr" else [
            WeightAverage(net.module, self.settings["ema_alpha"], self.settings["ema_step"]) for net in self.nets]
        self.global_step = 0

    def resolved_settings(self) -> dict:
        return {**self.settings, "warmup_epochs": self.ctx.warmup_epochs, "sanm_recon_source": self.recon_source}

    # ------------------------------------------------------------------ epochs
    def train_epoch(self, epoch: int) -> dict:
        if self.variant == "elr":
            stats = super().train_epoch(epoch)  # G, then train_step per batch, then SANM's epoch stats
        else:
            stats = self.on_epoch_start(epoch)
            steps_net1 = 0
            for k, net in enumerate(self.nets):  # f1 with e2's targets, then f2 with e1's
                terms, steps = self._train_network(k, epoch)
                if k == 0:
                    steps_net1 = steps
                stats.update(self._suffix(terms, net.name))
                if net.sanm is not None:
                    stats.update(self._suffix(net.sanm.epoch_stats(), net.name))
            self.global_step += steps_net1  # upstream: the shared counter advances by network 1's steps
        for net, table in zip(self.nets, self.tables):
            stats.update(self._suffix({"target_accuracy": self._target_accuracy(table)}, net.name))
        return stats

    def _train_network(self, k: int, epoch: int) -> tuple[dict[str, float], int]:
        """One full pass of network k over its own shuffled batches; the mean losses and the step count."""
        self.nets[k].model.train()
        means = EpochMeans()
        for batch in self.ctx.batches(epoch, desc=f"train {self.nets[k].name}"):
            means.add(self._elr_plus_step(k, batch, self.global_step + means.steps))
        return means.means(), means.steps

    # ------------------------------------------------------------------ ELR+
    def _elr_plus_step(self, k: int, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """One ELR+ step of network k at global step `step` (docs/baselines.md 6.2), SANM's rows joining the mixup."""
        s, num_classes = self.settings, self.ctx.num_classes
        net, x, index = self.nets[k], batch.images, batch.index
        labels = F.one_hot(batch.labels, num_classes).float()
        peer_probs = self.averages[1 - k].probabilities(x)  # the OTHER network's EMA, on the un-mixed batch
        targets = update_targets(self.tables[k], index, peer_probs, s["beta"])
        inputs, label_rows, target_rows, clean_rows = [x], [labels], [targets], [x]
        use_sanm = net.sanm is not None and net.sanm.active(batch.epoch)
        if use_sanm:
            with torch.no_grad():
                logits, feats = net.tap(x)
            views = net.sanm.views(x, logits, feats, index, labels, net.tap.classifier_weight)  # SANM[1] + SANM[2]
            copies = len(views.images) // len(x)  # two with the official separate trough images
            if net.sanm.settings.train_on == "masked":  # the masked rows replace the clean ones
                inputs, label_rows, target_rows, clean_rows = [], [], [], []
            inputs.append(views.images)
            label_rows.append(views.targets)
            target_rows.append(targets.repeat(copies, 1))  # a masked row keeps its unmasked sample's ELR target
            clean_rows.append(x.repeat(copies, 1, 1, 1))
        # one lam, one permutation: the ELR targets q are mixed exactly like the labels
        mixed, soft, lam, perm = mix(torch.cat(inputs), torch.cat([torch.cat(label_rows), torch.cat(target_rows)], 1),
                                     s["mixup_alpha"])
        mixed_labels, mixed_targets = soft[:, :num_classes], soft[:, num_classes:]
        if s["label_weighting"]:
            mixed_labels = target_weighted_labels(mixed_labels, mixed_targets)
        logits_m, feats_m = net.tap(mixed)
        ce = soft_cross_entropy(logits_m, mixed_labels)
        weight = s["lambda_elr"] * sigmoid_rampup(step, s["coef_step"])
        regulariser = elr_term(logits_m, mixed_targets)
        reconstruction = torch.zeros((), device=x.device)
        if use_sanm and self.recon_source == "mixed":  # SANM[3] from the mixup forward
            clean = torch.cat(clean_rows)
            reconstruction = net.sanm.reconstruction(feats_m, lam * clean + (1 - lam) * clean[perm])
        elif use_sanm:  # SANM[3] from a forward of the un-mixed masked views
            reconstruction = net.sanm.reconstruction(net.tap(views.images)[1], x)
        net.step(ce + weight * regulariser + reconstruction)
        decay = self.averages[k].update(net.module, step)
        out = {"loss/ce": ce.detach(), "loss/elr": regulariser.detach(), "elr_weight": torch.tensor(weight),
               "ema_decay": torch.tensor(decay)}
        if use_sanm:
            out["loss/reconstruction"] = reconstruction.detach()
        return out

    # ------------------------------------------------------------------ ELR
    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One ELR step (docs/baselines.md 6.1); with SANM the shared supervised loss wraps CE + the ELR term."""
        net = self.nets[0]
        terms: dict[str, torch.Tensor] = {}
        clean_loss = self._elr_loss(batch, terms)
        if net.sanm is not None and net.sanm.active(batch.epoch):
            loss, sanm_terms = net.sanm.supervised_loss(net.tap, batch.images, batch.index, batch.labels,
                                                        net.tap.classifier_weight, clean_loss=clean_loss)
            terms.update(sanm_terms)
        else:
            loss = clean_loss(net.model(batch.images))
        net.step(loss)
        return {"loss/total": loss.detach(), **terms}

    def _elr_loss(self, batch: Batch, terms: dict) -> Callable[[torch.Tensor], torch.Tensor]:
        """logits -> CE + lambda * ELR term; the targets first take in the detached clamped prediction."""

        def loss(logits: torch.Tensor) -> torch.Tensor:
            targets = update_targets(self.tables[0], batch.index, clamped_softmax(logits), self.settings["beta"])
            ce = F.cross_entropy(logits, batch.labels)
            regulariser = elr_term(logits, targets)
            terms.update({"loss/ce": ce.detach(), "loss/elr": regulariser.detach()})
            return ce + self.settings["lambda_elr"] * regulariser

        return loss

    # ------------------------------------------------------------------ prediction, diagnostics, state
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        if self.variant == "elr":
            return self.nets[0].model(images)
        return 0.5 * (self.nets[0].model(images) + self.nets[1].model(images))

    def _target_accuracy(self, table: torch.Tensor) -> float:
        """Share of training samples whose target's arg-max is the true class (how much the targets correct)."""
        return (table.argmax(dim=1) == self.ctx.true_labels).float().mean().item()

    def extra_state(self) -> dict:
        return {"targets": list(self.tables), "averages": [a.state_dict() for a in self.averages],
                "global_step": self.global_step}

    def load_extra_state(self, state: dict) -> None:
        for table, saved in zip(self.tables, state["targets"]):
            table.copy_(saved)
        for average, saved in zip(self.averages, state["averages"]):
            average.load_state_dict(saved)
        self.global_step = int(state["global_step"])


main = entry_point(ELRPlus, "elr_plus")

if __name__ == "__main__":
    main()
