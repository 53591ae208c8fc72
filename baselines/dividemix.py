"""DivideMix (Li, Socher, Hoi, ICLR 2020; LiJunnan1992/DivideMix `Train_cifar.py`), docs/baselines.md section 4.

Two networks. After a cross-entropy warm-up, each epoch fits a two-component GMM on each network's
per-sample losses (co-divide); each network then trains on the labeled / unlabeled split made by its
peer with MixMatch: labels refined as w*y + (1-w)*p and sharpened, unlabeled targets co-guessed by both
networks over two views and sharpened, mixup with lam = max(lam, 1-lam), L_x + lambda_u(t)*L_u + L_reg.
The test prediction is the sum of both networks' logits.

SANM points: G is the co-divide clean probability (the peer's GMM posterior, labeled and unlabeled
samples alike). The no-grad refinement / co-guessing forward of the trained network on the first view
supplies the logits and feature maps for SANM[1], so masking costs no extra forward pass; the refined
(labeled) and guessed (unlabeled) targets are regularised by SANM[2]; the masked views join the MixMatch
batch as extra labeled / unlabeled rows (the official code's wiring). SANM[3] reconstructs either from a
separate forward of the un-mixed masked views (`sanm.recon_source=separate`, as the official code) or
from the MixMatch forward itself, each mixed row's clean mixture being the target (`mixed`, one forward
fewer; mixing is linear in the inputs).

`+recipe=official` (`method.recipe=official`) follows the official SANM `Train_cifar.py` instead of DivideMix's
paper settings: lambda_u 25 and tau 0.5 for every noise, warm-up 10 / 20 epochs (CIFAR-10 / -100) with the
gradient norm clipped at 1, 361 epochs with lr /10 from epoch 150, AutoAugment views for co-guessing and
masking, fresh views for the MixMatch rows (`method.mix_views`: two AutoAugment and two RandAugment per
sample, so with SANM's two masked images per sample the mixed batch is 12B rows), and C2D's colour-jitter +
affine views in the warm-up (`method.warmup_augment=c2d_warmup`); both networks are standard ResNet-18s started
from a SimCLR encoder (`pretrained=auto` pre-trains and caches one, `pretrained=PATH` loads one, C2D's included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from baselines.common.cli import entry_point
from baselines.common.config import AUTO, MethodConfig
from baselines.common.data import class_balanced_subset
from baselines.common.engine import Method, Network, per_network
from baselines.common.metrics import EpochMeans, binary_auc, selection_scores
from baselines.common.mixup import (co_guess, linear_rampup, mix, negative_entropy, refine_labels, sharpen,
                                    uniform_prior_penalty)
from baselines.common.losses import soft_cross_entropy
from sanm_plugin import gmm_clean_probability

# docs/baselines.md 4.3 (paper App. B Table 7, corroborated by DivideMix issues #10, #46, #50): lambda_u per noise
LAMBDA_U = {
    "cifar10": {"sym": {0.2: 0.0, 0.5: 25.0, 0.8: 25.0, 0.9: 50.0}, "asym": {0.4: 0.0}},
    "cifar100": {"sym": {0.2: 25.0, 0.5: 150.0, 0.8: 150.0, 0.9: 150.0}},
}
WARMUP_EPOCHS = {"cifar10": 10, "cifar100": 30}  # code and paper
RECIPES = ("paper", "official")
OFFICIAL_WARMUP_EPOCHS = {"cifar10": 10, "cifar100": 20}  # SANM Train_cifar.py
OFFICIAL_SETTINGS = {"lambda_u": 25.0, "p_threshold": 0.5}  # SANM Train_cifar.py's argparse defaults, every noise
OFFICIAL_SCHEDULE = {"epochs": 361, "reference_epochs": 361, "lr_milestones": [150]}  # epochs 0..360, /10 from 150
MASKED_SETS = ("all", "labeled")  # method.sanm_masked_set
HIGH_NOISE = 0.9  # at 90% noise: tau 0.6 and the GMM fits the mean of the last 5 epochs' losses


@dataclass
class DivideMixConfig(MethodConfig):
    # warmup_epochs auto = 10 on CIFAR-10, 30 on CIFAR-100 (docs/baselines.md 4.3). SANM (sanm_train_on
    # clean_and_masked, sanm_target label, sanm_recon_source separate): the masked views join the MixMatch batch
    # as extra rows, NLR on the refined (labeled) and guessed (unlabeled) targets, and the reconstruction comes
    # from a forward of the masked views, as in the official code
    lambda_u: Any = AUTO  # weight of the unlabeled loss, from the table above
    p_threshold: Any = AUTO  # tau: labeled = GMM clean probability > tau; 0.5, 0.6 at 90% noise
    gmm_history: Any = AUTO  # epochs of normalised losses the GMM averages: 5 at 90% noise, else 1
    gmm_max_iter: int = 10  # DivideMix's GaussianMixture(max_iter=10); C2D uses 200
    temperature: float = 0.5  # T of the sharpening
    alpha: float = 4.0  # mixup Beta(alpha, alpha)
    rampup_epochs: float = 16.0  # lambda_u ramps up linearly over this many epochs after warm-up
    warmup_grad_clip: Optional[float] = None  # C2D clips the warm-up gradient norm at 1.0
    drop_unlabeled: bool = False  # C2D: with lambda_u = 0, keep only the labeled rows of the mixed batch
    recipe: str = "paper"  # paper | official: the auto values (lambda_u, tau, warm-up, schedule) of SANM's script
    # augment presets of fresh per-sample views that form the MixMatch rows; null = the two co-guessing
    # views (DivideMix); the official recipe: [autoaugment, autoaugment, randaugment, randaugment]
    mix_views: Optional[List[str]] = None
    warmup_augment: Optional[str] = None  # augment preset of the warm-up batches; null = the run's `augment`
    # Clothing1M (DivideMix's 1000 batches x 32): each epoch a fresh draw of this many training samples,
    # balanced over the noisy classes, is the GMM's and the training pool (a warm-up epoch draws twice as many
    # for each network); null = the whole training set every epoch
    epoch_pool: Optional[int] = None
    # which samples SANM masks: all (labeled and unlabeled, as the official code) | labeled. G is the probability
    # that a sample's given label is right, while an unlabeled sample trains on the networks' guess, not its label:
    # `labeled` masks and softens only the targets G describes (an ablation of issue 39's SANM(DivideMix) cost)
    sanm_masked_set: str = "all"



def dividemix_defaults(dataset: str, noise_type: str, rate: float, recipe: str = "paper") -> dict[str, Any]:
    """The table of docs/baselines.md 4.3 (other datasets and noises take the CIFAR-10 row nearest in rate), or the
    official SANM script's fixed lambda_u / tau; both average the GMM's losses over 5 epochs at 90% noise."""
    table = LAMBDA_U.get(dataset, LAMBDA_U["cifar10"])
    rows = table.get(noise_type) or table["sym"]
    nearest = min(rows, key=lambda r: abs(r - rate))
    high = noise_type == "sym" and rate >= HIGH_NOISE
    paper = {"lambda_u": rows[nearest], "p_threshold": 0.6 if high else 0.5}
    return {**(OFFICIAL_SETTINGS if recipe == "official" else paper), "gmm_history": 5 if high else 1}


def check_recipe(method_cfg) -> str:
    if method_cfg.recipe not in RECIPES:
        raise ValueError(f"method.recipe must be one of {', '.join(RECIPES)}, got {method_cfg.recipe!r}")
    return method_cfg.recipe


class DivideMix(Method):
    name = "dividemix"
    config = DivideMixConfig
    diagnostics = per_network("labeled_fraction", "selection_precision", "selection_recall", "gmm_auc")
    schedule = {"reference_epochs": 300, "lr_milestones": [150]}  # Train_cifar.py: lr /10 after 150 of 300
    # measured on the memorisation protocol (benchmarks/RESULTS.md, issue 39): beta 1 cost DivideMix 3.10 points at
    # best (two seeds), the official code's beta 0.02 0.23, but 1.53 at best and 2.12 at last with a noisy
    # validation split held out; beta 0.02 with half the mask scale (mu 0.1) is level with DivideMix there (one
    # paired seed). C2D, the same loop, inherits them unmeasured
    sanm_defaults = {"beta": 0.02, "mu": 0.1}
    distributed = True  # torchrun: one co-divide over the gathered losses, each rank its slice of every batch

    @classmethod
    def resolve_warmup(cls, cfg) -> int:
        """Cross-entropy epochs before co-divide: 10 on CIFAR-10 (and other datasets), 30 on CIFAR-100
        (official recipe: 20)."""
        if cfg.method.warmup_epochs == AUTO:
            table = OFFICIAL_WARMUP_EPOCHS if check_recipe(cfg.method) == "official" else WARMUP_EPOCHS
            return table.get(cfg.dataset.name, table["cifar10"])
        return super().resolve_warmup(cfg)

    @classmethod
    def starts_from_encoder(cls, cfg) -> bool:
        """The official recipe starts both networks from a SimCLR encoder, as the official script does (C2D's)."""
        return cls.requires_encoder or check_recipe(cfg.method) == "official"

    @classmethod
    def trainer_defaults(cls, cfg) -> dict:
        return dict(OFFICIAL_SCHEDULE) if check_recipe(cfg.method) == "official" else super().trainer_defaults(cfg)

    def build(self) -> None:
        cfg = self.ctx.cfg
        if cfg.method.sanm_masked_set not in MASKED_SETS:
            raise ValueError(f"method.sanm_masked_set must be one of {', '.join(MASKED_SETS)}, "
                             f"got {cfg.method.sanm_masked_set!r}")
        self.mask_unlabeled = cfg.method.sanm_masked_set == "all"
        defaults = dividemix_defaults(cfg.dataset.name, cfg.noise.type, cfg.noise.rate, check_recipe(cfg.method))
        self.settings = {key: defaults[key] if cfg.method[key] == AUTO else cfg.method[key] for key in defaults}
        if not 0.0 <= self.settings["p_threshold"] <= 1.0:
            raise ValueError(f"method.p_threshold must be in [0, 1], got {self.settings['p_threshold']}")
        pool = cfg.method.epoch_pool
        if pool is not None and (isinstance(pool, bool) or int(pool) != pool or pool < 2):
            raise ValueError(f"method.epoch_pool must be an integer >= 2 (samples drawn per epoch) or null, got {pool!r}")
        # the noisy labels the pools are balanced over, copied to the host once per run, not once per draw
        self.pool_labels = self.ctx.labels.cpu().numpy() if pool is not None else None
        if pool is not None and self.settings["gmm_history"] > 1:
            raise ValueError(f"method.epoch_pool draws other samples each epoch, so the GMM cannot average their losses "
                             f"over epochs: give method.gmm_history=1 (got {self.settings['gmm_history']})")
        self.mix_augments = [self.ctx.make_augment(name) for name in (cfg.method.mix_views or [])]
        self.warmup_augment = self.ctx.make_augment(cfg.method.warmup_augment) if cfg.method.warmup_augment else None
        self.nets = [self.add_network("net1"), self.add_network("net2")]
        self.loss_history: list[list[np.ndarray]] = [[], []]
        settings = self.ctx.sanm_settings
        self.recon_source = settings.recon_source if settings is not None else cfg.method.sanm_recon_source

    def resolved_settings(self) -> dict:
        return {**self.settings, "warmup_epochs": self.ctx.warmup_epochs, "sanm_recon_source": self.recon_source,
                "recipe": self.ctx.cfg.method.recipe}

    # ------------------------------------------------------------------ epochs
    def train_epoch(self, epoch: int) -> dict:
        stats: dict[str, float] = {}
        if epoch < self.ctx.warmup_epochs:
            for k, net in enumerate(self.nets):
                stats[f"loss/warmup_net{k + 1}"] = self._warmup(net, epoch, self._epoch_pool(2))
            return stats
        # co-divide: both GMMs before either network trains; C2D fits each just before it is used, so
        # net 2 trains on the split of the already updated net 1
        pool = self._epoch_pool(1)
        probs = None if self.sequential else [self.co_divide(k, epoch, stats, pool) for k in range(2)]
        for k, net in enumerate(self.nets):
            peer_prob = self.co_divide(1 - k, epoch, stats, pool) if self.sequential else probs[1 - k]
            stats.update(self._suffix(self._train(net, self.nets[1 - k], peer_prob, epoch, pool), net.name))
            if net.sanm is not None:
                stats.update(self._suffix(net.sanm.epoch_stats(), net.name))
        return stats

    sequential = False  # C2D: GMM(f2) -> train f1 -> GMM(f1) with the updated f1 -> train f2

    def _epoch_pool(self, scale: int) -> Optional[torch.Tensor]:
        """This epoch's pool (method.epoch_pool x `scale` samples, balanced over the noisy classes, drawn from the
        global RNG so that a resumed run draws the same), or None for the whole training set."""
        size = self.ctx.cfg.method.epoch_pool
        if size is None:
            return None
        size = min(int(size) * scale, self.ctx.num_train)
        seed = int(torch.randint(2**31 - 1, ()).item())
        picked = class_balanced_subset(self.pool_labels, size, seed)
        return torch.from_numpy(picked).to(self.ctx.device)

    def co_divide(self, k: int, epoch: int, stats: dict, pool: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Network k's GMM clean probability over the training set (or over `pool`, in its order), and its
        selection diagnostics."""
        return self.divide(k, self.ctx.per_sample_losses(self.nets[k].model.eval(), pool), stats, pool)

    def divide(self, k: int, losses: torch.Tensor, stats: dict, pool: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The co-divide's split of network k's per-sample `losses` (benchmarks/codivide.py reuses it)."""
        window = self.settings["gmm_history"]
        prob = gmm_clean_probability(losses, self.loss_history[k] if window > 1 else None, window=window,
                                     max_iter=self.ctx.cfg.method.gmm_max_iter)
        selected = self.is_labeled(prob.to(self.ctx.device))
        clean = self.ctx.is_clean if pool is None else self.ctx.is_clean[pool]
        picked, hits, clean_count = torch.stack([selected.sum(), (selected & clean).sum(), clean.sum()]).tolist()
        stats.update(self._suffix({  # one host sync for the counts (the GMM itself was fit on the host)
            "labeled_fraction": picked / len(selected),
            **selection_scores(picked, hits, clean_count),
            "gmm_auc": binary_auc(prob, clean),
        }, self.nets[k].name))
        return prob.to(self.ctx.device)

    def threshold(self, prob: torch.Tensor) -> float:
        return self.settings["p_threshold"]

    def is_labeled(self, prob: torch.Tensor) -> torch.Tensor:
        """The co-divide's labeled side: clean probability above the threshold (the rest is unlabeled)."""
        return prob > self.threshold(prob)

    # ------------------------------------------------------------------ warm-up
    def _warmup(self, net: Network, epoch: int, pool: Optional[torch.Tensor] = None) -> float:
        """Cross-entropy on the noisy labels (+ the confidence penalty under asymmetric noise), batch 2B, over
        the training set or `pool`."""
        net.model.train()
        # DivideMix's confidence penalty: under asymmetric noise, and on Clothing1M (its Train_clothing1M.py)
        penalty = self.ctx.cfg.noise.type == "asym" or self.ctx.cfg.dataset.name == "clothing1m"
        clip = self.ctx.cfg.method.warmup_grad_clip
        means = EpochMeans()
        for batch in self.ctx.batches(epoch, batch_size=2 * self.ctx.cfg.trainer.batch_size, index=pool,
                                      desc="warmup", augment=self.warmup_augment):
            logits = net.model(batch.images)
            loss = F.cross_entropy(logits, batch.labels) + (negative_entropy(logits) if penalty else 0.0)
            net.step(loss, grad_clip=clip)
            means.add({"loss": loss})
        return means.means().get("loss", 0.0)

    # ------------------------------------------------------------------ MixMatch
    def _train(self, net: Network, peer: Network, prob: torch.Tensor, epoch: int,
               pool: Optional[torch.Tensor] = None) -> dict:
        """MixMatch over the split of the training set (or of `pool`, which `prob` is then aligned with)."""
        ctx, cfg = self.ctx, self.ctx.cfg.method
        selected = self.is_labeled(prob)
        labeled, unlabeled = selected.nonzero().flatten(), (~selected).nonzero().flatten()
        if pool is not None:  # positions in the pool -> samples; prob indexed by sample from here on
            labeled, unlabeled = pool[labeled], pool[unlabeled]
            prob = torch.zeros(ctx.num_train, device=prob.device, dtype=prob.dtype).index_copy_(0, pool, prob)
        if len(labeled) < 2:  # nothing to learn labels from this epoch; DivideMix would crash here
            return {"skipped_epoch": 1.0}
        batch_size = ctx.cfg.trainer.batch_size
        num_iter = len(labeled) // batch_size + 1
        unlabeled_batches = self._cycle(unlabeled, epoch, batch_size)
        net.model.train()
        peer.model.eval()
        means = EpochMeans()
        for step, lab in enumerate(ctx.index_batches(epoch, batch_size=batch_size, index=labeled, desc="train")):
            unl = next(unlabeled_batches, None)
            progress = epoch + step / num_iter
            lambda_u = self.settings["lambda_u"] * linear_rampup(progress, self.ctx.warmup_epochs,
                                                                 cfg.rampup_epochs)
            means.add(self._mixmatch_step(net, peer, lab, unl, prob, lambda_u, epoch))
        return means.means()

    def _mixmatch_step(self, net: Network, peer: Network, lab: torch.Tensor, unl: Optional[torch.Tensor],
                       prob: torch.Tensor, lambda_u: float, epoch: int) -> dict[str, torch.Tensor]:
        ctx, cfg = self.ctx, self.ctx.cfg.method
        images = ctx.train_images
        x, x2 = ctx.augment(images[lab]), ctx.augment(images[lab])
        has_unl = unl is not None and len(unl) > 0
        u, u2 = (ctx.augment(images[unl]), ctx.augment(images[unl])) if has_unl else (x[:0], x[:0])
        with torch.no_grad():  # f in train mode (BN statistics move, as upstream), g in eval mode
            logits_x, feats_x = net.tap(x)
            refined = refine_labels(ctx.labels[lab], prob[lab], co_guess(logits_x, net.model(x2)), ctx.num_classes)
            targets_x = sharpen(refined, cfg.temperature)
            if has_unl:
                logits_u, feats_u = net.tap(u)
                guessed = co_guess(logits_u, net.model(u2), peer.model(u), peer.model(u2))
                targets_u = sharpen(guessed, cfg.temperature)
            else:
                logits_u, feats_u, targets_u = logits_x[:0], feats_x[:0], targets_x[:0]
        if self.mix_augments:  # the official recipe: fresh views of each sample form the mixed rows
            # one draw per kind of view over [lab; unl]: a policy's cost is per (op, magnitude) group, not per image
            pool = images[torch.cat([lab, unl]) if has_unl else lab]
            views = [view(pool) for view in self.mix_augments]
            parts_x, parts_u = [v[:len(lab)] for v in views], [v[len(lab):] for v in views]
        else:  # DivideMix: the co-guessing views themselves
            parts_x, parts_u = [x, x2], [u, u2]
        targets_lx, targets_lu = [targets_x] * len(parts_x), [targets_u] * len(parts_u)
        clean_x, clean_u = list(parts_x), list(parts_u)  # what each row shows unmasked (for recon_source=mixed)
        use_sanm = net.sanm is not None and net.sanm.active(epoch)
        reconstruction = torch.zeros((), device=ctx.device)
        if use_sanm:  # SANM[1] + SANM[2] on [x; u] (sanm_masked_set=labeled: on x), from the forward above
            masked_unl = unl if has_unl and self.mask_unlabeled else lab[:0]
            n_u = len(masked_unl)
            both = torch.cat([x, u[:n_u]])
            views = net.sanm.views(both, torch.cat([logits_x, logits_u[:n_u]]), torch.cat([feats_x, feats_u[:n_u]]),
                                   torch.cat([lab, masked_unl]), torch.cat([targets_x, targets_u[:n_u]]),
                                   net.tap.classifier_weight, clean_prob=torch.cat([prob[lab], prob[masked_unl]]))
            n_x, n = len(x), len(both)
            for copy in range(len(views.images) // n):  # one masked view per sample, two with separate trough images
                rows = slice(copy * n, (copy + 1) * n)
                masked, targets = views.images[rows], views.targets[rows]
                parts_x.append(masked[:n_x]); targets_lx.append(targets[:n_x]); clean_x.append(x)
                if n_u:
                    parts_u.append(masked[n_x:]); targets_lu.append(targets[n_x:]); clean_u.append(u)
            if self.recon_source == "separate":  # SANM[3] from the un-mixed masked views
                reconstruction = net.sanm.reconstruction(net.tap(views.images)[1], both)
        inputs = torch.cat(parts_x + parts_u)
        targets = torch.cat(targets_lx + targets_lu)
        mixed, mixed_targets, lam, perm = mix(inputs, targets, cfg.alpha)
        n_labeled = sum(len(p) for p in parts_x)
        if cfg.drop_unlabeled and self.settings["lambda_u"] == 0:  # C2D: mix the whole pool, keep labeled rows
            mixed, mixed_targets, perm = mixed[:n_labeled], mixed_targets[:n_labeled], perm[:n_labeled]
        logits, feats = net.tap(mixed)
        loss_x = soft_cross_entropy(logits[:n_labeled], mixed_targets[:n_labeled])
        loss_u = (torch.mean((torch.softmax(logits[n_labeled:].float(), 1) - mixed_targets[n_labeled:]) ** 2)
                  if len(logits) > n_labeled else torch.zeros((), device=ctx.device))
        loss_reg = uniform_prior_penalty(logits)
        if use_sanm and self.recon_source == "mixed":  # SANM[3] from the MixMatch forward
            clean = torch.cat(clean_x + clean_u)
            reconstruction = net.sanm.reconstruction(feats, lam * clean[: len(perm)] + (1 - lam) * clean[perm])
        loss = loss_x + lambda_u * loss_u + loss_reg + reconstruction
        net.step(loss)
        out = {"loss/x": loss_x.detach(), "loss/u": loss_u.detach(), "loss/prior": loss_reg.detach(),
               "lambda_u": torch.tensor(lambda_u)}
        if use_sanm:
            out["loss/reconstruction"] = reconstruction.detach()
        return out

    def _cycle(self, pool: torch.Tensor, epoch: int, batch_size: int):
        """Unlabeled index batches, reshuffled each time the pool runs out (DivideMix's iterator restart)."""
        if len(pool) < 2:  # a single unlabeled sample cannot pass BN in train mode
            return iter(())

        ctx, on_host = self.ctx, pool.cpu()  # the epoch's one copy of the pool

        def generate():
            while True:  # N processes: one global order, each rank its slice
                yield from (ctx.shard(chunk) for chunk in ctx.shuffled_batches(on_host, batch_size))

        return generate()

    # ------------------------------------------------------------------ prediction and state
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.nets[0].model(images) + self.nets[1].model(images)

    def extra_state(self) -> dict:
        return {"loss_history": [[torch.as_tensor(h) for h in hist] for hist in self.loss_history]}

    def load_extra_state(self, state: dict) -> None:
        self.loss_history = [[h.numpy() for h in hist] for hist in state["loss_history"]]


main = entry_point(DivideMix, "dividemix")

if __name__ == "__main__":
    main()
