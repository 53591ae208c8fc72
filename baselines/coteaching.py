"""Co-teaching (Han et al., NeurIPS 2018; bhanML/Co-teaching `main.py`, `loss.py`), docs/baselines.md section 8.

Two 9-layer CNNs see the same batch. Each keeps the k = int((1 - rho(e)) * B) samples with its smallest
cross-entropy and hands them to its peer: network 1 is updated on network 2's selection and network 2
on network 1's (the cross update). The forget rate rho(e) rises from 0 to eps over the first T_k epochs
(`forget_rate`). Adam (lr 0.001), constant until the decay start, then linearly to 0, with beta1 0.1
from the decay start; 200 epochs, batch 128. The reported test accuracy is network 1's; network 2's
goes to metrics.jsonl as test_acc_net2.

Our reading, where upstream is not followed to the letter:
- Epochs are 0-based and our epoch e uses upstream's schedule slot e (forget rate, lr, beta1). Upstream
  fills 200 slots but trains only slots 1..199 (slot 0, forget rate 0, only evaluates); we train all
  `trainer.epochs` of them, so epoch 0 trains with rho = 0.
- Upstream divides the (already averaged) loss by k once more. We drop that rescale: with Adam it is
  nearly a no-op, and without it the SANM terms keep the weight they have in every other method.
- The engine normalises the inputs (upstream feeds [0, 1] pixels); no augmentation by default, as
  upstream (`augment=weak` adds crop + flip). The last, smaller batch of an epoch is kept (its k
  scales with its size) and k is at least 1.
- The decay start `auto` is 80 of 200 epochs (CIFAR-10 and other datasets) or 100 of 200 (CIFAR-100),
  scaled to `trainer.epochs` so that shorter runs keep the schedule's shape.

SANM points: SANM starts once the forget rate has reached eps (method.warmup_epochs=auto = T_k), with G
from the default per-epoch GMM on each network's training losses. For network k, the samples its peer
selected are masked (SANM[1]) from network k's own forward on the batch (the one the selection used,
so no extra clean forward), their noisy labels are regularised (SANM[2]), and the masked views' soft
cross-entropy plus the reconstruction of the selected images (SANM[3]) join network k's loss
(sanm.train_on=masked: they replace its cross-entropy). Only the exchanged samples are masked (one of
the two readings of docs/baselines.md 9.7): a sample the peer rejected as noisy never reaches network k,
masked or not, and the selection itself is made on the clean forward alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from baselines.common.cli import entry_point
from baselines.common.config import AUTO, MethodConfig
from baselines.common.engine import Batch, Method, Network, per_network
from baselines.common.metrics import selection_scores
from baselines.common.losses import soft_cross_entropy

# docs/baselines.md 8.2: linear decay from epoch 80 (CIFAR-100: 100) of upstream's 200
DECAY_START = {"cifar10": 80, "cifar100": 100}  # of upstream's 200 epochs


@dataclass
class CoTeachingConfig(MethodConfig):
    warmup_epochs: Any = AUTO  # epochs before SANM starts; auto = num_gradual (the forget rate has reached eps)
    # eps: auto = the expected share of wrong labels (DivideMix sym: r*(C-1)/C, e.g. 0.45 at sym 50% on CIFAR-10;
    # asym 40%: about 0.2) | nominal = r | actual = the realised share | a number in [0, 1)
    forget_rate: Any = AUTO
    num_gradual: int = 10  # T_k: the forget rate rises linearly from 0 to eps over the first 10 epochs (main.py)
    exponent: float = 1.0  # c: the rise ends at eps**c (main.py)
    beta1_after_decay: Optional[float] = 0.1  # Adam beta1 from trainer.lr_decay_start on (main.py: mom2); null keeps 0.9
    # SANM (sanm_train_on clean_and_masked, sanm_target label): the CE on the peer's selection stays, and the
    # masked copies' NLR loss on the noisy one-hot labels of the selected samples is added


def forget_rate(epoch: int, eps: float, num_gradual: int, exponent: float) -> float:
    """rho(e): linspace(0, eps**c, T_k)[e] for e < T_k, then eps (upstream's `rate_schedule`, 0-based)."""
    if epoch < num_gradual:
        return float(np.linspace(0.0, eps**exponent, num_gradual)[epoch])
    return float(eps)


def remembered_count(rate: float, batch_size: int) -> int:
    """k = int((1 - rho) * B), at least 1 so that a tiny last batch still has a loss."""
    return max(1, int((1.0 - rate) * batch_size))


def small_loss_selection(losses: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the `keep` smallest of `losses` [B], smallest first (ties: the earlier index)."""
    return torch.argsort(losses, stable=True)[:keep]




class CoTeaching(Method):
    name = "coteaching"
    config = CoTeachingConfig
    diagnostics = (*per_network("selection_precision", "selection_recall"), "forget_rate", "test_acc_net2")
    default_warmup_epochs = 10  # T_k; resolve_warmup reads method.num_gradual

    @classmethod
    def trainer_defaults(cls, cfg: DictConfig) -> dict:
        # where lr starts its linear decay and beta1 drops, of 200 epochs (scaled to trainer.epochs)
        return {"reference_epochs": 200, "lr_decay_start": DECAY_START.get(cfg.dataset.name, DECAY_START["cifar10"])}

    @classmethod
    def resolve_warmup(cls, cfg: DictConfig) -> int:
        """SANM starts when the forget rate has reached eps (T_k epochs), unless method.warmup_epochs is set."""
        num_gradual = cfg.method.num_gradual
        if isinstance(num_gradual, bool) or not isinstance(num_gradual, int) or num_gradual < 0:
            raise ValueError(f"method.num_gradual must be an integer >= 0, got {num_gradual!r}")
        if cfg.method.warmup_epochs == AUTO:
            return num_gradual
        return super().resolve_warmup(cfg)

    def build(self) -> None:
        ctx, cfg = self.ctx, self.ctx.cfg.method
        self.eps, self.eps_source = ctx.assumed_noise_rate("forget_rate")
        if isinstance(cfg.exponent, bool) or not isinstance(cfg.exponent, (int, float)) or cfg.exponent <= 0:
            raise ValueError(f"method.exponent must be a number > 0, got {cfg.exponent!r}")
        beta1 = cfg.beta1_after_decay
        if beta1 is not None and not 0.0 <= beta1 < 1.0:
            raise ValueError(f"method.beta1_after_decay must be null or in [0, 1), got {beta1}")
        self.net1, self.net2 = self.add_network("net1"), self.add_network("net2")
        # over the epoch, on the device: [truly clean among net 1's picks, among net 2's, truly clean seen]
        self._selection_counts = torch.zeros(3, device=ctx.device)
        self._picked = 0  # samples each network picked (k per batch, the same for both)

    def resolved_settings(self) -> dict:
        cfg = self.ctx.cfg.method
        return {"forget_rate": self.eps, "forget_rate_source": self.eps_source, "num_gradual": cfg.num_gradual,
                "exponent": cfg.exponent, "warmup_epochs": self.ctx.warmup_epochs,
                "beta1_after_decay": cfg.beta1_after_decay}

    # ------------------------------------------------------------------ schedules
    def forget_rate_at(self, epoch: int) -> float:
        cfg = self.ctx.cfg.method
        return forget_rate(epoch, self.eps, cfg.num_gradual, cfg.exponent)

    def adam_beta1_at(self, epoch: int) -> float:
        trainer, after = self.ctx.cfg.trainer, self.ctx.cfg.method.beta1_after_decay
        return trainer.adam_betas[0] if after is None or epoch < trainer.lr_decay_start else after

    def set_adam_beta1(self, epoch: int) -> None:
        """From the epoch number alone (the engine sets lr the same way), so a resumed run is exact."""
        beta1 = self.adam_beta1_at(epoch)
        for net in self.networks.values():
            for group in net.optimizer.param_groups:
                if "betas" in group:  # Adam; a trainer.optimizer=sgd run has none
                    group["betas"] = (beta1, group["betas"][1])

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch: int) -> dict:
        self.set_adam_beta1(epoch)
        self._selection_counts.zero_()
        self._picked = 0
        stats = super().train_epoch(epoch)  # SANM's GMM, train_step per batch, SANM's mask statistics
        stats.update(self._selection_stats(), forget_rate=self.forget_rate_at(epoch),
                     adam_beta1=self.adam_beta1_at(epoch))
        return stats

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, y = batch.images, batch.labels
        outputs = [self.net1.tap(x), self.net2.tap(x)]  # (logits [B, c], feature maps [B, K, h, w]) each
        losses = [F.cross_entropy(logits, y, reduction="none").detach() for logits, _ in outputs]
        keep = remembered_count(self.forget_rate_at(batch.epoch), len(y))
        chosen = [small_loss_selection(loss, keep) for loss in losses]
        self._count_selection(chosen, batch.index)
        stats: dict[str, torch.Tensor] = {}
        for k, net in enumerate((self.net1, self.net2)):  # the cross update: network k learns from its peer's choice
            logits, feats = outputs[k]
            loss, terms = self._peer_loss(net, logits, feats, batch, chosen[1 - k])
            net.step(loss)
            stats.update(self._suffix(terms, net.name))
        return stats

    def _peer_loss(self, net: Network, logits: torch.Tensor, feats: torch.Tensor, batch: Batch,
                   peer_choice: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy on the samples the peer selected (+ SANM on their masked copies once active)."""
        x, y, index = batch.images[peer_choice], batch.labels[peer_choice], batch.index[peer_choice]
        clean = F.cross_entropy(logits[peer_choice], y)
        if net.sanm is None or not net.sanm.active(batch.epoch):
            return clean, {"loss/ce": clean.detach()}
        views = net.sanm.views(x, logits[peer_choice], feats[peer_choice], index, y,  # SANM[1] + SANM[2]
                               net.tap.classifier_weight)
        logits_m, feats_m = net.tap(views.images)
        masked = soft_cross_entropy(logits_m, views.targets)
        reconstruction = net.sanm.reconstruction(feats_m, x)  # SANM[3]; stacked trough views handled inside
        clean_term = clean if net.sanm.settings.train_on == "clean_and_masked" else torch.zeros_like(clean)
        loss = clean_term + masked + reconstruction
        return loss, {"loss/ce": clean.detach(), "loss/masked": masked.detach(),
                      "loss/reconstruction": reconstruction.detach(), "loss/total": loss.detach()}

    # ------------------------------------------------------------------ diagnostics
    def _count_selection(self, chosen: list[torch.Tensor], index: torch.Tensor) -> None:
        is_clean = self.ctx.is_clean
        picked_clean = is_clean[index[torch.stack(chosen)]].sum(dim=1)  # [2]
        self._selection_counts += torch.cat([picked_clean, is_clean[index].sum().view(1)]).float()
        self._picked += len(chosen[0])

    def _selection_stats(self) -> dict[str, float]:
        """Precision and recall, against the true labels, of what each network handed to its peer."""
        *picked_clean, clean_seen = self._selection_counts.tolist()  # the epoch's one host sync
        stats = {}
        for k, hits in enumerate(picked_clean):
            stats.update(self._suffix(selection_scores(self._picked, hits, clean_seen), f"net{k + 1}"))
        return stats

    # ------------------------------------------------------------------ evaluation
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net1.model(images)

    def extra_test_metrics(self) -> dict[str, float]:
        return {"test_acc_net2": self.ctx.test_accuracy(self.net2.model)}


main = entry_point(CoTeaching, "coteaching")

if __name__ == "__main__":
    main()
