"""GCE, generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018): CE's training with a bounded loss.

L_q = (1 - p_y^q) / q lies between cross-entropy (q -> 0) and the mean absolute error (q = 1), which a wrong
label cannot pull without bound; q = 0.7 is the paper's CIFAR setting. Everything else is CE's (conf/ce.yaml:
one PreAct ResNet-18, SGD 0.02, lr /10 half-way); with SANM the masked view is trained with GCE too, on its
regularised labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.ce import CE, CEConfig
from baselines.common.cli import entry_point
from baselines.common.losses import generalized_cross_entropy


@dataclass
class GCEConfig(CEConfig):
    q: float = 0.7  # in (0, 1]: towards 0 the loss is cross-entropy, at 1 the MAE


class GCE(CE):
    name = "gce"
    config = GCEConfig

    def build(self) -> None:
        q = self.ctx.cfg.method.q
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q <= 1:
            raise ValueError(f"method.q must be in (0, 1] (0.7 in the paper; towards 0 GCE is CE), got {q!r}")
        super().build()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return generalized_cross_entropy(logits, targets, self.ctx.cfg.method.q)


main = entry_point(GCE)

if __name__ == "__main__":
    main()
