"""CDR, robust early-learning (Xia et al., ICLR 2021; xiaoboxia/CDR `main.py`), docs/baselines.md section 7.

Cross-entropy on the noisy labels, with one change in the optimiser step: after backward, the weight
scalars whose first-order importance |g * w| is in the global top (1 - eps) keep (1 - eps) times their
gradient and all others get none, so weight decay alone pulls the non-critical weights towards 0
(baselines/common/critical.py, installed as the network's `grad_edit`). eps is the assumed noise rate:
`method.noise_rate=auto` takes the expected share of wrong labels (r*(C-1)/C under the DivideMix
symmetric protocol, r under exclude_true; docs/baselines.md 1.1, 1.3, 7.4); `nominal`, `actual` or a number
are also accepted, and resolved.yaml records the value and its source. Model selection as upstream:
`trainer.val_fraction` holds out a seeded noisy validation split, and summary.json reports the test
accuracy at the first epoch with the best validation accuracy (7.3).

Our reading, not upstream's: the project's PreAct ResNet-18 replaces CDR's ResNet-50 with a padding-0
stem (docs/baselines.md 2); the lr drops at the configured epochs (40, 80), while upstream calls
`scheduler.step()` at the start of each epoch and so drops one epoch early (after 39 and 79); the
extra logging forward upstream runs per step (a second BN-statistics update) is not reproduced.

SANM points: exactly as in CE (baselines/ce.py, whose train_step this class reuses): after the warm-up
(`method.warmup_epochs`, default 2) each epoch fits G on one evaluation pass; each step masks the batch
with the clean logits and features (SANM[1]), regularises the noisy one-hot labels (SANM[2]), and adds
the masked view's soft cross-entropy and the reconstruction loss (SANM[3]) before backward. The masked
copies therefore contribute to the gradients the critical-weight ranking is computed from, so SANM
changes which weights count as critical (docs/baselines.md 9.7). The ranking covers the classifier's weights
only: the SANM decoder is not part of the model, and its gradients are never edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baselines.ce import CE
from baselines.common.cli import entry_point
from baselines.common.config import AUTO, MethodConfig
from baselines.common.critical import CriticalGradientEdit


@dataclass
class CDRConfig(MethodConfig):
    # eps, the assumed noise rate (upstream tau = 1 - eps): the top int((1 - eps) * |W|) weights by |g * w| keep
    # (1 - eps) * g (docs/baselines.md 7.1). auto = the expected share of wrong labels (sym 0.5 under the
    # DivideMix protocol, CIFAR-10: 0.45); nominal = the noise's r; actual = the realised share; or a number in
    # [0, 1). warmup_epochs auto = 2 epochs before SANM starts (as CE); the edit runs from the first step.
    # SANM: CE's loss stays and the masked view's NLR loss (on the noisy one-hot label) is added before the edit.
    noise_rate: Any = AUTO


class CDR(CE):
    name = "cdr"
    config = CDRConfig
    diagnostics = ("kept_fraction", "val_acc")
    default_warmup_epochs = 2  # plain CDR epochs before SANM starts, as CE (G needs a network that has learned)
    # main.py: lr x0.1 at the start of epochs 40 and 80 of 200 (0-based; upstream's land one epoch early)
    schedule = {"reference_epochs": 200, "lr_milestones": [40, 80]}

    def build(self) -> None:
        self.noise_rate, self.noise_rate_source = self.ctx.assumed_noise_rate("noise_rate")
        super().build()
        self.edit = CriticalGradientEdit(self.noise_rate)
        self.net.grad_edit = self.edit

    def train_epoch(self, epoch: int) -> dict:
        stats = super().train_epoch(epoch)
        stats.update(self.edit.epoch_stats())
        return stats

    def resolved_settings(self) -> dict:
        return {"noise_rate": self.noise_rate, "noise_rate_source": self.noise_rate_source,
                "warmup_epochs": self.ctx.warmup_epochs}


main = entry_point(CDR, "cdr")

if __name__ == "__main__":
    main()
